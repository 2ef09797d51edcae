//! PostgreSQL: searches that read rows run on a pool of their own, however many run at once,
//! so the other reads still find a connection (postgres/mod.rs, `open`). Searches
//! are made to wait as long as the test likes by a lock on `messages` that another connection
//! holds; a conversation's lookup does not read `messages`, so only a free connection stands
//! between it and its answer. And one of them past its time limit is stopped by PostgreSQL.

use std::time::Duration;

use confab_core::input::{NewConversation, NewMessage};
use confab_core::search::parse_query;
use confab_core::{Role, Status};
use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, StoreOptions, TenantId};
use sqlx::Connection;

#[path = "support/testdb.rs"]
mod testdb;
use testdb::{TestDb, waiting_on_locks};

/// A store on a PostgreSQL database of its own (or `None`, the test skipped), with one
/// conversation of `n` messages, `walrus 0`, `walrus 1`…, the even ones the user's.
async fn walruses(
    test: &str,
    opts: StoreOptions,
    n: usize,
) -> Option<(TestDb, std::sync::Arc<Store>, TenantId, uuid::Uuid)> {
    let admin = testdb::pg_admin_or_skip(test)?;
    let db = TestDb::new_pg(&admin).await;
    // No postings builder: each of its rounds reads the newest rowid of `messages`, and would
    // wait on the tests' lock of it beside the searches they count (one more waiter whenever a
    // round fell in the count's 300 ms).
    let opts = StoreOptions {
        search_merge_idle: None,
        ..opts
    };
    let store = std::sync::Arc::new(Store::open(&db.url, opts).await.unwrap());
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut conv = NewConversation::new(Status::Active);
    conv.messages = (0..n)
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
    Some((db, store, t, id))
}

/// `walrus`, the user's messages only: a filtered search, never answered from a kept window.
fn users_walruses() -> SearchRequest {
    SearchRequest {
        query: parse_query("walrus").unwrap(),
        filter: SearchFilter {
            role: Some(Role::User),
            ..SearchFilter::default()
        },
        sort: SearchSort::Relevance,
        limit: 20,
        cursor: None,
    }
}

/// `n` searches of [`users_walruses`] at once, each answering its count of hits.
fn spawn_searches(
    store: &std::sync::Arc<Store>,
    t: TenantId,
    n: usize,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..n)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .search(&t, &users_walruses())
                    .await
                    .unwrap()
                    .hits
                    .len()
            })
        })
        .collect()
}

/// Holds an ACCESS EXCLUSIVE lock on `table` until `COMMIT` on the answer.
async fn locked(url: &str, table: &str) -> sqlx::PgConnection {
    let mut lock = sqlx::PgConnection::connect(url).await.unwrap();
    let sql = format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut lock)
        .await
        .unwrap();
    lock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_that_read_rows_leave_connections_to_the_rest() {
    let opts = StoreOptions {
        read_connections: 4,
        ..StoreOptions::default()
    };
    let test = "searches_that_read_rows_leave_connections_to_the_rest";
    let Some((db, store, t, id)) = walruses(test, opts, 5).await else {
        return;
    };
    let mut lock = locked(&db.url, "messages").await;
    // Eight filtered searches, each stuck on the lock once it has a connection.
    let searches = spawn_searches(&store, t, 8);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Were the searches on the main pool, all four of its connections would be theirs, and
    // this would wait for the lock's end (the pool's own wait is 30 s; this guard only keeps
    // a failure from hanging the suite).
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

/// Searches that run past their budget take turns (postgres/search.rs, `search`): a few at
/// once, half the cores by default, wait in PostgreSQL; the others wait for a turn holding no
/// connection and no core of PostgreSQL's. Filtered searches stuck on a lock run past the
/// budget; more of them than turns, on more connections than turns. Once the lock goes, every
/// one answers. With no time limit set (`read_timeout: None`), as with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_searches_take_turns() {
    // The store's rule (long_reads.rs), so that the test tells turns from connections on
    // any machine.
    let turns = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
    take_turns("long_searches_take_turns", None, turns).await;
}

/// `StoreOptions::long_searches` sets how many turns there are (`confab serve
/// --long-searches`, for a PostgreSQL on a machine of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_searches_take_as_many_turns_as_set() {
    take_turns("long_searches_take_as_many_turns_as_set", Some(3), 3).await;
}

