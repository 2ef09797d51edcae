//! The rows kept between first pages on PostgreSQL (postgres/row_cache.rs) while another
//! process updates messages, with first searches of new words running all the while: once the
//! updates stop, every page shows each message as PostgreSQL has it (with the checks' answers
//! ignored, pages showed text hundreds of updates old). The rule for a row read while a check
//! drops its tenant's rows (kept only in the generation its read followed) is pinned by
//! row_cache.rs's unit tests: here the updates go on after any such read, and the next check
//! would drop the row anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::Connection;
use uuid::Uuid;

#[path = "support/searching.rs"]
mod searching;
#[path = "support/testdb.rs"]
mod testdb;
use searching::{first_snippets, open};
use testdb::TestDb;

/// Words every message holds: searched once each while the updates run.
const RACE_WORDS: usize = 400;
/// Words every message holds too, searched only once the updates stopped.
const LAST_WORDS: usize = 12;
/// Messages: every page shows them all (the request's limit is 40).
const MESSAGES: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_kept_while_messages_change_are_never_shown_stale() {
    let Some(admin) = testdb::pg_admin_or_skip("rows kept while messages change") else {
        return;
    };
    let db = TestDb::new_pg(&admin).await;
    let store = Arc::new(open(&db.url).await);
    let t = store.ensure_tenant("acme").await.unwrap();
    let words: Vec<String> = (0..RACE_WORDS)
        .map(|i| format!("w{i}"))
        .chain((0..LAST_WORDS).map(|i| format!("f{i}")))
        .collect();
    let text = words.join(" ");
    // A segment built below the messages: they are its head, read from their tokens in the
    // first searches' shared statement, which their updates do not send to the GIN index (an
    // update marks only the segments built over it), so the updates can come as fast as they
    // may and the pages still come from the batch.
    searching::conversation(&store, &t, vec!["first".into()]).await;
    assert_eq!(store.build_search_postings().await.unwrap(), 1);
    for _ in 0..MESSAGES {
        searching::conversation(&store, &t, vec![text.clone()]).await;
    }
    // The word statistics, read once on a connection: first searches after it are batched.
    first_snippets(&store, &t, "nothing").await;

    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let rowids: Vec<i64> =
        sqlx::query_scalar("SELECT rowid FROM messages WHERE content <> 'first' ORDER BY rowid")
            .fetch_all(&mut c)
            .await
            .unwrap();
    // Searchers: each search a word not searched before, so no window of it is kept.
    let next = Arc::new(AtomicUsize::new(0));
    let mut searchers = Vec::new();
    for _ in 0..6 {
        let (store, next) = (store.clone(), next.clone());
        searchers.push(tokio::spawn(async move {
            let mut searched = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= RACE_WORDS {
                    break;
                }
                let page = first_snippets(&store, &t, &format!("w{i}")).await;
                assert_eq!(page.len(), MESSAGES, "w{i}");
                searched += 1;
            }
            searched
        }));
    }
    // Another process rewrites the messages' text (their tokens stay), one at a time, for as
    // long as words are left to search.
    let mut round = 0;
    while next.load(Ordering::Relaxed) < RACE_WORDS {
        round += 1;
        sqlx::query("UPDATE messages SET content = $1 WHERE rowid = $2")
            .bind(format!("version {round}"))
            .bind(rowids[(round * 7) % rowids.len()])
            .execute(&mut c)
            .await
            .unwrap();
    }
    let mut searched = 0;
    for s in searchers {
        searched += s.await.unwrap();
    }
    assert!(round > 10, "{round} updates beside the searches");
    assert_eq!(searched, RACE_WORDS);

    // Each message as PostgreSQL has it, whatever was kept of it.
    let now: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, content FROM messages")
        .fetch_all(&mut c)
        .await
        .unwrap();
    for i in 0..LAST_WORDS {
        let word = format!("f{i}");
        let page = first_snippets(&store, &t, &word).await;
        assert_eq!(page.len(), MESSAGES, "{word}");
        for (id, snippet, _) in &page {
            let (_, content) = now.iter().find(|m| m.0 == *id).unwrap();
            if content.starts_with("version") {
                assert_eq!(snippet, content, "{word}: {id} shown stale");
            } else {
                assert!(
                    snippet.contains(&format!("<mark>{word}</mark>")),
                    "{snippet}"
                );
            }
        }
    }
    store.close().await;
    let _ = c.close().await;
}
