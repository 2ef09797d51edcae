//! `GET /v1/conversations/{id}/insights`, `POST …/insights/refresh`, `GET /v1/analytics/insights`.

use crate::json::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use confab_store::InsightsQuery;

use super::dto::*;
use crate::AppState;
use crate::auth::{Auth, Reader, Writer};
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::ids::conversation_id;
use crate::native::dto::ErrorBody;

/// A conversation's insights. 404 when the conversation does not exist for this tenant, and
/// also (code `NOT_FOUND`, message "insights not found") while it has not been analysed yet.
#[utoipa::path(get, path = "/v1/conversations/{id}/insights", tag = "insights",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The insights", body = InsightsOut),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
        (status = 404, description = "No such conversation for this tenant, or not analysed yet", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    Path(id): Path<String>,
) -> ApiResult<Json<InsightsOut>> {
    let id = conversation_id(&id)?;
    match st.store.get_insights(&p.tenant, id).await? {
        Some(i) => Ok(Json(i.into())),
        None => Err(ApiError::not_found("insights")),
    }
}

/// Queue a fresh analysis (for instance after more messages arrived, or to switch analyzer).
/// Answers 202 with the job; the insights change when it has run.
#[utoipa::path(post, path = "/v1/conversations/{id}/insights/refresh", tag = "insights",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 202, description = "Queued", body = RefreshOut),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
        (status = 404, description = "No such conversation for this tenant", body = ErrorBody),
    ),
    security(("bearer" = ["write"])))]
pub async fn refresh(
    State(st): State<AppState>,
    Auth(p, ..): Writer,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<RefreshOut>)> {
    let id = conversation_id(&id)?;
    let job_id = st.store.enqueue_insights(&p.tenant, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RefreshOut {
            job_id,
            status: "queued",
        }),
    ))
}

fn time_param(v: &Option<String>, field: &str) -> ApiResult<Option<time::OffsetDateTime>> {
    v.as_deref()
        .map(|s| confab_core::timefmt::parse(s).map_err(|m| ApiError::field(field, m)))
        .transpose()
}

/// Insights across conversations: sentiment distribution, completion rate, top topics, by
/// agent and by day.
#[utoipa::path(get, path = "/v1/analytics/insights", tag = "insights", params(AnalyticsParams),
    responses(
        (status = 200, description = "The aggregate", body = InsightsAnalyticsOut),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn analytics(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    QueryParams(q): QueryParams<AnalyticsParams>,
) -> ApiResult<Json<InsightsAnalyticsOut>> {
    let query = InsightsQuery {
        agent_id: q.agent_id,
        created_after: time_param(&q.created_after, "created_after")?,
        created_before: time_param(&q.created_before, "created_before")?,
    };
    let s = st.store.insights_summary(&p.tenant, &query).await?;
    Ok(Json(s.into()))
}
