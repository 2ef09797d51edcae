//! SQLite's page cache, wrapped so that ending a write transaction does not scan the whole cache.
//!
//! Why: when a B-tree split rebalances sibling pages (`balance_nonroot`), SQLite swaps two pages'
//! numbers by parking one of them, for an instant, under the number of the lock-byte page
//! (262,145 with 4 KiB pages). The default cache (`pcache1`) remembers that as the largest page
//! number it has held, and at the end of every transaction SQLite truncates the cache to the
//! file's size; with a remembered key 250,000 pages past the end, `pcache1` walks every slot of
//! its hash table and every page in it (8,192 slots and ~7,700 pages in the writer's 32 MB cache).
//! Nearly every group commit splits a page somewhere, so the writer paid that walk at almost
//! every commit: 4.4–4.9 % of the server's samples under the append load, on the one thread
//! every write waits for (docs/performance.md).
//!
//! The wrapper passes every call to `pcache1` and tracks, per cache, an upper bound of the page
//! numbers it can hold ([`Keys`]); a truncation that provably removes nothing is not passed on.
//! When one might remove something it is passed on unchanged, so the cache's contents never
//! differ from `pcache1`'s own: only calls that would have found nothing are saved.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libsqlite3_sys::{sqlite3_pcache, sqlite3_pcache_methods2, sqlite3_pcache_page};

/// An upper bound of the page numbers a cache holds.
///
/// Pages enter a cache only through a fetch or a rekey, and leave through unpin-discard,
/// eviction, rekey and truncation; the bound follows every entry and only the truncations out.
/// Fetched numbers raise `max`. A rekey to a number above `max` is tracked apart in `parked`, so
/// that the page moved back down (the next two rekeys of the swap) lowers the bound again; a
/// second such rekey while one is parked folds the first into `max`, which only loosens it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keys {
    max: c_uint,
    parked: Option<c_uint>,
}

impl Keys {
    pub(crate) fn fetched(&mut self, key: c_uint) {
        self.max = self.max.max(key);
    }

    pub(crate) fn rekeyed(&mut self, old: c_uint, new: c_uint) {
        if self.parked == Some(old) {
            self.parked = None;
        }
        if new > self.max {
            if let Some(p) = self.parked {
                self.max = self.max.max(p);
            }
            self.parked = Some(new);
        }
    }

    /// Whether a truncation to `limit` (every page numbered `limit` or above goes) can find a page.
    pub(crate) fn may_hold_from(&self, limit: c_uint) -> bool {
        self.max.max(self.parked.unwrap_or(0)) >= limit
    }

    pub(crate) fn truncated(&mut self, limit: c_uint) {
        self.max = self.max.min(limit.saturating_sub(1));
        self.parked = self.parked.filter(|&p| p < limit);
    }
}

/// One cache: `pcache1`'s, and the bound.
struct Cache {
    inner: *mut sqlite3_pcache,
    keys: Keys,
}

/// `pcache1`'s methods, as SQLite reported them before the wrapper replaced them.
struct Inner(sqlite3_pcache_methods2);
// SAFETY: the struct holds function pointers and `pArg`, which pcache1 leaves null and never
// dereferences through us; it is written once, before SQLite initializes, and only read after.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

static INNER: OnceLock<Inner> = OnceLock::new();

static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// Truncations skipped so far in this process.
pub(crate) fn truncations_skipped() -> u64 {
    SKIPPED.load(Ordering::Relaxed)
}

fn inner() -> &'static sqlite3_pcache_methods2 {
    // Only SQLite calls the functions below, and only after `install` set INNER.
    &INNER
        .get()
        .expect("the page cache wrapper is installed first")
        .0
}

