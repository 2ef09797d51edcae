//! Conversation insights in the server: the background worker that drains the job queue, the
//! optional LLM analyzer, and the native routes that read, refresh and aggregate insights.
//! The analysis itself lives in `confab_core::analysis`; this module only moves data.

mod dto;
pub mod llm;
mod routes;
pub mod worker;

use std::time::Duration;

use confab_store::RetryPolicy;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
pub use llm::LlmConfig;
pub use worker::Analyzer;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct InsightsConfig {
    /// Concurrent workers in this process; 0 leaves the queue to other processes (or tests).
    pub workers: usize,
    /// How long a claim holds a job; a worker that dies releases it when this runs out.
    pub lease: Duration,
    /// Wait between polls when the queue is empty.
    pub poll_interval: Duration,
    /// Retries of failed jobs.
    pub retry: RetryPolicy,
    /// The optional OpenAI-compatible analyzer.
    pub llm: Option<LlmConfig>,
}

impl Default for InsightsConfig {
    fn default() -> Self {
        InsightsConfig {
            workers: 1,
            lease: Duration::from_secs(120),
            poll_interval: Duration::from_millis(500),
            retry: RetryPolicy::default(),
            llm: None,
        }
    }
}

/// The insights routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::get))
        .routes(routes!(routes::refresh))
        .routes(routes!(routes::analytics))
}
