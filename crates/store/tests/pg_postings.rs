//! PostgreSQL only (skipped, saying so, without `CONFAB_TEST_POSTGRES_URL`): one-word ranked
//! searches read each word's postings from the segments built (postgres/postings.rs) and answer
//! exactly what the GIN index answers, scores included; a built segment's postings are always
//! exactly its messages' tokens, whatever writes race the build; the server builds them in the
//! background.
//!
//! The messages are laid out over four segments of rowids (32,768 each) by moving the rowid
//! identity on before each era, so that three segments are complete and the newest rows are
//! above them, as on a live server.

use confab_core::cursor::SearchCursor;
use confab_core::input::{AppendMessages, NewConversation, NewMessage};
use confab_core::search::{parse_query, tenant_tag};
use confab_core::{Role, Status};
use confab_store::types::TenantId;
use confab_store::{SearchFilter, SearchHit, SearchRequest, SearchSort, Store, StoreOptions};
use sqlx::Connection;
use uuid::Uuid;

#[path = "support/testdb.rs"]
mod testdb;
use testdb::{TestDb, next_rowid, pg_admin_or_skip};

const SEG_ROWS: i64 = 32_768;
const ERAS: usize = 4;
const CONVERSATIONS: usize = 12;
const PER_CONVERSATION: usize = 10;

/// The text of message `j` of conversation `c` of era `e`: `seg` in a third of them, as many
/// times as `(c + j) % 5 + 1` says (ts_rank ranks by the count), 300 times in one (a tsvector
/// keeps 256 positions); `lone` in two.
fn text(e: usize, c: usize, j: usize) -> String {
    let mut w = vec!["every"];
    let i = (e * CONVERSATIONS + c) * PER_CONVERSATION + j;
    if i.is_multiple_of(3) {
        let times = if i == 3 * 77 { 300 } else { (c + j) % 5 + 1 };
        w.extend(std::iter::repeat_n("seg", times));
    }
    if i == 17 || i == 250 {
        w.push("lone");
    }
    w.push("filler");
    w.join(" ")
}

/// A store that builds nothing by itself (the tests build when they mean to).
async fn open(url: &str) -> Store {
    let opts = StoreOptions {
        search_merge_idle: None,
        ..StoreOptions::default()
    };
    Store::open(url, opts).await.unwrap()
}

/// Conversation `k` of era `e`, written for `t` where the rowids are now; answers its id.
async fn new_conversation(store: &Store, t: &TenantId, e: usize, k: usize) -> Uuid {
    let mut conv = NewConversation::new(Status::Active);
    conv.messages = (0..PER_CONVERSATION)
        .map(|j| NewMessage {
            role: Some(Role::User),
            content: text(e, k, j),
            ..NewMessage::default()
        })
        .collect();
    let written = store.create_conversation(t, conv, None).await.unwrap();
    written.conversation().id
}

/// The eras' conversations of `t` (era by era), and a few of `other`'s, which hold `seg` in
/// every message: a search of `t` must never see them.
async fn load(
    store: &Store,
    c: &mut sqlx::PgConnection,
    t: &TenantId,
    other: &TenantId,
) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for e in 0..ERAS {
        next_rowid(c, e as i64 * SEG_ROWS + 100).await;
        for k in 0..CONVERSATIONS {
            ids.push(new_conversation(store, t, e, k).await);
        }
        let mut conv = NewConversation::new(Status::Active);
        conv.messages = (0..5)
            .map(|_| NewMessage {
                role: Some(Role::User),
                content: "seg seg lone every".into(),
                ..NewMessage::default()
            })
            .collect();
        store.create_conversation(other, conv, None).await.unwrap();
    }
    ids
}

/// Every ranked hit of `word` for `t`, page after page, on a store of its own (a store keeps
/// its windows: a second search there would not read again).
async fn ranked(url: &str, t: &TenantId, word: &str) -> Vec<(Uuid, i64, f64)> {
    ranked_from(url, t, word, None).await
}

