//! The newest window of every common word, kept in the file (migration 0011).
//!
//! A ranked search scores the newest `RANK_WINDOW` matches of its query (search.rs). The first
//! search of a word walks them in FTS5: for a word in a thousand messages or more, 42 % of the
//! server's CPU for that search, about 125 ns a match (perf, docs/performance.md, 2026-12-04).
//! windows.rs keeps the windows of the queries searched lately, in memory; a dashboard whose
//! users each search a different word gets little from it.
//!
//! So, when the writer is idle, a thread of its own walks, for every word of every tenant found
//! in at least [`MIN_DOCS`] messages, that word's window, exactly as a first search would (the
//! same statement, `search::walk_word`), at one snapshot of one epoch, and stores each in
//! `search_tails`. A search that finds no window in memory for a one-word query reads the
//! stored one instead and brings it forward past the matches above its snapshot, as it does a
//! window kept in memory, under the same rule (windows.rs): a window of epoch `e` at snapshot
//! `s` serves any search of epoch `e` at a snapshot of `s` or later, because below `s` the
//! index changes only by deletes and rewrites, and each of those starts a new epoch. A stored
//! window of an older epoch is never used; the next build replaces it.
//!
//! The words are FTS5's own (`messages_fts_terms`, an `fts5vocab` table): no second tokenizer
//! that could disagree with the index on what a word is. A word's key is the FTS5 query a
//! one-word search of it renders (`Query::to_fts5`), the key windows.rs uses too; should the
//! two ever differ for some word, that word's searches would only walk the index again.
//!
//! A build reads the whole vocabulary (FTS5 counts every term's messages to list them) and
//! walks each common word once: 4 s of one core for a million messages (11,674 windows). It
//! runs when the writer is idle and the messages have grown by a tenth since the last build
//! (by [`MIN_DOCS`] at least) or a new epoch has begun; after a build that took `d`, not again
//! for `10 d`, so it takes at most a tenth of a core.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use confab_core::search::{Query, Term, tenant_tag};
use rusqlite::Connection;
use uuid::Uuid;

use super::fastread::{self, Readers};
use super::windows::Window;
use super::writer::WriterHandle;
use super::{raw, search};
use crate::error::{Result, StoreError};

/// Messages a word must be in for its window to be stored: walking fewer costs some tens of
/// microseconds at most (about 125 ns a match), and most words are rarer.
pub const MIN_DOCS: i64 = 256;

/// The next build comes once the messages have grown by one part in this many since the last
/// one (a tenth; [`MIN_DOCS`] at least): between builds, a search brings a stored window
/// forward past the newer matches, which costs what walking them costs.
const GROWTH: i64 = 10;

/// Stored windows written per transaction of the writer (a few hundred KiB).
const PER_WRITE: usize = 200;

/// The key of the row that marks the build the stored windows belong to (no query renders
/// an empty string).
const MARK: &str = "";

/// Reads the window stored for `key` if a search of `epoch` at `snapshot` can start from it.
pub(super) fn get(c: &Connection, key: &str, epoch: i64, snapshot: i64) -> Result<Option<Window>> {
    let found = raw::one(
        c,
        "SELECT epoch, snapshot, data FROM search_tails WHERE key = ?1",
        [key],
        |r| {
            let (e, s) = (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?);
            if e != epoch || s > snapshot {
                return Ok(None);
            }
            // Decoded where SQLite holds it, not copied first.
            let data = r
                .get_ref(2)?
                .as_blob()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let w = decode(e, s, data);
            if w.is_none() {
                tracing::warn!(
                    key,
                    "a stored search window does not decode; walking instead"
                );
            }
            Ok(w)
        },
    )?;
    Ok(found.flatten())
}

/// A one-word window as stored: the number of rows, then per row the distance to the row
/// before (the first: to the snapshot), its length and its count, as LEB128 varints.
pub(super) fn encode(w: &Window) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + w.rows.len() * 5);
    put_varint(&mut out, w.rows.len() as u64);
    let mut above = w.snapshot;
    for (&(rowid, len), &count) in w.rows.iter().zip(&w.counts) {
        put_varint(&mut out, above.abs_diff(rowid));
        put_varint(&mut out, u64::from(len));
        put_varint(&mut out, u64::from(count));
        above = rowid;
    }
    out
}

