//! The convai dialect (routes are registered in openapi::router).

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// The convai routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
