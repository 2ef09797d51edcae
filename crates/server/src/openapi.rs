//! The OpenAPI document, assembled from every router's annotated handlers. It is served at
//! `/openapi.json` and committed as `openapi.json`; a test fails when the two drift.

use crate::json::Json;
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
/// (rate limit) and 503 (overload, or a write's outcome unknown), and every operation 400 for
/// bad input; they are declared here once rather than on each handler, in the error shape of
/// the operation's dialect.
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
            add(
                "503",
                "At the limit of concurrent requests, shutting down, or (`WRITE_UNCONFIRMED`) a \
                 write whose commit could not be confirmed; see Retry-After",
            );
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
    let mut s =
        serde_json::to_string_pretty(&document_json()).expect("the OpenAPI document serializes");
    s.push('\n');
    s
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<serde_json::Value> {
    Json(document_json())
}

/// The served document: [`document`] plus what utoipa cannot express (see [`finish`]).
pub fn document_json() -> serde_json::Value {
    let mut v = serde_json::to_value(document()).expect("the OpenAPI document serializes");
    finish(&mut v);
    v
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Post-processing of the serialized document:
///
/// - `allowEmptyValue: true` on every query parameter: confab reads `?x=` as "not given"
///   (docs/compat.md, "Empty query values"); utoipa 5 has no such field.
/// - Unique `operationId`s, as OpenAPI requires (several routers name a handler `list` or
///   `get`): a duplicated id becomes `<tag>_<id>` with the tag in snake case, and if that still
///   clashes, `<method>_<path>`.
/// - Optional request bodies where utoipa marks them required.
/// - OpenAPI `links` from the operations that create a conversation or a webhook endpoint to the
///   operations that take its id, so stateful testing (schemathesis) reaches real resources. No links
///   to DELETE: an idempotent create replayed after a delete answers the first response (Stripe
///   semantics), whose id is then gone, which schemathesis would report as a created resource
///   not found.
pub fn finish(v: &mut serde_json::Value) {
    use serde_json::{Map, Value, json};
    let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    // allowEmptyValue, and count operation ids.
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for item in paths.values_mut() {
        for m in METHODS {
            let Some(op) = item.get_mut(m) else { continue };
            if let Some(ps) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for p in ps {
                    if p.get("in").and_then(Value::as_str) == Some("query") {
                        p["allowEmptyValue"] = Value::Bool(true);
                    }
                }
            }
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                *seen.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    let snake = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    let mut taken: std::collections::HashSet<String> = seen
        .iter()
        .filter(|(_, n)| **n == 1)
        .map(|(k, _)| k.clone())
        .collect();
    let mut ids: std::collections::HashMap<(String, &'static str), String> = Default::default();
    for (path, item) in paths.iter_mut() {
        for m in METHODS {
            let Some(op) = item.get_mut(m) else { continue };
            let Some(id) = op
                .get("operationId")
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                continue;
            };
            let id = if seen.get(&id).copied().unwrap_or(0) > 1 {
                let tag = op
                    .get("tags")
                    .and_then(|t| t.get(0))
                    .and_then(Value::as_str)
                    .map(snake)
                    .unwrap_or_default();
                let mut new = format!("{tag}_{id}");
                if !taken.insert(new.clone()) {
                    new = format!("{m}{}", snake(path).trim_end_matches('_'));
                    taken.insert(new.clone());
                }
                op["operationId"] = Value::String(new.clone());
                new
            } else {
                id
            };
            ids.insert((path.clone(), m), id);
        }
    }
    // Bodies that may be left out: rotating without settings takes the default grace period,
    // and an empty NDJSON stream is an empty import.
    for (path, m) in [
        ("/v1/webhooks/{id}/rotate-secret", "post"),
        ("/v1/import", "post"),
    ] {
        if let Some(b) = paths
            .get_mut(path)
            .and_then(|i| i.get_mut(m))
            .and_then(|o| o.get_mut("requestBody"))
        {
            b["required"] = Value::Bool(false);
        }
    }
    // Links.
    let link = |ids: &std::collections::HashMap<(String, &'static str), String>,
                path: &str,
                m: &'static str,
                params: Value| {
        ids.get(&(path.to_owned(), m))
            .map(|id| json!({ "operationId": id, "parameters": params }))
    };
    let conv = json!({ "id": "$response.body#/id" });
    let mut conversation_links = Map::new();
    for (name, path, m) in [
        ("GetConversation", "/v1/conversations/{id}", "get"),
        ("PatchConversation", "/v1/conversations/{id}", "patch"),
        ("ListMessages", "/v1/conversations/{id}/messages", "get"),
        ("AppendMessages", "/v1/conversations/{id}/messages", "post"),
        ("GetInsights", "/v1/conversations/{id}/insights", "get"),
        (
            "RefreshInsights",
            "/v1/conversations/{id}/insights/refresh",
            "post",
        ),
        ("GetReport", "/v1/conversations/{id}/report", "get"),
        (
            "PerformGetConversation",
            "/rest/v1/conversations/{id}",
            "get",
        ),
        (
            "PerformListMessages",
            "/rest/v1/conversations/{id}/messages",
            "get",
        ),
        (
            "ConverraGetConversation",
            "/api/v1/conversations/{id}",
            "get",
        ),
        (
            "ConverraGetInsights",
            "/api/v1/conversations/{id}/insights",
            "get",
        ),
        (
            "ConverraAppendMessages",
            "/api/v1/conversations/{id}/messages",
            "post",
        ),
    ] {
        if let Some(l) = link(&ids, path, m, conv.clone()) {
            conversation_links.insert(name.to_owned(), l);
        }
    }
    let hook = json!({ "id": "$response.body#/id" });
    let mut webhook_links = Map::new();
    for (name, path, m) in [
        ("GetWebhook", "/v1/webhooks/{id}", "get"),
        ("UpdateWebhook", "/v1/webhooks/{id}", "patch"),
        ("ListDeliveries", "/v1/webhooks/{id}/deliveries", "get"),
        ("RotateSecret", "/v1/webhooks/{id}/rotate-secret", "post"),
        ("TestWebhook", "/v1/webhooks/{id}/test", "post"),
    ] {
        if let Some(l) = link(&ids, path, m, hook.clone()) {
            webhook_links.insert(name.to_owned(), l);
        }
    }
    for (path, code, links) in [
        ("/v1/conversations", "201", conversation_links),
        ("/v1/webhooks", "201", webhook_links),
    ] {
        if let Some(r) = paths
            .get_mut(path)
            .and_then(|i| i.get_mut("post"))
            .and_then(|o| o.get_mut("responses"))
            .and_then(|r| r.get_mut(code))
        {
            r["links"] = Value::Object(links);
        }
    }
}