/// [`ranked`] from the page `cursor` points at on.
async fn ranked_from(
    url: &str,
    t: &TenantId,
    word: &str,
    mut cursor: Option<SearchCursor>,
) -> Vec<(Uuid, i64, f64)> {
    let store = open(url).await;
    let mut out = Vec::new();
    loop {
        let (hits, next) = page(&store, t, word, cursor).await;
        out.extend(hits);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    store.close().await;
    out
}

/// The page of a ranked search of `word` for `t` on `store` that `cursor` points at (the first
/// without one), 25 hits at most, and the next page's cursor.
async fn page(
    store: &Store,
    t: &TenantId,
    word: &str,
    cursor: Option<SearchCursor>,
) -> (Vec<(Uuid, i64, f64)>, Option<SearchCursor>) {
    let req = SearchRequest {
        query: parse_query(word).unwrap(),
        filter: SearchFilter::default(),
        sort: SearchSort::Relevance,
        limit: 25,
        cursor,
    };
    let page = store.search(t, &req).await.unwrap();
    let hits = page
        .hits
        .iter()
        .map(|h: &SearchHit| (h.conversation_id, h.seq, h.score))
        .collect();
    (hits, page.next_cursor)
}

/// The messages of `t` holding `word` by the model, as (conversation, seq), without the
/// conversations in `gone`.
fn expected(ids: &[Uuid], word: &str, gone: &[Uuid]) -> std::collections::BTreeSet<(Uuid, i64)> {
    let mut out = std::collections::BTreeSet::new();
    for e in 0..ERAS {
        for k in 0..CONVERSATIONS {
            let id = ids[e * CONVERSATIONS + k];
            if gone.contains(&id) {
                continue;
            }
            for j in 0..PER_CONVERSATION {
                if text(e, k, j).split(' ').any(|w| w == word) {
                    out.insert((id, j as i64));
                }
            }
        }
    }
    out
}

fn as_set(hits: &[(Uuid, i64, f64)]) -> std::collections::BTreeSet<(Uuid, i64)> {
    hits.iter().map(|h| (h.0, h.1)).collect()
}

/// Built segments.
async fn built(c: &mut sqlx::PgConnection) -> Vec<i64> {
    sqlx::query_scalar("SELECT seg FROM search_segments WHERE built ORDER BY seg")
        .fetch_all(c)
        .await
        .unwrap()
}

/// The newest message's rowid.
async fn newest_rowid(c: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT max(rowid) FROM messages")
        .fetch_one(c)
        .await
        .unwrap()
}

/// The highest rowid segment `seg`'s postings cover.
async fn upto(c: &mut sqlx::PgConnection, seg: i64) -> i64 {
    sqlx::query_scalar("SELECT upto FROM search_segments WHERE seg = $1")
        .bind(seg)
        .fetch_one(c)
        .await
        .unwrap()
}

/// Postings of built segments that are not the messages' tokens, and tokens of messages in
/// built segments that have no posting: both empty while the postings are right.
async fn mismatches(c: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "WITH tokens AS ( \
           SELECT m.tenant_id, u.lexeme, m.rowid, greatest(cardinality(u.positions), 1) AS tf \
           FROM messages m, unnest(m.fts) u \
           WHERE EXISTS (SELECT 1 FROM search_segments g \
                         WHERE g.built AND g.seg = m.rowid / 32768 AND m.rowid <= g.upto)), \
         posted AS ( \
           SELECT p.tenant_id, p.lexeme, p.seg * 32768 + x / 512 AS rowid, x % 512 AS tf \
           FROM search_postings p JOIN search_segments g ON g.seg = p.seg AND g.built, \
           LATERAL (SELECT (get_byte(p.postings, i) << 16) | (get_byte(p.postings, i + 1) << 8) \
                           | get_byte(p.postings, i + 2) AS x \
                    FROM generate_series(0, octet_length(p.postings) - 3, 3) i) u) \
         SELECT (SELECT count(*) FROM (TABLE tokens EXCEPT TABLE posted) a) \
              + (SELECT count(*) FROM (TABLE posted EXCEPT TABLE tokens) b)",
    )
    .fetch_one(c)
    .await
    .unwrap()
}

/// Postings whose bytes are not in strictly ascending rowid order: a search reads each from
/// its end, newest first.
async fn out_of_order(c: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM search_postings p WHERE EXISTS ( \
           SELECT 1 FROM generate_series(3, octet_length(p.postings) - 3, 3) i \
           WHERE ((get_byte(p.postings, i) << 16) | (get_byte(p.postings, i + 1) << 8) \
                  | get_byte(p.postings, i + 2)) / 512 \
              <= ((get_byte(p.postings, i - 3) << 16) | (get_byte(p.postings, i - 2) << 8) \
                  | get_byte(p.postings, i - 1)) / 512)",
    )
    .fetch_one(c)
    .await
    .unwrap()
}

/// The transaction ids that last wrote segment `seg`'s postings of `tenant`, in lexeme order:
/// the same after an extension that added none of them, new after a build.
async fn writers_of(c: &mut sqlx::PgConnection, tenant: &TenantId, seg: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT xmin::text FROM search_postings WHERE tenant_id = $1 AND seg = $2 ORDER BY lexeme",
    )
    .bind(tenant.as_uuid())
    .bind(seg)
    .fetch_all(c)
    .await
    .unwrap()
}

