//! Backup while writes go on, then restore into an empty database: the copy is consistent and
//! searchable.

use confab_core::input::{NewConversation, NewMessage};
use confab_core::{Role, Status};
use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, StoreOptions};

#[path = "support/testdb.rs"]
mod testdb;
use testdb::TestDb;

fn conv(i: usize) -> NewConversation {
    let mut c = NewConversation::new(Status::Active);
    c.messages = (0..3)
        .map(|s| NewMessage {
            role: Some(Role::User),
            content: format!("backup probe {i} {s}"),
            ..NewMessage::default()
        })
        .collect();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_writes_then_restore() {
    let dir = tempfile::tempdir().unwrap();
    let live = TestDb::new(&dir.path().join("live.db")).await;
    let store = Store::open(&live.url, StoreOptions::default())
        .await
        .unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
    for i in 0..50 {
        store.create_conversation(&t, conv(i), None).await.unwrap();
    }
    // Writers keep going while the snapshot is taken.
    let w = store.clone();
    let writer = tokio::spawn(async move {
        for i in 50..400 {
            w.create_conversation(&t, conv(i), None).await.unwrap();
        }
    });
    let file = dir.path().join("snap.db");
    store.backup(&file).await.unwrap();
    writer.await.unwrap();
    assert!(store.backup(&file).await.is_err(), "never overwrites");
    store.close().await;

    let restored_db = TestDb::new(&dir.path().join("restored.db")).await;
    let target = restored_db.url.clone();
    let restored = confab_store::restore(&file, &target, StoreOptions::default())
        .await
        .unwrap();
    let t2 = restored.find_tenant("acme").await.unwrap().unwrap();
    let summary = restored
        .summary(&t2, confab_core::timefmt::now())
        .await
        .unwrap();
    assert!(summary.conversations >= 50, "{}", summary.conversations);
    // Consistent: whole conversations only.
    assert_eq!(summary.messages, summary.conversations * 3);
    let page = restored
        .search(
            &t2,
            &SearchRequest {
                query: confab_core::search::parse_query("probe").unwrap(),
                filter: SearchFilter::default(),
                sort: SearchSort::Recent,
                limit: 100,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.hits.len(), 100);
    restored.close().await;

    // Restoring over a database that holds data is refused.
    let again = confab_store::restore(&file, &target, StoreOptions::default()).await;
    assert!(again.is_err());
}
