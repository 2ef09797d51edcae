//! A repeated ranked search answers what a first one would. On SQLite a query's window of
//! candidates is kept in memory and brought forward by the next search of the query
//! (sqlite/windows.rs); here, after every kind of change that could make a kept window wrong
//! (appends that outrank it, a deleted conversation, messages pushed out of the window, a
//! rebuilt index, an old cursor followed after a newer first page), each search on the store is
//! compared, page by page, with the same search on a second store opened afresh on the same
//! database, which has nothing kept. PostgreSQL keeps windows as well, checked against the
//! changes its snapshot cannot see (postgres/kept.rs): the same test holds there, and a last one
//! commits changes out of rowid order.

use confab_store::{RANK_WINDOW, SearchPage, Store, TenantId};
use uuid::Uuid;

#[path = "support/testdb.rs"]
mod testdb;
use testdb::TestDb;
#[path = "support/searching.rs"]
mod searching;
use searching::*;

const CONVERSATIONS: usize = 120;
const PER_CONVERSATION: usize = 10;

/// The queries compared: a word in every message (more than a window of it), one in some, one
/// in few, two words, and a word with an exclusion.
const QUERIES: [&str; 5] = ["alpha", "beta", "gamma", "alpha beta", "alpha -beta"];

/// Three pages of every query on `store` and on a store opened afresh on `url`: the same.
async fn same_as_fresh(store: &Store, url: &str, t: &TenantId, when: &str) {
    let fresh = open(url).await;
    for q in QUERIES {
        let mut cursor = None;
        for page in 0..3 {
            let kept = store.search(t, &request(q, cursor)).await.unwrap();
            let first = fresh.search(t, &request(q, cursor)).await.unwrap();
            assert_eq!(shown(&kept), shown(&first), "{when}: `{q}`, page {page}");
            match kept.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
    fresh.close().await;
}

/// A new PostgreSQL database, or `None` (saying so) when the suites run on SQLite.
async fn pg_only(what: &str) -> Option<TestDb> {
    let admin = testdb::pg_admin_or_skip(what)?;
    Some(TestDb::new_pg(&admin).await)
}

#[tokio::test]
async fn a_repeated_search_answers_what_a_first_one_would() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("kept.db")).await;
    let store = open(&db.url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let other = store.ensure_tenant("other").await.unwrap();
    let mut convs = Vec::new();
    for c in 0..CONVERSATIONS {
        let texts = (0..PER_CONVERSATION).map(|j| text(c * PER_CONVERSATION + j));
        convs.push(conversation(&store, &t, texts.collect()).await);
    }
    assert!(CONVERSATIONS * PER_CONVERSATION > RANK_WINDOW as usize);
    // The other tenant has the same words: its windows must never answer for this one.
    let theirs = (0..50).map(|i| format!("alpha alpha alpha beta gamma {i}"));
    conversation(&store, &other, theirs.collect()).await;

    same_as_fresh(&store, &db.url, &t, "first searches").await;
    same_as_fresh(&store, &db.url, &t, "the same searches again").await;

    // Appends that outrank the kept window, and some that do not match at all.
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
    same_as_fresh(&store, &db.url, &t, "after a few appends").await;

    // An old cursor, taken before more appends and followed after a newer first page.
    let old = store.search(&t, &request("alpha", None)).await.unwrap();
    let cursor = old.next_cursor.expect("a second page");
    append(&store, &t, convs[5], vec!["alpha beta".into(); 3]).await;
    same_as_fresh(&store, &db.url, &t, "after appends behind a cursor").await;
    let kept = store
        .search(&t, &request("alpha", Some(cursor)))
        .await
        .unwrap();
    let fresh = open(&db.url).await;
    let first = fresh
        .search(&t, &request("alpha", Some(cursor)))
        .await
        .unwrap();
    fresh.close().await;
    assert_eq!(shown(&kept), shown(&first), "an old cursor's page");

    // More new matches than a window holds: the kept window is pushed out whole.
    for &c in &convs[..12] {
        append(&store, &t, c, (0..100).map(|i| text(i + 7)).collect()).await;
    }
    same_as_fresh(&store, &db.url, &t, "after a window's worth of appends").await;
    // More rows since the windows' snapshot than PostgreSQL reads one by one to bring a window
    // forward (4,096, postgres/kept.rs `NEAR_ROWS`), fewer than it reads again instead.
    for &c in &convs[12..54] {
        append(&store, &t, c, (0..100).map(|i| text(i + 11)).collect()).await;
    }
    same_as_fresh(
        &store,
        &db.url,
        &t,
        "after appends of more rows than a near forward",
    )
    .await;

    // Deleted messages inside kept windows, the best hits among them.
    append(
        &store,
        &t,
        convs[30],
        vec!["alpha alpha alpha alpha alpha".into(); 5],
    )
    .await;
    // The newest message stays: the deletes leave the snapshot where it was.
    append(&store, &t, convs[31], vec!["unrelated".into()]).await;
    same_as_fresh(&store, &db.url, &t, "before deletes").await;
    let best = store.search(&t, &request("alpha", None)).await.unwrap();
    assert_eq!(best.hits[0].conversation_id, convs[30]);
    store.delete_conversation(&t, convs[30]).await.unwrap();
    store.delete_conversation(&t, convs[11]).await.unwrap();
    same_as_fresh(&store, &db.url, &t, "after deletes").await;
    append(&store, &t, convs[20], vec!["alpha gamma".into()]).await;
    same_as_fresh(&store, &db.url, &t, "after deletes then an append").await;
    // A delete and an append unseen by the same windows: read again, not brought forward past
    // the append alone (PostgreSQL, postgres/kept.rs).
    store.delete_conversation(&t, convs[10]).await.unwrap();
    append(&store, &t, convs[21], vec!["alpha beta gamma".into()]).await;
    same_as_fresh(&store, &db.url, &t, "after a delete and an append together").await;

    // A rebuilt index.
    store.rebuild_search_index().await.unwrap();
    same_as_fresh(&store, &db.url, &t, "after the index was rebuilt").await;

    // The other tenant's searches see only its own messages, before and after this one's.
    let theirs = store.search(&other, &request("alpha", None)).await.unwrap();
    assert_eq!(theirs.hits.len(), 40);
    let fresh = open(&db.url).await;
    let first = fresh.search(&other, &request("alpha", None)).await.unwrap();
    fresh.close().await;
    assert_eq!(shown(&theirs), shown(&first), "the other tenant");
    store.close().await;
}

/// PostgreSQL keeps windows too (postgres/kept.rs), and there rowids do not order commits: a
/// transaction running while a search reads its window can commit a row below that window's
/// largest rowid, or delete one inside it, afterwards. The next search must see both.
#[tokio::test]
async fn a_kept_window_sees_what_commits_out_of_order() {
    let Some(db) = pg_only("a_kept_window_sees_what_commits_out_of_order").await else {
        return;
    };
    use sqlx::Connection;
    let store = open(&db.url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut ids = Vec::new();
    for texts in [["zebra one", "zebra two"], ["plain", "words"]] {
        ids.push(conversation(&store, &t, texts.map(String::from).to_vec()).await);
    }
    let found = |p: &SearchPage| -> Vec<String> {
        let mut v: Vec<String> = p.hits.iter().map(|h| h.snippet.clone()).collect();
        v.sort();
        v
    };
    let zebra = || request("zebra", None);
    let mut raw = sqlx::PgConnection::connect(&db.url).await.unwrap();
    // A transaction takes a rowid and holds it uncommitted (the row's tokens copied from one
    // that matches), while an append with a larger rowid commits and a search reads and keeps
    // its window.
    sqlx::raw_sql(
        "BEGIN; INSERT INTO messages (tenant_id, conversation_id, seq, id, role, content, \
         created_at, fts) SELECT tenant_id, conversation_id, 100, gen_random_uuid(), role, \
         'zebra late', created_at, fts FROM messages WHERE content = 'zebra one'",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    append(&store, &t, ids[1], vec!["zebra after".into()]).await;
    let first = store.search(&t, &zebra()).await.unwrap();
    assert_eq!(
        found(&first),
        [
            "<mark>zebra</mark> after",
            "<mark>zebra</mark> one",
            "<mark>zebra</mark> two"
        ]
    );
    assert_eq!(
        found(&store.search(&t, &zebra()).await.unwrap()),
        found(&first)
    );
    sqlx::raw_sql("COMMIT").execute(&mut raw).await.unwrap();
    let late = store.search(&t, &zebra()).await.unwrap();
    assert_eq!(
        late.hits.len(),
        4,
        "the row committed late: {:?}",
        found(&late)
    );
    same_as_fresh(&store, &db.url, &t, "after a row committed out of order").await;

    // A delete, uncommitted while a window is read and kept, committed after.
    sqlx::raw_sql("BEGIN; DELETE FROM messages WHERE content = 'zebra two'")
        .execute(&mut raw)
        .await
        .unwrap();
    assert_eq!(store.search(&t, &zebra()).await.unwrap().hits.len(), 4);
    assert_eq!(store.search(&t, &zebra()).await.unwrap().hits.len(), 4);
    sqlx::raw_sql("COMMIT").execute(&mut raw).await.unwrap();
    let gone = store.search(&t, &zebra()).await.unwrap();
    assert!(
        !found(&gone).contains(&"<mark>zebra</mark> two".to_owned()),
        "{:?}",
        found(&gone)
    );
    assert_eq!(gone.hits.len(), 3);
    same_as_fresh(&store, &db.url, &t, "after a delete committed late").await;
    let _ = raw.close().await;
    store.close().await;
}

/// Many searches at once, of two tenants, one of which has just written: on PostgreSQL their
/// checks of kept windows go to PostgreSQL together (postgres/kept.rs), and each search must get
/// its own tenant's answer.
#[tokio::test]
async fn searches_checked_together_each_get_their_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("together.db")).await;
    let store = std::sync::Arc::new(open(&db.url).await);
    let mut tenants = Vec::new();
    for name in ["one", "two"] {
        let t = store.ensure_tenant(name).await.unwrap();
        let texts = (0..30).map(|i| format!("okapi {name} {i}"));
        let id = conversation(&store, &t, texts.collect()).await;
        tenants.push((t, id));
    }
    let many = |n: usize| {
        let store = store.clone();
        let tenants = tenants.clone();
        async move {
            let all = (0..n).map(|i| {
                let (store, t) = (store.clone(), tenants[i % 2].0);
                tokio::spawn(async move {
                    let p = store.search(&t, &request("okapi", None)).await.unwrap();
                    (i % 2, p.hits.len(), p.hits[0].snippet.clone())
                })
            });
            let mut out = Vec::new();
            for h in all.collect::<Vec<_>>() {
                out.push(h.await.unwrap());
            }
            out
        }
    };
    // Windows and their first pages' rows kept for both.
    many(4).await;
    append(
        &store,
        &tenants[0].0,
        tenants[0].1,
        vec!["okapi okapi okapi new".into()],
    )
    .await;
    for (tenant, hits, best) in many(64).await {
        assert_eq!(hits, 40.min(if tenant == 0 { 31 } else { 30 }));
        if tenant == 0 {
            assert_eq!(
                best,
                "<mark>okapi</mark> <mark>okapi</mark> <mark>okapi</mark> new"
            );
        } else {
            assert!(best.contains("two"), "{best}");
        }
    }
    std::sync::Arc::into_inner(store).unwrap().close().await;
}

/// PostgreSQL without the search changes' triggers (dropped for Citus, docs/operations.md):
/// nothing can tell a kept window is stale, so none is kept, and searches follow every write.
#[tokio::test]
async fn without_the_triggers_nothing_is_kept() {
    let Some(db) = pg_only("without_the_triggers_nothing_is_kept").await else {
        return;
    };
    use sqlx::Connection;
    // The schema first, then the triggers dropped, then the store that searches.
    open(&db.url).await.close().await;
    let mut raw = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER search_changes_insert ON messages; \
         DROP TRIGGER search_changes_update ON messages; \
         DROP TRIGGER search_changes_delete ON messages",
    )
    .execute(&mut raw)
    .await
    .unwrap();
    let _ = raw.close().await;
    let store = open(&db.url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let id = conversation(&store, &t, vec!["ibex one".into()]).await;
    for n in 1..=3 {
        let p = store.search(&t, &request("ibex", None)).await.unwrap();
        assert_eq!(p.hits.len(), n);
        assert_eq!(
            store
                .search(&t, &request("ibex", None))
                .await
                .unwrap()
                .hits
                .len(),
            n
        );
        append(&store, &t, id, vec![format!("ibex {n}")]).await;
    }
    store.close().await;
}

/// A cursor followed after the newest messages were deleted reads up to a snapshot above every
/// rowid there now is; the next appends take rowids at or below it, and the window that search
/// keeps must not hide them from later searches.
#[tokio::test]
async fn a_cursor_past_the_newest_rowid_does_not_hide_the_next_appends() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("reuse.db")).await;
    let store = open(&db.url).await;
    let t = store.ensure_tenant("acme").await.unwrap();
    let old = conversation(&store, &t, (0..50).map(|i| format!("delta {i}")).collect()).await;
    let newest = conversation(
        &store,
        &t,
        (0..5).map(|i| format!("delta new {i}")).collect(),
    )
    .await;
    let first = store.search(&t, &request("delta", None)).await.unwrap();
    let cursor = first.next_cursor.expect("55 hits: a second page");
    store.delete_conversation(&t, newest).await.unwrap();
    // On SQLite the deleted messages' rowids are free again, and this page's snapshot lies
    // above every one left.
    store
        .search(&t, &request("delta", Some(cursor)))
        .await
        .unwrap();
    // Six: past that snapshot, so that a later first page could start from its window.
    let appended: Vec<String> = (0..6).map(|i| format!("appended{i}")).collect();
    append(
        &store,
        &t,
        old,
        appended.iter().map(|a| format!("delta {a}")).collect(),
    )
    .await;
    let hits = every_hit(&store, &t, "delta").await;
    for a in &appended {
        assert!(
            hits.iter().any(|(s, _)| s.contains(a.as_str())),
            "{a} is missing from {} hits",
            hits.len()
        );
    }
    assert_eq!(hits.len(), 56);
    let fresh = open(&db.url).await;
    assert_eq!(hits, every_hit(&fresh, &t, "delta").await);
    fresh.close().await;
    store.close().await;
}

