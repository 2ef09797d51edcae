//! The job queue on PostgreSQL. A claim is `UPDATE … WHERE key = (SELECT … LIMIT 1 FOR UPDATE
//! SKIP LOCKED) RETURNING`: concurrent claimers, in this process or another, each lock a
//! different due row and never wait on one another, so no job is handed out twice.

use std::time::Duration;

use confab_core::timefmt::{from_micros, to_micros};
use sqlx::Row;
use uuid::Uuid;

use super::PgStore;
use crate::error::{Result, StoreError};
use crate::jobs::{Backfill, FailOutcome, Job, JobCounts, KIND_INSIGHTS, RetryPolicy};
use crate::types::TenantId;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2)
}

/// Longest error text kept per job.
const MAX_ERROR: usize = 2000;

impl PgStore {
    pub async fn claim_job(&self, lease: Duration) -> Result<Option<Job>> {
        let lease = micros(lease);
        self.exec(move |c, now| {
                Box::pin(async move {
                    let now = to_micros(now);
                    let row = sqlx::query(
                        "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = $1, updated_at = $2 \
                         WHERE (tenant_id, id) = (SELECT tenant_id, id FROM jobs \
                           WHERE (state = 'queued' AND run_at <= $3) OR (state = 'running' AND locked_until <= $4) \
                           ORDER BY run_at, rowid LIMIT 1 FOR UPDATE SKIP LOCKED) \
                         RETURNING tenant_id, id, kind, conversation_id, attempts",
                    )
                    .bind(now.saturating_add(lease))
                    .bind(now)
                    .bind(now)
                    .bind(now)
                    .fetch_optional(&mut *c)
                    .await?;
                    let Some(r) = row else { return Ok(None) };
                    Ok(Some(Job {
                        tenant: TenantId(r.try_get(0)?),
                        id: r.try_get(1)?,
                        kind: r.try_get(2)?,
                        conversation_id: r.try_get(3)?,
                        attempt: r.try_get(4)?,
                    }))
                })
            })
            .await
    }

