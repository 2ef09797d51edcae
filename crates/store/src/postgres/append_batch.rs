//! Appends on PostgreSQL, many requests per transaction.
//!
//! One append on its own costs six round trips (BEGIN, lock the row, insert, update, look up
//! webhook endpoints, COMMIT), and each costs CPU in PostgreSQL, in this process and in the
//! kernel on both sides: that, not the WAL flush, is what bounds appends on a small machine.
//! So plain appends (no idempotency key, no status change) wait in a queue; a worker takes
//! every waiting one and runs them as one transaction of multi-row statements: lock all their
//! rows (in key order, so two workers or two processes cannot deadlock), then one statement
//! that inserts all messages, updates all rows and looks the webhook endpoints up
//! (columns.rs), then COMMIT: four round trips for the whole batch, BEGIN included, on a
//! connection the worker keeps while appends keep coming (`held.rs`). Before taking locks, a
//! batch is tried without them, against the version of its rows (`versioned.rs`: one or two
//! round trips); what that leaves (rows written meanwhile, tenants with webhook endpoints) is
//! run here. The rules
//! are the single path's: `Conversation::record_append` and the same event payloads. An
//! append whose conversation is missing answers 404 without touching the others. If the
//! batch's SQL fails, each request is run again on its own, so one bad request can only ever
//! fail itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};

use confab_core::Conversation;
use confab_core::input::AppendMessages;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::columns;
use super::held::Held;
use super::ops::{self, MessageRow};
use super::queue::{self, Asked, Queue};
use super::rows::{self, CONVERSATION_COLS};
use super::versioned;
use super::webhooks;
use crate::Clock;
use crate::error::{Result, StoreError};
use crate::types::*;

/// Most appends in one transaction.
const MAX_BATCH: usize = 256;

/// A batch's transaction, its statements planned once per connection. Left to choose,
/// PostgreSQL plans `LOCK_ROWS` and `columns::WRITE_BATCH` afresh at every execution: their
/// generic plans, costed for ten rows an array, look dearer than a custom plan for the one or
/// few rows a batch holds, so they never win, and the planning was 0.25 ms of the 1 ms an
/// append takes alone (docs/performance.md, 2026-12-01, twenty-first session). The generic
/// plans are the custom ones: index lookups by key, whatever the batch's size (pinned by
/// `tests/pg_plans.rs`). PostgreSQL makes a generic plan again whenever the tables' statistics
/// change, so one made while a table was small (where a scan of it all costs no more than the
/// ten lookups it assumes) does not outlive autovacuum's next analysis. `SET LOCAL` ends with
/// the transaction, and travels in BEGIN's round trip.
pub(super) const BEGIN: &str = "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan";

/// Locks a batch's conversation rows (`$1` tenants, `$2` ids). LockRows runs above the sort:
/// rows are locked in key order.
pub(super) static LOCK_ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CONVERSATION_COLS}, tenant_id FROM conversations \
         WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[])) \
         ORDER BY tenant_id, id FOR UPDATE"
    )
});

pub(super) struct Request {
    pub tenant: TenantId,
    pub id: Uuid,
    pub input: AppendMessages,
}

type Append = Asked<Request, Written>;

pub(super) struct Batcher(Queue<Request, Written>);

impl Batcher {
    /// Batches on `appending`'s connections (kept by the workers, asking for generic plans:
    /// versioned.rs), and each request of a failed batch on its own on `pool`'s.
    pub fn start(pool: PgPool, appending: PgPool, clock: Clock) -> Batcher {
        // Transactions in flight: one fills while another commits (four measured no faster).
        let workers = queue::workers(pool.options().get_max_connections());
        let keep = move || Held::new(appending.clone());
        let shared = Arc::new(Shared::default());
        Batcher(Queue::start_keeping(
            workers,
            MAX_BATCH,
            queue::LINGER,
            keep,
            move |mut held, batch| {
                let clock = clock.clone();
                let pool = pool.clone();
                let shared = shared.clone();
                async move {
                    answer(&mut held, &pool, &clock, &shared, batch).await;
                    held
                }
            },
        ))
    }

