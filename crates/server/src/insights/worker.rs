//! The background worker: claims insights jobs, analyses, stores, and records the outcome.
//! Started by [`crate::serve`] and stopped with it; `confab analyze` drives the same
//! [`run_job`] from the command line.

use std::sync::Arc;
use std::time::Duration;

use confab_core::analysis;
use confab_core::timefmt::now;
use confab_core::{Insights, Message};
use confab_store::jobs::KIND_INSIGHTS;
use confab_store::{FailOutcome, Job, MessageQuery, RetryPolicy, Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::InsightsConfig;
use super::llm::LlmAnalyzer;

/// The analyzer chain: the LLM when configured, the built-in one always (as the fallback).
pub struct Analyzer {
    llm: Option<LlmAnalyzer>,
}

impl Analyzer {
    /// Built-in only, or with the LLM in front.
    pub fn new(cfg: &InsightsConfig) -> Result<Analyzer, String> {
        let llm = cfg.llm.clone().map(LlmAnalyzer::new).transpose()?;
        Ok(Analyzer { llm })
    }

    /// Insights for a conversation. An LLM failure (error, timeout, invalid reply) is logged
    /// and counted, and the built-in result is used instead: a flaky model never leaves a
    /// conversation without insights.
    ///
    /// The built-in analysis is CPU work, several milliseconds for a conversation of a hundred
    /// messages, so it runs on the blocking pool: on a runtime thread it would hold up every
    /// request queued behind it, and `confab analyze` can run several at once on all the
    /// cores. `Err` only when the analysis panicked.
    pub async fn analyze(
        &self,
        conversation: Uuid,
        messages: Vec<Message>,
    ) -> Result<Insights, String> {
        if let Some(llm) = &self.llm {
            match llm.analyze(&messages).await {
                Ok(a) => return Ok(a.into_insights(conversation, llm.name(), now())),
                Err(e) => {
                    metrics::counter!("confab_insights_llm_failures_total").increment(1);
                    tracing::warn!(conversation = %conversation, analyzer = %llm.name(), error = %e,
                        "LLM analyzer failed; storing the built-in analysis");
                }
            }
        }
        tokio::task::spawn_blocking(move || analysis::analyze(&messages))
            .await
            .map(|a| a.into_insights(conversation, analysis::BUILTIN, now()))
            .map_err(|e| format!("the built-in analyzer failed: {e}"))
    }
}

/// Runs one claimed job's work: the conversation's insights, or `None` when it was deleted
/// since the job was queued (nothing to analyse); `Err` is the reason to record as a failure.
async fn process(
    store: &Store,
    analyzer: &Analyzer,
    job: &Job,
) -> Result<Option<Insights>, String> {
    if job.kind != KIND_INSIGHTS {
        return Err(format!("unknown job kind `{}`", job.kind));
    }
    let conv = job
        .conversation_id
        .ok_or("an insights job without a conversation")?;
    let messages = match store
        .list_messages(&job.tenant, conv, &MessageQuery::default())
        .await
    {
        Ok(m) => m,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(format!("loading messages: {e}")),
    };
    analyzer.analyze(conv, messages).await.map(Some)
}

/// Processes `job` and records the outcome in the queue; `true` when it succeeded. The
/// insights and the job's `done` are one write (`Store::complete_insights_job`): one commit
/// per job fewer, and never insights without their job done or the reverse.
pub async fn run_job(store: &Store, analyzer: &Analyzer, retry: &RetryPolicy, job: &Job) -> bool {
    let outcome = match process(store, analyzer, job).await {
        Ok(insights) => store
            .complete_insights_job(job, insights)
            .await
            .map_err(|e| format!("storing insights: {e}")),
        Err(reason) => Err(reason),
    };
    match outcome {
        Ok(current) => {
            metrics::counter!("confab_insights_jobs_total", "outcome" => "done").increment(1);
            if !current {
                tracing::warn!(job = %job.id, "job done after its lease was taken over");
            }
            true
        }
        Err(reason) => {
            metrics::counter!("confab_insights_jobs_total", "outcome" => "failed").increment(1);
            match store.fail_job(job, &reason, retry).await {
                Ok(FailOutcome::Retry(at)) => {
                    tracing::warn!(job = %job.id, attempt = job.attempt, error = %reason, retry_at = %at, "job failed; will retry")
                }
                Ok(FailOutcome::GaveUp) => {
                    tracing::error!(job = %job.id, attempt = job.attempt, error = %reason, "job failed for good")
                }
                Ok(FailOutcome::Stale) => {
                    tracing::warn!(job = %job.id, "job failed after its lease was taken over")
                }
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "could not record a job failure")
                }
            }
            false
        }
    }
}

