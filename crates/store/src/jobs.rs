//! The durable job queue (insights today). Jobs are rows written in the same transaction as the
//! change that causes them, so a crash between "completed" and "analysed" loses nothing.
//!
//! A claim leases a job until `locked_until`; a worker that dies simply lets the lease run out
//! and the next claim takes the job again. `attempts` doubles as a fencing token: completing or
//! failing a job only counts for the claim that holds the current attempt, so a worker that
//! wakes up after its lease was taken over cannot overwrite the new owner's outcome.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, Store, TenantId};

/// The only job kind so far.
pub const KIND_INSIGHTS: &str = "insights";

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Whose job it is.
    pub tenant: TenantId,
    /// Job id.
    pub id: Uuid,
    /// What to do (`insights`).
    pub kind: String,
    /// The conversation it concerns.
    pub conversation_id: Option<Uuid>,
    /// Which attempt this claim is (1 for the first); also the claim's fencing token.
    pub attempt: i64,
}

/// How failed jobs are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts before a job is marked `failed` for good.
    pub max_attempts: i64,
    /// Delay after the first failure; doubled after each further one.
    pub base_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The wait before the attempt after `attempt` failed: base × 2^(attempt−1), capped.
    pub fn delay_after(&self, attempt: i64) -> Duration {
        let exp = attempt.clamp(1, 30) - 1;
        self.base_delay
            .saturating_mul(1u32 << exp.min(31) as u32)
            .min(self.max_delay)
    }
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again to run at this time.
    Retry(OffsetDateTime),
    /// Out of attempts: state `failed`.
    GaveUp,
    /// The claim was stale (another worker holds the job now, or it is gone): nothing changed.
    Stale,
}

/// Which conversations `enqueue_backfill` queues.
#[derive(Debug, Clone, Copy)]
pub enum Backfill {
    /// Completed conversations that have no insights yet.
    Missing,
    /// Every completed conversation (recompute).
    All,
    /// Conversations completed at or after this time.
    Since(OffsetDateTime),
}

/// Counts of jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Waiting (including retries not yet due).
    pub queued: i64,
    /// Claimed.
    pub running: i64,
    /// Finished.
    pub done: i64,
    /// Out of attempts.
    pub failed: i64,
}

impl JobCounts {
    /// Counts `n` jobs in the stored `state`; a state no job can be in is corruption.
    pub(crate) fn add(&mut self, state: &str, n: i64) -> Result<()> {
        let slot = match state {
            "queued" => &mut self.queued,
            "running" => &mut self.running,
            "done" => &mut self.done,
            "failed" => &mut self.failed,
            other => {
                return Err(crate::StoreError::Corrupt(format!("job state `{other}`")));
            }
        };
        *slot += n;
        Ok(())
    }
}

impl Store {
    /// Takes the next due job (queued and due, or running with an expired lease) and leases it
    /// for `lease`. Never hands the same lease to two callers.
    pub async fn claim_job(&self, lease: Duration) -> Result<Option<Job>> {
        dispatch!(self, b => b.claim_job(lease).await)
    }

    /// Ends a claimed insights job in one transaction: `insights` stored (skipped when the
    /// conversation is gone, or `None`) and the job marked done; `false` when the claim was
    /// stale. The insights and the job's `done` are one commit, never one without the other.
    pub async fn complete_insights_job(
        &self,
        job: &Job,
        insights: Option<confab_core::Insights>,
    ) -> Result<bool> {
        dispatch!(self, b => b.complete_insights_job(job, insights).await)
    }

    /// Records a failure: queued again after a backoff, or `failed` when out of attempts.
    pub async fn fail_job(
        &self,
        job: &Job,
        error: &str,
        policy: &RetryPolicy,
    ) -> Result<FailOutcome> {
        dispatch!(self, b => b.fail_job(job, error, policy).await)
    }

    /// Queues (re)analysis of one conversation; `NotFound` when it does not exist for this
    /// tenant. A job already waiting for it is reused. Answers the job id.
    pub async fn enqueue_insights(&self, tenant: &TenantId, conversation: Uuid) -> Result<Uuid> {
        dispatch!(self, b => b.enqueue_insights_job(*tenant, conversation).await)
    }

    /// Queues analysis of many conversations across every tenant (the `confab analyze`
    /// backfill); skips conversations that opted out or already have a job waiting. Answers how
    /// many jobs were queued.
    pub async fn enqueue_backfill(&self, which: Backfill) -> Result<u64> {
        dispatch!(self, b => b.enqueue_backfill(which).await)
    }

    /// Jobs by state, across tenants (operations and the CLI's progress).
    pub async fn job_counts(&self) -> Result<JobCounts> {
        dispatch!(self, b => b.job_counts().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_state_and_an_unknown_state_is_corruption() {
        let mut c = JobCounts::default();
        for (state, n) in [("queued", 3), ("running", 1), ("done", 7), ("failed", 2)] {
            c.add(state, n).unwrap();
        }
        let want = JobCounts {
            queued: 3,
            running: 1,
            done: 7,
            failed: 2,
        };
        assert_eq!(c, want);
        assert!(matches!(
            c.add("paused", 1),
            Err(crate::StoreError::Corrupt(m)) if m.contains("paused")
        ));
        assert_eq!(c, want);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1), Duration::from_secs(10));
        assert_eq!(p.delay_after(2), Duration::from_secs(20));
        assert_eq!(p.delay_after(4), Duration::from_secs(80));
        assert_eq!(p.delay_after(40), Duration::from_secs(3600));
    }
}
