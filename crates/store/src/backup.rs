//! Backup and restore of the whole database (every tenant).

use std::path::Path;

use crate::{Result, Store, StoreError, StoreOptions};

impl Store {
    /// Writes a consistent snapshot of the whole database to `path` (which must not exist)
    /// while writes go on. The file is always a SQLite database: on SQLite `VACUUM INTO` reads
    /// one snapshot and writes a compact copy; on PostgreSQL one REPEATABLE READ snapshot is
    /// copied into a new SQLite file. Either backend restores either backend's backups.
    pub async fn backup(&self, path: &Path) -> Result<()> {
        if path.exists() {
            return Err(StoreError::Config(format!(
                "{} already exists; backups never overwrite",
                path.display()
            )));
        }
        dispatch!(self, b => b.backup(path).await)
    }
}

/// Restores the backup file `from` into the database at `url` (SQLite or PostgreSQL), which
/// must be empty or missing (the server must not be running on it). Migrates it to this version
/// and rebuilds the search index (row numbers may change in a copy), then answers the open store.
pub async fn restore(from: &Path, url: &str, opts: StoreOptions) -> Result<Store> {
    if crate::is_postgres_url(url) {
        crate::postgres::restore_file(from, url, opts.clone()).await?;
    } else if url.starts_with("sqlite:") || url.ends_with(".db") {
        crate::sqlite::restore_file(from, url).await?;
    } else {
        return Err(StoreError::Config(
            "unsupported database URL: use sqlite://PATH or postgres://…".into(),
        ));
    }
    let store = Store::open(url, opts).await?;
    store.rebuild_search_index().await?;
    Ok(store)
}
