//! SQLite's allocator: the system allocator, with sizes rounded up to classes so that a buffer
//! grown a little at a time is moved only once in a while.
//!
//! Why: FTS5 walks a doclist backwards by first listing the offsets of every entry of a leaf
//! page in an array it grows by 8 entries per `sqlite3_realloc` (`fts5SegIterReverseInitPage`),
//! for every segment the term is in. With the default allocator, which rounds to 8 bytes, each
//! of those steps is a real `realloc`: a ranked search of the most common word spent 12 % of
//! its CPU there (perf). SQLite skips the call when the rounded new size equals the old
//! allocation's size (`sqlite3Realloc`: "nOld==nNew"), so with size classes the array is moved
//! about a dozen times per page instead of a hundred and twenty.
//!
//! The classes: 8 bytes apart up to 256 bytes (as SQLite's own allocator), powers of two up to
//! 4 KiB (where arrays grow; few objects by count), eight per power of two up to 1 MiB (page
//! buffers, the bulk of SQLite's memory: at most an eighth wasted), 4 KiB apart above. Each
//! allocation carries its size in an 8-byte header, as SQLite's own allocator does where the C
//! library cannot tell a block's size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_int, c_void};

const HEADER: usize = 8;
const ALIGN: usize = 8;

/// The size an allocation of `n` bytes is given.
pub(crate) fn class(n: usize) -> usize {
    if n <= 256 {
        // The many small objects (values, cursors, expression nodes): as SQLite's own.
        return n.div_ceil(8) * 8;
    }
    if n <= 4096 {
        // Growing arrays live here (FTS5's offsets of a leaf page reach 4 KiB): powers of two.
        return n.next_power_of_two();
    }
    if n > 1 << 20 {
        return n.div_ceil(4096) * 4096;
    }
    // Page-cache buffers (a page and its header, 4 KiB and a little) and larger: eight classes
    // per power of two, 2^k < n <= 2^(k+1), so at most an eighth is wasted.
    let k = usize::BITS - 1 - (n - 1).leading_zeros();
    let step = 1usize << (k - 3);
    n.div_ceil(step) * step
}

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, ALIGN).ok()
}

/// The block's start and its recorded size, from the pointer SQLite holds.
///
/// # Safety
/// `p` must have been returned by [`x_malloc`] or [`x_realloc`] and not freed.
unsafe fn header(p: *mut c_void) -> (*mut u8, usize) {
    // SAFETY: the caller guarantees p is HEADER bytes into one of our blocks.
    unsafe {
        let base = p.cast::<u8>().sub(HEADER);
        (base, base.cast::<usize>().read())
    }
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    let size = class(usize::try_from(n).unwrap_or(0).max(1));
    let Some(l) = layout(size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: the layout has a non-zero size; the header is written inside the block.
    unsafe {
        let base = System.alloc(l);
        if base.is_null() {
            return std::ptr::null_mut();
        }
        base.cast::<usize>().write(size);
        base.add(HEADER).cast()
    }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: SQLite frees only what x_malloc/x_realloc gave it, once.
    unsafe {
        let (base, size) = header(p);
        System.dealloc(base, layout(size).expect("a size we allocated"));
    }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    if p.is_null() {
        // SAFETY: a fresh allocation.
        return unsafe { x_malloc(n) };
    }
    let size = class(usize::try_from(n).unwrap_or(0).max(1));
    let Some(new) = layout(size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: p is ours (SQLite's contract); on failure the old block is left as it was.
    unsafe {
        let (base, old) = header(p);
        let moved = System.realloc(base, layout(old).expect("a size we allocated"), new.size());
        if moved.is_null() {
            return std::ptr::null_mut();
        }
        moved.cast::<usize>().write(size);
        moved.add(HEADER).cast()
    }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    if p.is_null() {
        return 0;
    }
    // SAFETY: p is ours; sizes never exceed c_int (SQLite caps allocations below 2^31).
    unsafe { c_int::try_from(header(p).1).unwrap_or(c_int::MAX) }
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    c_int::try_from(class(usize::try_from(n).unwrap_or(0))).unwrap_or(n)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    libsqlite3_sys::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// Installs the allocator; must run before SQLite initializes. Returns SQLite's answer
/// (`SQLITE_MISUSE` when it was already initialized, and then nothing changed).
pub(crate) fn install() -> c_int {
    // SQLite keeps a copy of the struct, so a local is enough.
    let methods = libsqlite3_sys::sqlite3_mem_methods {
        xMalloc: Some(x_malloc),
        xFree: Some(x_free),
        xRealloc: Some(x_realloc),
        xSize: Some(x_size),
        xRoundup: Some(x_roundup),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to sqlite3_mem_methods, copied before the
    // call returns.
    unsafe {
        libsqlite3_sys::sqlite3_config(
            libsqlite3_sys::SQLITE_CONFIG_MALLOC,
            &methods as *const libsqlite3_sys::sqlite3_mem_methods,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_and_waste_little_on_large_blocks() {
        assert_eq!(class(1), 8);
        assert_eq!(class(256), 256);
        assert_eq!(class(257), 512);
        assert_eq!(class(4096), 4096);
        assert_eq!(class(4097), 4608);
        assert_eq!(class(4096 + 300), 4608);
        assert_eq!(class(1 << 20), 1 << 20);
        assert_eq!(class((1 << 20) + 1), (1 << 20) + 4096);
        for n in 1..(1 << 21) {
            let c = class(n);
            assert!(c >= n && c.is_multiple_of(8), "{n} -> {c}");
            assert_eq!(class(c), c, "a class is its own class: {n} -> {c}");
            if n > 4096 {
                assert!(c - n <= n / 8, "{n} -> {c}");
            }
        }
    }

    #[test]
    fn a_buffer_grown_in_small_steps_moves_a_few_times() {
        // What fts5SegIterReverseInitPage does: grow by 32 bytes at a time to 4 KiB.
        let moves = (1..=128usize)
            .map(|i| class(i * 32))
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] != w[1])
            .count();
        assert!(moves <= 12, "{moves}");
    }
}
