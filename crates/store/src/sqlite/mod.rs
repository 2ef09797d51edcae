//! The SQLite backend: one writer connection behind a group-commit task, a pool of readers.

mod alloc;
mod analytics;
pub(crate) mod backup;
mod checkpointer;
mod checks;
mod doclen;
mod driven;
mod export;
mod fastread;
mod fts;
mod handoff;
mod has_insights;
mod import;
mod insights;
mod jobs;
mod merge;
mod ops;
mod pcache;
mod rank;
mod raw;
mod read;
mod rows;
mod search;
mod sensay;
mod stats;
mod summaries;
mod tails;
mod tenant_keys;
mod walvfs;
mod webhooks;
mod windows;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use confab_core::input::{AppendMessages, ConversationPatch, NewConversation};
use confab_core::{Conversation, Scopes};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};
use uuid::Uuid;

use crate::StoreOptions;
use crate::error::{Result, StoreError};
use crate::types::*;
pub use backup::restore_file;
pub(crate) use pcache::truncations_skipped;
use writer::{WriteOp, WriteOut, Writer};

pub(crate) struct SqliteStore {
    writer: Writer,
    read: SqlitePool,
    fast: std::sync::Arc<fastread::Readers>,
    pepper: Vec<u8>,
    /// A tenant's summaries asked for at once, one query (summaries.rs).
    summaries: summaries::Summaries,
}

fn options(url: &str) -> Result<SqliteConnectOptions> {
    let url = if url.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("sqlite://{url}")
    };
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::Config("an in-memory SQLite database cannot be shared between the writer and readers; give a file path".into()));
    }
    let opts = SqliteConnectOptions::from_str(&url)
        .map_err(|e| StoreError::Config(format!("bad SQLite URL `{url}`: {e}")))?;
    // A commit's WAL frames reach the kernel in one write (walvfs.rs).
    let opts = if walvfs::registered() {
        opts.vfs(walvfs::NAME.to_str().expect("ASCII name"))
    } else {
        opts
    };
    Ok(opts
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // The whole file memory-mapped (MMAP_BYTES): page reads skip a copy through the page cache.
        .pragma("mmap_size", MMAP_BYTES.to_string())
        .pragma("cache_size", "-32000")
        .log_statements(tracing::log::LevelFilter::Trace))
}

/// How much of the database file a connection memory-maps: all of it, whatever it grows to (the
/// bundled SQLite is built to allow this much, `SQLITE_MAX_MMAP_SIZE` in .cargo/config.toml;
/// without that flag SQLite caps it at 2 GiB). Rows are appended, so the newest messages, the
/// ones read most, sit at the end of the file: a window of 256 MiB, as before, covered only
/// the oldest quarter-gigabyte of a store past that size, and every read beyond it went
/// through `pread` into each connection's own page cache. Mapped, 50-message pages were 5-10 %
/// faster on stores of 0.5 and 1.4 GB, and the server's private memory at peak fell by half,
/// the page caches no longer holding copies of mapped pages (docs/performance.md, 2026-12-02).
/// Mapped pages are the OS page cache, shared and reclaimable, but `ps` counts them in the
/// process's RSS. The export, which reads every page once, maps nothing
/// (`fastread::Readers::streaming`).
pub(super) const MMAP_BYTES: i64 = 1 << 40;

