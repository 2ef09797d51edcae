//! Group commit: every write goes through one task that owns the only writer connection. It
//! takes the first waiting request, drains whatever else is queued at that moment, runs them all
//! in one `BEGIN IMMEDIATE` transaction (each inside its own savepoint, so one failing request
//! leaves no trace and does not fail the others), commits once, and only then answers each
//! caller. With `synchronous=FULL` one fsync covers the whole batch: durability without the
//! one-fsync-per-request ceiling.

use std::sync::Mutex;

use confab_core::Scopes;
use confab_core::input::{AppendMessages, ConversationPatch, NewConversation};
use sqlx::Connection;
use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::merge::Merger;
use super::{ops, raw};
use crate::StoreOptions;
use crate::error::{Result, StoreError};
use crate::types::*;

/// Indexes for search the messages stored by this transaction (rowid above the mark taken at
/// its start), in one statement: FTS5 then writes one index segment per batch (migration 0009
/// says why there is no insert trigger). Messages deleted again within the batch are simply not
/// there to index.
pub(super) const INDEX_NEW_MESSAGES: &str = "INSERT INTO messages_fts (rowid, body) \
     SELECT rowid, confab_fts(tenant_id, content) FROM messages WHERE rowid > ?1";

/// Most requests committed together; bounds the latency one commit adds to the first of them.
const MAX_BATCH: usize = 512;
/// Requests allowed to wait before callers feel back-pressure.
const QUEUE: usize = 8192;

/// A write that is not one of the named operations: any function of the transaction's
/// connection and its timestamp. Lets a new capability add a write without touching this file.
pub type TxFn = Box<
    dyn for<'c> FnOnce(
            &'c mut SqliteConnection,
            time::OffsetDateTime,
        ) -> futures::future::BoxFuture<'c, Result<WriteOut>>
        + Send,
>;

pub enum WriteOp {
    Run(TxFn),
    CreateKey {
        tenant: String,
        scopes: Scopes,
        name: Option<String>,
    },
    Create {
        tenant: TenantId,
        input: Box<NewConversation>,
        idem: Option<IdempotencyClaim>,
    },
    Append {
        tenant: TenantId,
        id: Uuid,
        input: AppendMessages,
        idem: Option<IdempotencyClaim>,
    },
    Patch {
        tenant: TenantId,
        id: Uuid,
        patch: ConversationPatch,
    },
    Delete {
        tenant: TenantId,
        id: Uuid,
    },
}

pub enum WriteOut {
    Value(Box<dyn std::any::Any + Send>),
    Key(CreatedKey),
    Written(Written),
    Done,
}

struct Request {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOut>>,
}

