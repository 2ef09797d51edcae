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

/// The plan of `EXECUTE name(args)`, as text, one line a node.
async fn explain(c: &mut sqlx::PgConnection, name: &str, args: usize) -> String {
    let empty = vec!["'{}'"; args].join(", ");
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (VERBOSE) EXECUTE {name}({empty})"
    )))
    .fetch_all(&mut *c)
    .await
    .unwrap();
    rows.iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_append_batch_plans_once_and_finds_rows_by_key() {
    if pg_admin_or_skip("the PostgreSQL plan check").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("unused.db")).await;
    // Opening the store runs the migrations: the tables and indexes the plans use.
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let tenant = store.ensure_tenant("acme").await.unwrap();
    store.close().await;
    let [begin, lock, write] = confab_store::postgres_append_batch_sql();

    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // A generic plan is made for the table as its statistics describe it (and made again when
    // they change): on a table of a few hundred rows a scan of it all is cheaper than the ten
    // key lookups the planner assumes for an array, and no slower in fact. On a table of a
    // real size it must be lookups.
    sqlx::query(
        "INSERT INTO conversations (tenant_id, id, status, created_at, updated_at) \
         SELECT $1, gen_random_uuid(), 'active', n, n FROM generate_series(1, 20000) AS n",
    )
    .bind(tenant.as_uuid())
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::raw_sql("ANALYZE conversations, messages")
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(plan_cache_mode(&mut c).await, "auto");
    sqlx::raw_sql(sqlx::AssertSqlSafe(begin))
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(plan_cache_mode(&mut c).await, "force_generic_plan");
    for (name, sql) in [("lock_rows", lock), ("write_batch", write)] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE {name} AS {sql}")))
            .execute(&mut c)
            .await
            .unwrap();
    }
    // A generic plan keeps its parameters, where a custom plan shows the values given.
    let locking = explain(&mut c, "lock_rows", 2).await;
    assert!(
        locking.contains("unnest($1), unnest($2)"),
        "not a generic plan:\n{locking}"
    );
    let writing = explain(&mut c, "write_batch", 27).await;
    assert!(
        writing.contains("unnest($18), unnest($19)"),
        "not a generic plan:\n{writing}"
    );
    for plan in [&locking, &writing] {
        assert!(
            plan.contains("Index Scan using conversations_pkey"),
            "conversations not found by key:\n{plan}"
        );
        assert!(
            !plan.lines().any(|l| l.contains("Seq Scan on")
                && (l.contains("conversations") || l.contains("messages"))),
            "a table scanned whole:\n{plan}"
        );
    }
    sqlx::raw_sql("COMMIT").execute(&mut c).await.unwrap();
    // SET LOCAL: nothing stays on the connection once the batch's transaction ends, so the
    // pool's other statements (searches, whose plans depend on the word) plan as before.
    assert_eq!(plan_cache_mode(&mut c).await, "auto");
    c.close().await.unwrap();
}
