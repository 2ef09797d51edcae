//! Conversation lookups on PostgreSQL, many requests per statement.
//!
//! Fetching one conversation by key is a trivial query, so what it costs is the round trip:
//! PostgreSQL's backend woken to parse, bind and execute it, this process's driver encoding and
//! decoding the protocol, and the kernel's socket work on both sides, about as much again as
//! the HTTP request it serves (at 64 connections, 24,000 lookups/s against an HTTP floor of
//! 88,000 on the same machine; docs/performance.md, 2026-11-30, twelfth session). So lookups
//! wait in a queue, as plain appends do (`append_batch.rs`): a worker takes every waiting one
//! and fetches them all with one statement over arrays of their keys. A lookup that finds the
//! queue empty runs at once, with the single-row query, so a quiet server answers as fast as
//! before; under load the batches form by themselves. Each key is matched to its own row by its
//! position in the arrays, tenant and id together, so one tenant's request can never be given
//! another's row. If the batch's statement fails, each lookup runs again on its own, so every
//! caller gets its own answer or its own error.

use std::sync::{Arc, Mutex};

use confab_core::Conversation;
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::read;
use super::rows::{self, CONVERSATION_COLS};
use crate::error::{Result, StoreError};
use crate::types::TenantId;

/// Most lookups in one statement.
const MAX_BATCH: usize = 128;
/// Statements in flight: two, so one batch fills while another runs (one on a pool of 2 or 3,
/// which appends and other reads share).
fn workers(pool_size: u32) -> usize {
    (pool_size as usize / 2).clamp(1, 2)
}

struct Request {
    tenant: TenantId,
    id: Uuid,
    reply: oneshot::Sender<Result<Conversation>>,
}

pub(super) struct Lookups {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    workers: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Lookups {
    pub fn start(pool: PgPool) -> Lookups {
        let (tx, rx) = mpsc::channel(8192);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let workers = (0..workers(pool.options().get_max_connections()))
            .map(|_| tokio::spawn(work(rx.clone(), pool.clone())))
            .collect();
        Lookups {
            tx: Mutex::new(Some(tx)),
            workers: tokio::sync::Mutex::new(workers),
        }
    }

    /// The tenant's conversation `id`, through the next batch; `NotFound` if the tenant has no
    /// such conversation.
    pub async fn get(&self, tenant: TenantId, id: Uuid) -> Result<Conversation> {
        let tx = self
            .tx
            .lock()
            .expect("lookup sender lock")
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Request { tenant, id, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        drop(tx);
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops taking lookups and waits for the queued ones to be answered.
    pub async fn close(&self) {
        self.tx.lock().expect("lookup sender lock").take();
        for w in self.workers.lock().await.drain(..) {
            let _ = w.await;
        }
    }
}

async fn work(rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Request>>>, pool: PgPool) {
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
        if let [one] = batch.as_slice() {
            let answer = read::conversation(&pool, one.tenant, one.id).await;
            if let Some(r) = batch.into_iter().next() {
                let _ = r.reply.send(answer);
            }
            continue;
        }
        match fetch(&pool, &batch).await {
            Ok(mut found) => {
                for (r, row) in batch.into_iter().zip(found.iter_mut()) {
                    let _ = r.reply.send(row.take().ok_or(StoreError::NotFound));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, lookups = batch.len(), "batched conversation lookup failed; looking each up alone");
                for r in batch {
                    let _ = r
                        .reply
                        .send(read::conversation(&pool, r.tenant, r.id).await);
                }
            }
        }
    }
}

/// The batch's conversations, in the batch's order (`None` where the tenant has none by that
/// id). `q.i` is each key's 1-based position in the arrays.
async fn fetch(pool: &PgPool, batch: &[Request]) -> Result<Vec<Option<Conversation>>> {
    let sql = format!(
        "SELECT {CONVERSATION_COLS}, q.i FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY \
         AS q(t, k, i) JOIN conversations ON conversations.tenant_id = q.t \
         AND conversations.id = q.k"
    );
    let tenants: Vec<Uuid> = batch.iter().map(|r| r.tenant.0).collect();
    let ids: Vec<Uuid> = batch.iter().map(|r| r.id).collect();
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenants)
        .bind(ids)
        .fetch_all(pool)
        .await?;
    let position = CONVERSATION_COLS.split(',').count();
    let mut out: Vec<Option<Conversation>> = (0..batch.len()).map(|_| None).collect();
    for row in &found {
        let i: i64 = row.try_get(position)?;
        let slot = usize::try_from(i - 1)
            .ok()
            .and_then(|i| out.get_mut(i))
            .ok_or_else(|| StoreError::Corrupt(format!("lookup position {i} out of range")))?;
        *slot = Some(rows::conversation(row)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_pool_keeps_a_connection_for_everything_else() {
        assert_eq!(workers(2), 1);
        assert_eq!(workers(3), 1);
        assert_eq!(workers(4), 2);
        assert_eq!(workers(32), 2);
    }

    #[test]
    fn the_position_column_follows_the_conversation_columns() {
        // rows::conversation reads the columns by index; the position must come after them.
        assert_eq!(CONVERSATION_COLS.split(',').count(), 15);
    }
}
