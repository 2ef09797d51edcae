//! `POST /api/v1/conversations` (log or open), `GET /api/v1/conversations` (list) and
//! `GET /api/v1/conversations/{id}`.

use crate::json::Json;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use confab_core::input::NewConversation;
use confab_core::transcript::{self, TranscriptLimits};
use confab_core::{Conversation, Message, Status, ValidationError, page};
use confab_store::{
    ConversationFilter, ConversationPage, IdempotencyClaim, MessageQuery, Store, TenantId,
};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use uuid::Uuid;

use super::dto::*;
use super::errors::{transcript_error, wire_names};
use crate::AppState;
use crate::auth::{Auth, Reader, Writer};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, QueryParams};
use crate::ids::conversation_id;
use crate::native::dto::ErrorBody;

/// The prompt fields that link an agent, in precedence order.
const PROMPT_FIELDS: [&str; 3] = ["promptId", "agentId", "systemPromptId"];

/// The linked agent and the field that named it. Several fields may be given only if they agree:
/// a conversation has one agent, and silently picking one would hide a client bug.
fn linked_prompt(b: &CreateIn, errs: &mut ValidationError) -> Option<(String, &'static str)> {
    let given = [&b.prompt_id, &b.agent_id, &b.system_prompt_id];
    let mut linked: Option<(String, &'static str)> = None;
    for (field, v) in PROMPT_FIELDS.iter().zip(given) {
        let Some(v) = v else { continue };
        if v.trim().is_empty() {
            errs.push(*field, "must not be empty");
        } else if let Some((first, first_field)) = &linked {
            if first != v {
                errs.push(
                    *field,
                    format!("conflicts with {first_field}: a conversation links one prompt"),
                );
            }
        } else {
            linked = Some((v.clone(), *field));
        }
    }
    linked
}

/// Translates a create request into the core's input, collecting every field problem; a size
/// limit is answered at once with 413.
fn new_conversation(b: &CreateIn) -> ApiResult<NewConversation> {
    if let Some(k) = &b.idempotency_key {
        crate::idempotency::check_key("idempotencyKey", k)?;
    }
    let mut errs = ValidationError::default();
    let linked = linked_prompt(b, &mut errs);
    if b.prompt_name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        errs.push("promptName", "must not be empty");
    }
    if linked.is_none() && b.prompt_name.is_none() && errs.is_empty() {
        errs.push("promptId", "Required field");
    }
    let status = b.status.unwrap_or(Status::Completed);
    let parsed = match &b.content {
        None => {
            errs.push("content", "Required field");
            None
        }
        Some(c) => match transcript::parse(c, &TranscriptLimits::CONVERRA)
            .and_then(|t| transcript::require_turns(&t, status).map(|_| t))
        {
            Ok(t) => Some(t),
            Err(transcript::TranscriptError::Invalid(v)) => {
                errs.errors.extend(wire_names(v, &[]).errors);
                None
            }
            Err(too_large) => return Err(transcript_error(too_large)),
        },
    };
    let (Some(t), true) = (parsed, errs.is_empty()) else {
        return Err(errs.into());
    };
    let mut input = NewConversation::new(status);
    let prompt_field = linked.as_ref().map_or("promptId", |(_, f)| *f);
    // Without a linked prompt there is nothing to judge the conversation against (the seed:
    // "complete but not analyzed").
    input.analyze = linked.is_some();
    input.agent_id = linked.map(|(id, _)| id);
    input.user_id = t.user_id;
    input.source = t.source;
    input.model = b.llm_model.clone();
    input.company_name = b.company_name.clone();
    input.metadata = t.metadata;
    if let Some(n) = &b.prompt_name {
        input
            .metadata
            .insert("promptName".into(), Value::String(n.clone()));
    }
    input.messages = t.messages;
    input.validate(&Default::default()).map_err(|e| {
        wire_names(
            e,
            &[
                ("agent_id", prompt_field),
                ("user_id", "content.metadata.userId"),
                ("source", "content.metadata.channel"),
                ("model", "llmModel"),
                ("company_name", "companyName"),
                ("metadata", "content.metadata"),
            ],
        )
    })?;
    Ok(input)
}

