//! PostgreSQL only (skipped, saying so, without `CONFAB_TEST_POSTGRES_URL`): the store merges
//! the full-text index's pending list (and summarizes the block ranges written) once the writes
//! pause, when it closes after an import,
//! and when it opens over one another process left, so searches stop reading it
//! (postgres/pending.rs).

use confab_core::export::ExportRecord;
use confab_core::input::{NewConversation, NewMessage};
use confab_core::{Conversation, Message, Role, Status};
use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, StoreOptions};
use sqlx::Connection;

#[path = "support/testdb.rs"]
mod testdb;
use testdb::{TestDb, pg_admin_or_skip};

/// Pages in `messages_fts`'s pending list (pgstattuple, part of PostgreSQL's distribution).
async fn pending_pages(c: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT pending_pages::bigint FROM pgstatginindex('messages_fts')")
        .fetch_one(&mut *c)
        .await
        .unwrap()
}

/// A store on a new database, a connection to that database able to read the pending list,
/// and a tenant.
async fn upkept(
    admin: &str,
) -> (
    TestDb,
    Store,
    sqlx::PgConnection,
    confab_store::types::TenantId,
) {
    let db = TestDb::new_pg(admin).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        .execute(&mut c)
        .await
        .unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
    (db, store, c, t)
}

/// The pending list's pages now, and once the upkeep has merged it (or after 30 s).
async fn merged(c: &mut sqlx::PgConnection) -> (i64, i64) {
    let before = pending_pages(c).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut now = before;
    while now > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        now = pending_pages(c).await;
    }
    (before, now)
}

/// A conversation of `n` user messages, each with four words of its own.
fn distinct_words(n: usize) -> NewConversation {
    let mut conv = NewConversation::new(Status::Active);
    conv.messages = (0..n)
        .map(|i| NewMessage {
            role: Some(Role::User),
            content: format!("w{i}a w{i}b w{i}c w{i}d common words here"),
            ..NewMessage::default()
        })
        .collect();
    conv
}

/// The same messages as an exported conversation, for an import.
fn exported(n: usize) -> ExportRecord {
    let id = uuid::Uuid::now_v7();
    let at = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    ExportRecord {
        conversation: Conversation {
            id,
            agent_id: None,
            user_id: None,
            title: None,
            status: Status::Active,
            source: None,
            model: None,
            company_name: None,
            added_to_memory: false,
            metadata: Default::default(),
            message_count: n as i64,
            analyze: false,
            created_at: at,
            updated_at: at,
            completed_at: None,
        },
        messages: distinct_words(n)
            .messages
            .into_iter()
            .enumerate()
            .map(|(seq, m)| Message {
                id: uuid::Uuid::now_v7(),
                conversation_id: id,
                seq: seq as i64,
                role: Role::User,
                content: m.content,
                created_at: at,
                model: None,
                tokens: None,
                prompt_tokens: None,
                completion_tokens: None,
                latency_ms: None,
                tool_calls: None,
                metadata: None,
                source: None,
                is_trigger: false,
            })
            .collect(),
    }
}

/// The hits of a first page of `q`, ranked.
async fn hits(store: &Store, t: &confab_store::types::TenantId, q: &str) -> usize {
    let req = SearchRequest {
        query: confab_core::search::parse_query(q).unwrap(),
        filter: SearchFilter::default(),
        sort: SearchSort::Relevance,
        limit: 10,
        cursor: None,
    };
    store.search(t, &req).await.unwrap().hits.len()
}

/// A VACUUM (or ANALYZE) holding `messages` leaves the block ranges unsummarized for a
/// round, and never holds up the upkeep: the pending list is merged all the same. Waiting
/// behind an autovacuum, the upkeep would have PostgreSQL cancel it, round after round.
#[tokio::test]
async fn the_upkeep_does_not_wait_behind_a_vacuum() {
    let Some(admin) = pg_admin_or_skip("the PostgreSQL upkeep check") else {
        return;
    };
    let (db, store, mut c, t) = upkept(&admin).await;
    // The lock VACUUM and ANALYZE take, held as long as this transaction is open.
    let mut vacuum = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE messages IN SHARE UPDATE EXCLUSIVE MODE")
        .execute(&mut vacuum)
        .await
        .unwrap();
    // Twice: a round stuck behind the lock after merging would merge nothing more.
    for round in 0..2 {
        store
            .create_conversation(&t, distinct_words(2000), None)
            .await
            .unwrap();
        let (before, now) = merged(&mut c).await;
        assert!(before > 0, "the write should leave a pending list");
        assert_eq!(now, 0, "write {round}: the upkeep waited behind the lock");
    }
    let _ = vacuum.close().await;
    let _ = c.close().await;
    drop(store);
}

