//! `confab_counts(messages_fts)`: an FTS5 auxiliary function that hands ranked search each
//! candidate's length and term counts straight from the full-text index.
//!
//! Ranking scores the newest 1,000 matches with BM25, which needs, per match, its length in
//! tokens and how often each query phrase occurs in it. Reading each match's text and counting
//! its tokens in Rust cost a B-tree lookup into `messages` and a pass over the text per match:
//! two thirds of a ranked search's CPU. FTS5 already holds both: the phrase's positions in the
//! doclist it is walking, and the length in its `_docsize` table. They are also, by
//! construction, the very statistics FTS5's own `bm25()` uses (search_rank.rs compares the two).
//!
//! The length is looked up in `_docsize` only when the in-memory copy (doclen.rs) lacks it:
//! `confab_counts(messages_fts, epoch)` flags such a length, and the search stores it there.
//!
//! rusqlite has no binding for FTS5's extension API, so this is the C API through
//! `libsqlite3-sys`: fetch the `fts5_api` pointer with `SELECT fts5(?1)` and a bound pointer,
//! then register the function on the connection.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

use libsqlite3_sys as ffi;
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::doclen::DocLengths;
use crate::error::{Result, StoreError};

/// Set in the length word when the length came from the index, not from [`DocLengths`].
const FROM_INDEX: u32 = 1 << 31;

/// Phrases a query can hold (`confab_core::search::MAX_TERMS`), with room to spare.
const MAX_PHRASES: usize = 63;

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

/// `confab_counts(messages_fts, epoch)`: the current row's length in tokens, then each
/// phrase's occurrences in it, as little-endian `u32`s (`4 × (1 + phrases)` bytes), or, for a
/// query of one phrase, as one integer (length in the high half, count in the low): no blob to
/// allocate for each of a thousand rows. The length comes from [`DocLengths`] for `epoch` when
/// it has it, else from the index, flagged so the caller stores it. See [`decode`].
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
    // long as the function is registered. The result is copied by SQLite (`SQLITE_TRANSIENT`)
    // before `out` goes.
    unsafe {
        let api = &*api;
        let (Some(user), Some(rowid), Some(phrases), Some(size), Some(first), Some(next)) = (
            api.xUserData,
            api.xRowid,
            api.xPhraseCount,
            api.xColumnSize,
            api.xPhraseFirst,
            api.xPhraseNext,
        ) else {
            ffi::sqlite3_result_error(ctx, c"confab_counts: FTS5 API too old".as_ptr(), -1);
            return;
        };
        let n = usize::try_from(phrases(fts)).unwrap_or(0);
        if n > MAX_PHRASES {
            ffi::sqlite3_result_error(ctx, c"confab_counts: too many phrases".as_ptr(), -1);
            return;
        }
        let mut out = [0u8; 4 * (1 + MAX_PHRASES)];
        let lengths = &*user(fts).cast_const().cast::<DocLengths>();
        let known = (argc >= 1)
            .then(|| ffi::sqlite3_value_int64(*argv))
            .and_then(|epoch| lengths.get(epoch, rowid(fts)));
        let len = match known {
            Some(len) => len,
            None => {
                let mut len: c_int = 0;
                let rc = size(fts, 0, &mut len);
                if rc != ffi::SQLITE_OK {
                    ffi::sqlite3_result_error_code(ctx, rc);
                    return;
                }
                (u32::try_from(len).unwrap_or(0) & !FROM_INDEX) | FROM_INDEX
            }
        };
        out[..4].copy_from_slice(&len.to_le_bytes());
        let mut tf_of = [0u32; MAX_PHRASES];
        for p in 0..n {
            let mut it = ffi::Fts5PhraseIter {
                a: ptr::null(),
                b: ptr::null(),
            };
            let (mut col, mut off) = (0, 0);
            let rc = first(fts, p as c_int, &mut it, &mut col, &mut off);
            if rc != ffi::SQLITE_OK {
                ffi::sqlite3_result_error_code(ctx, rc);
                return;
            }
            let mut tf = 0u32;
            while col >= 0 {
                tf += 1;
                next(fts, &mut it, &mut col, &mut off);
            }
            tf_of[p] = tf;
            out[4 * (1 + p)..4 * (2 + p)].copy_from_slice(&tf.to_le_bytes());
        }
        if n == 1 {
            let packed = (u64::from(len) << 32) | u64::from(tf_of[0]);
            ffi::sqlite3_result_int64(ctx, packed as i64);
            return;
        }
        ffi::sqlite3_result_blob(
            ctx,
            out.as_ptr().cast(),
            (4 * (1 + n)) as c_int,
            ffi::SQLITE_TRANSIENT(),
        );
    }
}

