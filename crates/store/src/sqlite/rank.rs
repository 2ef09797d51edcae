//! `confab_counts(messages_fts, epoch)`: an FTS5 auxiliary function that hands ranked search
//! each candidate's length and term counts straight from the full-text index.
//!
//! Ranking scores the newest 1,000 matches with BM25, which needs, per match, its length in
//! tokens and how often each query phrase occurs in it. Reading each match's text and counting
//! its tokens in Rust cost a B-tree lookup into `messages` and a pass over the text per match:
//! two thirds of a ranked search's CPU. FTS5 already holds both: the phrase's positions in the
//! doclist it is walking, and the length in its `_docsize` table. They are also, by
//! construction, the very statistics FTS5's own `bm25()` uses (search_rank.rs compares the two).
//!
//! The length is looked up in `_docsize` only when the in-memory copy (doclen.rs) lacks it:
//! such lengths are handed over too, and the search stores them there. Where the copy may hold
//! it, it is looked up after the walk, all lengths together ([`Candidates::resolve`]).
//!
//! The function puts what it read into the [`Candidates`] being gathered on the thread that
//! steps its statement ([`gather`]) and answers whether they now fill the window (1) or not
//! (0): a thousand candidates handed over that way instead of as result rows spare each a
//! result row, two column reads through rusqlite and their decoding, a tenth of a ranked
//! search's time; used as the statement's last `WHERE` term under `LIMIT 1`, the answer also
//! ends the walk at the window's last candidate with no per-row work in SQLite beyond the
//! index cursor and the call, another tenth (docs/performance.md, 2026-11-30).
//!
//! rusqlite has no binding for FTS5's extension API, so this is the C API through
//! `libsqlite3-sys`: fetch the `fts5_api` pointer with `SELECT fts5(?1)` and a bound pointer,
//! then register the function on the connection.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

use libsqlite3_sys as ffi;
use rusqlite::Connection;

use super::doclen::DocLengths;
use super::raw;
use super::search::varint;
use crate::error::{Result, StoreError};

/// What `confab_counts` gathers, row after row, on the thread that steps its statement.
#[derive(Debug, Default)]
pub struct Candidates {
    /// Scored phrases per candidate: the first `k` of the query's (excluded ones come after).
    k: usize,
    /// How many candidates make the window full: from then on the function answers 1.
    window: usize,
    /// Each candidate's rowid and length in tokens, in the order visited; [`DEFERRED`] until
    /// [`Candidates::resolve`] for a length left to the memory.
    pub rows: Vec<(i64, u32)>,
    /// `k` phrase counts per candidate, candidate after candidate.
    pub counts: Vec<u32>,
    /// The lengths that had to be read from the index (worth keeping in [`DocLengths`]).
    pub learned: Vec<(i64, u32)>,
}

/// A length not looked up yet (no message has 4 billion tokens).
const DEFERRED: u32 = u32::MAX;

/// How many candidates ahead [`Candidates::resolve`] asks for an entry: enough loads in flight
/// to cover a miss to memory.
const AHEAD: usize = 16;

thread_local! {
    static GATHERING: RefCell<Option<Candidates>> = const { RefCell::new(None) };
}

impl Candidates {
    /// Keeps the `limit` newest (highest rowid), newest first. They come so from a statement
    /// that walks the index backwards under a `LIMIT`; should SQLite ever choose to sort
    /// instead, the function runs for every match before the sort, and this puts it right.
    pub fn newest(mut self, limit: usize) -> Candidates {
        if !self.rows.is_sorted_by(|a, b| a.0 > b.0) {
            let mut order: Vec<usize> = (0..self.rows.len()).collect();
            order.sort_unstable_by(|&a, &b| self.rows[b].0.cmp(&self.rows[a].0));
            let k = self.k;
            self.counts = order
                .iter()
                .flat_map(|&i| self.counts[i * k..(i + 1) * k].iter().copied())
                .collect();
            self.rows = order.iter().map(|&i| self.rows[i]).collect();
        }
        self.rows.truncate(limit);
        self.counts.truncate(limit * self.k);
        self
    }

