//! The insights analysis rate: how many conversations the server's own insights worker (one,
//! the default) analyses per second, end to end: it claims each job, loads the conversation's
//! messages, runs the built-in analyzer and stores the insights and the job's outcome.
//!
//! A run queues [`PER_RUN`] completed conversations of the dataset (fewer on a small one) with
//! `POST /v1/conversations/{id}/insights/refresh` (`--concurrency` in flight) and then reads
//! `confab_insights_jobs_total` from `GET /metrics` every 10 ms. The rate is counted from the
//! first job seen done to the last, so the worker's idle poll (it sleeps up to half a second
//! when the queue is empty) does not count against it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_core::Status;

use crate::dataset::Dataset;
use crate::harness::Server;
use crate::load::{self, Op, RssSampler, Run};

/// Conversations queued per run.
pub const PER_RUN: usize = 500;

/// The first `n` completed conversations of the dataset.
pub fn completed(dataset: &Dataset, n: usize) -> Vec<uuid::Uuid> {
    (0..dataset.spec().conversations)
        .map(|i| dataset.conversation(i).conversation)
        .filter(|c| c.status == Status::Completed)
        .map(|c| c.id)
        .take(n)
        .collect()
}

/// Jobs done and failed so far, from the server's metrics.
async fn outcomes(server: &Server) -> anyhow::Result<(u64, u64)> {
    let body = server.get("/metrics", "").await?;
    let text = String::from_utf8_lossy(&body);
    Ok((count(&text, "done"), count(&text, "failed")))
}

/// `confab_insights_jobs_total{outcome=…}` in a Prometheus text exposition (0 before the
/// first job: the counter appears only once incremented).
fn count(metrics: &str, outcome: &str) -> u64 {
    let key = format!("confab_insights_jobs_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// One run over `ids`; gives up waiting after `limit`. The run's one "latency" is the time
/// from the first job done to the last (as the export's is the whole export).
pub async fn measure(
    server: &Server,
    concurrency: usize,
    ids: Vec<uuid::Uuid>,
    limit: Duration,
) -> anyhow::Result<Run> {
    let (done0, failed0) = outcomes(server).await?;
    let api = server.api();
    let heads: Arc<Vec<Vec<u8>>> = Arc::new(
        ids.iter()
            .map(|id| {
                api.post_head(
                    &format!("/v1/conversations/{id}/insights/refresh"),
                    "application/json",
                    0,
                )
            })
            .collect(),
    );
    let queue: Op = Arc::new(move |i| {
        let (api, heads) = (api.clone(), heads.clone());
        Box::pin(async move {
            api.send(&heads[i], &[]).await?;
            Ok(1)
        })
    });
    let n = ids.len();
    let queued = load::run(server.pid(), concurrency, n, limit, queue).await;
    anyhow::ensure!(
        queued.errors == 0 && queued.ok == n,
        "queueing insights jobs: {} of {n} accepted",
        queued.ok
    );
    let sampler = RssSampler::start(server.pid());
    let deadline = Instant::now() + limit;
    let mut first: Option<(Instant, u64)> = None;
    let (mut done, mut failed, mut last) = (done0, failed0, Instant::now());
    while done + failed < done0 + failed0 + n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (d, f) = outcomes(server).await?;
        let now = Instant::now();
        if d + f > done + failed {
            last = now;
            first.get_or_insert((now, d + f));
        }
        (done, failed) = (d, f);
    }
    let (start_rss, peak, anon) = sampler.stop();
    let (t0, at0) = first.unwrap_or((last, done + failed));
    let elapsed = last.saturating_duration_since(t0);
    let finished = (done + failed).saturating_sub(at0);
    Ok(Run {
        ok: (done - done0) as usize,
        errors: (failed - failed0) as usize
            + n.saturating_sub((done + failed - done0 - failed0) as usize),
        units: finished,
        elapsed,
        latencies: vec![elapsed],
        peak_rss_kib: peak,
        start_rss_kib: start_rss,
        peak_anon_kib: anon,
    })
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_come_from_the_exposition() {
        let m = "# TYPE confab_insights_jobs_total counter\n\
                 confab_insights_jobs_total{outcome=\"done\"} 1234\n\
                 confab_insights_jobs_total{outcome=\"failed\"} 2\n";
        assert_eq!(count(m, "done"), 1234);
        assert_eq!(count(m, "failed"), 2);
        assert_eq!(count("", "done"), 0);
    }
}
