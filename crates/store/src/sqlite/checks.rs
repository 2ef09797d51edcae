//! CHECK constraints as chains of comparisons, not `IN` lists.
//!
//! SQLite compiles `CHECK (x IN ('a', 'b', 'c'))` (more than two values) into an ephemeral
//! B-tree that every execution of the statement builds and drops again: each append's `INSERT
//! INTO messages` paid `sqlite3BtreeOpen` + `Close`, about 4.7 % of the writer's samples
//! (docs/performance.md, fourteenth and fifteenth sessions). `x = 'a' OR x = 'b' OR x = 'c'`
//! accepts exactly the same values (NULL included: both are NULL for a NULL `x`) and compiles
//! to plain comparisons.
//!
//! Migration 0001 cannot be edited (sqlx checksums applied migrations) and a table rebuild of
//! `messages` would copy every message of a large store, so the stored `CREATE TABLE` text is
//! rewritten in place, the way SQLite documents for schema changes that leave the file format
//! alone (ALTER TABLE, "Making Other Kinds Of Table Schema Changes"): `writable_schema`, the
//! new text, `schema_version` + 1 so every other connection re-reads it. It runs at every open,
//! after the migrations, and changes nothing once done.

use sqlx::SqliteConnection;

use crate::error::Result;

/// The constrained columns of the schema: table, column, allowed values.
const CHECKS: &[(&str, &str, &[&str])] = &[
    (
        "conversations",
        "status",
        &["active", "in_progress", "completed", "abandoned"],
    ),
    ("messages", "role", &["user", "assistant", "system", "tool"]),
    ("jobs", "state", &["queued", "running", "done", "failed"]),
    (
        "webhook_deliveries",
        "state",
        &["pending", "succeeded", "failed"],
    ),
];

fn quoted(v: &str) -> String {
    format!("'{v}'")
}

/// The constraint as the migrations wrote it.
fn in_list(column: &str, values: &[&str]) -> String {
    let list: Vec<String> = values.iter().map(|v| quoted(v)).collect();
    format!("CHECK ({column} IN ({}))", list.join(", "))
}

/// The same constraint as comparisons.
fn or_chain(column: &str, values: &[&str]) -> String {
    let terms: Vec<String> = values
        .iter()
        .map(|v| format!("{column} = {}", quoted(v)))
        .collect();
    format!("CHECK ({})", terms.join(" OR "))
}

/// Rewrites every `IN`-list CHECK of [`CHECKS`] still stored in its `IN` form; returns how
/// many tables changed. Must run before other connections open the file (they would keep
/// the old, equivalent text until their next statement sees the new schema version).
pub(super) async fn plain_checks(conn: &mut SqliteConnection) -> Result<usize> {
    let mut pending = Vec::new();
    for (table, column, values) in CHECKS {
        let sql: Option<String> =
            sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?")
                .bind(table)
                .fetch_optional(&mut *conn)
                .await?;
        let from = in_list(column, values);
        if let Some(sql) = sql.filter(|s| s.contains(&from)) {
            pending.push((*table, sql.replace(&from, &or_chain(column, values))));
        }
    }
    if pending.is_empty() {
        return Ok(0);
    }
    // One transaction: the new texts and the version bump land together or not at all.
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let done = rewrite(conn, &pending).await;
    let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = sqlx::query(end).execute(&mut *conn).await;
    // writable_schema is a connection setting, not part of the transaction.
    sqlx::query("PRAGMA writable_schema = OFF")
        .execute(&mut *conn)
        .await?;
    done?;
    ended?;
    Ok(pending.len())
}