/// [`encode`]'s window back, or None if `data` is not one (rows out of order, cut short).
pub(super) fn decode(epoch: i64, snapshot: i64, data: &[u8]) -> Option<Window> {
    let mut at = 0;
    let n = usize::try_from(take(data, &mut at)?).ok()?;
    if n > data.len() {
        return None;
    }
    let mut rows = Vec::with_capacity(n);
    let mut counts = Vec::with_capacity(n);
    let mut above = snapshot;
    for i in 0..n {
        let gap = i64::try_from(take(data, &mut at)?).ok()?;
        // Rows run newest first, each below the one before (the first at most the snapshot).
        if gap == 0 && i > 0 {
            return None;
        }
        let rowid = above.checked_sub(gap)?;
        let len = u32::try_from(take(data, &mut at)?).ok()?;
        let count = u32::try_from(take(data, &mut at)?).ok()?;
        rows.push((rowid, len));
        counts.push(count);
        above = rowid;
    }
    (at == data.len()).then_some(Window {
        epoch,
        snapshot,
        rows,
        counts,
    })
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The LEB128 varint at `at`, moving `at` past it; None if cut short or over 64 bits. Most
/// are one byte (lengths, counts, gaps in a common word's window): that case is inlined into
/// the decoder, the rest is not (a call per varint was half of decoding a window: 5.5 against
/// 3.1 µs for a thousand rows, docs/performance.md, forty-first session).
#[inline(always)]
fn take(data: &[u8], at: &mut usize) -> Option<u64> {
    let b = *data.get(*at)?;
    *at += 1;
    if b < 0x80 {
        return Some(u64::from(b));
    }
    take_long(data, at, b)
}

/// [`take`] of a varint longer than a byte, whose first byte `b` is read already.
#[inline(never)]
fn take_long(data: &[u8], at: &mut usize, b: u8) -> Option<u64> {
    let mut v = u64::from(b & 0x7f);
    let mut shift = 7;
    while shift < 64 {
        let b = *data.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
        shift += 7;
    }
    None
}

/// Where the stored windows stand and where the index is: whether a build is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub epoch: i64,
    pub snapshot: i64,
}

impl Mark {
    /// A build at `now` is due after this one: another epoch, or grown enough.
    fn stale(self, now: Mark) -> bool {
        self.epoch != now.epoch
            || now.snapshot - self.snapshot >= (self.snapshot / GROWTH).max(MIN_DOCS)
    }
}

