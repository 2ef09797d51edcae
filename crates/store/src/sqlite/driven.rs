//! Where a filtered search's candidates come from: the full-text index, newest match first,
//! each joined to its row and tested against the filters; or, when the filters name a few
//! conversations, those conversations' messages, each asked of the index by rowid.
//!
//! Why both. Walked from the index, a search within one conversation (or one user's, or an
//! agent that has none) of a word found in most messages tested every match of the word and
//! kept almost none: 0.30 s for a conversation of 55 messages, 0.56 s for a user's 17
//! conversations, on the benchmark's million messages (and ten times that on ten million).
//! From the conversations' side the same answers took 0.29 ms and 15 ms: FTS5 finds a rowid's
//! match in its doclists in 5–8 µs, against 0.7 µs for each match walked with its joins.
//! A rare word is the other way round: its 228 matches walk in 0.2 ms, where asking about
//! each of a user's 2,000 messages takes 15. So the search counts first, both bounded.
//!
//! The answer is the same either way: the newest matches that pass the filters, up to the
//! search's snapshot or cursor; only the order they are found in differs, and the window is
//! sorted by rowid after gathering (`rank::Candidates::newest`) as a page newest first is by
//! its `ORDER BY`.

use rusqlite::Connection;

use super::raw::{self, Sql, blob};
use crate::error::Result;
use crate::search::{SearchFilter, SearchRequest};
use crate::types::TenantId;
use confab_core::cursor::SearchCursor;

/// Where the candidates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Drive {
    /// The index's matches, newest first, each looked up and filtered.
    Index,
    /// The filtered conversations' messages, each looked up in the index by rowid.
    Conversations,
}

impl Drive {
    /// The candidates' rowid to bound and order them by. Driven by the conversations, the
    /// message's: an order or a range on the index's own rowid asks FTS5 to read its doclists
    /// newest first, which it does by loading them whole at every rowid asked about (42 ms
    /// against 0.18 for a conversation's 55 messages).
    pub(super) fn rowid(self) -> &'static str {
        match self {
            Drive::Index => "messages_fts.rowid",
            Drive::Conversations => "m.rowid",
        }
    }
}

/// What asking the index about one message costs against walking one of its matches with its
/// joins (5–8 µs against 0.7 µs, measured on the benchmark's store; see the module's doc).
const PROBE: i64 = 10;

/// The most conversations a search counts the messages of before walking the index instead:
/// counting them costs about 0.5 µs each, and this many hold more than [`MOST_HELD`] messages
/// unless they average under twenty.
const MOST_CONVERSATIONS: i64 = 1024;

/// The most messages a search asks the index about one by one: about 0.1 s of it. Past
/// this, counting the query's matches to compare (up to ten times as many) would cost more
/// than it could save.
const MOST_HELD: i64 = 20_000;

/// Where `req`'s candidates should come from.
pub(super) fn choose(c: &Connection, tenant: TenantId, req: &SearchRequest) -> Result<Drive> {
    #[cfg(test)]
    if let Some(drive) = FORCE.get() {
        return Ok(drive);
    }
    let f = &req.filter;
    if !f.names_conversations() {
        // Nothing names few conversations by an index: `source` and `status` each hold a
        // large share of them.
        if !f.is_empty() {
            counted(Drive::Index);
        }
        return Ok(Drive::Index);
    }
    let drive = weighed(c, tenant, req)?;
    counted(drive);
    Ok(drive)
}

/// `confab_store_search_filtered_total{from}`: filtered searches by the side they start from.
fn counted(drive: Drive) {
    let from = match drive {
        Drive::Index => "index",
        Drive::Conversations => "conversations",
    };
    metrics::counter!("confab_store_search_filtered_total", "from" => from).increment(1);
}

/// [`choose`] for filters that name conversations: both sides counted, bounded.
///
/// The walk is weighed by every match it may read, not by where it would stop: a search
/// stops once it has its window or page, but the filtered messages are seldom spread like
/// the rest. A conversation's lie together, and so do a user's that talked for one week: a
/// walk reads every match newer than them first. Taken as spread evenly, a mid-frequency
/// word newest first within one user's conversations was walked (40 ms) where asking about
/// their 1,683 messages took 12.
fn weighed(c: &Connection, tenant: TenantId, req: &SearchRequest) -> Result<Drive> {
    let f = &req.filter;
    let (conversations, held) = held(c, tenant, f)?;
    if conversations == 0 {
        // No conversation passes: nothing to ask about, answered at once.
        return Ok(Drive::Conversations);
    }
    if conversations > MOST_CONVERSATIONS || held > MOST_HELD {
        return Ok(Drive::Index);
    }
    // Count the query's matches, up to the cost of the other way (a walk of the index alone,
    // about 35 ns a match: at most 7 ms).
    let matches = matches_up_to(c, tenant, req, PROBE * held)?;
    Ok(if matches >= PROBE * held {
        Drive::Conversations
    } else {
        Drive::Index
    })
}

