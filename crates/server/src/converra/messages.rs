//! `POST /api/v1/conversations/{id}/messages`: append turns to a live conversation.

use crate::json::Json;
use axum::extract::{Path, State};
use confab_core::Status;
use confab_core::input::{AppendMessages, NewMessage};
use confab_core::transcript::{self, TranscriptLimits};

use super::conversations::messages_of;
use super::dto::*;
use super::errors::{transcript_error, wire_names};
use crate::AppState;
use crate::auth::{Auth, Writer};
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::ids::conversation_id;
use crate::native::dto::ErrorBody;

/// The core's input for an append: Converra's limits apply to each request (413), then each
/// message's rules (400).
fn append_input(b: AppendIn) -> ApiResult<AppendMessages> {
    let Some(messages) = b.messages else {
        return Err(ApiError::field("messages", "Required field"));
    };
    let messages: Vec<NewMessage> = messages.into_iter().map(Into::into).collect();
    transcript::check_messages(&messages, "messages", &TranscriptLimits::CONVERRA)
        .map_err(transcript_error)?;
    let input = AppendMessages {
        messages,
        // "active" is the documented default and means "no change": it never reopens a
        // completed conversation.
        status: match b.status {
            None | Some(AppendStatus::Active) => None,
            Some(AppendStatus::Completed) => Some(Status::Completed),
        },
        metadata: b.metadata,
    };
    input
        .validate(&Default::default())
        .map_err(|e| wire_names(e, &[]))?;
    Ok(input)
}

/// Append turns atomically; `status: "completed"` on the final call queues analysis.
///
/// Concurrent appends to one conversation are serialized by the store: every turn lands once,
/// with consecutive positions. A completed conversation still accepts turns (late transcripts are
/// kept); a second `completed` changes nothing and queues no second analysis.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "converra", operation_id = "converra_append",
    params(("id" = String, Path, description = "Conversation id")),
    request_body = AppendIn,
    responses(
        (status = 200, description = "The whole conversation after the append", body = ConversationOut),
        (status = 400, description = "VALIDATION_ERROR; details name each field", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 404, description = "NOT_FOUND (also for another account's conversation)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE: over 500 messages, a message over 100 KiB, or over 512 KiB together", body = ErrorBody),
    ),
    security(("bearer" = ["write"])))]
pub async fn append(
    State(st): State<AppState>,
    Auth(p, ..): Writer,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<AppendIn>,
) -> ApiResult<Json<ConversationOut>> {
    let id = conversation_id(&id)?;
    let input = append_input(b)?;
    let w = st.store.append_messages(&p.tenant, id, input, None).await?;
    let c = w.conversation();
    let messages = messages_of(&st.store, &p.tenant, c).await?;
    Ok(Json(ConversationOut::new(c, &messages, None)))
}