    /// Fills in the lengths the walk left to the memory: from `lengths` as of `epoch` where it
    /// has them, else from `read` (the index's `_docsize` row of a rowid, in the snapshot the
    /// walk read), and lists those as learned.
    ///
    /// Why after the walk: a search's candidates lie far apart in the table (a word in one
    /// message in a thousand has its newest thousand spread over all of it), so each entry is
    /// a miss to memory. Looked up as FTS5 stepped, each miss held up the walk (three quarters
    /// of `confab_counts`'s own time, a tenth of a ranked search's: perf, docs/performance.md
    /// 2026-12-03); here, a loop of independent loads started [`AHEAD`] of their use, the
    /// misses overlap.
    pub fn resolve(
        &mut self,
        lengths: &DocLengths,
        epoch: i64,
        mut read: impl FnMut(i64) -> Result<u32>,
    ) -> Result<()> {
        let rows = &mut self.rows;
        for i in 0..rows.len() {
            if let Some(&(ahead, DEFERRED)) = rows.get(i + AHEAD) {
                lengths.prefetch(ahead);
            }
            let (id, len) = &mut rows[i];
            if *len == DEFERRED {
                *len = match lengths.get(epoch, *id) {
                    Some(known) => known,
                    None => {
                        let read = read(*id)?;
                        self.learned.push((*id, read));
                        read
                    }
                };
            }
        }
        Ok(())
    }
}

/// Reads a message's `_docsize` row for [`indexed_length`].
pub const LENGTH_SQL: &str = "SELECT sz FROM messages_fts_docsize WHERE id = ?1";

/// A message's length in index tokens as FTS5 keeps it, what `xColumnSize` reads: the row
/// `sql` selects from the `_docsize` table (one SQLite varint per column; the first is the
/// one column's).
pub fn indexed_length(c: &Connection, sql: &str, rowid: i64) -> Result<u32> {
    let sz = raw::one(c, sql, [rowid], |r| Ok(r.get::<_, Vec<u8>>(0)?))?
        .ok_or_else(|| StoreError::Corrupt(format!("no index length for message row {rowid}")))?;
    Ok(u32::try_from(varint(&sz).0).map_or(DEFERRED - 1, |len| len.min(DEFERRED - 1)))
}

/// Runs `step` (which steps a statement calling `confab_counts` on this thread) with a fresh
/// [`Candidates`] of `k` scored phrases and a window of `window` candidates to gather into,
/// and answers what it gathered. The buffers start with room for the whole window (grown from
/// nothing, a thousand took some twenty `realloc`s). Whatever `step` answers, nothing stays
/// behind for the next search.
pub fn gather<T>(
    k: usize,
    window: usize,
    step: impl FnOnce() -> Result<T>,
) -> Result<(T, Candidates)> {
    let fresh = Candidates {
        k,
        window,
        rows: Vec::with_capacity(window),
        counts: Vec::with_capacity(window.saturating_mul(k)),
        learned: Vec::new(),
    };
    GATHERING.with(|g| *g.borrow_mut() = Some(fresh));
    let out = step();
    let gathered = GATHERING
        .with(|g| g.borrow_mut().take())
        .unwrap_or_default();
    Ok((out?, gathered))
}

/// Registers `confab_counts` on `conn` (a reader connection), reading lengths from `lengths`
/// first.
pub fn register(conn: &Connection, lengths: Arc<DocLengths>) -> Result<()> {
    let fail = |what: &str, rc: c_int| {
        StoreError::Config(format!(
            "could not register the confab_counts FTS5 function: {what} (SQLite code {rc})"
        ))
    };
    // SAFETY: `conn.handle()` is a live connection used only on this thread for the duration
    // of the call. The statement is prepared, stepped and finalized here. `api` outlives the
    // step that writes it (SQLite's documented protocol for `fts5_api_ptr`). The user data is
    // one strong count of `lengths`, given back by `drop_lengths` when FTS5 lets go of the
    // function (the connection closes), or right here if registering fails.
    unsafe {
        let db = conn.handle();
        let mut st = ptr::null_mut();
        let rc = ffi::sqlite3_prepare_v2(
            db,
            c"SELECT fts5(?1)".as_ptr(),
            -1,
            &mut st,
            ptr::null_mut(),
        );
        if rc != ffi::SQLITE_OK {
            return Err(fail("SELECT fts5(?1)", rc));
        }
        let mut api: *mut ffi::fts5_api = ptr::null_mut();
        ffi::sqlite3_bind_pointer(st, 1, (&raw mut api).cast(), c"fts5_api_ptr".as_ptr(), None);
        ffi::sqlite3_step(st);
        let rc = ffi::sqlite3_finalize(st);
        if rc != ffi::SQLITE_OK || api.is_null() {
            return Err(fail("no fts5_api", rc));
        }
        let Some(create) = (*api).xCreateFunction else {
            return Err(fail("no xCreateFunction", 0));
        };
        let data = Arc::into_raw(lengths).cast_mut().cast::<c_void>();
        let rc = create(
            api,
            c"confab_counts".as_ptr(),
            data,
            Some(counts),
            Some(drop_lengths),
        );
        if rc != ffi::SQLITE_OK {
            drop_lengths(data);
            return Err(fail("xCreateFunction", rc));
        }
    }
    Ok(())
}

