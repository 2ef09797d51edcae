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
//! only of that epoch; entries of an older epoch are left as they are and emptied chunk by
//! chunk when lengths of the new one are stored. Inserts do not bump it: a new rowid has no
//! entry yet, and a reused one went with its delete.
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
    /// The newest epoch a search has seen: only lengths read in it are stored.
    epoch: AtomicI64,
    chunks: Box<[OnceLock<Chunk>]>,
    /// Held to move `epoch` and to store entries, so a store never lands in a newer epoch than
    /// the snapshot it was read in.
    write: Mutex<()>,
}

/// The entries of `CHUNK` rowids and the epoch they belong to. A chunk of an older epoch reads
/// as empty, and is emptied by the first store of the new one: a new epoch costs nothing until
/// then, however many messages the cache holds.
struct Chunk {
    epoch: AtomicI64,
    /// Length + 1, or 0 for none.
    entries: Box<[AtomicU16]>,
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
    /// Called by a search with its snapshot's epoch before it reads: from a newer epoch on,
    /// the entries of older ones are not used, and stores of older snapshots are dropped.
    pub fn observe(&self, epoch: i64) {
        if self.epoch.load(Ordering::Acquire) < epoch {
            let _w = self.write.lock().expect("doclen lock");
            self.epoch.fetch_max(epoch, Ordering::AcqRel);
        }
    }

    /// The length of `rowid` as of `epoch`, if known.
    pub fn get(&self, epoch: i64, rowid: i64) -> Option<u32> {
        let (c, i) = slot(rowid)?;
        let chunk = self.chunks[c].get()?;
        if chunk.epoch.load(Ordering::Acquire) != epoch {
            return None;
        }
        let v = chunk.entries[i].load(Ordering::Acquire);
        // Checked again after the read: had the chunk been emptied and refilled for a later
        // epoch meanwhile, its epoch would have moved first.
        if v == 0 || chunk.epoch.load(Ordering::Acquire) != epoch {
            return None;
        }
        Some(u32::from(v) - 1)
    }

    /// Whether `rowid`'s entry is in a chunk of `epoch`: whether [`DocLengths::get`] may know
    /// it. Reads only the chunk's header, which every candidate of a search shares.
    pub fn covers(&self, epoch: i64, rowid: i64) -> bool {
        slot(rowid)
            .and_then(|(c, _)| self.chunks[c].get())
            .is_some_and(|chunk| chunk.epoch.load(Ordering::Acquire) == epoch)
    }

    /// Asks the CPU to start loading `rowid`'s entry, so that a [`DocLengths::get`] of it a
    /// little later finds it in cache.
    pub fn prefetch(&self, rowid: i64) {
        let Some((c, i)) = slot(rowid) else { return };
        let Some(chunk) = self.chunks[c].get() else {
            return;
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint that never faults, and the address is an element of a
        // live slice besides.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(chunk.entries.as_ptr().add(i).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (chunk, i);
    }

    /// Stores lengths read in a snapshot of `epoch`; dropped unless it is the newest epoch seen.
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
            let chunk = self.chunks[c].get_or_init(|| Chunk {
                epoch: AtomicI64::new(epoch),
                entries: (0..CHUNK).map(|_| AtomicU16::new(0)).collect(),
            });
            if chunk.epoch.load(Ordering::Acquire) != epoch {
                // Marked as of no epoch while it is emptied, so no reader takes a half-emptied
                // chunk for either epoch.
                chunk.epoch.store(i64::MIN, Ordering::Release);
                for e in chunk.entries.iter() {
                    e.store(0, Ordering::Relaxed);
                }
                chunk.epoch.store(epoch, Ordering::Release);
            }
            chunk.entries[i].store(v, Ordering::Release);
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
        // A newer epoch does not use them (a search still reading the old snapshot may), and
        // stores of the old one are dropped from then on.
        d.observe(4);
        assert_eq!(d.get(4, 10), None);
        assert_eq!(d.get(3, 10), Some(7));
        d.store(3, &[(10, 9)]);
        assert_eq!(d.get(4, 10), None);
        // The first store of the new epoch empties the chunk it lands in, and only that one.
        d.store(4, &[(12, 9)]);
        assert_eq!(d.get(4, 12), Some(9));
        assert_eq!(d.get(4, 10), None, "emptied with its chunk");
        assert_eq!(d.get(3, 10), None);
        assert_eq!(d.get(3, 70_000), Some(0), "another chunk, not touched yet");
        // Seeing an older epoch later changes nothing.
        d.observe(2);
        assert_eq!(d.get(4, 12), Some(9));
    }
}
