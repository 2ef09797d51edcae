//! SQLite's relevance ranking is computed in Rust from term counts (`Bm25`), not by FTS5's
//! `bm25()`: this pins that both give the same order and the same scores where every
//! statistic is exact (fewer matches than the ranking window), for words, phrases, prefixes,
//! OR groups and non-ASCII text. SQLite only: PostgreSQL ranks with `ts_rank`.

use confab_core::cursor::SearchCursor;
use confab_core::input::{NewConversation, NewMessage};
use confab_core::search::{Query, parse_query, tenant_tag};
use confab_core::{Role, Status};
use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, StoreOptions, TenantId};

const TEXTS: &[&str] = &[
    "the refund arrived, thanks",
    "Refund refund REFUND: still no refund on my credit card",
    "credit card declined at checkout",
    "my card was charged twice; I want a refund to the credit card",
    "payment pending, payments are slow",
    "Crème brûlée recipe with crème fraîche",
    "CRÈME! no refund for the crème",
    "我喜欢中文 and a refund",
    "the quick brown fox jumps over the lazy dog",
    "pay later, paying now, paid yesterday",
    "a very long message about nothing in particular that goes on and on and mentions a refund only once near the end refund",
    "card card card card",
];

#[tokio::test]
async fn rust_bm25_matches_fts5_bm25() {
    if !sqlite_only() {
        return;
    }
    let (_dir, path, store, t) = fresh("rank.db").await;
    // Another tenant's rows count in the index's totals, as in production.
    let other = store.ensure_tenant("other").await.unwrap();
    for (tenant, reps) in [(&t, 3), (&other, 1)] {
        for r in 0..reps {
            let mut c = NewConversation::new(Status::Active);
            c.messages = TEXTS
                .iter()
                .enumerate()
                .map(|(i, s)| NewMessage {
                    role: Some(if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    }),
                    content: format!("{s} {}", "filler ".repeat(r * 3 + i % 4)),
                    ..NewMessage::default()
                })
                .collect();
            store.create_conversation(tenant, c, None).await.unwrap();
        }
    }
    let db = rusqlite::Connection::open(&path).unwrap();
    for q in [
        "refund",
        "card",
        "credit card",
        "\"credit card\"",
        "pay*",
        "refund OR card",
        "crème",
        "中文",
        "refund -card",
        "the",
    ] {
        assert_ranked_as_fts5(&store, &t, &db, q).await;
    }
    store.close().await;
}

/// An unfiltered relevance search.
fn by_relevance(query: &Query, limit: i64, cursor: Option<SearchCursor>) -> SearchRequest {
    SearchRequest {
        query: query.clone(),
        filter: SearchFilter::default(),
        sort: SearchSort::Relevance,
        limit,
        cursor,
    }
}

