//! The rows of first pages' hits kept between first searches of different words on PostgreSQL
//! (postgres/row_cache.rs): a page whose rows another word's page read is answered without
//! reading them again, and answers as a store that keeps nothing; a message updated by another
//! process (an operator's redaction by SQL) is shown as it is now, and so is a row written
//! under a rowid handed out again after a TRUNCATE; another tenant's rows stay kept. Counted
//! with the store's own metric, `confab_store_search_page_rows_total{from}`, through a
//! recorder of this test binary's own (one test here).

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
use searching::{first_snippets, open};
use testdb::TestDb;

/// The same page on a store of its own, which has kept nothing: the answer to compare with.
async fn fresh(url: &str, t: &TenantId, word: &str) -> Vec<(Uuid, String, f64)> {
    let store = open(url).await;
    let page = first_snippets(&store, t, word).await;
    store.close().await;
    page
}

#[tokio::test]
async fn first_pages_share_kept_rows_and_see_updates_made_elsewhere() {
    let Some(admin) = testdb::pg_admin_or_skip("rows kept between first pages") else {
        return;
    };
    let rows = Outcomes::install("confab_store_search_page_rows_total");
    let db = TestDb::new_pg(&admin).await;
    let store = open(&db.url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let other = store.ensure_tenant("other").await.unwrap();
    // Every message holds both words: the pages of `apple` and `banana` show the same rows.
    for i in 0..12 {
        let text = format!("apple banana cherry {}", "pear ".repeat(i % 4));
        searching::conversation(&store, &t, vec![text.clone()]).await;
        searching::conversation(&store, &other, vec![format!("{text} secret")]).await;
    }
    let marked = searching::conversation(&store, &t, vec!["apple banana cherry plum".into()]).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    // The word statistics, read once on a connection: first searches after it are batched.
    first_snippets(&store, &t, "nothing").await;

    let apple = first_snippets(&store, &t, "apple").await;
    assert_eq!(apple.len(), 13);
    let read = rows.count("statement");
    assert_eq!(read, 13, "apple's rows read");
    let banana = first_snippets(&store, &t, "banana").await;
    assert_eq!(
        rows.count("statement"),
        read,
        "banana's rows not read again"
    );
    assert_eq!(rows.count("cache"), 13);
    assert_eq!(banana, fresh(&db.url, &t, "banana").await);
    // The other tenant's pages: its own rows, never ours.
    let theirs = first_snippets(&store, &other, "banana").await;
    assert_eq!(theirs.len(), 12);
    assert!(theirs.iter().all(|h| h.1.contains("secret")), "{theirs:?}");

    // Another process redacts a message (its tokens left as they were), and the index is
    // brought up to date. `plum`, never searched, has no window kept: its first page's one
    // row, kept from `apple`'s page, is read again.
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (redacted,): (Uuid,) = sqlx::query_as(
        "UPDATE messages SET content = 'apple banana cherry redacted' \
         WHERE conversation_id = $1 RETURNING id",
    )
    .bind(marked)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    let read = rows.count("statement");
    let plum = first_snippets(&store, &t, "plum").await;
    assert_eq!(plum.len(), 1);
    assert_eq!(plum[0].0, redacted);
    assert!(plum[0].1.contains("redacted"), "{plum:?}");
    assert_eq!(rows.count("statement"), read + 1, "the row read again");
    assert_eq!(plum, fresh(&db.url, &t, "plum").await);
    // The other tenant's rows kept are not dropped for our change.
    let cached = rows.count("cache");
    assert_eq!(first_snippets(&store, &other, "apple").await.len(), 12);
    assert_eq!(
        rows.count("cache"),
        cached + 12,
        "the other tenant's rows kept"
    );

    // The table emptied and its rowids handed out again from 1 (migration 0012 logs a
    // TRUNCATE as a change of every tenant): a new message under a rowid whose row is kept
    // is shown as it is.
    let first: i64 = sqlx::query_scalar("SELECT min(rowid) FROM messages")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(first, 1);
    // `cherry`, never searched: its page keeps every row of ours again, rowid 1's among them.
    assert_eq!(first_snippets(&store, &t, "cherry").await.len(), 13);
    sqlx::query("TRUNCATE messages RESTART IDENTITY")
        .execute(&mut c)
        .await
        .unwrap();
    let again = searching::conversation(&store, &t, vec!["apple banana kiwi".into()]).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    let kiwi = first_snippets(&store, &t, "kiwi").await;
    assert_eq!(kiwi.len(), 1);
    assert_eq!(kiwi[0].1, "apple banana <mark>kiwi</mark>", "{again}");
    store.close().await;
    let _ = c.close().await;
}
