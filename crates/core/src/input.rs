//! What a write asks for, after the dialect has translated its wire format: validated once
//! here for every dialect, then handed to the store.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::ValidationError;
use crate::model::{Role, Status};

/// Limits every dialect shares (a dialect may add stricter ones of its own).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of one message's content.
    pub max_content_bytes: usize,
    /// Messages in one request.
    pub max_messages: usize,
    /// Characters of a short string field (ids, source, model, …).
    pub max_short: usize,
    /// Characters of a title.
    pub max_title: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_content_bytes: 1024 * 1024,
            max_messages: 10_000,
            max_short: 256,
            max_title: 1_000,
        }
    }
}

/// A message to append.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewMessage {
    /// Speaker.
    pub role: Option<Role>,
    /// Text; empty only for a tool message that carries tool calls.
    pub content: String,
    /// Client time; server time when absent.
    pub created_at: Option<OffsetDateTime>,
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
    /// JSON array of objects.
    pub tool_calls: Option<Value>,
    /// JSON object.
    pub metadata: Option<Map<String, Value>>,
    /// Channel; the conversation's when absent.
    pub source: Option<String>,
    /// Convai trigger flag.
    pub is_trigger: bool,
}

/// A conversation to create, optionally with its first messages.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversation {
    /// Agent (upserted on first use).
    pub agent_id: Option<String>,
    /// End user.
    pub user_id: Option<String>,
    /// Title; derived from the first user message when absent.
    pub title: Option<String>,
    /// Initial status.
    pub status: Status,
    /// Channel.
    pub source: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Customer company.
    pub company_name: Option<String>,
    /// Convai memory flag.
    pub added_to_memory: bool,
    /// JSON object.
    pub metadata: Map<String, Value>,
    /// Client time; server time when absent.
    pub created_at: Option<OffsetDateTime>,
    /// Whether insights are computed on completion.
    pub analyze: bool,
    /// Initial messages, in order.
    pub messages: Vec<NewMessage>,
}

impl NewConversation {
    /// An empty open conversation with defaults.
    pub fn new(status: Status) -> Self {
        NewConversation {
            agent_id: None,
            user_id: None,
            title: None,
            status,
            source: None,
            model: None,
            company_name: None,
            added_to_memory: false,
            metadata: Map::new(),
            created_at: None,
            analyze: true,
            messages: Vec::new(),
        }
    }
}

/// Turns to append, with an optional status change and metadata merge.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppendMessages {
    /// At least one.
    pub messages: Vec<NewMessage>,
    /// New status, if any.
    pub status: Option<Status>,
    /// Shallow-merged into the conversation's metadata.
    pub metadata: Option<Map<String, Value>>,
}

/// Fields a PATCH may change; `None` leaves a field alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConversationPatch {
    /// New title (`Some(None)` clears it).
    pub title: Option<Option<String>>,
    /// New status.
    pub status: Option<Status>,
    /// Shallow-merged into metadata (a null value removes that key).
    pub metadata: Option<Map<String, Value>>,
    /// Convai memory flag.
    pub added_to_memory: Option<bool>,
}

/// Shallow merge: keys of `patch` replace those of `base`; a null value removes the key.
pub fn merge_metadata(base: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        if v.is_null() {
            base.remove(k);
        } else {
            base.insert(k.clone(), v.clone());
        }
    }
}

/// A field's name as an error states it, written out only when an error names it: a valid
/// message has seven fields checked, and formatting each name up front was 3.5 % of an
/// append's request-side CPU (perf, 64 connections).
pub trait FieldName {
    fn name(&self) -> String;
}

impl FieldName for &str {
    fn name(&self) -> String {
        (*self).to_owned()
    }
}

impl<F: Fn() -> String> FieldName for F {
    fn name(&self) -> String {
        self()
    }
}

fn check_text(field: impl FieldName, s: &str, max_chars: usize, errs: &mut ValidationError) {
    if s.contains('\0') {
        errs.push(field.name(), "must not contain NUL (U+0000) characters");
    } else if s.chars().count() > max_chars {
        errs.push(
            field.name(),
            format!("must be at most {max_chars} characters"),
        );
    }
}

fn check_short(
    field: impl FieldName,
    s: &Option<String>,
    limits: &Limits,
    errs: &mut ValidationError,
) {
    if let Some(s) = s {
        if s.is_empty() {
            errs.push(field.name(), "must not be empty");
        } else {
            check_text(field, s, limits.max_short, errs);
        }
    }
}

/// PostgreSQL cannot store U+0000 in text or jsonb, so no backend accepts it anywhere.
fn json_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(json_has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

fn check_metadata(field: impl FieldName, m: &Map<String, Value>, errs: &mut ValidationError) {
    if m.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)) {
        errs.push(field.name(), "must not contain NUL (U+0000) characters");
    }
}

fn check_count(field: impl FieldName, v: Option<i64>, errs: &mut ValidationError) {
    if v.is_some_and(|n| n < 0) {
        errs.push(field.name(), "must not be negative");
    }
}

