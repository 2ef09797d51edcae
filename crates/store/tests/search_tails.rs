//! SQLite stores the window of every common word (sqlite/tails.rs), and a first search of such a
//! word starts from it instead of walking the index. Here, after every kind of change that
//! could make a stored window wrong (appends that outrank it, more appends than a window
//! holds, deleted conversations, a rebuilt index, another build), each search of a store
//! opened afresh (nothing in memory, so the stored windows answer) is compared, page by page,
//! with the same search on a copy of the database whose stored windows were removed.

use confab_store::{RANK_WINDOW, SearchPage, Store, TenantId};
use sqlx::Connection;

#[path = "support/searching.rs"]
mod searching;
use searching::*;

const CONVERSATIONS: usize = 120;
const PER_CONVERSATION: usize = 10;

/// Copies made so far (each its own file).
static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A word in every message (more than a window of it), one in a quarter (stored too), one in
/// few (walked), two words, a word with an exclusion, a prefix.
const QUERIES: [&str; 7] = [
    "alpha",
    "beta",
    "gamma",
    "filler",
    "alpha beta",
    "alpha -beta",
    "fill*",
];

/// Runs `sql` on the database at `url`, outside any store.
async fn raw(url: &str, sql: &str) {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
}

/// How many windows are stored (the build's mark not counted).
async fn stored(url: &str) -> i64 {
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM search_tails WHERE key <> ''")
        .fetch_one(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    n
}

/// Three pages of every query, on a store opened afresh on `url` and on a copy of its database
/// without stored windows: the same.
async fn same_as_walked(store: &Store, url: &str, dir: &std::path::Path, t: &TenantId, when: &str) {
    let copy = dir.join(format!(
        "walked-{}.db",
        COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    store.backup(&copy).await.unwrap();
    let copy_url = format!("sqlite://{}", copy.display());
    raw(&copy_url, "DELETE FROM search_tails").await;
    let fresh = open(url).await;
    let walked = open(&copy_url).await;
    for q in QUERIES {
        let mut cursor = None;
        for page in 0..3 {
            let read = fresh.search(t, &request(q, cursor)).await.unwrap();
            let first = walked.search(t, &request(q, cursor)).await.unwrap();
            assert_eq!(shown(&read), shown(&first), "{when}: `{q}`, page {page}");
            match read.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    fresh.close().await;
    walked.close().await;
}

#[tokio::test]
async fn a_first_search_read_from_a_stored_window_answers_what_a_walk_would() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tails.db").display());
    let store = open(&url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let other = store.ensure_tenant("other").await.unwrap();
    let mut convs = Vec::new();
    for c in 0..CONVERSATIONS {
        let texts = (0..PER_CONVERSATION).map(|j| text(c * PER_CONVERSATION + j));
        convs.push(conversation(&store, &t, texts.collect()).await);
    }
    assert!(CONVERSATIONS * PER_CONVERSATION > RANK_WINDOW as usize);
    // The other tenant has a stored window of the same word: it must never answer for this one.
    let theirs = (0..300).map(|i| format!("alpha alpha alpha {i}"));
    conversation(&store, &other, theirs.collect()).await;

    // alpha, beta and filler of the one tenant, alpha of the other: each in 256 messages or
    // more. gamma (13 messages) is walked.
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    assert_eq!(stored(&url).await, 4);
    same_as_walked(&store, &url, dir.path(), &t, "as built").await;
    same_as_walked(&store, &url, dir.path(), &other, "the other tenant").await;

    // Appends that outrank the stored windows, and some that do not match at all.
    append(
        &store,
        &t,
        convs[3],
        vec!["alpha alpha alpha alpha gamma".into()],
    )
    .await;
    append(
        &store,
        &t,
        convs[70],
        vec!["nothing to see".into(), "beta".into()],
    )
    .await;
    same_as_walked(&store, &url, dir.path(), &t, "after a few appends").await;

    // More new matches than a window holds.
    for &c in &convs[..12] {
        append(&store, &t, c, (0..100).map(|i| text(i + 7)).collect()).await;
    }
    same_as_walked(
        &store,
        &url,
        dir.path(),
        &t,
        "after a window's worth of appends",
    )
    .await;

    // A cursor taken before a build, followed after it: its snapshot lies below the stored
    // windows', which must not answer for it.
    let old = store.search(&t, &request("alpha", None)).await.unwrap();
    let cursor = old.next_cursor.expect("a second page");
    append(&store, &t, convs[5], vec!["alpha beta".into(); 3]).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    let fresh = open(&url).await;
    let read = fresh
        .search(&t, &request("alpha", Some(cursor)))
        .await
        .unwrap();
    fresh.close().await;
    let copy = dir.path().join("old-cursor.db");
    store.backup(&copy).await.unwrap();
    let copy_url = format!("sqlite://{}", copy.display());
    raw(&copy_url, "DELETE FROM search_tails").await;
    let walked = open(&copy_url).await;
    let first = walked
        .search(&t, &request("alpha", Some(cursor)))
        .await
        .unwrap();
    walked.close().await;
    assert_eq!(shown(&read), shown(&first), "an old cursor's page");

    // Deleted messages inside the stored windows, the best hits among them: a new epoch, in
    // which the stored windows are not used until built again.
    append(
        &store,
        &t,
        convs[30],
        vec!["alpha alpha alpha alpha alpha".into(); 5],
    )
    .await;
    append(&store, &t, convs[31], vec!["unrelated".into()]).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    store.delete_conversation(&t, convs[30]).await.unwrap();
    store.delete_conversation(&t, convs[11]).await.unwrap();
    same_as_walked(&store, &url, dir.path(), &t, "after deletes").await;
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    same_as_walked(&store, &url, dir.path(), &t, "built again after deletes").await;
    append(&store, &t, convs[20], vec!["alpha gamma".into()]).await;
    same_as_walked(&store, &url, dir.path(), &t, "after deletes then an append").await;

    // A rebuilt index: a new epoch too.
    store.rebuild_search_index().await.unwrap();
    same_as_walked(&store, &url, dir.path(), &t, "after the index was rebuilt").await;
    store.close().await;
}

/// The stored window is what answers: one rewritten by hand (a single match, in the build's
/// epoch and at its snapshot) is what a fresh store's search shows, until the next build; and
/// one of an older epoch is not used at all.
#[tokio::test]
async fn a_stored_window_is_what_a_first_search_reads() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("read.db").display());
    let store = open(&url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let texts = (0..300).map(|i| format!("okapi number {i}"));
    conversation(&store, &t, texts.collect()).await;
    assert_eq!(
        store.build_search_postings().await.unwrap(),
        2,
        "okapi, number"
    );
    let hits = |p: &SearchPage| p.hits.iter().map(|h| h.snippet.clone()).collect::<Vec<_>>();
    let search = |store: Store| async move {
        let p = store.search(&t, &request("okapi", None)).await.unwrap();
        store.close().await;
        p
    };
    assert_eq!(search(open(&url).await).await.hits.len(), 40);

    // One row, the 101st message: its rowid below the snapshot (300) by 199, length 3, count 1
    // (tails.rs's encoding: the row count, then each row's distance, length and count).
    raw(
        &url,
        "UPDATE search_tails SET data = x'01c7010301' WHERE key LIKE '%okapi%'",
    )
    .await;
    let p = search(open(&url).await).await;
    assert_eq!(hits(&p), ["<mark>okapi</mark> number 100"]);

    // The same row of another epoch: walked instead.
    raw(
        &url,
        "UPDATE search_tails SET epoch = epoch - 1 WHERE key LIKE '%okapi%'",
    )
    .await;
    let p = search(open(&url).await).await;
    assert_eq!(p.hits.len(), 40);

    // Built again: whole.
    assert_eq!(store.build_search_postings().await.unwrap(), 2);
    let p = search(open(&url).await).await;
    assert_eq!(p.hits.len(), 40);
    store.close().await;
}
