//! perform.chat's wire types, as seed 001 documents them.

use confab_core::numbered::NumberedPage;
use confab_core::timefmt::{rfc3339, serde_rfc3339};
use confab_core::{Conversation, Message, Role};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// `page` and `limit` of a numbered list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// Items per page, 1–100 (default 20 for conversations, 50 for messages).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// The conversation object.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PerformConversation)]
pub struct ConversationOut {
    /// Conversation id (UUID).
    pub id: String,
    /// Given, or derived from the first user message; empty when there is none yet.
    pub title: String,
    /// The end user, when known.
    pub customer_user_id: Option<String>,
    /// Number of messages of every role.
    pub message_count: i64,
    /// ISO 8601 (UTC).
    pub created_at: String,
    /// ISO 8601 (UTC).
    pub updated_at: String,
}

impl From<&Conversation> for ConversationOut {
    fn from(c: &Conversation) -> Self {
        ConversationOut {
            id: c.id.to_string(),
            title: c.title.clone().unwrap_or_default(),
            customer_user_id: c.user_id.clone(),
            message_count: c.message_count,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// Where a page sits in the whole list.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PerformPagination)]
pub struct Pagination {
    /// This page (as asked).
    pub page: i64,
    /// Items per page.
    pub limit: i64,
    /// Items in the whole list.
    pub total: i64,
    /// `ceil(total / limit)`; 0 for an empty list.
    pub total_pages: i64,
}

impl Pagination {
    /// The pagination block of page `p` of a list of `total` items.
    pub fn new(p: NumberedPage, total: i64) -> Self {
        Pagination {
            page: p.page,
            limit: p.limit,
            total,
            total_pages: p.total_pages(total),
        }
    }
}

/// A page of conversations, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PerformConversationList)]
pub struct ConversationList {
    /// The conversations.
    pub data: Vec<ConversationOut>,
    /// Totals.
    pub pagination: Pagination,
}

/// A message.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PerformMessage)]
pub struct MessageOut {
    /// Message id (UUID).
    #[schema(value_type = String)]
    pub id: Uuid,
    /// user, assistant, system or tool.
    pub role: Role,
    /// Text.
    pub content: String,
    /// ISO 8601 (UTC).
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
}

/// A stored message as perform.chat shows it, its text moved, not copied (a page writes 50).
impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        MessageOut {
            id: m.id,
            role: m.role,
            content: m.content,
            created_at: m.created_at,
        }
    }
}

/// A page of a conversation's messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PerformMessageList)]
pub struct MessageList {
    /// The messages.
    pub data: Vec<MessageOut>,
    /// Their conversation.
    pub conversation: ConversationOut,
    /// Totals (`total` is the conversation's `message_count`).
    pub pagination: Pagination,
}

/// A route without query parameters: any given is refused by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}
