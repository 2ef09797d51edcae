//! Messages' lengths in index tokens, kept in memory for ranked search (rank.rs).
//!
//! BM25 needs each candidate's length. FTS5 keeps it in its `_docsize` table, and reading it
//! is one B-tree lookup per candidate: 40 % of a ranked search's CPU once the text was no longer
//! read (perf, 1,000 candidates). Here it is two bytes per message, indexed by rowid, shared by
//! every reader connection: the way search engines keep their length norms in memory.
//!
//! A length never changes while its row lives, so an entry is only wrong once its rowid is
//! deleted (and perhaps reused) or its content is rewritten. Every such change bumps
//! `search_epoch.n` in the same transaction (migration 0010, so it holds for any
//! process writing the file). A search reads the epoch in its own snapshot and uses entries
//! only of that epoch; the first search that sees a newer epoch empties the cache. Inserts do
//! not bump it: a new rowid has no entry yet, and a reused one was emptied by its delete.
//!
//! Entries are filled by searches: a length the index had to be asked for is stored when the
//! search ends. The cache covers rowids below [`CAPACITY`] (128 MiB at most, 2 MiB per million
//! messages, allocated as they come); lengths of larger rowids, or of 65,535 tokens and more,
//! are read from the index every time.

use std::sync::atomic::{AtomicI64, AtomicU16, Ordering};
use std::sync::{Mutex, OnceLock};

/// Rowids per chunk (128 KiB of entries).
const CHUNK: usize = 1 << 16;
/// Chunks at most.
const CHUNKS: usize = 1 << 10;
/// Rowids the cache covers: `0..CAPACITY`.
const CAPACITY: usize = CHUNK * CHUNKS;

pub struct DocLengths {
    /// The epoch the entries belong to.
    epoch: AtomicI64,
    /// Entry: length + 1, or 0 for none.
    chunks: Box<[OnceLock<Box<[AtomicU16]>>]>,
    /// Held to change the epoch and to store entries, so a store never lands in a newer epoch
    /// than the snapshot it was read in.
    write: Mutex<()>,
}

impl Default for DocLengths {
    fn default() -> Self {
        DocLengths {
            epoch: AtomicI64::new(-1),
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            write: Mutex::new(()),
        }
    }
}

fn slot(rowid: i64) -> Option<(usize, usize)> {
    let r = usize::try_from(rowid).ok().filter(|&r| r < CAPACITY)?;
    Some((r / CHUNK, r % CHUNK))
}

impl DocLengths {
    /// Called by a search with its snapshot's epoch before it reads: a newer epoch than the
    /// entries' empties them.
    pub fn observe(&self, epoch: i64) {
        if self.epoch.load(Ordering::Acquire) >= epoch {
            return;
        }
        let _w = self.write.lock().expect("doclen lock");
        if self.epoch.load(Ordering::Acquire) >= epoch {
            return;
        }
        // Emptied before the epoch moves: a reader that sees the new epoch sees empty entries
        // or entries stored for it.
        for chunk in self.chunks.iter().filter_map(OnceLock::get) {
            for e in chunk.iter() {
                e.store(0, Ordering::Relaxed);
            }
        }
        self.epoch.store(epoch, Ordering::Release);
    }

    /// The length of `rowid` as of `epoch`, if known.
    pub fn get(&self, epoch: i64, rowid: i64) -> Option<u32> {
        let (c, i) = slot(rowid)?;
        let chunk = self.chunks[c].get()?;
        if self.epoch.load(Ordering::Acquire) != epoch {
            return None;
        }
        let v = chunk[i].load(Ordering::Acquire);
        // Checked again after the read: an entry stored for a later epoch would have moved it.
        if v == 0 || self.epoch.load(Ordering::Acquire) != epoch {
            return None;
        }
        Some(u32::from(v) - 1)
    }

    /// Stores lengths read in a snapshot of `epoch`; dropped if the entries are of another.
    pub fn store(&self, epoch: i64, lengths: &[(i64, u32)]) {
        if lengths.is_empty() {
            return;
        }
        let _w = self.write.lock().expect("doclen lock");
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        for &(rowid, len) in lengths {
            let (Some((c, i)), Ok(v)) = (slot(rowid), u16::try_from(len + 1)) else {
                continue;
            };
            let chunk =
                self.chunks[c].get_or_init(|| (0..CHUNK).map(|_| AtomicU16::new(0)).collect());
            chunk[i].store(v, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_within_their_epoch() {
        let d = DocLengths::default();
        d.observe(3);
        assert_eq!(d.get(3, 10), None);
        d.store(
            3,
            &[
                (10, 7),
                (70_000, 0),
                (CAPACITY as i64, 5),
                (-1, 5),
                (11, 70_000),
            ],
        );
        assert_eq!(d.get(3, 10), Some(7));
        assert_eq!(d.get(3, 70_000), Some(0));
        assert_eq!(d.get(3, CAPACITY as i64), None, "beyond the capacity");
        assert_eq!(d.get(3, 11), None, "too long to keep");
        // An older snapshot neither reads nor writes the newer entries.
        assert_eq!(d.get(2, 10), None);
        d.store(2, &[(12, 1)]);
        assert_eq!(d.get(3, 12), None);
        // A newer epoch empties them; stores of the old one are dropped from then on.
        d.observe(4);
        assert_eq!(d.get(4, 10), None);
        assert_eq!(d.get(3, 10), None);
        d.store(3, &[(10, 9)]);
        assert_eq!(d.get(4, 10), None);
        d.store(4, &[(10, 9)]);
        assert_eq!(d.get(4, 10), Some(9));
        // Seeing an older epoch later changes nothing.
        d.observe(2);
        assert_eq!(d.get(4, 10), Some(9));
    }
}
