//! A connection a queue worker keeps while requests keep coming.
//!
//! sqlx tests every connection given back to its pool with a round trip (a `Sync` and its
//! `ReadyForQuery`), whatever it was used for. A batch of appends is four round trips of its
//! own (`append_batch.rs`), so that test made every batch a fifth more work for PostgreSQL, for
//! this process and for the kernel between them: without it, appends at 64 connections took
//! 10–15 % less CPU each and ran 1.2 × faster where CPU bounds them (docs/performance.md,
//! 2026-12-01, nineteenth session). So the append workers
//! keep their connection from one batch to the next, and give it back (tested, as before) once
//! no request has come for [`super::queue::LINGER`], or after a batch failed: a connection that
//! broke is never used again, and one that a failure left mid-transaction is rolled back by
//! sqlx's test before anyone else takes it.

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

use super::queue::Keep;
use crate::error::Result;

pub(super) struct Held {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl Held {
    pub fn new(pool: PgPool) -> Held {
        Held { pool, conn: None }
    }

    /// The connection kept, or a new one from the pool.
    pub async fn conn(&mut self) -> Result<&mut PgConnection> {
        let conn = match self.conn.take() {
            Some(c) => c,
            None => self.pool.acquire().await?,
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// Gives the connection back to the pool, which tests it.
    pub fn give_back(&mut self) {
        self.conn = None;
    }
}

impl Keep for Held {
    fn holds(&self) -> bool {
        self.conn.is_some()
    }

    fn let_go(&mut self) {
        self.give_back();
    }
}
