//! The Sensay dialect (seed 004) under `/v1/replicas/{replicaUUID}`: a conversation's messages
//! and mentions with UUID cursors, the replica's conversation list, and conversation analytics.
//!
//! A replica is an agent: it exists once one of the tenant's conversations named it as
//! `agent_id`. Handlers only translate; grouping, paging and the daily series are in the core
//! (`confab_core::{mentions, seek, daily}`), the queries in the store (`confab_store::sensay`).
//! Errors are re-rendered once, in [`sensay_errors`], as `{"success": false, "error": "…"}`.

mod analytics;
mod conversations;
mod dto;
mod resolve;

use crate::json::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ApiError;

#[derive(OpenApi)]
#[openapi(
    tags((name = "sensay", description = "Sensay dialect (seed 004): replicas' conversations, mentions and analytics"))
)]
struct SensayDoc;

/// The Sensay routes, each answering errors in Sensay's shape.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(SensayDoc::openapi())
        .routes(routes!(conversations::list))
        .routes(routes!(conversations::messages))
        .routes(routes!(conversations::mentions))
        .routes(routes!(analytics::historical))
        .routes(routes!(analytics::sources))
        // Added before the merge, so it wraps only these routes (their 405s and axum's own
        // rejections included), never another dialect's.
        .layer(axum::middleware::map_response(sensay_errors))
}

/// Rewrites every error answer of these routes as `{"success": false, "error": "…"}`: the
/// message is the `ApiError`'s when there is one (it names the field), else the status's
/// reason. The `ApiError` stays in the extensions so the app-wide JSON error layer leaves the
/// body alone.
async fn sensay_errors(res: Response) -> Response {
    let status = res.status();
    if !status.is_client_error() && !status.is_server_error() {
        return res;
    }
    let err = res
        .extensions()
        .get::<ApiError>()
        .cloned()
        .unwrap_or_else(|| {
            let reason = status.canonical_reason().unwrap_or("error");
            ApiError::new(status, "ERROR", reason)
        });
    let mut out = (
        status,
        Json(json!({ "success": false, "error": err.message })),
    )
        .into_response();
    for h in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = res.headers().get(&h) {
            out.headers_mut().insert(h, v.clone());
        }
    }
    out.extensions_mut().insert(err);
    out
}