    /// Appends through the next batch; answers once it has committed.
    pub async fn append(
        &self,
        tenant: TenantId,
        id: Uuid,
        input: AppendMessages,
    ) -> Result<Written> {
        self.0.ask(Request { tenant, id, input }).await
    }

    /// Stops taking appends and waits for the queued ones to commit.
    pub async fn close(&self) {
        self.0.close().await;
    }
}

/// Batches that go straight to the locked path after one that needed it (a conversation
/// written between its read and its write, or a tenant's webhook events). Where conversations
/// are written by many at once, a versioned write loses to the others' locks and its
/// conversations are written again under lock: its read and its write were for nothing, and
/// made the batch half as long again. Where appends come one to a conversation at a time, the
/// first batch after these goes back to the versioned path. So at most one batch in nine
/// pays for the attempt while the contention lasts.
const LOCKED_AFTER: u32 = 8;

/// What the workers share: how many batches still go straight to the locked path, and the
/// conversations the versioned writes wrote last.
#[derive(Default)]
struct Shared {
    locking: AtomicU32,
    versions: versioned::Versions,
}

async fn answer(
    held: &mut Held,
    pool: &PgPool,
    clock: &Clock,
    shared: &Shared,
    batch: Vec<Append>,
) {
    let locking = &shared.locking;
    metrics::histogram!("confab_store_commit_batch_size").record(batch.len() as f64);
    let total = batch.len();
    let mut left = Vec::with_capacity(total);
    let tries = locking
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_err();
    let answers = if tries {
        unlocked(held, &shared.versions, clock, &batch).await
    } else {
        None
    };
    match answers {
        // Counted by versioned::write before any caller hears: what it reads next includes its
        // own.
        Some(answers) => {
            for (append, answer) in batch.into_iter().zip(answers) {
                match answer {
                    Some(result) => {
                        let _ = append.reply.send(result);
                    }
                    None => left.push(append),
                }
            }
        }
        None => left = batch,
    }
    if !left.is_empty() {
        if tries {
            locking.store(LOCKED_AFTER, Ordering::Relaxed);
        }
        counted("locked", left.len());
        locked(held, pool, clock, left).await;
    }
}

/// The batch written against the versions of its rows (versioned.rs): each request's answer,
/// `None` for one left to the locked path; `None` for the whole batch when that path does not
/// fit it or failed before storing anything.
async fn unlocked(
    held: &mut Held,
    versions: &versioned::Versions,
    clock: &Clock,
    batch: &[Append],
) -> Option<Vec<Option<Result<Written>>>> {
    let reqs: Vec<&Request> = batch.iter().map(|a| &a.req).collect();
    if !versioned::fits(&reqs) {
        return None;
    }
    // A connection that cannot be had now is the locked path's to report.
    let conn = held.conn().await.ok()?;
    match versioned::write(conn, versions, &reqs, clock).await {
        Ok(answers) => Some(answers),
        Err(e) => {
            held.give_back();
            tracing::warn!(error = %e, batch = reqs.len(), "versioned appends failed; taking locks");
            None
        }
    }
}

/// Counts `n` requests answered by `path` in `confab_store_appends_total`.
pub(super) fn counted(path: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("confab_store_appends_total", "path" => path).increment(n as u64);
    }
}