pub struct Writer {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub fn start(conn: SqliteConnection, opts: StoreOptions) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(conn, rx, opts));
        Writer {
            tx: Mutex::new(Some(tx)),
            task: tokio::sync::Mutex::new(Some(task)),
        }
    }

    /// Queues `op` and waits until its transaction has committed (or failed).
    pub async fn run(&self, op: WriteOp) -> Result<WriteOut> {
        let tx = self
            .tx
            .lock()
            .expect("writer sender lock")
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Request { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        drop(tx);
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` inside the next group-commit transaction (in its own savepoint) and answers
    /// its value once committed.
    pub async fn exec<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut SqliteConnection,
                time::OffsetDateTime,
            ) -> futures::future::BoxFuture<'c, Result<T>>
            + Send
            + 'static,
    {
        let op = WriteOp::Run(Box::new(move |c, now| {
            Box::pin(async move { f(c, now).await.map(|v| WriteOut::Value(Box::new(v))) })
        }));
        match self.run(op).await? {
            WriteOut::Value(v) => Ok(*v.downcast::<T>().expect("exec answers its own type")),
            _ => unreachable!("Run answers Value"),
        }
    }

    /// Stops taking requests, lets the queued ones commit, and closes the connection.
    pub async fn close(&self) {
        self.tx.lock().expect("writer sender lock").take();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Request>, opts: StoreOptions) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut merger = Merger::new(opts.search_merge_idle);
    loop {
        // Requests first; when nothing has changed for a while, a step of index maintenance.
        let first = match merger.as_ref().and_then(Merger::due) {
            None => rx.recv().await,
            Some(due) => tokio::select! {
                biased;
                r = rx.recv() => r,
                _ = tokio::time::sleep_until(due.into()) => {
                    if let Some(m) = merger.as_mut()
                        && let Err(e) = m.step(&mut conn).await
                    {
                        // Maintenance only: searches stay correct on an unmerged index.
                        tracing::warn!(error = %e, "merging the search index");
                        merger = None;
                    }
                    continue;
                }
            },
        };
        let Some(first) = first else { break };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let (ops, replies): (Vec<_>, Vec<_>) = batch.drain(..).map(|r| (r.op, r.reply)).unzip();
        // Only the merger asks whether the batch changed anything.
        let before = match merger {
            Some(_) => Some(total_changes(&mut conn).await),
            None => None,
        };
        let results = commit(&mut conn, ops, &opts).await;
        if let (Some(m), Some(before)) = (merger.as_mut(), before)
            && total_changes(&mut conn).await != before
        {
            m.changed();
        }
        metrics::histogram!("confab_store_commit_batch_size").record(size as f64);
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the SQLite writer connection");
    }
}

/// Rows changed by the connection so far (0 if the handle cannot be had: then every commit
/// looks like no change, and the index is merged as if the writer were idle).
async fn total_changes(conn: &mut SqliteConnection) -> u64 {
    raw::with(conn, |c| Ok(c.total_changes()))
        .await
        .unwrap_or(0)
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::query(sql).execute(&mut *conn).await?;
    Ok(())
}

/// A sqlx write closure inside its own savepoint; its answer goes to `results`.
async fn run_closure(
    conn: &mut SqliteConnection,
    f: TxFn,
    opts: &StoreOptions,
    results: &mut Vec<Result<WriteOut>>,
) -> Result<()> {
    exec(conn, "SAVEPOINT op").await?;
    let now = confab_core::timefmt::normalize((opts.clock)());
    let result = f(conn, now).await;
    if result.is_err() {
        exec(conn, "ROLLBACK TO op").await?;
    }
    exec(conn, "RELEASE op").await?;
    results.push(result);
    Ok(())
}

async fn commit(
    conn: &mut SqliteConnection,
    ops: Vec<WriteOp>,
    opts: &StoreOptions,
) -> Vec<Result<WriteOut>> {
    let n = ops.len();
    let fail_all = |what: &str, e: StoreError| -> Vec<Result<WriteOut>> {
        tracing::error!(error = %e, batch = n, "{what}");
        (0..n)
            .map(|_| Err(StoreError::Commit(e.to_string())))
            .collect()
    };
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE").await {
        return fail_all("could not begin a write transaction", e);
    }
    // Messages above this rowid are this batch's: indexed for search just before COMMIT.
    let mark: Result<i64> = raw::with(conn, |rc| {
        Ok(
            rc.query_row("SELECT COALESCE(MAX(rowid), 0) FROM messages", [], |r| {
                r.get(0)
            })?,
        )
    })
    .await;
    let mark = match mark {
        Ok(m) => m,
        Err(e) => {
            let _ = exec(conn, "ROLLBACK").await;
            return fail_all("could not read the last message rowid", e);
        }
    };
    let mut results = Vec::with_capacity(n);
    let mut ops = ops.into_iter().peekable();
    while let Some(op) = ops.next() {
        // A fatal error here is one of the savepoint statements failing: the transaction is in
        // an unknown state, so the whole batch is rolled back and every caller told.
        let step = match op {
            WriteOp::Run(f) => run_closure(conn, f, opts, &mut results).await,
            named => {
                // Consecutive named writes share one lock of the handle.
                let mut run = vec![named];
                while ops.peek().is_some_and(|o| !matches!(o, WriteOp::Run(_))) {
                    run.extend(ops.next());
                }
                let results = &mut results;
                raw::with(conn, move |rc| {
                    for op in run {
                        raw::exec(rc, "SAVEPOINT op", [])?;
                        let result = ops::apply(rc, op, opts);
                        if result.is_err() {
                            raw::exec(rc, "ROLLBACK TO op", [])?;
                        }
                        raw::exec(rc, "RELEASE op", [])?;
                        results.push(result);
                    }
                    Ok(())
                })
                .await
            }
        };
        if let Err(e) = step {
            let _ = exec(conn, "ROLLBACK").await;
            return fail_all("could not open or close a savepoint", e);
        }
    }
    let indexed = raw::with(conn, |rc| {
        raw::exec(rc, INDEX_NEW_MESSAGES, [mark])?;
        Ok(())
    })
    .await;
    if let Err(e) = indexed {
        let _ = exec(conn, "ROLLBACK").await;
        return fail_all("could not index the batch's messages for search", e);
    }
    match exec(conn, "COMMIT").await {
        Ok(()) => results,
        Err(e) => {
            let _ = exec(conn, "ROLLBACK").await;
            fail_all("commit failed; the whole batch was rolled back", e)
        }
    }
}
