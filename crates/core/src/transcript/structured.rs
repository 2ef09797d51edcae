//! The structured form: `content` is a JSON string `{"messages":[…],"metadata":{…}}`.
//!
//! Each message is the shape the append route takes too (the seed documents `role`, `content`,
//! `timestamp`, `model`, `tokens` here and adds `toolCalls`, `usage`, `latencyMs`, `metadata`
//! for appends), so both routes share [`StructuredMessage`] and answer alike. Unknown fields are
//! refused with their path rather than silently dropped.

use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::{FIELD, Transcript, TranscriptError, TranscriptLimits, check_messages};
use crate::error::ValidationError;
use crate::input::NewMessage;
use crate::model::Role;
use crate::timefmt::serde_rfc3339;

/// Token usage of one model response.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenUsage {
    /// Prompt tokens.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens.
    pub completion_tokens: Option<i64>,
}

/// One turn as Converra clients send it (in structured content and in appends).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StructuredMessage {
    /// `user`, `assistant`, `system` or `tool`. Optional here only so that a missing role is
    /// reported as `….role` by validation instead of as a serde error on the whole object.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub role: Option<Role>,
    /// Text; may be empty (or absent) only for a `tool` message with `toolCalls`.
    #[serde(default)]
    pub content: Option<String>,
    /// When it was said (ISO 8601); server time when absent.
    #[serde(default, with = "serde_rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub timestamp: Option<OffsetDateTime>,
    /// Model that produced it.
    pub model: Option<String>,
    /// Total tokens.
    pub tokens: Option<i64>,
    /// Tool calls: an array of objects, stored as given.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub tool_calls: Option<Value>,
    /// Prompt and completion tokens.
    pub usage: Option<TokenUsage>,
    /// Time taken to produce it, in milliseconds.
    pub latency_ms: Option<i64>,
    /// Free-form object.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Map<String, Value>>,
}

impl From<StructuredMessage> for NewMessage {
    fn from(m: StructuredMessage) -> Self {
        let usage = m.usage.unwrap_or_default();
        NewMessage {
            role: m.role,
            content: m.content.unwrap_or_default(),
            created_at: m.timestamp,
            model: m.model,
            tokens: m.tokens,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            latency_ms: m.latency_ms,
            tool_calls: m.tool_calls,
            metadata: m.metadata,
            source: None,
            is_trigger: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StructuredContent {
    messages: Vec<StructuredMessage>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

/// Parses the JSON form; a syntax or shape error names its path under `content`.
pub(super) fn parse(
    content: &str,
    limits: &TranscriptLimits,
) -> Result<Transcript, TranscriptError> {
    let mut de = serde_json::Deserializer::from_str(content);
    let parsed: StructuredContent = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // "." is the root; "?" a segment serde could not name (a malformed key).
        let path = e.path().to_string();
        let path = path
            .strip_suffix('?')
            .unwrap_or(&path)
            .trim_end_matches('.');
        let field = if path.is_empty() {
            FIELD.to_owned()
        } else {
            format!("{FIELD}.{path}")
        };
        let inner = e.into_inner().to_string();
        // serde_json appends " at line 1 column 9"; the path already says where.
        let msg = inner.split(" at line ").next().unwrap_or_default();
        TranscriptError::invalid(field, format!("structured content: {msg}"))
    })?;
    de.end().map_err(|_| {
        TranscriptError::invalid(
            FIELD,
            "structured content: trailing characters after the JSON object",
        )
    })?;
    let messages: Vec<NewMessage> = parsed.messages.into_iter().map(Into::into).collect();
    let path = format!("{FIELD}.messages");
    check_messages(&messages, &path, limits)?;
    let mut metadata = parsed.metadata.unwrap_or_default();
    let user_id = take_string(&mut metadata, "userId")?;
    let source = take_string(&mut metadata, "channel")?;
    Ok(Transcript {
        messages,
        user_id,
        source,
        metadata,
    })
}

/// Moves a string-valued metadata key out (`null` counts as absent).
fn take_string(m: &mut Map<String, Value>, key: &str) -> Result<Option<String>, TranscriptError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TranscriptError::Invalid(ValidationError::field(
            format!("{FIELD}.metadata.{key}"),
            "must be a string",
        ))),
    }
}
