//! Row <-> model mapping for PostgreSQL (JSON columns are jsonb, read as values).

use confab_core::timefmt::from_micros;
use confab_core::{Conversation, Message};
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::{Result, StoreError};

/// Columns of `conversations`, in the order [`conversation`] reads them.
pub const CONVERSATION_COLS: &str = "id, agent_id, user_id, title, status, source, model, company_name, \
     added_to_memory, metadata, message_count, \"analyze\", created_at, updated_at, completed_at";

/// Columns of `messages`, in the order [`message`] reads them.
pub const MESSAGE_COLS: &str = "id, conversation_id, seq, role, content, created_at, model, tokens, \
     prompt_tokens, completion_tokens, latency_ms, tool_calls, metadata, source, is_trigger";

fn parse_enum<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(StoreError::Corrupt)
}

pub fn json_object(v: Value) -> Result<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        v => Err(StoreError::Corrupt(format!(
            "metadata is not a JSON object: {v}"
        ))),
    }
}

/// Reads a conversation row selected with [`CONVERSATION_COLS`].
pub fn conversation(r: &PgRow) -> Result<Conversation> {
    Ok(Conversation {
        id: r.try_get(0)?,
        agent_id: r.try_get(1)?,
        user_id: r.try_get(2)?,
        title: r.try_get(3)?,
        status: parse_enum(r.try_get::<&str, _>(4)?)?,
        source: r.try_get(5)?,
        model: r.try_get(6)?,
        company_name: r.try_get(7)?,
        added_to_memory: r.try_get(8)?,
        metadata: json_object(r.try_get::<Value, _>(9)?)?,
        message_count: r.try_get(10)?,
        analyze: r.try_get(11)?,
        created_at: from_micros(r.try_get(12)?),
        updated_at: from_micros(r.try_get(13)?),
        completed_at: r.try_get::<Option<i64>, _>(14)?.map(from_micros),
    })
}

/// Reads a message row selected with [`MESSAGE_COLS`].
pub fn message(r: &PgRow) -> Result<Message> {
    let tool_calls: Option<Value> = r.try_get(11)?;
    let metadata: Option<Value> = r.try_get(12)?;
    Ok(Message {
        id: r.try_get(0)?,
        conversation_id: r.try_get(1)?,
        seq: r.try_get(2)?,
        role: parse_enum(r.try_get::<&str, _>(3)?)?,
        content: r.try_get(4)?,
        created_at: from_micros(r.try_get(5)?),
        model: r.try_get(6)?,
        tokens: r.try_get(7)?,
        prompt_tokens: r.try_get(8)?,
        completion_tokens: r.try_get(9)?,
        latency_ms: r.try_get(10)?,
        tool_calls,
        metadata: metadata.map(json_object).transpose()?,
        source: r.try_get(13)?,
        is_trigger: r.try_get(14)?,
    })
}
