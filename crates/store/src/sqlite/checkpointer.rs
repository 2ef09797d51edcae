//! Checkpoints copied off the writer's thread, finished on it.
//!
//! A checkpoint copies the WAL's pages back into the database file and fsyncs the file.
//! SQLite's automatic checkpoint runs at the end of a commit, on the writer's thread, so every
//! write waits through it: under the benchmark's appends about 2,400 page copies and a
//! 17–22 ms fsync every 4,000 WAL pages, which was their p99 (docs/performance.md,
//! 2026-12-02). On a thread of its own beside a busy writer, a checkpoint never reaches the
//! end of the log, and the WAL can start over only once one has (a prototype's WAL grew to
//! 1.2 GB); SQLite also fsyncs the database only in a checkpoint that reached the end.
//!
//! So both, driven by the writer connection's WAL hook, which SQLite calls after every commit
//! with the log's length (the hook replaces the automatic checkpoint; it sees every commit,
//! the search index's merge steps included):
//! 1. from [`START_PAGES`] on, the checkpoint thread copies what the log holds, on a connection
//!    of its own, and then fsyncs the database file itself, while the writer goes on;
//! 2. at the writer's next commit after that, the hook copies the pages written meanwhile (a few
//!    hundred) and fsyncs the file again, with little left to write back; the log has then
//!    been copied to its end, and SQLite starts it over at the next write.
//!
//! Should the thread fall behind, or fail to start, the hook copies the log itself from
//! [`INLINE_PAGES`] on, as SQLite's automatic checkpoint would. Durability is SQLite's own in
//! every case: a page reaches the database only from a WAL frame that was synced at its
//! commit, and the log starts over only after a checkpoint that reached its end and synced.

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use libsqlite3_sys as ffi;
use rusqlite::{Connection, OpenFlags};

/// WAL pages from which the checkpoint thread copies the log (SQLite's default interval is
/// 1,000; why 4,000: `WAL_CHECKPOINT_PAGES` in mod.rs).
pub const START_PAGES: c_int = super::WAL_CHECKPOINT_PAGES as c_int;
/// WAL pages from which the writer copies the log itself whatever the thread is doing.
pub const INLINE_PAGES: c_int = 4 * START_PAGES;

/// Checkpoints the thread has run in this process (for the test that checks it does).
#[cfg(test)]
pub static BY_THREAD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

/// What the hook and the thread share.
struct Shared {
    state: AtomicU8,
    /// Wakes the thread; `None` once it has stopped or could not start.
    wake: Mutex<Option<mpsc::Sender<()>>>,
}

impl Shared {
    /// The hook's decision after a commit that left `frames` pages in the log.
    fn after_commit(&self, db: *mut ffi::sqlite3, frames: c_int) {
        match self.state.load(Ordering::Acquire) {
            IDLE if frames >= START_PAGES => {
                let woken = self
                    .wake
                    .lock()
                    .expect("checkpoint lock")
                    .as_ref()
                    .is_some_and(|w| w.send(()).is_ok());
                if woken {
                    self.state.store(RUNNING, Ordering::Release);
                } else if frames >= INLINE_PAGES {
                    checkpoint(db, "writer");
                }
            }
            DONE => {
                checkpoint(db, "writer");
                self.state.store(IDLE, Ordering::Release);
            }
            RUNNING if frames >= INLINE_PAGES => checkpoint(db, "writer"),
            _ => {}
        }
    }
}

/// The checkpoint thread and the writer connection's hook.
pub struct Checkpointer {
    shared: Arc<Shared>,
    db: *mut ffi::sqlite3,
}

// SAFETY: `db` is only used by `stop`, which the writer calls on its own thread with the
// connection's handle locked; the rest is `Sync`.
unsafe impl Send for Checkpointer {}

/// SQLite's WAL hook on the writer's connection (`sqlite3_wal_hook`).
unsafe extern "C" fn on_commit(
    arg: *mut c_void,
    db: *mut ffi::sqlite3,
    _schema: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: `arg` is the `Shared` given at registration; the checkpointer keeps it alive and
    // removes the hook (`stop`, or `Drop`) before letting it go.
    let shared = unsafe { &*arg.cast::<Shared>() };
    shared.after_commit(db, frames);
    ffi::SQLITE_OK
}