/// The batch under locks, in one transaction; each request on its own if that fails.
async fn locked(held: &mut Held, pool: &PgPool, clock: &Clock, batch: Vec<Append>) {
    let (reqs, replies): (Vec<Request>, Vec<_>) =
        batch.into_iter().map(|a| (a.req, a.reply)).unzip();
    let applied = match held.conn().await {
        Ok(conn) => apply(conn, &reqs, clock).await,
        Err(e) => Err(e),
    };
    if !matches!(applied, Ok(Ok(_))) {
        // Whatever failed may have been the connection: the pool tests it, and closes it if
        // it is broken.
        held.give_back();
    }
    match applied {
        Ok(Ok(results)) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        // COMMIT itself failed: it may have taken effect, so running the appends again
        // could store them twice. Each caller hears what the single path would say.
        Ok(Err(e)) => {
            for reply in replies {
                let _ = reply.send(Err(StoreError::Commit(e.clone())));
            }
        }
        Err(e) => {
            if reqs.len() > 1 {
                tracing::warn!(error = %e, batch = reqs.len(), "batched appends failed; running each on its own");
            }
            queue::ran_alone("appends");
            for (r, reply) in reqs.into_iter().zip(replies) {
                let now = confab_core::timefmt::normalize(clock());
                let _ = reply.send(single(pool, r.tenant, r.id, r.input, now).await);
            }
        }
    }
}

/// One append in its own transaction: the path every other write takes.
async fn single(
    pool: &PgPool,
    tenant: TenantId,
    id: Uuid,
    input: AppendMessages,
    now: OffsetDateTime,
) -> Result<Written> {
    let mut tx = pool.begin().await?;
    let w = ops::append(&mut tx, tenant, id, input, None, now).await?;
    tx.commit()
        .await
        .map_err(|e| StoreError::Commit(e.to_string()))?;
    Ok(w)
}

/// Runs the whole batch in one transaction. `Err` when it failed before COMMIT (nothing of it is
/// stored); `Ok(Err)` when COMMIT failed (its outcome unknown); otherwise each request's answer.
async fn apply(
    conn: &mut PgConnection,
    batch: &[Request],
    clock: &Clock,
) -> Result<std::result::Result<Vec<Result<Written>>, String>> {
    let mut tx = sqlx::Connection::begin_with(conn, BEGIN).await?;
    let results = write(&mut tx, batch, clock).await?;
    Ok(tx
        .commit()
        .await
        .map(|()| results)
        .map_err(|e| e.to_string()))
}

/// Appends each of `appends` in order, in one transaction, or none of them: the first that
/// fails (a conversation missing) rolls the whole back and is the answer. The same statements
/// as a batch of the queue's, without the queue (`Store::append_many`).
pub(super) async fn append_many(
    pool: &PgPool,
    tenant: TenantId,
    appends: Vec<(Uuid, AppendMessages)>,
    clock: &Clock,
) -> Result<Vec<Written>> {
    let batch: Vec<Request> = appends
        .into_iter()
        .map(|(id, input)| Request { tenant, id, input })
        .collect();
    let mut conn = pool.acquire().await?;
    let mut tx = sqlx::Connection::begin_with(&mut *conn, BEGIN).await?;
    // Dropped on an error: rolled back.
    let written = write(&mut tx, &batch, clock)
        .await?
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    tx.commit()
        .await
        .map_err(|e| StoreError::Commit(e.to_string()))?;
    Ok(written)
}

/// A batch's statements inside the transaction `tx` has open: each request's answer, an
/// `Err` of its own for one whose conversation is missing; `Err` when the SQL failed.
async fn write(
    tx: &mut PgConnection,
    batch: &[Request],
    clock: &Clock,
) -> Result<Vec<Result<Written>>> {
    let reqs: Vec<&Request> = batch.iter().collect();
    let (tenants, ids): (Vec<Uuid>, Vec<Uuid>) = keys(&reqs).into_iter().unzip();
    let locked = sqlx::query(LOCK_ROWS.as_str())
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    // The time is read once the rows are locked: a batch that waited for another's locks is
    // stamped after it, so a conversation's times follow its seqs.
    let now = confab_core::timefmt::normalize(clock());
    let mut convs: HashMap<(Uuid, Uuid), Conversation> = HashMap::with_capacity(locked.len());
    for row in &locked {
        let conv = rows::conversation(row)?;
        let tenant: Uuid = sqlx::Row::try_get(row, "tenant_id")?;
        convs.insert((tenant, conv.id), conv);
    }
    let planned = plan(&reqs, &mut convs, now);
    let Planned {
        results,
        messages,
        events,
        touched,
    } = planned.with_sources(&convs);
    if !touched.is_empty() {
        let rows: Vec<(TenantId, &Conversation)> =
            touched.iter().map(|k| (TenantId(k.0), &convs[k])).collect();
        let mut event_tenants: Vec<Uuid> = touched.iter().map(|k| k.0).collect();
        event_tenants.dedup();
        // Messages, conversations and the endpoint lookup in one round trip.
        let endpoints = columns::write_batch(tx, &messages, &rows, &event_tenants, now).await?;
        if !endpoints.is_empty() {
            for (tenant, conv, changed) in &events {
                let targets = webhooks::targets(&endpoints, *tenant, "conversation.updated", None);
                if !targets.is_empty() {
                    let data = ops::conversation_event_data(conv, Some(changed))?;
                    webhooks::emit_to(
                        tx,
                        *tenant,
                        "conversation.updated",
                        Some(conv.id),
                        data,
                        now,
                        &targets,
                    )
                    .await?;
                }
            }
        }
    }
    Ok(results)
}

