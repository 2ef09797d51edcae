//! `/v1/replicas/{replicaUUID}/conversations…`: the replica's conversations, a conversation's
//! messages and its mentions, all newest first with `beforeUUID` / `afterUUID` cursors.

use std::collections::HashMap;

use crate::json::Json;
use axum::extract::{Path, State};
use confab_core::mentions::{self, MentionItem as Item};
use confab_core::page;
use confab_core::seek::{Seek, parse_uuid_seek};
use confab_core::{Role, ValidationError};
use uuid::Uuid;

use super::dto::*;
use super::resolve;
use crate::AppState;
use crate::auth::{Auth, SensayReader};
use crate::error::ApiResult;
use crate::extract::QueryParams;

/// The roles Sensay shows; system and tool messages are internal to the replica.
const SHOWN: &[Role] = &[Role::User, Role::Assistant];

/// Limit and cursor, validated before anything is read.
fn parse(q: &CursorParams) -> Result<(i64, Option<Seek<Uuid>>), ValidationError> {
    let limit = page::limit(q.limit, 20, page::MAX_LIMIT, "limit")?;
    let seek = parse_uuid_seek(
        q.before_uuid.as_deref(),
        q.after_uuid.as_deref(),
        "beforeUUID",
        "afterUUID",
    )?;
    Ok((limit, seek))
}

/// The replica's conversations, newest first.
#[utoipa::path(get, path = "/v1/replicas/{replicaUUID}/conversations", tag = "sensay",
    params(
        ("replicaUUID" = String, Path, description = "The replica (the conversations' agent_id)"),
        ("X-API-Version" = Option<String>, Header, description = "Accepted and ignored"),
        CursorParams,
    ),
    responses(
        (status = 200, description = "A page, newest first; `beforeUUID` = the last item's uuid gives the next, older page", body = Items<ConversationItem>),
        (status = 400, description = "Bad limit, malformed or unknown cursor, or both cursors", body = SensayError),
        (status = 401, description = "Missing or bad X-ORGANIZATION-SECRET", body = SensayError),
        (status = 404, description = "No such replica", body = SensayError),
    ),
    security(("organization_secret" = ["read"])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(p, ..): SensayReader,
    Path(replica): Path<String>,
    QueryParams(q): QueryParams<CursorParams>,
) -> ApiResult<Json<Items<ConversationItem>>> {
    let (limit, seek) = parse(&q)?;
    let replica = resolve::replica(&st, &p.tenant, &replica).await?;
    let seek = resolve::conversation_seek(&st, &p.tenant, &replica, seek).await?;
    let rows = st
        .store
        .agent_conversations(
            &p.tenant,
            &replica,
            seek.as_ref().map(|s| s.as_ref()),
            limit,
        )
        .await?;
    Ok(Json(Items::new(rows.iter().map(Into::into).collect())))
}

/// A conversation's user and assistant messages, newest first (expands placeholders).
#[utoipa::path(get, path = "/v1/replicas/{replicaUUID}/conversations/{conversationUUID}/messages", tag = "sensay",
    params(
        ("replicaUUID" = String, Path, description = "The replica"),
        ("conversationUUID" = String, Path, description = "A conversation of the replica"),
        ("X-API-Version" = Option<String>, Header, description = "Accepted and ignored"),
        CursorParams,
    ),
    responses(
        (status = 200, description = "A page of messages, newest first", body = Items<MessageItem>),
        (status = 400, description = "Bad limit, malformed or unknown cursor, or both cursors", body = SensayError),
        (status = 401, description = "Missing or bad X-ORGANIZATION-SECRET", body = SensayError),
        (status = 404, description = "No such replica, or the conversation is not the replica's", body = SensayError),
    ),
    security(("organization_secret" = ["read"])))]
pub async fn messages(
    State(st): State<AppState>,
    Auth(p, ..): SensayReader,
    Path((replica, conversation)): Path<(String, String)>,
    QueryParams(q): QueryParams<CursorParams>,
) -> ApiResult<Json<Items<MessageItem>>> {
    let (limit, seek) = parse(&q)?;
    let rows = resolve::replica_window(&st, &p.tenant, &replica, &conversation, seek, limit, SHOWN)
        .await?;
    let items = rows
        .into_iter()
        .map(|m| MessageItem::new(m, &replica))
        .collect();
    Ok(Json(Items::new(items)))
}

/// A conversation as mention groups and placeholders, newest first; `limit` counts groups.
#[utoipa::path(get, path = "/v1/replicas/{replicaUUID}/conversations/{conversationUUID}/mentions", tag = "sensay",
    params(
        ("replicaUUID" = String, Path, description = "The replica"),
        ("conversationUUID" = String, Path, description = "A conversation of the replica"),
        ("X-API-Version" = Option<String>, Header, description = "Accepted and ignored"),
        CursorParams,
    ),
    responses(
        (status = 200, description = "A page, newest first; `beforeUUID` = the last message of the last mention gives the next, older page", body = Items<MentionItem>),
        (status = 400, description = "Bad limit, malformed or unknown cursor, or both cursors", body = SensayError),
        (status = 401, description = "Missing or bad X-ORGANIZATION-SECRET", body = SensayError),
        (status = 404, description = "No such replica, or the conversation is not the replica's", body = SensayError),
    ),
    security(("organization_secret" = ["read"])))]
pub async fn mentions(
    State(st): State<AppState>,
    Auth(p, ..): SensayReader,
    Path((replica, conversation)): Path<(String, String)>,
    QueryParams(q): QueryParams<CursorParams>,
) -> ApiResult<Json<Items<MentionItem>>> {
    let (limit, seek) = parse(&q)?;
    let (replica, c) =
        resolve::replica_conversation(&st, &p.tenant, &replica, &conversation).await?;
    let seek = resolve::message_seek(&st, &p.tenant, c.id, seek).await?;
    // The grouping needs the whole conversation's roles; only the page's groups are read whole.
    let roles = st.store.message_roles(&p.tenant, c.id).await?;
    let page = mentions::mentions_page(&roles, seek, limit as usize);
    let wanted: Vec<i64> = page
        .iter()
        .filter(|it| it.is_mention())
        .flat_map(|it| it.seqs().iter().copied())
        .collect();
    let mut by_seq: HashMap<i64, MessageItem> = st
        .store
        .messages_at(&p.tenant, c.id, &wanted)
        .await?
        .into_iter()
        .map(|m| (m.seq, MessageItem::new(m, &replica)))
        .collect();
    let items = page
        .iter()
        .map(|it| match it {
            Item::Mention(seqs) => MentionItem::Mention {
                messages: seqs.iter().filter_map(|s| by_seq.remove(s)).collect(),
            },
            Item::Placeholder(seqs) => MentionItem::Placeholder { count: seqs.len() },
        })
        .collect();
    Ok(Json(Items::new(items)))
}