/// How many conversations pass `f`'s conversation filters (up to one more than
/// [`MOST_CONVERSATIONS`]), and how many messages they hold.
fn held(c: &Connection, tenant: TenantId, f: &SearchFilter) -> Result<(i64, i64)> {
    let mut q = Sql::default();
    q.push("SELECT count(*), total(n) FROM (SELECT c.message_count AS n FROM conversations c WHERE c.tenant_id = ")
        .bind(blob(&tenant.0));
    push_conversation_filters(&mut q, f);
    q.push(" LIMIT ").bind(MOST_CONVERSATIONS + 1).push(")");
    let got = raw::one(c, &q.text, rusqlite::params_from_iter(&q.args), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)? as i64))
    })?;
    Ok(got.unwrap_or((0, 0)))
}

/// `AND …` of every filter on the conversation row `c`, its id included.
pub(super) fn push_conversation_filters(q: &mut Sql, f: &SearchFilter) {
    if let Some(v) = f.conversation_id {
        q.push(" AND c.id = ").bind(blob(&v));
    }
    if let Some(v) = &f.agent_id {
        q.push(" AND c.agent_id = ").bind(v.clone());
    }
    if let Some(v) = &f.user_id {
        q.push(" AND c.user_id = ").bind(v.clone());
    }
    if let Some(v) = &f.source {
        q.push(" AND c.source = ").bind(v.clone());
    }
    if let Some(v) = f.status {
        q.push(" AND c.status = ").bind(v.as_str().to_owned());
    }
}

/// The query's matches within the search's bounds, counted newest first up to `cap`.
fn matches_up_to(c: &Connection, tenant: TenantId, req: &SearchRequest, cap: i64) -> Result<i64> {
    let mut q = Sql::default();
    q.push("SELECT count(*) FROM (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ")
        .bind(
            req.query
                .to_fts5(&confab_core::search::tenant_tag(tenant.0.as_bytes())),
        );
    match req.cursor {
        Some(SearchCursor::Ranked { snapshot, .. }) => {
            q.push(" AND rowid <= ").bind(snapshot);
        }
        Some(SearchCursor::Recent { before }) => {
            q.push(" AND rowid < ").bind(before);
        }
        None => {}
    }
    q.push(" ORDER BY rowid DESC LIMIT ").bind(cap).push(")");
    let n = raw::one(c, &q.text, rusqlite::params_from_iter(&q.args), |r| {
        Ok(r.get::<_, i64>(0)?)
    })
    .map_err(super::search::fts_errors)?;
    Ok(n.unwrap_or(0))
}

