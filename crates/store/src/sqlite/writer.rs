//! Group commit: every write goes through one task, on a thread of its own, that owns the only
//! writer connection. It takes the first waiting request, drains whatever else is queued at
//! that moment, runs them all in one `BEGIN IMMEDIATE` transaction (each inside its own
//! savepoint, so one failing request leaves no trace and does not fail the others), commits
//! once, and only then answers each caller. With `synchronous=FULL` one fsync covers the whole
//! batch: durability without the one-fsync-per-request ceiling.

use std::sync::Mutex;

use confab_core::Scopes;
use confab_core::input::{AppendMessages, ConversationPatch, NewConversation};
use sqlx::Connection;
use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::checkpointer::Checkpointer;
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
    /// Answered (or dropped) when the writer's thread has closed its connection.
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

/// A way to the writer that does not keep it open: it answers [`StoreError::Closed`] once the
/// store has closed (a background thread's, tails.rs).
#[derive(Clone)]
pub struct WriterHandle(mpsc::WeakSender<Request>);

impl WriterHandle {
    /// Whether the writer still takes requests.
    pub fn is_open(&self) -> bool {
        self.0.strong_count() > 0
    }

    /// [`Writer::exec`].
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
        let tx = self.0.upgrade().ok_or(StoreError::Closed)?;
        let op = WriteOp::Run(Box::new(move |c, now| {
            Box::pin(async move { f(c, now).await.map(|v| WriteOut::Value(Box::new(v))) })
        }));
        match run_on(tx, op).await? {
            WriteOut::Value(v) => Ok(*v.downcast::<T>().expect("exec answers its own type")),
            _ => unreachable!("Run answers Value"),
        }
    }
}

impl Writer {
    /// Starts the writer on a thread of its own, with a single-threaded runtime. The writer is
    /// the one stage every write passes through, so it must not wait behind request tasks: as
    /// a task on the server's runtime it was queued behind the connections' tasks at each of
    /// its wake-ups (0.4 ms of a 4.7 ms batch went to BEGIN alone under HTTP load, 0.1 ms
    /// without), and its fsync had to go to sqlx's thread so as not to block a runtime worker.
    /// On its own thread it runs a whole batch, COMMIT included, in one stretch.
    pub fn start(
        conn: SqliteConnection,
        path: std::path::PathBuf,
        opts: StoreOptions,
        bell: Option<std::sync::Arc<super::tails::Bell>>,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stopped_tx, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("confab-writer".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(run(conn, path, rx, opts, bell)),
                    // Dropping `rx` fails every request as on a closed store.
                    Err(e) => tracing::error!(error = %e, "could not start the SQLite writer"),
                }
                let _ = stopped_tx.send(());
            });
        if let Err(e) = thread {
            tracing::error!(error = %e, "could not start the SQLite writer's thread");
            return Writer {
                tx: Mutex::new(None),
                stopped: Mutex::new(None),
            };
        }
        Writer {
            tx: Mutex::new(Some(tx)),
            stopped: Mutex::new(Some(stopped)),
        }
    }

    fn sender(&self) -> Result<mpsc::Sender<Request>> {
        self.tx
            .lock()
            .expect("writer sender lock")
            .clone()
            .ok_or(StoreError::Closed)
    }

    /// A handle that does not keep the writer open.
    pub fn handle(&self) -> Option<WriterHandle> {
        self.sender().ok().map(|tx| WriterHandle(tx.downgrade()))
    }

    /// Queues `op` and waits until its transaction has committed (or failed).
    pub async fn run(&self, op: WriteOp) -> Result<WriteOut> {
        run_on(self.sender()?, op).await
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
        self.handle().ok_or(StoreError::Closed)?.exec(f).await
    }

    /// Stops taking requests, lets the queued ones commit, and closes the connection.
    pub async fn close(&self) {
        self.tx.lock().expect("writer sender lock").take();
        let stopped = self.stopped.lock().expect("writer stop lock").take();
        if let Some(stopped) = stopped {
            // An error only means the thread ended without saying so (a panic): it is gone.
            let _ = stopped.await;
        }
    }
}

async fn run_on(tx: mpsc::Sender<Request>, op: WriteOp) -> Result<WriteOut> {
    let (reply, rx) = oneshot::channel();
    tx.send(Request { op, reply })
        .await
        .map_err(|_| StoreError::Closed)?;
    // Not held while waiting: a closing store waits for every sender to go.
    drop(tx);
    rx.await.map_err(|_| StoreError::Closed)?
}