/// Builds, unless the stored windows are current (`force` builds anyway): reads every common
/// word's window in one read transaction on `c` and stores them through `writer` as they come,
/// [`PER_WRITE`] a transaction (so a build holds no more than that in memory), then the build's
/// mark, removing every window of an earlier build. Answers how many it stored, if it built.
/// `rt` waits for the writer's answers (this runs on a thread of its own, not a runtime's).
pub(super) fn build(
    c: &Connection,
    readers: &Readers,
    writer: &WriterHandle,
    rt: &tokio::runtime::Handle,
    force: bool,
) -> Result<Option<usize>> {
    fastread::snapshot(c, |c| {
        let epoch = search::search_epoch(c)?;
        let now = Mark {
            epoch,
            snapshot: search::max_rowid(c)?,
        };
        let stored = raw::one(
            c,
            "SELECT epoch, snapshot FROM search_tails WHERE key = ?1",
            [MARK],
            |r| {
                Ok(Mark {
                    epoch: r.get(0)?,
                    snapshot: r.get(1)?,
                })
            },
        )?;
        // An empty store has no words; a stored build that is current needs none.
        if !force && (now.snapshot == 0 || stored.is_some_and(|s| !s.stale(now))) {
            return Ok(None);
        }
        readers.lengths.observe(epoch);
        let tenants: Vec<Uuid> = c
            .prepare("SELECT id FROM tenants")?
            .query_map([], |r| raw::uuid(r, 0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut terms = c.prepare(
            "SELECT term FROM messages_fts_terms WHERE term > ?1 AND term < ?2 AND doc >= ?3",
        )?;
        let mut part = Vec::with_capacity(PER_WRITE);
        let mut n = 0;
        for tenant in tenants {
            let tag = tenant_tag(tenant.as_bytes());
            // A tenant's terms all start with its tag, which is `t` and hex digits: they sort
            // between the tag and the tag followed by `~`, after every letter and digit.
            let words: Vec<String> = terms
                .query_map(rusqlite::params![tag, format!("{tag}~"), MIN_DOCS], |r| {
                    r.get::<_, String>(0)
                })?
                .collect::<rusqlite::Result<_>>()?;
            for term in words {
                let Some(word) = term.strip_prefix(tag.as_str()) else {
                    continue;
                };
                let query = Query {
                    groups: vec![vec![Term {
                        tokens: vec![word.to_owned()],
                        prefix: false,
                    }]],
                    excluded: Vec::new(),
                };
                let key = query.to_fts5(&tag);
                let w = search::walk_word(
                    c,
                    &readers.lengths,
                    crate::types::TenantId(tenant),
                    query,
                    epoch,
                    now.snapshot,
                )?;
                part.push((key, encode(&w)));
                n += 1;
                if part.len() == PER_WRITE {
                    rt.block_on(put(writer, now, std::mem::take(&mut part)))?;
                }
            }
        }
        part.push((MARK.to_owned(), Vec::new()));
        rt.block_on(put(writer, now, part))?;
        rt.block_on(writer.exec(move |c, _| {
            Box::pin(async move {
                sqlx::query("DELETE FROM search_tails WHERE epoch <> ?1 OR snapshot <> ?2")
                    .bind(now.epoch)
                    .bind(now.snapshot)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        }))?;
        Ok(Some(n))
    })
}

/// Stores `windows` (key and data) as of `mark`, in one transaction of the writer.
async fn put(writer: &WriterHandle, mark: Mark, windows: Vec<(String, Vec<u8>)>) -> Result<()> {
    writer
        .exec(move |c, _| {
            Box::pin(async move {
                for (key, data) in windows {
                    sqlx::query(
                        "INSERT INTO search_tails (key, epoch, snapshot, data) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO UPDATE SET \
                         epoch = excluded.epoch, snapshot = excluded.snapshot, data = excluded.data",
                    )
                    .bind(key)
                    .bind(mark.epoch)
                    .bind(mark.snapshot)
                    .bind(data)
                    .execute(&mut *c)
                    .await?;
                }
                Ok(())
            })
        })
        .await
}

/// The writer rings when it has been idle for a while (merge.rs); the builder's thread waits
/// for it.
#[derive(Default)]
pub struct Bell {
    rung: Mutex<bool>,
    cond: Condvar,
}

impl Bell {
    pub fn ring(&self) {
        *self.rung.lock().expect("tails bell lock") = true;
        self.cond.notify_one();
    }

    /// Waits up to `most` for a ring; whether there was one.
    fn wait(&self, most: Duration) -> bool {
        let rung = self.rung.lock().expect("tails bell lock");
        let (mut rung, _) = self
            .cond
            .wait_timeout_while(rung, most, |r| !*r)
            .expect("tails bell lock");
        std::mem::replace(&mut *rung, false)
    }
}

/// When the builder's thread checks for a build: at a ring, unless it is resting after one
/// (a build that took `d` rests `10 d`). A ring heard while resting is kept for when the rest
/// ends: no other may come until something is written again.
#[derive(Default)]
struct Turns {
    rest_until: Option<Instant>,
    rung: bool,
}

impl Turns {
    /// After a wait that was rung or not, at `now`: whether to check for a build now.
    fn heard(&mut self, rung: bool, now: Instant) -> bool {
        self.rung |= rung;
        if !self.rung || self.rest_until.is_some_and(|t| now < t) {
            return false;
        }
        self.rung = false;
        true
    }

    fn rest(&mut self, until: Instant) {
        self.rest_until = Some(until);
    }
}

/// Starts the builder's thread: at each ring, a build if one is due. It ends once the writer
/// has gone (the store closed).
pub(super) fn start(readers: Arc<Readers>, writer: WriterHandle, bell: Arc<Bell>) {
    let spawned = std::thread::Builder::new()
        .name("confab-tails".into())
        .spawn(move || {
            // Only to wait for the writer's answers.
            let rt = match tokio::runtime::Builder::new_current_thread().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "could not start the search windows' thread");
                    return;
                }
            };
            let mut turns = Turns::default();
            while writer.is_open() {
                if !turns.heard(bell.wait(Duration::from_secs(1)), Instant::now()) {
                    continue;
                }
                let started = Instant::now();
                let built = readers
                    .own()
                    .and_then(|c| build(&c, &readers, &writer, rt.handle(), false));
                match built {
                    Ok(Some(n)) => {
                        let took = started.elapsed();
                        tracing::info!(
                            windows = n,
                            seconds = took.as_secs_f64(),
                            "stored the search windows of the common words"
                        );
                        metrics::counter!("confab_store_search_tail_builds_total").increment(1);
                        turns.rest(Instant::now() + took * 10);
                    }
                    Ok(None) => {}
                    // Only a speed-up is lost: searches walk the index as before.
                    Err(e) => {
                        if writer.is_open() {
                            tracing::warn!(error = %e, "storing the search windows of the common words");
                        }
                        turns.rest(Instant::now() + Duration::from_secs(60));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the search windows' thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_decodes_to_what_was_encoded() {
        let w = Window {
            epoch: 3,
            snapshot: 5_000_000,
            rows: vec![(5_000_000, 12), (4_999_000, 1), (17, 70_000), (1, 0)],
            counts: vec![1, 3, 200, 1],
        };
        let back = decode(3, 5_000_000, &encode(&w)).unwrap();
        assert_eq!((back.rows, back.counts), (w.rows, w.counts));
        let empty = Window {
            epoch: 0,
            snapshot: 9,
            rows: Vec::new(),
            counts: Vec::new(),
        };
        assert!(decode(0, 9, &encode(&empty)).unwrap().rows.is_empty());
    }

    #[test]
    fn varints_of_every_width_come_back() {
        let values = [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        let mut data = Vec::new();
        for v in values {
            put_varint(&mut data, v);
        }
        let mut at = 0;
        for v in values {
            assert_eq!(take(&data, &mut at), Some(v));
        }
        assert_eq!(at, data.len());
        assert_eq!(take(&data, &mut at), None, "nothing left");
        // Eleven bytes with the high bit set: more than 64 bits.
        assert_eq!(take(&[0xff; 11], &mut 0), None);
    }

    #[test]
    fn what_is_not_a_window_does_not_decode() {
        let w = Window {
            epoch: 1,
            snapshot: 100,
            rows: vec![(90, 5), (80, 6)],
            counts: vec![1, 2],
        };
        let data = encode(&w);
        assert!(
            decode(1, 100, &data[..data.len() - 1]).is_none(),
            "cut short"
        );
        let mut longer = data.clone();
        longer.push(0);
        assert!(decode(1, 100, &longer).is_none(), "bytes left over");
        // Two rows with the same rowid.
        let mut twice = Vec::new();
        for v in [2, 10, 5, 1, 0, 6, 2] {
            put_varint(&mut twice, v);
        }
        assert!(decode(1, 100, &twice).is_none());
    }

    #[test]
    fn a_ring_heard_while_resting_is_answered_when_the_rest_ends() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut turns = Turns::default();
        assert!(!turns.heard(false, at(0)), "no ring");
        assert!(turns.heard(true, at(1)));
        assert!(!turns.heard(false, at(2)), "answered once");
        turns.rest(at(10));
        assert!(!turns.heard(true, at(3)), "resting");
        assert!(!turns.heard(false, at(9)));
        assert!(turns.heard(false, at(10)), "the ring kept");
        assert!(!turns.heard(false, at(11)));
    }

    #[test]
    fn a_build_is_due_for_a_new_epoch_or_enough_growth() {
        let m = Mark {
            epoch: 2,
            snapshot: 1_000_000,
        };
        let at = |epoch, snapshot| Mark { epoch, snapshot };
        assert!(!m.stale(m));
        assert!(m.stale(at(3, 1_000_000)));
        assert!(!m.stale(at(2, 1_099_999)), "less than a tenth");
        assert!(m.stale(at(2, 1_100_000)));
        let small = at(0, 100);
        assert!(!small.stale(at(0, 355)));
        assert!(small.stale(at(0, 356)), "at least MIN_DOCS rows");
    }
}
