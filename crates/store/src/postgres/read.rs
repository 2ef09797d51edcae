//! Reads, on the pool. Every query is scoped by tenant.

use confab_core::timefmt::{from_micros, rfc3339, to_micros};
use confab_core::{Conversation, Message, Role};
use sqlx::PgConnection;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::rows::{self, CONVERSATION_COLS, MESSAGE_COLS};
use crate::error::{Result, StoreError};
use crate::types::*;

pub async fn conversation(pool: &PgPool, tenant: TenantId, id: Uuid) -> Result<Conversation> {
    let sql = const_format(
        "SELECT ",
        CONVERSATION_COLS,
        " FROM conversations WHERE tenant_id = $1 AND id = $2",
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref()
        .map(rows::conversation)
        .transpose()?
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
pub(super) fn push_filter(
    q: &mut QueryBuilder<Postgres>,
    tenant: TenantId,
    f: &ConversationFilter,
) {
    q.push(" WHERE c.tenant_id = ").push_bind(tenant.0);
    if let Some(v) = &f.agent_id {
        q.push(" AND c.agent_id = ").push_bind(v.clone());
    }
    if let Some(v) = &f.user_id {
        q.push(" AND c.user_id = ").push_bind(v.clone());
    }
    if let Some(v) = f.status {
        q.push(" AND c.status = ").push_bind(v.as_str());
    }
    if let Some(v) = &f.source {
        q.push(" AND c.source = ").push_bind(v.clone());
    }
    if let Some(v) = f.created_after {
        q.push(" AND c.created_at >= ").push_bind(to_micros(v));
    }
    if let Some(v) = f.created_before {
        q.push(" AND c.created_at < ").push_bind(to_micros(v));
    }
    if let Some(v) = f.has_insights {
        q.push(if v { " AND EXISTS" } else { " AND NOT EXISTS" });
        q.push(" (SELECT 1 FROM insights i WHERE i.tenant_id = c.tenant_id AND i.conversation_id = c.id)");
    }
    if f.sentiment.is_some() || f.task_completed.is_some() {
        q.push(" AND EXISTS (SELECT 1 FROM insights i WHERE i.tenant_id = c.tenant_id AND i.conversation_id = c.id");
        if let Some(v) = f.sentiment {
            q.push(" AND i.sentiment = ").push_bind(v.as_str());
        }
        if let Some(v) = f.task_completed {
            q.push(" AND i.task_completed = ").push_bind(v);
        }
        q.push(")");
    }
}

pub async fn conversations(
    c: &mut PgConnection,
    tenant: TenantId,
    f: &ConversationFilter,
    page: ConversationPage,
) -> Result<Vec<Conversation>> {
    let cols: String = CONVERSATION_COLS
        .split(", ")
        .map(|c| format!("c.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {cols} FROM conversations c"));
    push_filter(&mut q, tenant, f);
    let (limit, offset) = match page {
        ConversationPage::After(cursor, limit) => {
            if let Some(c) = cursor {
                q.push(" AND (c.created_at < ").push_bind(c.created_at_us);
                q.push(" OR (c.created_at = ").push_bind(c.created_at_us);
                q.push(" AND c.id < ").push_bind(c.id).push("))");
            }
            (limit, 0)
        }
        ConversationPage::Offset(offset, limit) => (limit, offset),
    };
    q.push(" ORDER BY c.created_at DESC, c.id DESC LIMIT ")
        .push_bind(limit);
    q.push(" OFFSET ").push_bind(offset);
    let rows = q.build().fetch_all(c).await?;
    rows.iter().map(rows::conversation).collect()
}

pub async fn count_conversations(
    c: &mut PgConnection,
    tenant: TenantId,
    f: &ConversationFilter,
) -> Result<i64> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM conversations c");
    push_filter(&mut q, tenant, f);
    Ok(q.build().fetch_one(c).await?.try_get(0)?)
}

/// Ends a page's statement with `LIMIT n`, the number written into it. PostgreSQL costs a
/// generic plan's `LIMIT $n` as a tenth of the rows it expects a conversation to have, where a
/// plan for the values knows the page is, say, 50: on a store whose conversations it takes for
/// a few hundred messages long, the generic plan never looked cheaper, and every page was
/// planned afresh. Written out, the two plans cost the same, and PostgreSQL settles on the
/// generic one (the same index scan) after five pages: a third less of its CPU a page
/// (docs/performance.md, forty-sixth session; `tests/pg_plans.rs`). Clients keep to a few page
/// sizes, so a few statements a connection; a number cannot carry SQL.
pub(super) fn push_limit(q: &mut QueryBuilder<Postgres>, n: i64) {
    q.push(format!(" LIMIT {n}"));
}

/// The rest of a page's condition after its conversation's (`seq` above `after`, below
/// `before`, of `roles` if any), then its order (newest first when `descending`).
pub(super) fn push_seqs(
    q: &mut QueryBuilder<Postgres>,
    after: Option<i64>,
    before: Option<i64>,
    roles: Option<&[Role]>,
    descending: bool,
) {
    if let Some(s) = after {
        q.push(" AND seq > ").push_bind(s);
    }
    if let Some(s) = before {
        q.push(" AND seq < ").push_bind(s);
    }
    if let Some(roles) = roles {
        q.push(" AND role IN (");
        let mut sep = q.separated(", ");
        for r in roles {
            sep.push_bind(r.as_str());
        }
        q.push(")");
    }
    q.push(if descending {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq ASC"
    });
}

/// A page of a conversation's messages, as `mq` asks.
fn page(tenant: TenantId, conversation: Uuid, mq: &MessageQuery) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = "
    ));
    q.push_bind(tenant.0)
        .push(" AND conversation_id = ")
        .push_bind(conversation);
    push_seqs(
        &mut q,
        mq.after_seq,
        mq.before_seq,
        mq.roles.as_deref(),
        mq.descending,
    );
    if let Some(n) = mq.limit {
        push_limit(&mut q, n);
    }
    // Only when there is one: PostgreSQL costs a generic plan's `OFFSET $n` as a tenth of the
    // rows skipped ([`push_limit`]).
    if mq.offset != 0 {
        q.push(" OFFSET ").push_bind(mq.offset);
    }
    q
}