/// Every page of `q` on `store`, first to last: each hit's snippet and conversation.
async fn every_hit(store: &Store, t: &TenantId, q: &str) -> Vec<(String, Uuid)> {
    let (mut out, mut cursor) = (Vec::new(), None);
    loop {
        let p = store.search(t, &request(q, cursor)).await.unwrap();
        out.extend(
            p.hits
                .iter()
                .map(|h| (h.snippet.clone(), h.conversation_id)),
        );
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Writers and searchers at once, the kept windows brought forward, renewed and read again
/// under them (on PostgreSQL the writes commit in batches of their own, out of rowid order).
/// Whatever the interleaving, a search that starts after a write was acknowledged sees it: each
/// writer appends a message with a mark of its own and then finds it by a kept query, and
/// deletes a conversation and then finds none of it. When everyone has stopped, every query
/// answers what a store opened afresh answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn searches_beside_concurrent_writers_see_every_acknowledged_write() {
    const WRITERS: usize = 4;
    const ROUNDS: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("busy.db")).await;
    let store = std::sync::Arc::new(open(&db.url).await);
    let t = store.ensure_tenant("acme").await.unwrap();
    let mut convs = Vec::new();
    for c in 0..40 {
        let texts = (0..PER_CONVERSATION).map(|j| text(c * PER_CONVERSATION + j));
        convs.push(conversation(&store, &t, texts.collect()).await);
    }
    for q in QUERIES {
        store.search(&t, &request(q, None)).await.unwrap();
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Searchers keep every query's window in use (kept, brought forward or read again).
    let searchers: Vec<_> = (0..3)
        .map(|s| {
            let (store, done) = (store.clone(), done.clone());
            tokio::spawn(async move {
                let mut n = 0usize;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let q = QUERIES[(s + n) % QUERIES.len()];
                    let p = store.search(&t, &request(q, None)).await.unwrap();
                    let mut ids: Vec<Uuid> = p.hits.iter().map(|h| h.message_id).collect();
                    ids.sort();
                    ids.dedup();
                    assert_eq!(ids.len(), p.hits.len(), "`{q}`: a message twice on a page");
                    n += 1;
                    // A SQLite search from a kept window never waits, so without this the loop
                    // would hold its worker thread and starve a writer's task woken there.
                    tokio::task::yield_now().await;
                }
                n
            })
        })
        .collect();
    // Writer `w` owns the conversations `w`, `w + WRITERS`, …: it appends to them and deletes
    // some, so no writer's append meets another's delete.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, mine) = (store.clone(), convs.clone());
            tokio::spawn(async move {
                let mine: Vec<Uuid> = mine.into_iter().skip(w).step_by(WRITERS).collect();
                let mut live = mine.len();
                for r in 0..ROUNDS {
                    let at = mine[r % live];
                    let mark = format!("mk{w}x{r}");
                    let texts = vec![text(w * 1000 + r), format!("gamma {mark}")];
                    append(&store, &t, at, texts).await;
                    let hits = every_hit(&store, &t, "gamma").await;
                    assert!(
                        hits.iter().any(|(s, c)| *c == at && s.contains(&mark)),
                        "writer {w}, round {r}: {mark} not found among {} hits",
                        hits.len()
                    );
                    if r % 10 == 9 {
                        // The last of the live ones goes, with the mark just written to it.
                        live -= 1;
                        let gone = mine[live];
                        append(&store, &t, gone, vec![format!("gamma last{w}x{r}")]).await;
                        store.delete_conversation(&t, gone).await.unwrap();
                        for q in ["gamma", "beta"] {
                            let hits = every_hit(&store, &t, q).await;
                            assert!(
                                hits.iter().all(|(_, c)| *c != gone),
                                "writer {w}, round {r}: `{q}` found a deleted conversation"
                            );
                        }
                    }
                }
            })
        })
        .collect();
    for h in writers {
        h.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let searched: usize = futures_sum(searchers).await;
    assert!(searched > 0);
    for q in QUERIES {
        let fresh = open(&db.url).await;
        assert_eq!(
            every_hit(&store, &t, q).await,
            every_hit(&fresh, &t, q).await,
            "`{q}` after the writers stopped"
        );
        fresh.close().await;
    }
    same_as_fresh(&store, &db.url, &t, "after concurrent writers").await;
    std::sync::Arc::into_inner(store).unwrap().close().await;
}

async fn futures_sum(handles: Vec<tokio::task::JoinHandle<usize>>) -> usize {
    let mut n = 0;
    for h in handles {
        n += h.await.unwrap();
    }
    n
}
