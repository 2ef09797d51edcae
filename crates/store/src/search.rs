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
    /// Relevance, higher is better (negated BM25).
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
}