/// The text of [`page`]'s statement for `mq`, for the test that checks its plan.
pub(crate) fn page_sql(mq: &MessageQuery) -> String {
    page(TenantId(Uuid::nil()), Uuid::nil(), mq).into_string()
}

pub async fn messages(
    c: &mut PgConnection,
    tenant: TenantId,
    conversation: Uuid,
    mq: &MessageQuery,
) -> Result<Vec<Message>> {
    let mut q = page(tenant, conversation, mq);
    let rows = q.build().fetch_all(&mut *c).await?;
    if rows.is_empty() {
        // Only an empty page needs to know whether the conversation exists (404 or an empty
        // list); a page with rows proves it, so the common case is one round trip, not two.
        conversation_exists(c, tenant, conversation).await?;
    }
    rows.iter().map(rows::message).collect()
}

/// `NotFound` unless the tenant has this conversation.
pub async fn conversation_exists<'c, E>(e: E, tenant: TenantId, id: Uuid) -> Result<()>
where
    E: sqlx::PgExecutor<'c>,
{
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT 1::bigint FROM conversations WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(id)
            .fetch_optional(e)
            .await?;
    exists.map(|_| ()).ok_or(StoreError::NotFound)
}

/// `NotFound` unless the tenant has this conversation and, when `agent` is named, it is that
/// agent's.
pub async fn conversation_of<'c, E>(
    e: E,
    tenant: TenantId,
    id: Uuid,
    agent: Option<&str>,
) -> Result<()>
where
    E: sqlx::PgExecutor<'c>,
{
    let Some(agent) = agent else {
        return conversation_exists(e, tenant, id).await;
    };
    let exists: Option<i64> = sqlx::query_scalar(
        "SELECT 1::bigint FROM conversations WHERE tenant_id = $1 AND id = $2 AND agent_id = $3",
    )
    .bind(tenant.0)
    .bind(id)
    .bind(agent)
    .fetch_optional(e)
    .await?;
    exists.map(|_| ()).ok_or(StoreError::NotFound)
}

pub async fn list_keys(pool: &PgPool) -> Result<Vec<KeyInfo>> {
    let rows = sqlx::query(
        "SELECT t.name, k.key_id, k.scopes, k.name, k.created_at, k.revoked_at \
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id ORDER BY k.created_at DESC",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(key_info).collect()
}

/// A key row: tenant name, key id, scopes, name, created, revoked.
pub fn key_info(r: &sqlx::postgres::PgRow) -> Result<KeyInfo> {
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
