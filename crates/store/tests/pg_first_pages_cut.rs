//! PostgreSQL only (skipped, saying so, without `CONFAB_TEST_POSTGRES_URL`): the statement
//! first searches share (postings.rs's `NEWEST_OF`) reads the segments once for the batch and
//! sends each word's postings rows only until they hold a window, so a word whose newest
//! segments fill its window sends none of the older ones, and a segment without the word
//! among those it needs is read as empty. Either way its pages are what the GIN index answers,
//! every page of the window, and the first page stays in the batch. Counted with the store's own
//! metric, `confab_store_search_first_pages_total{path}`, through a recorder of this test
//! binary's own (one test here, so no other search adds to the counts).

use confab_core::cursor::SearchCursor;
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

const SEG_ROWS: i64 = 32_768;

/// Every page of a ranked search of `word` for `t` on `store`: (message, score), in order.
async fn pages(store: &Store, t: &TenantId, word: &str) -> Vec<(Uuid, String)> {
    let mut cursor: Option<SearchCursor> = None;
    let mut out = Vec::new();
    loop {
        let page = store.search(t, &request(word, cursor)).await.unwrap();
        out.extend(searching::shown(&page).0);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// [`pages`] on a store of its own, whose first search reads on its connection through the
/// GIN index whatever the postings hold (it has no word statistics yet): the answer to compare
/// with.
async fn alone(url: &str, t: &TenantId, word: &str) -> Vec<(Uuid, String)> {
    let store = open(url).await;
    let got = pages(&store, t, word).await;
    store.close().await;
    got
}

/// Messages in segment `seg` of `t`: for each `(word, n)`, `n` messages holding it once to
/// three times (ts_rank ranks by the count), and a few holding neither.
async fn segment(
    store: &Store,
    c: &mut sqlx::PgConnection,
    t: &TenantId,
    seg: i64,
    words: &[(&str, usize)],
) {
    next_rowid(c, seg * SEG_ROWS + 10).await;
    let mut texts: Vec<String> = vec!["filler only".into(); 5];
    for (word, n) in words {
        texts.extend((0..*n).map(|i| format!("{} filler", vec![*word; i % 3 + 1].join(" "))));
    }
    for chunk in texts.chunks(200) {
        searching::conversation(store, t, chunk.to_vec()).await;
    }
}

#[tokio::test]
async fn a_word_sends_its_newest_segments_until_they_hold_its_window() {
    let Some(admin) = testdb::pg_admin_or_skip("first pages' postings cut at a window") else {
        return;
    };
    let paths = Outcomes::install("confab_store_search_first_pages_total");
    let db = TestDb::new_pg(&admin).await;
    let store = open(&db.url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let other = store.ensure_tenant("other").await.unwrap();
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // `deep`: its window wholly in the newest segment; `mid`: the newest and part of the one
    // below; `sparse`: every segment, one of them without it. The other tenant's rows, in the
    // newest segment, hold them all: never the searched tenant's matches.
    let layout: [(i64, &[(&str, usize)]); 4] = [
        (0, &[("deep", 300), ("mid", 100), ("sparse", 200)]),
        (1, &[]),
        (2, &[("deep", 400), ("mid", 500), ("sparse", 300)]),
        (3, &[("deep", 1_200), ("mid", 700), ("sparse", 300)]),
    ];
    for (seg, words) in layout {
        segment(&store, &mut c, &t, seg, words).await;
    }
    searching::conversation(&store, &other, vec!["deep mid sparse".into(); 50]).await;
    let mut before = Vec::new();
    for word in ["deep", "mid", "sparse"] {
        before.push(alone(&db.url, &t, word).await);
    }
    assert_eq!(before[0].len(), 1_000, "deep: a window's worth");
    assert_eq!(before[1].len(), 1_000, "mid: a window's worth");
    assert_eq!(before[2].len(), 800, "sparse: every match");

    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    // The word statistics, read once on a connection: first searches after it are batched.
    pages(&store, &t, "nothing").await;
    let (batched, by_itself) = (paths.count("batched"), paths.count("alone"));
    for (word, want) in ["deep", "mid", "sparse"].into_iter().zip(&before) {
        let got = pages(&store, &t, word).await;
        assert!(&got == want, "{word}: not the index's pages");
    }
    assert_eq!(paths.count("batched"), batched + 3, "read in the batch");
    assert_eq!(paths.count("alone"), by_itself, "none read on a connection");

    // The rows each word's postings come in: only the segments its window needs, newest first
    // (64 segments asked for each, as for a word the statistics do not know).
    let [newest, _] = confab_store::postgres_first_batch_sql();
    let tag = confab_core::search::tenant_tag(t.as_uuid().as_bytes());
    let lexemes: Vec<String> = ["deep", "mid", "sparse"]
        .iter()
        .map(|w| format!("{tag}{w}"))
        .collect();
    let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT i, seg FROM ({newest}) r(i, max, seen, seg)"
    )))
    .bind(vec![t.as_uuid(); 3])
    .bind(&lexemes)
    .bind(vec![64i64; 3])
    .bind(Vec::<Uuid>::new())
    .bind(Vec::<String>::new())
    .fetch_all(&mut c)
    .await
    .unwrap();
    let segs = |i: i64| -> Vec<i64> {
        rows.iter()
            .filter(|r| r.0 == i)
            .filter_map(|r| r.1)
            .collect()
    };
    assert_eq!(segs(-2), [3, 2, 1, 0], "the segments, once");
    assert_eq!(segs(1), [3], "deep: its window in the newest");
    assert_eq!(segs(2), [3, 2], "mid: the newest two");
    assert_eq!(segs(3), [3, 2, 0], "sparse: each holding it");
    store.close().await;
    let _ = c.close().await;
}
