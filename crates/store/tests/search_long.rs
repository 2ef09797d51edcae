//! A message at the content limit (1 MiB) is indexed to its last word, on both backends.

use confab_core::input::{NewConversation, NewMessage};
use confab_core::{Role, Status};
use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, StoreOptions};

#[path = "support/testdb.rs"]
mod testdb;
use testdb::TestDb;

#[tokio::test]
async fn the_last_word_of_a_megabyte_message_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("long.db")).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut content = String::new();
    let mut i = 0u64;
    while content.len() < 1024 * 1024 - 64 {
        // Repeated words and a few thousand distinct ones, as long real text has.
        content.push_str(&format!("alpha beta w{} ", i % 5000));
        i += 1;
    }
    content.push_str("zyxwvut");
    assert!(content.len() <= 1024 * 1024);
    let mut c = NewConversation::new(Status::Active);
    c.messages = vec![NewMessage {
        role: Some(Role::User),
        content,
        ..NewMessage::default()
    }];
    store.create_conversation(&t, c, None).await.unwrap();
    for (q, n) in [("zyxwvut", 1), ("w4999", 1), ("alpha", 1), ("nothere", 0)] {
        let page = store
            .search(
                &t,
                &SearchRequest {
                    query: confab_core::search::parse_query(q).unwrap(),
                    filter: SearchFilter::default(),
                    sort: SearchSort::Relevance,
                    limit: 10,
                    cursor: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(page.hits.len(), n, "{q}");
    }
    store.close().await;
}
