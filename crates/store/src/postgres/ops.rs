//! Each write, run inside its request's transaction (see `PgStore::exec`).

use confab_core::ids::new_id;
use confab_core::input::{
    AppendMessages, ConversationPatch, NewConversation, NewMessage, merge_metadata,
};
use confab_core::timefmt::{from_micros, to_micros};
use confab_core::{Conversation, Status};
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

pub(super) use super::columns::{MessageRow, insert_message_rows, update_conversations};
use super::rows::{self, CONVERSATION_COLS};
use super::webhooks::emit;
use crate::IDEMPOTENCY_TTL;
use crate::error::{Result, StoreError};
use crate::types::*;

/// The id of the tenant called `name`, created on first use. Two processes creating the same
/// new tenant at once meet at the unique index on the name: the second waits for the first to
/// commit, inserts nothing, and reads the first's row.
pub(super) async fn tenant_named(
    c: &mut PgConnection,
    name: &str,
    now: OffsetDateTime,
) -> Result<Uuid> {
    sqlx::query(
        "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(new_id())
    .bind(name)
    .bind(to_micros(now))
    .execute(&mut *c)
    .await?;
    Ok(sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *c)
        .await?)
}

pub(super) async fn create_key(
    c: &mut PgConnection,
    tenant: &str,
    scopes: confab_core::Scopes,
    name: Option<String>,
    pepper: &[u8],
    now: OffsetDateTime,
) -> Result<CreatedKey> {
    let tenant_id = tenant_named(c, tenant, now).await?;
    let k = crate::keys::generate();
    sqlx::query(
        "INSERT INTO api_keys (tenant_id, key_id, secret_hash, scopes, name, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant_id)
    .bind(&k.key_id)
    .bind(crate::keys::hash_secret(pepper, &k.secret))
    .bind(scopes.to_string())
    .bind(name)
    .bind(to_micros(now))
    .execute(&mut *c)
    .await?;
    Ok(CreatedKey {
        tenant: tenant.to_owned(),
        token: format!("{}.{}", k.key_id, k.secret),
        key_id: k.key_id,
        key_secret: k.secret,
        scopes: scopes.to_string(),
    })
}

pub async fn revoke_key(c: &mut PgConnection, key_id: &str, now: OffsetDateTime) -> Result<()> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1::bigint FROM api_keys WHERE key_id = $1")
        .bind(key_id)
        .fetch_optional(&mut *c)
        .await?;
    if found.is_none() {
        return Err(StoreError::NotFound);
    }
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL")
        .bind(to_micros(now))
        .bind(key_id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// The earlier answer for an idempotency key, if it is still honoured.
async fn idem_lookup(
    c: &mut PgConnection,
    tenant: TenantId,
    claim: &IdempotencyClaim,
    now: OffsetDateTime,
) -> Result<Option<Written>> {
    let row = sqlx::query(
        "SELECT fingerprint, conversation_id, response::text, created_at FROM idempotency_keys \
         WHERE tenant_id = $1 AND family = $2 AND key = $3",
    )
    .bind(tenant.0)
    .bind(claim.family)
    .bind(&claim.key)
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if from_micros(row.try_get(3)?) + IDEMPOTENCY_TTL <= now {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND family = $2 AND key = $3",
        )
        .bind(tenant.0)
        .bind(claim.family)
        .bind(&claim.key)
        .execute(&mut *c)
        .await?;
        return Ok(None);
    }
    match &claim.fingerprint {
        Some(fp) => {
            let stored: Option<Vec<u8>> = row.try_get(0)?;
            if stored.as_deref() != Some(fp.as_slice()) {
                return Err(StoreError::IdempotencyMismatch);
            }
            let response: Option<String> = row.try_get(2)?;
            let conv: Conversation = serde_json::from_str(response.as_deref().unwrap_or(""))
                .map_err(|e| StoreError::Corrupt(format!("idempotency response: {e}")))?;
            Ok(Some(Written::Replayed(conv)))
        }
        None => {
            let id: Option<Uuid> = row.try_get(1)?;
            match id {
                Some(id) => Ok(select_conversation(c, tenant, id)
                    .await?
                    .map(Written::Replayed)),
                None => Ok(None),
            }
        }
    }
}

async fn idem_store(
    c: &mut PgConnection,
    tenant: TenantId,
    claim: IdempotencyClaim,
    conv: &Conversation,
    now: OffsetDateTime,
) -> Result<()> {
    let response = match &claim.fingerprint {
        Some(_) => {
            Some(serde_json::to_string(conv).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        }
        None => None,
    };
    sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, family, key, fingerprint, conversation_id, response, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
    )
    .bind(tenant.0)
    .bind(claim.family)
    .bind(claim.key)
    .bind(claim.fingerprint)
    .bind(conv.id)
    .bind(response)
    .bind(to_micros(now))
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn select_conversation(
    c: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<Conversation>> {
    let sql =
        format!("SELECT {CONVERSATION_COLS} FROM conversations WHERE tenant_id = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(rows::conversation).transpose()
}

/// The conversation, its row locked until the transaction ends: concurrent appends to one
/// conversation queue here, so each reads the message_count the previous one wrote and seqs
/// stay consecutive.
async fn lock_conversation(
    c: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<Conversation>> {
    let sql = format!(
        "SELECT {CONVERSATION_COLS} FROM conversations WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(rows::conversation).transpose()
}

/// Creates the agent row on first use (conversations refer to it).
pub(super) async fn upsert_agent(
    c: &mut PgConnection,
    tenant: TenantId,
    agent: &str,
    now: OffsetDateTime,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO agents (tenant_id, id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.0)
    .bind(agent)
    .bind(to_micros(now))
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Inserts a conversation row exactly as given (ids and timestamps included): shared by create
/// and import, so the column list lives once.
pub(super) async fn insert_conversation(
    c: &mut PgConnection,
    tenant: TenantId,
    conv: &Conversation,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO conversations (tenant_id, id, agent_id, user_id, title, status, source, model, company_name, \
         added_to_memory, metadata, message_count, \"analyze\", created_at, updated_at, completed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(tenant.0)
    .bind(conv.id)
    .bind(&conv.agent_id)
    .bind(&conv.user_id)
    .bind(&conv.title)
    .bind(conv.status.as_str())
    .bind(&conv.source)
    .bind(&conv.model)
    .bind(&conv.company_name)
    .bind(conv.added_to_memory)
    .bind(serde_json::Value::Object(conv.metadata.clone()))
    .bind(conv.message_count)
    .bind(conv.analyze)
    .bind(to_micros(conv.created_at))
    .bind(to_micros(conv.updated_at))
    .bind(conv.completed_at.map(to_micros))
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Inserts messages with seqs `first_seq..`, many rows per statement.
async fn insert_messages(
    c: &mut PgConnection,
    tenant: TenantId,
    conversation: Uuid,
    first_seq: i64,
    msgs: &[NewMessage],
    default_source: &Option<String>,
    now: OffsetDateTime,
) -> Result<()> {
    let rows: Vec<MessageRow<'_>> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| MessageRow {
            tenant,
            conversation,
            seq: first_seq + i as i64,
            message: m,
            source: m.source.as_deref().or(default_source.as_deref()),
        })
        .collect();
    insert_message_rows(c, &rows, now).await
}

async fn enqueue_insights(
    c: &mut PgConnection,
    tenant: TenantId,
    conversation: Uuid,
    now: OffsetDateTime,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (tenant_id, id, kind, conversation_id, state, attempts, run_at, created_at, updated_at) \
         VALUES ($1, $2, 'insights', $3, 'queued', 0, $4, $5, $6)",
    )
    .bind(tenant.0)
    .bind(new_id())
    .bind(conversation)
    .bind(to_micros(now))
    .bind(to_micros(now))
    .bind(to_micros(now))
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) async fn create(
    c: &mut PgConnection,
    tenant: TenantId,
    input: NewConversation,
    idem: Option<IdempotencyClaim>,
    now: OffsetDateTime,
) -> Result<Written> {
    if let Some(claim) = &idem
        && let Some(w) = idem_lookup(c, tenant, claim, now).await?
    {
        return Ok(w);
    }
    let id = new_id();
    if let Some(a) = &input.agent_id {
        upsert_agent(c, tenant, a, now).await?;
    }
    let created_at = input.created_at.unwrap_or(now);
    let conv = Conversation {
        id,
        agent_id: input.agent_id.clone(),
        user_id: input.user_id.clone(),
        title: input
            .title
            .clone()
            .or_else(|| confab_core::title::first_user_title(&input.messages)),
        status: input.status,
        source: input.source.clone(),
        model: input.model.clone(),
        company_name: input.company_name.clone(),
        added_to_memory: input.added_to_memory,
        metadata: input.metadata.clone(),
        message_count: input.messages.len() as i64,
        analyze: input.analyze,
        created_at,
        updated_at: now.max(created_at),
        completed_at: (input.status == Status::Completed).then_some(now),
    };
    insert_conversation(c, tenant, &conv).await?;
    insert_messages(c, tenant, id, 0, &input.messages, &conv.source, now).await?;
    if conv.status == Status::Completed && conv.analyze {
        enqueue_insights(c, tenant, id, now).await?;
    }
    emit_conversation(c, tenant, "conversation.created", &conv, None, now).await?;
    if conv.status == Status::Completed {
        emit_conversation(c, tenant, "conversation.completed", &conv, None, now).await?;
    }
    if let Some(claim) = idem {
        idem_store(c, tenant, claim, &conv, now).await?;
    }
    Ok(Written::Fresh(conv))
}

/// Applies a status change; enqueues analysis on the first transition to completed.
async fn change_status(
    c: &mut PgConnection,
    tenant: TenantId,
    conv: &mut Conversation,
    status: Status,
    now: OffsetDateTime,
) -> Result<()> {
    if status == Status::Completed
        && conv.status != Status::Completed
        && conv.completed_at.is_none()
    {
        conv.completed_at = Some(now);
        if conv.analyze {
            enqueue_insights(c, tenant, conv.id, now).await?;
        }
    }
    conv.status = status;
    Ok(())
}

async fn update_conversation(
    c: &mut PgConnection,
    tenant: TenantId,
    conv: &Conversation,
) -> Result<()> {
    update_conversations(c, &[(tenant, conv)]).await
}

pub(super) async fn append(
    c: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    input: AppendMessages,
    idem: Option<IdempotencyClaim>,
    now: OffsetDateTime,
) -> Result<Written> {
    if let Some(claim) = &idem
        && let Some(w) = idem_lookup(c, tenant, claim, now).await?
    {
        if w.conversation().id != id {
            return Err(StoreError::IdempotencyMismatch);
        }
        return Ok(w);
    }
    let mut conv = lock_conversation(c, tenant, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let before = conv.clone();
    insert_messages(
        c,
        tenant,
        id,
        conv.message_count,
        &input.messages,
        &conv.source,
        now,
    )
    .await?;
    conv.record_append(&input.messages, input.metadata.as_ref(), now);
    if let Some(s) = input.status {
        change_status(c, tenant, &mut conv, s, now).await?;
    }
    update_conversation(c, tenant, &conv).await?;
    let mut changed = vec!["messages"];
    changed.extend(before.changed_fields(&conv));
    emit_update(c, tenant, &before, &conv, changed, now).await?;
    if let Some(claim) = idem {
        idem_store(c, tenant, claim, &conv, now).await?;
    }
    Ok(Written::Fresh(conv))
}

pub(super) async fn patch_conv(
    c: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    patch: ConversationPatch,
    now: OffsetDateTime,
) -> Result<Written> {
    let mut conv = lock_conversation(c, tenant, id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let before = conv.clone();
    if let Some(t) = patch.title {
        conv.title = t;
    }
    if let Some(m) = &patch.metadata {
        merge_metadata(&mut conv.metadata, m);
    }
    if let Some(a) = patch.added_to_memory {
        conv.added_to_memory = a;
    }
    if let Some(s) = patch.status {
        change_status(c, tenant, &mut conv, s, now).await?;
    }
    conv.updated_at = now.max(conv.created_at);
    update_conversation(c, tenant, &conv).await?;
    let changed = before.changed_fields(&conv);
    if !changed.is_empty() {
        emit_update(c, tenant, &before, &conv, changed, now).await?;
    }
    Ok(Written::Fresh(conv))
}

pub(super) async fn delete(c: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<()> {
    // Messages and insights go by ON DELETE CASCADE; jobs and idempotency rows hold no foreign
    // key (they outlive nothing), so they are removed by hand.
    let gone = sqlx::query("DELETE FROM conversations WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.0)
        .bind(id)
        .execute(&mut *c)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(StoreError::NotFound);
    }
    for sql in [
        "DELETE FROM jobs WHERE tenant_id = $1 AND conversation_id = $2",
        "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND conversation_id = $2",
        // Its webhook events carry its data: they go too, delivered or not.
        "DELETE FROM webhook_attempts WHERE tenant_id = $1 AND event_id IN \
         (SELECT id FROM webhook_events WHERE tenant_id = $1 AND conversation_id = $2)",
        "DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND conversation_id = $2",
        "DELETE FROM webhook_events WHERE tenant_id = $1 AND conversation_id = $2",
    ] {
        sqlx::query(sql)
            .bind(tenant.0)
            .bind(id)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// Writes a conversation event to the webhook outbox (same transaction as the change).
async fn emit_conversation(
    c: &mut PgConnection,
    tenant: TenantId,
    event_type: &str,
    conv: &Conversation,
    changed: Option<&[&str]>,
    now: OffsetDateTime,
) -> Result<()> {
    let data = conversation_event_data(conv, changed)?;
    emit(c, tenant, event_type, Some(conv.id), data, now, None).await?;
    Ok(())
}

/// The `data` of a conversation event: the conversation as the native API shows it (no internal
/// flags) and, for `conversation.updated`, the changed fields.
pub(super) fn conversation_event_data(
    conv: &Conversation,
    changed: Option<&[&str]>,
) -> Result<serde_json::Value> {
    let mut view = serde_json::to_value(conv).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(o) = view.as_object_mut() {
        o.remove("analyze");
    }
    let mut data = serde_json::json!({ "conversation": view });
    if let Some(ch) = changed {
        data["changed"] = serde_json::json!(ch);
    }
    Ok(data)
}

/// `conversation.updated` with the changed fields, then `conversation.completed` on the first
/// transition to completed.
async fn emit_update(
    c: &mut PgConnection,
    tenant: TenantId,
    before: &Conversation,
    after: &Conversation,
    changed: Vec<&str>,
    now: OffsetDateTime,
) -> Result<()> {
    emit_conversation(
        c,
        tenant,
        "conversation.updated",
        after,
        Some(&changed),
        now,
    )
    .await?;
    if after.status == Status::Completed && before.status != Status::Completed {
        emit_conversation(c, tenant, "conversation.completed", after, None, now).await?;
    }
    Ok(())
}
