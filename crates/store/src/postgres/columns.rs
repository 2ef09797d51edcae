//! Many message rows inserted, and many conversation rows written back, each as one statement
//! over one array per column (`unnest`): one statement text whatever the number of rows, so
//! PostgreSQL parses it once per connection (and plans it once where the transaction asks for
//! generic plans, as an append batch's does: append_batch.rs `BEGIN`). A `VALUES` list of 17
//! parameters a row was a new statement for every batch size, parsed and planned again each
//! time (a tenth of PostgreSQL's CPU under 64 appending connections, docs/performance.md).

use std::sync::LazyLock;

use confab_core::Conversation;
use confab_core::Role;
use confab_core::ids::new_id;
use confab_core::input::NewMessage;
use confab_core::timefmt::to_micros;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::webhooks;
use crate::error::Result;
use crate::types::TenantId;

/// One message row to insert: its conversation, seq and source (the message's own, else its
/// conversation's).
pub(super) struct MessageRow<'a> {
    pub tenant: TenantId,
    pub conversation: Uuid,
    pub seq: i64,
    pub message: &'a NewMessage,
    pub source: Option<&'a str>,
}

/// Rows per insert: the arrays of a thousand messages stay well inside one protocol message.
pub(super) const CHUNK: usize = 1000;

/// The insert, its 17 arrays bound as `$1`…`$17`.
const INSERT_MESSAGES: &str = "INSERT INTO messages (tenant_id, conversation_id, seq, id, role, \
     content, created_at, model, tokens, prompt_tokens, completion_tokens, latency_ms, tool_calls, \
     metadata, source, is_trigger, fts) \
     SELECT t, c, s, i, r, ct, ca, mo, tk, pt, ctk, lat, tc, md, src, trig, f::tsvector \
     FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], \
     $7::bigint[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], \
     $13::jsonb[], $14::jsonb[], $15::text[], $16::boolean[], $17::text[]) \
     AS u(t, c, s, i, r, ct, ca, mo, tk, pt, ctk, lat, tc, md, src, trig, f)";

/// The write-back of conversation rows, its 9 arrays bound from `$first` on.
fn update_conversations_sql(first: usize) -> String {
    write_back_sql(first, "")
}

/// The write-back's text, `more` after its condition.
fn write_back_sql(first: usize, more: &str) -> String {
    let p: Vec<String> = (first..first + 9).map(|i| format!("${i}")).collect();
    format!(
        "UPDATE conversations AS c SET title = v.title, status = v.status, metadata = v.metadata, \
         added_to_memory = v.added_to_memory, message_count = v.message_count, \
         updated_at = v.updated_at, completed_at = v.completed_at \
         FROM unnest({}::uuid[], {}::uuid[], {}::text[], {}::text[], {}::jsonb[], {}::bool[], \
         {}::int8[], {}::int8[], {}::int8[]) AS v(tenant_id, id, title, status, metadata, \
         added_to_memory, message_count, updated_at, completed_at) \
         WHERE c.tenant_id = v.tenant_id AND c.id = v.id{more}",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
    )
}

static UPDATE_CONVERSATIONS: LazyLock<String> = LazyLock::new(|| update_conversations_sql(1));

/// An append batch's writes in one round trip: the messages (`$1`…`$17`), the conversations
/// (`$18`…`$26`), and, as the answer, the enabled webhook endpoints of the tenants in `$27`.
/// Data-modifying `WITH` parts run to completion whether or not the query reads them.
pub(super) static WRITE_BATCH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH m AS ({INSERT_MESSAGES}), u AS ({}) {}",
        update_conversations_sql(18),
        webhooks::enabled_endpoints_sql(27)
    )
});

/// A batch's writes without waiting for locks, in one statement that commits on its own
/// (versioned.rs): `l` locks the conversation rows (`$18` tenants, `$19` ids) still at the
/// versions in `$27` (`xmin`, as text), of tenants without an enabled webhook endpoint (whose
/// events must be written in the same transaction), skipping any row another transaction holds:
/// the statement never waits for a conversation row, so it can never close a cycle of waits with
/// the locked path's transactions, which lock theirs in key order, or with another of its kind.
/// Only those rows are written back (`$18`…`$26`) and only their messages (`$1`…`$17`) inserted;
/// the answer is the keys of the conversations written and their new versions.
pub(super) static VERSIONED_WRITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH l AS MATERIALIZED (SELECT c.tenant_id, c.id FROM conversations AS c \
         JOIN unnest($18::uuid[], $19::uuid[], $27::text[]) AS k(tenant_id, id, version) \
         ON c.tenant_id = k.tenant_id AND c.id = k.id \
         WHERE c.xmin::text = k.version AND NOT {} \
         FOR NO KEY UPDATE OF c SKIP LOCKED), \
         w AS ({}), m AS ({INSERT_MESSAGES} WHERE (t, c) IN (SELECT tenant_id, id FROM w)) \
         SELECT tenant_id, id, version FROM w",
        webhooks::hooked_sql("c.tenant_id"),
        write_back_sql(
            18,
            " AND (c.tenant_id, c.id) IN (SELECT tenant_id, id FROM l) \
             RETURNING c.tenant_id, c.id, c.xmin::text AS version"
        )
    )
});