/// Process-wide SQLite settings, before the library initializes (the first connection).
///
/// Memory statistics off: with them on (the bundled build's default) every allocation SQLite
/// makes takes one global mutex, and the readers, which run on every core at once, spent 13 %
/// of a ranked search's samples in that lock (perf). SQLite's own documentation recommends
/// turning it off where `sqlite3_memory_used()` is not needed; confab never reads it.
///
/// The allocator rounds sizes to classes, so buffers SQLite grows in small steps move rarely
/// (alloc.rs). The page cache skips truncations that would find nothing, which after a page
/// split had walked the writer's whole cache at every commit (pcache.rs).
fn configure_library() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called with an int argument, as SQLITE_CONFIG_MEMSTATUS
        // takes. If the library is already initialized (something opened a connection first)
        // it answers SQLITE_MISUSE and changes nothing, which is harmless.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            )
        };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was already initialized; memory statistics stay on"
            );
        }
        let rc = alloc::install();
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was already initialized; it keeps its default allocator"
            );
        }
        let rc = pcache::install();
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was already initialized; it keeps its page cache unwrapped"
            );
        }
        // Last: finding the `unix` VFS initializes the library, after which the settings
        // above could no longer be made.
        let rc = walvfs::register();
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::warn!(
                rc,
                "could not register the WAL-gathering VFS; using SQLite's own"
            );
        }
    });
}

/// WAL pages after which a commit copies the WAL back into the database file (SQLite's
/// default is 1,000). Each copy writes the latest version of every page the WAL holds and
/// fsyncs the file, on the writer's thread. Appends to many conversations touch the same hot
/// pages (conversation rows, index leaves, FTS5 structure) commit after commit, so a longer
/// interval copies each of them once instead of several times: appends at 64 connections
/// 7,146 / 7,405 / 7,914 -> 8,278 / 8,948 msg/s in same-hour alternations (10,000 pages gave the
/// same as 4,000), p99 27-32 -> 34 ms (each copy is longer), reads unchanged. The WAL file grows
/// to about 16 MiB and stays that size. Since checkpoints moved to a thread of their own
/// (checkpointer.rs), this is where that thread starts copying; SQLite's automatic checkpoint is
/// set to it too, for a writer whose checkpointer could not start.
pub(super) const WAL_CHECKPOINT_PAGES: u32 = 4000;