async fn run(
    mut conn: SqliteConnection,
    path: std::path::PathBuf,
    mut rx: mpsc::Receiver<Request>,
    opts: StoreOptions,
    bell: Option<std::sync::Arc<super::tails::Bell>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut merger = Merger::new(opts.search_merge_idle, bell);
    // Declared after `conn`, so dropped before it even on a panic: it finalizes its statements.
    let mut held = match raw::Held::new(&mut conn).await {
        Ok(h) => h,
        Err(e) => {
            // Nothing can be written: every request is answered with the error.
            tracing::error!(error = %e, "could not take the SQLite writer's handle");
            while let Some(r) = rx.recv().await {
                let _ = r.reply.send(Err(StoreError::Commit(e.to_string())));
            }
            return;
        }
    };
    // Checkpoints from here on are the checkpointer's (checkpointer.rs). Without it SQLite's
    // automatic checkpoint stays, inline.
    let mut checkpoints = held
        .run(&mut conn, |rc| Ok(Checkpointer::start(rc, path)))
        .await
        .map_err(|e| tracing::warn!(error = %e, "checkpoints stay inline"))
        .ok();
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
        let (results, changed) = commit(&mut conn, &mut held, ops, &opts).await;
        if changed && let Some(m) = merger.as_mut() {
            m.changed();
        }
        metrics::histogram!("confab_store_commit_batch_size").record(size as f64);
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
    if let Some(mut c) = checkpoints.take() {
        let _ = held
            .run(&mut conn, |_| {
                c.stop();
                Ok(())
            })
            .await;
    }
    drop(held);
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the SQLite writer connection");
    }
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

