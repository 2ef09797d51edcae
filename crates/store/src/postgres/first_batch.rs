//! First searches of one word on PostgreSQL, their two statements shared with the other first
//! searches waiting.
//!
//! A first page of one word with every segment's postings built (postings.rs) is two
//! statements: its newest segments with the snapshot, then the page's rows. Each is little work
//! for PostgreSQL, so what a search cost was mostly the round trips: PostgreSQL's backend woken
//! to bind and execute each, this process's driver, the kernel's socket work on both sides (on
//! the benchmark's store, 0.16 ms of PostgreSQL's CPU and as much of confab's a search; docs/
//! performance.md, thirty-ninth session). So both wait in queues, as conversation lookups do
//! (read_batch.rs): a worker takes every search waiting and answers them with one statement.
//! The segments' statement takes one snapshot for all of them, after all of them arrived, so
//! no window is older than its own statement would have made it. Each answer is matched to its
//! request by its position in the statement's arrays, and the rows by tenant as well as rowid,
//! so one tenant's search is never given another's. If a batch's statement fails, each search
//! runs it again alone.

use std::sync::Arc;

use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::postings::{self, Newest};
use super::queue::{self, Asked, Queue};
use super::row_cache::RowCache;
use super::search::HitRow;
use crate::error::Result;

/// Most searches in one statement.
const MAX_BATCH: usize = 128;

/// A first page's newest segments: `(tenant, lexeme, segments wanted)`.
type SegmentsKey = (Uuid, String, i64);
/// A page's rows: the tenant and the rowids, in the page's order.
type RowsKey = (Uuid, Vec<i64>);
/// The rows found, in the page's order (a row deleted since the window was read is missing).
pub(super) type PageRows = Vec<(i64, Arc<HitRow>)>;

pub(super) struct Firsts {
    segments: Queue<SegmentsKey, Newest>,
    rows: Queue<RowsKey, PageRows>,
    /// The rows of the pages read, for the next pages that show them.
    cache: Arc<RowCache>,
}

impl Firsts {
    /// Workers on `pool` (the searches' own).
    pub fn start(pool: PgPool) -> Firsts {
        let workers = queue::workers(pool.options().get_max_connections());
        let cache = Arc::new(RowCache::default());
        let (on, kept) = (pool.clone(), cache.clone());
        let segments = Queue::start(workers, MAX_BATCH, move |batch| {
            let (pool, cache) = (on.clone(), kept.clone());
            async move { answer_segments(&pool, &cache, batch).await }
        });
        let rows = Queue::start(workers, MAX_BATCH, move |batch| {
            let pool = pool.clone();
            async move { answer_rows(&pool, batch).await }
        });
        Firsts {
            segments,
            rows,
            cache,
        }
    }

    /// `lexeme`'s newest segments (at most `limit`) with the newest rowid and the snapshot,
    /// through the next batch.
    pub async fn newest(&self, tenant: Uuid, lexeme: String, limit: i64) -> Result<Newest> {
        self.segments.ask((tenant, lexeme, limit)).await
    }

    /// The tenant's rows of `rowids`, in their order: those kept (row_cache.rs), and the others
    /// through the next batch, kept then in `generation` (a first page's
    /// [`Newest::rows_gen`]).
    pub async fn rows(&self, tenant: Uuid, rowids: Vec<i64>, generation: u64) -> Result<PageRows> {
        let kept = self.cache.get(tenant, &rowids);
        let missing: Vec<i64> = rowids
            .iter()
            .zip(&kept)
            .filter(|(_, k)| k.is_none())
            .map(|(r, _)| *r)
            .collect();
        let (from_cache, read) = (rowids.len() - missing.len(), missing.len());
        metrics::counter!("confab_store_search_page_rows_total", "from" => "cache")
            .increment(from_cache as u64);
        if missing.is_empty() {
            return Ok(rowids.into_iter().zip(kept.into_iter().flatten()).collect());
        }
        metrics::counter!("confab_store_search_page_rows_total", "from" => "statement")
            .increment(read as u64);
        let found = self.rows.ask((tenant, missing)).await?;
        self.cache.put(tenant, generation, &found);
        // In the page's order; a row deleted since the window was read is missing.
        let mut found = found.into_iter().peekable();
        let mut page = Vec::with_capacity(rowids.len());
        for (rowid, k) in rowids.into_iter().zip(kept) {
            match k {
                Some(row) => page.push((rowid, row)),
                None => {
                    if let Some((_, row)) = found.next_if(|(r, _)| *r == rowid) {
                        page.push((rowid, row));
                    }
                }
            }
        }
        Ok(page)
    }

