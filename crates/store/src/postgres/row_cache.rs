//! The rows of first pages' hits kept between first searches on PostgreSQL, whatever the word.
//!
//! A first search of a word whose window is not kept (first_batch.rs) reads its window from the
//! postings and then its page's rows: twenty lookups by rowid, which were three fifths of
//! PostgreSQL's work for such a search (docs/performance.md, fifty-second session). Pages of
//! different words share rows (the newest messages rank in many), and a row's columns a hit
//! shows never change but by an `UPDATE` or `DELETE` of the message, so the rows read are kept
//! here, by tenant and rowid, for the next page that shows them.
//!
//! Whether a tenant's rows are still right is PostgreSQL's to say, as for kept windows
//! (kept.rs): every statement that updates or deletes messages leaves a change without a `lo`
//! in `search_changes`. Each tenant's rows are kept under a snapshot, `seen`; the statement that
//! reads a batch of first searches' windows (postings.rs, `NEWEST_OF`) also asks, for each
//! tenant of the batch kept here, whether an update or delete of its messages is invisible to
//! that snapshot. None: the rows kept are right in the statement's snapshot too, which becomes
//! the tenant's `seen`. One, or no snapshot young enough to ask with (the changes a check
//! needs are pruned after [`TTL`]): the tenant's rows are dropped (its generation moves on),
//! and the statement's snapshot is the new `seen`. Inserts change no kept row.
//!
//! A row read after the check that started its tenant's generation is kept only if the
//! generation has not moved on since: every check of that generation then found no change
//! between its start and the check's own snapshot, so a change that reached the row before it
//! was read is seen by the next check, which drops it. The checks of one generation may come
//! back out of order; each only moves `seen` within its own generation, and an older `seen`
//! only makes later checks look at more changes.
//!
//! Bounded by the bytes of the rows' text: two generations of entries, the newer filled until
//! it holds half of [`BYTES`], then the older dropped and the newer made the older (a row used
//! from the older moves to the newer). So the rows used lately stay, at a constant cost a row.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use uuid::Uuid;

use super::kept::TTL;
use super::search::HitRow;

/// Bytes of rows (their text and what keeping each costs besides, [`ROW_COST`]) kept at most:
/// about 50,000 rows of ordinary messages.
pub(super) const BYTES: usize = 24 << 20;

/// What keeping a row costs besides its text: the map's entry, the row's other columns, the
/// `Arc`.
const ROW_COST: usize = 160;

/// Kept rows by tenant and rowid, and each tenant's generation and snapshot.
#[derive(Default)]
pub(super) struct RowCache(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    tenants: HashMap<Uuid, Tenant>,
    newer: Generation,
    older: Generation,
}

#[derive(Default)]
struct Generation {
    rows: HashMap<(Uuid, i64), (u64, Arc<HitRow>)>,
    bytes: usize,
}

/// A tenant's rows are its entries of `generation`, right in snapshot `seen` (taken before
/// `made`).
#[derive(Default)]
struct Tenant {
    generation: u64,
    seen: Option<(String, Instant)>,
}

/// A check a statement is to make for a tenant: whether an update or delete of its messages is
/// invisible to `seen`, asked in `generation`.
#[derive(Debug, Clone)]
pub(super) struct Ask {
    pub tenant: Uuid,
    pub seen: String,
    pub generation: u64,
}

impl RowCache {
    /// The checks to make for a batch of `tenants`: those whose snapshot is young enough to ask
    /// with.
    pub fn asks(&self, tenants: impl IntoIterator<Item = Uuid>) -> Vec<Ask> {
        let inner = self.0.lock().expect("row cache lock");
        let mut asks: Vec<Ask> = Vec::new();
        for t in tenants {
            if asks.iter().any(|a| a.tenant == t) {
                continue;
            }
            if let Some(k) = inner.tenants.get(&t)
                && let Some((seen, made)) = &k.seen
                && made.elapsed() < TTL
            {
                asks.push(Ask {
                    tenant: t,
                    seen: seen.clone(),
                    generation: k.generation,
                });
            }
        }
        asks
    }

