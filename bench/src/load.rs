//! The load generator: a fixed number of tasks share one request counter, so `concurrency`
//! requests are always in flight (closed loop) until the count or the time budget runs out.
//! Also the RSS sampler: reads the server process's `/proc/PID/status` (the server runs in a
//! child process, so this is its memory alone).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::stats;

/// One request: given its index, does the work and returns how many units it moved (1 for a
/// plain request; messages for a transcript or an export).
pub type Op = Arc<dyn Fn(usize) -> BoxFuture<'static, anyhow::Result<u64>> + Send + Sync>;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Run {
    /// Requests that succeeded.
    pub ok: usize,
    /// Requests that failed (status or transport).
    pub errors: usize,
    /// Units moved by successful requests.
    pub units: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latencies of successful requests, sorted.
    pub latencies: Vec<Duration>,
    /// Highest RSS seen during the run, in KiB.
    pub peak_rss_kib: u64,
    /// RSS when the run started, in KiB.
    pub start_rss_kib: u64,
    /// Highest anonymous (private, not file-backed) RSS seen during the run, in KiB: the
    /// server's own memory, without the database pages SQLite maps from the file (those are
    /// the OS page cache, shared and reclaimable, yet counted in RSS once per mapping).
    pub peak_anon_kib: u64,
}

impl Run {
    /// Units per second.
    pub fn throughput(&self) -> f64 {
        self.units as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency percentile in ms (0 when nothing succeeded).
    pub fn pct_ms(&self, p: f64) -> f64 {
        stats::percentile(&self.latencies, p).map_or(0.0, stats::ms)
    }
}

/// `op` with call `i` started no sooner than `i / rate` seconds after the first call: at most
/// `rate` calls a second, evenly spaced, whatever the concurrency.
pub fn paced(op: Op, rate: f64) -> Op {
    let start = tokio::time::Instant::now();
    let rate = rate.max(1e-3);
    Arc::new(move |i| {
        let (op, at) = (op.clone(), start + Duration::from_secs_f64(i as f64 / rate));
        Box::pin(async move {
            tokio::time::sleep_until(at).await;
            op(i).await
        })
    })
}

/// Runs `requests` calls of `op` (fewer if `budget` runs out) with `concurrency` in flight.
/// `pid` is the process whose RSS is sampled.
pub async fn run(pid: u32, concurrency: usize, requests: usize, budget: Duration, op: Op) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let sampler = RssSampler::start(pid);
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (next, op) = (next.clone(), op.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let (mut errors, mut units) = (0usize, 0u64);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests || start.elapsed() > budget {
                        break;
                    }
                    let t = Instant::now();
                    match op(i).await {
                        Ok(u) => {
                            lat.push(t.elapsed());
                            units += u;
                        }
                        Err(e) => {
                            if errors == 0 {
                                eprintln!("  request {i} failed: {e:#}");
                            }
                            errors += 1;
                        }
                    }
                }
                (lat, errors, units)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests.min(1 << 20));
    let (mut errors, mut units) = (0, 0);
    for t in tasks {
        let (l, e, u) = t.await.expect("load task panicked");
        latencies.extend(l);
        errors += e;
        units += u;
    }
    let elapsed = start.elapsed();
    let (start_rss_kib, peak_rss_kib, peak_anon_kib) = sampler.stop();
    latencies.sort_unstable();
    Run {
        ok: latencies.len(),
        errors,
        units,
        elapsed,
        latencies,
        peak_rss_kib,
        start_rss_kib,
        peak_anon_kib,
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`); 0 where there is no procfs.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples VmRSS every 10 ms and keeps the highest value.
pub struct RssSampler {
    pid: u32,
    start: u64,
    peak: Arc<AtomicU64>,
    anon: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start(pid: u32) -> Self {
        let start = proc_status_kib(pid, "VmRSS");
        let peak = Arc::new(AtomicU64::new(start));
        let anon = Arc::new(AtomicU64::new(proc_status_kib(pid, "RssAnon")));
        let (p, a) = (peak.clone(), anon.clone());
        let task = tokio::spawn(async move {
            loop {
                p.fetch_max(proc_status_kib(pid, "VmRSS"), Ordering::Relaxed);
                a.fetch_max(proc_status_kib(pid, "RssAnon"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        RssSampler {
            pid,
            start,
            peak,
            anon,
            task,
        }
    }

    /// Stops; returns (RSS at start, peak RSS, peak anonymous RSS) in KiB.
    pub fn stop(self) -> (u64, u64, u64) {
        self.task.abort();
        let last = proc_status_kib(self.pid, "VmRSS");
        let anon = proc_status_kib(self.pid, "RssAnon");
        (
            self.start,
            self.peak.load(Ordering::Relaxed).max(last),
            self.anon.load(Ordering::Relaxed).max(anon),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paced, call `i` starts no sooner than `i / rate` seconds after the pacing began, however
    /// many are in flight (a lower bound only: when each starts after that is the machine's).
    #[tokio::test]
    async fn paced_calls_start_no_sooner_than_their_turn() {
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = starts.clone();
        let op: Op = Arc::new(move |i| {
            let seen = seen.clone();
            Box::pin(async move {
                seen.lock().unwrap().push((i, tokio::time::Instant::now()));
                Ok(0)
            })
        });
        let began = tokio::time::Instant::now();
        let op = paced(op, 500.0);
        futures::future::join_all((0..10).map(|i| op(i))).await;
        let starts = starts.lock().unwrap();
        assert_eq!(starts.len(), 10);
        for &(i, at) in starts.iter() {
            assert!(
                at >= began + Duration::from_secs_f64(i as f64 / 500.0),
                "call {i}"
            );
        }
    }
}
