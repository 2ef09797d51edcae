//! Backup (`VACUUM INTO`) and restore of a SQLite database file.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::SqliteStore;
use crate::error::{Result, StoreError};

impl SqliteStore {
    pub async fn backup(&self, path: &Path) -> Result<()> {
        let target = path.to_string_lossy().into_owned();
        // The pool's readers are query_only, which VACUUM INTO refuses: use a connection of
        // its own to the same file. It writes nothing to the source.
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&self.read)
                .await?;
        let mut conn = SqliteConnectOptions::new()
            .filename(&file)
            .busy_timeout(std::time::Duration::from_secs(10))
            .connect()
            .await?;
        let r = sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&mut conn)
            .await;
        conn.close().await?;
        r?;
        Ok(())
    }
}

fn file_of(url: &str) -> Result<PathBuf> {
    let url = if url.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("sqlite://{url}")
    };
    let o = SqliteConnectOptions::from_str(&url)
        .map_err(|e| StoreError::Config(format!("bad SQLite URL `{url}`: {e}")))?;
    Ok(o.get_filename().to_path_buf())
}

/// Copies the backup `from` to the (empty or missing) database file of `url`.
pub async fn restore_file(from: &Path, url: &str) -> Result<()> {
    let target = file_of(url)?;
    if target.exists() {
        let mut c = SqliteConnectOptions::new()
            .filename(&target)
            .read_only(true)
            .connect()
            .await?;
        let has_tables: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'tenants'")
                .fetch_one(&mut c)
                .await?;
        let tenants: i64 = if has_tables > 0 {
            sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
                .fetch_one(&mut c)
                .await?
        } else {
            0
        };
        c.close().await?;
        if tenants > 0 {
            return Err(StoreError::Config(format!(
                "{} is not empty; restore only into a new or empty database",
                target.display()
            )));
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut p = target.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    }
    if !from.exists() {
        return Err(StoreError::Config(format!(
            "{} does not exist",
            from.display()
        )));
    }
    let mut src = SqliteConnectOptions::new()
        .filename(from)
        .read_only(true)
        .connect()
        .await?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut src)
        .await?;
    if check != "ok" {
        return Err(StoreError::Config(format!(
            "{} failed its integrity check: {check}",
            from.display()
        )));
    }
    sqlx::query("VACUUM INTO ?")
        .bind(target.to_string_lossy().into_owned())
        .execute(&mut src)
        .await?;
    src.close().await?;
    Ok(())
}