    /// What a statement in snapshot `seen`, sent at `made`, found for a batch of `tenants`:
    /// `changed` answers each of `asks` in order. Answers each tenant's generation after it: a
    /// row read after this is kept in that generation, if it is still the tenant's.
    pub fn checked(
        &self,
        tenants: impl IntoIterator<Item = Uuid>,
        asks: &[Ask],
        changed: &[bool],
        seen: &str,
        made: Instant,
    ) -> HashMap<Uuid, u64> {
        let mut inner = self.0.lock().expect("row cache lock");
        let mut gens = HashMap::new();
        for t in tenants {
            if gens.contains_key(&t) {
                continue;
            }
            let k = inner.tenants.entry(t).or_default();
            let asked = asks.iter().position(|a| a.tenant == t);
            match asked {
                Some(i) if !changed.get(i).copied().unwrap_or(true) => {
                    // Right from the ask's snapshot to this one; only within its generation.
                    if k.generation == asks[i].generation {
                        k.seen = Some((seen.to_owned(), made));
                    }
                }
                _ => {
                    k.generation += 1;
                    k.seen = Some((seen.to_owned(), made));
                }
            }
            gens.insert(t, k.generation);
        }
        gens
    }

    /// The rows kept of `tenant` for `rowids`, in their order (`None` where none is kept).
    pub fn get(&self, tenant: Uuid, rowids: &[i64]) -> Vec<Option<Arc<HitRow>>> {
        let mut inner = self.0.lock().expect("row cache lock");
        let Some(generation) = inner.tenants.get(&tenant).map(|k| k.generation) else {
            return vec![None; rowids.len()];
        };
        let inner = &mut *inner;
        rowids
            .iter()
            .map(|&r| {
                let key = (tenant, r);
                if let Some((g, row)) = inner.newer.rows.get(&key) {
                    return (*g == generation).then(|| row.clone());
                }
                let (g, row) = inner.older.rows.remove(&key)?;
                inner.older.bytes -= cost(&row);
                if g != generation {
                    return None;
                }
                inner.keep(key, generation, row.clone());
                Some(row)
            })
            .collect()
    }

    /// Keeps `rows` of `tenant`, read after a check that answered `generation`, if that is
    /// still the tenant's (module docs).
    pub fn put(&self, tenant: Uuid, generation: u64, rows: &[(i64, Arc<HitRow>)]) {
        let mut inner = self.0.lock().expect("row cache lock");
        if inner.tenants.get(&tenant).map(|k| k.generation) != Some(generation) {
            return;
        }
        for (rowid, row) in rows {
            inner.keep((tenant, *rowid), generation, row.clone());
        }
    }
}

impl Inner {
    /// Keeps `row` in the newer generation; once that holds half of [`BYTES`], it becomes the
    /// older and the older is dropped.
    fn keep(&mut self, key: (Uuid, i64), generation: u64, row: Arc<HitRow>) {
        self.newer.put(key, generation, row);
        if self.newer.bytes > BYTES / 2 {
            self.older = std::mem::take(&mut self.newer);
        }
    }
}

impl Generation {
    fn put(&mut self, key: (Uuid, i64), generation: u64, row: Arc<HitRow>) {
        self.bytes += cost(&row);
        if let Some((_, old)) = self.rows.insert(key, (generation, row)) {
            self.bytes -= cost(&old);
        }
    }
}

