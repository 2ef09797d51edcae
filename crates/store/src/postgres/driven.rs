//! Whether a filtered search starts from the conversations its filters name, as on SQLite
//! (`sqlite/driven.rs`, whose doc gives the reasons): their messages, each tested by its
//! stored tokens, instead of the word's matches found by the plans of `search.rs` and
//! filtered.
//!
//! Why PostgreSQL needs it although its planner weighs both sides: the plans a search asks
//! for are its own. A word of a few per cent of messages is read band by band, each band
//! sized for the word's share of all messages; a filter that keeps one message in hundreds
//! finds next to nothing in each, and the search ends in the index: every match of the word
//! read and joined. On the benchmark's store a mid-frequency word within one user's
//! conversations took 100–140 ms, within one conversation 22 ms.

use sqlx::PgConnection;

use crate::error::Result;
use crate::search::{SearchFilter, SearchRequest};
use crate::types::TenantId;

/// What testing one of the conversations' messages costs against reading one of the word's
/// matches by the plans of `search.rs`, as on SQLite: the side that costs more per row must
/// read ten times fewer. Measured here: 5 µs a message from the conversations' side (1,683
/// messages in 8.8 ms, the first time; 5.7 ms the whole search once cached).
const PROBE: f64 = 10.0;

/// The most conversations a search counts the messages of before leaving the plans as they
/// are (`sqlite/driven.rs` says why this many).
const MOST_CONVERSATIONS: i64 = 1024;

/// Whether `req`, whose filters name conversations (`SearchFilter::names_conversations`),
/// should start from them, for a query that the statistics say `share` of messages hold (0
/// when they do not know it: a rare query, which the index finds at once). Not asked for a
/// common word's walk: one statement whose join PostgreSQL's planner turns around by itself
/// where the filter is narrow (a common word within one user's conversations 4.3 ms that way,
/// 5.3 from the conversations' side, and this question's round trip saved).
pub(super) async fn from_conversations(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    share: f64,
) -> Result<bool> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT count(*), COALESCE(sum(n), 0)::float8, \
         (SELECT COALESCE(max(rowid), 0) FROM messages)::float8 \
         FROM (SELECT c.message_count AS n FROM conversations c WHERE c.tenant_id = ",
    );
    q.push_bind(tenant.0);
    push_conversation_filters(&mut q, &req.filter);
    q.push(" LIMIT ")
        .push_bind(MOST_CONVERSATIONS + 1)
        .push(") x");
    let (conversations, held, rows): (i64, f64, f64) =
        q.build_query_as().fetch_one(&mut *conn).await?;
    let chosen = if conversations == 0 {
        // Nothing passes: answered at once.
        true
    } else if conversations > MOST_CONVERSATIONS || share <= 0.0 {
        false
    } else {
        // As on SQLite: testing every filtered message against reading the query's matches
        // (its share of the rows). The bands and the index read every match that passes
        // before the newest are known, so no early stop weighs against it.
        PROBE * held <= share * rows.max(1.0)
    };
    let from = if chosen { "conversations" } else { "index" };
    metrics::counter!("confab_store_search_filtered_total", "from" => from).increment(1);
    Ok(chosen)
}

/// `AND …` of every filter on the conversation row `c`, its id included.
pub(super) fn push_conversation_filters(
    q: &mut sqlx::QueryBuilder<sqlx::Postgres>,
    f: &SearchFilter,
) {
    if let Some(v) = f.conversation_id {
        q.push(" AND c.id = ").push_bind(v);
    }
    if let Some(v) = &f.agent_id {
        q.push(" AND c.agent_id = ").push_bind(v.clone());
    }
    if let Some(v) = &f.user_id {
        q.push(" AND c.user_id = ").push_bind(v.clone());
    }
    if let Some(v) = &f.source {
        q.push(" AND c.source = ").push_bind(v.clone());
    }
    if let Some(v) = f.status {
        q.push(" AND c.status = ").push_bind(v.as_str());
    }
}
