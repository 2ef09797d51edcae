//! `POST /character/chatHistory/list` and `POST /character/chatHistory/details`.

use crate::json::Json;
use axum::extract::State;
use confab_core::Role;
use confab_core::ids::parse_uuid;
use confab_core::interactions::interactions;
use confab_core::sessions::SessionLimit;
use confab_store::{ConversationFilter, ConversationPage, MessageQuery, StoreError};

use super::dto::*;
use crate::AppState;
use crate::auth::{Auth, ConvaiReader};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::native::dto::ErrorBody;

/// List a character's sessions, newest first.
#[utoipa::path(post, path = "/character/chatHistory/list", tag = "Convai",
    request_body = ListIn,
    responses(
        (status = 200, description = "The sessions", body = Vec<SessionOut>),
        (status = 400, description = "Missing charID or bad limit", body = ErrorBody),
        (status = 401, description = "Missing or bad API key", body = ErrorBody),
    ),
    security(("convai_key" = ["read"])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(p, ..): ConvaiReader,
    JsonBody(b): JsonBody<ListIn>,
) -> ApiResult<Json<Vec<SessionOut>>> {
    let char_id = required(b.char_id, "charID")?;
    let limit = match SessionLimit::parse(b.limit.as_ref())? {
        SessionLimit::All => i64::MAX,
        SessionLimit::Newest(n) => n,
    };
    let filter = ConversationFilter {
        agent_id: Some(char_id),
        ..Default::default()
    };
    let rows = st
        .store
        .list_conversations(&p.tenant, &filter, ConversationPage::Offset(0, limit))
        .await?;
    Ok(Json(rows.iter().map(Into::into).collect()))
}

/// A session's interactions: each user turn with the character's replies; system and tool
/// messages are not shown.
#[utoipa::path(post, path = "/character/chatHistory/details", tag = "Convai",
    request_body = DetailsIn,
    responses(
        (status = 200, description = "The interactions, in order", body = Vec<InteractionOut>),
        (status = 400, description = "Missing charID or sessionID", body = ErrorBody),
        (status = 401, description = "Missing or bad API key", body = ErrorBody),
        (status = 404, description = "No such session for this character", body = ErrorBody),
    ),
    security(("convai_key" = ["read"])))]
pub async fn details(
    State(st): State<AppState>,
    Auth(p, ..): ConvaiReader,
    JsonBody(b): JsonBody<DetailsIn>,
) -> ApiResult<Json<Vec<InteractionOut>>> {
    let char_id = required(b.char_id, "charID")?;
    let session = required(b.session_id, "sessionID")?;
    let id = parse_uuid(&session).ok_or_else(|| {
        ApiError::field(
            "sessionID",
            "is not a session id (32 hex digits, as chatHistory/list shows them)",
        )
    })?;
    let not_found = || ApiError::not_found("session");
    let c = st
        .store
        .get_conversation(&p.tenant, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_found(),
            e => e.into(),
        })?;
    // Another character's session is as invisible as another tenant's.
    if c.agent_id.as_deref() != Some(char_id.as_str()) {
        return Err(not_found());
    }
    let q = MessageQuery {
        roles: Some(vec![Role::User, Role::Assistant]),
        ..Default::default()
    };
    let msgs = st.store.list_messages(&p.tenant, id, &q).await?;
    Ok(Json(interactions(&msgs).iter().map(Into::into).collect()))
}