/// A database of two tenants laid out over the segments: its URL holder, a connection, the
/// tenant searched, its conversations.
async fn laid_out(admin: &str) -> (TestDb, sqlx::PgConnection, TenantId, Vec<Uuid>) {
    let db = TestDb::new_pg(admin).await;
    let store = open(&db.url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let other = store.ensure_tenant("other").await.unwrap();
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let ids = load(&store, &mut c, &t, &other).await;
    store.close().await;
    (db, c, t, ids)
}

#[tokio::test]
async fn one_word_searches_read_the_built_segments_and_answer_as_the_index_does() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, ids) = laid_out(&admin).await;
    let before = ranked(&db.url, &t, "seg").await;
    assert_eq!(as_set(&before), expected(&ids, "seg", &[]));

    let store = open(&db.url).await;
    // The three complete segments, and the newest up to its newest rowid.
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
    assert_eq!(mismatches(&mut c).await, 0);
    assert_eq!(
        store.build_search_postings().await.unwrap(),
        0,
        "nothing left to build"
    );
    store.close().await;

    // The same hits in the same order with the same scores: ts_rank's, computed from the
    // count of positions (1–5, and 256 for the message that says it 300 times).
    let after = ranked(&db.url, &t, "seg").await;
    assert_eq!(after, before);
    assert!(after.iter().any(|h| h.2 > before.last().unwrap().2));

    // And they are read from the postings: a word's postings taken away, its matches in the
    // built segments are not found (of `lone`'s two, in segment 0, none).
    let lexeme = format!("{}lone", tenant_tag(t.as_uuid().as_bytes()));
    assert_eq!(
        as_set(&ranked(&db.url, &t, "lone").await),
        expected(&ids, "lone", &[])
    );
    sqlx::query("UPDATE search_postings SET postings = '' WHERE lexeme = $1")
        .bind(&lexeme)
        .execute(&mut c)
        .await
        .unwrap();
    assert_eq!(ranked(&db.url, &t, "lone").await, vec![]);

    // A word in every message, which the statistics put among those walked by rowid, reads
    // its postings too (postgres/search.rs, `Plan::posted`): the same answer, and none of its
    // matches once its postings are taken away.
    sqlx::query("ANALYZE messages")
        .execute(&mut c)
        .await
        .unwrap();
    let every = ranked(&db.url, &t, "every").await;
    assert_eq!(as_set(&every), expected(&ids, "every", &[]));
    let lexeme = format!("{}every", tenant_tag(t.as_uuid().as_bytes()));
    let share: f32 = sqlx::query_scalar(
        "SELECT f FROM pg_stats s, unnest(s.most_common_elems::text::text[], \
         s.most_common_elem_freqs) AS u(e, f) \
         WHERE s.tablename = 'messages' AND s.attname = 'fts' AND e = $1",
    )
    .bind(&lexeme)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert!(share > 0.25, "`every` is common enough to walk: {share}");
    sqlx::query("UPDATE search_postings SET postings = '' WHERE lexeme = $1")
        .bind(&lexeme)
        .execute(&mut c)
        .await
        .unwrap();
    let left = ranked(&db.url, &t, "every").await;
    assert!(
        left.is_empty(),
        "`every` read without its postings: {} hits",
        left.len()
    );
    let _ = c.close().await;
}

/// `conversations` conversations of 100 messages for `t`, each holding `many` one to three
/// times (ts_rank ranks by the count).
async fn many(store: &Store, t: &TenantId, conversations: usize) {
    for _ in 0..conversations {
        let mut conv = NewConversation::new(Status::Active);
        conv.messages = (0..100)
            .map(|j| NewMessage {
                role: Some(Role::User),
                content: vec!["many"; j % 3 + 1].join(" ") + " filler",
                ..NewMessage::default()
            })
            .collect();
        store.create_conversation(t, conv, None).await.unwrap();
    }
}

/// A word in more messages of a segment than a window holds: a search reads only the newest of
/// its postings there (migration 0010), which must be exactly the window's; and a page bounded
/// by a cursor's older snapshot, whose segment was built since up to newer rowids, must read
/// that segment whole, or the postings above its snapshot would crowd out the ones below.
#[tokio::test]
async fn a_window_reads_the_newest_postings_of_a_segment_and_an_older_page_all_of_them() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let db = TestDb::new_pg(&admin).await;
    let store = open(&db.url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // 1,300 matches, all in segment 0; a first page's cursor holds their snapshot.
    many(&store, &t, 13).await;
    let req = SearchRequest {
        query: parse_query("many").unwrap(),
        filter: SearchFilter::default(),
        sort: SearchSort::Relevance,
        limit: 25,
        cursor: None,
    };
    let older = open(&db.url).await;
    let cursor = older.search(&t, &req).await.unwrap().next_cursor;
    older.close().await;
    assert!(cursor.is_some());
    // 500 more, then the segment is built up to them.
    many(&store, &t, 5).await;
    let before = ranked(&db.url, &t, "many").await;
    let older_before = ranked_from(&db.url, &t, "many", cursor).await;
    assert_eq!(before.len(), 1_000, "a window's worth");
    assert_eq!(
        older_before.len(),
        1_000 - 25,
        "the rest of the older window"
    );

    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    assert_eq!(built(&mut c).await, vec![0]);
    let newest = newest_rowid(&mut c).await;
    assert!(newest < SEG_ROWS);
    assert_eq!(upto(&mut c, 0).await, newest);
    assert_eq!(mismatches(&mut c).await, 0);
    let after = ranked(&db.url, &t, "many").await;
    assert_eq!(after.len(), before.len());
    assert!(
        after == before,
        "the same window, in the same order, with the same scores"
    );
    let older_after = ranked_from(&db.url, &t, "many", cursor).await;
    assert_eq!(older_after.len(), older_before.len());
    assert!(older_after == older_before, "the same older window");
    store.close().await;
    let _ = c.close().await;
}

