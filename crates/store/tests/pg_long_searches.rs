//! PostgreSQL: searches that read rows hold at most half the pool's connections, however many
//! run at once, so the other reads still find one (postgres/search.rs, `search`). Searches
//! are made to wait as long as the test likes by a lock on `messages` that another connection
//! holds; a conversation's lookup does not read `messages`, so only a free connection stands
//! between it and its answer.

use std::time::Duration;

use confab_core::input::{NewConversation, NewMessage};
use confab_core::search::parse_query;
use confab_core::{Role, Status};
use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, StoreOptions};
use sqlx::Connection;

#[path = "support/testdb.rs"]
mod testdb;
use testdb::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_that_read_rows_leave_connections_to_the_rest() {
    let Some(admin) =
        testdb::pg_admin_or_skip("searches_that_read_rows_leave_connections_to_the_rest")
    else {
        return;
    };
    let db = TestDb::new_pg(&admin).await;
    let opts = StoreOptions {
        read_connections: 4,
        ..StoreOptions::default()
    };
    let store = std::sync::Arc::new(Store::open(&db.url, opts).await.unwrap());
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut conv = NewConversation::new(Status::Active);
    conv.messages = (0..5)
        .map(|i| NewMessage {
            role: Some(if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            }),
            content: format!("walrus {i}"),
            ..NewMessage::default()
        })
        .collect();
    let id = store
        .create_conversation(&t, conv, None)
        .await
        .unwrap()
        .conversation()
        .id;

    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    // Eight filtered searches (never from a kept window), each stuck on the lock once it has
    // a connection.
    let searches: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let req = SearchRequest {
                    query: parse_query("walrus").unwrap(),
                    filter: SearchFilter {
                        role: Some(Role::User),
                        ..SearchFilter::default()
                    },
                    sort: SearchSort::Relevance,
                    limit: 20,
                    cursor: None,
                };
                store.search(&t, &req).await.unwrap().hits.len()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Without the limit all four connections would be the searches', and this would wait for
    // the lock's end (the pool's own wait is 30 s; this guard only keeps a failure from
    // hanging the suite).
    let found = tokio::time::timeout(Duration::from_secs(20), store.get_conversation(&t, id))
        .await
        .expect("no connection was left for a conversation's lookup")
        .unwrap();
    assert_eq!(found.id, id);
    sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
    for s in searches {
        assert_eq!(s.await.unwrap(), 3);
    }
    let _ = lock.close().await;
    std::sync::Arc::into_inner(store).unwrap().close().await;
}
