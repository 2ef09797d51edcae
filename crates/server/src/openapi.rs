//! The OpenAPI document, assembled from every router's annotated handlers. It is served at
//! `/openapi.json` and committed as `openapi.json`; a test fails when the two drift.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "confab", description = "Self-hosted conversation history: confab's native API and the perform.chat, Convai, Converra and Sensay dialects over one store."),
    modifiers(&Security),
    tags(
        (name = "conversations", description = "Native: conversations"),
        (name = "messages", description = "Native: messages"),
        (name = "search", description = "Native: full-text search"),
        (name = "export", description = "Native: export and import"),
        (name = "analytics", description = "Native: summary, daily series, reports"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("key_id.key_secret")
                    .build(),
            ),
        );
    }
}

/// Every documented route.
pub fn router() -> OpenApiRouter<AppState> {
    limited_router().merge(streaming_router())
}

/// Routes that take no more than the configured body size and time.
pub fn limited_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::health::router())
        .merge(crate::search::router())
        .merge(crate::export::router())
        .merge(crate::analytics::router())
        .merge(crate::native::router())
        .merge(crate::converra::router())
        .merge(crate::perform::router())
        .merge(crate::convai::router())
        .merge(crate::sensay::router())
}

/// Routes exempt from the body limit and the request timeout (streamed uploads).
pub fn streaming_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(crate::export::import_router())
}

/// The document as pretty JSON (what `openapi.json` in the repository holds).
pub fn openapi_json() -> String {
    let (_, doc) = router().split_for_parts();
    let mut s = doc
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<serde_json::Value> {
    let (_, doc) = router().split_for_parts();
    Json(serde_json::to_value(doc).unwrap_or_default())
}
