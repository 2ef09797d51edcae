//! Server settings (the CLI fills them from flags, `CONFAB_*` variables and a TOML file).

use std::time::Duration;

/// Everything the HTTP layer needs to know.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body, in bytes (larger ones get 413 before they are read).
    pub max_body_bytes: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// The insights worker and analyzers.
    pub insights: crate::insights::InsightsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            insights: Default::default(),
        }
    }
}
