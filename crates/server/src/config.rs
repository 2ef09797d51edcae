//! Server settings (the CLI fills them from flags, `CONFAB_*` variables and a TOML file).

use std::time::Duration;

/// Webhook delivery settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Run the delivery worker in this process.
    pub worker: bool,
    /// Allow loopback, private and link-local targets (tests, private networks).
    pub allow_internal: bool,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Waits between attempts after a failure; its length is the number of retries.
    pub schedule: Vec<Duration>,
    /// Disable an endpoint whose deliveries have all failed for this long.
    pub disable_after: Duration,
    /// How often an idle worker looks for due deliveries.
    pub poll_interval: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        // After the first attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about 28 hours.
        let schedule = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000]
            .map(Duration::from_secs)
            .to_vec();
        WebhookConfig {
            worker: true,
            allow_internal: false,
            timeout: Duration::from_secs(15),
            schedule,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            poll_interval: Duration::from_millis(500),
            concurrency: 16,
        }
    }
}

/// Everything the HTTP layer needs to know.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body, in bytes (larger ones get 413 before they are read).
    pub max_body_bytes: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Webhook delivery.
    pub webhooks: WebhookConfig,
    /// Per-key rate limit; `None` (the default) is unlimited.
    pub rate_limit: Option<crate::ratelimit::RateLimit>,
    /// Requests handled at once; more are refused with 503 rather than queued without bound.
    pub max_concurrent_requests: usize,
    /// The insights worker and analyzers.
    pub insights: crate::insights::InsightsConfig,
    /// The web dashboard's session settings.
    pub dashboard: DashboardConfig,
}

/// Settings of the web dashboard's sign-in session.
#[derive(Debug, Clone, Default)]
pub struct DashboardConfig {
    /// Key of the HMAC that makes CSRF tokens. `None`: a random one per process (forms opened
    /// before a restart then need a reload); set it when several processes serve one site.
    pub csrf_secret: Option<Vec<u8>>,
    /// Whether the session cookie is `Secure`. `None`: when the request came over TLS
    /// (`https` URI or `X-Forwarded-Proto: https` from a proxy in front).
    pub secure_cookie: Option<bool>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            webhooks: WebhookConfig::default(),
            rate_limit: None,
            max_concurrent_requests: 1024,
            insights: Default::default(),
            dashboard: DashboardConfig::default(),
        }
    }
}
