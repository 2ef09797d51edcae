//! Each write, run by the writer inside the batch transaction (and its own savepoint), through
//! rusqlite on the writer's locked handle (see `raw.rs` for why).

use confab_core::ids::new_id;
use confab_core::input::{
    AppendMessages, ConversationPatch, NewConversation, NewMessage, merge_metadata,
};
use confab_core::timefmt::{from_micros, to_micros};
use confab_core::{Conversation, Role, Status};
use rusqlite::{Connection, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::raw::{self, exec, id as b, one};
use super::rows::{self, CONVERSATION_COLS};
use super::webhooks::emit;
use super::writer::{WriteOp, WriteOut};
use crate::error::{Result, StoreError};
use crate::types::*;
use crate::{IDEMPOTENCY_TTL, StoreOptions};

/// Runs one named write. `WriteOp::Run` closures are sqlx futures: the writer runs those itself.
pub fn apply(c: &Connection, op: WriteOp, o: &StoreOptions) -> Result<WriteOut> {
    let now = confab_core::timefmt::normalize((o.clock)());
    match op {
        WriteOp::Run(_) => unreachable!("the writer runs closures itself"),
        WriteOp::CreateKey {
            tenant,
            scopes,
            name,
        } => create_key(c, &tenant, scopes, name, o, now).map(WriteOut::Key),
        WriteOp::Create {
            tenant,
            input,
            idem,
        } => create(c, tenant, *input, idem, now).map(WriteOut::Written),
        WriteOp::Append {
            tenant,
            id,
            input,
            idem,
        } => append(c, tenant, id, input, idem, now).map(WriteOut::Written),
        WriteOp::Patch { tenant, id, patch } => {
            patch_conv(c, tenant, id, patch, now).map(WriteOut::Written)
        }
        WriteOp::Delete { tenant, id } => delete(c, tenant, id).map(|_| WriteOut::Done),
    }
}

fn create_key(
    c: &Connection,
    tenant: &str,
    scopes: confab_core::Scopes,
    name: Option<String>,
    o: &StoreOptions,
    now: OffsetDateTime,
) -> Result<CreatedKey> {
    let tenant_id = tenant_named(c, tenant, now)?;
    let k = crate::keys::generate();
    exec(
        c,
        "INSERT INTO api_keys (tenant_id, key_id, secret_hash, scopes, name, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        params![
            b(&tenant_id),
            &k.key_id,
            crate::keys::hash_secret(&o.pepper, &k.secret),
            scopes.to_string(),
            name,
            to_micros(now)
        ],
    )?;
    Ok(CreatedKey {
        tenant: tenant.to_owned(),
        token: format!("{}.{}", k.key_id, k.secret),
        key_id: k.key_id,
        key_secret: k.secret,
        scopes: scopes.to_string(),
    })
}

/// The id of the tenant called `name`, created if there is none. A new tenant's id is drawn
/// again while another tenant has its search tag: the full-text index tells tenants apart by
/// tag alone (migration 0010, `search.rs`).
pub fn tenant_named(c: &Connection, name: &str, now: OffsetDateTime) -> Result<Uuid> {
    let existing = one(c, "SELECT id FROM tenants WHERE name = ?", [name], |r| {
        Ok(raw::uuid(r, 0)?)
    })?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let id = loop {
        let id = new_id();
        let clash = one(
            c,
            "SELECT 1 FROM tenants WHERE substr(id, 11, 6) = substr(?, 11, 6)",
            [b(&id)],
            |_| Ok(()),
        )?;
        if clash.is_none() {
            break id;
        }
    };
    exec(
        c,
        "INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)",
        params![b(&id), name, to_micros(now)],
    )?;
    Ok(id)
}

pub fn revoke_key(c: &Connection, key_id: &str, now: OffsetDateTime) -> Result<()> {
    let found = one(
        c,
        "SELECT 1 FROM api_keys WHERE key_id = ?",
        [key_id],
        |_| Ok(()),
    )?;
    if found.is_none() {
        return Err(StoreError::NotFound);
    }
    exec(
        c,
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
        params![to_micros(now), key_id],
    )?;
    Ok(())
}

