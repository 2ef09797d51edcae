//! A VFS over SQLite's own `unix` one that hands a commit's WAL frames to the kernel in one
//! `pwrite` instead of two per page.
//!
//! Why: SQLite writes each WAL frame as two calls, its 24-byte header and then the page
//! (`walWriteOneFrame`). A group commit of 31 appends to 31 conversations dirties about 70
//! pages, so the writer made about 140 `pwrite` calls per commit before its fsync, on the one
//! thread every write waits for (docs/performance.md).
//!
//! How: the WAL file's writes are gathered while each one continues the previous one, and
//! handed to the `unix` file as one write before anything else touches the file: a read, a
//! sync, a size, a truncation, a file control, a write elsewhere, the close. So the bytes
//! reach the kernel in the order SQLite wrote them, before the fsync that makes a commit
//! durable, and before the commit is published to readers (which SQLite does only after that
//! fsync, in the shared-memory index). A crash before the fsync loses the gathered bytes, which
//! is what it may lose anyway: nothing was acknowledged. Every other file (the database, its
//! shared memory, temporary files) is the `unix` VFS's own file, untouched.

use std::ffi::{CStr, c_int, c_void};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// The VFS's name, as given to connections (`?vfs=` / `SqliteConnectOptions::vfs`).
pub(crate) const NAME: &CStr = c"confab-wal";

/// Gathered bytes beyond which a write is passed on at once: a large transaction (an import)
/// never holds more than this in memory per file.
const MAX_GATHERED: usize = 1 << 20;

/// The most one call to the `unix` file's xWrite may carry: it writes at most 0x1ffff bytes per
/// call and reports the rest as a full disk (`seekAndWriteFd`). So gathered bytes go on in
/// pieces of this size: a commit of 60 pages is two writes instead of 120.
const MAX_WRITE: usize = 0x1f000;

/// The `unix` VFS, as found at registration.
struct Base(*mut ffi::sqlite3_vfs);
// SAFETY: SQLite's VFS objects are immutable after registration and safe to use from any
// thread; the pointer is written once and only read after.
unsafe impl Send for Base {}
unsafe impl Sync for Base {}

/// The `unix` VFS once ours is registered, or why registering failed.
static REGISTERED: OnceLock<std::result::Result<Base, c_int>> = OnceLock::new();

/// An open WAL file: the `sqlite3_file` SQLite sees, then the `unix` file it wraps.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    /// The `unix` file, in the same allocation right after this struct.
    inner: *mut ffi::sqlite3_file,
    /// Bytes written by SQLite and not yet passed on, to go at `at`.
    gathered: Vec<u8>,
    at: i64,
}

/// Where the wrapped file starts inside the allocation SQLite makes for one file.
const INNER_OFFSET: usize = std::mem::size_of::<WalFile>().div_ceil(16) * 16;

/// Registers the VFS (once per process; later calls return the first answer).
pub(crate) fn register() -> c_int {
    let r = REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find initializes the library if needed and returns the registered
        // `unix` VFS, which lives for the process.
        let unix = unsafe { ffi::sqlite3_vfs_find(c"unix".as_ptr()) };
        if unix.is_null() {
            return Err(ffi::SQLITE_ERROR);
        }
        // SAFETY: `unix` is a valid VFS object; we copy it and change what makes ours ours. The
        // methods other than xOpen are `unix`'s own and do not look at which VFS object they
        // are called through, except through pAppData, which the copy keeps.
        let mut vfs = unsafe { std::ptr::read(unix) };
        vfs.zName = NAME.as_ptr();
        vfs.pNext = std::ptr::null_mut();
        vfs.szOsFile = (INNER_OFFSET + vfs.szOsFile as usize) as c_int;
        vfs.xOpen = Some(x_open);
        // Registered VFS objects must live as long as the process: leaked on purpose, once.
        let ptr: *mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
        // SAFETY: `ptr` is a valid VFS object that is never freed.
        let rc = unsafe { ffi::sqlite3_vfs_register(ptr, 0) };
        if rc == ffi::SQLITE_OK {
            Ok(Base(unix))
        } else {
            Err(rc)
        }
    });
    match r {
        Ok(_) => ffi::SQLITE_OK,
        Err(rc) => *rc,
    }
}

/// Whether [`register`] succeeded (connections then name the VFS; otherwise they use `unix`).
pub(crate) fn registered() -> bool {
    matches!(REGISTERED.get(), Some(Ok(_)))
}

fn unix() -> *mut ffi::sqlite3_vfs {
    match REGISTERED.get() {
        Some(Ok(base)) => base.0,
        // SQLite opens files through our VFS only once it is registered.
        _ => unreachable!("confab-wal opened a file before it was registered"),
    }
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let unix = unix();
    // SAFETY: `unix` is valid; `file` has room for our struct and the unix file after it
    // (szOsFile); SQLite guarantees the arguments' validity for the call.
    unsafe {
        let open = (*unix).xOpen.expect("unix VFS has xOpen");
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            // Not a WAL: the `unix` file itself, in the (larger) room SQLite gave us.
            return open(unix, name, file, flags, out_flags);
        }
        let inner = file
            .cast::<u8>()
            .add(INNER_OFFSET)
            .cast::<ffi::sqlite3_file>();
        let rc = open(unix, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            (*file).pMethods = std::ptr::null();
            return rc;
        }
        file.cast::<WalFile>().write(WalFile {
            base: ffi::sqlite3_file { pMethods: &METHODS },
            inner,
            gathered: Vec::new(),
            at: 0,
        });
        ffi::SQLITE_OK
    }
}

