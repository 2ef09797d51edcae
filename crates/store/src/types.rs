//! The storage API's vocabulary: tenants, principals, filters, pages and outcomes.

use confab_core::cursor::ConversationCursor;
use confab_core::{Conversation, Role, Scopes, Sentiment, Status};
use time::OffsetDateTime;
use uuid::Uuid;

/// A tenant's id. Only the store makes these (from a verified key or a tenant it created), so a
/// caller that holds one has been authenticated: handlers cannot reach rows without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantId(pub(crate) Uuid);

impl TenantId {
    /// The underlying id (for logs and metrics; never for building a `TenantId`).
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// Who is calling: the tenant and what its key may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The key's tenant.
    pub tenant: TenantId,
    /// The key's public id.
    pub key_id: String,
    /// What it may do.
    pub scopes: Scopes,
}

/// A key as `confab keys create` shows it, secret included (shown once).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedKey {
    /// Tenant name.
    pub tenant: String,
    /// Public id.
    pub key_id: String,
    /// The secret; never stored.
    pub key_secret: String,
    /// `key_id.key_secret`, the single-string form.
    pub token: String,
    /// Granted scopes.
    pub scopes: String,
}

/// A key as listings show it (no secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    /// Tenant name.
    pub tenant: String,
    /// Public id.
    pub key_id: String,
    /// Granted scopes.
    pub scopes: String,
    /// Optional label.
    pub name: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when revoked.
    pub revoked_at: Option<String>,
}

/// Filters of a conversation list; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Agent (character, replica, prompt).
    pub agent_id: Option<String>,
    /// End user.
    pub user_id: Option<String>,
    /// Status.
    pub status: Option<Status>,
    /// Channel.
    pub source: Option<String>,
    /// created_at ≥ this.
    pub created_after: Option<OffsetDateTime>,
    /// created_at < this.
    pub created_before: Option<OffsetDateTime>,
    /// Whether insights exist.
    pub has_insights: Option<bool>,
    /// Insights with this sentiment label.
    pub sentiment: Option<Sentiment>,
    /// Insights with this task-completion verdict.
    pub task_completed: Option<bool>,
}

/// Which slice of a newest-first conversation list to read.
#[derive(Debug, Clone, Copy)]
pub enum ConversationPage {
    /// Items strictly after the cursor (keyset).
    After(Option<ConversationCursor>, i64),
    /// Items from an offset (page-numbered dialects).
    Offset(i64, i64),
}

/// Which slice of a conversation's messages to read.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    /// Only seq > this.
    pub after_seq: Option<i64>,
    /// Only seq < this.
    pub before_seq: Option<i64>,
    /// Newest first when true.
    pub descending: bool,
    /// Skip this many (page-numbered dialects).
    pub offset: i64,
    /// At most this many (None: all).
    pub limit: Option<i64>,
    /// Only these roles (None: all).
    pub roles: Option<Vec<Role>>,
}

/// An idempotency key presented with a write.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    /// Route family (`native`, `converra`): families never see each other's keys.
    pub family: &'static str,
    /// The client's key.
    pub key: String,
    /// Hash of the request. `Some`: Stripe semantics (same request replays the first answer, a
    /// different one is refused). `None`: the existing conversation is returned as it is now.
    pub fingerprint: Option<Vec<u8>>,
}

/// The result of a write that may have been answered before.
#[derive(Debug, Clone)]
pub enum Written {
    /// Done now.
    Fresh(Conversation),
    /// An earlier request with the same idempotency key did it; this is its answer.
    Replayed(Conversation),
}

impl Written {
    /// The conversation either way.
    pub fn conversation(&self) -> &Conversation {
        match self {
            Written::Fresh(c) | Written::Replayed(c) => c,
        }
    }

    /// True for a replay.
    pub fn is_replay(&self) -> bool {
        matches!(self, Written::Replayed(_))
    }
}
