//! PostgreSQL only (skipped, saying so, without `CONFAB_TEST_POSTGRES_URL`): the append
//! batch's transaction asks for generic plans (planned once per connection instead of at every
//! execution), only for itself, and those plans find rows by key whatever the batch's size.

use confab_store::{Store, StoreOptions};
use sqlx::{Connection, Row};

#[path = "support/testdb.rs"]
mod testdb;
use testdb::{TestDb, pg_admin_or_skip};

async fn plan_cache_mode(c: &mut sqlx::PgConnection) -> String {
    sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(&mut *c)
        .await
        .unwrap()
}

/// The plan of `EXECUTE name(args)` (`args` as SQL) as PostgreSQL chooses it now, as text, one
/// line a node.
async fn explain(c: &mut sqlx::PgConnection, name: &str, args: &str) -> String {
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (VERBOSE) EXECUTE {name}({args})"
    )))
    .fetch_all(&mut *c)
    .await
    .unwrap();
    rows.iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `n` empty arrays, as [`explain`]'s arguments.
fn empty(n: usize) -> String {
    vec!["'{}'"; n].join(", ")
}

/// A new database of its own, migrated (opening a store runs the migrations: the tables and
/// indexes the plans use), with tenant `acme`; `None`, said, without a PostgreSQL server.
async fn migrated() -> Option<(tempfile::TempDir, TestDb, confab_store::TenantId)> {
    pg_admin_or_skip("the PostgreSQL plan check")?;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("unused.db")).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let tenant = store.ensure_tenant("acme").await.unwrap();
    store.close().await;
    Some((dir, db, tenant))
}

/// Adds `n` empty conversations to `tenant`.
async fn add_conversations(c: &mut sqlx::PgConnection, tenant: confab_store::TenantId, n: i64) {
    sqlx::query(
        "INSERT INTO conversations (tenant_id, id, status, created_at, updated_at) \
         SELECT $1, gen_random_uuid(), 'active', n, n FROM generate_series(1, $2) AS n",
    )
    .bind(tenant.as_uuid())
    .bind(n)
    .execute(&mut *c)
    .await
    .unwrap();
}

/// Brings the statistics of conversations and messages up to date.
async fn analyzed(c: &mut sqlx::PgConnection) {
    sqlx::raw_sql("ANALYZE conversations, messages")
        .execute(&mut *c)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_append_batch_plans_once_and_finds_rows_by_key() {
    let Some((_dir, db, tenant)) = migrated().await else {
        return;
    };
    let [begin, lock, write, read, versioned] = confab_store::postgres_append_batch_sql();

    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // A generic plan is made for the table as its statistics describe it (and made again when
    // they change): on a table of a few hundred rows a scan of it all is cheaper than the ten
    // key lookups the planner assumes for an array, and no slower in fact. On a table of a
    // real size it must be lookups.
    add_conversations(&mut c, tenant, 20000).await;
    analyzed(&mut c).await;
    assert_eq!(plan_cache_mode(&mut c).await, "auto");
    sqlx::raw_sql(sqlx::AssertSqlSafe(begin))
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(plan_cache_mode(&mut c).await, "force_generic_plan");
    // Each statement, its arguments' count and the part of its plan that shows its first
    // arrays as parameters: a generic plan keeps them, where a custom plan shows the values
    // given. The versioned path's statements run outside a transaction, on connections that
    // ask for generic plans for their whole session (checked below).
    let statements = [
        ("lock_rows", lock, 2, "unnest($1), unnest($2)"),
        ("write_batch", write, 27, "unnest($18), unnest($19)"),
        ("versioned_read", read, 2, "unnest($1), unnest($2)"),
        ("versioned_write", versioned, 27, "unnest($18), unnest($19)"),
    ];
    for (name, sql, args, generic) in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE {name} AS {sql}")))
            .execute(&mut c)
            .await
            .unwrap();
        let plan = explain(&mut c, name, &empty(args)).await;
        assert!(
            plan.contains(generic),
            "{name}: not a generic plan:\n{plan}"
        );
        assert!(
            plan.contains("Index Scan using conversations_pkey"),
            "{name}: conversations not found by key:\n{plan}"
        );
        assert!(
            !plan.lines().any(|l| l.contains("Seq Scan on")
                && (l.contains("conversations") || l.contains("messages"))),
            "{name}: a table scanned whole:\n{plan}"
        );
    }
    sqlx::raw_sql("COMMIT").execute(&mut c).await.unwrap();
    // SET LOCAL: nothing stays on the connection once the batch's transaction ends, so the
    // pool's other statements (searches, whose plans depend on the word) plan as before.
    assert_eq!(plan_cache_mode(&mut c).await, "auto");
    c.close().await.unwrap();
    let options = confab_store::postgres_appending_options(&db.url).unwrap();
    let mut appending = sqlx::PgConnection::connect_with(&options).await.unwrap();
    assert_eq!(plan_cache_mode(&mut appending).await, "force_generic_plan");
    appending.close().await.unwrap();
}

