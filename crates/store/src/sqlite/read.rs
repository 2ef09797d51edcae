//! Reads, on the reader pool. Every query is scoped by tenant.

use confab_core::timefmt::{from_micros, rfc3339, to_micros};
use confab_core::{Conversation, Message};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

use rusqlite::types::Value;
use rusqlite::{Connection, params};

use super::raw::{self, Sql, blob, id as b};
use super::rows::{self, CONVERSATION_COLS, MESSAGE_COLS};
use crate::error::{Result, StoreError};
use crate::types::*;

pub fn conversation(c: &Connection, tenant: TenantId, id: Uuid) -> Result<Conversation> {
    let sql = const_format(
        "SELECT ",
        CONVERSATION_COLS,
        " FROM conversations WHERE tenant_id = ? AND id = ?",
    );
    raw::one(
        c,
        &sql,
        params![b(&tenant.0), b(&id)],
        rows::conversation_raw,
    )?
    .ok_or(StoreError::NotFound)
}

/// `NotFound` unless the tenant has this conversation.
pub fn conversation_exists(c: &Connection, tenant: TenantId, id: Uuid) -> Result<()> {
    raw::one(
        c,
        "SELECT 1 FROM conversations WHERE tenant_id = ? AND id = ?",
        params![b(&tenant.0), b(&id)],
        |_| Ok(()),
    )?
    .ok_or(StoreError::NotFound)
}

/// `NotFound` unless the tenant has this conversation and, when `agent` is named, it is that
/// agent's.
pub fn conversation_of(
    c: &Connection,
    tenant: TenantId,
    id: Uuid,
    agent: Option<&str>,
) -> Result<()> {
    let Some(agent) = agent else {
        return conversation_exists(c, tenant, id);
    };
    raw::one(
        c,
        "SELECT 1 FROM conversations WHERE tenant_id = ? AND id = ? AND agent_id = ?",
        params![b(&tenant.0), b(&id), agent],
        |_| Ok(()),
    )?
    .ok_or(StoreError::NotFound)
}

fn const_format(a: &str, b: &str, c: &str) -> String {
    let mut s = String::with_capacity(a.len() + b.len() + c.len());
    s.push_str(a);
    s.push_str(b);
    s.push_str(c);
    s
}

/// Appends the WHERE clause of a conversation filter (after `tenant_id = ?`).
pub(super) fn push_filter(q: &mut Sql, tenant: TenantId, f: &ConversationFilter) {
    q.push(" WHERE c.tenant_id = ").bind(blob(&tenant.0));
    if let Some(v) = &f.agent_id {
        q.push(" AND c.agent_id = ").bind(v.clone());
    }
    if let Some(v) = &f.user_id {
        q.push(" AND c.user_id = ").bind(v.clone());
    }
    if let Some(v) = f.status {
        q.push(" AND c.status = ").bind(v.as_str().to_owned());
    }
    if let Some(v) = &f.source {
        q.push(" AND c.source = ").bind(v.clone());
    }
    if let Some(v) = f.created_after {
        q.push(" AND c.created_at >= ").bind(to_micros(v));
    }
    if let Some(v) = f.created_before {
        q.push(" AND c.created_at < ").bind(to_micros(v));
    }
    if let Some(v) = f.has_insights {
        q.push(if v { " AND EXISTS" } else { " AND NOT EXISTS" });
        q.push(" (SELECT 1 FROM insights i WHERE i.tenant_id = c.tenant_id AND i.conversation_id = c.id)");
    }
    if f.sentiment.is_some() || f.task_completed.is_some() {
        q.push(" AND EXISTS (SELECT 1 FROM insights i WHERE i.tenant_id = c.tenant_id AND i.conversation_id = c.id");
        if let Some(v) = f.sentiment {
            q.push(" AND i.sentiment = ").bind(v.as_str().to_owned());
        }
        if let Some(v) = f.task_completed {
            q.push(" AND i.task_completed = ").bind(v);
        }
        q.push(")");
    }
}

