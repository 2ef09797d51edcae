//! PostgreSQL only (skipped, saying so, without `CONFAB_TEST_POSTGRES_URL`): the schema is
//! distribution-ready, and the store refuses a server that may lose committed writes.

use confab_store::{Store, StoreError, StoreOptions};
use sqlx::Connection;

#[path = "support/testdb.rs"]
mod testdb;
use testdb::{TestDb, pg_admin_or_skip};

/// `tenants` is the tenant registry itself (its `id` is the tenant id); on Citus it is a
/// reference table, copied to every node, so the distribution rules do not apply to it.
/// `search_segments` marks ranges of rowids of every tenant's messages at once (migration
/// 0009); on Citus its triggers cannot run and are dropped, and it stays empty.
const REFERENCE_TABLES: &[&str] = &["tenants", "search_segments"];

/// Every primary key or unique index that does not lead with tenant_id, and every foreign key
/// that does not include it, in the public schema.
async fn violations(c: &mut sqlx::PgConnection) -> Vec<String> {
    let keys: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text, x.relname::text, a.attname::text FROM pg_index i \
         JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE n.nspname = 'public' AND (i.indisprimary OR i.indisunique) \
         AND t.relname NOT LIKE '\\_sqlx%' ORDER BY 1, 2",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    let fks: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT t.relname::text, k.conname::text, \
         ARRAY(SELECT a.attname::text FROM unnest(k.conkey) AS u(n) \
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n) \
         FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND k.contype = 'f' ORDER BY 1, 2",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap();
    let mut out = Vec::new();
    for (table, index, first) in keys {
        if !REFERENCE_TABLES.contains(&table.as_str()) && first != "tenant_id" {
            out.push(format!("{table}: unique index {index} leads with {first}"));
        }
    }
    for (table, fk, cols) in fks {
        if !REFERENCE_TABLES.contains(&table.as_str()) && !cols.iter().any(|c| c == "tenant_id") {
            out.push(format!(
                "{table}: foreign key {fk} on {cols:?} lacks tenant_id"
            ));
        }
    }
    out
}

#[tokio::test]
async fn every_key_leads_with_tenant_and_every_foreign_key_includes_it() {
    let Some(admin) = pg_admin_or_skip("the PostgreSQL catalog check") else {
        return;
    };
    let db = TestDb::new_pg(&admin).await;
    Store::open(&db.url, StoreOptions::default())
        .await
        .unwrap()
        .close()
        .await;
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '\\_sqlx%'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(tables, 18, "the check sees the whole schema");
    assert_eq!(violations(&mut c).await, Vec::<String>::new());

    // The check itself can fail: a table breaking each rule is reported.
    sqlx::raw_sql(
        "CREATE TABLE bad (tenant_id uuid NOT NULL, id uuid NOT NULL, conv uuid, PRIMARY KEY (id, tenant_id)); \
         CREATE UNIQUE INDEX bad_id ON bad (id); \
         CREATE TABLE bad_child (tenant_id uuid NOT NULL, bad_id uuid REFERENCES bad (id), PRIMARY KEY (tenant_id))",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let v = violations(&mut c).await;
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(
        v.iter().any(|s| s.contains("bad_pkey leads with id")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|s| s.contains("bad_id leads with id")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|s| s.contains("bad_child: foreign key")),
        "{v:?}"
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn refuses_to_start_without_synchronous_commit() {
    let Some(admin) = pg_admin_or_skip("the PostgreSQL durability check") else {
        return;
    };
    let db = TestDb::new_pg(&admin).await;
    let name = db.pg_name().unwrap().to_owned();
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} SET synchronous_commit = off"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    c.close().await.unwrap();
    match Store::open(&db.url, StoreOptions::default()).await {
        Err(StoreError::Config(m)) => assert!(m.contains("synchronous_commit=off"), "{m}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a database that acknowledges commits it may lose"),
    }
    // fsync is server-wide (it cannot be switched per database); on this server it is on, and
    // the same check reads it.
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(fsync, "on");
    c.close().await.unwrap();
}

/// A long message's search tokens are compressed with lz4, where the server has it (migration
/// 0008): searches decompress them for every candidate, several times faster than pglz.
#[tokio::test]
async fn a_long_message_s_search_tokens_are_compressed_with_lz4() {
    let Some(admin) = pg_admin_or_skip("the PostgreSQL compression check") else {
        return;
    };
    let db = TestDb::new_pg(&admin).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut conv = confab_core::input::NewConversation::new(confab_core::Status::Active);
    // Some 600 distinct words: a row well past the 2 kB past which PostgreSQL compresses.
    conv.messages = vec![confab_core::input::NewMessage {
        role: Some(confab_core::Role::Assistant),
        content: (0..600).map(|i| format!("word{i} ")).collect(),
        ..Default::default()
    }];
    store.create_conversation(&t, conv, None).await.unwrap();
    store.close().await;
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // Without lz4 (older than 14, or built without it) the migration leaves pglz, as before.
    let lz4 = sqlx::raw_sql("CREATE TEMPORARY TABLE probe (v text COMPRESSION lz4)")
        .execute(&mut c)
        .await
        .is_ok();
    let method: Option<String> =
        sqlx::query_scalar("SELECT pg_column_compression(fts) FROM messages")
            .fetch_one(&mut c)
            .await
            .unwrap();
    if lz4 {
        assert_eq!(method.as_deref(), Some("lz4"));
    } else {
        eprintln!("this PostgreSQL has no lz4: the tokens stay {method:?}");
    }
    let _ = c.close().await;
}