impl Checkpointer {
    /// Installs the hook on `db` (the writer's connection, replacing SQLite's automatic
    /// checkpoint) and starts the thread on a connection of its own to the file at `path`.
    pub fn start(db: &Connection, path: PathBuf) -> Checkpointer {
        let (tx, rx) = mpsc::channel::<()>();
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            wake: Mutex::new(Some(tx)),
        });
        let s = shared.clone();
        let started = std::thread::Builder::new()
            .name("confab-checkpoint".into())
            .spawn(move || {
                if let Err(e) = serve(&path, &rx, &s) {
                    tracing::warn!(error = %e, "the checkpoint thread stopped; checkpoints run inline");
                }
                s.wake.lock().expect("checkpoint lock").take();
                // Nothing is running: the hook finishes (or copies) on its own from here.
                let _ = s
                    .state
                    .compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire);
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "could not start the checkpoint thread");
            shared.wake.lock().expect("checkpoint lock").take();
        }
        // SAFETY: the hook's argument is `shared`, kept alive by the returned value, which
        // removes the hook before dropping it.
        unsafe {
            ffi::sqlite3_wal_hook(
                db.handle(),
                Some(on_commit),
                Arc::as_ptr(&shared).cast_mut().cast(),
            );
        }
        Checkpointer {
            shared,
            db: unsafe { db.handle() },
        }
    }

    /// Removes the hook from the writer's connection and lets the thread end. Called on the
    /// writer's thread, with its connection's handle locked, before the connection closes.
    pub fn stop(&mut self) {
        if self.db.is_null() {
            return;
        }
        // SAFETY: the handle is the live writer connection this hook was installed on.
        unsafe {
            ffi::sqlite3_wal_hook(self.db, None, std::ptr::null_mut());
        }
        self.db = std::ptr::null_mut();
        self.shared.wake.lock().expect("checkpoint lock").take();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // The hook must not outlive what it points at.
        self.stop();
    }
}

/// The thread: a checkpoint and a sync of the database file each time it is woken, until the
/// writer lets go of it.
fn serve(path: &PathBuf, rx: &mpsc::Receiver<()>, shared: &Shared) -> rusqlite::Result<()> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // A connection finds the WAL at its first read; before that a checkpoint on it does
    // nothing.
    c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })?;
    let file = std::fs::File::open(path).map_err(|e| {
        rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_CANTOPEN), Some(e.to_string()))
    })?;
    while rx.recv().is_ok() {
        // SAFETY: the thread's own connection, used on this thread only.
        checkpoint(unsafe { c.handle() }, "thread");
        #[cfg(test)]
        BY_THREAD.fetch_add(1, Ordering::Relaxed);
        // The copy stopped short of the log's end (the writer kept adding to it), so SQLite
        // did not sync the database: the pages it copied are written back here, leaving the
        // writer's last copy few to sync.
        if let Err(e) = file.sync_data() {
            tracing::warn!(error = %e, "syncing the database after a checkpoint");
        }
        shared.state.store(DONE, Ordering::Release);
    }
    Ok(())
}

/// A passive checkpoint on `db` (counted in `confab_store_checkpoints_total{by}`): copies what no reader still needs, waits for nobody. Busy (the
/// other side is copying) is not a failure: the next commit tries again.
fn checkpoint(db: *mut ffi::sqlite3, by: &'static str) {
    let (mut log, mut copied) = (0, 0);
    // SAFETY: `db` is a live connection used on the calling thread (the writer's inside its
    // hook, as SQLite's own automatic checkpoint does, or the checkpoint thread's own); the
    // out-parameters are locals.
    let rc = unsafe {
        ffi::sqlite3_wal_checkpoint_v2(
            db,
            std::ptr::null(),
            ffi::SQLITE_CHECKPOINT_PASSIVE,
            &mut log,
            &mut copied,
        )
    };
    if rc == ffi::SQLITE_OK {
        metrics::counter!("confab_store_checkpoints_total", "by" => by).increment(1);
    }
    if rc != ffi::SQLITE_OK && rc != ffi::SQLITE_BUSY {
        tracing::warn!(code = rc, "checkpoint failed");
    }
}
