//! One first read of a query's window at a time (kept.rs).
//!
//! A query no window is kept for is read afresh: on PostgreSQL tens or hundreds of milliseconds
//! of its CPU for a word in a few per cent of messages. When many clients search it at once (a
//! dashboard opened by a team, a popular word after its window was pushed out), each read the
//! same window, and the last ones waited for all the others. Now the first search of such a
//! query leads: later searches of it wait, holding no connection, until the leader has read and
//! kept the window, then answer from it like any repeated search (checked, and brought forward
//! if something was written meanwhile). Only the read of a missing window is led: a kept window
//! found stale is brought forward by each search on its own, which costs little and must not
//! queue searches behind one another while appends go on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedRwLockWriteGuard, RwLock};

/// The reads in flight, by query (the tsquery, which carries the tenant's tag).
#[derive(Default)]
pub(super) struct Flights(Mutex<HashMap<String, Arc<RwLock<()>>>>);

/// What joining a flight gave.
pub(super) enum Flight<'a> {
    /// None was in flight: this search reads the window; later ones wait until this is dropped.
    Lead(Leader<'a>),
    /// One was, and has ended (kept its window, or failed).
    Followed,
}

/// Held by the search that reads a window, for as long as it does.
pub(super) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    lock: Arc<RwLock<()>>,
    _write: OwnedRwLockWriteGuard<()>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.0.lock().expect("flights lock");
        // Only this flight's entry: a later one may have taken the key since.
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::ptr_eq(l, &self.lock))
        {
            map.remove(&self.key);
        }
        // The write guard goes after this, waking the followers.
    }
}

impl Flights {
    /// Leads the read of `key`'s window, or waits for the one in flight to end.
    pub async fn join(&self, key: &str) -> Flight<'_> {
        let lock = self
            .0
            .lock()
            .expect("flights lock")
            .entry(key.to_owned())
            .or_default()
            .clone();
        match lock.clone().try_write_owned() {
            Ok(write) => Flight::Lead(Leader {
                flights: self,
                key: key.to_owned(),
                lock,
                _write: write,
            }),
            Err(_) => {
                drop(lock.read().await);
                Flight::Followed
            }
        }
    }

    /// Reads in flight.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().expect("flights lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The first to join leads; the others wait until it is done; then the key is free again.
    #[tokio::test]
    async fn followers_wait_for_the_leader() {
        let flights = Arc::new(Flights::default());
        let Flight::Lead(leader) = flights.join("q").await else {
            panic!("the first leads");
        };
        let waiting = {
            let flights = flights.clone();
            tokio::spawn(async move { matches!(flights.join("q").await, Flight::Followed) })
        };
        // Another query is not held up.
        assert!(matches!(flights.join("other").await, Flight::Lead(_)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a follower waits for the leader");
        drop(leader);
        assert!(waiting.await.unwrap());
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.join("q").await, Flight::Lead(_)));
    }
}
