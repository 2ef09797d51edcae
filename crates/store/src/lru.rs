//! A small map of the most recently used entries, for what a backend keeps in memory between
//! searches (sqlite/windows.rs, postgres/kept.rs). Each backend decides when an entry may
//! serve and when a new one replaces the old; this only keeps at most [`CAPACITY`] of them and
//! drops the least recently used first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Entries kept at most.
pub const CAPACITY: usize = 256;

pub struct Lru<W>(Mutex<Inner<W>>);

struct Inner<W> {
    /// Key → its entry and when it was last used.
    map: HashMap<String, (Arc<W>, u64)>,
    clock: u64,
}

impl<W> Default for Lru<W> {
    fn default() -> Self {
        Lru(Mutex::new(Inner {
            map: HashMap::new(),
            clock: 0,
        }))
    }
}

impl<W> Lru<W> {
    /// The entry under `key` if `serves` accepts it; counts as a use either way.
    pub fn get(&self, key: &str, serves: impl FnOnce(&W) -> bool) -> Option<Arc<W>> {
        let mut kept = self.0.lock().expect("lru lock");
        kept.clock += 1;
        let now = kept.clock;
        let (w, used) = kept.map.get_mut(key)?;
        if !serves(w) {
            return None;
        }
        *used = now;
        Some(w.clone())
    }

    /// Keeps `w` under `key`, in place of what is kept there if `replaces` says so of it.
    pub fn put(&self, key: &str, w: Arc<W>, replaces: impl FnOnce(&W) -> bool) {
        let mut kept = self.0.lock().expect("lru lock");
        kept.clock += 1;
        let now = kept.clock;
        if let Some((old, used)) = kept.map.get_mut(key) {
            if replaces(old) {
                *old = w;
            }
            *used = now;
            return;
        }
        if kept.map.len() >= CAPACITY {
            let oldest = kept
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(q, _)| q.clone());
            if let Some(q) = oldest {
                kept.map.remove(&q);
            }
        }
        kept.map.insert(key.to_owned(), (w, now));
    }

    /// Forgets what is kept under `key`.
    pub fn remove(&self, key: &str) {
        self.0.lock().expect("lru lock").map.remove(key);
    }

    /// How many entries are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.lock().expect("lru lock").map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let lru = Lru::default();
        for i in 0..CAPACITY {
            lru.put(&format!("q{i}"), Arc::new(i), |_| true);
        }
        // q0 used again: q1 is now the least recently used.
        assert!(lru.get("q0", |_| true).is_some());
        lru.put("new", Arc::new(0), |_| true);
        assert_eq!(lru.len(), CAPACITY);
        assert!(lru.get("q0", |_| true).is_some());
        assert!(lru.get("q1", |_| true).is_none());
        assert!(lru.get("new", |_| true).is_some());
    }

    #[test]
    fn an_entry_serves_and_is_replaced_only_when_told() {
        let lru = Lru::default();
        lru.put("q", Arc::new(5), |_| true);
        assert!(lru.get("q", |&v| v > 5).is_none());
        assert_eq!(*lru.get("q", |&v| v == 5).unwrap(), 5);
        lru.put("q", Arc::new(3), |&old| old < 3);
        assert_eq!(*lru.get("q", |_| true).unwrap(), 5);
        lru.put("q", Arc::new(7), |&old| old < 7);
        assert_eq!(*lru.get("q", |_| true).unwrap(), 7);
        lru.remove("q");
        assert!(lru.get("q", |_| true).is_none());
    }
}