/// The batch's conversation keys (tenant, id), sorted (the order rows are locked in) and each
/// once.
pub(super) fn keys(batch: &[&Request]) -> Vec<(Uuid, Uuid)> {
    let mut keys: Vec<(Uuid, Uuid)> = batch.iter().map(|r| (r.tenant.0, r.id)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// What a batch writes, worked out from its conversations' rows as read (`plan`).
pub(super) struct Planned<'a> {
    /// Each request's answer: its conversation after it, or `NotFound`.
    pub results: Vec<Result<Written>>,
    /// The message rows, in the requests' order.
    pub messages: Vec<MessageRow<'a>>,
    /// Each request's `conversation.updated` event: its conversation and the fields changed.
    pub events: Vec<(TenantId, Conversation, Vec<&'static str>)>,
    /// The keys of the conversations written, sorted, each once.
    pub touched: Vec<(Uuid, Uuid)>,
}

/// Applies each request of `batch` in order to its conversation in `convs` (the single path's
/// rules: `Conversation::record_append`), stamped `now`; a request whose conversation is not
/// there is `NotFound`.
pub(super) fn plan<'a>(
    batch: &[&'a Request],
    convs: &mut HashMap<(Uuid, Uuid), Conversation>,
    now: OffsetDateTime,
) -> Planned<'a> {
    let mut planned = Planned {
        results: Vec::with_capacity(batch.len()),
        messages: Vec::new(),
        events: Vec::new(),
        touched: Vec::new(),
    };
    for r in batch {
        let Some(conv) = convs.get_mut(&(r.tenant.0, r.id)) else {
            planned.results.push(Err(StoreError::NotFound));
            continue;
        };
        let before = conv.clone();
        for (i, m) in r.input.messages.iter().enumerate() {
            planned.messages.push(MessageRow {
                tenant: r.tenant,
                conversation: r.id,
                seq: conv.message_count + i as i64,
                message: m,
                source: None,
            });
        }
        conv.record_append(&r.input.messages, r.input.metadata.as_ref(), now);
        let mut changed = vec!["messages"];
        changed.extend(before.changed_fields(conv));
        planned.events.push((r.tenant, conv.clone(), changed));
        planned.touched.push((r.tenant.0, r.id));
        planned.results.push(Ok(Written::Fresh(conv.clone())));
    }
    planned.touched.sort_unstable();
    planned.touched.dedup();
    planned
}

impl<'a> Planned<'a> {
    /// Each message's source: its own, else its conversation's (in `convs`, which no longer
    /// change).
    pub fn with_sources<'b>(self, convs: &'b HashMap<(Uuid, Uuid), Conversation>) -> Planned<'b>
    where
        'a: 'b,
    {
        let mut planned: Planned<'b> = self;
        for m in &mut planned.messages {
            let conv = &convs[&(m.tenant.0, m.conversation)];
            m.source = m.message.source.as_deref().or(conv.source.as_deref());
        }
        planned
    }
}
