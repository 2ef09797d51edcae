//! The native API's wire types. Requests refuse unknown fields, so a typo is a 400 that names
//! it instead of a silently ignored value.

use confab_core::input::{AppendMessages, ConversationPatch, NewMessage};
use confab_core::timefmt::{rfc3339, serde_rfc3339};
use confab_core::{Conversation, Message, Role, Status};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// A message to store.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    /// Speaker.
    pub role: Role,
    /// Text (up to 1 MiB). May be empty only for a `tool` message with `tool_calls`.
    #[serde(default)]
    pub content: String,
    /// When it was said (RFC 3339); server time when absent.
    #[serde(default, with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<OffsetDateTime>,
    /// Model that produced it.
    pub model: Option<String>,
    /// Total tokens.
    pub tokens: Option<i64>,
    /// Prompt tokens.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens.
    pub completion_tokens: Option<i64>,
    /// Time taken to produce it.
    pub latency_ms: Option<i64>,
    /// Tool calls: an array of objects, stored as given.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tool_calls: Option<Value>,
    /// Free-form object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Channel; the conversation's when absent.
    pub source: Option<String>,
    /// Convai: the input was a trigger.
    #[serde(default)]
    pub is_trigger: bool,
}

impl From<MessageIn> for NewMessage {
    fn from(m: MessageIn) -> Self {
        NewMessage {
            role: Some(m.role),
            content: m.content,
            created_at: m.created_at,
            model: m.model,
            tokens: m.tokens,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
            latency_ms: m.latency_ms,
            tool_calls: m.tool_calls,
            metadata: m.metadata,
            source: m.source,
            is_trigger: m.is_trigger,
        }
    }
}

/// A conversation to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationCreate {
    /// Agent (character, replica, prompt); created on first use.
    pub agent_id: Option<String>,
    /// End user.
    pub user_id: Option<String>,
    /// Title; derived from the first user message when absent.
    pub title: Option<String>,
    /// Initial status (default `active`).
    pub status: Option<Status>,
    /// Channel: web, telegram, discord, embed, api, …
    pub source: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Customer company.
    pub company_name: Option<String>,
    /// Convai memory flag.
    #[serde(default)]
    pub added_to_memory: bool,
    /// Free-form object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Creation time for imports and backfills (RFC 3339); server time when absent.
    #[serde(default, with = "serde_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<OffsetDateTime>,
    /// First messages, in order.
    #[serde(default)]
    pub messages: Vec<MessageIn>,
}

/// Turns to append.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendIn {
    /// At least one message.
    pub messages: Vec<MessageIn>,
    /// New status, if it changes.
    pub status: Option<Status>,
    /// Shallow-merged into the conversation's metadata (null removes a key).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

impl From<AppendIn> for AppendMessages {
    fn from(a: AppendIn) -> Self {
        AppendMessages {
            messages: a.messages.into_iter().map(Into::into).collect(),
            status: a.status,
            metadata: a.metadata,
        }
    }
}

fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Fields to change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchIn {
    /// New title; null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub title: Option<Option<String>>,
    /// New status.
    pub status: Option<Status>,
    /// Shallow-merged into metadata (null removes a key).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Convai memory flag.
    pub added_to_memory: Option<bool>,
}

impl From<PatchIn> for ConversationPatch {
    fn from(p: PatchIn) -> Self {
        ConversationPatch {
            title: p.title,
            status: p.status,
            metadata: p.metadata,
            added_to_memory: p.added_to_memory,
        }
    }
}

/// A conversation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationOut {
    /// UUIDv7.
    pub id: Uuid,
    /// Agent.
    pub agent_id: Option<String>,
    /// End user.
    pub user_id: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Status.
    pub status: Status,
    /// Channel.
    pub source: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Customer company.
    pub company_name: Option<String>,
    /// Convai memory flag.
    pub added_to_memory: bool,
    /// Free-form object.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Number of stored messages.
    pub message_count: i64,
    /// RFC 3339, microseconds, UTC.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339, when it became completed.
    pub completed_at: Option<String>,
}

impl From<&Conversation> for ConversationOut {
    fn from(c: &Conversation) -> Self {
        ConversationOut {
            id: c.id,
            agent_id: c.agent_id.clone(),
            user_id: c.user_id.clone(),
            title: c.title.clone(),
            status: c.status,
            source: c.source.clone(),
            model: c.model.clone(),
            company_name: c.company_name.clone(),
            added_to_memory: c.added_to_memory,
            metadata: c.metadata.clone(),
            message_count: c.message_count,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            completed_at: c.completed_at.map(rfc3339),
        }
    }
}

/// A message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOut {
    /// UUIDv7.
    pub id: Uuid,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// 0-based position in the conversation.
    pub seq: i64,
    /// Speaker.
    pub role: Role,
    /// Text.
    pub content: String,
    /// RFC 3339, microseconds, UTC.
    #[serde(with = "serde_rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    /// Model.
    pub model: Option<String>,
    /// Total tokens.
    pub tokens: Option<i64>,
    /// Prompt tokens.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens.
    pub completion_tokens: Option<i64>,
    /// Latency.
    pub latency_ms: Option<i64>,
    /// Tool calls as given.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tool_calls: Option<Value>,
    /// Free-form object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Channel.
    pub source: Option<String>,
    /// Convai trigger flag.
    pub is_trigger: bool,
}

/// A stored message as the native API shows it, moved, not copied (a page writes 50).
impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        MessageOut {
            id: m.id,
            conversation_id: m.conversation_id,
            seq: m.seq,
            role: m.role,
            content: m.content,
            created_at: m.created_at,
            model: m.model,
            tokens: m.tokens,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
            latency_ms: m.latency_ms,
            tool_calls: m.tool_calls,
            metadata: m.metadata,
            source: m.source,
            is_trigger: m.is_trigger,
        }
    }
}

/// A page of conversations, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    /// The page.
    pub data: Vec<ConversationOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A page of messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    /// The page.
    pub data: Vec<MessageOut>,
    /// Pass as `cursor` for the next page in the same order; null on the last page.
    pub next_cursor: Option<String>,
}

/// Error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Error detail.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, PAYLOAD_TOO_LARGE, …
    pub code: String,
    /// For humans.
    pub message: String,
    /// Field name → problem.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Map<String, Value>>,
}
