//! Row <-> model mapping for SQLite.

use confab_core::timefmt::from_micros;
use confab_core::{Conversation, Message};
use serde_json::{Map, Value};

use crate::error::{Result, StoreError};

/// Columns of `conversations`, in the order [`conversation_raw`] reads them.
pub const CONVERSATION_COLS: &str = "id, agent_id, user_id, title, status, source, model, company_name, \
     added_to_memory, metadata, message_count, analyze, created_at, updated_at, completed_at";

/// Columns of `messages`, in the order [`message_raw`] reads them.
pub const MESSAGE_COLS: &str = "id, conversation_id, seq, role, content, created_at, model, tokens, \
     prompt_tokens, completion_tokens, latency_ms, tool_calls, metadata, source, is_trigger";

fn parse_enum<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(StoreError::Corrupt)
}

pub fn json_object(s: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(s) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(StoreError::Corrupt(format!(
            "metadata is not a JSON object: {s}"
        ))),
    }
}

/// Reads a conversation row selected with [`CONVERSATION_COLS`] (rusqlite: the writer's
/// synchronous path and the fast readers).
pub fn conversation_raw(r: &rusqlite::Row<'_>) -> Result<Conversation> {
    let status = text(r, 4)?;
    let metadata = text(r, 9)?;
    Ok(Conversation {
        id: super::raw::uuid(r, 0)?,
        agent_id: r.get(1)?,
        user_id: r.get(2)?,
        title: r.get(3)?,
        status: parse_enum(status)?,
        source: r.get(5)?,
        model: r.get(6)?,
        company_name: r.get(7)?,
        added_to_memory: r.get(8)?,
        metadata: json_object(metadata)?,
        message_count: r.get(10)?,
        analyze: r.get(11)?,
        created_at: from_micros(r.get(12)?),
        updated_at: from_micros(r.get(13)?),
        completed_at: r.get::<_, Option<i64>>(14)?.map(from_micros),
    })
}

/// Reads a message row selected with [`MESSAGE_COLS`]. Text columns are borrowed, not
/// copied, where only a parse needs them: this runs for every row of every page.
pub fn message_raw(r: &rusqlite::Row<'_>) -> Result<Message> {
    let role = text(r, 3)?;
    let tool_calls = opt_text(r, 11)?;
    let metadata = opt_text(r, 12)?;
    Ok(Message {
        id: super::raw::uuid(r, 0)?,
        conversation_id: super::raw::uuid(r, 1)?,
        seq: r.get(2)?,
        role: parse_enum(role)?,
        content: r.get(4)?,
        created_at: from_micros(r.get(5)?),
        model: r.get(6)?,
        tokens: r.get(7)?,
        prompt_tokens: r.get(8)?,
        completion_tokens: r.get(9)?,
        latency_ms: r.get(10)?,
        tool_calls: tool_calls
            .map(|s| serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?,
        metadata: metadata.map(json_object).transpose()?,
        source: r.get(13)?,
        is_trigger: r.get(14)?,
    })
}

fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str> {
    r.get_ref(i)?
        .as_str()
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

fn opt_text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<Option<&'r str>> {
    r.get_ref(i)?
        .as_str_or_null()
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}
