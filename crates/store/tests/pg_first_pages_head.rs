//! A first page of one word on PostgreSQL whose window reaches the head (rows appended above
//! what the newest segment's postings cover) stays in the statements it shares with the other
//! first searches (postgres/first_batch.rs, postings.rs's `NEWEST_OF`), the head's matches read
//! from its rows' tokens there, and answers what the GIN index answers; a head over
//! `HEAD_MOST` rowids is read on a connection of the search's own, as before. Counted with the
//! store's own metric, `confab_store_search_first_pages_total{path}`, through a recorder of
//! this test binary's own (one test here, so no other search adds to the counts).

use confab_store::Store;
use confab_store::types::TenantId;
use sqlx::Connection;
use uuid::Uuid;

#[path = "support/counts.rs"]
mod counts;
#[path = "support/searching.rs"]
mod searching;
#[path = "support/testdb.rs"]
mod testdb;
use counts::Outcomes;
use searching::{open, request};
use testdb::{TestDb, next_rowid};

/// A conversation of `t` with a message of each text.
async fn conversation(store: &Store, t: &TenantId, texts: &[&str]) -> Uuid {
    searching::conversation(store, t, texts.iter().map(|s| s.to_string()).collect()).await
}

/// The first page of a ranked search of `word` for `t` on `store`: (conversation, seq, score).
async fn first_page(store: &Store, t: &TenantId, word: &str) -> Vec<(Uuid, i64, f64)> {
    let page = store.search(t, &request(word, None)).await.unwrap();
    page.hits
        .iter()
        .map(|h| (h.conversation_id, h.seq, h.score))
        .collect()
}

/// The same page on a store of its own, whose first search reads on its connection through the
/// GIN index whatever the postings cover: the answer to compare with.
async fn alone(url: &str, t: &TenantId, word: &str) -> Vec<(Uuid, i64, f64)> {
    let store = open(url).await;
    let page = first_page(&store, t, word).await;
    store.close().await;
    page
}

#[tokio::test]
async fn a_first_page_reaching_the_head_stays_in_the_batch_unless_the_head_is_large() {
    let Some(admin) = testdb::pg_admin_or_skip("first pages reaching the head") else {
        return;
    };
    let paths = Outcomes::install("confab_store_search_first_pages_total");
    let db = TestDb::new_pg(&admin).await;
    let store = open(&db.url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let other = store.ensure_tenant("other").await.unwrap();
    for i in 0..30 {
        let texts = [
            "apple banana",
            if i % 2 == 0 { "apple apple" } else { "banana" },
        ];
        conversation(&store, &t, &texts).await;
        // The other tenant's rows hold the same words: never the searched tenant's matches.
        conversation(&store, &other, &["apple banana cherry"]).await;
    }
    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    // The word statistics, read once on a connection: first searches after it are batched.
    first_page(&store, &t, "nothing").await;
    let (batched, by_itself) = (paths.count("batched"), paths.count("alone"));

    // The head: rows above what the segment covers, the other tenant's among them.
    let newer = conversation(&store, &t, &["apple apple apple", "banana cherry"]).await;
    conversation(&store, &other, &["apple banana cherry"]).await;
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (upto, max): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT upto FROM search_segments WHERE built), (SELECT max(rowid) FROM messages)",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert!(max > upto && max < 1_000, "a head of {} rows", max - upto);
    for word in ["apple", "banana", "cherry"] {
        let page = first_page(&store, &t, word).await;
        assert!(
            page.iter().any(|h| h.0 == newer),
            "{word}: the head's match"
        );
        assert_eq!(page, alone(&db.url, &t, word).await, "{word}");
    }
    assert_eq!(paths.count("batched"), batched + 3, "read in the batch");
    // The stores of `alone` read before any statistics, not through the batch: not counted.
    assert_eq!(paths.count("alone"), by_itself);

    // The head across a segment's end, the next segment's row written but not built (a build
    // under way): that segment is wholly in the head, and read there.
    next_rowid(&mut c, 32_766).await;
    let last = conversation(&store, &t, &["elder"]).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    next_rowid(&mut c, 32_771).await;
    let first = conversation(&store, &t, &["elder fig"]).await;
    sqlx::query("INSERT INTO search_segments (seg, upto) VALUES (1, 32771)")
        .execute(&mut c)
        .await
        .unwrap();
    let page = first_page(&store, &t, "elder").await;
    let found: Vec<Uuid> = page.iter().map(|h| h.0).collect();
    assert_eq!(found, vec![first, last], "newest first");
    assert_eq!(page, alone(&db.url, &t, "elder").await);
    assert_eq!(paths.count("batched"), batched + 4, "a segment in the head");

    // A head of more rowids than the batch reads: the search reads it on a connection.
    next_rowid(&mut c, 32_771 + 3_000).await;
    let far = conversation(&store, &t, &["durian"]).await;
    let page = first_page(&store, &t, "durian").await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].0, far);
    assert_eq!(paths.count("alone"), by_itself + 1, "a large head");
    assert_eq!(paths.count("batched"), batched + 4);
    store.close().await;
    let _ = c.close().await;
}