    /// The end of an insights job in one transaction: its insights stored (unless the
    /// conversation is gone) and the job marked done (`false` when the claim was stale; the
    /// insights are stored even so, as a separate write would have).
    pub async fn complete_insights_job(
        &self,
        job: &Job,
        insights: Option<confab_core::Insights>,
    ) -> Result<bool> {
        let (tenant, id, attempt) = (job.tenant, job.id, job.attempt);
        self.exec(move |c, now| {
            Box::pin(async move {
                if let Some(i) = &insights {
                    match super::insights::upsert(c, tenant, i, now).await {
                        Ok(()) | Err(StoreError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                mark_done(c, tenant, id, attempt, now).await
            })
        })
        .await
    }

    pub async fn fail_job(
        &self,
        job: &Job,
        error: &str,
        policy: &RetryPolicy,
    ) -> Result<FailOutcome> {
        let (tenant, id, attempt) = (job.tenant, job.id, job.attempt);
        let error: String = error.chars().take(MAX_ERROR).collect();
        let give_up = attempt >= policy.max_attempts;
        let delay = micros(policy.delay_after(attempt));
        self.exec(move |c, now| {
                Box::pin(async move {
                    let run_at = to_micros(now).saturating_add(delay);
                    let n = sqlx::query(
                        "UPDATE jobs SET state = $1, run_at = $2, locked_until = NULL, last_error = $3, updated_at = $4 \
                         WHERE tenant_id = $5 AND id = $6 AND state = 'running' AND attempts = $7",
                    )
                    .bind(if give_up { "failed" } else { "queued" })
                    .bind(run_at)
                    .bind(&error)
                    .bind(to_micros(now))
                    .bind(tenant.0)
                    .bind(id)
                    .bind(attempt)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                    Ok(match (n, give_up) {
                        (0, _) => FailOutcome::Stale,
                        (_, true) => FailOutcome::GaveUp,
                        (_, false) => FailOutcome::Retry(from_micros(run_at)),
                    })
                })
            })
            .await
    }

    pub async fn enqueue_insights_job(&self, tenant: TenantId, conversation: Uuid) -> Result<Uuid> {
        self.exec(move |c, now| {
                Box::pin(async move {
                    let exists: Option<i64> = sqlx::query_scalar(
                        "SELECT 1::bigint FROM conversations WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
                    )
                    .bind(tenant.0)
                    .bind(conversation)
                    .fetch_optional(&mut *c)
                    .await?;
                    if exists.is_none() {
                        return Err(StoreError::NotFound);
                    }
                    // The row lock above makes concurrent refreshes (from any process) take turns,
                    // so the second finds the first's job here. A job not yet started will read
                    // the latest messages anyway: reuse it.
                    let waiting: Option<Uuid> = sqlx::query_scalar(
                        "SELECT id FROM jobs WHERE tenant_id = $1 AND conversation_id = $2 AND kind = $3 \
                         AND state = 'queued' ORDER BY run_at LIMIT 1",
                    )
                    .bind(tenant.0)
                    .bind(conversation)
                    .bind(KIND_INSIGHTS)
                    .fetch_optional(&mut *c)
                    .await?;
                    if let Some(id) = waiting {
                        // Due now: a refresh should not wait out a retry backoff.
                        sqlx::query("UPDATE jobs SET run_at = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4")
                            .bind(to_micros(now))
                            .bind(to_micros(now))
                            .bind(tenant.0)
                            .bind(id)
                            .execute(&mut *c)
                            .await?;
                        return Ok(id);
                    }
                    let id = Uuid::now_v7();
                    insert_job(c, tenant.0, id, conversation, to_micros(now)).await?;
                    Ok(id)
                })
            })
            .await
    }

    pub async fn enqueue_backfill(&self, which: Backfill) -> Result<u64> {
        let (cond, since) = match which {
            Backfill::Missing => (
                "AND NOT EXISTS (SELECT 1 FROM insights i WHERE i.tenant_id = c.tenant_id AND i.conversation_id = c.id)",
                None,
            ),
            Backfill::All => ("", None),
            Backfill::Since(t) => ("AND c.completed_at >= $1", Some(to_micros(t))),
        };
        let sql = format!(
            "SELECT c.tenant_id, c.id FROM conversations c WHERE c.status = 'completed' AND c.\"analyze\" {cond} \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.tenant_id = c.tenant_id AND j.conversation_id = c.id \
               AND j.kind = 'insights' AND j.state IN ('queued', 'running'))"
        );
        self.exec(move |c, now| {
            Box::pin(async move {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                if let Some(s) = since {
                    q = q.bind(s);
                }
                let rows = q.fetch_all(&mut *c).await?;
                let mut n = 0;
                for r in rows {
                    let tenant: Uuid = r.try_get(0)?;
                    let conv: Uuid = r.try_get(1)?;
                    insert_job(c, tenant, Uuid::now_v7(), conv, to_micros(now)).await?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .await
    }

    pub async fn job_counts(&self) -> Result<JobCounts> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut out = JobCounts::default();
        for r in rows {
            out.add(r.try_get(0)?, r.try_get(1)?)?;
        }
        Ok(out)
    }
}

async fn insert_job(
    c: &mut sqlx::PgConnection,
    tenant: Uuid,
    id: Uuid,
    conversation: Uuid,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (tenant_id, id, kind, conversation_id, state, attempts, run_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(id)
    .bind(KIND_INSIGHTS)
    .bind(conversation)
    .bind(now)
    .bind(now)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Marks a claimed job done inside the caller's transaction, only for the claim that holds
/// the current attempt; `false` when the claim was stale.
async fn mark_done(
    c: &mut sqlx::PgConnection,
    tenant: TenantId,
    id: Uuid,
    attempt: i64,
    now: time::OffsetDateTime,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE jobs SET state = 'done', locked_until = NULL, last_error = NULL, updated_at = $1 \
             WHERE tenant_id = $2 AND id = $3 AND state = 'running' AND attempts = $4",
    )
    .bind(to_micros(now))
    .bind(tenant.0)
    .bind(id)
    .bind(attempt)
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok(n == 1)
}
