//! A ranked search ranks exactly the newest `RANK_WINDOW` matches up to its snapshot, however
//! the backend reads them. On PostgreSQL that is one of three plans chosen by the word's
//! frequency (postgres/search.rs): a walk by rowid for a query in most messages (bounded by its
//! share: one test has the share stale), the index for a rare one, and for one in between a walk of the newest rows then band queries, further ones
//! when the bands held fewer matches than the density so far promised, and the index for the
//! rest when the bands needed would be too many for the table. Steps wider than 16 bands ask for
//! their rowid range, beyond 64 bands through the bands' block-range summary; two tests spread
//! the rowids out to reach those. The words below are laid out to take each path;
//! on PostgreSQL the test first checks that the planner's statistics put them where intended.
//! A query of one word reads its postings there, none built in these stores (no pause builds
//! them), so it takes the same paths for the rowids no built segment holds.

use std::collections::BTreeSet;

use confab_core::cursor::SearchCursor;
use confab_core::input::{NewConversation, NewMessage};
use confab_core::search::{parse_query, tenant_tag};
use confab_core::{Role, Status};
use confab_store::{
    RANK_WINDOW, SearchFilter, SearchHit, SearchRequest, SearchSort, Store, StoreOptions, TenantId,
};
use sqlx::Connection;
use uuid::Uuid;

#[path = "support/counts.rs"]
mod counts;
#[path = "support/testdb.rs"]
mod testdb;
use counts::Outcomes;
use testdb::TestDb;

const CONVERSATIONS: usize = 1000;
const PER_CONVERSATION: usize = 20;
const MESSAGES: usize = CONVERSATIONS * PER_CONVERSATION;
/// Messages before this one are old; the words thin out after it.
const OLD: usize = 12_000;
/// The newest messages, which PostgreSQL walks before asking for bands (`PROBE_ROWS` in
/// postgres/search.rs, whose unit test pins it to this).
const NEWEST: usize = 1024;

/// The words of message `i` (in insertion order).
fn words(i: usize) -> Vec<&'static str> {
    let mut w = vec!["common"];
    // Every third old message, every hundredth new one, every second of the newest: dense where
    // PostgreSQL first walks, the bands after it hold fewer than that density promised, so
    // further band queries reach the old ones.
    let newest = i >= MESSAGES - NEWEST;
    if (i < OLD && i.is_multiple_of(3))
        || (newest && i.is_multiple_of(2))
        || (i >= OLD && i.is_multiple_of(100))
    {
        w.push("mid");
    }
    // Every third old message, every three hundredth new one: after the first walk the
    // density says too many bands, so the index reads the rest.
    if (i < OLD && i % 3 == 1) || (i >= OLD && i % 300 == 1) {
        w.push("mud");
    }
    // Every old message, and none or every fiftieth since: common as ANALYZE counts them all,
    // rare among the newest, where a walk starts.
    if i < OLD {
        w.extend(["gone", "fading"]);
    } else if i.is_multiple_of(50) {
        w.push("fading");
    }
    if [5, 7_000, MESSAGES - 1].contains(&i) {
        w.push("rare");
    }
    // Every fifth message: with the rowids spread out ([`load_spread`]), PostgreSQL's band
    // step for it spans more bands than it asks for by their lexemes, so it asks for the rowid
    // range instead.
    if i.is_multiple_of(5) {
        w.push("spread");
    }
    w
}

/// Rowids skipped before each conversation when the rowids are spread out: a conversation's
/// 20 messages then take 420 rowids, four of them holding `spread`, so a window of `spread`
/// spans some 105,000 rowids, 26 bands.
const GAP: i64 = 400;
/// Rowids skipped before each conversation for a window wider than the rowid index is asked
/// for (64 bands): a conversation then takes 2,020 rowids, so a window of `spread` spans some
/// 505,000, 123 bands, in a table of some 2,000,000 rowids.
const WIDE_GAP: i64 = 2000;

async fn load(store: &Store, t: &TenantId) -> Vec<Uuid> {
    load_spread(store, t, None, 0).await
}

