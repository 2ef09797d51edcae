//! Search postings laid out word by word (migration 0013).
//!
//! Each segment's postings are written when it is built (postings.rs), a row per word, after
//! every row of the segments built before it. A word's rows, one per segment, so lie on as many
//! heap pages, and a first search reads them all until they hold its window: 6.35 rows a word
//! for the benchmark's 1,024 cold words, each a page that PostgreSQL looks up in its buffers
//! and the CPU reads from memory. Written again in the primary key's order, a word's rows share
//! a page or two: on a copy of the benchmark's store so ordered, the cold words ran at
//! 1.12–1.16 times the rate of the store as built, run after run alternated (docs/
//! performance.md, fifty-fourth session).
//!
//! So the builder lays them out again once enough segments were built since the last time
//! (`laid_out`), at a pause in the writes: in one transaction that deletes every row and
//! writes it again in that order, then a `VACUUM` that frees the old rows' space for the next
//! time. Searches read on meanwhile, each from the rows its snapshot sees (the old ones until
//! the transaction commits: a table written anew and swapped in would read as empty to a
//! snapshot taken before); builds and extensions wait for it.

use std::time::Duration;

use sqlx::PgPool;

use crate::error::Result;

/// Segments built and not laid out before a layout is due: at least this many ...
const AT_LEAST: i64 = 2;
/// ... and at least one in this many of those built, so that a layout writes at most this many
/// times the rows built since the last one.
const SHARE: i64 = 4;

/// Longest wait for a lock: a layout that would wait longer (a build still running, a
/// `TRUNCATE` of the messages that holds their segments) gives way and is tried at the next
/// pause. Shorter than `deadlock_timeout`, so a wait in a cycle ends here first.
const LOCK_WAIT: Duration = Duration::from_millis(500);

/// Whether enough segments were built since the last layout.
const DUE: &str = "SELECT count(*) FILTER (WHERE built AND NOT laid_out) \
     >= greatest($1, count(*) FILTER (WHERE built) / $2) FROM search_segments";

/// Whether a layout is due, on a pool or in a transaction.
pub(super) async fn due<'c>(on: impl sqlx::PgExecutor<'c>) -> Result<bool> {
    Ok(sqlx::query_scalar(DUE)
        .bind(AT_LEAST)
        .bind(SHARE)
        .fetch_one(on)
        .await?)
}

/// Lays out every word's rows together if it is due (another server may have just done it);
/// answers whether it did.
pub(super) async fn lay_out(pool: &PgPool) -> Result<bool> {
    let mut tx = pool.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = {}",
        LOCK_WAIT.as_millis()
    )))
    .execute(&mut *tx)
    .await?;
    // No write of postings from now until the commit (builds, extensions, another server's
    // layout: this mode conflicts with itself); reads go on. Taken before the check, so two
    // servers never both lay them out.
    sqlx::query("LOCK TABLE search_postings IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    if !due(&mut *tx).await? {
        return Ok(false);
    }
    // Every row deleted and written again, the same bytes, in the key's order: the sort takes
    // all of them before the first is written.
    sqlx::query(
        "WITH old AS (DELETE FROM search_postings RETURNING tenant_id, lexeme, seg, postings) \
         INSERT INTO search_postings (tenant_id, lexeme, seg, postings) \
         SELECT tenant_id, lexeme, seg, postings FROM old ORDER BY tenant_id, lexeme, seg",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE search_segments SET laid_out = true WHERE built AND NOT laid_out")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    // The old rows' space free for the next layout, and their index entries gone.
    sqlx::query("VACUUM search_postings").execute(pool).await?;
    Ok(true)
}