async fn rewrite(conn: &mut SqliteConnection, pending: &[(&str, String)]) -> Result<()> {
    let version: i64 = sqlx::query_scalar("PRAGMA schema_version")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query("PRAGMA writable_schema = ON")
        .execute(&mut *conn)
        .await?;
    for (table, sql) in pending {
        sqlx::query("UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = ?")
            .bind(sql)
            .bind(table)
            .execute(&mut *conn)
            .await?;
    }
    // A pragma takes no parameters; the value is an integer read just above.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA schema_version = {}",
        version + 1
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::tests::temp_store;
    use sqlx::Connection;

    /// The two forms accept and refuse the same values, on SQLite itself.
    #[tokio::test]
    async fn both_forms_accept_the_same_values() {
        let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for (i, (_, column, values)) in CHECKS.iter().enumerate() {
            for (form, check) in [
                ("a", in_list(column, values)),
                ("b", or_chain(column, values)),
            ] {
                let ddl = format!("CREATE TABLE t{i}{form} ({column} TEXT {check})");
                sqlx::query(sqlx::AssertSqlSafe(ddl))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            let tries = values
                .iter()
                .copied()
                .chain(["", "x", "User", "active ", "'", "done'"]);
            for v in tries {
                let mut verdicts = Vec::new();
                for form in ["a", "b"] {
                    let insert = format!("INSERT INTO t{i}{form} VALUES (?)");
                    let ok = sqlx::query(sqlx::AssertSqlSafe(insert))
                        .bind(v)
                        .execute(&mut c)
                        .await
                        .is_ok();
                    verdicts.push(ok);
                }
                assert_eq!(verdicts[0], verdicts[1], "{column} = {v:?}");
                assert_eq!(verdicts[0], values.contains(&v), "{column} = {v:?}");
            }
        }
    }

    /// Every table the list names still carries the migrations' exact text before the
    /// rewrite: if a migration changed it, the rewrite would silently stop applying.
    #[tokio::test]
    async fn the_migrations_text_is_what_the_rewrite_looks_for() {
        let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        crate::sqlite::fts::register(&mut c).await.unwrap();
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut c)
            .await
            .unwrap();
        assert_eq!(plain_checks(&mut c).await.unwrap(), CHECKS.len());
        assert_eq!(
            plain_checks(&mut c).await.unwrap(),
            0,
            "a second run changes nothing"
        );
    }

    /// The writer is the connection that rewrote the schema: its own statements must see the
    /// new text at once, not only connections opened after it.
    #[tokio::test]
    async fn the_writer_that_rewrote_the_schema_uses_it() {
        let (_dir, store) = temp_store().await;
        let ops: Vec<String> = store
            .exec_raw(|c, _| {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "EXPLAIN INSERT INTO messages (tenant_id, role) VALUES (x'00', 'user')",
                    )
                    .fetch_all(&mut *c)
                    .await?;
                    Ok(rows
                        .iter()
                        .map(|r| sqlx::Row::get::<String, _>(r, 1))
                        .collect())
                })
            })
            .await
            .unwrap();
        assert!(ops.iter().any(|o| o == "Insert"), "{ops:?}");
        assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{ops:?}");
        store.close().await;
    }

    /// After open: no CHECK keeps an IN list, the file is sound, an append's insert builds no
    /// ephemeral table, and a role outside the list is still refused by SQLite itself.
    #[tokio::test]
    async fn an_opened_store_has_plain_checks() {
        let (dir, store) = temp_store().await;
        store.close().await;
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let mut c = SqliteConnection::connect(&url).await.unwrap();
        let ins: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_schema WHERE sql LIKE '%CHECK (% IN (%'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert_eq!(ins, 0);
        let ok: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(ok, "ok");
        let ops: Vec<String> =
            sqlx::query("EXPLAIN INSERT INTO messages (tenant_id, role) VALUES (x'00', 'user')")
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| sqlx::Row::get::<String, _>(r, 1))
                .collect();
        assert!(ops.iter().any(|o| o == "Insert"), "{ops:?}");
        assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{ops:?}");
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut c)
            .await
            .unwrap();
        let insert = |role: &'static str| {
            sqlx::query(
                "INSERT INTO messages (tenant_id, conversation_id, seq, id, role, content, created_at) \
                 VALUES (x'00', x'01', 1, x'02', ?, 'hi', 0)",
            )
            .bind(role)
        };
        let refused = insert("robot").execute(&mut c).await.unwrap_err();
        assert!(
            refused.to_string().contains("CHECK constraint failed"),
            "{refused}"
        );
        insert("tool").execute(&mut c).await.unwrap();
        c.close().await.unwrap();
    }
}