#[tokio::test]
async fn a_deleted_conversation_leaves_the_search_at_once_and_its_segment_is_built_again() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, ids) = laid_out(&admin).await;
    let store = open(&db.url).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    // A conversation of era 1 (segment 1).
    let gone = ids[CONVERSATIONS + 3];
    store.delete_conversation(&t, gone).await.unwrap();
    assert_eq!(
        built(&mut c).await,
        vec![0, 2, 3],
        "its segment is no longer read"
    );
    let hits = ranked(&db.url, &t, "seg").await;
    assert_eq!(as_set(&hits), expected(&ids, "seg", &[gone]));

    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
    assert_eq!(mismatches(&mut c).await, 0);
    assert_eq!(ranked(&db.url, &t, "seg").await, hits);

    // Tokens rewritten (`confab reindex`, a restore): every segment is built again.
    store.rebuild_search_index().await.unwrap();
    assert_eq!(built(&mut c).await, Vec::<i64>::new());
    assert_eq!(ranked(&db.url, &t, "seg").await, hits);
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    assert_eq!(mismatches(&mut c).await, 0);
    store.close().await;
    let _ = c.close().await;
}

/// A change a build's snapshot cannot see yet: a transaction that rewrote a message's tokens
/// before the segment's row existed (so its trigger marked nothing) and has not committed.
/// The build waits for it, and builds from what it committed.
#[tokio::test]
async fn a_build_waits_for_the_writes_in_flight_and_builds_what_they_committed() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, ids) = laid_out(&admin).await;
    let mut writer = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = writer.begin().await.unwrap();
    let rewritten: i64 = sqlx::query_scalar(
        "UPDATE messages SET fts = 'unrelated'::tsvector \
         WHERE rowid = (SELECT min(rowid) FROM messages WHERE rowid >= $1) RETURNING rowid",
    )
    .bind(SEG_ROWS)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let store = open(&db.url).await;
    let build = tokio::spawn(async move {
        let n = store.build_search_postings().await.unwrap();
        store.close().await;
        n
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    let n = build.await.unwrap();
    assert!(n >= 3, "built {n}");
    assert_eq!(mismatches(&mut c).await, 0, "built from what was committed");
    let store = open(&db.url).await;
    store.build_search_postings().await.unwrap();
    store.close().await;
    assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
    assert_eq!(mismatches(&mut c).await, 0);
    // The message rewritten was era 1's first, which held `seg`.
    let mut want = expected(&ids, "seg", &[]);
    assert!(want.remove(&(ids[CONVERSATIONS], 0)));
    assert_eq!(as_set(&ranked(&db.url, &t, "seg").await), want);
    assert!(
        sqlx::query_scalar::<_, bool>(
            "SELECT fts = 'unrelated'::tsvector FROM messages WHERE rowid = $1"
        )
        .bind(rewritten)
        .fetch_one(&mut c)
        .await
        .unwrap()
    );
    let _ = writer.close().await;
    let _ = c.close().await;
}

/// Conversations deleted while segments are built over and over: after every round, each
/// built segment's postings are exactly its messages' tokens.
#[tokio::test]
async fn builds_racing_deletes_never_leave_a_built_segment_stale() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, ids) = laid_out(&admin).await;
    let store = std::sync::Arc::new(open(&db.url).await);
    for (round, id) in ids.iter().take(3 * CONVERSATIONS).step_by(3).enumerate() {
        let builder = store.clone();
        let build = tokio::spawn(async move { builder.build_search_postings().await.unwrap() });
        if round % 2 == 1 {
            tokio::task::yield_now().await;
        }
        store.delete_conversation(&t, *id).await.unwrap();
        build.await.unwrap();
        assert_eq!(mismatches(&mut c).await, 0, "round {round}");
    }
    store.build_search_postings().await.unwrap();
    assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
    assert_eq!(mismatches(&mut c).await, 0);
    let gone: Vec<Uuid> = ids
        .iter()
        .take(3 * CONVERSATIONS)
        .step_by(3)
        .copied()
        .collect();
    assert_eq!(
        as_set(&ranked(&db.url, &t, "seg").await),
        expected(&ids, "seg", &gone)
    );
    let _ = c.close().await;
}

/// A server's store builds the segments by itself, without being asked: the complete ones, and
/// the newest one up to its newest rowid once the writes pause.
#[tokio::test]
async fn the_server_builds_the_segments_in_the_background() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, _t, _ids) = laid_out(&admin).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while built(&mut c).await.len() < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
    assert_eq!(upto(&mut c, 3).await, newest_rowid(&mut c).await);
    assert_eq!(mismatches(&mut c).await, 0);
    store.close().await;
    let _ = c.close().await;
}

