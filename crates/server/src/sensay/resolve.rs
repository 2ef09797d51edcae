//! Path and cursor resolution shared by the Sensay handlers: the replica, the conversation, and
//! a `beforeUUID`/`afterUUID` turned into a position the core can page from.

use confab_core::seek::{Seek, SeqWindow};
use confab_core::{Conversation, Message, Role};
use confab_store::{StoreError, TenantId};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The replica's agent id. Unknown (or another tenant's) is a 404. The id is matched as given:
/// agent ids are opaque strings, stored as the client sent them.
pub async fn replica(st: &AppState, tenant: &TenantId, raw: &str) -> ApiResult<String> {
    if st.store.agent_exists(tenant, raw).await? {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::not_found("replica"))
    }
}

/// The 404 of a conversation that is not the replica's, missing or another's alike.
fn missing() -> ApiError {
    ApiError::not_found("conversation")
}

/// A conversation of the replica; another replica's (or tenant's) is a 404 like a missing one.
pub async fn conversation(
    st: &AppState,
    tenant: &TenantId,
    replica: &str,
    raw: &str,
) -> ApiResult<Conversation> {
    let id = confab_core::ids::parse_uuid(raw).ok_or_else(missing)?;
    let c = st.store.get_conversation(tenant, id).await?;
    if c.agent_id.as_deref() != Some(replica) {
        return Err(missing());
    }
    Ok(c)
}

/// The replica and one of its conversations, answering what [`replica`] then [`conversation`]
/// would, in one lookup when the conversation is found: a conversation of the replica proves
/// the replica exists (its agent row is a foreign key), so the replica is looked up only to
/// tell which of the two is missing.
pub async fn replica_conversation(
    st: &AppState,
    tenant: &TenantId,
    raw_replica: &str,
    raw_conversation: &str,
) -> ApiResult<(String, Conversation)> {
    match conversation(st, tenant, raw_replica, raw_conversation).await {
        Ok(c) => Ok((raw_replica.to_owned(), c)),
        Err(e) => Err(replica_first(st, tenant, raw_replica, e).await),
    }
}

/// A window of messages of `roles` of a replica's conversation, as [`replica_conversation`],
/// [`message_seek`] and the window would answer. A first page (no cursor), the common read, is
/// one query: the window's own checks that the conversation is the replica's, and only when it
/// is not is the replica looked up, to tell which of the two is missing. A page from a cursor
/// resolves the conversation first, so that a cursor on another replica's conversation stays a
/// 404 rather than a 400 for the cursor.
pub async fn replica_window(
    st: &AppState,
    tenant: &TenantId,
    raw_replica: &str,
    raw_conversation: &str,
    seek: Option<Seek<Uuid>>,
    limit: i64,
    roles: &[Role],
) -> ApiResult<Vec<Message>> {
    let (id, seek) = match seek {
        None => match confab_core::ids::parse_uuid(raw_conversation) {
            Some(id) => (id, None),
            None => return Err(replica_first(st, tenant, raw_replica, missing()).await),
        },
        Some(s) => {
            let (_, c) = replica_conversation(st, tenant, raw_replica, raw_conversation).await?;
            (c.id, message_seek(st, tenant, c.id, Some(s)).await?)
        }
    };
    let window = SeqWindow::new(seek, limit);
    match st
        .store
        .messages_window(tenant, id, Some(raw_replica), window, roles)
        .await
    {
        Err(StoreError::NotFound) => Err(replica_first(st, tenant, raw_replica, missing()).await),
        rows => Ok(rows?),
    }
}

/// What a conversation path that failed with `e` answers: the replica's 404 when it is the
/// replica that is missing (a conversation of a replica proves the replica, so it is looked up
/// only here), else `e`.
async fn replica_first(
    st: &AppState,
    tenant: &TenantId,
    raw_replica: &str,
    e: ApiError,
) -> ApiError {
    match replica(st, tenant, raw_replica).await {
        Ok(_) => e,
        Err(r) => r,
    }
}

/// The parameter a cursor came from, for error messages.
fn param<T>(s: &Seek<T>) -> &'static str {
    match s {
        Seek::Before(_) => "beforeUUID",
        Seek::After(_) => "afterUUID",
    }
}

/// A message cursor as the message's seq; a message outside this conversation is a 400.
pub async fn message_seek(
    st: &AppState,
    tenant: &TenantId,
    conversation: Uuid,
    seek: Option<Seek<Uuid>>,
) -> ApiResult<Option<Seek<i64>>> {
    let Some(seek) = seek else { return Ok(None) };
    let id = *seek.key();
    match st.store.message_seq(tenant, conversation, id).await? {
        Some(seq) => Ok(Some(seek.map(|_| seq))),
        None => Err(ApiError::field(
            param(&seek),
            format!("no message {id} in this conversation"),
        )),
    }
}

/// A conversation cursor as the conversation; one that is not the replica's is a 400.
pub async fn conversation_seek(
    st: &AppState,
    tenant: &TenantId,
    replica: &str,
    seek: Option<Seek<Uuid>>,
) -> ApiResult<Option<Seek<Conversation>>> {
    let Some(seek) = seek else { return Ok(None) };
    let id = *seek.key();
    let unknown = || {
        ApiError::field(
            param(&seek),
            format!("no conversation {id} for this replica"),
        )
    };
    let c = match st.store.get_conversation(tenant, id).await {
        Ok(c) if c.agent_id.as_deref() == Some(replica) => c,
        Ok(_) | Err(confab_store::StoreError::NotFound) => return Err(unknown()),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(seek.map(|_| c)))
}