/// How many times PostgreSQL has planned prepared statement `name` generically and for its
/// values, in this session.
async fn plans(c: &mut sqlx::PgConnection, name: &str) -> (i64, i64) {
    sqlx::query_as("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *c)
        .await
        .unwrap()
}

/// Prepares `sql` as `name` and executes it eight times, with `args[0]` then, from the sixth,
/// `args[1]`; asserts that PostgreSQL settled on its generic plan, and answers that plan for
/// `args[1]` ([`explain`]). PostgreSQL plans the first five executions for their values; from
/// then on it keeps the generic plan only if the values made those plans no cheaper.
async fn settled(c: &mut sqlx::PgConnection, name: &str, sql: &str, args: &[String]) -> String {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE {name} AS {sql}")))
        .execute(&mut *c)
        .await
        .unwrap();
    for i in 0..8 {
        let a = &args[usize::from(i >= 5)];
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("EXECUTE {name}({a})")))
            .execute(&mut *c)
            .await
            .unwrap();
    }
    let (generic, custom) = plans(c, name).await;
    assert_eq!(
        (generic, custom),
        (3, 5),
        "{name}: planned for its values every time"
    );
    explain(c, name, &args[1]).await
}

#[tokio::test]
async fn the_kept_windows_statements_settle_on_one_plan_that_reads_by_rowid() {
    let Some((_dir, db, tenant)) = migrated().await else {
        return;
    };
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // A table of a real size, its words of every frequency, for the custom plans to tell apart
    // (on 30,000 rows the checked rows' custom plans, their parameters in sight, already cost
    // no less than the generic one, and this test could not tell the two statements apart).
    let conversation: uuid::Uuid = sqlx::query_scalar("SELECT gen_random_uuid()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO conversations (tenant_id, id, status, created_at, updated_at) \
         VALUES ($1, $2, 'active', 0, 0)",
    )
    .bind(tenant.as_uuid())
    .bind(conversation)
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messages (tenant_id, conversation_id, seq, id, role, content, created_at, fts) \
         SELECT $1, $2, n, gen_random_uuid(), 'user', 'x', n, \
         array_to_tsvector(ARRAY['common', 'w' || (n % 1000)::text]) \
         FROM generate_series(1, 200000) AS n",
    )
    .bind(tenant.as_uuid())
    .bind(conversation)
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::raw_sql("ANALYZE messages, search_changes")
        .execute(&mut c)
        .await
        .unwrap();
    let (max, seen): (i64, String) =
        sqlx::query_as("SELECT max(rowid), txid_current_snapshot()::text FROM messages")
            .fetch_one(&mut c)
            .await
            .unwrap();
    let t = tenant.as_uuid();
    let [checks, checked_rows, near] = confab_store::postgres_kept_sql();
    // Each first with the arguments a custom plan looks cheapest for, the ones a search beside
    // appends asks most (a batch of one check, one hit, a rare word a few rows back), then
    // with others (forty checks, twenty hits, the commonest word three thousand rows back).
    let cases: [(&str, &str, Vec<String>); 3] = [
        (
            "checks",
            checks,
            vec![
                format!("ARRAY['{t}']::uuid[], ARRAY['{seen}']"),
                format!(
                    "ARRAY[{}]::uuid[], ARRAY[{}]",
                    vec![format!("'{t}'"); 40].join(","),
                    vec![format!("'{seen}'"); 40].join(",")
                ),
            ],
        ),
        (
            "checked_rows",
            checked_rows,
            vec![
                format!("ARRAY[{max}]::int8[], '{t}', '{seen}'"),
                format!(
                    "ARRAY[{}]::int8[], '{t}', '{seen}'",
                    (max - 19..=max)
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ],
        ),
        (
            "near",
            near,
            vec![
                format!("'w7', '{t}', '{seen}', {}", max - 10),
                format!("'common', '{t}', '{seen}', {}", max - 3000),
            ],
        ),
    ];
    for (name, sql, args) in &cases {
        let plan = settled(&mut c, name, sql, args).await;
        assert!(
            !plan.lines().any(|l| l.contains("Seq Scan on messages")),
            "{name}: messages scanned whole:\n{plan}"
        );
        if *name != "checks" {
            assert!(
                plan.contains("messages_rowid"),
                "{name}: messages not found by rowid:\n{plan}"
            );
        }
    }
    c.close().await.unwrap();
}

