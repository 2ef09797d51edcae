//! PostgreSQL: reads hand their connection on to the next read untested (postgres/warm.rs).
//! What that must not cost: a read dropped mid-statement leaves nothing broken or held, reads
//! that never pause still leave connections for the appends' workers, and a closing store
//! waits for none of the kept connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use confab_core::Status;
use confab_core::input::{AppendMessages, NewConversation, NewMessage};
use confab_store::{MessageQuery, Store, StoreOptions, TenantId};
use sqlx::Connection;
use uuid::Uuid;

#[path = "support/testdb.rs"]
mod testdb;
use testdb::TestDb;

/// A store on a database of its own with pools of 4 (the main one, and the reads' own), and
/// one conversation of `n` messages; `None`: no PostgreSQL, the test skipped.
async fn store_with(test: &str, n: usize) -> Option<(TestDb, Arc<Store>, TenantId, Uuid)> {
    let admin = testdb::pg_admin_or_skip(test)?;
    let db = TestDb::new_pg(&admin).await;
    let opts = StoreOptions {
        read_connections: 4,
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open(&db.url, opts).await.unwrap());
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut conv = NewConversation::new(Status::Active);
    conv.messages = (0..n).map(|i| message(&format!("turn {i}"))).collect();
    let id = store
        .create_conversation(&t, conv, None)
        .await
        .unwrap()
        .conversation()
        .id;
    Some((db, store, t, id))
}

fn message(text: &str) -> NewMessage {
    NewMessage {
        role: Some(confab_core::Role::User),
        content: text.to_owned(),
        ..NewMessage::default()
    }
}

fn page() -> MessageQuery {
    MessageQuery {
        limit: Some(50),
        ..MessageQuery::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_dropped_mid_statement_leave_nothing_broken_or_held() {
    let test = "reads_dropped_mid_statement_leave_nothing_broken_or_held";
    let Some((db, store, t, id)) = store_with(test, 7).await else {
        return;
    };
    // Warm the kept connections first, so the dropped reads run on kept ones.
    for _ in 0..4 {
        assert_eq!(store.list_messages(&t, id, &page()).await.unwrap().len(), 7);
    }
    // Every page read now waits on the lock, mid-statement, and is dropped there: more than
    // the reads' pool holds, so a connection or a turn kept by a dropped read would show.
    let mut lock = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    for _ in 0..10 {
        let read = tokio::time::timeout(
            Duration::from_millis(100),
            store.list_messages(&t, id, &page()),
        )
        .await;
        assert!(read.is_err(), "a read went past the lock");
    }
    sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
    let _ = lock.close().await;
    // Many reads at once, each answered in full and in order.
    let reads: Vec<_> = (0..40)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.list_messages(&t, id, &page()).await })
        })
        .collect();
    for r in reads {
        let rows = tokio::time::timeout(Duration::from_secs(20), r)
            .await
            .expect("a read found no connection after the dropped ones")
            .unwrap()
            .unwrap();
        let texts: Vec<_> = rows.iter().map(|m| m.content.as_str()).collect();
        let want: Vec<_> = (0..7).map(|i| format!("turn {i}")).collect();
        assert_eq!(texts, want);
    }
    // A read that fails (another tenant's conversation is a 404) gives its connection back too.
    let other = store.ensure_tenant("globex").await.unwrap();
    // More failed reads than the pool has connections: one that kept its turn would leave a
    // later read waiting for ever, so each is bounded and a hang fails with this message.
    let bounded = Duration::from_secs(20);
    for _ in 0..10 {
        let read = tokio::time::timeout(bounded, store.list_messages(&other, id, &page()))
            .await
            .expect("a read waited after failed reads: a failed read kept its connection");
        assert!(matches!(read, Err(confab_store::StoreError::NotFound)));
    }
    let after = tokio::time::timeout(bounded, store.list_messages(&t, id, &page()))
        .await
        .expect("a read waited after failed reads: a failed read kept its connection");
    assert_eq!(after.unwrap().len(), 7);
    close_promptly(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_without_a_pause_leave_connections_for_the_appends() {
    let test = "reads_without_a_pause_leave_connections_for_the_appends";
    let Some((_db, store, t, id)) = store_with(test, 3).await else {
        return;
    };
    // Sixteen readers that never pause: each goes from one read straight to the next on the
    // connection it keeps, so were those the main pool's, the appends' workers would wait for
    // the readers to stop (they did, when reads kept connections of the main pool).
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    store.list_messages(&t, id, &page()).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let appends = async {
        for i in 0..20 {
            let input = AppendMessages {
                messages: vec![message(&format!("appended {i}"))],
                ..AppendMessages::default()
            };
            store.append_messages(&t, id, input, None).await.unwrap();
        }
    };
    let appended = tokio::time::timeout(Duration::from_secs(20), appends).await;
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    appended.expect("the appends found no connection while reads ran");
    assert!(reads > 0);
    let all = MessageQuery::default();
    assert_eq!(store.list_messages(&t, id, &all).await.unwrap().len(), 23);
    close_promptly(store).await;
}

/// Closes the store; its pool waits for every connection, kept ones included.
async fn close_promptly(store: Arc<Store>) {
    let store = Arc::into_inner(store).expect("no other owner");
    tokio::time::timeout(Duration::from_secs(20), store.close())
        .await
        .expect("closing waited on a kept connection");
}