/// The earlier answer for an idempotency key, if it is still honoured.
fn idem_lookup(
    c: &Connection,
    tenant: TenantId,
    claim: &IdempotencyClaim,
    now: OffsetDateTime,
) -> Result<Option<Written>> {
    type Stored = (Option<Vec<u8>>, Option<Uuid>, Option<String>, i64);
    let row: Option<Stored> = one(
        c,
        "SELECT fingerprint, conversation_id, response, created_at FROM idempotency_keys \
         WHERE tenant_id = ? AND family = ? AND key = ?",
        params![b(&tenant.0), claim.family, &claim.key],
        |r| Ok((r.get(0)?, raw::opt_uuid(r, 1)?, r.get(2)?, r.get(3)?)),
    )?;
    let Some((stored, conversation, response, created_at)) = row else {
        return Ok(None);
    };
    if from_micros(created_at) + IDEMPOTENCY_TTL <= now {
        exec(
            c,
            "DELETE FROM idempotency_keys WHERE tenant_id = ? AND family = ? AND key = ?",
            params![b(&tenant.0), claim.family, &claim.key],
        )?;
        return Ok(None);
    }
    match &claim.fingerprint {
        Some(fp) => {
            if stored.as_deref() != Some(fp.as_slice()) {
                return Err(StoreError::IdempotencyMismatch);
            }
            let conv: Conversation = serde_json::from_str(response.as_deref().unwrap_or(""))
                .map_err(|e| StoreError::Corrupt(format!("idempotency response: {e}")))?;
            Ok(Some(Written::Replayed(conv)))
        }
        None => match conversation {
            Some(id) => Ok(select_conversation(c, tenant, id)?.map(Written::Replayed)),
            None => Ok(None),
        },
    }
}

fn idem_store(
    c: &Connection,
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
    exec(
        c,
        "INSERT INTO idempotency_keys (tenant_id, family, key, fingerprint, conversation_id, response, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![
            b(&tenant.0),
            claim.family,
            claim.key,
            claim.fingerprint,
            b(&conv.id),
            response,
            to_micros(now)
        ],
    )?;
    Ok(())
}

fn select_conversation(c: &Connection, tenant: TenantId, id: Uuid) -> Result<Option<Conversation>> {
    let sql =
        format!("SELECT {CONVERSATION_COLS} FROM conversations WHERE tenant_id = ? AND id = ?");
    one(
        c,
        &sql,
        params![b(&tenant.0), b(&id)],
        rows::conversation_raw,
    )
}

/// Creates the agent row on first use (conversations refer to it).
pub(super) fn upsert_agent(
    c: &Connection,
    tenant: TenantId,
    agent: &str,
    now: OffsetDateTime,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO agents (tenant_id, id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        params![b(&tenant.0), agent, to_micros(now)],
    )?;
    Ok(())
}

/// Inserts a conversation row exactly as given (ids and timestamps included): shared by create
/// and import, so the column list lives once.
pub(super) fn insert_conversation(
    c: &Connection,
    tenant: TenantId,
    conv: &Conversation,
) -> Result<()> {
    exec(
        c,
        "INSERT INTO conversations (tenant_id, id, agent_id, user_id, title, status, source, model, company_name, \
         added_to_memory, metadata, message_count, analyze, created_at, updated_at, completed_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            b(&tenant.0),
            b(&conv.id),
            &conv.agent_id,
            &conv.user_id,
            &conv.title,
            conv.status.as_str(),
            &conv.source,
            &conv.model,
            &conv.company_name,
            conv.added_to_memory,
            serde_json::Value::Object(conv.metadata.clone()).to_string(),
            conv.message_count,
            conv.analyze,
            to_micros(conv.created_at),
            to_micros(conv.updated_at),
            conv.completed_at.map(to_micros)
        ],
    )?;
    Ok(())
}

/// The message INSERT, one row per execution of a cached statement (no per-statement round
/// trip any more, so batching rows into one statement buys nothing). Shared with import.
pub(super) const INSERT_MESSAGE: &str = "INSERT INTO messages (tenant_id, conversation_id, seq, id, role, content, \
     created_at, model, tokens, prompt_tokens, completion_tokens, latency_ms, tool_calls, metadata, source, is_trigger) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Inserts messages with seqs `first_seq..`.
