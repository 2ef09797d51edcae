//! Convai's wire types, as seed 002 documents them. Times are UTC.

use confab_core::Conversation;
use confab_core::ids::hex32;
use confab_core::interactions::Interaction;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;
use utoipa::ToSchema;

use crate::error::ApiError;

/// `chatHistory/list` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListIn {
    /// The character.
    #[serde(rename = "charID")]
    pub char_id: Option<String>,
    /// How many sessions, newest first: a positive whole number (string or number), or `"-1"`
    /// (or absent) for all.
    #[schema(value_type = Option<String>, example = "-1")]
    pub limit: Option<Value>,
}

/// `chatHistory/details` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailsIn {
    /// The character the session belongs to.
    #[serde(rename = "charID")]
    pub char_id: Option<String>,
    /// The session: 32 hex digits (as listed) or a dashed UUID.
    #[serde(rename = "sessionID")]
    pub session_id: Option<String>,
}

/// A required, non-blank string field.
pub fn required(v: Option<String>, field: &str) -> Result<String, ApiError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(ApiError::field(field, "is required")),
    }
}

/// One session of a character.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// 32 hex digits.
    #[serde(rename = "sessionID")]
    pub session_id: String,
    /// Start date, `DD-MM-YYYY` (UTC).
    pub date: String,
    /// Start time, `HH:MM:SS` (UTC).
    pub time: String,
    /// Whether the session was added to the character's memory.
    pub is_added_to_memory: bool,
}

impl From<&Conversation> for SessionOut {
    fn from(c: &Conversation) -> Self {
        SessionOut {
            session_id: hex32(c.id),
            date: fmt(c.created_at, format_description!("[day]-[month]-[year]")),
            time: fmt(
                c.created_at,
                format_description!("[hour]:[minute]:[second]"),
            ),
            is_added_to_memory: c.added_to_memory,
        }
    }
}

/// One line of an interaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineOut {
    /// `User` or `Character`.
    pub speaker: &'static str,
    /// What was said.
    pub message: String,
}

/// One interaction: a user turn and the character's replies to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InteractionOut {
    /// Its first message's time, `YYYY-MM-DD HH:MM:SS.ffffff` (UTC).
    pub timestamp: String,
    /// The lines, in order.
    pub interaction: Vec<LineOut>,
    /// True when the user input was a trigger.
    pub is_trigger_input: bool,
}

impl From<&Interaction<'_>> for InteractionOut {
    fn from(i: &Interaction<'_>) -> Self {
        InteractionOut {
            timestamp: fmt(
                i.timestamp,
                format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
                ),
            ),
            interaction: i
                .lines
                .iter()
                .map(|l| LineOut {
                    speaker: l.speaker.as_str(),
                    message: l.message.content.clone(),
                })
                .collect(),
            is_trigger_input: i.is_trigger_input,
        }
    }
}

/// Formats in UTC. The descriptions above are static and the values in range, so formatting
/// cannot fail; an empty string would only hide a bug, never a client error.
fn fmt(t: OffsetDateTime, f: &[time::format_description::BorrowedFormatItem<'_>]) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(f)
        .unwrap_or_default()
}