unsafe extern "C" fn drop_lengths(data: *mut c_void) {
    // SAFETY: `data` is the pointer `register` made with `Arc::into_raw`, given back once.
    unsafe { drop(Arc::from_raw(data.cast_const().cast::<DocLengths>())) }
}

/// `confab_counts(messages_fts, epoch)`: adds the current row, its length in tokens and the
/// occurrences in it of each scored phrase to the [`Candidates`] being gathered on this thread
/// ([`gather`]), and answers 1 once they fill its window, else 0; an error where nothing is
/// being gathered. The length comes from [`DocLengths`] for `epoch` when it has it, else from
/// the index, and is then also listed as learned.
unsafe extern "C" fn counts(
    api: *const ffi::Fts5ExtensionApi,
    fts: *mut ffi::Fts5Context,
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: FTS5 calls this with a valid API table and context for the current row, and
    // `argc` valid values; every call below is one of that table's functions on that context,
    // as FTS5 documents. The user data is the `DocLengths` that `register` keeps alive for as
    // long as the function is registered.
    unsafe {
        let api = &*api;
        let (
            Some(user),
            Some(rowid),
            Some(phrases),
            Some(columns),
            Some(size),
            Some(first),
            Some(next),
        ) = (
            api.xUserData,
            api.xRowid,
            api.xPhraseCount,
            api.xColumnCount,
            api.xColumnSize,
            api.xPhraseFirst,
            api.xPhraseNext,
        )
        else {
            ffi::sqlite3_result_error(ctx, c"confab_counts: FTS5 API too old".as_ptr(), -1);
            return;
        };
        let n = usize::try_from(phrases(fts)).unwrap_or(0);
        let lengths = &*user(fts).cast_const().cast::<DocLengths>();
        let epoch = (argc >= 1).then(|| ffi::sqlite3_value_int64(*argv));
        let id = rowid(fts);
        // The scored phrases come first in a query's FTS5 expression, excluded ones after;
        // only theirs are counted, straight into the candidates being gathered.
        let one_column = columns(fts) == 1;
        let gathered = GATHERING.with(|g| match g.borrow_mut().as_mut() {
            Some(c) if c.k <= n => {
                let before = c.counts.len();
                for p in 0..c.k {
                    let mut it = ffi::Fts5PhraseIter {
                        a: ptr::null(),
                        b: ptr::null(),
                    };
                    let (mut col, mut off) = (0, 0);
                    let rc = first(fts, p as c_int, &mut it, &mut col, &mut off);
                    if rc != ffi::SQLITE_OK {
                        c.counts.truncate(before);
                        return Some(Err(rc));
                    }
                    c.counts.push(if col < 0 {
                        0
                    } else if one_column {
                        1 + positions_left(&it)
                    } else {
                        let mut tf = 0u32;
                        while col >= 0 {
                            tf += 1;
                            next(fts, &mut it, &mut col, &mut off);
                        }
                        tf
                    });
                }
                // A length the memory may hold is looked up after the walk, all together
                // ([`Candidates::resolve`]); only one it cannot is read here, while FTS5 is
                // on the row.
                let len = match epoch.filter(|&epoch| lengths.covers(epoch, id)) {
                    Some(_) => DEFERRED,
                    None => {
                        let mut len: c_int = 0;
                        let rc = size(fts, 0, &mut len);
                        if rc != ffi::SQLITE_OK {
                            c.counts.truncate(before);
                            return Some(Err(rc));
                        }
                        let len = u32::try_from(len).unwrap_or(0);
                        c.learned.push((id, len));
                        len
                    }
                };
                c.rows.push((id, len));
                Some(Ok(c.rows.len() >= c.window))
            }
            _ => None,
        });
        match gathered {
            Some(Ok(full)) => ffi::sqlite3_result_int64(ctx, i64::from(full)),
            Some(Err(rc)) => ffi::sqlite3_result_error_code(ctx, rc),
            None => {
                ffi::sqlite3_result_error(
                    ctx,
                    c"confab_counts: nothing is being gathered, or the query has too few phrases"
                        .as_ptr(),
                    -1,
                );
            }
        }
    }
}