/// Where a batch failed as a whole.
enum Failed {
    /// BEGIN failed: there is no transaction to roll back.
    Begin(StoreError),
    /// The transaction is open, in an unknown state: rolled back, every caller told `what`.
    Open(&'static str, StoreError),
    /// COMMIT failed; the transaction has been rolled back.
    Commit(StoreError),
}

/// The transaction's state carried between its locked stretches.
struct Tx {
    /// Messages above this rowid are this batch's: indexed for search just before COMMIT.
    mark: i64,
    /// `total_changes` at BEGIN, to tell whether the batch changed anything.
    changes: u64,
}

/// One locked stretch of a batch: BEGIN first if `tx` is not open yet, then the named writes
/// `run`, each in its own savepoint, then, if `last`, the batch's messages indexed for search
/// and COMMIT (the fsync, on the writer's own thread). Answers the transaction and whether
/// anything has changed since BEGIN.
fn stretch(
    rc: &rusqlite::Connection,
    tx: Option<Tx>,
    run: Vec<WriteOp>,
    last: bool,
    opts: &StoreOptions,
    results: &mut Vec<Result<WriteOut>>,
) -> std::result::Result<(Tx, bool), Failed> {
    // The largest rowid now: a delete of the newest messages lowers it, and SQLite then gives
    // their rowids to the next inserts, at or below the mark taken at BEGIN. The mark follows
    // it down, so that those inserts are indexed too (rows above the lowest it has been since
    // BEGIN can only be this batch's): with the mark at BEGIN alone, an append that followed
    // such a delete in one batch was never indexed, and no search found it (the concurrent
    // test in search_kept.rs, twenty-eighth session).
    // (A single write that deleted the newest messages and then inserted would escape it; none
    // of the named writes does both.)
    let max_rowid = || {
        raw::one(
            rc,
            "SELECT COALESCE(MAX(rowid), 0) FROM messages",
            [],
            |r| Ok(r.get::<_, i64>(0)?),
        )
        .map(|m| m.unwrap_or(0))
        .map_err(|e| Failed::Open("could not read the last message rowid", e))
    };
    let mut tx = match tx {
        Some(mut t) => {
            // A closure may have deleted messages since the last stretch.
            t.mark = t.mark.min(max_rowid()?);
            t
        }
        None => {
            let changes = rc.total_changes();
            raw::exec(rc, "BEGIN IMMEDIATE", []).map_err(Failed::Begin)?;
            let mark = max_rowid()?;
            Tx { mark, changes }
        }
    };
    // A fatal error here is one of the savepoint statements failing: the transaction is in
    // an unknown state, so the whole batch is rolled back and every caller told.
    let savepoint = |e| Failed::Open("could not open or close a savepoint", e);
    for op in run {
        raw::exec(rc, "SAVEPOINT op", []).map_err(savepoint)?;
        let result = ops::apply(rc, op, opts);
        if result.is_err() {
            raw::exec(rc, "ROLLBACK TO op", []).map_err(savepoint)?;
        }
        raw::exec(rc, "RELEASE op", []).map_err(savepoint)?;
        results.push(result);
        tx.mark = tx.mark.min(max_rowid()?);
    }
    if last {
        raw::exec(rc, INDEX_NEW_MESSAGES, [tx.mark])
            .map_err(|e| Failed::Open("could not index the batch's messages for search", e))?;
    }
    let changed = rc.total_changes() != tx.changes;
    if last && let Err(e) = raw::exec(rc, "COMMIT", []) {
        let _ = raw::exec(rc, "ROLLBACK", []);
        return Err(Failed::Commit(e));
    }
    Ok((tx, changed))
}

/// Runs the batch in one transaction and commits it. Every named write between two closures
/// runs in one locked stretch of the handle through rusqlite, the first stretch also opening
/// the transaction and the last also indexing the batch's messages and committing: one
/// hand-over of the handle per stretch instead of one per statement, which under load cost
/// 0.4 ms of a 4.7 ms batch in thread wake-ups; a batch of named writes only is one hand-over.
/// Also answers whether the batch changed any row (for the merger).
async fn commit(
    conn: &mut SqliteConnection,
    held: &mut raw::Held,
    ops: Vec<WriteOp>,
    opts: &StoreOptions,
) -> (Vec<Result<WriteOut>>, bool) {
    let n = ops.len();
    let fail_all = |what: &str, e: StoreError| -> Vec<Result<WriteOut>> {
        tracing::error!(error = %e, batch = n, "{what}");
        (0..n)
            .map(|_| Err(StoreError::Commit(e.to_string())))
            .collect()
    };
    // The batch as stretches of named writes, each but the last followed by one closure.
    let mut stretches: Vec<(Vec<WriteOp>, Option<TxFn>)> = vec![(Vec::new(), None)];
    for op in ops {
        let current = stretches.len() - 1;
        match op {
            WriteOp::Run(f) => {
                stretches[current].1 = Some(f);
                stretches.push((Vec::new(), None));
            }
            named => stretches[current].0.push(named),
        }
    }
    let count = stretches.len();
    let mut results = Vec::with_capacity(n);
    let mut tx: Option<Tx> = None;
    let mut changed = false;
    let outcome: std::result::Result<(), Failed> = async {
        for (i, (named, closure)) in stretches.into_iter().enumerate() {
            let last = i + 1 == count;
            let open = tx.take();
            let begun = open.is_some();
            let done = held
                .run(conn, |rc| {
                    Ok(stretch(rc, open, named, last, opts, &mut results))
                })
                .await;
            let (now_open, now_changed) = match done {
                Ok(done) => done?,
                // Not even locked: BEGIN has not run if this was the first stretch.
                Err(e) if !begun => return Err(Failed::Begin(e)),
                Err(e) => return Err(Failed::Open("could not lock the writer's handle", e)),
            };
            tx = Some(now_open);
            changed = now_changed;
            if let Some(f) = closure {
                run_closure(conn, f, opts, &mut results)
                    .await
                    .map_err(|e| Failed::Open("could not open or close a savepoint", e))?;
            }
        }
        Ok(())
    }
    .await;
    match outcome {
        Err(Failed::Begin(e)) => (fail_all("could not begin a write transaction", e), false),
        Err(Failed::Open(what, e)) => {
            let _ = exec(conn, "ROLLBACK").await;
            (fail_all(what, e), false)
        }
        Err(Failed::Commit(e)) => (
            fail_all("commit failed; the whole batch was rolled back", e),
            false,
        ),
        Ok(()) => (results, changed),
    }
}

#[cfg(test)]
mod tests {
    use confab_core::input::NewMessage;

    use super::super::tests::temp_store;
    use super::*;
    use crate::types::MessageQuery;

    fn append(content: String) -> AppendMessages {
        AppendMessages {
            messages: vec![NewMessage {
                content,
                ..Default::default()
            }],
            status: None,
            metadata: None,
        }
    }