/// How far segment `seg` is built (0: not built).
async fn built_upto(c: &mut sqlx::PgConnection, seg: i64) -> i64 {
    sqlx::query_scalar("SELECT upto FROM search_segments WHERE seg = $1 AND built")
        .bind(seg)
        .fetch_optional(c)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// A server whose writes never pause for a second still builds the newest segment, and then
/// extends it, at its pace, so that first searches do not read the segment's newest rows
/// through the GIN index. Built only at a pause, it never was here.
#[tokio::test]
async fn the_server_builds_the_newest_segment_while_the_writes_go_on() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, ids) = laid_out(&admin).await;
    let store = std::sync::Arc::new(Store::open(&db.url, StoreOptions::default()).await.unwrap());
    // An append every 100 ms, from before the first round of the builder to the end.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop, t, id) = (store.clone(), stop.clone(), t, ids[0]);
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let input = AppendMessages {
                    messages: vec![NewMessage {
                        role: Some(Role::User),
                        content: "seg trickle".into(),
                        ..NewMessage::default()
                    }],
                    status: None,
                    metadata: None,
                };
                store.append_messages(&t, id, input, None).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    };
    // A band's worth and more in the newest segment (3).
    many(&store, &t, 45).await;
    let waiting = newest_rowid(&mut c).await;
    assert_eq!(waiting / SEG_ROWS, 3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while built_upto(&mut c, 3).await < waiting && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let upto = built_upto(&mut c, 3).await;
    assert!(upto >= waiting, "built up to {upto}, {waiting} written");
    // And the writes went on: an append after the build. One comes every 100 ms, but the build
    // may have taken the last one there was when it was read, so wait for the next (stopping
    // the writer at once made this fail now and then).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while newest_rowid(&mut c).await <= upto && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let newest = newest_rowid(&mut c).await;
    assert!(newest > upto, "the writes went on past the build");
    assert_eq!(mismatches(&mut c).await, 0);
    match std::sync::Arc::try_unwrap(store) {
        Ok(store) => store.close().await,
        Err(_) => panic!("the store is still shared"),
    }
    let _ = c.close().await;
}

/// The newest segment built as far as it went: appends after it leave it built (their rows
/// are above what it covers, and the search reads them through the index), it is built
/// further when asked, and a delete below what it covers marks it.
#[tokio::test]
async fn the_newest_segment_is_built_as_far_as_it_goes_and_appends_leave_it_built() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, mut ids) = laid_out(&admin).await;
    let store = open(&db.url).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    let first = upto(&mut c, 3).await;
    // Another era's worth of conversations, in the same segment, above what it covers.
    for k in 0..CONVERSATIONS {
        ids.push(new_conversation(&store, &t, 3, k).await);
    }
    assert_eq!(
        built(&mut c).await,
        vec![0, 1, 2, 3],
        "appends mark nothing"
    );
    assert_eq!(mismatches(&mut c).await, 0);
    let mut want = expected(&ids, "seg", &[]);
    for (k, id) in ids[ERAS * CONVERSATIONS..].iter().enumerate() {
        for j in 0..PER_CONVERSATION {
            if text(3, k, j).split(' ').any(|w| w == "seg") {
                want.insert((*id, j as i64));
            }
        }
    }
    let hits = ranked(&db.url, &t, "seg").await;
    assert_eq!(as_set(&hits), want);
    // Built further: the same answer, now from the postings.
    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    assert!(upto(&mut c, 3).await > first);
    assert_eq!(mismatches(&mut c).await, 0);
    assert_eq!(ranked(&db.url, &t, "seg").await, hits);
    // A delete at or below what it covers marks it.
    store
        .delete_conversation(&t, ids[3 * CONVERSATIONS + 1])
        .await
        .unwrap();
    assert_eq!(built(&mut c).await, vec![0, 1, 2]);
    store.close().await;
    let _ = c.close().await;
}

/// Rows appended after the newest segment's build are added to its postings by an extension:
/// only those rows are read, the postings of words they do not hold are left as they were
/// (here the other tenant's), the bytes stay in rowid order, and the searches answer as the
/// index does.
#[tokio::test]
async fn the_newest_segment_is_extended_by_the_rows_appended_since_its_build() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, mut ids) = laid_out(&admin).await;
    let store = open(&db.url).await;
    let other = store.ensure_tenant("other").await.unwrap();
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    let before = writers_of(&mut c, &other, 3).await;
    assert!(!before.is_empty());
    for round in 0..3 {
        for k in 0..CONVERSATIONS {
            ids.push(new_conversation(&store, &t, 3, k).await);
        }
        let newest = newest_rowid(&mut c).await;
        assert!(upto(&mut c, 3).await < newest);
        assert_eq!(
            store.build_search_postings().await.unwrap(),
            1,
            "round {round}"
        );
        assert_eq!(upto(&mut c, 3).await, newest);
        assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
        assert_eq!(mismatches(&mut c).await, 0, "round {round}");
        assert_eq!(out_of_order(&mut c).await, 0, "round {round}");
    }
    assert_eq!(
        writers_of(&mut c, &other, 3).await,
        before,
        "the other tenant's postings were not written again"
    );
    let mut want = expected(&ids, "seg", &[]);
    for (n, id) in ids[ERAS * CONVERSATIONS..].iter().enumerate() {
        for j in 0..PER_CONVERSATION {
            if text(3, n % CONVERSATIONS, j).split(' ').any(|w| w == "seg") {
                want.insert((*id, j as i64));
            }
        }
    }
    assert_eq!(as_set(&ranked(&db.url, &t, "seg").await), want);
    store.close().await;
    let _ = c.close().await;
}

