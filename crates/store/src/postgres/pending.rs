//! The full-text index's pending list, moved into the index proper when the writes pause.
//!
//! A GIN index (`messages_fts`) takes new entries into a pending list, an unsorted heap of
//! pages, and merges them into its sorted posting trees in bulk: when the list passes
//! `gin_pending_list_limit` (4 MB), at the next VACUUM of `messages`, or on request. Every
//! search reads the whole list. After the benchmark's import it held 238 pages, and reading
//! them was half of a rare word's query (0.68 ms of 1.42 ms in PostgreSQL; 949 → 1,408
//! searches/s over HTTP once merged, docs/performance.md). Autovacuum merges it only after a fifth of the
//! table has been inserted again, so at a light write rate every search would pay for the list
//! for hours. A smaller limit merges sooner but in smaller, costlier batches (appends at 64
//! connections: 5,774 / 5,474 msg/s at 4 MB, 4,254 / 4,009 at 128 kB, 3,951 with the list off),
//! so the limit stays and the merge moves here: the summary counts' upkeep (stats.rs) calls
//! [`Flusher::flush`] when the writes pause, and every ten seconds while they go on, which
//! takes merges an inserting append would otherwise have waited for off its path.
//!
//! The same moments summarize the block ranges filled since (the bands' summary, migration
//! 0007): a range not summarized yet matches every band, so a wide search step would fetch
//! every match in it. VACUUM does it too, where autovacuum runs; this is for servers where it
//! is off, and for the ranges filled since its last round.

use sqlx::{PgConnection, PgPool};

/// Moves the pending list into the index, then summarizes the block ranges filled since;
/// answers the pages emptied and the ranges summarized, together.
async fn merge(c: &mut PgConnection) -> sqlx::Result<i64> {
    let pages: i64 = sqlx::query_scalar("SELECT gin_clean_pending_list('messages_fts'::regclass)")
        .fetch_one(&mut *c)
        .await?;
    Ok(pages + summarize(c).await?)
}

/// Summarizes the block ranges filled since (migration 0007); 0 when something holds
/// `messages` against it. Summarizing locks the table as VACUUM and ANALYZE do, and a request
/// left waiting behind an autovacuum past `deadlock_timeout` has PostgreSQL cancel that
/// autovacuum: at a round every ten seconds while writes go on, `messages` might never be
/// vacuumed. So it gives up after 100 ms; the next round tries again.
async fn summarize(c: &mut PgConnection) -> sqlx::Result<i64> {
    let mut tx = sqlx::Connection::begin(&mut *c).await?;
    sqlx::query("SET LOCAL lock_timeout = '100ms'")
        .execute(&mut *tx)
        .await?;
    let ranges = sqlx::query_scalar::<_, i32>(
        "SELECT brin_summarize_new_values('messages_band_summary'::regclass)",
    )
    .fetch_one(&mut *tx)
    .await;
    match ranges {
        Ok(n) => {
            tx.commit().await?;
            Ok(i64::from(n))
        }
        // lock_not_available: `lock_timeout` ran out.
        Err(e) if sqlstate(&e, "55P03") => {
            tracing::debug!("summarizing block ranges: messages is locked (a VACUUM?); next round");
            tx.rollback().await?;
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// Whether PostgreSQL answered `e` with SQLSTATE `code`.
pub(super) fn sqlstate(e: &sqlx::Error, code: &str) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == code)
}

/// Merges, as the store opens, a pending list another process left: a command-line import
/// that ended before its upkeep's next round, a node that crashed. The upkeep merges only after
/// this process's own writes, so a server that only reads would otherwise have every search
/// walk that list until autovacuum comes (a rare word's index scan read the 432 pages an
/// import left: 1.48 ms of its 2.4 ms, against 0.05 ms merged; docs/performance.md). A role
/// that does not own the index is told once by the upkeep; here that is only a debug line.
pub(crate) async fn merge_left_over(c: &mut PgConnection) {
    match merge(&mut *c).await {
        Ok(done) if done > 0 => {
            tracing::info!(
                pages_and_ranges = done,
                "merged the full-text index's pending list and summarized the block ranges \
                 left by another process"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "merging the full-text index's pending list at open"),
    }
}

/// Flushes the pending list and summarizes the new block ranges; stops for good if the server
/// refuses (the role does not own the indexes), after saying so once.
#[derive(Debug, Default)]
pub(crate) struct Flusher {
    refused: bool,
}

impl Flusher {
    /// Merges the pending list into the index and summarizes the new block ranges; answers
    /// the pages emptied and ranges summarized. A failure is
    /// logged, not returned: the index stays correct either way, only slower to search.
    pub async fn flush(&mut self, pool: &PgPool) -> i64 {
        if self.refused {
            return 0;
        }
        let done = match pool.acquire().await {
            Ok(mut c) => merge(&mut c).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(done) => {
                if done > 0 {
                    tracing::debug!(
                        pages_and_ranges = done,
                        "merged the full-text index's pending list and summarized block ranges"
                    );
                }
                done
            }
            Err(e) => {
                // insufficient_privilege: the role does not own the indexes.
                if sqlstate(&e, "42501") {
                    self.refused = true;
                    tracing::warn!(
                        error = %e,
                        "the database role does not own the search indexes: messages_fts's \
                         pending list is left to autovacuum, and searches read it until then, \
                         as they fetch every match of the block ranges it has not summarized"
                    );
                } else if !pool.is_closed() {
                    tracing::warn!(error = %e, "merging the full-text index's pending list failed");
                }
                0
            }
        }
    }
}