/// `c.`-qualified conversation columns.
pub(super) fn qualified_conversation_cols() -> String {
    CONVERSATION_COLS
        .split(", ")
        .map(|c| format!("c.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn conversations(
    c: &Connection,
    tenant: TenantId,
    f: &ConversationFilter,
    page: ConversationPage,
) -> Result<Vec<Conversation>> {
    let mut q = Sql::default();
    q.push(&format!(
        "SELECT {} FROM conversations c",
        qualified_conversation_cols()
    ));
    push_filter(&mut q, tenant, f);
    let (limit, offset) = match page {
        ConversationPage::After(cursor, limit) => {
            if let Some(cur) = cursor {
                q.push(" AND (c.created_at < ").bind(cur.created_at_us);
                q.push(" OR (c.created_at = ").bind(cur.created_at_us);
                q.push(" AND c.id < ").bind(blob(&cur.id)).push("))");
            }
            (limit, 0)
        }
        ConversationPage::Offset(offset, limit) => (limit, offset),
    };
    q.push(" ORDER BY c.created_at DESC, c.id DESC LIMIT ")
        .bind(limit);
    q.push(" OFFSET ").bind(offset);
    q.rows(c, rows::conversation_raw)
}

pub fn count_conversations(
    c: &Connection,
    tenant: TenantId,
    f: &ConversationFilter,
) -> Result<i64> {
    let mut q = Sql::default();
    q.push("SELECT COUNT(*) FROM conversations c");
    push_filter(&mut q, tenant, f);
    Ok(q.rows(c, |r| Ok(r.get::<_, i64>(0)?))?
        .into_iter()
        .next()
        .unwrap_or(0))
}

pub fn messages(
    c: &Connection,
    tenant: TenantId,
    conversation: Uuid,
    mq: &MessageQuery,
) -> Result<Vec<Message>> {
    conversation_exists(c, tenant, conversation)?;
    let mut sql = format!(
        "SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2"
    );
    let mut args: Vec<Value> = vec![
        Value::Blob(tenant.0.as_bytes().to_vec()),
        Value::Blob(conversation.as_bytes().to_vec()),
    ];
    let mut arg = |sql: &mut String, text: &str, v: Value| {
        args.push(v);
        sql.push_str(&format!("{text}?{}", args.len()));
    };
    if let Some(s) = mq.after_seq {
        arg(&mut sql, " AND seq > ", Value::Integer(s));
    }
    if let Some(s) = mq.before_seq {
        arg(&mut sql, " AND seq < ", Value::Integer(s));
    }
    if let Some(roles) = &mq.roles {
        sql.push_str(" AND role IN (''");
        for r in roles {
            arg(&mut sql, ", ", Value::Text(r.as_str().to_owned()));
        }
        sql.push(')');
    }
    sql.push_str(if mq.descending {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq ASC"
    });
    arg(&mut sql, " LIMIT ", Value::Integer(mq.limit.unwrap_or(-1)));
    arg(&mut sql, " OFFSET ", Value::Integer(mq.offset));
    let mut st = c.prepare_cached(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(rows::message_raw(r)?);
    }
    Ok(out)
}

pub async fn list_keys(pool: &SqlitePool) -> Result<Vec<KeyInfo>> {
    let rows = sqlx::query(
        "SELECT t.name, k.key_id, k.scopes, k.name, k.created_at, k.revoked_at \
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id ORDER BY k.created_at DESC",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(key_info).collect()
}

/// A key row selected as `t.name, k.key_id, k.scopes, k.name, k.created_at, k.revoked_at`.
pub fn key_info(r: &sqlx::sqlite::SqliteRow) -> Result<KeyInfo> {
    Ok(KeyInfo {
        tenant: r.try_get(0)?,
        key_id: r.try_get(1)?,
        scopes: r.try_get(2)?,
        name: r.try_get(3)?,
        created_at: rfc3339(from_micros(r.try_get(4)?)),
        revoked_at: r
            .try_get::<Option<i64>, _>(5)?
            .map(|t| rfc3339(from_micros(t))),
    })
}
