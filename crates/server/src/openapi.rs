//! The OpenAPI document, assembled from every router's annotated handlers. It is served at
//! `/openapi.json` and committed as `openapi.json`; a test fails when the two drift.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "confab", description = "Self-hosted conversation history: confab's native API and the perform.chat, Convai, Converra and Sensay dialects over one store."),
    tags(
        (name = "conversations", description = "Native: conversations"),
        (name = "messages", description = "Native: messages"),
        (name = "converra", description = "Converra dialect (seed 003): log and append conversations, list, insights"),
        (name = "insights", description = "Native: conversation insights and their analytics"),
        (name = "search", description = "Native: full-text search"),
        (name = "export", description = "Native: export and import"),
        (name = "analytics", description = "Native: summary, daily series, reports"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "perform.chat", description = "perform.chat dialect (seeds 000, 001): credentials as a JSON body, page-numbered lists"),
        (name = "Convai", description = "Convai dialect (seed 002): chat history per character"),
        (name = "webhooks", description = "Native: webhook endpoints and deliveries (admin scope)"),
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
        let header = |name: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                name,
                "The API key token, key_id.key_secret",
            )))
        };
        c.add_security_scheme("convai_key", header("CONVAI-API-KEY"));
        c.add_security_scheme("organization_secret", header("X-ORGANIZATION-SECRET"));
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
        .merge(crate::insights::router())
        .merge(crate::converra::router())
        .merge(crate::perform::router())
        .merge(crate::convai::router())
        .merge(crate::sensay::router())
        .merge(crate::webhooks::router())
}

/// The assembled document. Security schemes are added last, to the merged document, because
/// merging routers' documents does not keep every router's components.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = router().split_for_parts();
    Security.modify(&mut doc);
    document_common_errors(&mut doc);
    doc
}

/// Every authenticated operation can answer 401 (no or bad credentials), 403 (scope), 429
/// (rate limit) and 503 (overload), and every operation 400 for bad input; they are declared
/// here once rather than on each handler, in the error shape of the operation's dialect.
fn document_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |schema: &str, what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(schema)))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let schema = if path.starts_with("/v1/replicas/") {
            "SensayError"
        } else {
            "ErrorBody"
        };
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
            &mut item.put,
        ]
        .into_iter()
        .flatten()
        {
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let mut add = |code: &str, what: &str| {
                op.responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| error(schema, what).into());
            };
            add("400", "Invalid input; `details` names the field");
            add("503", "At the limit of concurrent requests");
            if secured {
                add("401", "Missing or bad credentials");
                add("403", "The key lacks the scope this operation needs");
                add("429", "Rate limit of this key reached; see Retry-After");
            }
        }
    }
}

/// Routes exempt from the body limit and the request timeout (streamed uploads).
pub fn streaming_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(crate::export::import_router())
}

/// The document as pretty JSON (what `openapi.json` in the repository holds).
pub fn openapi_json() -> String {
    let doc = document();
    let mut s = doc
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<serde_json::Value> {
    let doc = document();
    Json(serde_json::to_value(doc).unwrap_or_default())
}
