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

/// A search with filters past `read_timeout` is stopped by PostgreSQL itself, not left running there after
/// its request is gone: it fails with `ReadTimeout` while the lock still holds it, and nothing
/// of this database waits on the lock afterwards. The limit ends with the search: the store's
/// connections then wait on another lock for longer than it, and answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_past_its_time_limit_is_stopped_by_postgresql() {
    let Some(admin) =
        testdb::pg_admin_or_skip("a_search_past_its_time_limit_is_stopped_by_postgresql")
    else {
        return;
    };
    let db = TestDb::new_pg(&admin).await;
    let opts = StoreOptions {
        read_connections: 2,
        read_timeout: Some(Duration::from_millis(200)),
        ..StoreOptions::default()
    };
    let store = std::sync::Arc::new(Store::open(&db.url, opts).await.unwrap());
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut conv = NewConversation::new(Status::Active);
    conv.messages = vec![NewMessage {
        role: Some(Role::User),
        content: "walrus".into(),
        ..NewMessage::default()
    }];
    let id = store
        .create_conversation(&t, conv, None)
        .await
        .unwrap()
        .conversation()
        .id;
    // Filtered: the searches that can run long, and the ones the limit is set for.
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

    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(20), store.search(&t, &req))
        .await
        .expect("the search still waits on the lock after 20 s");
    assert!(
        matches!(out, Err(confab_store::StoreError::ReadTimeout)),
        "{out:?} after {:?}",
        started.elapsed()
    );
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&mut lock)
    .await
    .unwrap();
    assert_eq!(
        waiting, 0,
        "a statement of the search still waits in PostgreSQL"
    );
    sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
    assert_eq!(store.search(&t, &req).await.unwrap().hits.len(), 1);

    // Both connections wait 600 ms on a lock of `conversations`: past the search's limit,
    // which must not have stayed on either.
    sqlx::raw_sql("BEGIN; LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let gets: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get_conversation(&t, id).await.map(|c| c.id) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
    for g in gets {
        assert_eq!(g.await.unwrap().unwrap(), id);
    }
    let _ = lock.close().await;
    std::sync::Arc::into_inner(store).unwrap().close().await;
}
