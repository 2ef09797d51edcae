//! confab's own API under `/v1`: the complete one, with everything the dialects can do.

mod conversations;
pub mod dto;
mod messages;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// The native routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(conversations::create, conversations::list))
        .routes(routes!(
            conversations::get,
            conversations::patch,
            conversations::delete
        ))
        .routes(routes!(messages::append, messages::list))
}
