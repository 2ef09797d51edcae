//! Analytics summaries on PostgreSQL, one query per tenant for all the requests waiting.
//!
//! A dashboard's summary is one statement over the tenant's counts (`stats.rs`), about 0.3 ms
//! of PostgreSQL's CPU, half of it planning, and every open dashboard asks for it again and
//! again. Summaries wait in a queue, as lookups and appends do (`read_batch.rs`,
//! `append_batch.rs`): a worker takes every waiting request, runs the query once per tenant
//! among them, and gives each request its tenant's answer. That answer is as fresh as one of
//! the request's own: the query starts after every request it serves has arrived, and its
//! "now" is the latest of theirs, a moment inside every one of those requests' lifetimes. A
//! request that finds the queue empty runs at once. If a tenant's query fails, each of its
//! requests runs again alone, so each gets its own answer or error.

use sqlx::PgPool;
use time::OffsetDateTime;

use super::queue::{self, Asked, Queue};
use super::stats;
use crate::error::Result;
use crate::stats::Summary;
use crate::types::TenantId;

/// Most requests taken at once.
const MAX_BATCH: usize = 256;

type Ask = Asked<(TenantId, OffsetDateTime), Summary>;

pub(super) struct Summaries(Queue<(TenantId, OffsetDateTime), Summary>);

impl Summaries {
    /// `counted`: whether triggers keep the summary's counts (`stats::summary`).
    pub fn start(pool: PgPool, counted: bool) -> Summaries {
        let workers = queue::workers(pool.options().get_max_connections());
        Summaries(Queue::start(workers, MAX_BATCH, move |batch| {
            let pool = pool.clone();
            async move { answer(&pool, counted, batch).await }
        }))
    }

    /// The tenant's summary as of `now` or a little later (see the module's comment).
    pub async fn get(&self, tenant: TenantId, now: OffsetDateTime) -> Result<Summary> {
        self.0.ask((tenant, now)).await
    }

    /// Stops taking requests and waits for the queued ones to be answered.
    pub async fn close(&self) {
        self.0.close().await;
    }
}

/// One query per tenant among `batch`, in the order they first asked.
async fn answer(pool: &PgPool, counted: bool, mut batch: Vec<Ask>) {
    while let Some(first) = batch.first() {
        let tenant = first.req.0;
        let (same, rest): (Vec<Ask>, Vec<Ask>) = batch.into_iter().partition(|a| a.req.0 == tenant);
        batch = rest;
        // A group holds at least one request, so the fallback is never used.
        let now = same
            .iter()
            .map(|a| a.req.1)
            .max()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        queue::together_or_alone(
            same,
            "summaries",
            |reqs| async move {
                let sum = stats::summary(pool, counted, tenant, now).await?;
                Ok(reqs.iter().map(|_| Ok(sum.clone())).collect())
            },
            |(tenant, now)| stats::summary(pool, counted, tenant, now),
        )
        .await;
    }
}