/// Rows above what the newest segment covers are not in its postings: deleting them marks
/// nothing. Once an extension has claimed them (migration 0011), it does, so that the
/// extension gives up rather than add a deleted row.
#[tokio::test]
async fn a_delete_of_rows_an_extension_has_claimed_marks_the_segment() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, _ids) = laid_out(&admin).await;
    let store = open(&db.url).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    let (a, b) = (
        new_conversation(&store, &t, 3, 0).await,
        new_conversation(&store, &t, 3, 1).await,
    );
    store.delete_conversation(&t, a).await.unwrap();
    assert_eq!(
        built(&mut c).await,
        vec![0, 1, 2, 3],
        "above what it covers"
    );
    sqlx::query(
        "UPDATE search_segments SET claim = (SELECT max(rowid) FROM messages) WHERE seg = 3",
    )
    .execute(&mut c)
    .await
    .unwrap();
    store.delete_conversation(&t, b).await.unwrap();
    assert_eq!(built(&mut c).await, vec![0, 1, 2], "claimed");
    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
    assert_eq!(mismatches(&mut c).await, 0);
    store.close().await;
    let _ = c.close().await;
}

/// A message written before an extension and committed during it (its rowid below the newest
/// one the extension reads up to): the extension waits for it and adds it.
#[tokio::test]
async fn an_extension_waits_for_the_appends_in_flight_and_adds_them() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, _ids) = laid_out(&admin).await;
    let store = open(&db.url).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    let mut writer = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = writer.begin().await.unwrap();
    let in_flight: i64 = sqlx::query_scalar(
        "INSERT INTO messages (tenant_id, conversation_id, seq, id, role, content, created_at, fts) \
         SELECT tenant_id, conversation_id, seq + 1000, gen_random_uuid(), role, content, \
                created_at, fts FROM messages WHERE rowid = (SELECT max(rowid) FROM messages) \
         RETURNING rowid",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    // Committed above it.
    new_conversation(&store, &t, 3, 0).await;
    let newest = newest_rowid(&mut c).await;
    assert!(newest > in_flight);
    let build = tokio::spawn(async move {
        let n = store.build_search_postings().await.unwrap();
        store.close().await;
        n
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    assert_eq!(build.await.unwrap(), 1);
    assert!(upto(&mut c, 3).await >= newest);
    assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
    assert_eq!(
        mismatches(&mut c).await,
        0,
        "the message in flight was added"
    );
    let _ = writer.close().await;
    let _ = c.close().await;
}

/// Conversations appended and deleted in the newest segment while it is extended over and
/// over: after every round, its postings are exactly its messages' tokens.
#[tokio::test]
async fn extensions_racing_deletes_never_leave_the_newest_segment_stale() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, _ids) = laid_out(&admin).await;
    let store = std::sync::Arc::new(open(&db.url).await);
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    let mut appended = Vec::new();
    for round in 0..12 {
        for k in 0..3 {
            appended.push(new_conversation(&store, &t, 3, round + k).await);
        }
        let builder = store.clone();
        let build = tokio::spawn(async move { builder.build_search_postings().await.unwrap() });
        for _ in 0..round % 4 {
            tokio::task::yield_now().await;
        }
        // The newest conversation, above what the segment covers, or one the last round added.
        let gone = appended.remove(if round % 2 == 0 {
            appended.len() - 1
        } else {
            0
        });
        store.delete_conversation(&t, gone).await.unwrap();
        build.await.unwrap();
        assert_eq!(mismatches(&mut c).await, 0, "round {round}");
        assert_eq!(out_of_order(&mut c).await, 0, "round {round}");
    }
    store.build_search_postings().await.unwrap();
    assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
    assert_eq!(mismatches(&mut c).await, 0);
    let _ = c.close().await;
}