/// A store on `db` with a tenant loaded by [`load`]. The index's paths are under test: no
/// search postings built behind it (a pause would have the server build its newest rows'
/// postings, postgres/postings.rs), so a query of one word reads them through the index.
async fn loaded(db: &TestDb) -> (Store, TenantId, Vec<Uuid>) {
    let opts = StoreOptions {
        search_merge_idle: None,
        ..StoreOptions::default()
    };
    let store = Store::open(&db.url, opts).await.unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
    let convs = load(&store, &t).await;
    (store, t, convs)
}

/// A connection to the PostgreSQL database at `url`, its statistics just refreshed.
async fn analyzed(url: &str) -> sqlx::PgConnection {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("ANALYZE messages")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

/// [`load`], skipping `gap` rowids before each conversation when `pg` (a connection to the
/// store's PostgreSQL database) is given.
async fn load_spread(
    store: &Store,
    t: &TenantId,
    mut pg: Option<&mut sqlx::PgConnection>,
    gap: i64,
) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(CONVERSATIONS);
    for c in 0..CONVERSATIONS {
        if let Some(pg) = pg.as_deref_mut() {
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence('messages', 'rowid'), \
                 nextval(pg_get_serial_sequence('messages', 'rowid')) + $1)",
            )
            .bind(gap)
            .execute(pg)
            .await
            .unwrap();
        }
        let mut conv = NewConversation::new(Status::Active);
        conv.messages = (0..PER_CONVERSATION)
            .map(|j| NewMessage {
                role: Some(Role::User),
                content: format!("{} filler text", words(c * PER_CONVERSATION + j).join(" ")),
                ..NewMessage::default()
            })
            .collect();
        let written = store.create_conversation(t, conv, None).await.unwrap();
        ids.push(written.conversation().id);
    }
    ids
}

/// After [`load_spread`]: the bands' block-range summary and the statistics as the upkeep and
/// ANALYZE leave them, a check that they plan `spread` for bands (postgres/search.rs, `plan`),
/// and the lowest rowid of its window with the highest rowid of all.
async fn spread_window(c: &mut sqlx::PgConnection, t: &TenantId) -> (i64, i64) {
    sqlx::query("SELECT brin_summarize_new_values('messages_band_summary')")
        .execute(&mut *c)
        .await
        .unwrap();
    sqlx::query("ANALYZE messages")
        .execute(&mut *c)
        .await
        .unwrap();
    let f = frequency(c, t, "spread").await.unwrap();
    assert!((0.1..0.25).contains(&f), "spread: {f}");
    let lexeme = format!("{}spread", tenant_tag(t.as_uuid().as_bytes()));
    sqlx::query_as(
        "SELECT min(r), (SELECT max(rowid) FROM messages) FROM (SELECT rowid AS r FROM messages \
         WHERE fts @@ to_tsquery('simple', $1) ORDER BY rowid DESC LIMIT $2) w",
    )
    .bind(lexeme)
    .bind(RANK_WINDOW)
    .fetch_one(&mut *c)
    .await
    .unwrap()
}

/// Loads a tenant of `store` (at `url`) with `gap` rowids skipped before each conversation,
/// checks that the window of `spread` spans what `spans(lowest, highest rowid)` asks, and that
/// its ranked pages are exactly the newest matches; answers the tenant and its conversations.
async fn spread_and_rank(
    store: &Store,
    url: &str,
    gap: i64,
    spans: impl Fn(i64, i64) -> bool,
) -> (TenantId, Vec<Uuid>) {
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let convs = load_spread(store, &t, Some(&mut c), gap).await;
    let (lowest, max) = spread_window(&mut c, &t).await;
    assert!(spans(lowest, max), "the window spans {lowest}..={max}");
    let _ = c.close().await;
    let want = newest("spread");
    let got = ranked(store, &t, &convs, "spread").await;
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    (t, convs)
}

/// Every ranked hit of `word`, page after page, as message positions.
async fn ranked(store: &Store, t: &TenantId, convs: &[Uuid], word: &str) -> BTreeSet<usize> {
    ranked_with(store, t, convs, word, SearchFilter::default()).await
}

