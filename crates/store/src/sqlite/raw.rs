//! Synchronous statements on the writer's own sqlx connection.
//!
//! sqlx runs every SQLite statement on a worker thread and hands the answer back through a
//! channel: two thread wake-ups per statement. An append is six statements, so under load the
//! writer spent most of its time in futex waits, not in SQLite (perf: ~45 % of the samples in
//! task switching, ~3 % in the VDBE). The writer's operations therefore lock the connection's
//! handle and run their statements directly through rusqlite, with prepared statements kept
//! for the connection's life ([`Held`]), COMMIT (the fsync) included: the writer has a thread
//! of its own (writer.rs), so blocking it blocks no one else.

use rusqlite::types::Value;
use rusqlite::{Connection, Row};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::error::Result;

/// Runs `f` with a rusqlite view of `c`'s handle, locked for the whole call.
pub async fn with<T>(
    c: &mut SqliteConnection,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let mut handle = c.lock_handle().await?;
    // SAFETY: the handle stays locked (sqlx's worker cannot touch it) until `handle` drops, which
    // is after `rc`; `from_handle` does not take ownership, so dropping `rc` only finalizes the
    // statements it prepared and never closes the connection.
    let rc = unsafe { Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
    let out = f(&rc);
    drop(rc);
    drop(handle);
    out
}

/// A rusqlite view of the writer's handle kept for the connection's life, so that its prepared
/// statements are kept too: a view made for each batch ([`with`]) prepared every statement of
/// every batch again.
pub struct Held(Connection);

impl Held {
    /// Must be dropped before `c` closes: dropping it finalizes its statements on the handle.
    pub async fn new(c: &mut SqliteConnection) -> Result<Held> {
        let mut handle = c.lock_handle().await?;
        // SAFETY: as in `with`, the view does not own the handle and dropping it only finalizes
        // the statements it prepared. It is used only through `run`, under the handle's lock.
        let rc = unsafe { Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
        // Every statement any write prepares stays: create, append, patch, delete, keys,
        // idempotency, webhooks and insights jobs together are a few dozen.
        rc.set_prepared_statement_cache_capacity(128);
        Ok(Held(rc))
    }

    /// Runs `f` with the view, `c`'s handle locked for the whole call.
    pub async fn run<T>(
        &mut self,
        c: &mut SqliteConnection,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let handle = c.lock_handle().await?;
        let out = f(&self.0);
        drop(handle);
        out
    }
}

/// A UUID as SQLite stores it (16 bytes, the same encoding sqlx uses).
pub fn id(u: &Uuid) -> &[u8] {
    u.as_bytes()
}

/// Reads a 16-byte UUID column.
pub fn uuid(r: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    // Borrowed, not copied into a Vec: this runs for every row of every page.
    let v = r.get_ref(i)?;
    let b = v
        .as_blob()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), Box::new(e)))?;
    Uuid::from_slice(b).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
    })
}

/// Reads an optional 16-byte UUID column.
pub fn opt_uuid(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Uuid>> {
    let b: Option<Vec<u8>> = r.get(i)?;
    b.map(|b| {
        Uuid::from_slice(&b).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e))
        })
    })
    .transpose()
}

/// Runs a cached statement that returns no rows; the number of rows changed.
pub fn exec(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    Ok(c.prepare_cached(sql)?.execute(params)?)
}

/// One optional row through a cached statement.
pub fn one<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut st = c.prepare_cached(sql)?;
    let mut rows = st.query(params)?;
    match rows.next()? {
        Some(r) => f(r).map(Some),
        None => Ok(None),
    }
}

/// A statement being built: SQL text with numbered parameters and their values.
#[derive(Default)]
pub struct Sql {
    /// The text, with `?N` placeholders.
    pub text: String,
    /// The values, in placeholder order.
    pub args: Vec<Value>,
}

impl Sql {
    /// Appends SQL text.
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    /// Appends a placeholder for `v`.
    pub fn bind(&mut self, v: impl Into<Value>) -> &mut Self {
        self.args.push(v.into());
        let n = self.args.len();
        self.text.push_str(&format!("?{n}"));
        self
    }
}

/// A UUID as a bound value.
pub fn blob(u: &uuid::Uuid) -> Value {
    Value::Blob(u.as_bytes().to_vec())
}

impl Sql {
    /// Runs the statement (cached) and maps every row.
    pub fn rows<T>(
        &self,
        c: &Connection,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut st = c.prepare_cached(&self.text)?;
        let mut rows = st.query(rusqlite::params_from_iter(&self.args))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(f(r)?);
        }
        Ok(out)
    }
}