/// A word the statistics do not know, in a table of more segments than a statement asks for
/// (64): after those, the GIN index reads the rest at once rather than every segment's row
/// being asked for. Its matches below them are found all the same.
#[tokio::test]
async fn a_rare_word_below_a_statement_s_worth_of_segments_is_read_through_the_index() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, mut ids) = laid_out(&admin).await;
    let store = open(&db.url).await;
    // Seventy segments on: the newest conversation far above the eras.
    next_rowid(&mut c, 70 * SEG_ROWS + 5).await;
    ids.push(new_conversation(&store, &t, 0, 0).await);
    store.build_search_postings().await.unwrap();
    assert!(built(&mut c).await.len() > 64);
    assert_eq!(mismatches(&mut c).await, 0);
    // `lone` is only in segment 0, below the 64 newest segments.
    assert_eq!(
        as_set(&ranked(&db.url, &t, "lone").await),
        expected(&ids, "lone", &[])
    );
    let mut want = expected(&ids, "seg", &[]);
    for j in 0..PER_CONVERSATION {
        if text(0, 0, j).split(' ').any(|w| w == "seg") {
            want.insert((*ids.last().unwrap(), j as i64));
        }
    }
    assert_eq!(as_set(&ranked(&db.url, &t, "seg").await), want);
    store.close().await;
    let _ = c.close().await;
}

/// The first page of a ranked search of `word` for `t` on `store`.
async fn first_page(store: &Store, t: &TenantId, word: &str) -> Vec<(Uuid, i64, f64)> {
    page(store, t, word, None).await.0
}

/// First searches of one word made at once share their statements (postgres/first_batch.rs):
/// each, whichever tenant and word, gets the first page it gets alone, read on a connection.
/// And where the segments read are not enough (rows above what the newest one's postings
/// cover), the rest of the window is read on a connection from them on.
#[tokio::test]
async fn first_searches_made_at_once_each_get_their_own_page() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, _ids) = laid_out(&admin).await;
    let store = open(&db.url).await;
    let other = store.ensure_tenant("other").await.unwrap();
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    let words = ["seg", "lone", "filler", "every"];
    let asked: Vec<(&TenantId, &str)> = [&t, &other]
        .into_iter()
        .flat_map(|tenant| words.iter().map(move |w| (tenant, *w)))
        .collect();
    // Alone: a store's first search reads the statistics on its connection, and its window
    // there too.
    let mut alone = Vec::new();
    for (tenant, word) in &asked {
        let mut page = ranked(&db.url, tenant, word).await;
        page.truncate(25);
        alone.push(page);
    }
    // Every word has matches but `filler`, which the other tenant never says.
    assert_eq!(alone.iter().filter(|p| p.is_empty()).count(), 1);
    assert_ne!(alone[0], alone[4], "the tenants' pages of `seg` differ");

    // Together, once the statistics are read: through the batches.
    first_page(&store, &t, "nothing").await;
    let together = futures::future::join_all(
        asked
            .iter()
            .map(|(tenant, w)| first_page(&store, tenant, w)),
    )
    .await;
    assert_eq!(together, alone);
    store.close().await;

    // A message above what the newest segment's postings cover.
    let mut conv = NewConversation::new(Status::Active);
    conv.messages = vec![NewMessage {
        role: Some(Role::User),
        content: "seg seg seg seg seg lone".into(),
        ..NewMessage::default()
    }];
    let store = open(&db.url).await;
    let newer = store.create_conversation(&t, conv, None).await.unwrap();
    let newer = newer.conversation().id;
    assert!(newest_rowid(&mut c).await > upto(&mut c, 3).await);
    first_page(&store, &t, "nothing").await;
    let together =
        futures::future::join_all(["seg", "lone"].map(|w| first_page(&store, &t, w))).await;
    store.close().await;
    for (page, word) in together.iter().zip(["seg", "lone"]) {
        let mut alone = ranked(&db.url, &t, word).await;
        alone.truncate(25);
        assert_eq!(page, &alone, "{word}");
        assert!(page.iter().any(|h| h.0 == newer), "{word}");
    }
    let _ = c.close().await;
}

/// Rows of `search_postings` that lie on the heap before the row they follow in the primary
/// key's order: none once every word's rows are laid out together (postgres/layout.rs).
async fn out_of_place(c: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT ctid, lag(ctid) OVER (ORDER BY tenant_id, lexeme, seg) \
         AS prev FROM search_postings) z WHERE prev > ctid",
    )
    .fetch_one(c)
    .await
    .unwrap()
}

/// Every postings row, in the key's order.
async fn postings_rows(c: &mut sqlx::PgConnection) -> Vec<(Uuid, String, i64, Vec<u8>)> {
    sqlx::query_as(
        "SELECT tenant_id, lexeme, seg, postings FROM search_postings \
         ORDER BY tenant_id, lexeme, seg",
    )
    .fetch_all(c)
    .await
    .unwrap()
}

/// Built segments not laid out since they were built.
async fn not_laid_out(c: &mut sqlx::PgConnection) -> Vec<i64> {
    sqlx::query_scalar("SELECT seg FROM search_segments WHERE built AND NOT laid_out ORDER BY seg")
        .fetch_all(c)
        .await
        .unwrap()
}

