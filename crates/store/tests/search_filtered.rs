//! Filtered searches answer the same messages on SQLite and PostgreSQL, whichever side each
//! starts from (sqlite/driven.rs, postgres/driven.rs): within one conversation, a user's, an
//! agent's, one with none, another tenant's; every page, in both orders. Needs both
//! backends, so it runs only in the PostgreSQL pass. (Within one backend, sqlite/driven.rs's
//! unit test compares the two sides page for page.)

use std::collections::BTreeSet;

use confab_core::input::{NewConversation, NewMessage};
use confab_core::{Role, Status};
use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, TenantId};
use uuid::Uuid;

#[path = "support/pair.rs"]
mod pair;
#[path = "support/testdb.rs"]
mod testdb;
use pair::Pair;

/// Two hundred conversations of a tenant (a hundred users, four agents), 5–30 messages each,
/// after ten of another tenant: every message holds `plain`, every other `even`, every fifth
/// `fifth`, every seventh `seventh`, eight `lone`. The tenant, and its conversations' ids
/// then the other's, in the order made. A user's conversations hold about one message in a
/// hundred, few enough for PostgreSQL to start a search of `fifth` from them.
async fn load(store: &Store) -> (TenantId, Vec<Uuid>, Vec<Uuid>) {
    let mut ids = (Vec::new(), Vec::new());
    let mut n = 0u32;
    for (tenant, count) in [("other", 10u32), ("acme", 200)] {
        let t = store.ensure_tenant(tenant).await.unwrap();
        for i in 0..count {
            let mut c = NewConversation::new(if i.is_multiple_of(2) {
                Status::Active
            } else {
                Status::Completed
            });
            c.agent_id = Some(format!("agent-{}", i % 4));
            c.user_id = Some(format!("user-{}", i % 100));
            for k in 0..(5 + (i * 7) % 26) {
                n += 1;
                let mut words = vec!["plain"];
                if n.is_multiple_of(2) {
                    words.push("even");
                }
                if n.is_multiple_of(5) {
                    words.push("fifth");
                }
                if n.is_multiple_of(7) {
                    words.push("seventh");
                }
                if n.is_multiple_of(409) {
                    words.push("lone");
                }
                c.messages.push(NewMessage {
                    role: Some(if k.is_multiple_of(3) {
                        Role::User
                    } else {
                        Role::Assistant
                    }),
                    content: words.join(" "),
                    ..NewMessage::default()
                });
            }
            let id = store
                .create_conversation(&t, c, None)
                .await
                .unwrap()
                .conversation()
                .id;
            if tenant == "acme" {
                ids.0.push(id);
            } else {
                ids.1.push(id);
            }
        }
    }
    let t = store.ensure_tenant("acme").await.unwrap();
    (t, ids.0, ids.1)
}

/// Every hit of every page, as (the conversation's place in the order made, seq): ranked
/// searches as a set (the two backends score differently), newest first as a sequence.
async fn found(
    store: &Store,
    t: &TenantId,
    ids: &[Uuid],
    q: &str,
    filter: SearchFilter,
    sort: SearchSort,
) -> (Vec<(usize, i64)>, BTreeSet<(usize, i64)>) {
    let mut req = SearchRequest {
        query: confab_core::search::parse_query(q).unwrap(),
        filter,
        sort,
        limit: 9,
        cursor: None,
    };
    let mut seq = Vec::new();
    loop {
        let page = store.search(t, &req).await.unwrap();
        for h in &page.hits {
            let place = ids.iter().position(|i| *i == h.conversation_id);
            // Another tenant's message would have no place: a leak.
            seq.push((place.expect("a hit of the tenant's own"), h.seq));
        }
        match page.next_cursor {
            Some(c) => req.cursor = Some(c),
            None => break,
        }
    }
    let set = seq.iter().copied().collect();
    (seq, set)
}

#[tokio::test]
async fn both_backends_answer_filtered_searches_alike() {
    let Some(pair) = Pair::open("the comparison of filtered searches on both backends").await
    else {
        return;
    };
    let (sqlite, pg) = (&pair.sqlite, &pair.pg);
    let (ts, ids_s, theirs_s) = load(sqlite).await;
    let (tp, ids_p, theirs_p) = load(pg).await;
    // PostgreSQL weighs the sides by its statistics of the words.
    let c = sqlx::PgPool::connect(&pair.pg_db.url).await.unwrap();
    sqlx::query("ANALYZE messages").execute(&c).await.unwrap();
    c.close().await;
    // The filters, for a backend's own conversation ids.
    let filters = |ids: &[Uuid], theirs: &[Uuid]| {
        let f = SearchFilter::default;
        vec![
            SearchFilter {
                conversation_id: Some(ids[7]),
                ..f()
            },
            SearchFilter {
                conversation_id: Some(ids[199]),
                ..f()
            },
            SearchFilter {
                conversation_id: Some(ids[8]),
                role: Some(Role::User),
                ..f()
            },
            SearchFilter {
                conversation_id: Some(theirs[3]),
                ..f()
            },
            SearchFilter {
                user_id: Some("user-4".into()),
                ..f()
            },
            SearchFilter {
                user_id: Some("user-5".into()),
                status: Some(Status::Completed),
                ..f()
            },
            SearchFilter {
                agent_id: Some("agent-2".into()),
                ..f()
            },
            SearchFilter {
                agent_id: Some("agent-1".into()),
                user_id: Some("user-1".into()),
                ..f()
            },
            SearchFilter {
                agent_id: Some("nobody".into()),
                ..f()
            },
            SearchFilter {
                role: Some(Role::User),
                ..f()
            },
        ]
    };
    let (fs, fp) = (filters(&ids_s, &theirs_s), filters(&ids_p, &theirs_p));
    let mut hits = 0;
    for (a, b) in fs.iter().zip(&fp) {
        for q in [
            "plain",
            "even",
            "fifth",
            "seventh",
            "lone",
            "fifth seventh",
            "\"plain even\"",
            "fif*",
            "fifth -seventh",
        ] {
            for sort in [SearchSort::Recent, SearchSort::Relevance] {
                let (seq_s, set_s) = found(sqlite, &ts, &ids_s, q, a.clone(), sort).await;
                let (seq_p, set_p) = found(pg, &tp, &ids_p, q, b.clone(), sort).await;
                if sort == SearchSort::Recent {
                    assert_eq!(seq_s, seq_p, "{q} newest first, {a:?}");
                }
                assert_eq!(set_s, set_p, "{q} {sort:?} {a:?}");
                hits += set_s.len();
            }
        }
    }
    assert!(hits > 5_000, "only {hits} hits compared");
    pair.close().await;
}
