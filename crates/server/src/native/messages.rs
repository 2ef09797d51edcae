//! `/v1/conversations/{id}/messages`: append and page.

use crate::json::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use confab_core::cursor::MessageCursor;
use confab_core::page;
use confab_store::MessageQuery;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::conversations::written;
use super::dto::*;
use crate::AppState;
use crate::auth::{Auth, Reader, Writer};
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryParams, RawJson};
use crate::idempotency;
use crate::ids::conversation_id;

/// Append one or more messages atomically.
#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "messages",
    params(("id" = String, Path, description = "Conversation id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Retry safely for 24 hours")),
    request_body = AppendIn,
    responses(
        (status = 200, description = "The updated conversation", body = ConversationOut),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 404, description = "No such conversation for this tenant", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorBody),
    ),
    security(("bearer" = ["write"])))]
pub async fn append(
    State(st): State<AppState>,
    Auth(p, ..): Writer,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: RawJson<AppendIn>,
) -> ApiResult<Response> {
    let id = conversation_id(&id)?;
    let route = format!("POST /v1/conversations/{id}/messages");
    let idem = idempotency::native_claim(&headers, &route, || body.canonical())?;
    let input: confab_core::input::AppendMessages = body.value.into();
    input.validate(&st.limits)?;
    let w = st.store.append_messages(&p.tenant, id, input, idem).await?;
    Ok(written(StatusCode::OK, &w))
}

/// Direction of a message page.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first (default).
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// Page of a message list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageParams {
    /// 1–100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `asc` (oldest first, default) or `desc` (newest first).
    #[param(inline)]
    pub order: Option<Order>,
}

/// Page through a conversation's messages, in either direction.
#[utoipa::path(get, path = "/v1/conversations/{id}/messages", tag = "messages",
    params(("id" = String, Path, description = "Conversation id"), MessageParams),
    responses(
        (status = 200, description = "A page", body = MessageList),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        (status = 404, description = "No such conversation for this tenant", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<MessageParams>,
) -> ApiResult<Json<MessageList>> {
    let id = conversation_id(&id)?;
    let limit = page::limit(q.limit, 50, page::MAX_LIMIT, "limit")?;
    let cursor = q
        .cursor
        .as_deref()
        .map(|c| {
            MessageCursor::decode(c)
                .ok_or_else(|| ApiError::field("cursor", "not a cursor this server issued"))
        })
        .transpose()?;
    let desc = matches!(q.order.unwrap_or_default(), Order::Desc);
    let mq = MessageQuery {
        after_seq: if desc { None } else { cursor.map(|c| c.seq) },
        before_seq: if desc { cursor.map(|c| c.seq) } else { None },
        descending: desc,
        limit: Some(limit + 1),
        ..Default::default()
    };
    let mut rows = st.store.list_messages(&p.tenant, id, &mq).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if more => Some(MessageCursor { seq: last.seq }.encode()),
        _ => None,
    };
    Ok(Json(MessageList {
        data: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
