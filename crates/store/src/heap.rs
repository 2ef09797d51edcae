//! The C library's heap, tuned once per process for the SQLite writer's way of using it.
//!
//! Every write runs in a savepoint of its own (sqlite/writer.rs), and SQLite keeps a
//! savepoint's undo log, the statement journal, in memory: a copy of each page the write
//! changes, in 1 KiB pieces, all freed when the savepoint is released. glibc's `free` gives the
//! top of a thread's heap back to the kernel as soon as more than `M_TRIM_THRESHOLD` is free
//! there (128 KiB by default, raised only after the process frees a block large enough to have
//! been mapped on its own), and the next write faults those pages back in. perf of the writer
//! thread under 64 connections appending: 8.5 % of its time in that cycle (`madvise`, page
//! faults, heap growth), and each `madvise` also flushes the TLB of the cores running the
//! server's other threads. Raising the thresholds cut the writer's CPU per append by about a
//! fifth on a server that had not yet taken a large request (docs/performance.md, 2026-11-30,
//! eleventh session).
//!
//! glibc raises both thresholds by itself, but only once a block it had mapped on its own is
//! freed: a server that has taken one large import is tuned, one that only ever saw small
//! appends is not. So both are set here to where a freed 4 MiB block (a large import body)
//! would have moved them: blocks under 4 MiB come from the heap, and up to 8 MiB may stay free
//! at the top of each thread's heap. Setting them turns glibc's moving thresholds off.

/// Blocks this large and larger are mapped on their own (glibc's default: 128 KiB, moving).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 4 << 20;
/// What the top of a heap may hold free before glibc gives it back (twice the above, as glibc
/// pairs them when it moves them itself).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 2 * MMAP_THRESHOLD;

/// Sets glibc's mapping and trim thresholds for this process (see the module's
/// documentation), unless the operator has tuned glibc's allocator through its environment.
/// Call it once, early in `main`; a no-op on other C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !tuned_by_hand(|v| std::env::var_os(v).is_some()) {
        // SAFETY: mallopt only sets parameters of glibc's allocator; it may be called at any
        // time, from any thread.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

/// Whether glibc's allocator is tuned through the environment (`is_set` tells whether a
/// variable is): then its settings stand, as its manual says.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
fn tuned_by_hand(is_set: impl Fn(&str) -> bool) -> bool {
    [
        "MALLOC_TRIM_THRESHOLD_",
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TOP_PAD_",
        "GLIBC_TUNABLES",
    ]
    .into_iter()
    .any(is_set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operators_own_malloc_settings_stand() {
        assert!(!tuned_by_hand(|_| false));
        for v in [
            "MALLOC_TRIM_THRESHOLD_",
            "MALLOC_MMAP_THRESHOLD_",
            "GLIBC_TUNABLES",
        ] {
            assert!(tuned_by_hand(|name| name == v), "{v}");
        }
        assert!(!tuned_by_hand(|name| name == "MALLOC_ARENA_MAX"));
    }
}
