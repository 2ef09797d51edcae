//! Messages written by concurrent requests (committed together by SQLite's group-commit writer,
//! which indexes a batch's messages just before COMMIT) are each found exactly once; requests
//! that fail inside a batch, and conversations deleted right after being written, leave
//! nothing in the index. Runs on both backends.

use std::sync::Arc;

use confab_core::input::{AppendMessages, NewConversation, NewMessage};
use confab_core::{Role, Status};
use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, StoreOptions, TenantId};

#[path = "support/testdb.rs"]
mod testdb;
use testdb::TestDb;

fn msg(text: String) -> NewMessage {
    NewMessage {
        role: Some(Role::User),
        content: text,
        ..NewMessage::default()
    }
}

async fn hits(store: &Store, t: &TenantId, q: &str) -> usize {
    store
        .search(
            t,
            &SearchRequest {
                query: confab_core::search::parse_query(q).unwrap(),
                filter: SearchFilter::default(),
                sort: SearchSort::Recent,
                limit: 100,
                cursor: None,
            },
        )
        .await
        .unwrap()
        .hits
        .len()
}

#[tokio::test]
async fn concurrent_writes_are_each_indexed_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("batches.db")).await;
    let store = Arc::new(Store::open(&db.url, StoreOptions::default()).await.unwrap());
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..8 {
        let mut c = NewConversation::new(Status::Active);
        c.messages = vec![msg(format!("opening{i} shared"))];
        ids.push(
            store
                .create_conversation(&t, c, None)
                .await
                .unwrap()
                .conversation()
                .id,
        );
    }
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (store, id) = (store.clone(), ids[i % ids.len()]);
        tasks.push(tokio::spawn(async move {
            // Every fifth request fails inside its batch (no such conversation).
            let target = if i % 5 == 4 { uuid::Uuid::now_v7() } else { id };
            let input = AppendMessages {
                messages: vec![msg(format!("word{i} shared"))],
                status: None,
                metadata: None,
            };
            (
                i,
                store.append_messages(&t, target, input, None).await.is_ok(),
            )
        }));
    }
    // A conversation created and deleted while the appends are in flight.
    let mut doomed = NewConversation::new(Status::Active);
    doomed.messages = vec![msg("doomedword shared".into())];
    let d = store
        .create_conversation(&t, doomed, None)
        .await
        .unwrap()
        .conversation()
        .id;
    store.delete_conversation(&t, d).await.unwrap();
    for task in tasks {
        let (i, ok) = task.await.unwrap();
        assert_eq!(ok, i % 5 != 4, "request {i}");
        let want = usize::from(ok);
        assert_eq!(hits(&store, &t, &format!("word{i}")).await, want, "word{i}");
    }
    assert_eq!(hits(&store, &t, "doomedword").await, 0);
    for i in 0..8 {
        assert_eq!(hits(&store, &t, &format!("opening{i}")).await, 1);
    }
    store.close().await;
}
