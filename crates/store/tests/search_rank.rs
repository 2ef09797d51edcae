//! SQLite's relevance ranking is computed in Rust from term counts (`Bm25`), not by FTS5's
//! `bm25()`: this pins that both give the same order and the same scores where every
//! statistic is exact (fewer matches than the ranking window), for words, phrases, prefixes,
//! OR groups and non-ASCII text. SQLite only: PostgreSQL ranks with `ts_rank`.

use confab_core::input::{NewConversation, NewMessage};
use confab_core::search::{parse_query, tenant_tag};
use confab_core::{Role, Status};
use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, StoreOptions};

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
    if std::env::var("CONFAB_TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty()) {
        return; // SQLite's ranking; the PostgreSQL run covers ts_rank elsewhere.
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rank.db");
    let store = Store::open(
        &format!("sqlite://{}", path.display()),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    let t = store.ensure_tenant("acme").await.unwrap();
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
    let tag = tenant_tag(t.as_uuid().as_bytes());
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
        let query = parse_query(q).unwrap();
        let page = store
            .search(
                &t,
                &SearchRequest {
                    query: query.clone(),
                    filter: SearchFilter::default(),
                    sort: SearchSort::Relevance,
                    limit: 100,
                    cursor: None,
                },
            )
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
        let got: Vec<(uuid::Uuid, f64)> =
            page.hits.iter().map(|h| (h.message_id, h.score)).collect();
        assert_eq!(got.len(), want.len(), "{q}: hit count");
        for (i, ((gid, gs), (wid, ws))) in got.iter().zip(&want).enumerate() {
            assert!((gs - ws).abs() < 1e-5, "{q}: score {i}: {gs} vs fts5 {ws}");
            // Equal scores may order either way only if they are equal in both.
            if gid != wid {
                assert!((gs - want[i].1).abs() < 1e-9, "{q}: order differs at {i}");
            }
        }
    }
    store.close().await;
}