/// How many positions follow the current one in `it`, counted on the position list's bytes
/// instead of stepping `xPhraseNext` through them (6 % of a common word's search in perf, and
/// 3–5 % faster without, docs/performance.md): each position is one varint, and a varint's
/// last byte is its only one below 0x80. Right only for a one-column table: FTS5 marks a change of column in the list (0x01
/// and the column), and never for column 0.
///
/// # Safety
/// `it` comes from `xPhraseFirst` on the current row: `a..b` lie in one buffer FTS5 keeps
/// until the cursor moves (the layout `fts5.h` declares; search_rank.rs checks the counts
/// against FTS5's own `bm25()`).
unsafe fn positions_left(it: &ffi::Fts5PhraseIter) -> u32 {
    if it.a.is_null() || it.b <= it.a {
        return 0;
    }
    // SAFETY: as the function's contract says.
    let list = unsafe { std::slice::from_raw_parts(it.a, it.b.offset_from(it.a) as usize) };
    list.iter().filter(|&&b| b < 0x80).count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fts() -> (Connection, Arc<DocLengths>) {
        let c = Connection::open_in_memory().unwrap();
        let lengths = Arc::new(DocLengths::default());
        register(&c, lengths.clone()).unwrap();
        c.execute_batch(
            "CREATE VIRTUAL TABLE f USING fts5(body, content = '', contentless_delete = 1);
             INSERT INTO f (rowid, body) VALUES (1, 'a b a c a'), (2, 'b c'), (3, 'c a b a b');",
        )
        .unwrap();
        (c, lengths)
    }

    /// Reads `f`'s lengths from the index, for [`indexed_length`].
    const DOCSIZE: &str = "SELECT sz FROM f_docsize WHERE id = ?1";

    /// Gathers with `k` scored phrases what `sql` (which calls `confab_counts(f, 5)`) visits.
    fn gathered(c: &Connection, k: usize, sql: &str) -> Result<Candidates> {
        gathered_rows(c, k, 2, sql).map(|(found, _)| found)
    }

    fn gathered_as(c: &Connection, k: usize, sql: String) -> Result<Candidates> {
        gathered(c, k, &sql)
    }

    /// The same with a window of `window` candidates, and the statement's rows alongside.
    fn gathered_rows(
        c: &Connection,
        k: usize,
        window: usize,
        sql: &str,
    ) -> Result<(Candidates, Vec<i64>)> {
        let (out, found) = gather(k, window, || {
            let mut st = c.prepare(sql)?;
            let rows = st.query_map([], |r| r.get::<_, i64>(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        Ok((found, out))
    }

    #[test]
    fn as_a_where_term_it_ends_the_walk_when_the_window_is_full() {
        let (c, _) = fts();
        let sql = "SELECT rowid FROM f WHERE f MATCH '\"a\" OR \"b a\"' \
                   AND confab_counts(f, 5) ORDER BY rowid DESC LIMIT 1";
        // A window of one: the newest match fills it, is the row, and nothing older is read.
        let (found, rows) = gathered_rows(&c, 2, 1, sql).unwrap();
        assert_eq!((found.rows, rows), (vec![(3, 5)], vec![3]));
        // A window larger than the matches: every match gathered, newest first, and no row.
        let (found, rows) = gathered_rows(&c, 2, 5, sql).unwrap();
        assert_eq!((found.rows, rows), (vec![(3, 5), (1, 5)], vec![]));
        assert_eq!(found.counts, [2, 1, 3, 1]);
    }

    #[test]
    fn counts_read_far_apart_positions_and_other_columns() {
        let (c, _) = fts();
        // Gaps of 300 and 20,000 tokens: positions two and three bytes long in the list.
        let long = format!("a {}a {}a", "x ".repeat(300), "y ".repeat(20_000));
        c.execute("INSERT INTO f (rowid, body) VALUES (9, ?1)", [&long])
            .unwrap();
        let sql = "SELECT confab_counts(f, 5) FROM f WHERE f MATCH 'a' AND rowid = 9";
        let found = gathered(&c, 1, sql).unwrap();
        assert_eq!(found.counts, [3]);
        // Its length, 20,303 tokens, read while on the row and from `_docsize` (a varint of
        // three bytes) agree.
        assert_eq!(found.rows, [(9, 20_303)]);
        assert_eq!(indexed_length(&c, DOCSIZE, 9).unwrap(), 20_303);
        assert_eq!(indexed_length(&c, DOCSIZE, 2).unwrap(), 2);
        let missing = indexed_length(&c, DOCSIZE, 99).unwrap_err();
        assert!(missing.to_string().contains("row 99"), "{missing}");
        // A table of two columns: counted by stepping through the list, column markers and all.
        c.execute_batch(
            "CREATE VIRTUAL TABLE g USING fts5(x, y);
             INSERT INTO g (rowid, x, y) VALUES (1, 'a b a', 'a c'), (2, 'b', 'a a a');",
        )
        .unwrap();
        let sql = "SELECT confab_counts(g, 5) FROM g WHERE g MATCH 'a' ORDER BY rowid";
        assert_eq!(gathered(&c, 1, sql).unwrap().counts, [3, 3]);
    }

    const BOTH: &str = "SELECT confab_counts(f, 5) FROM f \
                        WHERE f MATCH '(\"a\" OR \"b a\") NOT \"zz\"' ORDER BY rowid";

    #[test]
    fn counts_come_from_the_index_then_from_memory() {
        let (c, lengths) = fts();
        let found = gathered(&c, 2, BOTH).unwrap();
        assert_eq!(found.rows, [(1, 5), (3, 5)]);
        assert_eq!(found.counts, [3, 1, 2, 1]);
        assert_eq!(found.learned, [(1, 5), (3, 5)]);
        lengths.observe(5);
        // A length kept in memory is the one used (4 here, to tell them apart), and is not
        // learned again.
        lengths.store(5, &[(1, 4)]);
        let mut found = gathered(&c, 2, BOTH).unwrap();
        // Both in a chunk the memory holds: left to `resolve`, which finds 1 there and reads
        // 3 from the index.
        assert_eq!(found.rows, [(1, DEFERRED), (3, DEFERRED)]);
        assert_eq!(found.learned, []);
        found
            .resolve(&lengths, 5, |id| indexed_length(&c, DOCSIZE, id))
            .unwrap();
        assert_eq!(found.rows, [(1, 4), (3, 5)]);
        assert_eq!(found.learned, [(3, 5)]);
        // An epoch the memory does not hold: every length read while FTS5 is on the row.
        let found = gathered_as(&c, 2, BOTH.replace("(f, 5)", "(f, 6)")).unwrap();
        assert_eq!(found.rows, [(1, 5), (3, 5)]);
        assert_eq!(found.learned, [(1, 5), (3, 5)]);
        // Only the scored phrases are kept: the first k.
        assert_eq!(gathered(&c, 1, BOTH).unwrap().counts, [3, 2]);
        // The connection holds one count of the lengths until it closes.
        assert_eq!(Arc::strong_count(&lengths), 2);
        drop(c);
        assert_eq!(Arc::strong_count(&lengths), 1);
    }

    #[test]
    fn nothing_is_gathered_outside_gather_nor_left_behind() {
        let (c, _) = fts();
        let bare = c
            .query_row(
                "SELECT confab_counts(f, 5) FROM f WHERE f MATCH 'a'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_err();
        assert!(
            bare.to_string().contains("nothing is being gathered"),
            "{bare}"
        );
        // More scored phrases than the query holds (three, the excluded one counted) is
        // refused, not read past.
        let err = gathered(&c, 4, BOTH).unwrap_err();
        assert!(err.to_string().contains("too few phrases"), "{err}");
        // A failed statement leaves nothing for the next one.
        assert_eq!(gathered(&c, 2, BOTH).unwrap().rows.len(), 2);
        assert!(GATHERING.with(|g| g.borrow().is_none()));
    }

    #[test]
    fn the_newest_are_kept_newest_first_whatever_the_visiting_order() {
        let (c, _) = fts();
        // Backwards under a LIMIT, as ranked search asks: already in order.
        let found = gathered(
            &c,
            2,
            "SELECT count(x) FROM (SELECT confab_counts(f, 5) AS x FROM f \
             WHERE f MATCH '\"a\" OR \"b a\"' ORDER BY rowid DESC LIMIT 1)",
        )
        .unwrap();
        assert_eq!(found.rows, [(3, 5)]);
        // Visited oldest first (as a plan that sorts would): put right, counts alongside.
        let found = gathered(&c, 2, BOTH).unwrap().newest(1);
        assert_eq!(found.rows, [(3, 5)]);
        assert_eq!(found.counts, [2, 1]);
        let found = gathered(&c, 2, BOTH).unwrap().newest(5);
        assert_eq!(found.rows, [(3, 5), (1, 5)]);
        assert_eq!(found.counts, [2, 1, 3, 1]);
    }
}
