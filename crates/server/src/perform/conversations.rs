//! `GET /rest/v1/conversations`, `…/{id}` and `…/{id}/messages`.

use crate::json::Json;
use axum::extract::{Path, State};
use confab_core::numbered::NumberedPage;
use confab_core::page::MAX_LIMIT;
use confab_store::{ConversationFilter, ConversationPage, MessageQuery};

use super::credentials::Authed;
use super::dto::*;
use crate::AppState;
use crate::error::ApiResult;
use crate::ids::conversation_id;
use crate::native::dto::ErrorBody;

/// List conversations, newest first. Credentials: `{"keyId","keySecret"}` as the JSON body
/// (also on GET), or `Authorization: Bearer key_id.key_secret`.
#[utoipa::path(get, path = "/rest/v1/conversations", tag = "perform.chat", params(PageParams),
    responses(
        (status = 200, description = "A page (default limit 20)", body = ConversationList),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
        (status = 401, description = "Invalid API credentials", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(st): State<AppState>,
    a: Authed<PageParams>,
) -> ApiResult<Json<ConversationList>> {
    let p = NumberedPage::parse(a.query.page, a.query.limit, 20, MAX_LIMIT)?;
    let tenant = &a.principal.tenant;
    let all = ConversationFilter::default();
    let total = st.store.count_conversations(tenant, &all).await?;
    let rows = st
        .store
        .list_conversations(tenant, &all, ConversationPage::Offset(p.offset(), p.limit))
        .await?;
    Ok(Json(ConversationList {
        data: rows.iter().map(Into::into).collect(),
        pagination: Pagination::new(p, total),
    }))
}

/// Get one conversation (the list's object, at top level).
#[utoipa::path(get, path = "/rest/v1/conversations/{id}", tag = "perform.chat",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationOut),
        (status = 401, description = "Invalid API credentials", body = ErrorBody),
        (status = 404, description = "No such conversation for this account", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
    a: Authed<NoParams>,
) -> ApiResult<Json<ConversationOut>> {
    let c = st
        .store
        .get_conversation(&a.principal.tenant, conversation_id(&id)?)
        .await?;
    Ok(Json((&c).into()))
}

/// A conversation's messages of every role, oldest first, with the conversation.
#[utoipa::path(get, path = "/rest/v1/conversations/{id}/messages", tag = "perform.chat",
    params(("id" = String, Path, description = "Conversation id"), PageParams),
    responses(
        (status = 200, description = "A page (default limit 50)", body = MessageList),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
        (status = 401, description = "Invalid API credentials", body = ErrorBody),
        (status = 404, description = "No such conversation for this account", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn messages(
    State(st): State<AppState>,
    Path(id): Path<String>,
    a: Authed<PageParams>,
) -> ApiResult<Json<MessageList>> {
    let id = conversation_id(&id)?;
    let p = NumberedPage::parse(a.query.page, a.query.limit, 50, MAX_LIMIT)?;
    let tenant = &a.principal.tenant;
    let c = st.store.get_conversation(tenant, id).await?;
    let q = MessageQuery {
        offset: p.offset(),
        limit: Some(p.limit),
        ..Default::default()
    };
    let rows = st.store.list_messages(tenant, id, &q).await?;
    Ok(Json(MessageList {
        data: rows.into_iter().map(Into::into).collect(),
        conversation: (&c).into(),
        pagination: Pagination::new(p, c.message_count),
    }))
}