/// Runs twice `turns` and four more searches held by a lock on a store of `long_searches`,
/// and checks that `turns` of them wait in PostgreSQL at once.
async fn take_turns(test: &str, long_searches: Option<usize>, turns: usize) {
    let opts = StoreOptions {
        read_connections: 4 * turns as u32 + 4,
        long_searches,
        ..StoreOptions::default()
    };
    let Some((db, store, t, _)) = walruses(test, opts, 5).await else {
        return;
    };
    let mut lock = locked(&db.url, "messages").await;
    let searches = spawn_searches(&store, t, 2 * turns + 4);
    // On a connection of its own each time: a transaction sees one snapshot of the activity.
    let waiting = || async {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let n = waiting_on_locks(&mut c).await;
        let _ = c.close().await;
        n
    };
    // Once every search has been stopped past its budget (50 ms; later on a loaded machine,
    // where connections take their time to open), as many as there are turns wait in
    // PostgreSQL, and stay so: sampled until six samples in a row, over 300 ms, say so.
    // Without the turns, every connection of the searches would (four or more).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (mut steady, mut seen) = (0, Vec::new());
    while steady < 6 {
        let n = waiting().await;
        seen.push(n);
        steady = if n == turns as i64 { steady + 1 } else { 0 };
        assert!(
            std::time::Instant::now() < deadline,
            "searches in PostgreSQL at once, sampled every 50 ms: {seen:?}, expected {turns}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
    for s in searches {
        assert_eq!(s.await.unwrap(), 3);
    }
    let _ = lock.close().await;
    std::sync::Arc::into_inner(store).unwrap().close().await;
}

/// A search with filters (or newest first) past `read_timeout` is stopped by PostgreSQL
/// itself, not left running there after its request is gone: it fails with `ReadTimeout` while
/// the lock still holds it, and nothing of this database waits on the lock afterwards. The
/// limit ends with the search: the store's connections then wait on a lock for longer than it,
/// and answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_past_its_time_limit_is_stopped_by_postgresql() {
    let opts = StoreOptions {
        read_connections: 2,
        read_timeout: Some(Duration::from_millis(200)),
        // No builder: its own statements on `messages` (a build of the newest search segment
        // at its first round) would wait on the lock too, and they are not the search's.
        search_merge_idle: None,
        ..StoreOptions::default()
    };
    let test = "a_search_past_its_time_limit_is_stopped_by_postgresql";
    let Some((db, store, t, id)) = walruses(test, opts, 1).await else {
        return;
    };
    let mut lock = locked(&db.url, "messages").await;
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(20), store.search(&t, &users_walruses()))
        .await
        .expect("the search still waits on the lock after 20 s");
    assert!(
        matches!(out, Err(confab_store::StoreError::ReadTimeout)),
        "{out:?} after {:?}",
        started.elapsed()
    );
    // Newest first, unfiltered: limited too (a word read through the index has every match
    // read and sorted).
    let recent = SearchRequest {
        filter: SearchFilter::default(),
        sort: SearchSort::Recent,
        ..users_walruses()
    };
    let out = tokio::time::timeout(Duration::from_secs(20), store.search(&t, &recent))
        .await
        .expect("the newest-first search still waits on the lock after 20 s");
    assert!(
        matches!(out, Err(confab_store::StoreError::ReadTimeout)),
        "{out:?}"
    );
    let waiting = waiting_on_locks(&mut lock).await;
    assert_eq!(
        waiting, 0,
        "a statement of the search still waits in PostgreSQL"
    );
    sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
    let _ = lock.close().await;
    let found = store.search(&t, &users_walruses()).await.unwrap();
    assert_eq!(found.hits.len(), 1);

    // The limit ends with its search: an unfiltered search (on the searches' one connection,
    // which had the limit) and both connections of the main pool wait 600 ms on a lock of
    // `messages` and `conversations`, past it, and answer.
    let mut lock = locked(&db.url, "messages, conversations").await;
    let unfiltered = SearchRequest {
        filter: SearchFilter::default(),
        ..users_walruses()
    };
    let search = {
        let store = store.clone();
        tokio::spawn(async move { store.search(&t, &unfiltered).await.map(|p| p.hits.len()) })
    };
    let gets: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.get_conversation(&t, id).await.map(|c| c.id) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
    assert_eq!(search.await.unwrap().unwrap(), 1);
    for g in gets {
        assert_eq!(g.await.unwrap().unwrap(), id);
    }
    let _ = lock.close().await;
    std::sync::Arc::into_inner(store).unwrap().close().await;
}
