//! Converra's wire types (camelCase, as the seed documents them). Requests refuse unknown
//! fields, so a typo is a 400 naming it rather than a silently ignored value. Schema names carry
//! a `Converra` prefix because the OpenAPI document shares one namespace with the native API.

use confab_core::timefmt::rfc3339;
use confab_core::transcript::{self, StructuredMessage};
use confab_core::{Conversation, Insights, Issue, Message, Role, Sentiment, Status};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/v1/conversations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ConverraCreate)]
pub struct CreateIn {
    /// The prompt this conversation ran with (links an agent; linked conversations are analysed).
    pub prompt_id: Option<String>,
    /// Same as `promptId`.
    pub agent_id: Option<String>,
    /// Same as `promptId`.
    pub system_prompt_id: Option<String>,
    /// A free-text prompt name, when there is no prompt id: the conversation is kept but never
    /// analysed. Stored in `metadata.promptName`.
    pub prompt_name: Option<String>,
    /// The transcript: labelled plain text or a JSON string `{"messages":[…],"metadata":{…}}`.
    /// May be empty only when `status` is `active` or `in_progress`.
    #[schema(required = true)]
    pub content: Option<String>,
    /// `completed` (default), `abandoned`, `in_progress` or `active`.
    pub status: Option<Status>,
    /// Model used.
    pub llm_model: Option<String>,
    /// Customer company name.
    pub company_name: Option<String>,
    /// Retrying with the same key within 24 hours returns the conversation created first.
    pub idempotency_key: Option<String>,
}

/// What an append may do to the status.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ConverraAppendStatus)]
pub enum AppendStatus {
    /// No change (the default).
    Active,
    /// Complete the conversation; the first time, analysis is queued.
    Completed,
}

