//! `confab analyze`: backfills insights in this process, with a progress bar on stderr, and
//! the analyzer flags `serve` shares.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use confab_server::insights::{Analyzer, InsightsConfig, LlmConfig, worker};
use confab_store::{Backfill, Store};
use indicatif::{ProgressBar, ProgressStyle};

/// The optional LLM analyzer (an OpenAI-compatible chat-completions server).
#[derive(clap::Args, Debug, Clone)]
pub struct LlmArgs {
    /// Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1. Unset: built-in
    /// analyzer only.
    #[arg(long, env = "CONFAB_LLM_BASE_URL", value_name = "URL")]
    pub llm_base_url: Option<String>,
    /// Model name.
    #[arg(long, env = "CONFAB_LLM_MODEL", requires = "llm_base_url")]
    pub llm_model: Option<String>,
    /// API key, when the server wants one.
    #[arg(long, env = "CONFAB_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,
    /// Seconds before a model call is abandoned for the built-in result.
    #[arg(long, env = "CONFAB_LLM_TIMEOUT_SECS", default_value_t = 60)]
    pub llm_timeout_secs: u64,
}

impl LlmArgs {
    /// Applies the flags to the insights settings.
    pub fn apply(&self, cfg: &mut InsightsConfig) -> Result<()> {
        if let Some(url) = &self.llm_base_url {
            let model = self
                .llm_model
                .clone()
                .context("--llm-model (CONFAB_LLM_MODEL) is required with --llm-base-url")?;
            anyhow::ensure!(
                self.llm_timeout_secs >= 1,
                "--llm-timeout-secs must be at least 1"
            );
            cfg.llm = Some(LlmConfig {
                base_url: url.clone(),
                model,
                api_key: self.llm_api_key.clone(),
                timeout: Duration::from_secs(self.llm_timeout_secs),
            });
        }
        Ok(())
    }
}

/// `confab analyze` arguments.
#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// Recompute every completed conversation (default: only those without insights).
    #[arg(long, conflicts_with = "since")]
    pub all: bool,
    /// Recompute conversations completed on or after DATE (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Conversations analysed at once (default: one per core). The analysis is CPU work; the
    /// store's group commit takes the writes of all of them together.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    #[command(flatten)]
    pub llm: LlmArgs,
}

fn parse_since(s: &str) -> Result<time::OffsetDateTime> {
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    confab_core::timefmt::parse(&full)
        .map_err(|e| anyhow::anyhow!("--since: `{s}` is not YYYY-MM-DD or RFC 3339: {e}"))
}

/// Queues the backfill, then drains every due job in this process.
pub async fn run(store: &Store, mut cfg: InsightsConfig, args: AnalyzeArgs) -> Result<()> {
    args.llm.apply(&mut cfg)?;
    let which = match (&args.since, args.all) {
        (Some(s), _) => Backfill::Since(parse_since(s)?),
        (None, true) => Backfill::All,
        (None, false) => Backfill::Missing,
    };
    let queued = store.enqueue_backfill(which).await?;
    let due = store.job_counts().await?.queued;
    let analyzer = Analyzer::new(&cfg).map_err(anyhow::Error::msg)?;
    // Quiet when stderr is not a terminal (logs, CI), so redirected output stays clean.
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(due.max(0) as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} conversations  {per_sec}  eta {eta}",
            )
            .expect("static template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let (done, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    // `jobs` claim loops in this task: each job's analysis runs on the blocking pool
    // (`Analyzer::analyze`), so they use the cores while the loops wait for them; claims are
    // exclusive, so no conversation is analysed twice.
    let drain = |_| async {
        while let Some(job) = store.claim_job(cfg.lease).await? {
            let ok = worker::run_job(store, &analyzer, &cfg.retry, &job).await;
            if ok { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
            bar.inc(1);
        }
        anyhow::Ok(())
    };
    futures::future::try_join_all((0..jobs).map(drain)).await?;
    bar.finish_and_clear();
    let (done, failed) = (done.into_inner(), failed.into_inner());
    eprintln!("queued {queued}; analysed {done} conversation(s), {failed} failure(s)");
    anyhow::ensure!(failed == 0, "{failed} job(s) failed; see the log");
    Ok(())
}