/// # Safety
/// `p` must be a pointer `x_create` returned and `x_destroy` has not freed. SQLite calls a
/// cache's methods from one thread at a time (the connection's), so `&mut` is unique.
unsafe fn cache<'a>(p: *mut sqlite3_pcache) -> &'a mut Cache {
    // SAFETY: per the function's contract.
    unsafe { &mut *p.cast::<Cache>() }
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    let m = inner();
    match m.xInit {
        // SAFETY: pcache1's own method with its own argument.
        Some(f) => unsafe { f(m.pArg) },
        None => libsqlite3_sys::SQLITE_OK,
    }
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {
    let m = inner();
    if let Some(f) = m.xShutdown {
        // SAFETY: as in x_init.
        unsafe { f(m.pArg) }
    }
}

unsafe extern "C" fn x_create(
    sz_page: c_int,
    sz_extra: c_int,
    purgeable: c_int,
) -> *mut sqlite3_pcache {
    let Some(create) = inner().xCreate else {
        return std::ptr::null_mut();
    };
    // SAFETY: pcache1's constructor with SQLite's arguments.
    let p = unsafe { create(sz_page, sz_extra, purgeable) };
    if p.is_null() {
        return p;
    }
    Box::into_raw(Box::new(Cache {
        inner: p,
        keys: Keys::default(),
    }))
    .cast()
}

unsafe extern "C" fn x_cachesize(p: *mut sqlite3_pcache, n: c_int) {
    // SAFETY: SQLite passes a live cache of ours.
    let c = unsafe { cache(p) };
    if let Some(f) = inner().xCachesize {
        // SAFETY: pcache1's method on its own cache.
        unsafe { f(c.inner, n) }
    }
}

unsafe extern "C" fn x_pagecount(p: *mut sqlite3_pcache) -> c_int {
    // SAFETY: as in x_cachesize.
    let c = unsafe { cache(p) };
    // SAFETY: as in x_cachesize.
    inner().xPagecount.map_or(0, |f| unsafe { f(c.inner) })
}

unsafe extern "C" fn x_fetch(
    p: *mut sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut sqlite3_pcache_page {
    // SAFETY: as in x_cachesize.
    let c = unsafe { cache(p) };
    let Some(f) = inner().xFetch else {
        return std::ptr::null_mut();
    };
    // SAFETY: as in x_cachesize.
    let page = unsafe { f(c.inner, key, create) };
    if !page.is_null() {
        c.keys.fetched(key);
    }
    page
}

unsafe extern "C" fn x_unpin(
    p: *mut sqlite3_pcache,
    page: *mut sqlite3_pcache_page,
    discard: c_int,
) {
    // SAFETY: as in x_cachesize.
    let c = unsafe { cache(p) };
    if let Some(f) = inner().xUnpin {
        // SAFETY: as in x_cachesize; the page is pcache1's own.
        unsafe { f(c.inner, page, discard) }
    }
}

unsafe extern "C" fn x_rekey(
    p: *mut sqlite3_pcache,
    page: *mut sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    // SAFETY: as in x_cachesize.
    let c = unsafe { cache(p) };
    if let Some(f) = inner().xRekey {
        // SAFETY: as in x_unpin.
        unsafe { f(c.inner, page, old, new) }
    }
    c.keys.rekeyed(old, new);
}

unsafe extern "C" fn x_truncate(p: *mut sqlite3_pcache, limit: c_uint) {
    // SAFETY: as in x_cachesize.
    let c = unsafe { cache(p) };
    if !c.keys.may_hold_from(limit) {
        SKIPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if let Some(f) = inner().xTruncate {
        // SAFETY: as in x_cachesize.
        unsafe { f(c.inner, limit) }
    }
    c.keys.truncated(limit);
}

unsafe extern "C" fn x_destroy(p: *mut sqlite3_pcache) {
    // SAFETY: SQLite destroys each cache once; the box was made by x_create.
    let c = unsafe { Box::from_raw(p.cast::<Cache>()) };
    if let Some(f) = inner().xDestroy {
        // SAFETY: pcache1's destructor on its own cache, which is not used again.
        unsafe { f(c.inner) }
    }
}

unsafe extern "C" fn x_shrink(p: *mut sqlite3_pcache) {
    // SAFETY: as in x_cachesize.
    let c = unsafe { cache(p) };
    if let Some(f) = inner().xShrink {
        // SAFETY: as in x_cachesize.
        unsafe { f(c.inner) }
    }
}

/// Puts the wrapper in front of SQLite's page cache; before SQLite initializes, like the
/// allocator (`configure_library`). Answers SQLite's code, SQLITE_MISUSE if it was too late.
pub(crate) fn install() -> c_int {
    // SAFETY: zeroed is a valid "no methods" value of the C struct (null pointers, None).
    let mut current: sqlite3_pcache_methods2 = unsafe { std::mem::zeroed() };
    // SAFETY: SQLITE_CONFIG_GETPCACHE2 writes the methods in use (the default ones, set up on
    // demand) into the struct it is given.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_config(
            libsqlite3_sys::SQLITE_CONFIG_GETPCACHE2,
            &mut current as *mut sqlite3_pcache_methods2,
        )
    };
    if rc != libsqlite3_sys::SQLITE_OK {
        return rc;
    }
    if INNER.set(Inner(current)).is_err() {
        // Installed already (once per process, by configure_library).
        return libsqlite3_sys::SQLITE_OK;
    }
    let methods = sqlite3_pcache_methods2 {
        iVersion: 1,
        pArg: std::ptr::null_mut(),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        xCreate: Some(x_create),
        xCachesize: Some(x_cachesize),
        xPagecount: Some(x_pagecount),
        xFetch: Some(x_fetch),
        xUnpin: Some(x_unpin),
        xRekey: Some(x_rekey),
        xTruncate: Some(x_truncate),
        xDestroy: Some(x_destroy),
        xShrink: Some(x_shrink),
    };
    // SAFETY: SQLITE_CONFIG_PCACHE2 copies the struct before returning.
    unsafe {
        libsqlite3_sys::sqlite3_config(
            libsqlite3_sys::SQLITE_CONFIG_PCACHE2,
            &methods as *const sqlite3_pcache_methods2,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_swap_through_the_lock_page_leaves_the_bound_where_it_was() {
        let mut k = Keys::default();
        for key in 1..=12_500 {
            k.fetched(key);
        }
        // balance_nonroot: A -> lock page, B -> A, lock page -> B.
        k.rekeyed(900, 262_145);
        assert!(k.may_hold_from(12_501));
        k.rekeyed(12_400, 900);
        k.rekeyed(262_145, 12_400);
        assert!(!k.may_hold_from(12_501));
        assert!(k.may_hold_from(12_500));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Fetch(c_uint),
        /// Rekey the i-th held page (modulo their count) to a key, if that key is free.
        Rekey(usize, c_uint),
        Discard(usize),
        Truncate(c_uint),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Small keys so that collisions, equal keys and truncations that hit all happen.
        let key = prop_oneof![1..64u32, Just(262_145u32), 262_100..262_200u32];
        prop_oneof![
            4 => key.clone().prop_map(Op::Fetch),
            3 => (any::<usize>(), key.clone()).prop_map(|(i, k)| Op::Rekey(i, k)),
            1 => any::<usize>().prop_map(Op::Discard),
            2 => (1..80u32).prop_map(Op::Truncate),
        ]
    }

    proptest! {
        /// Against a model of the cache's keys: whenever the bound says a truncation can find
        /// nothing, the model holds nothing at or above the limit.
        #[test]
        fn the_bound_never_hides_a_page(ops in prop::collection::vec(op(), 1..200)) {
            let mut held = BTreeSet::new();
            let mut k = Keys::default();
            for op in ops {
                match op {
                    Op::Fetch(key) => {
                        held.insert(key);
                        k.fetched(key);
                    }
                    Op::Rekey(i, new) => {
                        if held.is_empty() || held.contains(&new) {
                            continue;
                        }
                        let old = *held.iter().nth(i % held.len()).expect("not empty");
                        held.remove(&old);
                        held.insert(new);
                        k.rekeyed(old, new);
                    }
                    Op::Discard(i) => {
                        if let Some(&key) = held.iter().nth(i % held.len().max(1)) {
                            held.remove(&key);
                        }
                    }
                    Op::Truncate(limit) => {
                        if k.may_hold_from(limit) {
                            held.retain(|&key| key < limit);
                            k.truncated(limit);
                        } else {
                            prop_assert!(held.iter().all(|&key| key < limit), "{held:?} {k:?} {limit}");
                        }
                    }
                }
                let top = held.iter().next_back().copied().unwrap_or(0);
                prop_assert!(k.may_hold_from(top), "{held:?} {k:?}");
            }
        }
    }
}
