//! Many first searches of one query at once read its window once (postgres/flights.rs): the
//! others wait for it and answer from the window kept. Counted with the store's own metric,
//! `confab_store_search_windows_total{outcome}`, through a recorder of this test binary's own
//! (one test here, so no other search adds to the counts). PostgreSQL only; SQLite's reads are
//! a few hundred microseconds and not led.

use std::sync::Arc;

use confab_core::Status;
use confab_core::input::{NewConversation, NewMessage};
use confab_core::search::parse_query;
use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, StoreOptions};

#[path = "support/counts.rs"]
mod counts;
#[path = "support/testdb.rs"]
mod testdb;
use counts::Outcomes;
use testdb::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_searches_read_the_window_once() {
    let Some(admin) = testdb::pg_admin_or_skip("concurrent_first_searches_read_the_window_once")
    else {
        return;
    };
    let outcomes = Outcomes::install("confab_store_search_windows_total");
    let db = TestDb::new_pg(&admin).await;
    let store = Arc::new(Store::open(&db.url, StoreOptions::default()).await.unwrap());
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut conv = NewConversation::new(Status::Active);
    conv.messages = (0..300)
        .map(|i| NewMessage {
            role: Some(confab_core::Role::User),
            content: format!("walrus {} number {i}", "tusk ".repeat(i % 5)),
            ..NewMessage::default()
        })
        .collect();
    store.create_conversation(&t, conv, None).await.unwrap();
    let request = |q: &str| SearchRequest {
        query: parse_query(q).unwrap(),
        filter: SearchFilter::default(),
        sort: SearchSort::Relevance,
        limit: 20,
        cursor: None,
    };
    let count = |o: &str| outcomes.count(o);
    for (round, q) in ["walrus", "tusk"].into_iter().enumerate() {
        let searches: Vec<_> = (0..32)
            .map(|_| {
                let (store, req) = (store.clone(), request(q));
                tokio::spawn(async move { store.search(&t, &req).await.unwrap() })
            })
            .collect();
        let mut pages = Vec::new();
        for s in searches {
            pages.push(s.await.unwrap());
        }
        let ids = |p: &confab_store::SearchPage| -> Vec<_> {
            p.hits.iter().map(|h| (h.message_id, h.score)).collect()
        };
        assert_eq!(pages[0].hits.len(), 20, "`{q}`");
        assert!(pages.iter().all(|p| ids(p) == ids(&pages[0])), "`{q}`");
        let n = round as u64 + 1;
        assert_eq!(count("walked"), n, "`{q}`: one read of the window");
        assert_eq!(count("kept"), 31 * n, "`{q}`: the others answered from it");
    }
    Arc::into_inner(store).unwrap().close().await;
}