/// Inserts message rows of any conversations, many rows per statement.
pub(super) async fn insert_message_rows(
    c: &mut PgConnection,
    rows: &[MessageRow<'_>],
    now: OffsetDateTime,
) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        MessageColumns::of(chunk, now)
            .bind(sqlx::query(INSERT_MESSAGES))
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// Writes the mutable fields of each conversation row back, in one statement.
pub(super) async fn update_conversations(
    c: &mut PgConnection,
    convs: &[(TenantId, &Conversation)],
) -> Result<()> {
    ConversationColumns::of(convs)
        .bind(sqlx::query(UPDATE_CONVERSATIONS.as_str()))
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// An append batch's writes: inserts `rows`, writes `convs` back and answers the enabled
/// webhook endpoints (tenant, id, event types) of `event_tenants`, in one statement when the
/// messages fit one insert (two round trips fewer: a lone append's p50 fell by 7–9 %, and
/// appends at 64 connections rose by 13 %, docs/performance.md), else in as many as
/// [`insert_message_rows`] needs and two more.
pub(super) async fn write_batch(
    c: &mut PgConnection,
    rows: &[MessageRow<'_>],
    convs: &[(TenantId, &Conversation)],
    event_tenants: &[Uuid],
    now: OffsetDateTime,
) -> Result<Vec<(Uuid, Uuid, String)>> {
    if rows.len() > CHUNK {
        insert_message_rows(c, rows, now).await?;
        update_conversations(c, convs).await?;
        return webhooks::enabled_endpoints(c, event_tenants).await;
    }
    let q = sqlx::query(WRITE_BATCH.as_str());
    let q = ConversationColumns::of(convs).bind(MessageColumns::of(rows, now).bind(q));
    webhooks::endpoint_rows(&q.bind(event_tenants).fetch_all(&mut *c).await?)
}

/// Runs [`VERSIONED_WRITE`] (`rows` fit one insert; `versions` one a conversation): the keys of
/// the conversations it wrote, each with its new version. The error is sqlx's, for the caller
/// to tell a statement PostgreSQL refused (nothing stored) from one whose outcome is unknown.
pub(super) async fn versioned_write(
    c: &mut PgConnection,
    rows: &[MessageRow<'_>],
    convs: &[(TenantId, &Conversation)],
    versions: &[&str],
    now: OffsetDateTime,
) -> sqlx::Result<Vec<((Uuid, Uuid), String)>> {
    let q = sqlx::query(VERSIONED_WRITE.as_str());
    let q = ConversationColumns::of(convs).bind(MessageColumns::of(rows, now).bind(q));
    let written = q.bind(versions).fetch_all(&mut *c).await?;
    written
        .iter()
        .map(|r| Ok(((r.try_get(0)?, r.try_get(1)?), r.try_get(2)?)))
        .collect()
}

type PgQuery<'q> = Query<'q, Postgres, PgArguments>;

/// The columns of the message insert, one array each.
struct MessageColumns<'a> {
    tenant: Vec<Uuid>,
    conversation: Vec<Uuid>,
    seq: Vec<i64>,
    id: Vec<Uuid>,
    role: Vec<&'static str>,
    content: Vec<&'a str>,
    created_at: Vec<i64>,
    model: Vec<Option<&'a str>>,
    tokens: Vec<Option<i64>>,
    prompt_tokens: Vec<Option<i64>>,
    completion_tokens: Vec<Option<i64>>,
    latency_ms: Vec<Option<i64>>,
    tool_calls: Vec<Option<serde_json::Value>>,
    metadata: Vec<Option<serde_json::Value>>,
    source: Vec<Option<&'a str>>,
    is_trigger: Vec<bool>,
    fts: Vec<String>,
}

impl<'a> MessageColumns<'a> {
    fn of(rows: &[MessageRow<'a>], now: OffsetDateTime) -> Self {
        let mut cols = MessageColumns::with_capacity(rows.len());
        for r in rows {
            let m = r.message;
            cols.tenant.push(r.tenant.0);
            cols.conversation.push(r.conversation);
            cols.seq.push(r.seq);
            cols.id.push(new_id());
            cols.role.push(m.role.unwrap_or(Role::User).as_str());
            cols.content.push(m.content.as_str());
            cols.created_at.push(to_micros(m.created_at.unwrap_or(now)));
            cols.model.push(m.model.as_deref());
            cols.tokens.push(m.tokens);
            cols.prompt_tokens.push(m.prompt_tokens);
            cols.completion_tokens.push(m.completion_tokens);
            cols.latency_ms.push(m.latency_ms);
            cols.tool_calls.push(m.tool_calls.clone());
            cols.metadata.push(
                m.metadata
                    .as_ref()
                    .map(|v| serde_json::Value::Object(v.clone())),
            );
            cols.source.push(r.source);
            cols.is_trigger.push(m.is_trigger);
            cols.fts.push(super::fts::tsvector(r.tenant.0, &m.content));
        }
        cols
    }

    fn with_capacity(n: usize) -> Self {
        MessageColumns {
            tenant: Vec::with_capacity(n),
            conversation: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            role: Vec::with_capacity(n),
            content: Vec::with_capacity(n),
            created_at: Vec::with_capacity(n),
            model: Vec::with_capacity(n),
            tokens: Vec::with_capacity(n),
            prompt_tokens: Vec::with_capacity(n),
            completion_tokens: Vec::with_capacity(n),
            latency_ms: Vec::with_capacity(n),
            tool_calls: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            source: Vec::with_capacity(n),
            is_trigger: Vec::with_capacity(n),
            fts: Vec::with_capacity(n),
        }
    }

    /// Binds the 17 arrays, in [`INSERT_MESSAGES`]'s order, after what `q` already has.
    fn bind<'q>(self, q: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        q.bind(self.tenant)
            .bind(self.conversation)
            .bind(self.seq)
            .bind(self.id)
            .bind(self.role)
            .bind(self.content)
            .bind(self.created_at)
            .bind(self.model)
            .bind(self.tokens)
            .bind(self.prompt_tokens)
            .bind(self.completion_tokens)
            .bind(self.latency_ms)
            .bind(self.tool_calls)
            .bind(self.metadata)
            .bind(self.source)
            .bind(self.is_trigger)
            .bind(self.fts)
    }
}

/// The columns of the conversation write-back, one array each.
struct ConversationColumns {
    tenants: Vec<Uuid>,
    ids: Vec<Uuid>,
    titles: Vec<Option<String>>,
    statuses: Vec<&'static str>,
    metadata: Vec<serde_json::Value>,
    memory: Vec<bool>,
    counts: Vec<i64>,
    updated: Vec<i64>,
    completed: Vec<Option<i64>>,
}

impl ConversationColumns {
    fn of(convs: &[(TenantId, &Conversation)]) -> Self {
        ConversationColumns {
            tenants: convs.iter().map(|(t, _)| t.0).collect(),
            ids: convs.iter().map(|(_, c)| c.id).collect(),
            titles: convs.iter().map(|(_, c)| c.title.clone()).collect(),
            statuses: convs.iter().map(|(_, c)| c.status.as_str()).collect(),
            metadata: convs
                .iter()
                .map(|(_, c)| serde_json::Value::Object(c.metadata.clone()))
                .collect(),
            memory: convs.iter().map(|(_, c)| c.added_to_memory).collect(),
            counts: convs.iter().map(|(_, c)| c.message_count).collect(),
            updated: convs.iter().map(|(_, c)| to_micros(c.updated_at)).collect(),
            completed: convs
                .iter()
                .map(|(_, c)| c.completed_at.map(to_micros))
                .collect(),
        }
    }

    /// Binds the 9 arrays, in [`update_conversations_sql`]'s order, after what `q` has.
    fn bind(self, q: PgQuery<'_>) -> PgQuery<'_> {
        q.bind(self.tenants)
            .bind(self.ids)
            .bind(self.titles)
            .bind(self.statuses)
            .bind(self.metadata)
            .bind(self.memory)
            .bind(self.counts)
            .bind(self.updated)
            .bind(self.completed)
    }
}
