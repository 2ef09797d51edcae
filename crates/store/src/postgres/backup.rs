//! Backup and restore on PostgreSQL, in the portable format: a backup is a SQLite database
//! file, the same kind `confab backup` writes on SQLite (see `crate::copy`). One snapshot
//! (REPEATABLE READ) is copied, so writes may go on while it runs.

use std::path::{Path, PathBuf};

use sqlx::Connection;
use sqlx::sqlite::SqliteConnectOptions;

use super::PgStore;
use crate::error::{Result, StoreError};
use crate::sqlite::SqliteStore;
use crate::{StoreOptions, copy};

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

impl PgStore {
    pub async fn backup(&self, path: &Path) -> Result<()> {
        // A new SQLite database with the current schema, filled through its own writer (which
        // keeps its search index as it inserts).
        let target = SqliteStore::open(&sqlite_url(path), StoreOptions::default()).await?;
        let mut src = self.pool.acquire().await?;
        let r = target
            .exec_raw(move |c, _| {
                Box::pin(async move {
                    // Dropped without commit: the read-only snapshot is rolled back.
                    let mut tx = src.begin().await?;
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                        .execute(&mut *tx)
                        .await?;
                    copy::pg_to_sqlite(&mut tx, c).await
                })
            })
            .await;
        target.close().await;
        if r.is_err() {
            remove_sqlite(path);
        }
        r
    }
}

fn remove_sqlite(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.to_path_buf().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Copies the backup file `from` (a SQLite database, of this or an older schema version) into
/// the empty PostgreSQL database at `url`, migrating both first.
pub async fn restore_file(from: &Path, url: &str, opts: StoreOptions) -> Result<()> {
    // Checked, copied and migrated to this version in a scratch file first, so an older
    // backup restores too and the backup itself is never written to.
    let scratch = std::env::temp_dir().join(format!("confab-restore-{}.db", uuid::Uuid::now_v7()));
    let r = restore_via(from, &scratch, url, opts).await;
    remove_sqlite(&scratch);
    r
}

async fn restore_via(from: &Path, scratch: &Path, url: &str, opts: StoreOptions) -> Result<()> {
    crate::sqlite::restore_file(from, &sqlite_url(scratch)).await?;
    SqliteStore::open(&sqlite_url(scratch), StoreOptions::default())
        .await?
        .close()
        .await;
    let target = PgStore::open(url, opts).await?;
    let tenants: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
        .fetch_one(&target.pool)
        .await?;
    if tenants > 0 {
        target.close().await;
        return Err(StoreError::Config(
            "the PostgreSQL database is not empty; restore only into a new or empty database"
                .into(),
        ));
    }
    let mut src = sqlx::ConnectOptions::connect(
        &SqliteConnectOptions::new()
            .filename(scratch)
            .read_only(true),
    )
    .await?;
    let r = async {
        let mut tx = target.pool.begin().await?;
        copy::sqlite_to_pg(&mut src, &mut tx).await?;
        tx.commit().await?;
        target
            .bulk_written
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }
    .await;
    let _ = src.close().await;
    target.close().await;
    r
}
