//! The one model behind every dialect: conversations, messages and their enums.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::timefmt::serde_rfc3339;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and storage spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(format!(
                        "`{s}` is not one of {}",
                        [$($s),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum! {
    /// Who said a message.
    Role { User => "user", Assistant => "assistant", System => "system", Tool => "tool" }
}

string_enum! {
    /// A conversation's state: `active` and `in_progress` are both open.
    Status {
        Active => "active",
        InProgress => "in_progress",
        Completed => "completed",
        Abandoned => "abandoned",
    }
}

string_enum! {
    /// What an API key may do: `write` includes delete; `admin` manages keys and webhooks.
    Scope { Read => "read", Write => "write", Admin => "admin" }
}

impl Status {
    /// Open conversations still expect turns.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Active | Status::InProgress)
    }
}

/// A set of scopes, stored as a comma-separated list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes {
    bits: u8,
}

impl Scopes {
    /// A key created without `--scopes`: read and write.
    pub const DEFAULT: Scopes = Scopes { bits: 0b011 };

    fn bit(s: Scope) -> u8 {
        match s {
            Scope::Read => 1,
            Scope::Write => 2,
            Scope::Admin => 4,
        }
    }

    /// True when `s` is granted (admin implies nothing else: give it together with the others).
    pub fn has(self, s: Scope) -> bool {
        self.bits & Self::bit(s) != 0
    }

    /// Adds a scope.
    pub fn with(mut self, s: Scope) -> Self {
        self.bits |= Self::bit(s);
        self
    }

    /// Parses `read,write,admin` (any order; empty is refused).
    pub fn parse(s: &str) -> Result<Scopes, String> {
        let mut out = Scopes::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            out = out.with(part.parse()?);
        }
        if out.bits == 0 {
            return Err("at least one scope is required (read, write, admin)".into());
        }
        Ok(out)
    }

    /// The granted scopes in canonical order.
    pub fn list(self) -> Vec<Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(|s| self.has(*s))
            .collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v: Vec<&str> = self.list().iter().map(|s| s.as_str()).collect();
        f.write_str(&v.join(","))
    }
}

/// A stored conversation, as every dialect sees it before rendering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// UUIDv7.
    pub id: Uuid,
    /// The character, replica or prompt it was held with.
    pub agent_id: Option<String>,
    /// The end user (perform.chat customer_user_id, Converra metadata.userId).
    pub user_id: Option<String>,
    /// Given, or derived from the first user message.
    pub title: Option<String>,
    /// Open or closed state.
    pub status: Status,
    /// Channel: web, telegram, discord, embed, api, …
    pub source: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// The customer's company (Converra).
    pub company_name: Option<String>,
    /// Convai's memory flag.
    pub added_to_memory: bool,
    /// Free-form JSON object, shallow-merged on update.
    pub metadata: Map<String, Value>,
    /// Always the number of stored messages.
    pub message_count: i64,
    /// Whether insights are computed when it completes (kept by export and backup; not part of
    /// any dialect's wire shape).
    #[serde(default = "yes")]
    pub analyze: bool,
    /// Client-given or server time.
    #[serde(with = "serde_rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "serde_rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When it first became completed.
    #[serde(with = "serde_rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
}

fn yes() -> bool {
    true
}

impl Conversation {
    /// What appending `messages` (and merging `metadata`) does to the conversation row, apart
    /// from a status change, which has side effects the store owns: the count, a title from the
    /// first user message when there is none yet, the metadata merge, and `updated_at`. Every
    /// backend's append path calls this, so the rule lives once.
    pub fn record_append(
        &mut self,
        messages: &[crate::input::NewMessage],
        metadata: Option<&Map<String, Value>>,
        now: OffsetDateTime,
    ) {
        self.message_count += messages.len() as i64;
        if self.title.is_none() {
            self.title = crate::title::first_user_title(messages);
        }
        if let Some(m) = metadata {
            crate::input::merge_metadata(&mut self.metadata, m);
        }
        self.updated_at = now.max(self.created_at);
    }

    /// Names of the fields that differ between two versions, in wire naming (for
    /// `conversation.updated` events).
    pub fn changed_fields(&self, after: &Conversation) -> Vec<&'static str> {
        let mut out = Vec::new();
        macro_rules! cmp {
            ($($f:ident),+) => { $( if self.$f != after.$f { out.push(stringify!($f)); } )+ };
        }
        cmp!(
            agent_id,
            user_id,
            title,
            status,
            source,
            model,
            company_name,
            added_to_memory,
            metadata,
            message_count,
            completed_at
        );
        out
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// UUIDv7.
    pub id: Uuid,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// Dense 0..n order inside the conversation; the only order.
    pub seq: i64,
    /// Speaker.
    pub role: Role,
    /// Text (may be empty only for tool messages).
    pub content: String,
    /// Client-given or server time.
    #[serde(with = "serde_rfc3339")]
    pub created_at: OffsetDateTime,
    /// Model that produced it.
    pub model: Option<String>,
    /// Total tokens.
    pub tokens: Option<i64>,
    /// Prompt tokens.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens.
    pub completion_tokens: Option<i64>,
    /// Time to produce it.
    pub latency_ms: Option<i64>,
    /// JSON array of tool-call objects, stored as given.
    pub tool_calls: Option<Value>,
    /// Free-form JSON object.
    pub metadata: Option<Map<String, Value>>,
    /// Channel (the conversation's unless given).
    pub source: Option<String>,
    /// Convai: the user input was a trigger.
    pub is_trigger: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_and_print() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        assert_eq!("in_progress".parse::<Status>().unwrap(), Status::InProgress);
        assert!(
            "bot"
                .parse::<Role>()
                .unwrap_err()
                .contains("user, assistant, system, tool")
        );
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(Scopes::parse("write, read").unwrap(), Scopes::DEFAULT);
        assert_eq!(Scopes::DEFAULT.to_string(), "read,write");
        assert!(Scopes::parse("").is_err());
        assert!(Scopes::parse("root").is_err());
        assert!(!Scopes::DEFAULT.has(Scope::Admin));
    }
}

string_enum! {
    /// Overall tone of a conversation.
    Sentiment { Positive => "positive", Neutral => "neutral", Negative => "negative", Mixed => "mixed" }
}

/// One problem the analyzer noticed: a stable code and a short text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Issue {
    /// Stable code, e.g. `unresolved_question`.
    pub code: String,
    /// For humans.
    pub text: String,
}

/// What the analyzer concluded about a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Insights {
    /// The conversation.
    pub conversation_id: Uuid,
    /// Label.
    pub sentiment: Sentiment,
    /// In [-1, 1].
    pub sentiment_score: f64,
    /// Whether the user got what they came for.
    pub task_completed: bool,
    /// At most 5 keyphrases.
    pub topics: Vec<String>,
    /// Extractive summary.
    pub summary: String,
    /// Problems noticed.
    pub issues: Vec<Issue>,
    /// Which engine made them (`builtin`, `llm:<model>`).
    pub analyzer: String,
    /// When they were made.
    #[serde(with = "serde_rfc3339")]
    pub created_at: OffsetDateTime,
}