    /// An append that follows, in the same batch, a delete of the newest messages takes one of
    /// their rowids (SQLite reuses the largest), below the largest rowid at the batch's BEGIN;
    /// it is indexed all the same. The writer is held inside a closure while the delete and
    /// then the append queue up, so that both run in the next batch, in that order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_after_a_delete_of_the_newest_messages_in_one_batch_is_indexed() {
        use crate::search::{SearchFilter, SearchRequest, SearchSort};
        let (_dir, store) = temp_store().await;
        let tenant = store.ensure_tenant("acme").await.unwrap();
        let mut ids = Vec::new();
        for text in ["older words", "newest words"] {
            let mut conv = NewConversation::new(confab_core::Status::Active);
            conv.messages = vec![NewMessage {
                content: text.into(),
                ..Default::default()
            }];
            let c = store.create_conversation(tenant, conv, None).await.unwrap();
            ids.push(c.conversation().id);
        }
        let store = std::sync::Arc::new(store);
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let holding = {
            let s = store.clone();
            tokio::spawn(async move {
                s.exec_raw(|_, _| {
                    Box::pin(async move {
                        let _ = held.await;
                        Ok(())
                    })
                })
                .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let deleting = {
            let (s, newest) = (store.clone(), ids[1]);
            tokio::spawn(async move { s.delete_conversation(tenant, newest).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let appending = {
            let (s, older) = (store.clone(), ids[0]);
            tokio::spawn(async move {
                s.append_messages(tenant, older, append("okapi after".into()), None)
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        release.send(()).unwrap();
        holding.await.unwrap().unwrap();
        deleting.await.unwrap().unwrap();
        appending.await.unwrap().unwrap();
        let req = SearchRequest {
            query: confab_core::search::parse_query("okapi").unwrap(),
            filter: SearchFilter::default(),
            sort: SearchSort::Recent,
            limit: 20,
            cursor: None,
        };
        let found = store.search(tenant, &req).await.unwrap();
        assert_eq!(found.hits.len(), 1, "the append was not indexed");
    }

    /// COMMIT runs at the end of the batch's last locked stretch: when it fails, every write of
    /// the batch fails with it and none is stored, the transaction is rolled back there, and
    /// the writer goes on. A deferred foreign key makes COMMIT itself refuse the batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_whose_commit_fails_stores_nothing_and_the_writer_goes_on() {
        let (_dir, store) = temp_store().await;
        store
            .exec_raw(|c, _| {
                Box::pin(async move {
                    exec(c, "CREATE TABLE parent (id INTEGER PRIMARY KEY)").await?;
                    exec(
                        c,
                        "CREATE TABLE child (p INTEGER REFERENCES parent (id) \
                         DEFERRABLE INITIALLY DEFERRED)",
                    )
                    .await
                })
            })
            .await
            .unwrap();
        let tenant = store.ensure_tenant("acme").await.unwrap();
        let id = store
            .create_conversation(
                tenant,
                NewConversation::new(confab_core::Status::Active),
                None,
            )
            .await
            .unwrap()
            .conversation()
            .id;

        let store = std::sync::Arc::new(store);
        // A first wave without a violation commits whole.
        let mut acknowledged = Vec::new();
        for i in 0..20 {
            let content = format!("w{i}");
            store
                .append_messages(tenant, id, append(content.clone()), None)
                .await
                .unwrap();
            acknowledged.push(content);
        }
        // Then appends racing with violations: whichever batch holds a violation fails whole.
        let mut appends = Vec::new();
        let mut violations = Vec::new();
        for i in 0..60 {
            let s = store.clone();
            appends.push(tokio::spawn(async move {
                let content = format!("m{i}");
                let r = s.append_messages(tenant, id, append(content.clone()), None);
                (content, r.await)
            }));
            if i % 20 == 10 {
                let s = store.clone();
                violations.push(tokio::spawn(async move {
                    s.exec_raw(|c, _| {
                        Box::pin(async move { exec(c, "INSERT INTO child (p) VALUES (7)").await })
                    })
                    .await
                }));
            }
        }
        for v in violations {
            match v.await.unwrap() {
                Err(StoreError::Commit(m)) => assert!(m.contains("FOREIGN KEY"), "{m}"),
                other => panic!("the violating batch committed: {other:?}"),
            }
        }
        let mut refused = Vec::new();
        for a in appends {
            let (content, r) = a.await.unwrap();
            match r {
                Ok(_) => acknowledged.push(content),
                Err(StoreError::Commit(_)) => refused.push(content),
                Err(e) => panic!("{e}"),
            }
        }

        // The writer is not left inside the failed transaction: the next write commits.
        let last = store
            .append_messages(tenant, id, append("after".into()), None)
            .await
            .unwrap();
        let stored: Vec<String> = store
            .list_messages(tenant, id, &MessageQuery::default())
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.content)
            .collect();
        assert_eq!(last.conversation().message_count, stored.len() as i64);
        assert_eq!(stored.last().map(String::as_str), Some("after"));
        for c in &acknowledged {
            assert!(stored.contains(c), "acknowledged {c} was lost");
        }
        for c in &refused {
            assert!(!stored.contains(c), "refused {c} was stored");
        }
        assert_eq!(stored.len(), acknowledged.len() + 1);
        let orphans = store
            .writer_scalar("SELECT count(*) FROM child")
            .await
            .unwrap();
        assert_eq!(orphans, 0);
        store.close().await;
    }
}
