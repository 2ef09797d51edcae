//! `/v1/analytics/summary`, `/v1/analytics/daily` and `/v1/conversations/{id}/report`: the
//! seed's dashboard and report, answered by aggregate queries.

use std::collections::BTreeMap;

use crate::json::Json;
use axum::extract::{Path, State};
use confab_core::timefmt::rfc3339;
use confab_store::GroupCount;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Auth, Reader};
use crate::error::ApiResult;
use crate::extract::QueryParams;
use crate::ids::conversation_id;
use crate::native::dto::ErrorBody;

/// Conversations and messages of one source.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceCount {
    /// Channel; null when unset.
    pub source: Option<String>,
    /// Conversations.
    pub conversations: i64,
    /// Their messages.
    pub messages: i64,
}

/// Conversations and messages of one agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentCount {
    /// Agent; null when unset.
    pub agent_id: Option<String>,
    /// Conversations.
    pub conversations: i64,
    /// Their messages.
    pub messages: i64,
}

/// The tenant's dashboard numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryOut {
    /// All conversations.
    pub conversations: i64,
    /// All messages.
    pub messages: i64,
    /// Conversations created in the last 24 hours.
    pub last_24h: i64,
    /// Conversations created in the last 7 days.
    pub last_7d: i64,
    /// messages / conversations (0 without conversations).
    pub avg_messages_per_conversation: f64,
    /// Conversations per status (every status present).
    pub by_status: BTreeMap<String, i64>,
    /// Per source, most conversations first.
    pub by_source: Vec<SourceCount>,
    /// Per agent, most conversations first.
    pub by_agent: Vec<AgentCount>,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Totals, recent activity and breakdowns by status, source and agent.
#[utoipa::path(get, path = "/v1/analytics/summary", tag = "analytics",
    responses(
        (status = 200, description = "Summary", body = SummaryOut),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn summary(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
) -> ApiResult<Json<SummaryOut>> {
    let s = st
        .store
        .summary(&p.tenant, confab_core::timefmt::now())
        .await?;
    let split = |g: &GroupCount| (g.key.clone(), g.conversations, g.messages);
    Ok(Json(SummaryOut {
        conversations: s.conversations,
        messages: s.messages,
        last_24h: s.last_24h,
        last_7d: s.last_7d,
        avg_messages_per_conversation: round2(s.avg_messages_per_conversation()),
        by_status: s
            .by_status
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), *v))
            .collect(),
        by_source: s
            .by_source
            .iter()
            .map(split)
            .map(|(source, conversations, messages)| SourceCount {
                source,
                conversations,
                messages,
            })
            .collect(),
        by_agent: s
            .by_agent
            .iter()
            .map(split)
            .map(|(agent_id, conversations, messages)| AgentCount {
                agent_id,
                conversations,
                messages,
            })
            .collect(),
    }))
}

/// How many days.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DailyParams {
    /// 1–365, default 30.
    pub days: Option<i64>,
}

/// One UTC day.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayOut {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// Conversations created that day.
    pub conversations: i64,
    /// Messages created that day.
    pub messages: i64,
}

/// Daily series.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyOut {
    /// Oldest first; the last point is today (UTC).
    pub data: Vec<DayOut>,
}

/// Conversations and messages created per UTC day, the last point being today.
#[utoipa::path(get, path = "/v1/analytics/daily", tag = "analytics", params(DailyParams),
    responses(
        (status = 200, description = "Series", body = DailyOut),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn daily(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    QueryParams(q): QueryParams<DailyParams>,
) -> ApiResult<Json<DailyOut>> {
    let days = confab_core::page::limit(q.days, 30, 365, "days")?;
    let points = st
        .store
        .daily(&p.tenant, days as u32, confab_core::timefmt::now())
        .await?;
    Ok(Json(DailyOut {
        data: points
            .into_iter()
            .map(|d| DayOut {
                date: format!(
                    "{:04}-{:02}-{:02}",
                    d.day.year(),
                    d.day.month() as u8,
                    d.day.day()
                ),
                conversations: d.conversations,
                messages: d.messages,
            })
            .collect(),
    }))
}

/// Counts of a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportStats {
    /// All messages.
    pub total_messages: i64,
    /// User messages.
    pub user_messages: i64,
    /// Assistant messages.
    pub assistant_messages: i64,
    /// System messages.
    pub system_messages: i64,
    /// Tool messages.
    pub tool_messages: i64,
    /// Mean content length in characters.
    pub avg_message_length: f64,
    /// Last message time minus first (by seq), in milliseconds.
    pub duration_ms: i64,
    /// The same in whole minutes.
    pub duration_minutes: i64,
    /// RFC 3339; null without messages.
    pub first_message_at: Option<String>,
    /// RFC 3339; null without messages.
    pub last_message_at: Option<String>,
}

/// Seed 000's conversation report (the transcript is `GET …/messages`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportOut {
    /// Conversation id.
    pub id: uuid::Uuid,
    /// Title.
    pub title: Option<String>,
    /// Counts.
    pub stats: ReportStats,
}

/// Counts by role, average message length and duration of one conversation.
#[utoipa::path(get, path = "/v1/conversations/{id}/report", tag = "analytics",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "Report", body = ReportOut),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
        (status = 404, description = "No such conversation for this tenant", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn report(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    Path(id): Path<String>,
) -> ApiResult<Json<ReportOut>> {
    let id = conversation_id(&id)?;
    let conv = st.store.get_conversation(&p.tenant, id).await?;
    let r = st.store.conversation_report(&p.tenant, id).await?;
    let role = |i: usize| r.by_role.get(i).map(|x| x.1).unwrap_or(0);
    let ms = r.duration_ms();
    Ok(Json(ReportOut {
        id,
        title: conv.title,
        stats: ReportStats {
            total_messages: r.total_messages,
            user_messages: role(0),
            assistant_messages: role(1),
            system_messages: role(2),
            tool_messages: role(3),
            avg_message_length: round2(r.avg_message_length),
            duration_ms: ms,
            duration_minutes: ms / 60_000,
            first_message_at: r.first_message_at.map(rfc3339),
            last_message_at: r.last_message_at.map(rfc3339),
        },
    }))
}

/// The analytics routes.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(summary))
        .routes(utoipa_axum::routes!(daily))
        .routes(utoipa_axum::routes!(report))
}
