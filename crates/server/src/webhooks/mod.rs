//! `/v1/webhooks`: endpoints per tenant (admin scope), their deliveries, tests and retries.
//! Events are written to the outbox by the store in the same transaction as the change; the
//! worker in `worker.rs` delivers them.

pub mod guard;
pub mod sign;
pub mod worker;

use crate::json::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use confab_core::timefmt::rfc3339;
use confab_store::webhooks::{EVENT_TYPES, Endpoint, EndpointChange};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::native::dto::ErrorBody;

/// The webhook routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(rotate))
        .routes(routes!(test))
        .routes(routes!(deliveries))
        .routes(routes!(retry))
}

fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    /// http(s) URL events are posted to.
    pub url: String,
    /// Event types to receive; empty or absent means all of: conversation.created,
    /// conversation.updated, conversation.completed, insights.ready (webhook.test always).
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// Changes to an endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    /// http(s) URL.
    pub url: Option<String>,
    /// Event types; empty means all.
    pub event_types: Option<Vec<String>>,
    /// Free text; null clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Enabling also clears an automatic disable.
    pub enabled: Option<bool>,
}

/// An endpoint (never with its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointOut {
    /// Id.
    pub id: Uuid,
    /// URL.
    pub url: String,
    /// Subscribed types; empty means all.
    pub event_types: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Whether events are delivered.
    pub enabled: bool,
    /// Why it was disabled automatically (every delivery failing for days).
    pub disabled_reason: Option<String>,
    /// Start of the current run of failures.
    pub failing_since: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&Endpoint> for EndpointOut {
    fn from(e: &Endpoint) -> Self {
        EndpointOut {
            id: e.id,
            url: e.url.clone(),
            event_types: e.event_types.clone(),
            description: e.description.clone(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            failing_since: e.failing_since.map(rfc3339),
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

/// An endpoint with its signing secret: shown on creation and rotation only.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    /// `whsec_…`: verify `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
    /// Until when the previous secret still signs (rotation only).
    pub previous_secret_expires_at: Option<String>,
}

/// The tenant's endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    pub data: Vec<EndpointOut>,
}

/// Rotation settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// How long the old secret keeps signing, 0 to 604800 (7 days); default 86400.
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_seconds: Option<i64>,
}

/// A queued test event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestOut {
    /// The event's id (`webhook-id` is `msg_` + its hex).
    pub event_id: Uuid,
}

/// Attempts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptList {
    /// Each attempt: id, delivery_id, event_id, event_type, attempt, status_code, latency_ms,
    /// response_snippet, error, delivery_state, created_at.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<confab_store::webhooks::AttemptRecord>,
}

/// Page size of the attempt log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AttemptParams {
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