#[tokio::test]
async fn the_search_index_pending_list_is_merged_when_writes_pause() {
    let Some(admin) = pg_admin_or_skip("the PostgreSQL upkeep check") else {
        return;
    };
    // `_db`, not `_`: the database lives as long as it does.
    let (_db, store, mut c, t) = upkept(&admin).await;

    // One write of 2,000 messages of distinct words: its index entries wait in the pending
    // list, which the upkeep merges only a round (a second) after a round that saw the write.
    store
        .create_conversation(&t, distinct_words(2000), None)
        .await
        .unwrap();
    let (before, now) = merged(&mut c).await;
    assert!(
        before > 0,
        "the write should leave entries in the pending list (else this test proves nothing)"
    );
    assert_eq!(now, 0, "pending list still {now} pages (was {before})");

    // The same round summarized the block ranges the write filled (migration 0007), so none is
    // left for PostgreSQL to summarize. The write filled several ranges of 16 pages (else this
    // proves nothing), and autovacuum, off here, did not.
    let pages: i64 = sqlx::query_scalar("SELECT pg_relation_size('messages') / 8192")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(pages >= 32, "the write filled only {pages} pages");
    let left: i32 = sqlx::query_scalar("SELECT brin_summarize_new_values('messages_band_summary')")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(left, 0, "block ranges left unsummarized");

    // Merged, the entries are found through the index proper.
    assert_eq!(hits(&store, &t, "w1234c").await, 1);
    let _ = c.close().await;
    drop(store);
}

/// A command-line import closes its store before the upkeep's next round would merge what it
/// left: closing merges it. And a store that opens merges a list another process left, though
/// it writes nothing itself (the upkeep merges only after this process's own writes), so a
/// server that only reads does not walk that list in every search until autovacuum comes.
#[tokio::test]
async fn an_import_leaves_no_pending_list_and_opening_merges_one_left_over() {
    let Some(admin) = pg_admin_or_skip("the PostgreSQL upkeep check") else {
        return;
    };
    let (db, store, mut c, t) = upkept(&admin).await;
    let out = store
        .import_records(&t, vec![exported(2000)])
        .await
        .unwrap();
    assert_eq!(out.messages, 2000);
    // The upkeep merges a second after the round that saw the write at the earliest.
    assert!(
        pending_pages(&mut c).await > 0,
        "the import should leave entries in the pending list (else this test proves nothing)"
    );
    store.close().await;
    assert_eq!(
        pending_pages(&mut c).await,
        0,
        "closing after an import merges what it left"
    );

    // Another process's writes: every message's tokens rewritten by hand, each row's new
    // version filed in the pending list.
    sqlx::query("UPDATE messages SET fts = fts || 'other'::tsvector")
        .execute(&mut c)
        .await
        .unwrap();
    let left = pending_pages(&mut c).await;
    assert!(
        left > 0,
        "the update should leave entries in the pending list"
    );
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    assert_eq!(
        pending_pages(&mut c).await,
        0,
        "opening merges the {left} pages another process left"
    );
    assert_eq!(hits(&store, &t, "w1234c").await, 1);
    store.close().await;
    let _ = c.close().await;
}

/// A deployment whose role was granted the tables but does not own them (migrations run by
/// another): the merge is refused (SQLSTATE 42501), and the store keeps writing, searching and
/// counting, with the pending list left to autovacuum.
#[tokio::test]
async fn a_role_that_does_not_own_the_index_keeps_writing_and_searching() {
    let Some(admin) = pg_admin_or_skip("the PostgreSQL upkeep check") else {
        return;
    };
    let db = TestDb::new_pg(&admin).await;
    // The owner migrates.
    Store::open(&db.url, StoreOptions::default())
        .await
        .unwrap()
        .close()
        .await;
    let role = format!("confab_r_{}", uuid::Uuid::now_v7().simple());
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT USAGE, CREATE ON SCHEMA public TO {role}"),
        format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        "CREATE EXTENSION IF NOT EXISTS pgstattuple".to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let opts: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let url = sqlx::ConnectOptions::to_url_lossy(&opts.username(&role)).to_string();
    let store = Store::open(&url, StoreOptions::default()).await.unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
    store
        .create_conversation(&t, distinct_words(2000), None)
        .await
        .unwrap();
    assert!(pending_pages(&mut c).await > 0);
    // Several upkeep rounds (one a second), each of which would have merged the list.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert!(
        pending_pages(&mut c).await > 0,
        "the list was merged: the role owns the index after all, and this test proves nothing"
    );
    // Still writing, searching and counting.
    store
        .create_conversation(&t, distinct_words(10), None)
        .await
        .unwrap();
    assert_eq!(hits(&store, &t, "w1234c").await, 1);
    let summary = store
        .summary(&t, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!((summary.conversations, summary.messages), (2, 2010));
    store.close().await;
    let _ = c.close().await;
    drop(db);
    let mut a = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
        .execute(&mut a)
        .await
        .unwrap();
}
