//! Converra's `content` field: a whole transcript in one string, either labelled plain text
//! (`User: …\nAssistant: …`) or a JSON string `{"messages":[…],"metadata":{…}}`. Parsed here,
//! not in the HTTP adapter, so the rules (labels, continuation lines, limits) are tested once
//! without a server. [`render`] is the inverse: the plain-text form the dialect answers with.
//!
//! Field paths in errors use Converra's own names (`content`, `content.messages[2].role`,
//! `messages[0].content`); a few come from [`NewMessage::validate`] in the core's snake_case
//! (`tool_calls`, `latency_ms`, …) and the adapter renames those to the wire's camelCase.

mod structured;
mod text;

use serde_json::{Map, Value};

use crate::error::ValidationError;
use crate::input::NewMessage;
use crate::model::Status;

pub use structured::{StructuredMessage, TokenUsage};
pub use text::{render, render_line};

/// The name of the transcript field in every error path.
pub const FIELD: &str = "content";

/// Size limits of one Converra request (KiB = 1,024 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscriptLimits {
    /// Bytes of the whole `content` string (or, on append, of all message contents together).
    pub max_content_bytes: usize,
    /// Messages in one request.
    pub max_messages: usize,
    /// Bytes of one message's content.
    pub max_message_bytes: usize,
}

impl TranscriptLimits {
    /// Converra's documented limits: 512 KB content, 500 messages, 100 KB per message.
    pub const CONVERRA: TranscriptLimits = TranscriptLimits {
        max_content_bytes: 512 * 1024,
        max_messages: 500,
        max_message_bytes: 100 * 1024,
    };
}

impl Default for TranscriptLimits {
    fn default() -> Self {
        Self::CONVERRA
    }
}

/// Why a transcript was refused. The two kinds map to different HTTP statuses (413 and 400),
/// so they are kept apart instead of folded into one validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptError {
    /// Over a size limit (answered 413 PAYLOAD_TOO_LARGE).
    TooLarge(ValidationError),
    /// Malformed (answered 400 VALIDATION_ERROR).
    Invalid(ValidationError),
}

impl TranscriptError {
    fn too_large(field: impl Into<String>, message: impl Into<String>) -> Self {
        TranscriptError::TooLarge(ValidationError::field(field, message))
    }

    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        TranscriptError::Invalid(ValidationError::field(field, message))
    }
}

impl std::fmt::Display for TranscriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TranscriptError::TooLarge(e) => write!(f, "too large: {e}"),
            TranscriptError::Invalid(e) => write!(f, "invalid: {e}"),
        }
    }
}

impl std::error::Error for TranscriptError {}

/// Which of the two documented forms a `content` string used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Labelled plain text.
    Text,
    /// The JSON string with `messages` and `metadata`.
    Structured,
}

/// A parsed transcript: the turns plus what the structured form says about the conversation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    /// Turns, in order.
    pub messages: Vec<NewMessage>,
    /// `metadata.userId` of the structured form.
    pub user_id: Option<String>,
    /// `metadata.channel` of the structured form.
    pub source: Option<String>,
    /// The rest of the structured form's `metadata`.
    pub metadata: Map<String, Value>,
}

/// The form of `content`: a JSON object when its first non-blank character is `{` (no text
/// transcript starts that way, since text starts with a role label), else plain text.
pub fn detect(content: &str) -> Format {
    if content.trim_start().starts_with('{') {
        Format::Structured
    } else {
        Format::Text
    }
}

/// Parses `content` in whichever form it uses, checking the limits first (a huge string is
/// refused before it is parsed) and every message after.
pub fn parse(content: &str, limits: &TranscriptLimits) -> Result<Transcript, TranscriptError> {
    if content.len() > limits.max_content_bytes {
        return Err(TranscriptError::too_large(
            FIELD,
            format!(
                "is {} bytes; at most {} bytes ({} KiB) are accepted",
                content.len(),
                limits.max_content_bytes,
                limits.max_content_bytes / 1024
            ),
        ));
    }
    match detect(content) {
        Format::Text => text::parse(content, limits).map(|messages| Transcript {
            messages,
            ..Transcript::default()
        }),
        Format::Structured => structured::parse(content, limits),
    }
}

/// Checks a batch of turns against the per-request limits (413) and then each message's rules
/// (400). `path` names the array (`messages`, `content.messages`). Used for the structured form
/// and for appended turns alike, so both answer the same way.
pub fn check_messages(
    msgs: &[NewMessage],
    path: &str,
    limits: &TranscriptLimits,
) -> Result<(), TranscriptError> {
    if msgs.len() > limits.max_messages {
        return Err(TranscriptError::too_large(
            path,
            format!(
                "has {} messages; at most {} are accepted per request",
                msgs.len(),
                limits.max_messages
            ),
        ));
    }
    let mut total = 0usize;
    for (i, m) in msgs.iter().enumerate() {
        if m.content.len() > limits.max_message_bytes {
            return Err(TranscriptError::too_large(
                format!("{path}[{i}].content"),
                format!(
                    "is {} bytes; at most {} bytes ({} KiB) per message are accepted",
                    m.content.len(),
                    limits.max_message_bytes,
                    limits.max_message_bytes / 1024
                ),
            ));
        }
        total += m.content.len();
    }
    if total > limits.max_content_bytes {
        return Err(TranscriptError::too_large(
            path,
            format!(
                "holds {total} bytes of content; at most {} bytes ({} KiB) are accepted per request",
                limits.max_content_bytes,
                limits.max_content_bytes / 1024
            ),
        ));
    }
    let mut errs = ValidationError::default();
    // Core limits are looser than Converra's, which were checked above; this adds the content
    // rules (role required, non-empty unless a tool call, no NUL, sane counts).
    let core = crate::input::Limits::default();
    for (i, m) in msgs.iter().enumerate() {
        m.validate(|| format!("{path}[{i}]"), &core, &mut errs);
    }
    errs.into_result(()).map_err(TranscriptError::Invalid)
}

/// A transcript with no turns only opens a live conversation: a finished one (completed or
/// abandoned) must say what was said.
pub fn require_turns(t: &Transcript, status: Status) -> Result<(), TranscriptError> {
    if t.messages.is_empty() && !status.is_open() {
        return Err(TranscriptError::invalid(
            FIELD,
            format!(
                "must hold at least one message when status is `{status}` \
                 (an empty transcript only opens a conversation with status `active` or `in_progress`)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