fn endpoint_id(s: &str) -> ApiResult<Uuid> {
    confab_core::ids::parse_uuid(s).ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

fn not_found(e: confab_store::StoreError) -> ApiError {
    match e {
        confab_store::StoreError::NotFound => ApiError::not_found("webhook endpoint"),
        other => other.into(),
    }
}

fn check_types(types: &[String]) -> ApiResult<()> {
    for (i, t) in types.iter().enumerate() {
        if !EVENT_TYPES.contains(&t.as_str()) {
            return Err(ApiError::field(
                &format!("event_types[{i}]"),
                format!("`{t}` is not one of {}", EVENT_TYPES.join(", ")),
            ));
        }
    }
    Ok(())
}

fn check_url(st: &AppState, url: &str) -> ApiResult<()> {
    guard::check_url(url, st.config.webhooks.allow_internal)
        .map(|_| ())
        .map_err(|m| ApiError::field("url", m))
}

/// Register an endpoint; the answer holds its signing secret (shown only here).
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = EndpointIn,
    responses((status = 201, description = "Created", body = EndpointWithSecret),
              (status = 400, description = "Invalid input", body = ErrorBody),
              (status = 403, description = "The key lacks the admin scope", body = ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn create(
    State(st): State<AppState>,
    Auth(p, ..): Admin,
    JsonBody(b): JsonBody<EndpointIn>,
) -> ApiResult<(StatusCode, Json<EndpointWithSecret>)> {
    check_url(&st, &b.url)?;
    check_types(&b.event_types)?;
    let e = st
        .store
        .create_endpoint(
            &p.tenant,
            EndpointChange {
                url: Some(b.url),
                event_types: Some(b.event_types),
                description: Some(b.description),
                enabled: b.enabled,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointWithSecret {
            endpoint: (&e).into(),
            secret: e.secret,
            previous_secret_expires_at: None,
        }),
    ))
}

/// List endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "Endpoints", body = EndpointList)), security(("bearer" = ["admin"])))]
pub async fn list(State(st): State<AppState>, Auth(p, ..): Admin) -> ApiResult<Json<EndpointList>> {
    let all = st.store.list_endpoints(&p.tenant).await?;
    Ok(Json(EndpointList {
        data: all.iter().map(Into::into).collect(),
    }))
}

/// Get an endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, description = "The endpoint", body = EndpointOut), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn get(
    State(st): State<AppState>,
    Auth(p, ..): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointOut>> {
    let e = st
        .store
        .get_endpoint(&p.tenant, endpoint_id(&id)?)
        .await
        .map_err(not_found)?;
    Ok(Json((&e).into()))
}

/// Change an endpoint (URL, event types, description, enabled).
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Endpoint id")),
    request_body = EndpointPatch,
    responses((status = 200, description = "The endpoint", body = EndpointOut), (status = 400, description = "Invalid input", body = ErrorBody),
              (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn update(
    State(st): State<AppState>,
    Auth(p, ..): Admin,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<EndpointPatch>,
) -> ApiResult<Json<EndpointOut>> {
    let id = endpoint_id(&id)?;
    if let Some(u) = &b.url {
        check_url(&st, u)?;
    }
    if let Some(t) = &b.event_types {
        check_types(t)?;
    }
    let ch = EndpointChange {
        url: b.url,
        event_types: b.event_types,
        description: b.description,
        enabled: b.enabled,
    };
    let e = st
        .store
        .update_endpoint(&p.tenant, id, ch)
        .await
        .map_err(not_found)?;
    Ok(Json((&e).into()))
}

/// Delete an endpoint with its deliveries.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn delete(
    State(st): State<AppState>,
    Auth(p, ..): Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.store
        .delete_endpoint(&p.tenant, endpoint_id(&id)?)
        .await
        .map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the signing secret; the old one keeps signing (both signatures are sent) for the
/// grace period.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path, description = "Endpoint id")),
    request_body(content = RotateIn, description = "Optional"),
    responses((status = 200, description = "The new secret", body = EndpointWithSecret), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn rotate(
    State(st): State<AppState>,
    Auth(p, ..): Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<EndpointWithSecret>> {
    let id = endpoint_id(&id)?;
    let b: RotateIn = if body.iter().all(u8::is_ascii_whitespace) {
        RotateIn::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let grace = b.grace_seconds.unwrap_or(86_400);
    if !(0..=604_800).contains(&grace) {
        return Err(ApiError::field(
            "grace_seconds",
            "must be between 0 and 604800",
        ));
    }
    let e = st
        .store
        .rotate_endpoint_secret(&p.tenant, id, time::Duration::seconds(grace))
        .await
        .map_err(not_found)?;
    Ok(Json(EndpointWithSecret {
        endpoint: (&e).into(),
        secret: e.secret.clone(),
        previous_secret_expires_at: e.previous_secret_expires_at.map(rfc3339),
    }))
}

/// Queue a `webhook.test` event for this endpoint.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 202, description = "Queued", body = TestOut), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn test(
    State(st): State<AppState>,
    Auth(p, ..): Admin,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<TestOut>)> {
    let event_id = st
        .store
        .enqueue_test_event(&p.tenant, endpoint_id(&id)?)
        .await
        .map_err(not_found)?;
    Ok((StatusCode::ACCEPTED, Json(TestOut { event_id })))
}

/// Delivery attempts to this endpoint, newest first (status, latency, response snippet).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id"), AttemptParams),
    responses((status = 200, description = "Attempts", body = AttemptList), (status = 404, description = "Not found", body = ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn deliveries(
    State(st): State<AppState>,
    Auth(p, ..): Admin,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<AttemptParams>,
) -> ApiResult<Json<AttemptList>> {
    let limit = confab_core::page::limit(q.limit, 50, confab_core::page::MAX_LIMIT, "limit")?;
    let data = st
        .store
        .list_attempts(&p.tenant, endpoint_id(&id)?, limit)
        .await
        .map_err(not_found)?;
    Ok(Json(AttemptList { data }))
}

/// Re-send a delivery that failed for good.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    params(("id" = String, Path, description = "Endpoint id"), ("delivery_id" = String, Path, description = "Delivery id")),
    responses((status = 202, description = "Queued again"), (status = 404, description = "No failed delivery with that id", body = ErrorBody)),
    security(("bearer" = ["admin"])))]
pub async fn retry(
    State(st): State<AppState>,
    Auth(p, ..): Admin,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let delivery = confab_core::ids::parse_uuid(&delivery)
        .ok_or_else(|| ApiError::not_found("failed delivery"))?;
    st.store
        .retry_delivery(&p.tenant, endpoint_id(&id)?, delivery)
        .await
        .map_err(|e| match e {
            confab_store::StoreError::NotFound => ApiError::not_found("failed delivery"),
            other => other.into(),
        })?;
    Ok(StatusCode::ACCEPTED)
}