/// [`ranked`] with `filter`.
async fn ranked_with(
    store: &Store,
    t: &TenantId,
    convs: &[Uuid],
    word: &str,
    filter: SearchFilter,
) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut cursor: Option<SearchCursor> = None;
    loop {
        let req = SearchRequest {
            query: parse_query(word).unwrap(),
            filter: filter.clone(),
            sort: SearchSort::Relevance,
            limit: 100,
            cursor,
        };
        let page = store.search(t, &req).await.unwrap();
        for h in &page.hits {
            let at = position(convs, h);
            assert!(out.insert(at), "{word}: message {at} ranked twice");
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// A hit's message, as its position in insertion order.
fn position(convs: &[Uuid], h: &SearchHit) -> usize {
    let c = convs
        .iter()
        .position(|id| *id == h.conversation_id)
        .unwrap();
    c * PER_CONVERSATION + h.seq as usize
}

/// The newest `RANK_WINDOW` messages holding `word`.
fn newest(word: &str) -> BTreeSet<usize> {
    (0..MESSAGES)
        .rev()
        .filter(|&i| words(i).contains(&word))
        .take(RANK_WINDOW as usize)
        .collect()
}

/// The share of messages PostgreSQL's statistics give the tenant's `word`.
async fn frequency(c: &mut sqlx::PgConnection, t: &TenantId, word: &str) -> Option<f64> {
    let lexeme = format!("{}{word}", tenant_tag(t.as_uuid().as_bytes()));
    sqlx::query_scalar::<_, f32>(
        "SELECT f FROM pg_stats s, unnest(s.most_common_elems::text::text[], \
         s.most_common_elem_freqs) AS u(e, f) \
         WHERE s.tablename = 'messages' AND s.attname = 'fts' AND e = $1",
    )
    .bind(lexeme)
    .fetch_optional(c)
    .await
    .unwrap()
    .map(f64::from)
}

#[tokio::test]
async fn ranked_search_ranks_exactly_the_newest_matches_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("window.db")).await;
    let (store, t, convs) = loaded(&db).await;

    if db.is_pg() {
        let mut c = analyzed(&db.url).await;
        let common = frequency(&mut c, &t, "common").await.unwrap();
        assert!(common > 0.9, "common: {common}");
        for word in ["mid", "mud"] {
            let f = frequency(&mut c, &t, word).await.unwrap();
            assert!((0.1..0.25).contains(&f), "{word}: {f}");
        }
        let _ = c.close().await;
    }

    for word in ["common", "mid", "mud", "rare"] {
        let got = ranked(&store, &t, &convs, word).await;
        let want = newest(word);
        assert_eq!(got.len(), want.len(), "{word}");
        assert_eq!(got, want, "{word}");
    }

    // Newest first: the first page is the newest matches, in order.
    let req = SearchRequest {
        query: parse_query("mid").unwrap(),
        filter: SearchFilter::default(),
        sort: SearchSort::Recent,
        limit: 50,
        cursor: None,
    };
    let page = store.search(&t, &req).await.unwrap();
    let got: Vec<usize> = page.hits.iter().map(|h| position(&convs, h)).collect();
    let want: Vec<usize> = newest("mid").into_iter().rev().take(50).collect();
    assert_eq!(got, want);
    store.close().await;
}