/// Our file and the methods of the file it wraps.
///
/// # Safety
/// `f` must be a file opened by [`x_open`] with the WAL flag and not yet closed.
unsafe fn parts<'a>(f: *mut ffi::sqlite3_file) -> (&'a mut WalFile, &'a ffi::sqlite3_io_methods) {
    // SAFETY: per the contract, `f` points at a live WalFile whose inner file is open.
    unsafe {
        let w = &mut *f.cast::<WalFile>();
        let m = &*(*w.inner).pMethods;
        (w, m)
    }
}

impl WalFile {
    /// Passes the gathered bytes on; they are dropped whether or not the write succeeds (on
    /// failure SQLite abandons the transaction, whose frames are then never read).
    ///
    /// # Safety
    /// `self.inner` must be open with `m` its methods.
    unsafe fn flush(&mut self, m: &ffi::sqlite3_io_methods) -> c_int {
        if self.gathered.is_empty() {
            return ffi::SQLITE_OK;
        }
        let write = m.xWrite.expect("unix file has xWrite");
        let mut rc = ffi::SQLITE_OK;
        let mut at = self.at;
        for piece in self.gathered.chunks(MAX_WRITE) {
            #[cfg(test)]
            COUNTS.with(|c| c.set((c.get().0, c.get().1 + 1)));
            // SAFETY: the piece is valid for its length, which MAX_WRITE keeps within c_int.
            rc = unsafe { write(self.inner, piece.as_ptr().cast(), piece.len() as c_int, at) };
            if rc != ffi::SQLITE_OK {
                break;
            }
            at += piece.len() as i64;
        }
        self.gathered.clear();
        rc
    }
}

/// Calls the wrapped file's `$method` after passing the gathered bytes on.
macro_rules! flushed {
    ($f:expr, $method:ident $(, $arg:expr)*) => {{
        // SAFETY: SQLite calls our methods only on files x_open opened with the WAL flag.
        let (w, m) = unsafe { parts($f) };
        // SAFETY: the inner file is open with methods `m`.
        let rc = unsafe { w.flush(m) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        // SAFETY: forwarding the call SQLite made, with the inner file.
        unsafe { m.$method.expect(stringify!($method))(w.inner $(, $arg)*) }
    }};
}

/// Calls the wrapped file's `$method` as it is (nothing gathered concerns it).
macro_rules! direct {
    ($f:expr, $method:ident $(, $arg:expr)*) => {{
        // SAFETY: as in `flushed!`.
        let (w, m) = unsafe { parts($f) };
        // SAFETY: forwarding the call SQLite made, with the inner file.
        unsafe { m.$method.expect(stringify!($method))(w.inner $(, $arg)*) }
    }};
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `f` is ours and is closed exactly once (SQLite's contract).
    let (w, m) = unsafe { parts(f) };
    // SAFETY: the inner file is still open.
    let flushed = unsafe { w.flush(m) };
    // SAFETY: closing the inner file, then dropping our fields in place (SQLite frees the
    // allocation itself).
    let closed = unsafe { m.xClose.expect("xClose")(w.inner) };
    unsafe { std::ptr::drop_in_place(&mut w.gathered) };
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn x_read(
    f: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    flushed!(f, xRead, buf, amt, off)
}

unsafe extern "C" fn x_write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: as in `flushed!`.
    let (w, m) = unsafe { parts(f) };
    let continues = !w.gathered.is_empty() && off == w.at + w.gathered.len() as i64;
    if !continues {
        // SAFETY: the inner file is open with methods `m`.
        let rc = unsafe { w.flush(m) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        w.at = off;
    }
    #[cfg(test)]
    COUNTS.with(|c| c.set((c.get().0 + 1, c.get().1)));
    // SAFETY: SQLite passes `amt` readable bytes at `buf`.
    let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), amt.max(0) as usize) };
    w.gathered.extend_from_slice(bytes);
    if w.gathered.len() >= MAX_GATHERED {
        // SAFETY: as above.
        return unsafe { w.flush(m) };
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_truncate(f: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    flushed!(f, xTruncate, size)
}

unsafe extern "C" fn x_sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flushed!(f, xSync, flags)
}

unsafe extern "C" fn x_file_size(
    f: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    flushed!(f, xFileSize, size)
}

unsafe extern "C" fn x_lock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    direct!(f, xLock, level)
}

unsafe extern "C" fn x_unlock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    direct!(f, xUnlock, level)
}