    /// Stops taking searches and waits for the queued ones to be answered.
    pub async fn close(&self) {
        self.segments.close().await;
        self.rows.close().await;
    }
}

async fn answer_segments(pool: &PgPool, cache: &RowCache, batch: Vec<Asked<SegmentsKey, Newest>>) {
    queue::together_or_alone(
        batch,
        "first searches",
        |keys| async move {
            Ok(postings::newest_segments_of(pool, &keys, cache)
                .await?
                .into_iter()
                .map(Ok)
                .collect())
        },
        |key| async move {
            Ok(postings::newest_segments_of(pool, &[key], cache)
                .await?
                .swap_remove(0))
        },
    )
    .await;
}

async fn answer_rows(pool: &PgPool, batch: Vec<Asked<RowsKey, PageRows>>) {
    queue::together_or_alone(
        batch,
        "search hit rows",
        |keys| async move { Ok(page_rows(pool, &keys).await?.into_iter().map(Ok).collect()) },
        |key| async move { Ok(page_rows(pool, &[key]).await?.swap_remove(0)) },
    )
    .await;
}

/// The rows of many pages: `$1` each rowid's page (its 1-based position in the batch), `$2` its
/// tenant, `$3` the rowid. Read through subqueries, as [`postings::NEWEST_OF`] is: planned once
/// per connection.
pub(super) const PAGE_ROWS: &str = "SELECT m.rowid, m.conversation_id, m.id, m.seq, m.role, m.content, m.created_at, q.i \
     FROM unnest((SELECT $1::int8[]), (SELECT $2::uuid[]), (SELECT $3::int8[])) AS q(i, t, r) \
     JOIN messages m ON m.rowid = q.r AND m.tenant_id = q.t";

/// Each page's rows, in its order: one statement over the rowids of them all, each beside its
/// page's 1-based position and tenant.
async fn page_rows(pool: &PgPool, keys: &[RowsKey]) -> Result<Vec<PageRows>> {
    let n: usize = keys.iter().map(|k| k.1.len()).sum();
    let (mut at, mut tenants, mut rowids) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (i, (tenant, page)) in keys.iter().enumerate() {
        for &rowid in page {
            at.push(i as i64 + 1);
            tenants.push(*tenant);
            rowids.push(rowid);
        }
    }
    let rows = sqlx::query(PAGE_ROWS)
        .bind(at)
        .bind(tenants)
        .bind(rowids)
        .fetch_all(pool)
        .await?;
    // A page's rows in a vector sized for them: a map of twenty grew four times.
    let mut found: Vec<PageRows> = keys.iter().map(|k| Vec::with_capacity(k.1.len())).collect();
    for r in &rows {
        let page = queue::slot(&mut found, r.try_get(7)?, "search hit rows")?;
        page.push((r.try_get(0)?, Arc::new(HitRow::read(r)?)));
    }
    Ok(keys
        .iter()
        .zip(found)
        .map(|((_, page), mut rows)| {
            page.iter()
                .filter_map(|rowid| {
                    let at = rows.iter().position(|r| r.0 == *rowid)?;
                    Some(rows.swap_remove(at))
                })
                .collect()
        })
        .collect())
}
