//! The Convai dialect (seed 002): a character's chat-history sessions and their interactions.
//! Convai calls a conversation a session and an agent a character (`charID`); sessions are
//! shown as 32 hex digits and accepted in either id form.
//!
//! Both routes are POST with a JSON body and authenticate with the `CONVAI-API-KEY` header.

mod dto;
mod handlers;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The Convai routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list))
        .routes(routes!(handlers::details))
}