#[cfg(test)]
thread_local! {
    /// Where the next searches on this thread take their candidates from, whatever [`choose`]
    /// would say: for comparing the two.
    pub(super) static FORCE: std::cell::Cell<Option<Drive>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
mod tests {
    use confab_core::input::{NewConversation, NewMessage};
    use confab_core::search::parse_query;
    use confab_core::{Role, Status};
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::search::{SearchHit, SearchSort};
    use crate::sqlite::{SqliteStore, fastread, search};

    /// Forty conversations of a tenant (three agents, ten users, two sources, two statuses),
    /// 10–60 messages each, roles taking turns, a minute apart: `common` in nine messages of
    /// ten, `mid` in one of eight, `rare` in three. Another tenant holds the same words under
    /// the same agents and users. The first tenant, its conversations' ids and the other's.
    async fn corpus(store: &SqliteStore) -> (TenantId, Vec<uuid::Uuid>, Vec<uuid::Uuid>) {
        let base = OffsetDateTime::now_utc() - Duration::days(1);
        let mut seed = 7u64;
        let mut next = move |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        let mut at = 0i64;
        let mut ids = (Vec::new(), Vec::new());
        let mut rare = 0;
        // The other tenant first, so that the newest message, a ranked cursor's snapshot, is one
        // of the first's.
        for tenant in ["other", "acme"] {
            let t = store.ensure_tenant(tenant).await.unwrap();
            for i in 0..40u64 {
                let mut conv = NewConversation::new(if i % 3 == 0 {
                    Status::Completed
                } else {
                    Status::Active
                });
                conv.agent_id = Some(format!("agent-{}", i % 3));
                conv.user_id = Some(format!("u{}", next(10)));
                conv.source = Some(if i % 4 == 0 { "app" } else { "web" }.to_owned());
                conv.created_at = Some(base + Duration::minutes(at));
                let n = 10 + next(51);
                for k in 0..n {
                    at += 1;
                    let mut words = vec!["hello", "there"];
                    if next(10) != 0 {
                        words.push("common");
                    }
                    if next(8) == 0 {
                        words.insert(1, "mid");
                        words.insert(2, "common");
                    }
                    if next(200) == 0 && rare < 6 {
                        rare += 1;
                        words.push("rare");
                    }
                    words.push(["alpha", "beta", "gamma"][next(3) as usize]);
                    conv.messages.push(NewMessage {
                        role: Some(if k % 2 == 0 {
                            Role::User
                        } else {
                            Role::Assistant
                        }),
                        content: words.join(" "),
                        created_at: Some(base + Duration::minutes(at)),
                        ..Default::default()
                    });
                }
                let c = store.create_conversation(t, conv, None).await.unwrap();
                let id = c.conversation().id;
                if tenant == "acme" {
                    ids.0.push(id)
                } else {
                    ids.1.push(id)
                }
            }
        }
        let acme = store.ensure_tenant("acme").await.unwrap();
        (acme, ids.0, ids.1)
    }

    /// Every page of `req`, following its cursors, with its candidates taken from `drive`.
    fn pages(
        store: &SqliteStore,
        t: TenantId,
        req: &SearchRequest,
        drive: Drive,
    ) -> Vec<(Vec<SearchHit>, Option<SearchCursor>)> {
        let mut req = req.clone();
        let mut out = Vec::new();
        loop {
            let page = store
                .fast
                .with(|c| {
                    FORCE.set(Some(drive));
                    let page = fastread::snapshot(c, |c| {
                        search::search(c, &store.fast.lengths, &store.fast.windows, t, &req)
                    });
                    FORCE.set(None);
                    page
                })
                .unwrap();
            req.cursor = page.next_cursor;
            let done = req.cursor.is_none();
            out.push((page.hits, page.next_cursor));
            if done || out.len() > 400 {
                return out;
            }
        }
    }

    fn request(q: &str, filter: SearchFilter, sort: SearchSort) -> SearchRequest {
        SearchRequest {
            query: parse_query(q).unwrap(),
            filter,
            sort,
            limit: 7,
            cursor: None,
        }
    }

    /// Whichever side a filtered search starts from, it answers the same pages: the same
    /// messages, scores, snippets and cursors, in both orders, for queries of every kind and
    /// filters of every kind, another tenant's conversation included.
    #[tokio::test]
    async fn both_sides_answer_the_same_pages() {
        let (_dir, store) = crate::sqlite::tests::temp_store().await;
        let (t, ids, theirs) = corpus(&store).await;
        let mid_time = OffsetDateTime::now_utc() - Duration::hours(10);
        let f = SearchFilter::default;
        let filters = [
            SearchFilter {
                conversation_id: Some(ids[3]),
                ..f()
            },
            SearchFilter {
                conversation_id: Some(ids[39]),
                ..f()
            },
            SearchFilter {
                conversation_id: Some(ids[4]),
                role: Some(Role::Assistant),
                ..f()
            },
            SearchFilter {
                conversation_id: Some(ids[5]),
                agent_id: Some("agent-0".into()),
                ..f()
            },
            SearchFilter {
                conversation_id: Some(theirs[0]),
                ..f()
            },
            SearchFilter {
                agent_id: Some("agent-1".into()),
                ..f()
            },
            SearchFilter {
                agent_id: Some("nobody".into()),
                ..f()
            },
            SearchFilter {
                user_id: Some("u3".into()),
                ..f()
            },
            SearchFilter {
                user_id: Some("u4".into()),
                status: Some(Status::Completed),
                ..f()
            },
            SearchFilter {
                user_id: Some("u5".into()),
                created_after: Some(mid_time),
                ..f()
            },
            SearchFilter {
                agent_id: Some("agent-2".into()),
                user_id: Some("u1".into()),
                source: Some("web".into()),
                ..f()
            },
            SearchFilter {
                user_id: Some("u6".into()),
                created_before: Some(mid_time),
                role: Some(Role::User),
                ..f()
            },
        ];
        let queries = [
            "common",
            "mid",
            "rare",
            "common mid",
            "\"mid common\"",
            "comm*",
            "common -mid",
            "rare OR mid",
        ];
        let mut compared = 0;
        for filter in &filters {
            for q in queries {
                for sort in [SearchSort::Relevance, SearchSort::Recent] {
                    let req = request(q, filter.clone(), sort);
                    let walked = pages(&store, t, &req, Drive::Index);
                    let asked = pages(&store, t, &req, Drive::Conversations);
                    assert_eq!(walked, asked, "{q} {sort:?} {filter:?}");
                    compared += walked.iter().map(|p| p.0.len()).sum::<usize>();
                }
            }
        }
        // Enough hits that a difference could show.
        assert!(compared > 3_000, "{compared} hits compared");
        store.close().await;
    }

    /// The side each search starts from, as the module's doc reasons: a common word within a
    /// conversation or an agent that has none from the conversations; a rare one, or a filter
    /// no index narrows, from the index.
    #[tokio::test]
    async fn a_few_conversations_are_asked_about_and_a_rare_word_walked() {
        let (_dir, store) = crate::sqlite::tests::temp_store().await;
        let (t, ids, _) = corpus(&store).await;
        let f = SearchFilter::default;
        let cases = [
            (
                "common",
                SearchFilter {
                    conversation_id: Some(ids[3]),
                    ..f()
                },
                Drive::Conversations,
            ),
            (
                "hello common",
                SearchFilter {
                    conversation_id: Some(ids[3]),
                    ..f()
                },
                Drive::Conversations,
            ),
            (
                "common",
                SearchFilter {
                    agent_id: Some("nobody".into()),
                    ..f()
                },
                Drive::Conversations,
            ),
            (
                "rare",
                SearchFilter {
                    conversation_id: Some(ids[3]),
                    ..f()
                },
                Drive::Index,
            ),
            (
                "common",
                SearchFilter {
                    source: Some("nowhere".into()),
                    ..f()
                },
                Drive::Index,
            ),
            (
                "common",
                SearchFilter {
                    role: Some(Role::Tool),
                    ..f()
                },
                Drive::Index,
            ),
        ];
        for (q, filter, side) in cases {
            let req = request(q, filter.clone(), SearchSort::Relevance);
            let got = store.fast.with(|c| choose(c, t, &req)).unwrap();
            assert_eq!(got, side, "{q} {filter:?}");
        }
        store.close().await;
    }

    /// From the conversations' side, the filtered conversations are found by an index, their
    /// messages by `messages_order`, and each message asked of the full-text index by rowid
    /// alone (plan 0): ordered by the index's own rowid, FTS5 was asked for its doclists newest
    /// first and loaded them whole at each rowid (42 ms against 0.18 for 55 messages).
    #[tokio::test]
    async fn the_conversations_side_asks_the_index_by_rowid_alone() {
        let (_dir, store) = crate::sqlite::tests::temp_store().await;
        let t = store.ensure_tenant("acme").await.unwrap();
        let f = SearchFilter::default;
        for filter in [
            SearchFilter {
                conversation_id: Some(uuid::Uuid::nil()),
                ..f()
            },
            SearchFilter {
                user_id: Some("u1".into()),
                role: Some(Role::User),
                ..f()
            },
            SearchFilter {
                agent_id: Some("a".into()),
                ..f()
            },
        ] {
            let req = SearchRequest {
                cursor: Some(SearchCursor::Ranked {
                    snapshot: 9,
                    offset: 0,
                }),
                ..request("common mid", filter, SearchSort::Relevance)
            };
            let mut q = Sql::default();
            q.push("EXPLAIN QUERY PLAN SELECT m.rowid");
            search::push_candidates(&mut q, t, &req, Drive::Conversations);
            q.push(" ORDER BY ")
                .push(Drive::Conversations.rowid())
                .push(" DESC");
            let plan = store
                .fast
                .with(|c| q.rows(c, |r| Ok(r.get::<_, String>(3)?)))
                .unwrap()
                .join("\n");
            let lines: Vec<&str> = plan.lines().collect();
            assert!(lines[0].starts_with("SEARCH c USING "), "{plan}");
            assert!(lines[1].starts_with("SEARCH m USING "), "{plan}");
            assert!(lines[1].contains("messages_order"), "{plan}");
            assert!(
                lines[2].starts_with("SCAN messages_fts VIRTUAL TABLE INDEX 0:"),
                "{plan}"
            );
        }
        store.close().await;
    }
}
