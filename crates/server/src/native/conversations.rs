//! `/v1/conversations`: create, list, get, patch, delete.

use crate::json::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_core::cursor::ConversationCursor;
use confab_core::input::NewConversation;
use confab_core::timefmt::to_micros;
use confab_core::{Sentiment, Status, page};
use confab_store::{ConversationFilter, ConversationPage};
use serde::Deserialize;
use utoipa::IntoParams;

use super::dto::*;
use crate::AppState;
use crate::auth::{Reader, Writer};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams, RawJson};
use crate::idempotency;
use crate::ids::conversation_id;

/// Answers a written conversation, marking replays.
pub(super) fn written(status: StatusCode, w: &confab_store::Written) -> Response {
    let mut res = (status, Json(ConversationOut::from(w.conversation()))).into_response();
    if w.is_replay() {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

/// Create a conversation, optionally with its first messages.
#[utoipa::path(post, path = "/v1/conversations", tag = "conversations",
    request_body = ConversationCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry safely for 24 hours: the same key and body replay the first answer; another body is a 422")),
    responses(
        (status = 201, description = "Created", body = ConversationOut),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorBody),
    ),
    security(("bearer" = ["write"])))]
pub async fn create(
    State(st): State<AppState>,
    Auth(p, ..): Writer,
    headers: HeaderMap,
    body: RawJson<ConversationCreate>,
) -> ApiResult<Response> {
    let idem = idempotency::native_claim(&headers, "POST /v1/conversations", || body.canonical())?;
    let b = body.value;
    let mut input = NewConversation::new(b.status.unwrap_or(Status::Active));
    input.agent_id = b.agent_id;
    input.user_id = b.user_id;
    input.title = b.title;
    input.source = b.source;
    input.model = b.model;
    input.company_name = b.company_name;
    input.added_to_memory = b.added_to_memory;
    input.metadata = b.metadata.unwrap_or_default();
    input.created_at = b.created_at;
    input.messages = b.messages.into_iter().map(Into::into).collect();
    input.validate(&st.limits)?;
    let w = st.store.create_conversation(&p.tenant, input, idem).await?;
    let mut res = written(StatusCode::CREATED, &w);
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/conversations/{}", w.conversation().id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

use crate::auth::Auth;

/// Filters and page of a conversation list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this agent's.
    pub agent_id: Option<String>,
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only this channel.
    pub source: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_after: Option<String>,
    /// Created before (RFC 3339).
    pub created_before: Option<String>,
    /// Only conversations whose insights have this sentiment.
    pub sentiment: Option<Sentiment>,
    /// Only conversations whose insights say the task was (not) completed.
    pub task_completed: Option<bool>,
}

fn time_param(v: &Option<String>, field: &str) -> ApiResult<Option<time::OffsetDateTime>> {
    v.as_deref()
        .map(|s| confab_core::timefmt::parse(s).map_err(|m| ApiError::field(field, m)))
        .transpose()
}

/// List conversations, newest first.
#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", params(ListParams),
    responses(
        (status = 200, description = "A page", body = ConversationList),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    QueryParams(q): QueryParams<ListParams>,
) -> ApiResult<Json<ConversationList>> {
    let limit = page::limit(q.limit, 20, page::MAX_LIMIT, "limit")?;
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            ConversationCursor::decode(c)
                .ok_or_else(|| ApiError::field("cursor", "not a cursor this server issued"))
        })
        .transpose()?;
    let filter = ConversationFilter {
        agent_id: q.agent_id,
        user_id: q.user_id,
        status: q.status,
        source: q.source,
        created_after: time_param(&q.created_after, "created_after")?,
        created_before: time_param(&q.created_before, "created_before")?,
        sentiment: q.sentiment,
        task_completed: q.task_completed,
        ..Default::default()
    };
    let mut rows = st
        .store
        .list_conversations(
            &p.tenant,
            &filter,
            ConversationPage::After(cursor, limit + 1),
        )
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if more => Some(
            ConversationCursor {
                created_at_us: to_micros(last.created_at),
                id: last.id,
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(Json(ConversationList {
        data: rows.iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Get one conversation.
#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationOut),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
        (status = 404, description = "No such conversation for this tenant", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationOut>> {
    let c = st
        .store
        .get_conversation(&p.tenant, conversation_id(&id)?)
        .await?;
    Ok(Json((&c).into()))
}

/// Change title, status, metadata (shallow merge) or the memory flag.
#[utoipa::path(patch, path = "/v1/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    request_body = PatchIn,
    responses(
        (status = 200, description = "The updated conversation", body = ConversationOut),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "No such conversation for this tenant", body = ErrorBody),
    ),
    security(("bearer" = ["write"])))]
pub async fn patch(
    State(st): State<AppState>,
    Auth(p, ..): Writer,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<PatchIn>,
) -> ApiResult<Json<ConversationOut>> {
    let id = conversation_id(&id)?;
    let c = st.store.patch_conversation(&p.tenant, id, b.into()).await?;
    Ok(Json((&c).into()))
}

/// Delete a conversation and everything of it (messages, insights, jobs, idempotency keys).
#[utoipa::path(delete, path = "/v1/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such conversation for this tenant", body = ErrorBody),
    ),
    security(("bearer" = ["write"])))]
pub async fn delete(
    State(st): State<AppState>,
    Auth(p, ..): Writer,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.store
        .delete_conversation(&p.tenant, conversation_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