/// The batched first searches' statements (postgres/first_batch.rs) settle on one plan per
/// connection, and it finds each segment's postings and each hit by key: a word's postings in
/// segments its search does not read, and messages beside the page's, are never read.
#[tokio::test]
async fn the_first_searches_statements_settle_on_one_plan_that_reads_by_key() {
    let Some((_dir, db, tenant)) = migrated().await else {
        return;
    };
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let t = tenant.as_uuid();
    // 100,000 messages; 200 segments built, each with the postings of 50 words.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO conversations (tenant_id, id, status, created_at, updated_at) \
         VALUES ('{t}', '00000000-0000-0000-0000-000000000001', 'active', 0, 0); \
         INSERT INTO messages (tenant_id, conversation_id, seq, id, role, content, created_at, \
         fts) SELECT '{t}', '00000000-0000-0000-0000-000000000001', n, gen_random_uuid(), 'user', \
         'x', n, array_to_tsvector(ARRAY['x']) FROM generate_series(1, 100000) AS n; \
         INSERT INTO search_segments (seg, upto, built) \
         SELECT s, s * 32768 + 32767, true FROM generate_series(0, 199) AS s; \
         INSERT INTO search_postings (tenant_id, lexeme, seg, postings) \
         SELECT '{t}', 'w' || w, s, '\\x000201'::bytea \
         FROM generate_series(0, 199) AS s, generate_series(0, 49) AS w; \
         ANALYZE search_segments, search_postings, messages"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    let [newest, page_rows] = confab_store::postgres_first_batch_sql();
    // Each first with the arguments a custom plan looks cheapest for (one search), then with
    // others (forty searches).
    let forty = |item: &str| vec![item; 40].join(",");
    let cases: [(&str, &str, Vec<String>); 2] = [
        (
            "newest",
            newest,
            vec![
                format!(
                    "ARRAY['{t}']::uuid[], ARRAY['w1'], ARRAY[1]::int8[], \
                     ARRAY['{t}']::uuid[], ARRAY[txid_current_snapshot()::text]"
                ),
                format!(
                    "ARRAY[{}]::uuid[], ARRAY[{}], ARRAY[{}]::int8[], \
                     ARRAY['{t}']::uuid[], ARRAY[txid_current_snapshot()::text]",
                    forty(&format!("'{t}'")),
                    forty("'w7'"),
                    forty("64")
                ),
            ],
        ),
        (
            "page_rows",
            page_rows,
            vec![
                format!("ARRAY[1]::int8[], ARRAY['{t}']::uuid[], ARRAY[5]::int8[]"),
                format!(
                    "ARRAY[{}]::int8[], ARRAY[{}]::uuid[], ARRAY[{}]::int8[]",
                    (1..=800)
                        .map(|i| (i / 20 + 1).to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    vec![format!("'{t}'"); 800].join(","),
                    (1..=800)
                        .map(|r| (r * 100).to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ],
        ),
    ];
    for (name, sql, args) in &cases {
        let plan = settled(&mut c, name, sql, args).await;
        assert!(
            !plan.lines().any(|l| l.contains("Seq Scan")),
            "{name}: a table scanned whole:\n{plan}"
        );
        let by_key = if *name == "newest" {
            "search_postings_pkey"
        } else {
            "messages_rowid"
        };
        assert!(
            plan.contains(by_key),
            "{name}: not read by {by_key}:\n{plan}"
        );
        if *name == "newest" {
            // One range of the key, bounded on both sides by the segments asked for.
            assert!(
                plan.lines().any(|l| l.contains("Index Cond")
                    && l.contains("lexeme = q.l")
                    && l.contains("seg >=")
                    && l.contains("seg <=")),
                "newest: a word's postings read in every segment:\n{plan}"
            );
            // The row cache's checks (postgres/row_cache.rs) read the tenant's changes by key.
            assert!(
                plan.contains("search_changes_key"),
                "newest: the changes not read by their key:\n{plan}"
            );
        }
    }
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_page_of_messages_settles_on_its_generic_plan() {
    let Some((_dir, db, tenant)) = migrated().await else {
        return;
    };
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // Ten conversations of 3,000 messages each, their rows interleaved as appends leave them:
    // long enough that a generic plan's guess at a parameter's limit (a tenth of the rows)
    // costs more than the fifty rows a plan for the values reads.
    add_conversations(&mut c, tenant, 10).await;
    sqlx::query(
        "INSERT INTO messages (tenant_id, conversation_id, seq, id, role, content, created_at, fts) \
         SELECT c.tenant_id, c.id, n, gen_random_uuid(), 'user', repeat('x', 200), n, \
         ''::tsvector FROM generate_series(0, 2999) AS n, conversations c \
         WHERE c.tenant_id = $1 ORDER BY n",
    )
    .bind(tenant.as_uuid())
    .execute(&mut c)
    .await
    .unwrap();
    analyzed(&mut c).await;
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM conversations WHERE tenant_id = $1 ORDER BY id")
            .bind(tenant.as_uuid())
            .fetch_all(&mut c)
            .await
            .unwrap();
    let t = tenant.as_uuid();
    // The page every dialect asks for first: fifty messages from the start, no offset.
    let first = confab_store::MessageQuery {
        limit: Some(50),
        ..Default::default()
    };
    let sql = confab_store::postgres_page_sql(&first);
    // The limit and an offset of 0, were the statement to ask for them.
    let mut more = String::new();
    if sql.contains("LIMIT $") {
        more.push_str(", 50");
    }
    if sql.contains("OFFSET") {
        more.push_str(", 0");
    }
    let args = [
        format!("'{t}', '{}'{more}", ids[0]),
        format!("'{t}', '{}'{more}", ids[1]),
    ];
    let plan = settled(&mut c, "page", &sql, &args).await;
    assert!(
        plan.contains("Index Scan using messages_pkey"),
        "not read through the key:\n{plan}"
    );
    // Sensay's page, an agent's, of two roles: the same rule.
    let window = confab_core::seek::SeqWindow::new(None, 50);
    let roles = [confab_core::Role::User, confab_core::Role::Assistant];
    let sql = confab_store::postgres_sensay_window_sql(Some("agent"), window, &roles);
    let limit = if sql.contains("LIMIT $") { ", 50" } else { "" };
    let args = [0, 1].map(|k| {
        format!(
            "'{t}', '{id}', '{t}', '{id}', 'agent', 'user', 'assistant'{limit}",
            id = ids[k]
        )
    });
    let plan = settled(&mut c, "sensay_page", &sql, &args).await;
    assert!(
        plan.contains("Index Scan") && plan.contains("messages_pkey"),
        "not read through the key:\n{plan}"
    );
    c.close().await.unwrap();
}
