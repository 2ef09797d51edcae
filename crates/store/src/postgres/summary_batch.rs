//! Analytics summaries on PostgreSQL, one query per tenant for all the requests waiting.
//!
//! A dashboard's summary is one statement over the tenant's counts (`stats.rs`), about 0.3 ms
//! of PostgreSQL's CPU, half of it planning, and every open dashboard asks for it again and
//! again. Summaries wait in a queue, as lookups and appends do (`read_batch.rs`,
//! `append_batch.rs`): a worker takes every waiting request, runs the query once per tenant
//! among them, and gives each request its tenant's answer. That answer is as fresh as one of
//! the request's own: the query starts after every request it serves has arrived, and its
//! "now" is the latest of theirs, which every one of them precedes the answer of. A request
//! that finds the queue empty runs at once. If a tenant's query fails, each of its requests runs
//! again alone, so each gets its own answer or error.

use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::stats;
use crate::error::{Result, StoreError};
use crate::stats::Summary;
use crate::types::TenantId;

/// Most requests taken at once.
const MAX_BATCH: usize = 256;

struct Request {
    tenant: TenantId,
    now: OffsetDateTime,
    reply: oneshot::Sender<Result<Summary>>,
}

pub(super) struct Summaries {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    workers: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Summaries {
    /// `counted`: whether triggers keep the summary's counts (`stats::summary`).
    pub fn start(pool: PgPool, counted: bool) -> Summaries {
        let (tx, rx) = mpsc::channel(8192);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        // Two, so one batch gathers while the other's queries run (one on a small pool).
        let n = (pool.options().get_max_connections() as usize / 2).clamp(1, 2);
        let workers = (0..n)
            .map(|_| tokio::spawn(work(rx.clone(), pool.clone(), counted)))
            .collect();
        Summaries {
            tx: Mutex::new(Some(tx)),
            workers: tokio::sync::Mutex::new(workers),
        }
    }

    /// The tenant's summary as of `now` or a little later (see the module's comment).
    pub async fn get(&self, tenant: TenantId, now: OffsetDateTime) -> Result<Summary> {
        let tx = self
            .tx
            .lock()
            .expect("summary sender lock")
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Request { tenant, now, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        drop(tx);
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops taking requests and waits for the queued ones to be answered.
    pub async fn close(&self) {
        self.tx.lock().expect("summary sender lock").take();
        for w in self.workers.lock().await.drain(..) {
            let _ = w.await;
        }
    }
}

async fn work(rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Request>>>, pool: PgPool, counted: bool) {
    loop {
        let mut batch = {
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
        // One tenant at a time, in the order they first asked.
        while let Some(first) = batch.first() {
            let tenant = first.tenant;
            let (same, rest): (Vec<Request>, Vec<Request>) =
                batch.into_iter().partition(|r| r.tenant == tenant);
            batch = rest;
            // A group holds at least one request, so the fallback is never used.
            let now = same
                .iter()
                .map(|r| r.now)
                .max()
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            match stats::summary(&pool, counted, tenant, now).await {
                Ok(sum) => {
                    for r in same {
                        let _ = r.reply.send(Ok(sum.clone()));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, requests = same.len(), "shared summary query failed; running each alone");
                    for r in same {
                        let _ = r
                            .reply
                            .send(stats::summary(&pool, counted, r.tenant, r.now).await);
                    }
                }
            }
        }
    }
}
