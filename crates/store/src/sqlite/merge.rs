//! Keeping the full-text index in one segment while the writer has nothing else to do.
//!
//! FTS5 writes a segment per transaction and merges them four at a time as they pile up
//! (`automerge`), so a grown index is a handful of segments on several levels (nine after the
//! benchmark's import of a million messages). A search walks every segment the word is in, and
//! walking one backwards starts by listing the offsets of a whole leaf page: for a word found
//! in nearly every message, most of a ranked search's index time went to segments that
//! contributed nothing to its newest thousand matches. One segment made that search 1.1–1.5 ×
//! faster, depending on the allocator (docs/performance.md).
//!
//! So when the writer has committed no change for a while
//! ([`StoreOptions::search_merge_idle`]), it merges every segment into one, in steps of
//! [`STEP_PAGES`] pages, each its own short transaction: a request that arrives waits for at
//! most one step. A full merge rewrites the whole index, so it is started only when the index
//! has grown by a quarter since the last one (or once after start-up): its cost per message
//! stays a small constant, like FTS5's own merging, and is paid when no one is waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::SqliteConnection;

use super::tails::Bell;
use super::{raw, search};
use crate::error::Result;

/// Leaf pages written per step (FTS5's page is 4 KiB): a few milliseconds of work.
const STEP_PAGES: i64 = 256;

/// Rows the index must have gained since the last full merge before it is merged again: a
/// quarter of it, and at least this many.
const MIN_GROWTH: u64 = 10_000;

pub(super) struct Merger {
    idle: Duration,
    /// When a transaction last changed something (the workers' polls that find no job do not
    /// count: they come every half second and would keep the writer from ever being idle).
    last_change: Instant,
    /// Rows of the index when it was last merged whole; None: not since start-up.
    merged_rows: Option<u64>,
    /// A merge is under way: the next step continues it.
    merging: bool,
    /// Something was written since the last look (or nothing has been looked at yet).
    dirty: bool,
    /// No request came since the last step: the next one may follow at once.
    quiet: bool,
    /// Rung whenever the writer is idle and the index merged: the stored windows of the common
    /// words are built then (tails.rs).
    bell: Option<Arc<Bell>>,
}

impl Merger {
    pub(super) fn new(idle: Option<Duration>, bell: Option<Arc<Bell>>) -> Option<Merger> {
        idle.map(|idle| Merger {
            bell,
            idle,
            last_change: Instant::now(),
            merged_rows: None,
            merging: false,
            dirty: true,
            quiet: false,
        })
    }

    /// When the writer, if no request comes first, calls [`Merger::step`]; None when there is
    /// nothing to do until the next change.
    pub(super) fn due(&self) -> Option<Instant> {
        match (self.dirty, self.merging && self.quiet) {
            (false, _) => None,
            (true, true) => Some(Instant::now()),
            (true, false) => Some(self.last_change + self.idle),
        }
    }

    /// A committed transaction changed rows.
    pub(super) fn changed(&mut self) {
        self.last_change = Instant::now();
        self.dirty = true;
        self.quiet = false;
    }

    /// Starts or continues a merge if one is due; one step at most.
    pub(super) async fn step(&mut self, conn: &mut SqliteConnection) -> Result<()> {
        self.quiet = true;
        let merging = self.merging;
        let due = self.merged_rows;
        let (rows, tried, worked) = raw::with(conn, |c| {
            let rows = search::index_totals(c)?.0 as u64;
            let grown = due.is_none_or(|m| rows >= m + (m / 4).max(MIN_GROWTH));
            if !merging && !grown {
                return Ok((rows, false, false));
            }
            // A negative count merges every segment, whatever its level; the command reports
            // work through the changes it made (FTS5's documentation: 2 or more).
            let before = c.total_changes();
            c.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('merge', ?1)",
                [-STEP_PAGES],
            )?;
            Ok((rows, true, c.total_changes() - before >= 2))
        })
        .await?;
        if worked {
            if !self.merging {
                tracing::info!(rows, "merging the search index into one segment");
            }
            self.merging = true;
            metrics::counter!("confab_store_search_merge_steps_total").increment(1);
        } else {
            // Finished, or nothing to merge (already one segment): the index as it is now is
            // the one the next quarter of growth is counted from.
            if tried {
                self.merged_rows = Some(rows);
            }
            self.merging = false;
            self.dirty = false;
            if let Some(bell) = &self.bell {
                bell.ring();
            }
        }
        Ok(())
    }
}
