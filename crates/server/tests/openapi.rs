//! The committed `openapi.json` is the served document; regenerate with
//! `UPDATE_OPENAPI=1 cargo test -p confab-server --test openapi` (or `confab openapi > openapi.json`).

mod common;

#[test]
fn committed_openapi_matches_the_code() {
    let generated = confab_server::openapi_json();
    let path = common::repo_root().join("openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p confab-server --test openapi` and commit it"
    );
}

#[tokio::test]
async fn served_document_lists_every_route_with_security() {
    let app = common::TestApp::spawn().await;
    let r = common::Resp::read(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(200);
    let committed: serde_json::Value =
        serde_json::from_str(&confab_server::openapi_json()).unwrap();
    assert_eq!(r.body, committed);
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/v1/conversations",
        "/v1/conversations/{id}",
        "/v1/conversations/{id}/messages",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    // Every operation outside the probes declares how it authenticates.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if path.starts_with("/healthz") || path.starts_with("/readyz") {
                continue;
            }
            assert!(
                op.get("security").is_some(),
                "{method} {path} has no security requirement"
            );
        }
    }
}

#[test]
fn every_schema_reference_resolves() {
    let text = confab_server::openapi_json();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut missing = Vec::new();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        if !schemas.contains_key(name) {
            missing.push(name.to_owned());
        }
    }
    assert!(missing.is_empty(), "unresolvable references: {missing:?}");
}

fn doc() -> serde_json::Value {
    serde_json::from_str(&confab_server::openapi_json()).unwrap()
}

/// schemathesis found these: perform.chat's 200 answers were documented with the native
/// `ConversationOut`/`MessageOut` (same component name, the native one won), and the JSON export
/// as a string.
#[test]
fn response_schemas_are_the_dialects_own() {
    let d = doc();
    let schema_ref = |path: &str, media: &str| {
        d["paths"][path]["get"]["responses"]["200"]["content"][media]["schema"].clone()
    };
    assert_eq!(
        schema_ref("/rest/v1/conversations/{id}", "application/json")["$ref"],
        "#/components/schemas/PerformConversation"
    );
    assert_eq!(
        schema_ref("/rest/v1/conversations/{id}/messages", "application/json")["$ref"],
        "#/components/schemas/PerformMessageList"
    );
    let pc = &d["components"]["schemas"]["PerformConversation"]["required"];
    assert!(
        !pc.as_array().unwrap().iter().any(|r| r == "status"),
        "{pc}"
    );
    assert_eq!(
        schema_ref("/v1/export", "application/json")["type"],
        "array"
    );
}

/// Query parameters allow empty values (`?x=` means "not given", docs/compat.md), operation ids
/// are unique, and creates link to the operations that take the created id (schemathesis's
/// stateful phase).
#[test]
fn document_supports_schema_fuzzing() {
    let d = doc();
    let mut ids = std::collections::HashSet::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            if let Some(id) = op["operationId"].as_str() {
                assert!(
                    ids.insert(id.to_owned()),
                    "duplicate operationId {id} ({m} {path})"
                );
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "query" {
                    assert_eq!(p["allowEmptyValue"], true, "{m} {path} {}", p["name"]);
                }
            }
        }
    }
    let links = &d["paths"]["/v1/conversations"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        links["GetConversation"]["parameters"]["id"],
        "$response.body#/id"
    );
    let hooks = &d["paths"]["/v1/webhooks"]["post"]["responses"]["201"]["links"];
    assert!(hooks["GetWebhook"]["operationId"].is_string());
    assert_eq!(
        d["paths"]["/v1/webhooks/{id}/rotate-secret"]["post"]["requestBody"]["required"],
        false
    );
}
