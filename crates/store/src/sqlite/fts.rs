//! The `confab_fts(tenant_id, content)` SQL function the full-text triggers call: it turns a
//! message into the index's tokens with the core's rules (folding, CJK per character, tenant
//! tag; see `confab_core::search`). FTS5 has no hook for a Rust tokenizer short of its C API,
//! so the text is pre-tokenized by this function and the index only splits on spaces.
//!
//! It is registered on the writer connection (the only one that writes messages) before the
//! migrations run, because the migration backfills the index with it. The writer calls it once
//! per transaction for the batch's new messages (`writer::INDEX_NEW_MESSAGES`); the update
//! trigger calls it too.

use std::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

use libsqlite3_sys as ffi;
use sqlx::SqliteConnection;

use crate::error::{Result, StoreError};

/// Registers `confab_fts` on `conn`.
pub async fn register(conn: &mut SqliteConnection) -> Result<()> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is a live connection handle held locked for the duration of the call; the
    // function pointer is a plain `extern "C"` fn without user data.
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            c"confab_fts".as_ptr(),
            2,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS,
            std::ptr::null_mut(),
            Some(confab_fts),
            None,
            None,
            None,
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(StoreError::Config(format!(
            "could not register the confab_fts SQL function (SQLite code {rc})"
        )));
    }
    Ok(())
}

/// Reads a value as bytes (blob or text); empty for NULL.
///
/// # Safety
/// `v` must be a valid value of the current call.
unsafe fn bytes<'a>(v: *mut ffi::sqlite3_value, text: bool) -> &'a [u8] {
    // SAFETY: per SQLite, the pointer is valid until the value changes, which it does not
    // during this call; the length is read after the pointer, as SQLite documents.
    unsafe {
        let p = if text {
            ffi::sqlite3_value_text(v).cast::<u8>()
        } else {
            ffi::sqlite3_value_blob(v).cast::<u8>()
        };
        let n = ffi::sqlite3_value_bytes(v);
        if p.is_null() || n <= 0 {
            &[]
        } else {
            std::slice::from_raw_parts(p, n as usize)
        }
    }
}

unsafe extern "C" fn confab_fts(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: SQLite passes `argc` valid values; the function was registered with 2.
    unsafe {
        if argc != 2 {
            ffi::sqlite3_result_error(ctx, c"confab_fts takes 2 arguments".as_ptr(), -1);
            return;
        }
        let tenant = bytes(*argv, false);
        let text = String::from_utf8_lossy(bytes(*argv.add(1), true));
        let out = catch_unwind(AssertUnwindSafe(|| {
            confab_core::search::index_text(&confab_core::search::tenant_tag(tenant), &text)
        }));
        match out {
            Ok(s) => ffi::sqlite3_result_text(
                ctx,
                s.as_ptr().cast::<c_char>(),
                s.len() as c_int,
                ffi::SQLITE_TRANSIENT(),
            ),
            Err(_) => ffi::sqlite3_result_error(ctx, c"confab_fts panicked".as_ptr(), -1),
        }
    }
}