/// Searches `q` and checks the page against FTS5's own `bm25()` over the same matches: same
/// scores, and the same order wherever scores differ.
async fn assert_ranked_as_fts5(store: &Store, t: &TenantId, db: &rusqlite::Connection, q: &str) {
    let tag = tenant_tag(t.as_uuid().as_bytes());
    let query = parse_query(q).unwrap();
    let page = store
        .search(t, &by_relevance(&query, 100, None))
        .await
        .unwrap();
    let mut st = db
        .prepare(
            "SELECT m.id, -bm25(messages_fts) FROM messages_fts \
             JOIN messages m ON m.rowid = messages_fts.rowid \
             WHERE messages_fts MATCH ?1 ORDER BY bm25(messages_fts), m.rowid DESC",
        )
        .unwrap();
    let want: Vec<(uuid::Uuid, f64)> = st
        .query_map([query.to_fts5(&tag)], |r| {
            Ok((
                uuid::Uuid::from_slice(&r.get::<_, Vec<u8>>(0)?).unwrap(),
                r.get(1)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!want.is_empty(), "{q}: nothing matched");
    let got: Vec<(uuid::Uuid, f64)> = page.hits.iter().map(|h| (h.message_id, h.score)).collect();
    assert_eq!(got.len(), want.len(), "{q}: hit count");
    for (i, ((gid, gs), (wid, ws))) in got.iter().zip(&want).enumerate() {
        assert!((gs - ws).abs() < 1e-5, "{q}: score {i}: {gs} vs fts5 {ws}");
        // Equal scores may order either way only if they are equal in both.
        if gid != wid {
            assert!((gs - want[i].1).abs() < 1e-9, "{q}: order differs at {i}");
        }
    }
    // Small pages, through cursors, are the same ranking cut in pieces (each page orders only
    // what it shows).
    let (mut paged, mut cursor) = (Vec::new(), None);
    loop {
        let page = store
            .search(t, &by_relevance(&query, 3, cursor))
            .await
            .unwrap();
        paged.extend(page.hits.iter().map(|h| (h.message_id, h.score)));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(paged, got, "{q}: pages of 3");
}

fn sqlite_only() -> bool {
    // SQLite's ranking; the PostgreSQL run covers ts_rank elsewhere.
    !std::env::var("CONFAB_TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty())
}

/// A store on a new SQLite file `name` with the tenant `acme`; the directory lives as long as
/// the returned guard.
async fn fresh(name: &str) -> (tempfile::TempDir, std::path::PathBuf, Store, TenantId) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let store = Store::open(
        &format!("sqlite://{}", path.display()),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
    (dir, path, store, t)
}

fn conversation(texts: &[String]) -> NewConversation {
    let mut c = NewConversation::new(Status::Active);
    c.messages = texts
        .iter()
        .map(|s| NewMessage {
            role: Some(Role::User),
            content: s.clone(),
            ..NewMessage::default()
        })
        .collect();
    c
}

/// Ranking keeps messages' lengths in memory (doclen.rs). A deleted message's rowid is reused
/// by the next insert, with another length: the scores must follow the new message, not the
/// remembered length. (Migration 0010 bumps the epoch on content rewrites too, beside the index's
/// own update trigger; no store path rewrites a message's content today, so none is tested.)
#[tokio::test]
async fn remembered_lengths_follow_deletes_and_reused_rowids() {
    if !sqlite_only() {
        return;
    }
    let (_dir, path, store, t) = fresh("reuse.db").await;
    let db = rusqlite::Connection::open(&path).unwrap();
    let short: Vec<String> = (0..8).map(|i| format!("refund card {i}")).collect();
    // Half of them with a word the others lack: searching it first stores some of the reused
    // rowids' lengths in the new epoch, and the next search must not take the rest from the
    // old one.
    let long: Vec<String> = (0..8)
        .map(|i| {
            let word = if i % 2 == 0 { "filler" } else { "other" };
            format!(
                "refund card {i} {}",
                format!("{word} words ").repeat(3 + 4 * i)
            )
        })
        .collect();
    store
        .create_conversation(&t, conversation(&short), None)
        .await
        .unwrap();
    let newest = store
        .create_conversation(&t, conversation(&short), None)
        .await
        .unwrap();
    let top = |db: &rusqlite::Connection| -> i64 {
        db.query_row("SELECT max(rowid) FROM messages", [], |r| r.get(0))
            .unwrap()
    };
    let before = top(&db);
    // Searched once: the lengths of every candidate are now remembered.
    assert_ranked_as_fts5(&store, &t, &db, "refund").await;
    store
        .delete_conversation(&t, newest.conversation().id)
        .await
        .unwrap();
    store
        .create_conversation(&t, conversation(&long), None)
        .await
        .unwrap();
    assert_eq!(
        top(&db),
        before,
        "the new messages reuse the deleted rowids"
    );
    for q in ["filler", "refund", "card", "refund card"] {
        assert_ranked_as_fts5(&store, &t, &db, q).await;
    }
    store.close().await;
}

/// Search tells tenants apart by the tag on their tokens alone, so no two tenants may share one.
#[tokio::test]
async fn tenants_never_share_a_search_tag() {
    if !sqlite_only() {
        return;
    }
    let (_dir, path, store, t) = fresh("tags.db").await;
    store.close().await;
    let db = rusqlite::Connection::open(&path).unwrap();
    let mut clash = *uuid::Uuid::now_v7().as_bytes();
    clash[10..].copy_from_slice(&t.as_uuid().as_bytes()[10..]);
    let err = db
        .execute(
            "INSERT INTO tenants (id, name, created_at) VALUES (?1, 'intruder', 0)",
            [clash.to_vec()],
        )
        .unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    // Any other tail is fine.
    clash[15] ^= 1;
    db.execute(
        "INSERT INTO tenants (id, name, created_at) VALUES (?1, 'neighbour', 0)",
        [clash.to_vec()],
    )
    .unwrap();
}

/// Opening a store installs confab's allocator for SQLite before the library starts (alloc.rs):
/// blocks come in size classes, so FTS5's arrays grown 32 bytes at a time are rarely moved. Every
/// test of this file opens a store before any other connection, so the library is not yet
/// initialized when the first one does.
#[tokio::test]
async fn sqlite_allocates_in_size_classes() {
    if !sqlite_only() {
        return;
    }
    let (_dir, _path, _store, _t) = fresh("alloc.db").await;
    for (asked, given) in [(24, 24), (300, 512), (3000, 4096), (4096 + 300, 4608)] {
        // SAFETY: a block from sqlite3_malloc, measured and given back.
        let size = unsafe {
            let p = libsqlite3_sys::sqlite3_malloc(asked);
            assert!(!p.is_null());
            let n = libsqlite3_sys::sqlite3_msize(p);
            libsqlite3_sys::sqlite3_free(p);
            n
        };
        assert_eq!(size, given, "sqlite3_malloc({asked})");
    }
}

/// Segments of the full-text index, from FTS5's structure record (row 10 of `_data`: a 4-byte
/// cookie, FTS5's 4-byte version-2 marker, then the level and segment counts as varints).
fn fts_segments(db: &rusqlite::Connection) -> u8 {
    let b: Vec<u8> = db
        .query_row(
            "SELECT block FROM messages_fts_data WHERE id = 10",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let at = if b[4..8] == [0xff, 0, 0, 1] { 8 } else { 4 };
    assert!(b[at] < 0x80 && b[at + 1] < 0x80, "small counts: {b:?}");
    b[at + 1]
}

/// Once the writer is idle, the index is merged into one segment (sqlite/merge.rs); ranked
/// results are the same before and after.
#[tokio::test]
async fn an_idle_writer_merges_the_search_index() {
    if !sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("merge.db");
    let store = Store::open(
        &format!("sqlite://{}", path.display()),
        StoreOptions {
            search_merge_idle: Some(std::time::Duration::from_millis(300)),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
    // One transaction each: FTS5 writes a segment per transaction and merges them four at a
    // time, so 39 of them leave several segments (39 is 213 in base 4).
    for i in 0..39 {
        let mut c = NewConversation::new(Status::Active);
        c.messages = (0..3)
            .map(|j| NewMessage {
                role: Some(Role::User),
                content: format!(
                    "{} refund {}",
                    TEXTS[(i + j) % TEXTS.len()],
                    "card ".repeat(j)
                ),
                ..NewMessage::default()
            })
            .collect();
        store.create_conversation(&t, c, None).await.unwrap();
    }
    let db = rusqlite::Connection::open(&path).unwrap();
    let before = fts_segments(&db);
    let ranked = |q: &str| {
        let req = SearchRequest {
            query: parse_query(q).unwrap(),
            filter: SearchFilter::default(),
            sort: SearchSort::Relevance,
            limit: 200,
            cursor: None,
        };
        let store = &store;
        async move { store.search(&t, &req).await.unwrap().hits }
    };
    let (refund, card) = (ranked("refund").await, ranked("card").await);
    let mut after = before;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = fts_segments(&db);
        if after == 1 {
            break;
        }
    }
    assert!(before > 1, "the writes left {before} segment(s)");
    assert_eq!(after, 1, "still {after} segments after 10 s idle");
    let scores = |h: &[confab_store::SearchHit]| {
        h.iter()
            .map(|h| (h.message_id, h.score))
            .collect::<Vec<_>>()
    };
    assert_eq!(scores(&ranked("refund").await), scores(&refund));
    assert_eq!(scores(&ranked("card").await), scores(&card));
}
