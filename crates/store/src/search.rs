//! Full-text search over message content: the query language and tokens are the core's
//! (`confab_core::search`); each backend stores tokens and ranks.

use confab_core::cursor::SearchCursor;
use confab_core::search::Query;
use confab_core::{Role, Status};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, Store, TenantId};

/// Relevance ranking scores at most this many of the newest matching messages (after
/// filters). Ranking every match of a word found in most messages costs about a second on a
/// large database; the newest thousand are ranked in milliseconds, and older matches stay
/// reachable with [`SearchSort::Recent`].
pub const RANK_WINDOW: i64 = 1_000;

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchSort {
    /// Best match first (BM25) within [`RANK_WINDOW`].
    #[default]
    Relevance,
    /// Most recently stored first, over every match.
    Recent,
}

/// Narrows a search; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// Conversation's agent.
    pub agent_id: Option<String>,
    /// Conversation's user.
    pub user_id: Option<String>,
    /// Message role.
    pub role: Option<Role>,
    /// Conversation's channel.
    pub source: Option<String>,
    /// Conversation's status.
    pub status: Option<Status>,
    /// One conversation only.
    pub conversation_id: Option<Uuid>,
    /// Message created at or after.
    pub created_after: Option<OffsetDateTime>,
    /// Message created before.
    pub created_before: Option<OffsetDateTime>,
}

impl SearchFilter {
    /// Whether nothing narrows the search.
    pub fn is_empty(&self) -> bool {
        !self.needs_conversation()
            && self.role.is_none()
            && self.conversation_id.is_none()
            && self.created_after.is_none()
            && self.created_before.is_none()
    }

    /// Whether a filter names conversations by an index (their id, agent or user): the only
    /// filters a search can start from (sqlite/driven.rs, postgres/driven.rs).
    pub fn names_conversations(&self) -> bool {
        self.conversation_id.is_some() || self.agent_id.is_some() || self.user_id.is_some()
    }

    /// Whether any filter needs the conversation row.
    pub fn needs_conversation(&self) -> bool {
        self.agent_id.is_some()
            || self.user_id.is_some()
            || self.source.is_some()
            || self.status.is_some()
    }
}

/// A search request.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// Parsed query.
    pub query: Query,
    /// Filters.
    pub filter: SearchFilter,
    /// Order.
    pub sort: SearchSort,
    /// Page size.
    pub limit: i64,
    /// Where the previous page ended.
    pub cursor: Option<SearchCursor>,
}

/// One matching message.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// Its conversation.
    pub conversation_id: Uuid,
    /// The message.
    pub message_id: Uuid,
    /// Its seq.
    pub seq: i64,
    /// Its role.
    pub role: Role,
    /// Excerpt with `<mark>` around matched words.
    pub snippet: String,
    /// Relevance, higher is better (BM25).
    pub score: f64,
    /// When the message was created.
    pub created_at: OffsetDateTime,
}

/// A page of hits.
#[derive(Debug, Clone)]
pub struct SearchPage {
    /// Hits in order.
    pub hits: Vec<SearchHit>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<SearchCursor>,
}

impl Store {
    /// Searches the tenant's messages. A cursor of the other sort order is refused (400 on
    /// `cursor`).
    pub async fn search(&self, tenant: &TenantId, req: &SearchRequest) -> Result<SearchPage> {
        let ok = matches!(
            (req.sort, req.cursor),
            (_, None)
                | (SearchSort::Relevance, Some(SearchCursor::Ranked { .. }))
                | (SearchSort::Recent, Some(SearchCursor::Recent { .. }))
        );
        if !ok {
            return Err(confab_core::ValidationError::field(
                "cursor",
                "belongs to a search with another sort order",
            )
            .into());
        }
        dispatch!(self, b => b.search(*tenant, req).await)
    }

    /// Rebuilds the search index from the stored messages (after a restore).
    pub async fn rebuild_search_index(&self) -> Result<()> {
        dispatch!(self, b => b.rebuild_search_index().await)
    }

    /// Builds what first searches read instead of walking the whole index, now (a server does
    /// it in the background), and answers how many it built: on PostgreSQL the postings of
    /// every segment of rowids all handed out (postgres/postings.rs), on SQLite the window of
    /// every common word (sqlite/tails.rs).
    pub async fn build_search_postings(&self) -> Result<usize> {
        dispatch!(self, b => b.build_search_postings().await)
    }

    /// On PostgreSQL, writes the search postings again word by word if enough segments were
    /// built since the last time (postgres/layout.rs; a server does it at a pause in the
    /// writes), and answers whether it did; SQLite's windows need nothing of the kind.
    pub async fn lay_out_search_postings(&self) -> Result<bool> {
        match &*self.backend {
            crate::Backend::Sqlite(_) => Ok(false),
            crate::Backend::Postgres(b) => b.lay_out_search_postings().await,
        }
    }
}

/// Okapi BM25 with FTS5's constants and IDF floor, computed from term frequencies the core
/// counts in each candidate (`Query::term_frequencies`). SQLite's `bm25()` would compute the
/// same score, but it first counts every row matching each term: for a word in most messages
/// that is a scan of the whole index (13 ms on a million messages) before the capped window
/// is even scored. Here the statistics are read from the index in bounded time instead.
#[derive(Debug, Clone)]
pub struct Bm25 {
    /// Per scored term.
    idf: Vec<f64>,
    /// Average document length in tokens.
    avgdl: f64,
}

impl Bm25 {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;

    /// `rows`: documents in the index; `tokens`: their total length; `df`: per term, the
    /// documents containing it (exact or estimated).
    pub fn new(rows: f64, tokens: f64, df: &[f64]) -> Bm25 {
        let idf = df
            .iter()
            .map(|&n| {
                let v = ((rows - n + 0.5) / (n + 0.5)).ln();
                // FTS5's floor: a term in more than half the rows still counts a little.
                if v <= 0.0 { 1e-6 } else { v }
            })
            .collect();
        Bm25 {
            idf,
            avgdl: if rows > 0.0 {
                (tokens / rows).max(1.0)
            } else {
                1.0
            },
        }
    }

    /// Higher is better.
    pub fn score(&self, tf: &[u32], len: u32) -> f64 {
        let norm = Self::K1 * (1.0 - Self::B + Self::B * f64::from(len) / self.avgdl);
        self.idf
            .iter()
            .zip(tf)
            .map(|(idf, &f)| {
                let f = f64::from(f);
                idf * (f * (Self::K1 + 1.0)) / (f + norm)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::Bm25;

    #[test]
    fn rarer_terms_and_shorter_documents_score_higher() {
        let b = Bm25::new(1000.0, 10_000.0, &[10.0, 900.0]);
        // The rare term outweighs the common one.
        assert!(b.score(&[1, 0], 10) > b.score(&[0, 1], 10));
        // More occurrences score higher, with diminishing returns.
        let (one, two, three) = (
            b.score(&[1, 0], 10),
            b.score(&[2, 0], 10),
            b.score(&[3, 0], 10),
        );
        assert!(two > one && three > two && three - two < two - one);
        // The same count in a shorter document scores higher.
        assert!(b.score(&[1, 0], 5) > b.score(&[1, 0], 50));
        // A term in most documents still scores above zero (FTS5's floor).
        assert!(b.score(&[0, 1], 10) > 0.0);
    }
}
