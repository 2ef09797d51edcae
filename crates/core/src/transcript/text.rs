//! The labelled plain-text form: `User: Hello\nAssistant: Hi!`.
//!
//! A line is a label line when the text before its first `:` is one of the labels below (ASCII
//! case ignored, nothing before the label). Every other line continues the message above it, so
//! multi-line answers, code and blank lines survive. Text before the first label is a user turn:
//! the seed accepts any string, and refusing one that merely lacks a label would lose it.

use serde_json::Value;

use super::{FIELD, TranscriptError, TranscriptLimits};
use crate::input::NewMessage;
use crate::model::{Message, Role};

/// Accepted labels. The seed's three pairs, plus the two labels [`render`] writes for system and
/// tool turns so that the rendered form parses back to the same roles.
const LABELS: &[(&str, Role)] = &[
    ("User", Role::User),
    ("Assistant", Role::Assistant),
    ("Human", Role::User),
    ("AI", Role::Assistant),
    ("Customer", Role::User),
    ("Agent", Role::Assistant),
    ("System", Role::System),
    ("Tool", Role::Tool),
];

/// The label [`render`] writes for a role.
fn label_of(role: Role) -> &'static str {
    match role {
        Role::User => "User",
        Role::Assistant => "Assistant",
        Role::System => "System",
        Role::Tool => "Tool",
    }
}

/// The role and the rest of the line, when the line starts with a label.
fn label(line: &str) -> Option<(Role, &str)> {
    let colon = line.find(':')?;
    let name = &line[..colon];
    LABELS
        .iter()
        .find(|(l, _)| l.eq_ignore_ascii_case(name))
        .map(|(_, r)| (*r, &line[colon + 1..]))
}

/// A message being collected, with the line it started on (1-based, for error messages).
struct Open {
    role: Role,
    text: String,
    line: usize,
}

/// Splits labelled text into turns; every limit and emptiness rule names the line it concerns.
pub(super) fn parse(
    content: &str,
    limits: &TranscriptLimits,
) -> Result<Vec<NewMessage>, TranscriptError> {
    if content.contains('\0') {
        return Err(TranscriptError::invalid(
            FIELD,
            "must not contain NUL (U+0000) characters",
        ));
    }
    let mut done: Vec<Open> = Vec::new();
    let mut cur: Option<Open> = None;
    for (i, raw) in content.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some((role, rest)) = label(line) {
            done.extend(cur.take());
            cur = Some(Open {
                role,
                text: rest.trim_start().to_owned(),
                line: i + 1,
            });
        } else if let Some(open) = cur.as_mut() {
            // A label alone on its line ("User:\nHello") starts the text on the next line.
            if !open.text.is_empty() {
                open.text.push('\n');
            }
            open.text.push_str(line);
        } else if !line.trim().is_empty() {
            cur = Some(Open {
                role: Role::User,
                text: line.to_owned(),
                line: i + 1,
            });
        }
        if let Some(open) = &cur {
            check_size(open, limits)?;
        }
        if done.len() + usize::from(cur.is_some()) > limits.max_messages {
            return Err(TranscriptError::too_large(
                FIELD,
                format!(
                    "has more than {} messages (line {}); at most {} are accepted per request",
                    limits.max_messages,
                    i + 1,
                    limits.max_messages
                ),
            ));
        }
    }
    done.extend(cur);
    done.into_iter()
        .map(|o| {
            let text = o.text.trim();
            if text.is_empty() {
                return Err(TranscriptError::invalid(
                    FIELD,
                    format!(
                        "the {} message on line {} has no text",
                        label_of(o.role),
                        o.line
                    ),
                ));
            }
            Ok(NewMessage {
                role: Some(o.role),
                content: text.to_owned(),
                ..NewMessage::default()
            })
        })
        .collect()
}

/// Checked while collecting, so a single enormous message is refused as soon as it is seen.
fn check_size(open: &Open, limits: &TranscriptLimits) -> Result<(), TranscriptError> {
    // Trailing blank lines are trimmed at the end, so only what can remain counts.
    let len = open.text.trim_end().len();
    if len > limits.max_message_bytes {
        return Err(TranscriptError::too_large(
            FIELD,
            format!(
                "the {} message starting on line {} is over {} bytes ({} KiB), the limit per message",
                label_of(open.role),
                open.line,
                limits.max_message_bytes,
                limits.max_message_bytes / 1024
            ),
        ));
    }
    Ok(())
}

/// Appends one turn's line(s) to `out`. A tool turn with no text shows its tool calls as JSON,
/// so the transcript still says what happened.
pub fn render_line(out: &mut String, role: Role, content: &str, tool_calls: Option<&Value>) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(label_of(role));
    out.push_str(": ");
    match tool_calls {
        Some(tc) if content.is_empty() => out.push_str(&tc.to_string()),
        _ => out.push_str(content),
    }
}

/// The plain-text transcript of stored messages, oldest first: `User: …\nAssistant: …`, with
/// `System:` and `Tool:` for the other roles. Message text is written as is; a message line that
/// itself starts with a label would read back as a new turn, which is why the `messages` array,
/// not this text, is the record.
pub fn render(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        render_line(&mut out, m.role, &m.content, m.tool_calls.as_ref());
    }
    out
}
