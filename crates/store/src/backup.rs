//! Backup and restore of the whole database (every tenant).

use std::path::Path;

use crate::{Result, Store, StoreError, StoreOptions};

impl Store {
    /// Writes a consistent snapshot of the whole database to `path` (which must not exist)
    /// while writes go on: SQLite's `VACUUM INTO` reads one snapshot and writes a compact copy.
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

/// Restores the backup file `from` into the database at `url`, which must be empty or missing
/// (the server must not be running on it). Migrates it to this version and rebuilds the search
/// index (row numbers may change in a copy), then answers the open store.
pub async fn restore(from: &Path, url: &str, opts: StoreOptions) -> Result<Store> {
    if url.starts_with("sqlite:") || url.ends_with(".db") {
        crate::sqlite::restore_file(from, url).await?;
    } else {
        return Err(StoreError::Config(format!(
            "unsupported database URL `{url}`: use sqlite://PATH"
        )));
    }
    let store = Store::open(url, opts).await?;
    store.rebuild_search_index().await?;
    Ok(store)
}
