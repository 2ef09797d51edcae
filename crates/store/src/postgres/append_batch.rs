//! Appends on PostgreSQL, many requests per transaction.
//!
//! One append on its own costs six round trips (BEGIN, lock the row, insert, update, look up
//! webhook endpoints, COMMIT), and each costs CPU in PostgreSQL, in this process and in the
//! kernel on both sides: that, not the WAL flush, is what bounds appends on a small machine.
//! So plain appends (no idempotency key, no status change) wait in a queue; a worker takes
//! every waiting one and runs them as one transaction of multi-row statements: lock all their
//! rows (in key order, so two workers or two processes cannot deadlock), insert all messages,
//! update all rows, one endpoint lookup, COMMIT. The rules are the single path's:
//! `Conversation::record_append` and the same event payloads. An append whose conversation is
//! missing answers 404 without touching the others. If the batch's SQL fails, each request is
//! run again on its own, so one bad request can only ever fail itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use confab_core::Conversation;
use confab_core::input::AppendMessages;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::ops::{self, MessageRow};
use super::rows::{self, CONVERSATION_COLS};
use super::webhooks;
use crate::Clock;
use crate::error::{Result, StoreError};
use crate::types::*;

/// Most appends in one transaction.
const MAX_BATCH: usize = 256;
/// Transactions in flight: one fills while another commits (fewer on a pool of 2 or 3, so
/// reads always keep a connection; four measured no faster than two).
fn workers(pool_size: u32) -> usize {
    (pool_size as usize / 2).clamp(1, 2)
}

struct Request {
    tenant: TenantId,
    id: Uuid,
    input: AppendMessages,
    reply: oneshot::Sender<Result<Written>>,
}

pub(super) struct Batcher {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    workers: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Batcher {
    pub fn start(pool: PgPool, clock: Clock) -> Batcher {
        let (tx, rx) = mpsc::channel(8192);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let workers = (0..workers(pool.options().get_max_connections()))
            .map(|_| tokio::spawn(work(rx.clone(), pool.clone(), clock.clone())))
            .collect();
        Batcher {
            tx: Mutex::new(Some(tx)),
            workers: tokio::sync::Mutex::new(workers),
        }
    }

    /// Appends through the next batch; answers once it has committed.
    pub async fn append(
        &self,
        tenant: TenantId,
        id: Uuid,
        input: AppendMessages,
    ) -> Result<Written> {
        let tx = self
            .tx
            .lock()
            .expect("batcher sender lock")
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Request {
            tenant,
            id,
            input,
            reply,
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        drop(tx);
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops taking appends and waits for the queued ones to commit.
    pub async fn close(&self) {
        self.tx.lock().expect("batcher sender lock").take();
        for w in self.workers.lock().await.drain(..) {
            let _ = w.await;
        }
    }
}

async fn work(rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Request>>>, pool: PgPool, clock: Clock) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            batch
        };
        metrics::histogram!("confab_store_commit_batch_size").record(batch.len() as f64);
        match apply(&pool, &batch, &clock).await {
            Ok(Ok(results)) => {
                for (r, result) in batch.into_iter().zip(results) {
                    let _ = r.reply.send(result);
                }
            }
            // COMMIT itself failed: it may have taken effect, so running the appends again
            // could store them twice. Each caller hears what the single path would say.
            Ok(Err(e)) => {
                for r in batch {
                    let _ = r.reply.send(Err(StoreError::Commit(e.clone())));
                }
            }
            Err(e) => {
                if batch.len() > 1 {
                    tracing::warn!(error = %e, batch = batch.len(), "batched appends failed; running each on its own");
                }
                for r in batch {
                    let now = confab_core::timefmt::normalize(clock());
                    let result = single(&pool, r.tenant, r.id, r.input, now).await;
                    let _ = r.reply.send(result);
                }
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
    pool: &PgPool,
    batch: &[Request],
    clock: &Clock,
) -> Result<std::result::Result<Vec<Result<Written>>, String>> {
    let mut tx = pool.begin().await?;
    let mut keys: Vec<(Uuid, Uuid)> = batch.iter().map(|r| (r.tenant.0, r.id)).collect();
    keys.sort_unstable();
    keys.dedup();
    let (tenants, ids): (Vec<Uuid>, Vec<Uuid>) = keys.iter().copied().unzip();
    // LockRows runs above the sort: rows are locked in key order.
    let sql = format!(
        "SELECT {CONVERSATION_COLS}, tenant_id FROM conversations \
         WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[])) \
         ORDER BY tenant_id, id FOR UPDATE"
    );
    let locked = sqlx::query(sqlx::AssertSqlSafe(sql))
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

    let mut results = Vec::with_capacity(batch.len());
    let mut messages: Vec<MessageRow<'_>> = Vec::new();
    let mut events: Vec<(TenantId, Conversation, Vec<&'static str>)> = Vec::new();
    let mut touched: Vec<(Uuid, Uuid)> = Vec::new();
    for r in batch {
        let Some(conv) = convs.get_mut(&(r.tenant.0, r.id)) else {
            results.push(Err(StoreError::NotFound));
            continue;
        };
        let before = conv.clone();
        for (i, m) in r.input.messages.iter().enumerate() {
            messages.push(MessageRow {
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
        events.push((r.tenant, conv.clone(), changed));
        touched.push((r.tenant.0, r.id));
        results.push(Ok(Written::Fresh(conv.clone())));
    }
    // The sources borrow the locked rows, now that they no longer change.
    for m in &mut messages {
        let conv = &convs[&(m.tenant.0, m.conversation)];
        m.source = m.message.source.as_deref().or(conv.source.as_deref());
    }
    if !messages.is_empty() {
        ops::insert_message_rows(&mut tx, &messages, now).await?;
    }
    touched.sort_unstable();
    touched.dedup();
    if !touched.is_empty() {
        let rows: Vec<(TenantId, &Conversation)> =
            touched.iter().map(|k| (TenantId(k.0), &convs[k])).collect();
        ops::update_conversations(&mut tx, &rows).await?;
        let mut event_tenants: Vec<Uuid> = touched.iter().map(|k| k.0).collect();
        event_tenants.dedup();
        let endpoints = webhooks::enabled_endpoints(&mut tx, &event_tenants).await?;
        if !endpoints.is_empty() {
            for (tenant, conv, changed) in &events {
                let targets = webhooks::targets(&endpoints, *tenant, "conversation.updated", None);
                if !targets.is_empty() {
                    let data = ops::conversation_event_data(conv, Some(changed))?;
                    webhooks::emit_to(
                        &mut tx,
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
    Ok(tx
        .commit()
        .await
        .map(|()| results)
        .map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_small_pool_keeps_a_connection_for_reads() {
        assert_eq!(super::workers(2), 1);
        assert_eq!(super::workers(3), 1);
        assert_eq!(super::workers(4), 2);
        assert_eq!(super::workers(1000), 2);
    }
}