fn insert_messages(
    c: &Connection,
    tenant: TenantId,
    conversation: Uuid,
    first_seq: i64,
    msgs: &[NewMessage],
    default_source: &Option<String>,
    now: OffsetDateTime,
) -> Result<()> {
    let mut st = c.prepare_cached(INSERT_MESSAGE)?;
    for (i, m) in msgs.iter().enumerate() {
        st.execute(params![
            b(&tenant.0),
            b(&conversation),
            first_seq + i as i64,
            b(&new_id()),
            m.role.unwrap_or(Role::User).as_str(),
            &m.content,
            to_micros(m.created_at.unwrap_or(now)),
            &m.model,
            m.tokens,
            m.prompt_tokens,
            m.completion_tokens,
            m.latency_ms,
            m.tool_calls.as_ref().map(|v| v.to_string()),
            m.metadata
                .as_ref()
                .map(|v| serde_json::Value::Object(v.clone()).to_string()),
            m.source.as_ref().or(default_source.as_ref()),
            m.is_trigger
        ])?;
    }
    Ok(())
}

fn enqueue_insights(
    c: &Connection,
    tenant: TenantId,
    conversation: Uuid,
    now: OffsetDateTime,
) -> Result<()> {
    let t = to_micros(now);
    exec(
        c,
        "INSERT INTO jobs (tenant_id, id, kind, conversation_id, state, attempts, run_at, created_at, updated_at) \
         VALUES (?, ?, 'insights', ?, 'queued', 0, ?, ?, ?)",
        params![b(&tenant.0), b(&new_id()), b(&conversation), t, t, t],
    )?;
    Ok(())
}

fn create(
    c: &Connection,
    tenant: TenantId,
    input: NewConversation,
    idem: Option<IdempotencyClaim>,
    now: OffsetDateTime,
) -> Result<Written> {
    if let Some(claim) = &idem
        && let Some(w) = idem_lookup(c, tenant, claim, now)?
    {
        return Ok(w);
    }
    let id = new_id();
    if let Some(a) = &input.agent_id {
        upsert_agent(c, tenant, a, now)?;
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
    insert_conversation(c, tenant, &conv)?;
    insert_messages(c, tenant, id, 0, &input.messages, &conv.source, now)?;
    if conv.status == Status::Completed && conv.analyze {
        enqueue_insights(c, tenant, id, now)?;
    }
    emit_conversation(c, tenant, "conversation.created", &conv, None, now)?;
    if conv.status == Status::Completed {
        emit_conversation(c, tenant, "conversation.completed", &conv, None, now)?;
    }
    if let Some(claim) = idem {
        idem_store(c, tenant, claim, &conv, now)?;
    }
    Ok(Written::Fresh(conv))
}

/// Applies a status change; enqueues analysis on the first transition to completed.
fn change_status(
    c: &Connection,
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
            enqueue_insights(c, tenant, conv.id, now)?;
        }
    }
    conv.status = status;
    Ok(())
}

fn update_conversation(c: &Connection, tenant: TenantId, conv: &Conversation) -> Result<()> {
    exec(
        c,
        "UPDATE conversations SET title = ?, status = ?, metadata = ?, added_to_memory = ?, message_count = ?, \
         updated_at = ?, completed_at = ? WHERE tenant_id = ? AND id = ?",
        params![
            &conv.title,
            conv.status.as_str(),
            serde_json::Value::Object(conv.metadata.clone()).to_string(),
            conv.added_to_memory,
            conv.message_count,
            to_micros(conv.updated_at),
            conv.completed_at.map(to_micros),
            b(&tenant.0),
            b(&conv.id)
        ],
    )?;
    Ok(())
}