/// `POST /api/v1/conversations/{id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ConverraAppend)]
pub struct AppendIn {
    /// New turns, at least one (at most 500, 100 KiB each, 512 KiB together).
    #[schema(required = true)]
    pub messages: Option<Vec<StructuredMessage>>,
    /// `active` (no change) or `completed`.
    pub status: Option<AppendStatus>,
    /// Shallow-merged into the conversation's metadata (a null value removes that key).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// A link with its method and a hint, as the seed's `_links` show.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConverraLink)]
pub struct Link {
    /// Path to call.
    pub href: String,
    /// HTTP method.
    pub method: &'static str,
    /// What it is for.
    pub hint: &'static str,
}

/// Links of a created conversation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConverraLinks)]
pub struct Links {
    /// Where to append turns.
    pub append_messages: Link,
}

/// The answer to a create.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConverraCreated)]
pub struct CreatedOut {
    /// Conversation id (UUID).
    pub id: Uuid,
    /// The linked prompt; null when only a `promptName` was given.
    pub prompt_id: Option<String>,
    /// Status.
    pub status: Status,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Next steps.
    #[serde(rename = "_links")]
    pub links: Links,
}

/// The seed's hint, verbatim.
const APPEND_HINT: &str = "Append turns to this conversation. Send status: 'completed' on the final call to trigger analysis.";

impl From<&Conversation> for CreatedOut {
    fn from(c: &Conversation) -> Self {
        CreatedOut {
            id: c.id,
            prompt_id: c.agent_id.clone(),
            status: c.status,
            created_at: rfc3339(c.created_at),
            links: Links {
                append_messages: Link {
                    href: format!("/api/v1/conversations/{}/messages", c.id),
                    method: "POST",
                    hint: APPEND_HINT,
                },
            },
        }
    }
}

/// A stored turn. Optional fields are left out when unset, as a client would have sent them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConverraMessage)]
pub struct MessageOut {
    /// Message id (UUID).
    pub id: Uuid,
    /// Speaker.
    pub role: Role,
    /// Text.
    pub content: String,
    /// Client-given or server time, RFC 3339.
    pub timestamp: String,
    /// Model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Total tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<i64>,
    /// Tool calls, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tool_calls: Option<Value>,
    /// Prompt and completion tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
    /// Latency in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// Free-form object.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// Token usage (the request's `usage`, echoed).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConverraUsage)]
pub struct UsageOut {
    /// Prompt tokens.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens.
    pub completion_tokens: Option<i64>,
}

impl From<&Message> for MessageOut {
    fn from(m: &Message) -> Self {
        let usage =
            (m.prompt_tokens.is_some() || m.completion_tokens.is_some()).then_some(UsageOut {
                prompt_tokens: m.prompt_tokens,
                completion_tokens: m.completion_tokens,
            });
        MessageOut {
            id: m.id,
            role: m.role,
            content: m.content.clone(),
            timestamp: rfc3339(m.created_at),
            model: m.model.clone(),
            tokens: m.tokens,
            tool_calls: m.tool_calls.clone(),
            usage,
            latency_ms: m.latency_ms,
            metadata: m.metadata.clone(),
        }
    }
}

/// Insights, as `GET …/insights` shows them (and the `insights` key of a conversation).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConverraInsights)]
pub struct InsightsOut {
    /// The conversation.
    pub conversation_id: Uuid,
    /// positive, neutral, negative or mixed.
    pub sentiment: Sentiment,
    /// In [-1, 1].
    pub sentiment_score: f64,
    /// Whether the user got what they came for.
    pub task_completed: bool,
    /// Keyphrases.
    pub topics: Vec<String>,
    /// Short summary.
    pub summary: String,
    /// Problems noticed (`{code, text}`).
    pub issues: Vec<Issue>,
    /// When they were made, RFC 3339.
    pub created_at: String,
}

impl From<&Insights> for InsightsOut {
    fn from(i: &Insights) -> Self {
        InsightsOut {
            conversation_id: i.conversation_id,
            sentiment: i.sentiment,
            sentiment_score: i.sentiment_score,
            task_completed: i.task_completed,
            topics: i.topics.clone(),
            summary: i.summary.clone(),
            issues: i.issues.clone(),
            created_at: rfc3339(i.created_at),
        }
    }
}

/// A whole conversation: the answer to an append and to a get.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConverraConversation)]
pub struct ConversationOut {
    /// Conversation id (UUID).
    pub id: Uuid,
    /// Linked prompt.
    pub prompt_id: Option<String>,
    /// `metadata.userId` of structured content.
    pub user_id: Option<String>,
    /// Derived from the first user message.
    pub title: Option<String>,
    /// Every message rendered as `User: …\nAssistant: …` (recomputed on every append).
    pub content: String,
    /// Every message, oldest first.
    pub messages: Vec<MessageOut>,
    /// Status.
    pub status: Status,
    /// Model used.
    pub llm_model: Option<String>,
    /// Customer company name.
    pub company_name: Option<String>,
    /// `metadata.channel` of structured content.
    pub channel: Option<String>,
    /// Merged metadata.
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Number of messages.
    pub message_count: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339, when it first became completed.
    pub completed_at: Option<String>,
    /// Insights (null before they exist); left out with `includeInsights=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<InsightsOut>)]
    pub insights: Option<Option<InsightsOut>>,
}

impl ConversationOut {
    /// `messages` must be the conversation's messages in seq order.
    pub fn new(c: &Conversation, messages: &[Message], insights: Option<Option<Insights>>) -> Self {
        ConversationOut {
            id: c.id,
            prompt_id: c.agent_id.clone(),
            user_id: c.user_id.clone(),
            title: c.title.clone(),
            content: transcript::render(messages),
            messages: messages.iter().map(Into::into).collect(),
            status: c.status,
            llm_model: c.model.clone(),
            company_name: c.company_name.clone(),
            channel: c.source.clone(),
            metadata: c.metadata.clone(),
            message_count: c.message_count,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            completed_at: c.completed_at.map(rfc3339),
            insights: insights.map(|i| i.as_ref().map(Into::into)),
        }
    }
}

/// One item of a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ConverraListItem)]
pub struct ListItem {
    /// Conversation id (UUID).
    pub id: Uuid,
    /// Linked prompt.
    pub prompt_id: Option<String>,
    /// Status.
    pub status: Status,
    /// Whether insights exist.
    pub has_insights: bool,
    /// `metadata.userId` of structured content.
    pub user_id: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Model used.
    pub llm_model: Option<String>,
    /// Number of messages.
    pub message_count: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl ListItem {
    /// An item, with its insights flag looked up by the caller.
    pub fn new(c: &Conversation, has_insights: bool) -> Self {
        ListItem {
            id: c.id,
            prompt_id: c.agent_id.clone(),
            status: c.status,
            has_insights,
            user_id: c.user_id.clone(),
            title: c.title.clone(),
            llm_model: c.model.clone(),
            message_count: c.message_count,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// Offset pagination, as documented.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConverraPagination)]
pub struct Pagination {
    /// Conversations matching the filters.
    pub total: i64,
    /// Page size used.
    pub limit: i64,
    /// Offset used.
    pub offset: i64,
}

/// A page of conversations, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConverraList)]
pub struct ListOut {
    /// The page.
    pub data: Vec<ListItem>,
    /// Where it is.
    pub pagination: Pagination,
}
