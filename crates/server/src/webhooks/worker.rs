//! The delivery worker: claims due deliveries (a lease, so several processes can share the
//! outbox), posts them signed, records every attempt and schedules retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_store::webhooks::{AttemptOutcome, ClaimedDelivery, RetryPolicy};
use tokio::sync::watch;

use super::guard::{SafeResolver, check_url};
use super::sign::signature_header;
use crate::AppState;
use crate::config::WebhookConfig;

/// Bytes of a response body kept in the attempt log.
const SNIPPET: usize = 1024;

/// Builds the delivery client: no redirects, no proxies, a timeout, the safe resolver.
pub fn client(cfg: &WebhookConfig) -> reqwest::Client {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(cfg.timeout)
        .user_agent(concat!("confab-webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(SafeResolver {
            allow_internal: cfg.allow_internal,
        }))
        .build()
        .expect("the webhook client configuration is valid")
}

/// Runs until `stop` turns true.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let cfg = state.config.webhooks.clone();
    let http = client(&cfg);
    let policy = RetryPolicy {
        schedule: cfg.schedule.clone(),
        disable_after: cfg.disable_after,
    };
    let lease = cfg.timeout + Duration::from_secs(10);
    loop {
        if *stop.borrow() {
            break;
        }
        let batch = match state
            .store
            .claim_deliveries(cfg.concurrency as i64, lease)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook deliveries");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(cfg.poll_interval) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let jobs = batch.into_iter().map(|d| {
            let (http, state, policy, cfg) =
                (http.clone(), state.clone(), policy.clone(), cfg.clone());
            async move {
                let outcome = deliver(&http, &d, cfg.allow_internal).await;
                if let Err(e) = state.store.record_attempt(&d, outcome, &policy).await {
                    tracing::warn!(error = %e, delivery = %d.id, "recording a webhook attempt");
                }
            }
        });
        futures::future::join_all(jobs).await;
    }
}

/// One attempt.
async fn deliver(
    http: &reqwest::Client,
    d: &ClaimedDelivery,
    allow_internal: bool,
) -> AttemptOutcome {
    let start = Instant::now();
    let fail = |error: String, start: Instant| AttemptOutcome {
        status_code: None,
        latency_ms: start.elapsed().as_millis() as i64,
        response_snippet: None,
        error: Some(error),
        success: false,
    };
    if let Err(e) = check_url(&d.url, allow_internal) {
        return fail(format!("refused: the URL {e}"), start);
    }
    let msg_id = format!("msg_{}", d.event_id.simple());
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = signature_header(&d.secrets, &msg_id, ts, &d.payload);
    let res = http
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(d.payload.clone())
        .send()
        .await;
    match res {
        Ok(mut r) => {
            let status = r.status();
            let mut body = Vec::new();
            // Read at most a snippet: a receiver cannot make us buffer a large answer.
            while body.len() < SNIPPET {
                match r.chunk().await {
                    Ok(Some(c)) => body.extend_from_slice(&c),
                    _ => break,
                }
            }
            body.truncate(SNIPPET);
            AttemptOutcome {
                status_code: Some(status.as_u16()),
                latency_ms: start.elapsed().as_millis() as i64,
                response_snippet: Some(String::from_utf8_lossy(&body).into_owned()),
                error: None,
                success: status.is_success(),
            }
        }
        Err(e) => fail(describe(&e), start),
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
