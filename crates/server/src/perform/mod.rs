//! The perform.chat dialect under `/rest/v1` (seeds 000 and 001): page-numbered, read-only
//! conversation lists whose credentials travel as a JSON body on GET.
//!
//! Seed 001's own example request uses `/rest/v1/v1/conversations`; the same handlers answer
//! there too (undocumented in the OpenAPI document, so it lists each route once).

mod conversations;
mod credentials;
mod dto;

use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The perform.chat routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(conversations::list))
        .routes(routes!(conversations::get))
        .routes(routes!(conversations::messages))
        .route("/rest/v1/v1/conversations", get(conversations::list))
        .route("/rest/v1/v1/conversations/{id}", get(conversations::get))
        .route(
            "/rest/v1/v1/conversations/{id}/messages",
            get(conversations::messages),
        )
}