/// A query common when ANALYZE ran but rare among the newest messages (its words in every old
/// message and in few or none since) walks only the rows its share says a window needs, then
/// reads on from the density it found, by bands or through the index (postgres/search.rs,
/// `walked_window`); unbounded, the walk read back to the old matches, the whole table for a
/// word no longer written. The window is still exactly the newest matches, and a query common
/// throughout fills it within the walk. Walks are counted with the store's own metric,
/// `confab_store_search_walks_total{outcome}`, which only this test's queries walk.
#[tokio::test]
async fn a_walk_of_a_query_rarer_lately_than_its_share_stops_and_reads_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("walk.db")).await;
    if !db.is_pg() {
        return;
    }
    let walks = Outcomes::install("confab_store_search_walks_total");
    let (store, t, convs) = loaded(&db).await;
    let mut c = analyzed(&db.url).await;
    for word in ["common", "filler", "gone", "fading"] {
        let f = frequency(&mut c, &t, word).await.unwrap();
        assert!(f > 0.5, "{word}: {f}");
    }
    let _ = c.close().await;

    // Two words each: walked (a query of one word reads its postings, below). Every message
    // holds `filler`.
    for (query, word, outcome) in [
        ("common filler", "common", "filled"),
        ("gone filler", "gone", "cut"),
        ("fading filler", "fading", "cut"),
    ] {
        let before = walks.count(outcome);
        let got = ranked(&store, &t, &convs, query).await;
        let want = newest(word);
        assert_eq!(got.len(), want.len(), "{query}");
        assert_eq!(got, want, "{query}");
        assert!(walks.count(outcome) > before, "{query}: a walk {outcome}");
    }
    // Newest first, page after page: the same bound, the newest matches in order.
    for (query, word) in [("gone filler", "gone"), ("fading filler", "fading")] {
        let before = walks.count("cut");
        let mut cursor = None;
        let mut got = Vec::new();
        for _ in 0..3 {
            let req = SearchRequest {
                query: parse_query(query).unwrap(),
                filter: SearchFilter::default(),
                sort: SearchSort::Recent,
                limit: 50,
                cursor,
            };
            let page = store.search(&t, &req).await.unwrap();
            got.extend(page.hits.iter().map(|h| position(&convs, h)));
            cursor = page.next_cursor;
        }
        let want: Vec<usize> = newest(word).into_iter().rev().take(150).collect();
        assert_eq!(got, want, "{query}, newest first");
        assert!(
            walks.count("cut") > before,
            "{query}, newest first: a walk cut"
        );
    }
    let walked = walks.count("filled") + walks.count("cut");
    for word in ["gone", "fading"] {
        assert_eq!(
            ranked(&store, &t, &convs, word).await,
            newest(word),
            "{word}"
        );
    }
    assert_eq!(
        walks.count("filled") + walks.count("cut"),
        walked,
        "one word: no walk"
    );
    store.close().await;
}

/// A band step too wide for band lexemes asks PostgreSQL for its rowid range (held to bitmap
/// scans, postgres/search.rs `on_bitmaps`), and the window is still exactly the newest matches.
#[tokio::test]
async fn a_wide_band_step_asked_by_its_rowid_range_ranks_the_newest_matches() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("spread.db")).await;
    if !db.is_pg() {
        return;
    }
    // With a read limit, a filtered search runs in a transaction of its own (postgres/search.rs,
    // `statement_timeout`), so its wide step's own transaction is a savepoint inside it.
    let opts = StoreOptions {
        read_timeout: Some(std::time::Duration::from_secs(60)),
        // The index's paths are under test: no search postings built behind it.
        search_merge_idle: None,
        ..StoreOptions::default()
    };
    let store = Store::open(&db.url, opts).await.unwrap();
    // Spread over more rowids than 16 bands hold.
    let (t, convs) =
        spread_and_rank(&store, &db.url, GAP, |lowest, max| max - lowest > 16 * 4096).await;
    let want = newest("spread");
    // Every message is a user's: the filter keeps the same window, read without a kept one.
    let users = SearchFilter {
        role: Some(Role::User),
        ..SearchFilter::default()
    };
    let got = ranked_with(&store, &t, &convs, "spread", users).await;
    assert_eq!(got, want, "filtered");
    store.close().await;
}

/// A step wider than the rowid index is asked for (64 bands) asks the bands' block-range
/// summary for its range instead (migration 0007, postgres/search.rs `banded_window`), then
/// narrower steps the rowid index, and the window is still exactly the newest matches.
#[tokio::test]
async fn a_step_past_the_rowid_index_asked_by_the_band_summary_ranks_the_newest_matches() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("wide.db")).await;
    if !db.is_pg() {
        return;
    }
    // The index's paths are under test: no search postings built behind it.
    let opts = StoreOptions {
        search_merge_idle: None,
        ..StoreOptions::default()
    };
    let store = Store::open(&db.url, opts).await.unwrap();
    // Wider than 64 bands, and less than half the table: the first step after the walk of the
    // newest rows is the summary's.
    spread_and_rank(&store, &db.url, WIDE_GAP, |lowest, max| {
        max - lowest > 64 * 4096 && max - lowest < max / 2
    })
    .await;
    store.close().await;
}