/// Built segment by segment, each word's rows lie a segment's worth of rows apart; laid out,
/// together, with the same bytes and the same answers. A snapshot taken before the layout
/// still reads every row after it: the rows are written again in place, not in a table swapped
/// in, which would read as empty to it. Not due again until segments are built again.
#[tokio::test]
async fn a_layout_puts_each_word_s_rows_together_and_changes_no_answer() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, ids) = laid_out(&admin).await;
    let store = open(&db.url).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    assert_eq!(not_laid_out(&mut c).await, vec![0, 1, 2, 3]);
    assert!(out_of_place(&mut c).await > 0, "built segment by segment");
    let rows = postings_rows(&mut c).await;
    let words = ["seg", "lone", "every", "filler"];
    let mut before = Vec::new();
    for w in words {
        before.push(ranked(&db.url, &t, w).await);
    }

    let mut old = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut old)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM search_postings")
        .fetch_one(&mut old)
        .await
        .unwrap();
    assert!(store.lay_out_search_postings().await.unwrap());
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM search_postings")
        .fetch_one(&mut old)
        .await
        .unwrap();
    assert_eq!(still, seen, "a snapshot from before reads every row");
    let _ = old.close().await;

    assert_eq!(out_of_place(&mut c).await, 0);
    assert_eq!(postings_rows(&mut c).await, rows);
    assert_eq!(not_laid_out(&mut c).await, Vec::<i64>::new());
    assert_eq!(mismatches(&mut c).await, 0);
    for (w, hits) in words.iter().zip(&before) {
        assert_eq!(&ranked(&db.url, &t, w).await, hits, "{w}");
    }
    assert!(!store.lay_out_search_postings().await.unwrap(), "not due");

    // One segment built again is not enough for another; two are.
    store
        .delete_conversation(&t, ids[CONVERSATIONS])
        .await
        .unwrap();
    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    assert_eq!(not_laid_out(&mut c).await, vec![1]);
    assert!(
        !store.lay_out_search_postings().await.unwrap(),
        "one of four"
    );
    store
        .delete_conversation(&t, ids[2 * CONVERSATIONS])
        .await
        .unwrap();
    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    let scattered = out_of_place(&mut c).await;
    assert!(store.lay_out_search_postings().await.unwrap());
    // Written this time into the space the first layout's rows left (its VACUUM freed it),
    // page after page as the free space map hands them out, which may start again from the
    // table's first page once: in order but for that one place.
    let left = out_of_place(&mut c).await;
    assert!(
        left <= 1 && left < scattered,
        "{scattered} rows out of place, then {left}"
    );
    assert_eq!(mismatches(&mut c).await, 0);
    store.close().await;
    let _ = c.close().await;
}

/// Layouts and builds at once, with deletes between: every round ends with each built
/// segment's postings exactly its messages' tokens, whichever waited for the other.
#[tokio::test]
async fn layouts_racing_builds_and_deletes_lose_no_posting() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, t, ids) = laid_out(&admin).await;
    let store = std::sync::Arc::new(open(&db.url).await);
    assert_eq!(store.build_search_postings().await.unwrap(), 4);
    let (mut gone, mut layouts) = (Vec::new(), 0);
    for (round, id) in ids.iter().skip(1).step_by(5).take(8).enumerate() {
        // Due whatever was built since.
        sqlx::query("UPDATE search_segments SET laid_out = false")
            .execute(&mut c)
            .await
            .unwrap();
        store.delete_conversation(&t, *id).await.unwrap();
        gone.push(*id);
        let (a, b) = (store.clone(), store.clone());
        let build = tokio::spawn(async move { a.build_search_postings().await.unwrap() });
        let layout = tokio::spawn(async move { b.lay_out_search_postings().await });
        if round % 2 == 1 {
            tokio::task::yield_now().await;
        }
        build.await.unwrap();
        // A layout that waited longer than it may for the build's lock gives way (55P03).
        match layout.await.unwrap() {
            Ok(done) => layouts += usize::from(done),
            Err(e) => assert!(e.to_string().contains("lock"), "round {round}: {e}"),
        }
        assert_eq!(mismatches(&mut c).await, 0, "round {round}");
    }
    assert!(layouts > 0, "no round laid the postings out");
    store.build_search_postings().await.unwrap();
    assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
    assert_eq!(mismatches(&mut c).await, 0);
    assert_eq!(
        as_set(&ranked(&db.url, &t, "seg").await),
        expected(&ids, "seg", &gone)
    );
    let _ = c.close().await;
}

/// A server's store lays the postings out by itself once the writes pause.
#[tokio::test]
async fn the_server_lays_out_the_postings_at_a_pause() {
    let Some(admin) = pg_admin_or_skip("search postings") else {
        return;
    };
    let (db, mut c, _t, _ids) = laid_out(&admin).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (built(&mut c).await.len() < 4 || !not_laid_out(&mut c).await.is_empty())
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(built(&mut c).await, vec![0, 1, 2, 3]);
    assert_eq!(not_laid_out(&mut c).await, Vec::<i64>::new());
    assert_eq!(out_of_place(&mut c).await, 0);
    assert_eq!(mismatches(&mut c).await, 0);
    store.close().await;
    let _ = c.close().await;
}
