//! `/v1/replicas/{replicaUUID}/analytics/conversations/…`: aggregate counts from the store,
//! shaped into Sensay's series by the core.

use crate::json::Json;
use axum::extract::{Path, State};
use confab_core::daily;

use super::dto::*;
use super::resolve;
use crate::AppState;
use crate::auth::{Auth, SensayReader};
use crate::error::ApiResult;

/// Points in the historical series: the last 30 UTC days, today included.
const DAYS: u16 = 30;

/// Cumulative conversation counts for each of the last 30 UTC days, oldest first.
#[utoipa::path(get, path = "/v1/replicas/{replicaUUID}/analytics/conversations/historical", tag = "sensay",
    params(
        ("replicaUUID" = String, Path, description = "The replica"),
        ("X-API-Version" = Option<String>, Header, description = "Accepted and ignored"),
    ),
    responses(
        (status = 200, description = "Exactly 30 points, ascending, the last one today (UTC); each counts every conversation created up to the end of its day", body = Items<HistoricalPoint>),
        (status = 401, description = "Missing or bad X-ORGANIZATION-SECRET", body = SensayError),
        (status = 404, description = "No such replica", body = SensayError),
    ),
    security(("organization_secret" = ["read"])))]
pub async fn historical(
    State(st): State<AppState>,
    Auth(p, ..): SensayReader,
    Path(replica): Path<String>,
) -> ApiResult<Json<Items<HistoricalPoint>>> {
    let (first, start, end) = daily::window(confab_core::timefmt::now(), DAYS);
    let c = st
        .store
        .agent_daily_counts(&p.tenant, &replica, start, end)
        .await?;
    // Counted conversations prove the replica exists; only an all-zero answer needs the
    // lookup that tells an idle replica (zeros) from an unknown one (404).
    if c.before == 0 && c.per_day.is_empty() {
        resolve::replica(&st, &p.tenant, &replica).await?;
    }
    let series = daily::cumulative(first, DAYS, c.before, &c.per_day);
    Ok(Json(Items::new(
        series.into_iter().map(HistoricalPoint::new).collect(),
    )))
}

/// Conversations per source, largest first.
#[utoipa::path(get, path = "/v1/replicas/{replicaUUID}/analytics/conversations/sources", tag = "sensay",
    params(
        ("replicaUUID" = String, Path, description = "The replica"),
        ("X-API-Version" = Option<String>, Header, description = "Accepted and ignored"),
    ),
    responses(
        (status = 200, description = "One row per source with at least one conversation, largest first (ties by name); empty without conversations", body = Items<SourceRow>),
        (status = 401, description = "Missing or bad X-ORGANIZATION-SECRET", body = SensayError),
        (status = 404, description = "No such replica", body = SensayError),
    ),
    security(("organization_secret" = ["read"])))]
pub async fn sources(
    State(st): State<AppState>,
    Auth(p, ..): SensayReader,
    Path(replica): Path<String>,
) -> ApiResult<Json<Items<SourceRow>>> {
    let rows = st
        .store
        .agent_sources(&p.tenant, &replica, "unknown")
        .await?;
    // As in `historical`: rows prove the replica exists.
    if rows.is_empty() {
        resolve::replica(&st, &p.tenant, &replica).await?;
    }
    Ok(Json(Items::new(
        rows.into_iter()
            .map(|(source, conversations)| SourceRow {
                source,
                conversations,
            })
            .collect(),
    )))
}
