//! Conversation lookups on PostgreSQL, many requests per statement.
//!
//! Fetching one conversation by key is a trivial query, so what it costs is the round trip:
//! PostgreSQL's backend woken to parse, bind and execute it, this process's driver encoding and
//! decoding the protocol, and the kernel's socket work on both sides, about as much again as
//! the HTTP request it serves (at 64 connections, 24,000 lookups/s against an HTTP floor of
//! 88,000 on the same machine; docs/performance.md, 2026-11-30, twelfth session). So lookups
//! wait in a queue, as plain appends do (`append_batch.rs`): a worker takes every waiting one
//! and fetches them all with one statement over arrays of their keys. A lookup that finds the
//! queue empty runs at once, with the single-row query, so a quiet server answers as fast as
//! before; under load the batches form by themselves. Each key is matched to its own row by its
//! position in the arrays, tenant and id together, so one tenant's request can never be given
//! another's row. If the batch's statement fails, each lookup runs again on its own, so every
//! caller gets its own answer or its own error.

use std::sync::LazyLock;

use confab_core::Conversation;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::queue::{self, Asked, Queue};
use super::read;
use super::rows::{self, CONVERSATION_COLS};
use crate::error::{Result, StoreError};
use crate::types::TenantId;

/// Most lookups in one statement.
const MAX_BATCH: usize = 128;

type Lookup = Asked<(TenantId, Uuid), Conversation>;

pub(super) struct Lookups(Queue<(TenantId, Uuid), Conversation>);

impl Lookups {
    pub fn start(pool: PgPool) -> Lookups {
        let workers = queue::workers(pool.options().get_max_connections());
        Lookups(Queue::start(workers, MAX_BATCH, move |batch| {
            let pool = pool.clone();
            async move { answer(&pool, batch).await }
        }))
    }

    /// The tenant's conversation `id`, through the next batch; `NotFound` if the tenant has no
    /// such conversation.
    pub async fn get(&self, tenant: TenantId, id: Uuid) -> Result<Conversation> {
        self.0.ask((tenant, id)).await
    }

    /// Stops taking lookups and waits for the queued ones to be answered.
    pub async fn close(&self) {
        self.0.close().await;
    }
}

async fn answer(pool: &PgPool, mut batch: Vec<Lookup>) {
    if batch.len() == 1 {
        let one = batch.remove(0);
        let (tenant, id) = one.req;
        one.answer(read::conversation(pool, tenant, id).await);
        return;
    }
    queue::together_or_alone(
        batch,
        "lookups",
        |keys| async move {
            let found = fetch(pool, &keys).await?;
            Ok(found
                .into_iter()
                .map(|row| row.ok_or(StoreError::NotFound))
                .collect())
        },
        |(tenant, id)| read::conversation(pool, tenant, id),
    )
    .await;
}

/// The batch's conversations, in the batch's order (`None` where the tenant has none by that
/// id). `q.i` is each key's 1-based position in the arrays.
async fn fetch(pool: &PgPool, keys: &[(TenantId, Uuid)]) -> Result<Vec<Option<Conversation>>> {
    // Rendered once: the statement and where `q.i` sits in its rows.
    static SQL: LazyLock<(String, usize)> = LazyLock::new(|| {
        (
            format!(
                "SELECT {CONVERSATION_COLS}, q.i FROM unnest($1::uuid[], $2::uuid[]) WITH \
                 ORDINALITY AS q(t, k, i) JOIN conversations ON conversations.tenant_id = q.t \
                 AND conversations.id = q.k"
            ),
            CONVERSATION_COLS.split(',').count(),
        )
    });
    let (sql, position) = (SQL.0.as_str(), SQL.1);
    let (tenants, ids): (Vec<Uuid>, Vec<Uuid>) = keys.iter().map(|(t, id)| (t.0, *id)).unzip();
    let found = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenants)
        .bind(ids)
        .fetch_all(pool)
        .await?;
    let mut out: Vec<Option<Conversation>> = (0..keys.len()).map(|_| None).collect();
    for row in &found {
        *queue::slot(&mut out, row.try_get(position)?, "lookup")? = Some(rows::conversation(row)?);
    }
    Ok(out)
}