unsafe extern "C" fn x_check_reserved_lock(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    direct!(f, xCheckReservedLock, out)
}

unsafe extern "C" fn x_file_control(
    f: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // Some controls read or change the file (size hints, chunk sizes): pass the bytes on first.
    flushed!(f, xFileControl, op, arg)
}

unsafe extern "C" fn x_sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    direct!(f, xSectorSize)
}

unsafe extern "C" fn x_device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    direct!(f, xDeviceCharacteristics)
}

unsafe extern "C" fn x_shm_map(
    f: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    direct!(f, xShmMap, page, size, extend, out)
}

unsafe extern "C" fn x_shm_lock(
    f: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    direct!(f, xShmLock, offset, n, flags)
}

unsafe extern "C" fn x_shm_barrier(f: *mut ffi::sqlite3_file) {
    direct!(f, xShmBarrier)
}

unsafe extern "C" fn x_shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    direct!(f, xShmUnmap, delete)
}

unsafe extern "C" fn x_fetch(
    f: *mut ffi::sqlite3_file,
    off: ffi::sqlite3_int64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    flushed!(f, xFetch, off, amt, out)
}

unsafe extern "C" fn x_unfetch(
    f: *mut ffi::sqlite3_file,
    off: ffi::sqlite3_int64,
    p: *mut c_void,
) -> c_int {
    direct!(f, xUnfetch, off, p)
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

#[cfg(test)]
thread_local! {
    /// Writes SQLite made to WAL files on this thread, and writes passed on to the `unix` files.
    static COUNTS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rusqlite::{Connection, OpenFlags};

    use super::*;

    fn open(path: &Path, vfs: &str) -> Connection {
        let c = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), vfs).unwrap();
        c.pragma_update(None, "journal_mode", "wal").unwrap();
        c.pragma_update(None, "synchronous", "full").unwrap();
        // Never checkpoint on its own: every commit stays in the WAL, where the tests look.
        c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        c
    }

    fn counts() -> (u64, u64) {
        COUNTS.with(|c| c.get())
    }

    #[test]
    fn a_commit_reaches_the_wal_in_one_write() {
        crate::sqlite::configure_library();
        assert!(registered());
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("db"), "confab-wal");
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
        let (w0, p0) = counts();
        // About 20 pages (60 rows of 1 KiB): less than one piece passed on.
        c.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
             INSERT INTO t(v) SELECT randomblob(1000) FROM n",
        )
        .unwrap();
        let (w1, p1) = counts();
        let (writes, passed) = (w1 - w0, p1 - p0);
        assert!(writes >= 30, "SQLite wrote {writes} times to the WAL");
        assert_eq!(passed, 1, "{writes} writes reached the file in {passed}");
    }

    /// After every commit, the database and WAL files as they are on disk at that moment (what a
    /// crash of the process would leave) hold every committed row, read through plain `unix`.
    #[test]
    fn every_commit_is_in_the_files_when_it_returns() {
        crate::sqlite::configure_library();
        assert!(registered());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let c = open(&path, "confab-wal");
        // A cache of a few pages spills inside the bigger transactions: frames written before
        // the commit, and overwritten in place by it (SQLite's own paths for large writes).
        c.pragma_update(None, "cache_size", 8).unwrap();
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB); CREATE INDEX t_k ON t(k)",
        )
        .unwrap();
        let mut rows = 0i64;
        let mut sum = 0i64;
        // Small commits, spilling ones, and one larger than what is gathered at most (1 MiB).
        for (round, n) in [1i64, 3, 50, 400, 1, 2000, 7, 120, 1, 1]
            .into_iter()
            .enumerate()
        {
            let tx = c.unchecked_transaction().unwrap();
            for i in 0..n {
                let k = (i * 7919 + round as i64) % 1000;
                tx.execute("INSERT INTO t(k, v) VALUES (?1, randomblob(700))", [k])
                    .unwrap();
                sum += k;
            }
            // Rewrite some earlier rows too, so pages written by a spill are written again.
            tx.execute(
                "UPDATE t SET v = randomblob(700) WHERE id % 5 = ?1",
                [round as i64 % 5],
            )
            .unwrap();
            tx.commit().unwrap();
            rows += n;

            let snap = tempfile::tempdir().unwrap();
            let copy = snap.path().join("db");
            std::fs::copy(&path, &copy).unwrap();
            std::fs::copy(dir.path().join("db-wal"), snap.path().join("db-wal")).unwrap();
            let r =
                Connection::open_with_flags_and_vfs(&copy, OpenFlags::default(), "unix").unwrap();
            let (n_rows, n_sum): (i64, i64) = r
                .query_row("SELECT count(*), coalesce(sum(k), 0) FROM t", [], |x| {
                    Ok((x.get(0)?, x.get(1)?))
                })
                .unwrap();
            assert_eq!((n_rows, n_sum), (rows, sum), "after commit {round}");
            let ok: String = r
                .query_row("PRAGMA integrity_check", [], |x| x.get(0))
                .unwrap();
            assert_eq!(ok, "ok", "after commit {round}");
        }
    }
}