pub(super) fn append(
    c: &Connection,
    tenant: TenantId,
    id: Uuid,
    input: AppendMessages,
    idem: Option<IdempotencyClaim>,
    now: OffsetDateTime,
) -> Result<Written> {
    if let Some(claim) = &idem
        && let Some(w) = idem_lookup(c, tenant, claim, now)?
    {
        if w.conversation().id != id {
            return Err(StoreError::IdempotencyMismatch);
        }
        return Ok(w);
    }
    let mut conv = select_conversation(c, tenant, id)?.ok_or(StoreError::NotFound)?;
    let before = conv.clone();
    insert_messages(
        c,
        tenant,
        id,
        conv.message_count,
        &input.messages,
        &conv.source,
        now,
    )?;
    conv.record_append(&input.messages, input.metadata.as_ref(), now);
    if let Some(s) = input.status {
        change_status(c, tenant, &mut conv, s, now)?;
    }
    update_conversation(c, tenant, &conv)?;
    let mut changed = vec!["messages"];
    changed.extend(before.changed_fields(&conv));
    emit_update(c, tenant, &before, &conv, changed, now)?;
    if let Some(claim) = idem {
        idem_store(c, tenant, claim, &conv, now)?;
    }
    Ok(Written::Fresh(conv))
}

fn patch_conv(
    c: &Connection,
    tenant: TenantId,
    id: Uuid,
    patch: ConversationPatch,
    now: OffsetDateTime,
) -> Result<Written> {
    let mut conv = select_conversation(c, tenant, id)?.ok_or(StoreError::NotFound)?;
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
        change_status(c, tenant, &mut conv, s, now)?;
    }
    conv.updated_at = now.max(conv.created_at);
    update_conversation(c, tenant, &conv)?;
    let changed = before.changed_fields(&conv);
    if !changed.is_empty() {
        emit_update(c, tenant, &before, &conv, changed, now)?;
    }
    Ok(Written::Fresh(conv))
}

fn delete(c: &Connection, tenant: TenantId, id: Uuid) -> Result<()> {
    // Messages and insights go by ON DELETE CASCADE; jobs and idempotency rows hold no foreign
    // key (they outlive nothing), so they are removed by hand.
    let gone = exec(
        c,
        "DELETE FROM conversations WHERE tenant_id = ? AND id = ?",
        params![b(&tenant.0), b(&id)],
    )?;
    if gone == 0 {
        return Err(StoreError::NotFound);
    }
    for sql in [
        "DELETE FROM jobs WHERE tenant_id = ?1 AND conversation_id = ?2",
        "DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND conversation_id = ?2",
        // Its webhook events carry its data: they go too, delivered or not.
        "DELETE FROM webhook_attempts WHERE tenant_id = ?1 AND event_id IN \
         (SELECT id FROM webhook_events WHERE tenant_id = ?1 AND conversation_id = ?2)",
        "DELETE FROM webhook_deliveries WHERE tenant_id = ?1 AND conversation_id = ?2",
        "DELETE FROM webhook_events WHERE tenant_id = ?1 AND conversation_id = ?2",
    ] {
        exec(c, sql, params![b(&tenant.0), b(&id)])?;
    }
    Ok(())
}

/// Writes a conversation event to the webhook outbox (same transaction as the change).
fn emit_conversation(
    c: &Connection,
    tenant: TenantId,
    event_type: &str,
    conv: &Conversation,
    changed: Option<&[&str]>,
    now: OffsetDateTime,
) -> Result<()> {
    let data = || {
        let mut view =
            serde_json::to_value(conv).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The payload shows the conversation as the native API does: no internal flags.
        if let Some(o) = view.as_object_mut() {
            o.remove("analyze");
        }
        let mut data = serde_json::json!({ "conversation": view });
        if let Some(ch) = changed {
            data["changed"] = serde_json::json!(ch);
        }
        Ok(data)
    };
    emit(c, tenant, event_type, Some(conv.id), data, now, None)?;
    Ok(())
}

/// `conversation.updated` with the changed fields, then `conversation.completed` on the first
/// transition to completed.
fn emit_update(
    c: &Connection,
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
    )?;
    if after.status == Status::Completed && before.status != Status::Completed {
        emit_conversation(c, tenant, "conversation.completed", after, None, now)?;
    }
    Ok(())
}
