//! The hot reads (one conversation, a page of messages) on rusqlite connections of their own,
//! run on the calling task: each is a few index lookups, far shorter than the two thread
//! wake-ups a sqlx statement costs (see `raw.rs`). Other reads stay on the sqlx pool.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::handoff::Ran;
use crate::error::{Result, StoreError};

/// Idle connections kept; more are opened under load and closed when returned to a full pool.
const KEEP: usize = 16;

pub struct Readers {
    path: PathBuf,
    /// How long a read may run (`StoreOptions::read_timeout`).
    limit: Option<Duration>,
    idle: Mutex<Vec<Connection>>,
    /// Messages' lengths for ranked search, shared by every connection (doclen.rs).
    pub lengths: Arc<super::doclen::DocLengths>,
    /// Ranked search's candidate windows of recent queries (windows.rs).
    pub windows: super::windows::Windows,
}

impl Readers {
    pub fn new(path: PathBuf, limit: Option<Duration>) -> Readers {
        Readers {
            path,
            limit,
            idle: Mutex::new(Vec::new()),
            lengths: Arc::default(),
            windows: Default::default(),
        }
    }

    fn open(&self) -> Result<Connection> {
        // The same read settings as the sqlx pool: the whole file mapped, a page cache, no writes.
        self.open_with(super::MMAP_BYTES, 32_000)
    }

    /// A read-only connection mapping `mmap` bytes of the file, with a page cache of
    /// `cache_kib` KiB.
    fn open_with(&self, mmap: i64, cache_kib: i64) -> Result<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.execute_batch(&format!(
            "PRAGMA mmap_size = {mmap}; PRAGMA cache_size = -{cache_kib}; PRAGMA query_only = 1;"
        ))?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        // Every hot read's statements stay prepared (rusqlite keeps 16 by default; a search
        // alone uses seven, and its hit lookup has a variant per page length).
        c.set_prepared_statement_cache_capacity(128);
        // Ranked search reads its candidates' statistics from the index (rank.rs).
        super::rank::register(&c, self.lengths.clone())?;
        // A read that runs long gives its runtime worker away (handoff.rs).
        super::handoff::install(&c);
        Ok(c)
    }

    /// A connection of its own with the pool's settings, not pooled: a background reader's
    /// (tails.rs), whose one long read must not hold a pooled connection or a runtime worker.
    pub fn own(&self) -> Result<Connection> {
        // The file mapped like the others', but a small page cache: such a read visits each
        // page about once, and what it cached would stay in the server's memory after it.
        self.open_with(super::MMAP_BYTES, 2_000)
    }

    /// A connection of its own for reading every page once (the export): nothing mapped and a
    /// small page cache, so the server's memory, RSS included, stays flat however large the
    /// store (a mapped page read once would stay in the process's RSS). Not pooled.
    pub fn streaming(&self) -> Result<Connection> {
        self.open_with(0, 8_000)
    }

    /// Runs `f` on an idle connection (opening one if none is idle), on the calling thread;
    /// should it run long, again where it may block (handoff.rs), hence `Fn`.
    pub fn with<T>(&self, f: impl Fn(&Connection) -> Result<T>) -> Result<T> {
        self.with_expected(f, false)
    }

    /// [`Readers::with`] for a read known to be `long` when it is: it goes where it may block
    /// at once (handoff.rs).
    pub fn with_expected<T>(&self, f: impl Fn(&Connection) -> Result<T>, long: bool) -> Result<T> {
        let idle = self.idle.lock().expect("reader pool lock").pop();
        let conn = match idle {
            Some(c) => c,
            None => self.open()?,
        };
        // A read interrupted inside its snapshot's transaction has ended it (`snapshot`).
        let out = match super::handoff::run(|| f(&conn), long, self.limit) {
            Ran::Inline(out) => out,
            Ran::HandedOver(out) => {
                metrics::counter!("confab_store_reads_handed_over_total").increment(1);
                out
            }
            Ran::TimedOut => {
                metrics::counter!("confab_store_reads_handed_over_total").increment(1);
                Err(StoreError::read_timed_out())
            }
        };
        // A connection left inside a transaction would hold its snapshot (and the WAL) forever.
        if conn.is_autocommit() {
            let mut idle = self.idle.lock().expect("reader pool lock");
            if idle.len() < KEEP {
                idle.push(conn);
            }
        }
        out
    }
}

/// Runs `f` in one read transaction on `c`: its statements read one snapshot, and SQLite takes
/// its shared lock once rather than once a statement. `BEGIN` and `COMMIT` are cached
/// statements (unlike `Connection::transaction`, which parses them every time).
pub fn snapshot<T>(c: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    c.prepare_cached("BEGIN")?.execute([])?;
    let out = f(c);
    // Ending a read-only transaction cannot lose anything; if COMMIT fails, ROLLBACK so the
    // connection goes back to the pool without a transaction open.
    if c.prepare_cached("COMMIT")
        .and_then(|mut st| st.execute([]))
        .is_err()
    {
        // Should that fail too, `Readers::with` drops the connection rather than pool it.
        let _ = c
            .prepare_cached("ROLLBACK")
            .and_then(|mut st| st.execute([]));
    }
    out
}
