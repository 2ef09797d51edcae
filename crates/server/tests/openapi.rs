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