fn cost(row: &HitRow) -> usize {
    row.text_len() + ROW_COST
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(c: &RowCache, t: Uuid, rowids: &[i64]) -> Vec<bool> {
        c.get(t, rowids).iter().map(Option::is_some).collect()
    }

    fn at(rowid: i64, text: &str) -> (i64, Arc<HitRow>) {
        (rowid, Arc::new(HitRow::with_text(text)))
    }

    #[test]
    fn a_tenant_first_seen_is_asked_nothing_and_starts_a_generation() {
        let c = RowCache::default();
        let t = Uuid::from_u128(1);
        assert!(c.asks([t]).is_empty());
        let gens = c.checked([t], &[], &[], "s1", Instant::now());
        c.put(t, gens[&t], &[at(5, "a")]);
        assert_eq!(kept(&c, t, &[5, 6]), [true, false]);
        let asks = c.asks([t, t]);
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].seen, "s1");
    }

    #[test]
    fn a_change_drops_the_tenants_rows_and_only_its_own() {
        let c = RowCache::default();
        let (t, u) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let gens = c.checked([t, u], &[], &[], "s1", Instant::now());
        c.put(t, gens[&t], &[at(5, "a")]);
        c.put(u, gens[&u], &[at(6, "b")]);
        let asks = c.asks([t, u]);
        let gens = c.checked([t, u], &asks, &[true, false], "s2", Instant::now());
        assert_eq!(kept(&c, t, &[5]), [false]);
        assert_eq!(kept(&c, u, &[6]), [true]);
        assert_eq!(c.asks([t])[0].seen, "s2");
        assert_eq!(c.asks([u])[0].seen, "s2");
        c.put(t, gens[&t], &[at(5, "a2")]);
        assert_eq!(kept(&c, t, &[5]), [true]);
    }

    #[test]
    fn rows_read_before_a_change_was_found_are_not_kept() {
        let c = RowCache::default();
        let t = Uuid::from_u128(1);
        let before = c.checked([t], &[], &[], "s1", Instant::now())[&t];
        let asks = c.asks([t]);
        c.checked([t], &asks, &[true], "s2", Instant::now());
        c.put(t, before, &[at(5, "a")]);
        assert_eq!(kept(&c, t, &[5]), [false]);
    }

    #[test]
    fn a_check_of_an_older_generation_moves_no_snapshot() {
        let c = RowCache::default();
        let t = Uuid::from_u128(1);
        c.checked([t], &[], &[], "s1", Instant::now());
        let old = c.asks([t]);
        // Another batch found a change and started a generation at s2.
        c.checked([t], &old, &[true], "s2", Instant::now());
        // The older ask's answer, no change, comes back after it.
        c.checked([t], &old, &[false], "s3", Instant::now());
        assert_eq!(c.asks([t])[0].seen, "s2");
    }

    #[test]
    fn a_snapshot_older_than_the_ttl_is_not_asked_with() {
        let c = RowCache::default();
        let t = Uuid::from_u128(1);
        let long_ago = Instant::now() - TTL - std::time::Duration::from_secs(1);
        let generation = c.checked([t], &[], &[], "s1", long_ago)[&t];
        c.put(t, generation, &[at(5, "a")]);
        assert!(c.asks([t]).is_empty());
        // Unasked, the next statement starts a generation: the row goes.
        c.checked([t], &[], &[], "s2", Instant::now());
        assert_eq!(kept(&c, t, &[5]), [false]);
    }

    #[test]
    fn the_rows_used_lately_stay_within_the_bound() {
        let c = RowCache::default();
        let t = Uuid::from_u128(1);
        let generation = c.checked([t], &[], &[], "s1", Instant::now())[&t];
        let text = "x".repeat(1000);
        let per_half = (BYTES / 2) / (text.len() + ROW_COST);
        c.put(t, generation, &[at(0, &text)]);
        for i in 1..(3 * per_half as i64) {
            c.put(t, generation, &[at(i, &text)]);
            // Row 0 is used all along: it stays.
            assert_eq!(kept(&c, t, &[0]), [true], "row 0 dropped at {i}");
        }
        let inner = c.0.lock().unwrap();
        assert!(inner.newer.bytes + inner.older.bytes <= BYTES + text.len() + ROW_COST);
        drop(inner);
        assert_eq!(kept(&c, t, &[1]), [false]);
    }
}
