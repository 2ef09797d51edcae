//! confab's HTTP server: the native API and the vendor dialects over one store.
//!
//! Each dialect module only translates: wire format in, one core/store call, wire format out.

mod analytics;
pub mod auth;
pub mod config;
pub mod convai;
pub mod converra;
pub mod dashboard;
pub mod error;
mod export;
pub mod extract;
mod health;
pub mod idempotency;
mod ids;
pub mod insights;
pub mod json;
pub mod native;
mod openapi;
pub mod perform;
pub mod ratelimit;
mod search;
pub mod sensay;
mod telemetry;
pub mod tls;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use confab_core::input::Limits;
use confab_store::Store;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use config::ServerConfig;
pub use error::ApiError;
pub use openapi::openapi_json;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// Shared validation limits.
    pub limits: Limits,
    /// Per-key rate limiter, when configured.
    pub limiter: Option<Arc<ratelimit::Limiter>>,
}

impl AppState {
    /// State over a store.
    pub fn new(store: Store, mut config: ServerConfig) -> Self {
        if config.dashboard.csrf_secret.is_none() {
            use rand::RngCore;
            let mut secret = vec![0u8; 32];
            rand::rng().fill_bytes(&mut secret);
            config.dashboard.csrf_secret = Some(secret);
        }
        let limiter = config
            .rate_limit
            .map(|l| Arc::new(ratelimit::Limiter::new(l)));
        AppState {
            store,
            config: Arc::new(config),
            limits: Limits::default(),
            limiter,
        }
    }
}

/// Turns any error answer that is not already ours (axum's plain-text rejections, 404 for an
/// unknown route, 405, timeouts) into the JSON error shape, so no client ever sees plain text.
async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if status.as_u16() < 400 || res.extensions().get::<ApiError>().is_some() || is_html(&res) {
        return res;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("NOT_FOUND", "no such route".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "METHOD_NOT_ALLOWED",
            "method not allowed on this route".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "PAYLOAD_TOO_LARGE",
            "request body is larger than the configured limit".to_owned(),
        ),
        StatusCode::REQUEST_TIMEOUT => ("TIMEOUT", "the request took too long".to_owned()),
        s if s.is_client_error() => (
            "BAD_REQUEST",
            s.canonical_reason().unwrap_or("bad request").to_owned(),
        ),
        s => (
            "INTERNAL_ERROR",
            s.canonical_reason().unwrap_or("error").to_owned(),
        ),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(allow) = res.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

/// The dashboard's own error pages are HTML for people; they are left as they are.
fn is_html(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// Refuses work beyond the configured number of requests in flight (503, never an unbounded
/// queue: under overload a fast refusal beats a slow timeout).
async fn concurrency_cap(slots: Arc<tokio::sync::Semaphore>, req: Request, next: Next) -> Response {
    match slots.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "the server is at its limit of concurrent requests",
        )
        .into_response(),
    }
}

/// The whole application: every route and layer.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let timeout = state.config.request_timeout;
    let slots = Arc::new(tokio::sync::Semaphore::new(
        state.config.max_concurrent_requests.max(1),
    ));
    let (api, _doc) = openapi::limited_router().split_for_parts();
    // Streaming routes that may run for minutes on gigabytes: no body limit, no timeout.
    let (streaming, _doc) = openapi::streaming_router().split_for_parts();
    // Each `Router::layer` call wraps every route in one more boxed service, and every request
    // clones the boxed stack of the route it matched, one allocation per box. So the layers go
    // in two `ServiceBuilder` stacks (outermost first), one box each instead of nine: the
    // clones and their frees showed at the top of a perf profile of `GET /healthz` under load
    // (docs/performance.md, 2026-11-30).
    let limits = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(DefaultBodyLimit::max(max_body));
    let outer = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(middleware::from_fn(telemetry::track))
        .layer(middleware::from_fn(move |req, next| concurrency_cap(slots.clone(), req, next)))
        .layer(middleware::from_fn(json_errors));
    api.route("/openapi.json", axum::routing::get(openapi::serve))
        .route("/metrics", axum::routing::get(telemetry::render))
        // The dashboard's HTML pages: not API routes, so not in the OpenAPI document.
        .merge(dashboard::router())
        .layer(limits)
        .merge(streaming)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route") })
        .layer(outer)
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests and flushes the store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    telemetry::handle();
    let store = state.store.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    if state.config.webhooks.worker {
        workers.push(tokio::spawn(webhooks::worker::run(
            state.clone(),
            stop_rx.clone(),
        )));
    }
    workers.extend(insights::worker::spawn(
        store.clone(),
        &state.config.insights,
        stop_rx.clone(),
    ));
    let res = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    // Background workers finish the item in hand (or leave it to its lease), then the store
    // commits what is queued.
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    store.close().await;
    res
}