/// Log a conversation (a finished transcript) or open a live one (`status: "active"`).
#[utoipa::path(post, path = "/api/v1/conversations", tag = "converra", operation_id = "converra_create",
    request_body = CreateIn,
    responses(
        (status = 200, description = "Created, or the conversation an earlier request with the same idempotencyKey created", body = CreatedOut),
        (status = 400, description = "VALIDATION_ERROR; details name each field", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: content over 512 KiB, over 500 messages, or a message over 100 KiB", body = ErrorBody),
    ),
    security(("bearer" = ["write"])))]
pub async fn create(
    State(st): State<AppState>,
    Auth(p, ..): Writer,
    JsonBody(b): JsonBody<CreateIn>,
) -> ApiResult<Response> {
    let input = new_conversation(&b)?;
    // Converra semantics: a known key returns the existing conversation whatever this body says
    // (no fingerprint), for 24 hours.
    let idem = b.idempotency_key.map(|key| IdempotencyClaim {
        family: "converra",
        key,
        fingerprint: None,
    });
    let w = st.store.create_conversation(&p.tenant, input, idem).await?;
    let mut res = Json(CreatedOut::from(w.conversation())).into_response();
    if w.is_replay() {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(res)
}

/// Filters and page of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only conversations linked to this prompt.
    pub prompt_id: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only conversations with (true) or without (false) insights.
    pub has_insights: Option<bool>,
    /// 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Items to skip, default 0.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// List conversations, newest first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "converra", operation_id = "converra_list",
    params(ListParams),
    responses(
        (status = 200, description = "A page", body = ListOut),
        (status = 400, description = "VALIDATION_ERROR naming the parameter", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    QueryParams(q): QueryParams<ListParams>,
) -> ApiResult<Json<ListOut>> {
    let limit = page::limit(q.limit, 20, page::MAX_LIMIT, "limit")?;
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::field("offset", "must not be negative"));
    }
    let filter = ConversationFilter {
        agent_id: q.prompt_id,
        status: q.status,
        has_insights: q.has_insights,
        ..ConversationFilter::default()
    };
    let total = st.store.count_conversations(&p.tenant, &filter).await?;
    let rows = st
        .store
        .list_conversations(&p.tenant, &filter, ConversationPage::Offset(offset, limit))
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|c| c.id).collect();
    let with = st.store.with_insights(&p.tenant, &ids).await?;
    Ok(Json(ListOut {
        data: rows
            .iter()
            .map(|c| ListItem::new(c, with.contains(&c.id)))
            .collect(),
        pagination: Pagination {
            total,
            limit,
            offset,
        },
    }))
}

/// The messages of `c` as of the write or read that produced `c`: seqs are dense and only ever
/// added, so `seq < message_count` is exactly that moment's set even if turns land meanwhile.
pub(super) async fn messages_of(
    store: &Store,
    tenant: &TenantId,
    c: &Conversation,
) -> ApiResult<Vec<Message>> {
    let q = MessageQuery {
        before_seq: Some(c.message_count),
        ..MessageQuery::default()
    };
    Ok(store.list_messages(tenant, c.id, &q).await?)
}

/// Options of a get.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Include the `insights` key (default true; null until they exist).
    pub include_insights: Option<bool>,
}

/// Get one conversation with its messages, transcript and (by default) insights.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "converra", operation_id = "converra_get",
    params(("id" = String, Path, description = "Conversation id"), GetParams),
    responses(
        (status = 200, description = "The conversation", body = ConversationOut),
        (status = 400, description = "VALIDATION_ERROR naming the parameter", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND (also for another account's conversation)", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn get(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<GetParams>,
) -> ApiResult<Json<ConversationOut>> {
    let id = conversation_id(&id)?;
    let c = st.store.get_conversation(&p.tenant, id).await?;
    let messages = messages_of(&st.store, &p.tenant, &c).await?;
    let insights = if q.include_insights.unwrap_or(true) {
        Some(st.store.get_insights(&p.tenant, id).await?)
    } else {
        None
    };
    Ok(Json(ConversationOut::new(&c, &messages, insights)))
}
