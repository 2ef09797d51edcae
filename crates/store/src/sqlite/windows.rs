//! Ranked search's candidate windows, kept in memory per query and brought forward by later
//! searches of the same query.
//!
//! A ranked search scores the newest `RANK_WINDOW` matches of its query up to its snapshot
//! (search.rs). Gathering them is FTS5 walking a thousand entries of its index: about half of a
//! common word's search, HTTP included (perf, docs/performance.md, 2026-12-02). Yet that window
//! is a function of the index up to the snapshot alone, and the index below a snapshot only
//! changes when a row at or below it is deleted or rewritten. Each of those bumps
//! `search_epoch.n` in the same transaction (migration 0010: the rule the kept lengths of
//! doclen.rs rely on, for any process writing the file); an insert takes a rowid above every
//! row there is. So the window of a query at a later snapshot `s2` of the same epoch is its
//! matches in `(s1, s2]`, newest first, followed by its window at `s1`, cut to `RANK_WINDOW`:
//! exactly what walking the index would give. A search that finds its query's window kept for
//! its epoch, at its own snapshot or an older one, walks only the matches above that snapshot
//! (none when nothing was written since), and keeps the result for the next search. "Above
//! every row there is" can lie below a snapshot: an old cursor's, after the newest messages
//! were deleted. So a window is kept as of its snapshot or the largest rowid, whichever is
//! lower (search.rs, `kept_window`).
//!
//! Only searches without filters are kept (their window is the index's alone). The key is the
//! FTS5 query, which holds the tenant's search tag, so two tenants never share an entry. At most
//! [`CAPACITY`](crate::lru::CAPACITY) queries are kept (`lru.rs`), the least recently used
//! dropped first: about 16 KiB each for a one-word query, 4 MiB in all.

use std::sync::Arc;

use crate::lru::Lru;

/// A query's window: its newest matches up to `snapshot`, newest first, as read in `epoch`.
#[derive(Debug)]
pub struct Window {
    pub epoch: i64,
    pub snapshot: i64,
    /// Each candidate's rowid and length in tokens.
    pub rows: Vec<(i64, u32)>,
    /// `k` phrase counts per candidate, candidate after candidate.
    pub counts: Vec<u32>,
}

impl Window {
    /// The window at a later snapshot of the same epoch: `newer` (the matches above this
    /// window's snapshot, newest first, `k` counts each) followed by this window, cut to
    /// `limit` candidates.
    pub fn forward(
        &self,
        snapshot: i64,
        newer: Vec<(i64, u32)>,
        newer_counts: Vec<u32>,
        k: usize,
        limit: usize,
    ) -> Window {
        let keep = limit.saturating_sub(newer.len()).min(self.rows.len());
        let mut rows = newer;
        rows.truncate(limit);
        rows.extend_from_slice(&self.rows[..keep]);
        let mut counts = newer_counts;
        counts.truncate(limit * k);
        counts.extend_from_slice(&self.counts[..keep * k]);
        Window {
            epoch: self.epoch,
            snapshot,
            rows,
            counts,
        }
    }
}

/// The kept windows, shared by every reader connection.
#[derive(Default)]
pub struct Windows(Lru<Window>);

impl Windows {
    /// The window kept for `query` if a search of `epoch` at `snapshot` can start from it:
    /// read in the same epoch, at the same snapshot or an older one.
    pub fn get(&self, query: &str, epoch: i64, snapshot: i64) -> Option<Arc<Window>> {
        self.0
            .get(query, |w| w.epoch == epoch && w.snapshot <= snapshot)
    }

    /// Keeps `w` for `query` unless what is kept is as new or newer (a later epoch, or the
    /// same one at a later snapshot: a page read from an older cursor must not push back a
    /// window a first page has brought forward).
    pub fn put(&self, query: &str, w: Arc<Window>) {
        let at = (w.epoch, w.snapshot);
        self.0.put(query, w, |old| (old.epoch, old.snapshot) <= at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(epoch: i64, snapshot: i64, rowids: &[i64]) -> Window {
        Window {
            epoch,
            snapshot,
            rows: rowids.iter().map(|&r| (r, r as u32 + 10)).collect(),
            counts: rowids.iter().map(|&r| r as u32).collect(),
        }
    }

    #[test]
    fn forward_puts_the_newer_matches_first_and_cuts_to_the_limit() {
        let w = window(3, 100, &[90, 70, 50, 30]);
        let f = w.forward(120, vec![(115, 1), (101, 2)], vec![7, 8], 1, 5);
        assert_eq!((f.epoch, f.snapshot), (3, 120));
        assert_eq!(
            f.rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            [115, 101, 90, 70, 50]
        );
        assert_eq!(f.counts, [7, 8, 90, 70, 50]);
        // More newer matches than the limit: none of the old window is left.
        let f = w.forward(200, vec![(150, 1), (140, 1), (130, 1)], vec![1, 1, 1], 1, 2);
        assert_eq!(f.rows, [(150, 1), (140, 1)]);
        assert_eq!(f.counts, [1, 1]);
        // Nothing newer: the same window at the new snapshot.
        let f = w.forward(100, Vec::new(), Vec::new(), 1, 5);
        assert_eq!(f.rows, w.rows);
    }

    #[test]
    fn a_window_serves_its_epoch_at_its_snapshot_or_later_only() {
        let ws = Windows::default();
        ws.put("q", Arc::new(window(2, 100, &[90])));
        assert!(ws.get("q", 2, 100).is_some());
        assert!(ws.get("q", 2, 150).is_some());
        assert!(ws.get("q", 2, 99).is_none(), "an older snapshot");
        assert!(ws.get("q", 3, 150).is_none(), "a later epoch");
        assert!(ws.get("other", 2, 100).is_none());
    }

    #[test]
    fn an_older_window_does_not_replace_a_newer_one() {
        let ws = Windows::default();
        ws.put("q", Arc::new(window(2, 100, &[90])));
        ws.put("q", Arc::new(window(2, 80, &[70])));
        assert_eq!(ws.get("q", 2, 100).unwrap().snapshot, 100);
        ws.put("q", Arc::new(window(3, 50, &[40])));
        assert!(ws.get("q", 2, 100).is_none());
        assert_eq!(ws.get("q", 3, 100).unwrap().snapshot, 50);
    }
}