impl NewMessage {
    /// Checks one message; `path` prefixes the field names (e.g. `messages[3]`).
    pub fn validate(&self, path: impl FieldName, limits: &Limits, errs: &mut ValidationError) {
        let path = &path;
        let f = |name: &'static str| move || format!("{}.{name}", path.name());
        let Some(role) = self.role else {
            errs.push(f("role")(), "is required (user, assistant, system or tool)");
            return;
        };
        let has_tool_calls = matches!(&self.tool_calls, Some(Value::Array(a)) if !a.is_empty());
        if self.content.is_empty() && !(role == Role::Tool && has_tool_calls) {
            errs.push(
                f("content")(),
                "must not be empty (only a tool message with toolCalls may omit it)",
            );
        } else if self.content.contains('\0') {
            errs.push(f("content")(), "must not contain NUL (U+0000) characters");
        } else if self.content.len() > limits.max_content_bytes {
            errs.push(
                f("content")(),
                format!("must be at most {} bytes", limits.max_content_bytes),
            );
        }
        check_short(f("model"), &self.model, limits, errs);
        check_short(f("source"), &self.source, limits, errs);
        check_count(f("tokens"), self.tokens, errs);
        check_count(f("prompt_tokens"), self.prompt_tokens, errs);
        check_count(f("completion_tokens"), self.completion_tokens, errs);
        check_count(f("latency_ms"), self.latency_ms, errs);
        if let Some(tc) = &self.tool_calls {
            match tc {
                Value::Array(a) if a.iter().all(Value::is_object) => {
                    if json_has_nul(tc) {
                        errs.push(
                            f("tool_calls")(),
                            "must not contain NUL (U+0000) characters",
                        );
                    }
                }
                _ => errs.push(f("tool_calls")(), "must be an array of objects"),
            }
        }
        if let Some(m) = &self.metadata {
            check_metadata(f("metadata"), m, errs);
        }
    }
}

fn validate_messages(msgs: &[NewMessage], limits: &Limits, errs: &mut ValidationError) {
    if msgs.len() > limits.max_messages {
        errs.push(
            "messages",
            format!("at most {} messages per request", limits.max_messages),
        );
        return;
    }
    for (i, m) in msgs.iter().enumerate() {
        m.validate(|| format!("messages[{i}]"), limits, errs);
    }
}

impl NewConversation {
    /// Checks every field and message.
    pub fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        let mut errs = ValidationError::default();
        check_short("agent_id", &self.agent_id, limits, &mut errs);
        check_short("user_id", &self.user_id, limits, &mut errs);
        check_short("source", &self.source, limits, &mut errs);
        check_short("model", &self.model, limits, &mut errs);
        check_short("company_name", &self.company_name, limits, &mut errs);
        if let Some(t) = &self.title {
            check_text("title", t, limits.max_title, &mut errs);
        }
        check_metadata("metadata", &self.metadata, &mut errs);
        validate_messages(&self.messages, limits, &mut errs);
        errs.into_result(())
    }
}

impl AppendMessages {
    /// Checks that there is at least one message and that each is valid.
    pub fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        let mut errs = ValidationError::default();
        if self.messages.is_empty() {
            errs.push("messages", "at least one message is required");
        }
        validate_messages(&self.messages, limits, &mut errs);
        if let Some(m) = &self.metadata {
            check_metadata("metadata", m, &mut errs);
        }
        errs.into_result(())
    }
}

impl ConversationPatch {
    /// Checks the changed fields.
    pub fn validate(&self, limits: &Limits) -> Result<(), ValidationError> {
        let mut errs = ValidationError::default();
        if let Some(Some(t)) = &self.title {
            check_text("title", t, limits.max_title, &mut errs);
        }
        if let Some(m) = &self.metadata {
            check_metadata("metadata", m, &mut errs);
        }
        errs.into_result(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(role: Role, content: &str) -> NewMessage {
        NewMessage {
            role: Some(role),
            content: content.into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_field_of_a_listed_message_is_named_by_its_path() {
        let mut bad = msg(Role::User, "a\0b");
        bad.model = Some(String::new());
        bad.source = Some("x".repeat(Limits::default().max_short + 1));
        bad.tokens = Some(-1);
        bad.prompt_tokens = Some(-1);
        bad.completion_tokens = Some(-1);
        bad.latency_ms = Some(-1);
        bad.tool_calls = Some(json!("nope"));
        bad.metadata = Some(json!({"k": "\0"}).as_object().unwrap().clone());
        let input = AppendMessages {
            messages: vec![msg(Role::User, "fine"), bad, NewMessage::default()],
            ..Default::default()
        };
        let e = input.validate(&Limits::default()).unwrap_err();
        let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "messages[1].content",
                "messages[1].model",
                "messages[1].source",
                "messages[1].tokens",
                "messages[1].prompt_tokens",
                "messages[1].completion_tokens",
                "messages[1].latency_ms",
                "messages[1].tool_calls",
                "messages[1].metadata",
                "messages[2].role",
            ]
        );
    }

    #[test]
    fn content_rules() {
        let l = Limits::default();
        let mut e = ValidationError::default();
        msg(Role::User, "").validate("messages[0]", &l, &mut e);
        assert_eq!(e.errors[0].field, "messages[0].content");
        let mut e = ValidationError::default();
        let mut tool = msg(Role::Tool, "");
        tool.tool_calls = Some(json!([{"name": "lookup"}]));
        tool.validate("m", &l, &mut e);
        assert!(e.is_empty());
        msg(Role::User, "a\0b").validate("m", &l, &mut e);
        assert!(e.errors[0].message.contains("NUL"));
    }

    #[test]
    fn tool_calls_must_be_objects() {
        let mut m = msg(Role::Assistant, "x");
        m.tool_calls = Some(json!(["nope"]));
        let mut e = ValidationError::default();
        m.validate("m", &Limits::default(), &mut e);
        assert_eq!(e.errors[0].field, "m.tool_calls");
    }

    #[test]
    fn merge_is_shallow_and_null_removes() {
        let mut base = json!({"a": 1, "b": {"x": 1}, "c": 3})
            .as_object()
            .unwrap()
            .clone();
        let patch = json!({"b": {"y": 2}, "c": null, "d": 4})
            .as_object()
            .unwrap()
            .clone();
        merge_metadata(&mut base, &patch);
        assert_eq!(Value::Object(base), json!({"a": 1, "b": {"y": 2}, "d": 4}));
    }
}
