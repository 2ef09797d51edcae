//! Connections that reads hand on to one another without sqlx's test on the way back.
//!
//! sqlx tests every connection given back to its pool with a round trip (a `Sync` and its
//! `ReadyForQuery`), whatever it was used for. `held.rs` spares the queue workers that test;
//! this spares the reads that run their own statements (a page of messages, above all): under
//! a page load that test was 8 % of this process's CPU, besides PostgreSQL's backend woken to
//! answer it; without it a page took 10–20 % less of the machine's CPU (docs/performance.md,
//! thirty-first session).
//!
//! A read borrows a connection ([`Warm::lend`]), runs its statements on it, and says it is done
//! ([`Lent::done`]) once they all finished: only then is the connection known to be between
//! statements, and it goes to the next read as it is. A read that fails or is dropped half-way
//! (its client went away) gives its connection to the pool instead, whose test then rolls back
//! or closes whatever was left. Reads wait for a connection in turn (first come, first served).
//! The pool is the reads' own: a connection kept here is one nobody else can have until no
//! read asks for it, and on the main pool reads that never pause had kept the appends' workers
//! waiting (`tests/pg_warm_reads.rs`). One kept unused for [`LINGER`] goes back to the pool, so
//! a quiet server holds nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::Result;

/// How long a connection no read asked for stays kept (the queue workers' linger, for the same
/// reason: longer than the gap between one client's requests).
pub(super) const LINGER: Duration = super::queue::LINGER;

pub(super) struct Warm {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    permits: Semaphore,
    /// Connections between reads, the most recently used last.
    idle: Mutex<Vec<(PoolConnection<Postgres>, Instant)>>,
    closed: AtomicBool,
}

/// A connection lent to one read.
pub(super) struct Lent<'a> {
    conn: Option<PoolConnection<Postgres>>,
    inner: &'a Inner,
    _permit: SemaphorePermit<'a>,
}

impl Warm {
    /// Lends at most `lendable` of `pool`'s connections at once (at least one): all of a pool
    /// of its own.
    pub fn new(pool: PgPool, lendable: usize) -> Warm {
        let inner = Arc::new(Inner {
            pool,
            permits: Semaphore::new(lendable.max(1)),
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(sweep(Arc::downgrade(&inner)));
        Warm { inner }
    }

    /// A connection for one read: the one used last, or one from the pool.
    pub async fn lend(&self) -> Result<Lent<'_>> {
        let inner = &*self.inner;
        let permit = inner
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let kept = inner.idle.lock().expect("idle list").pop();
        let conn = match kept {
            Some((c, _)) => c,
            None => inner.pool.acquire().await?,
        };
        Ok(Lent {
            conn: Some(conn),
            inner,
            _permit: permit,
        })
    }

    /// Gives every kept connection back and closes the pool (which waits for the lent ones).
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let kept = std::mem::take(&mut *self.inner.idle.lock().expect("idle list"));
        drop(kept);
        self.inner.pool.close().await;
    }
}

impl Lent<'_> {
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("lent until done")
    }

    /// Every statement of the read finished: the connection goes to the next read untested.
    pub fn done(mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.inner.closed.load(Ordering::SeqCst) {
            return; // to the pool
        }
        self.inner
            .idle
            .lock()
            .expect("idle list")
            .push((conn, Instant::now()));
    }
}

// Dropped without `done` (an error, or the read's future dropped mid-statement): the connection
// goes back to the pool, and its test, by dropping it.

/// Gives back connections kept unused for [`LINGER`], until the store is gone or closed.
async fn sweep(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(LINGER);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::SeqCst) {
            return;
        }
        let stale: Vec<_> = {
            let mut idle = inner.idle.lock().expect("idle list");
            // Oldest first: the stale ones are a prefix.
            let n = idle
                .iter()
                .take_while(|(_, t)| t.elapsed() >= LINGER)
                .count();
            idle.drain(..n).collect()
        };
        drop(stale);
    }
}
