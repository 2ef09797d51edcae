//! The native API over HTTP.

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn create_then_get() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let r = app
        .post(
            "/v1/conversations",
            &t,
            &json!({"messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await
        .expect(201);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let g = app
        .get(&format!("/v1/conversations/{id}"), &t)
        .await
        .expect(200);
    assert_eq!(g.body["message_count"], 1);
    assert_eq!(g.body["title"], "Hi");
}
