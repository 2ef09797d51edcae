//! `GET /v1/search`: full-text search over message content. The query language, tokens and
//! snippets are the core's; this module only reads parameters and writes the answer.

use crate::json::Json;
use axum::extract::State;
use confab_core::cursor::SearchCursor;
use confab_core::timefmt::rfc3339;
use confab_core::{Role, Status, page, search};
use confab_store::{SearchFilter, SearchRequest, SearchSort};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Auth, Reader};
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::native::dto::ErrorBody;

/// Result order.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortParam {
    /// Best match first (BM25) among the 1,000 newest matches.
    Relevance,
    /// Most recently stored first, over every match.
    Recent,
}

/// Query and filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words (all must match), "exact phrases", prefix*, a OR b, -excluded. Accents and case
    /// are ignored; Chinese, Japanese and Korean text matches any substring.
    pub q: String,
    /// 1–100, default 20.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (same q, filters and sort).
    pub cursor: Option<String>,
    /// `relevance` (default) or `recent`.
    #[param(inline)]
    pub sort: Option<SortParam>,
    /// Only this agent's conversations.
    pub agent_id: Option<String>,
    /// Only this user's conversations.
    pub user_id: Option<String>,
    /// Only messages of this role.
    pub role: Option<Role>,
    /// Only conversations from this channel.
    pub source: Option<String>,
    /// Only conversations in this status.
    pub status: Option<Status>,
    /// Only this conversation.
    pub conversation_id: Option<String>,
    /// Messages created at or after (RFC 3339).
    pub created_after: Option<String>,
    /// Messages created before (RFC 3339).
    pub created_before: Option<String>,
}

/// One matching message.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHitOut {
    /// Its conversation.
    pub conversation_id: Uuid,
    /// The message.
    pub message_id: Uuid,
    /// Position in the conversation.
    pub seq: i64,
    /// Speaker.
    pub role: Role,
    /// Excerpt around the first match; matched words in `<mark>…</mark>`; not HTML-escaped.
    pub snippet: String,
    /// Relevance, higher is better.
    pub score: f64,
    /// RFC 3339.
    pub created_at: String,
}

/// A page of hits.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchList {
    /// Hits.
    pub data: Vec<SearchHitOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

pub(crate) fn time_param(
    v: &Option<String>,
    field: &str,
) -> ApiResult<Option<time::OffsetDateTime>> {
    v.as_deref()
        .map(|s| confab_core::timefmt::parse(s).map_err(|m| ApiError::field(field, m)))
        .transpose()
}

/// Search message content across the tenant's conversations.
#[utoipa::path(get, path = "/v1/search", tag = "search", params(SearchParams),
    responses(
        (status = 200, description = "A page of hits", body = SearchList),
        (status = 400, description = "Unreadable query or bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn search(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    QueryParams(q): QueryParams<SearchParams>,
) -> ApiResult<Json<SearchList>> {
    let limit = page::limit(q.limit, 20, page::MAX_LIMIT, "limit")?;
    let query = search::parse_query(&q.q)?;
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            SearchCursor::decode(c)
                .ok_or_else(|| ApiError::field("cursor", "not a cursor this server issued"))
        })
        .transpose()?;
    let conversation_id = q
        .conversation_id
        .as_deref()
        .map(|s| {
            confab_core::ids::parse_uuid(s)
                .ok_or_else(|| ApiError::field("conversation_id", "is not a conversation id"))
        })
        .transpose()?;
    let req = SearchRequest {
        query,
        filter: SearchFilter {
            agent_id: q.agent_id,
            user_id: q.user_id,
            role: q.role,
            source: q.source,
            status: q.status,
            conversation_id,
            created_after: time_param(&q.created_after, "created_after")?,
            created_before: time_param(&q.created_before, "created_before")?,
        },
        sort: match q.sort {
            Some(SortParam::Recent) => SearchSort::Recent,
            _ => SearchSort::Relevance,
        },
        limit,
        cursor,
    };
    let page = st.store.search(&p.tenant, &req).await?;
    Ok(Json(SearchList {
        data: page
            .hits
            .into_iter()
            .map(|h| SearchHitOut {
                conversation_id: h.conversation_id,
                message_id: h.message_id,
                seq: h.seq,
                role: h.role,
                snippet: h.snippet,
                score: h.score,
                created_at: rfc3339(h.created_at),
            })
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// The search route.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(search))
}