/// A candidate's length as `confab_counts` gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Length {
    pub tokens: u32,
    /// Read from the index: worth keeping in [`DocLengths`].
    pub from_index: bool,
}

/// Reads what `confab_counts` gave: the length, and the first `tf.len()` phrase counts into `tf`
/// (the scored terms come first in a query's FTS5 expression; excluded ones after them).
/// `None` when it holds fewer than that.
pub fn decode(v: ValueRef<'_>, tf: &mut [u32]) -> Option<Length> {
    let len = match v {
        ValueRef::Integer(packed) => {
            let packed = packed as u64;
            match tf {
                [] => {}
                [one] => *one = packed as u32,
                _ => return None,
            }
            (packed >> 32) as u32
        }
        ValueRef::Blob(blob) => {
            let word = |i: usize| {
                blob.get(4 * i..4 * (i + 1))
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            for (i, t) in tf.iter_mut().enumerate() {
                *t = word(1 + i)?;
            }
            word(0)?
        }
        _ => return None,
    };
    Some(Length {
        tokens: len & !FROM_INDEX,
        from_index: len & FROM_INDEX != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(tokens: u32, from_index: bool) -> Length {
        Length { tokens, from_index }
    }

    #[test]
    fn decodes_what_the_function_writes() {
        let blob: Vec<u8> = [7u32 | FROM_INDEX, 2, 0, 5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut tf = [0; 2];
        assert_eq!(decode(ValueRef::Blob(&blob), &mut tf), Some(len(7, true)));
        assert_eq!(tf, [2, 0]);
        assert_eq!(decode(ValueRef::Blob(&blob[..8]), &mut tf), None);
        assert_eq!(
            decode(ValueRef::Blob(&blob[..4]), &mut []),
            Some(len(7, true))
        );
        let packed = ((u64::from(9 | FROM_INDEX) << 32) | 4) as i64;
        let mut one = [0];
        assert_eq!(
            decode(ValueRef::Integer(packed), &mut one),
            Some(len(9, true))
        );
        assert_eq!(one, [4]);
        assert_eq!(decode(ValueRef::Integer(9 << 32), &mut tf), None);
        assert_eq!(decode(ValueRef::Null, &mut one), None);
    }

    #[test]
    fn counts_come_from_the_index_then_from_memory() {
        let c = Connection::open_in_memory().unwrap();
        let lengths = Arc::new(DocLengths::default());
        register(&c, lengths.clone()).unwrap();
        c.execute_batch(
            "CREATE VIRTUAL TABLE f USING fts5(body, content = '', contentless_delete = 1);
             INSERT INTO f (rowid, body) VALUES (1, 'a b a c a'), (2, 'b c'), (3, 'c a b a b');",
        )
        .unwrap();
        let run = || -> Vec<(i64, Length, [u32; 2])> {
            let mut st = c
                .prepare(
                    "SELECT rowid, confab_counts(f, 5) FROM f \
                     WHERE f MATCH '(\"a\" OR \"b a\") NOT \"zz\"' ORDER BY rowid",
                )
                .unwrap();
            let mut rows = st.query([]).unwrap();
            let mut out = Vec::new();
            let mut tf = [0; 2];
            while let Some(r) = rows.next().unwrap() {
                let len = decode(r.get_ref(1).unwrap(), &mut tf).unwrap();
                out.push((r.get(0).unwrap(), len, tf));
            }
            out
        };
        assert_eq!(
            run(),
            [(1, len(5, true), [3, 1]), (3, len(5, true), [2, 1])]
        );
        lengths.observe(5);
        // A length kept in memory is the one used (4 here, to tell them apart).
        lengths.store(5, &[(1, 4)]);
        assert_eq!(
            run(),
            [(1, len(4, false), [3, 1]), (3, len(5, true), [2, 1])]
        );
        // The connection holds one count of the lengths until it closes.
        assert_eq!(Arc::strong_count(&lengths), 2);
        drop(c);
        assert_eq!(Arc::strong_count(&lengths), 1);
    }
}
