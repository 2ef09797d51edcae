//! Sensay's wire types: camelCase fields, `replicaUUID`, times as
//! `2024-09-24T09:09:55.667090+00:00` (the seed's examples: microseconds and a `+00:00` offset).

use confab_core::daily::ymd;
use confab_core::timefmt::Rfc3339Text;
use confab_core::{Conversation, Message, Role};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// RFC 3339 in UTC with six fractional digits and `+00:00`, on the stack: a Sensay page writes
/// one for each of its messages.
struct SensayTime {
    buf: [u8; 40],
    len: usize,
}

impl SensayTime {
    fn new(t: OffsetDateTime) -> SensayTime {
        let text = Rfc3339Text::new(t);
        let utc = text.as_str();
        let utc = utc.strip_suffix('Z').unwrap_or(utc).as_bytes();
        let mut buf = [0u8; 40];
        let len = (utc.len() + 6).min(buf.len());
        buf[..len - 6].copy_from_slice(&utc[..len - 6]);
        buf[len - 6..len].copy_from_slice(b"+00:00");
        SensayTime { buf, len }
    }

    fn as_str(&self) -> &str {
        // Only ASCII went in: the RFC 3339 text and the offset.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

fn sensay_time(t: OffsetDateTime) -> String {
    SensayTime::new(t).as_str().to_owned()
}

/// `#[serde(serialize_with)]` for a message's time: written from the stack, no `String`.
fn serialize_sensay_time<S: serde::Serializer>(
    t: &OffsetDateTime,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(SensayTime::new(*t).as_str())
}

/// Every successful answer: the page and how many items it holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T> {
    /// Always true.
    pub success: bool,
    /// The page.
    pub items: Vec<T>,
    /// Number of items in this page.
    pub count: usize,
}

impl<T> Items<T> {
    /// A successful page.
    pub fn new(items: Vec<T>) -> Self {
        Items {
            success: true,
            count: items.len(),
            items,
        }
    }
}

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SensayError {
    /// Always false.
    pub success: bool,
    /// What went wrong, naming the parameter when one is at fault.
    pub error: String,
}

/// Page and cursor of the conversation, message and mention lists. Items come newest first;
/// `beforeUUID` gives the items nearest before that one (older), `afterUUID` the items nearest
/// after it (newer), never the item itself. At most one of the two.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CursorParams {
    /// 1–100, default 20 (for mentions: the number of mention groups).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Items older than this UUID (excluded).
    #[serde(rename = "beforeUUID")]
    pub before_uuid: Option<String>,
    /// Items newer than this UUID (excluded).
    #[serde(rename = "afterUUID")]
    pub after_uuid: Option<String>,
}

/// A message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageItem {
    /// Message id, usable as a cursor.
    pub uuid: Uuid,
    /// Text.
    pub content: String,
    /// `user` or `assistant`.
    pub role: Role,
    /// When it was sent, e.g. `2024-09-24T09:09:55.667090+00:00`.
    #[serde(serialize_with = "serialize_sensay_time")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
    /// Channel: web, telegram, discord, embed, …
    pub source: Option<String>,
    /// The replica of the conversation.
    #[serde(rename = "replicaUUID")]
    pub replica_uuid: String,
}

impl MessageItem {
    /// Renders a stored message of `replica`'s conversation (its text moved, not copied).
    pub fn new(m: Message, replica: &str) -> Self {
        MessageItem {
            uuid: m.id,
            content: m.content,
            role: m.role,
            created_at: m.created_at,
            source: m.source,
            replica_uuid: replica.to_owned(),
        }
    }
}

/// A mention group (a user message and the replica's replies after it, chronological) or a
/// placeholder standing for collapsed user-only messages.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MentionItem {
    /// An interaction with the replica.
    Mention {
        /// Oldest first.
        messages: Vec<MessageItem>,
    },
    /// Collapsed user messages; expand with `messages?beforeUUID=<first message of the mention
    /// listed just before it>&limit=<count>`.
    Placeholder {
        /// How many messages it stands for.
        count: usize,
    },
}

/// A conversation of the replica.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationItem {
    /// Conversation id, usable as a cursor and in the messages and mentions paths.
    pub uuid: Uuid,
    /// Given, or the first user message.
    pub title: Option<String>,
    /// Channel.
    pub source: Option<String>,
    /// Stored messages (every role).
    pub message_count: i64,
    /// When it started.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<&Conversation> for ConversationItem {
    fn from(c: &Conversation) -> Self {
        ConversationItem {
            uuid: c.id,
            title: c.title.clone(),
            source: c.source.clone(),
            message_count: c.message_count,
            created_at: sensay_time(c.created_at),
            updated_at: sensay_time(c.updated_at),
        }
    }
}

/// Conversations created up to the end of a UTC day.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoricalPoint {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Conversations created on or before this day.
    pub cumulative_conversations: i64,
}

impl HistoricalPoint {
    /// One point of the series.
    pub fn new((d, n): (Date, i64)) -> Self {
        HistoricalPoint {
            date: ymd(d),
            cumulative_conversations: n,
        }
    }
}

/// Conversations of one source.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceRow {
    /// Channel (`unknown` for conversations stored without one).
    pub source: String,
    /// Conversations from it.
    pub conversations: i64,
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::sensay_time;

    #[test]
    fn times_carry_microseconds_and_a_utc_offset() {
        assert_eq!(
            sensay_time(datetime!(2024-09-24 09:09:55.66709 UTC)),
            "2024-09-24T09:09:55.667090+00:00"
        );
        assert_eq!(
            sensay_time(datetime!(2026-01-02 03:04:05 +02:00)),
            "2026-01-02T01:04:05.000000+00:00"
        );
    }
}