/// Starts `cfg.workers` workers; they stop when `stop` turns true (after the job in hand).
pub fn spawn(
    store: Store,
    cfg: &InsightsConfig,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    if cfg.workers == 0 {
        return Vec::new();
    }
    let analyzer = match Analyzer::new(cfg) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            tracing::error!(error = %e, "the LLM analyzer cannot start; using the built-in one");
            Arc::new(Analyzer { llm: None })
        }
    };
    (0..cfg.workers)
        .map(|_| {
            let (store, analyzer, cfg, stop) =
                (store.clone(), analyzer.clone(), cfg.clone(), stop.clone());
            tokio::spawn(work(store, analyzer, cfg, stop))
        })
        .collect()
}

async fn work(
    store: Store,
    analyzer: Arc<Analyzer>,
    cfg: InsightsConfig,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let idle = match store.claim_job(cfg.lease).await {
            Ok(Some(job)) => {
                run_job(&store, &analyzer, &cfg.retry, &job).await;
                None
            }
            Ok(None) => Some(cfg.poll_interval),
            Err(StoreError::Closed) => break,
            Err(e) => {
                tracing::error!(error = %e, "claiming a job failed");
                Some(cfg.poll_interval.max(Duration::from_secs(1)))
            }
        };
        if let Some(wait) = idle {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::Role;
    use time::OffsetDateTime;

    fn long_conversation(id: Uuid) -> Vec<Message> {
        (0..400)
            .map(|i| Message {
                id: Uuid::now_v7(),
                conversation_id: id,
                seq: i,
                role: if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                content: format!(
                    "Message {i}: my refund for order {i} was rejected again, and the annual \
                     subscription renews in March. Could you check the status? Thanks a lot."
                ),
                created_at: OffsetDateTime::UNIX_EPOCH,
                model: None,
                tokens: None,
                prompt_tokens: None,
                completion_tokens: None,
                latency_ms: None,
                tool_calls: None,
                metadata: None,
                source: None,
                is_trigger: false,
            })
            .collect()
    }

    /// On a runtime with one thread, a task beside the analysis keeps running while it does:
    /// the analysis is not on the runtime's thread. Inline, the ticker would not tick once
    /// before the analysis returned.
    #[tokio::test(flavor = "current_thread")]
    async fn the_builtin_analysis_leaves_the_runtime_free() {
        let analyzer = Analyzer::new(&super::super::InsightsConfig::default()).unwrap();
        let id = Uuid::now_v7();
        let messages = long_conversation(id);
        let expected = analysis::analyze(&messages);
        let mut ticks = 0u32;
        let analysis = analyzer.analyze(id, messages);
        tokio::pin!(analysis);
        let insights = loop {
            tokio::select! {
                biased;
                r = &mut analysis => break r.unwrap(),
                _ = tokio::time::sleep(Duration::from_micros(100)) => ticks += 1,
            }
        };
        assert!(
            ticks > 0,
            "the runtime's thread was held for the whole analysis"
        );
        assert_eq!(insights.conversation_id, id);
        assert_eq!(insights.topics, expected.topics);
        assert_eq!(insights.summary, expected.summary);
        assert_eq!(insights.analyzer, analysis::BUILTIN);
    }
}
