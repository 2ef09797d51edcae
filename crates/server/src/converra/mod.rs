//! The Converra dialect (seed 003) under `/api/v1/conversations`: log a finished transcript in
//! one call, or open a live conversation and append turns to it; list, read, and read insights.
//!
//! Like every dialect it only translates: camelCase wire fields in, the core's transcript parser
//! and limits, one store call, camelCase out. Choices the seed leaves open are recorded in
//! `docs/compat.md` (Converra).

mod conversations;
mod dto;
mod errors;
mod insights;
mod messages;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The Converra routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(conversations::create, conversations::list))
        .routes(routes!(conversations::get))
        .routes(routes!(messages::append))
        .routes(routes!(insights::get))
}
