//! `GET /api/v1/conversations/{id}/insights`.

use crate::json::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::dto::InsightsOut;
use crate::AppState;
use crate::auth::{Auth, Reader};
use crate::error::{ApiError, ApiResult};
use crate::ids::conversation_id;
use crate::native::dto::ErrorBody;

/// Get a conversation's insights once the analyzer has made them.
///
/// Before that the answer is 404 `INSIGHTS_NOT_READY`, with `details.reason` saying whether to
/// wait (`pending`), to complete the conversation first (`not_completed`), or that none will
/// come (`not_analyzed`: logged with only a `promptName`).
#[utoipa::path(get, path = "/api/v1/conversations/{id}/insights", tag = "converra", operation_id = "converra_insights",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The insights", body = InsightsOut),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND (no such conversation for this account) or INSIGHTS_NOT_READY", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    Path(id): Path<String>,
) -> ApiResult<Json<InsightsOut>> {
    let id = conversation_id(&id)?;
    let c = st.store.get_conversation(&p.tenant, id).await?;
    if let Some(i) = st.store.get_insights(&p.tenant, id).await? {
        return Ok(Json((&i).into()));
    }
    let (reason, message) = if !c.analyze {
        (
            "not_analyzed",
            "This conversation was logged with only a promptName and is never analyzed; link a prompt (promptId) to get insights",
        )
    } else if c.completed_at.is_none() {
        (
            "not_completed",
            "Insights are generated once the conversation is completed",
        )
    } else {
        ("pending", "Insights are being generated; try again shortly")
    };
    Err(
        ApiError::new(StatusCode::NOT_FOUND, "INSIGHTS_NOT_READY", message)
            .with_detail("reason", reason),
    )
}