impl SqliteStore {
    pub async fn open(url: &str, opts: StoreOptions) -> Result<Self> {
        configure_library();
        let base = options(url)?;
        let mut conn = base.clone().create_if_missing(true).connect().await?;
        // Durability is a promise, not a default: refuse to run if SQLite did not take it.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await?;
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut conn)
            .await?;
        if !mode.eq_ignore_ascii_case("wal") || sync != 2 {
            return Err(StoreError::Config(format!(
                "SQLite must run with journal_mode=WAL and synchronous=FULL, got {mode} and {sync}"
            )));
        }
        // Before migrating: the search migration backfills its index with this function.
        fts::register(&mut conn).await?;
        sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;
        // Before the readers open: they then parse the rewritten schema from the start.
        let rewritten = checks::plain_checks(&mut conn).await?;
        if rewritten > 0 {
            tracing::info!(
                tables = rewritten,
                "CHECK constraints rewritten as comparisons"
            );
        }
        let path = base.get_filename().to_owned();
        let read = SqlitePoolOptions::new()
            .max_connections(opts.read_connections.max(1))
            .min_connections(1)
            .connect_with(base.pragma("query_only", "1"))
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}"
        )))
        .execute(&mut conn)
        .await?;
        // Each write of a group commit runs in its own savepoint (writer.rs), and a savepoint
        // keeps a copy of every page it changes in a statement journal, so that a failed write
        // can be undone alone. SQLite keeps that journal in memory up to 64 KiB, then moves it
        // to a temporary file for the rest of the transaction: a transcript's write passes that
        // mark, and the copies went through `pwrite` into the page cache, 11 % of the writer's
        // CPU under transcripts at 64 connections (perf, docs/performance.md). In memory, the
        // journal is allocated in 1 KiB chunks and freed at each savepoint's release; the
        // writer's temporary tables and sorts (there are none on its paths) would be kept in
        // memory too. Crash safety does not depend on it: the WAL holds the commit.
        sqlx::query("PRAGMA temp_store = MEMORY")
            .execute(&mut conn)
            .await?;
        // The writer rings when it is idle, and the common words' windows are stored then
        // (tails.rs): maintenance, run by a server (`search_merge_idle`), not by one-off commands.
        let bell = opts
            .search_merge_idle
            .map(|_| std::sync::Arc::new(tails::Bell::default()));
        let writer = Writer::start(conn, path.clone(), opts.clone(), bell.clone());
        let fast = std::sync::Arc::new(fastread::Readers::new(path, opts.read_timeout));
        if let (Some(bell), Some(handle)) = (bell, writer.handle()) {
            tails::start(fast.clone(), handle, bell);
        }
        Ok(SqliteStore {
            writer,
            read,
            fast,
            pepper: opts.pepper,
            summaries: summaries::Summaries::default(),
        })
    }

    /// Runs `f` in the writer's next transaction (whole-database copies into a new file).
    pub(crate) async fn exec_raw<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut sqlx::SqliteConnection,
                time::OffsetDateTime,
            ) -> futures::future::BoxFuture<'c, Result<T>>
            + Send
            + 'static,
    {
        self.writer.exec(f).await
    }

    /// One integer read on the writer's connection, inside its next transaction (tests).
    #[cfg(test)]
    pub(crate) async fn writer_scalar(&self, sql: &'static str) -> Result<i64> {
        self.exec_raw(move |c, _| {
            Box::pin(async move { Ok(sqlx::query_scalar(sql).fetch_one(&mut *c).await?) })
        })
        .await
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.read.close().await;
    }

    pub async fn ping(&self) -> Result<()> {
        let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&self.read).await?;
        debug_assert_eq!(one, 1);
        Ok(())
    }

    pub async fn create_key(
        &self,
        tenant: &str,
        scopes: Scopes,
        name: Option<String>,
    ) -> Result<CreatedKey> {
        match self
            .writer
            .run(WriteOp::CreateKey {
                tenant: tenant.to_owned(),
                scopes,
                name,
            })
            .await?
        {
            WriteOut::Key(k) => Ok(k),
            _ => unreachable!("CreateKey answers Key"),
        }
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        read::list_keys(&self.read).await
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<()> {
        let key_id = key_id.to_owned();
        self.writer
            .exec(move |c, now| {
                Box::pin(async move { raw::with(c, |rc| ops::revoke_key(rc, &key_id, now)).await })
            })
            .await
    }

    pub async fn authenticate(&self, key_id: &str, secret: &str) -> Result<Option<Principal>> {
        let row = sqlx::query(
            "SELECT tenant_id, secret_hash, scopes FROM api_keys WHERE key_id = ? AND revoked_at IS NULL",
        )
        .bind(key_id)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: Vec<u8> = row.try_get(1)?;
        if !crate::keys::verify(&self.pepper, secret, &hash) {
            return Ok(None);
        }
        let scopes = Scopes::parse(row.try_get::<&str, _>(2)?).map_err(StoreError::Corrupt)?;
        Ok(Some(Principal {
            tenant: TenantId(row.try_get(0)?),
            key_id: key_id.to_owned(),
            scopes,
        }))
    }

    async fn written(&self, op: WriteOp) -> Result<Written> {
        match self.writer.run(op).await? {
            WriteOut::Written(w) => Ok(w),
            _ => unreachable!("conversation writes answer Written"),
        }
    }

    pub async fn create_conversation(
        &self,
        tenant: TenantId,
        input: NewConversation,
        idem: Option<IdempotencyClaim>,
    ) -> Result<Written> {
        self.written(WriteOp::Create {
            tenant,
            input: Box::new(input),
            idem,
        })
        .await
    }

    pub async fn append_messages(
        &self,
        tenant: TenantId,
        id: Uuid,
        input: AppendMessages,
        idem: Option<IdempotencyClaim>,
    ) -> Result<Written> {
        self.written(WriteOp::Append {
            tenant,
            id,
            input,
            idem,
        })
        .await
    }

    /// In one savepoint of the writer's next transaction: the first append that fails rolls
    /// all of them back. No idempotency keys or status changes, as on PostgreSQL.
    pub async fn append_many(
        &self,
        tenant: TenantId,
        appends: Vec<(Uuid, AppendMessages)>,
    ) -> Result<Vec<Written>> {
        self.writer
            .exec(move |c, now| {
                Box::pin(async move {
                    raw::with(c, |c| {
                        appends
                            .into_iter()
                            .map(|(id, input)| ops::append(c, tenant, id, input, None, now))
                            .collect()
                    })
                    .await
                })
            })
            .await
    }

    pub async fn patch_conversation(
        &self,
        tenant: TenantId,
        id: Uuid,
        patch: ConversationPatch,
    ) -> Result<Conversation> {
        self.written(WriteOp::Patch { tenant, id, patch })
            .await
            .map(|w| w.conversation().clone())
    }

    pub async fn delete_conversation(&self, tenant: TenantId, id: Uuid) -> Result<()> {
        self.writer
            .run(WriteOp::Delete { tenant, id })
            .await
            .map(|_| ())
    }

    pub async fn get_conversation(&self, tenant: TenantId, id: Uuid) -> Result<Conversation> {
        self.fast.with(|c| read::conversation(c, tenant, id))
    }

    pub async fn list_conversations(
        &self,
        tenant: TenantId,
        filter: &ConversationFilter,
        page: ConversationPage,
    ) -> Result<Vec<Conversation>> {
        self.fast
            .with(|c| read::conversations(c, tenant, filter, page))
    }

    pub async fn count_conversations(
        &self,
        tenant: TenantId,
        filter: &ConversationFilter,
    ) -> Result<i64> {
        self.fast
            .with(|c| read::count_conversations(c, tenant, filter))
    }

    pub async fn list_messages(
        &self,
        tenant: TenantId,
        conversation: Uuid,
        q: &MessageQuery,
    ) -> Result<Vec<confab_core::Message>> {
        self.fast
            .with(|c| read::messages(c, tenant, conversation, q))
    }

    pub async fn message_seq(
        &self,
        tenant: TenantId,
        conversation: Uuid,
        message: Uuid,
    ) -> Result<Option<i64>> {
        self.fast.with(|c| {
            raw::one(
                c,
                "SELECT seq FROM messages WHERE tenant_id = ? AND id = ? AND conversation_id = ?",
                rusqlite::params![
                    raw::id(&tenant.0),
                    raw::id(&message),
                    raw::id(&conversation)
                ],
                |r| Ok(r.get(0)?),
            )
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A store on a fresh file in a temporary directory (kept alive by the returned guard).
    pub(crate) async fn temp_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url, StoreOptions::default())
            .await
            .unwrap();
        (dir, store)
    }

    /// Under a stream of commits the log is copied back and starts over again and again
    /// (checkpointer.rs): the checkpoint thread copies it from `WAL_CHECKPOINT_PAGES` pages on,
    /// the writer finishes, and the file never grows to the writer's inline bound. Nothing
    /// written is lost on the way.
    #[tokio::test]
    async fn the_log_is_copied_back_and_starts_over_under_constant_writes() {
        use std::sync::atomic::Ordering;
        let (dir, store) = temp_store().await;
        let t = store.ensure_tenant("acme").await.unwrap();
        let conv = confab_core::input::NewConversation::new(confab_core::Status::Active);
        let id = store
            .create_conversation(t, conv, None)
            .await
            .unwrap()
            .conversation()
            .id;
        let by_thread = checkpointer::BY_THREAD.load(Ordering::Relaxed);
        // About 2,600 bytes a message: each commit writes a few pages, 20,000 or so in all.
        const APPENDS: usize = 3000;
        for i in 0..APPENDS {
            let input = confab_core::input::AppendMessages {
                messages: vec![confab_core::input::NewMessage {
                    content: format!("message {i} {}", "words ".repeat(430)),
                    ..Default::default()
                }],
                status: None,
                metadata: None,
            };
            store.append_messages(t, id, input, None).await.unwrap();
        }
        let wal = std::fs::read(dir.path().join("t.db-wal")).unwrap();
        // The WAL header's checkpoint sequence number: one more at every start-over.
        let restarts = u32::from_be_bytes(wal[12..16].try_into().unwrap());
        assert!(restarts >= 2, "the log started over {restarts} times");
        let bound = checkpointer::INLINE_PAGES as usize * (4096 + 24);
        assert!(wal.len() < bound, "WAL of {} bytes", wal.len());
        assert!(checkpointer::BY_THREAD.load(Ordering::Relaxed) > by_thread);
        let c = store.get_conversation(t, id).await.unwrap();
        assert_eq!(c.message_count, APPENDS as i64);
        store.close().await;
    }

    /// Every connection maps the whole file, past SQLite's default cap of 2 GiB (which it
    /// would answer instead if the build flag in .cargo/config.toml were missing), except the
    /// export's, which maps nothing.
    #[tokio::test]
    async fn connections_map_the_whole_file_and_the_export_nothing() {
        let (_dir, store) = temp_store().await;
        const { assert!(MMAP_BYTES > 0x7fff_0000) };
        let writer = store.writer_scalar("PRAGMA mmap_size").await.unwrap();
        assert_eq!(writer, MMAP_BYTES);
        let pooled: i64 = sqlx::query_scalar("PRAGMA mmap_size")
            .fetch_one(&store.read)
            .await
            .unwrap();
        assert_eq!(pooled, MMAP_BYTES);
        let pragma = |c: &rusqlite::Connection| -> Result<i64> {
            Ok(c.query_row("PRAGMA mmap_size", [], |r| r.get(0))?)
        };
        assert_eq!(store.fast.with(pragma).unwrap(), MMAP_BYTES);
        assert_eq!(pragma(&store.fast.streaming().unwrap()).unwrap(), 0);
        store.close().await;
    }

    /// The writer keeps its savepoints' statement journals in memory (`open` says why): 2 is
    /// `MEMORY`; SQLite's default, 0, spills them to a temporary file past 64 KiB.
    #[tokio::test]
    async fn the_writer_keeps_its_statement_journals_in_memory() {
        let (_dir, store) = temp_store().await;
        assert_eq!(store.writer_scalar("PRAGMA temp_store").await.unwrap(), 2);
        store.close().await;
    }

    /// The name of the VFS `c` opened its main database through.
    async fn vfs_of(c: &mut sqlx::SqliteConnection) -> String {
        raw::with(c, |rc| {
            let mut vfs: *mut libsqlite3_sys::sqlite3_vfs = std::ptr::null_mut();
            // SAFETY: SQLITE_FCNTL_VFS_POINTER writes the connection's VFS pointer into `vfs`;
            // the handle is locked for the call.
            let code = unsafe {
                libsqlite3_sys::sqlite3_file_control(
                    rc.handle(),
                    c"main".as_ptr(),
                    libsqlite3_sys::SQLITE_FCNTL_VFS_POINTER,
                    (&raw mut vfs).cast(),
                )
            };
            assert_eq!(code, libsqlite3_sys::SQLITE_OK);
            // SAFETY: registered VFS objects and their names live for the process.
            let name = unsafe { std::ffi::CStr::from_ptr((*vfs).zName) };
            Ok(name.to_string_lossy().into_owned())
        })
        .await
        .unwrap()
    }

    /// The writer and the readers' pool open the database through the VFS that gathers WAL
    /// writes (walvfs.rs), not through SQLite's default.
    #[tokio::test]
    async fn connections_open_the_database_through_the_wal_vfs() {
        let (_dir, store) = temp_store().await;
        let writer = store
            .exec_raw(|c, _| Box::pin(async move { Ok(vfs_of(c).await) }))
            .await
            .unwrap();
        assert_eq!(writer, "confab-wal");
        let mut reader = store.read.acquire().await.unwrap();
        assert_eq!(vfs_of(&mut reader).await, "confab-wal");
        drop(reader);
        store.close().await;
    }
}
