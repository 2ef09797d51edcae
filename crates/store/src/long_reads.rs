//! How many long reads run at once, one rule for both backends: SQLite's reads past their
//! budget (`sqlite/handoff.rs`) and PostgreSQL's searches past theirs (`postgres/search.rs`,
//! `search`). A long read is the one kind of request that can wait: at most half the cores
//! (at least one) run long reads, so that however many come at once, the short requests
//! keep the other half.

/// Long reads allowed to run at once on this machine.
pub(crate) fn turns() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}
