//! The storage layer's one error type.

use confab_core::ValidationError;

/// What can go wrong below the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist for this tenant (another tenant's rows do not exist either).
    #[error("not found")]
    NotFound,
    /// The request broke a rule the store checks (for example an unknown cursor).
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// An idempotency key was reused with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    /// A name or key that must be unique already exists.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database URL or settings cannot be used.
    #[error("configuration: {0}")]
    Config(String),
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite refused or failed, on the writer's synchronous path.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored JSON did not parse (a bug or a hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The write's commit failed, or its outcome is unknown: on SQLite nothing of it was
    /// stored; on PostgreSQL the connection may have been lost after PostgreSQL committed it
    /// (a failed COMMIT, a versioned append's lost answer), so it may have been stored, and
    /// it is never run again on the caller's behalf (that could store it twice).
    #[error("the write could not be committed: {0}")]
    Commit(String),
    /// The writer is gone (the store is shutting down).
    #[error("the store is shutting down")]
    Closed,
    /// A read ran past `StoreOptions::read_timeout` and was stopped.
    #[error("the read took longer than its time limit")]
    ReadTimeout,
}

impl StoreError {
    /// A read stopped at `StoreOptions::read_timeout`, counted in
    /// `confab_store_reads_timed_out_total` (one rule for both backends).
    pub(crate) fn read_timed_out() -> StoreError {
        metrics::counter!("confab_store_reads_timed_out_total").increment(1);
        StoreError::ReadTimeout
    }
}

/// Shorthand.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
