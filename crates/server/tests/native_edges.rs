//! The native API's refusals: credentials, scopes, tenant isolation and bad input of every kind.
//! Every refusal is a 4xx JSON error that names the field; nothing is stored half-way.

mod common;

use common::{Resp, TestApp};
use confab_core::{Scope, Scopes};
use reqwest::Method;
use serde_json::{Value, json};

async fn one_conversation(app: &TestApp, t: &str) -> String {
    let r = app
        .post(
            "/v1/conversations",
            t,
            &json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .expect(201);
    r.body["id"].as_str().unwrap().to_owned()
}

/// Every native route, with a body where it takes one.
fn routes(id: &str) -> Vec<(Method, String, Option<Value>)> {
    let msg = json!({"messages": [{"role": "user", "content": "x"}]});
    vec![
        (Method::POST, "/v1/conversations".into(), Some(json!({}))),
        (Method::GET, "/v1/conversations".into(), None),
        (Method::GET, format!("/v1/conversations/{id}"), None),
        (
            Method::PATCH,
            format!("/v1/conversations/{id}"),
            Some(json!({"title": "t"})),
        ),
        (
            Method::GET,
            format!("/v1/conversations/{id}/messages"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/conversations/{id}/messages"),
            Some(msg),
        ),
        (Method::DELETE, format!("/v1/conversations/{id}"), None),
    ]
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = one_conversation(&app, &t).await;
    let (key_id, _) = t.split_once('.').unwrap();
    for (m, path, body) in routes(&id) {
        for bad in [
            None,
            Some("garbage"),
            Some(&format!("{key_id}.wrong-secret")[..]),
            Some("ck_nope.secret"),
        ] {
            let r = app.call(m.clone(), &path, bad, body.as_ref()).await;
            assert_eq!(r.status, 401, "{m} {path} with {bad:?}: {}", r.text);
            assert_eq!(r.body["error"]["code"], "UNAUTHORIZED");
        }
    }
    app.get(&format!("/v1/conversations/{id}"), &t)
        .await
        .expect(200);
}

#[tokio::test]
async fn revoked_keys_stop_working() {
    let app = TestApp::spawn().await;
    let k = app
        .store
        .create_key("acme", Scopes::DEFAULT, None)
        .await
        .unwrap();
    app.get("/v1/conversations", &k.token).await.expect(200);
    app.store.revoke_key(&k.key_id).await.unwrap();
    app.get("/v1/conversations", &k.token).await.expect(401);
}

#[tokio::test]
async fn scopes_are_enforced() {
    let app = TestApp::spawn().await;
    let rw = app.token("acme").await;
    let ro = app
        .token_with("acme", Scopes::default().with(Scope::Read))
        .await;
    let wo = app
        .token_with("acme", Scopes::default().with(Scope::Write))
        .await;
    let id = one_conversation(&app, &rw).await;
    for (m, path, body) in routes(&id) {
        let writes = m != Method::GET;
        let r = app.call(m.clone(), &path, Some(&ro), body.as_ref()).await;
        if writes {
            assert_eq!(r.status, 403, "read-only key on {m} {path}: {}", r.text);
            assert_eq!(r.body["error"]["code"], "FORBIDDEN");
        } else {
            assert_eq!(r.status, 200, "read-only key on {m} {path}: {}", r.text);
        }
        if !writes {
            app.call(m.clone(), &path, Some(&wo), body.as_ref())
                .await
                .expect(403);
        }
    }
}

#[tokio::test]
async fn another_tenants_conversation_is_not_found_on_every_route() {
    let app = TestApp::spawn().await;
    let mine = app.token("acme").await;
    let theirs = app.token("globex").await;
    let id = one_conversation(&app, &mine).await;
    for (m, path, body) in routes(&id) {
        if path == "/v1/conversations" {
            continue;
        }
        let r = app
            .call(m.clone(), &path, Some(&theirs), body.as_ref())
            .await;
        assert_eq!(r.status, 404, "{m} {path}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "NOT_FOUND");
    }
    let list = app.get("/v1/conversations", &theirs).await.expect(200);
    assert_eq!(list.body["data"], json!([]));
    // Untouched for its owner.
    let c = app
        .get(&format!("/v1/conversations/{id}"), &mine)
        .await
        .expect(200);
    assert_eq!(c.body["message_count"], 1);
    assert_ne!(c.body["title"], "t");
}

/// Sends raw bytes.
async fn raw(app: &TestApp, m: Method, path: &str, t: &str, body: &str) -> Resp {
    let r = app
        .client
        .request(m, app.url(path))
        .bearer_auth(t)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    Resp::read(r).await
}

#[tokio::test]
async fn bad_bodies_are_400s_naming_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = one_conversation(&app, &t).await;
    let before = app.table_counts().await;
    let create_cases: Vec<(&str, &str)> = vec![
        ("{", "body"),
        ("", "body"),
        ("[]", "body"),
        ("{} {}", "body"),
        (r#"{"title": 5}"#, "title"),
        (r#"{"status": "done"}"#, "status"),
        (r#"{"metadata": [1]}"#, "metadata"),
        (r#"{"created_at": "yesterday"}"#, "created_at"),
        (r#"{"created_at": "2025-13-01T00:00:00Z"}"#, "created_at"),
        (r#"{"colour": "red"}"#, "colour"),
        (r#"{"agent_id": ""}"#, "agent_id"),
        (r#"{"messages": {}}"#, "messages"),
        (
            r#"{"messages": [{"content": "no role"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"messages": [{"role": "bot", "content": "x"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"messages": [{"role": "user", "content": 7}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": ""}]}"#,
            "messages[1].content",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "a\u0000b"}]}"#,
            "messages[0].content",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "x", "tokens": -1}]}"#,
            "messages[0].tokens",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "x", "tokens": "many"}]}"#,
            "messages[0].tokens",
        ),
        (
            r#"{"messages": [{"role": "assistant", "content": "x", "tool_calls": {"a": 1}}]}"#,
            "messages[0].tool_calls",
        ),
        (
            r#"{"messages": [{"role": "assistant", "content": "x", "tool_calls": [1]}]}"#,
            "messages[0].tool_calls",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "x", "created_at": "noon"}]}"#,
            "messages[0].created_at",
        ),
        (r#"{"title": "a\u0000"}"#, "title"),
        (r#"{"metadata": {"k": "\u0000"}}"#, "metadata"),
    ];
    for (body, field) in create_cases {
        let r = raw(&app, Method::POST, "/v1/conversations", &t, body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "VALIDATION_ERROR", "{body}");
        let details = r.body["error"]["details"].as_object().unwrap();
        assert!(
            details.contains_key(field),
            "{body}: expected {field} in {details:?}"
        );
    }
    let append = format!("/v1/conversations/{id}/messages");
    for (body, field) in [
        (r#"{}"#, "messages"),
        (r#"{"messages": []}"#, "messages"),
        (
            r#"{"messages": [{"role": "user", "content": "ok"}, {"role": "user"}]}"#,
            "messages[1].content",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "ok"}], "status": "finished"}"#,
            "status",
        ),
    ] {
        let r = raw(&app, Method::POST, &append, &t, body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(
            r.body["error"]["details"].get(field).is_some(),
            "{body}: {}",
            r.text
        );
    }
    let patch = format!("/v1/conversations/{id}");
    for (body, field) in [
        (r#"{"status": 1}"#, "status"),
        (r#"{"added_to_memory": "yes"}"#, "added_to_memory"),
        (r#"{"id": "x"}"#, "id"),
    ] {
        let r = raw(&app, Method::PATCH, &patch, &t, body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(
            r.body["error"]["details"].get(field).is_some(),
            "{body}: {}",
            r.text
        );
    }
    assert_eq!(app.table_counts().await, before, "nothing stored half-way");
}

#[tokio::test]
async fn bad_query_parameters_are_400s() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = one_conversation(&app, &t).await;
    for (path, field) in [
        ("/v1/conversations?limit=0".to_owned(), "limit"),
        ("/v1/conversations?limit=101".to_owned(), "limit"),
        ("/v1/conversations?limit=-5".to_owned(), "limit"),
        ("/v1/conversations?limit=ten".to_owned(), "limit"),
        ("/v1/conversations?cursor=garbage".to_owned(), "cursor"),
        ("/v1/conversations?cursor=bTE6MQ".to_owned(), "cursor"),
        ("/v1/conversations?status=open".to_owned(), "status"),
        (
            "/v1/conversations?created_after=soon".to_owned(),
            "created_after",
        ),
        ("/v1/conversations?sort=asc".to_owned(), "sort"),
        (
            format!("/v1/conversations/{id}/messages?limit=1000"),
            "limit",
        ),
        (
            format!("/v1/conversations/{id}/messages?cursor=%%%"),
            "cursor",
        ),
        (
            format!("/v1/conversations/{id}/messages?order=sideways"),
            "order",
        ),
    ] {
        let r = app.get(&path, &t).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert!(
            r.body["error"]["details"].get(field).is_some(),
            "{path}: {}",
            r.text
        );
    }
    for path in [
        "/v1/conversations/not-a-uuid",
        "/v1/conversations/00000000-0000-0000-0000-000000000000/messages",
    ] {
        app.get(path, &t).await.expect(404);
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let config = confab_server::ServerConfig {
        max_body_bytes: 64 * 1024,
        ..Default::default()
    };
    let app = TestApp::spawn_with(config).await;
    let t = app.token("acme").await;
    let big = "x".repeat(100 * 1024);
    let r = app
        .post(
            "/v1/conversations",
            &t,
            &json!({"messages": [{"role": "user", "content": big}]}),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "PAYLOAD_TOO_LARGE");
    // A chunked body without Content-Length is cut off at the limit too.
    let stream = futures_stream(200 * 1024);
    let r = app
        .client
        .post(app.url("/v1/conversations"))
        .bearer_auth(&t)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let list = app.get("/v1/conversations", &t).await.expect(200);
    assert_eq!(list.body["data"], json!([]));
}

fn futures_stream(n: usize) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunk = vec![b' '; 8192];
    futures::stream::iter((0..n / 8192).map(move |_| Ok(chunk.clone())))
}

#[tokio::test]
async fn one_message_over_the_content_limit_is_a_400_naming_it() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let big = "y".repeat(1024 * 1024 + 1);
    let r = app
        .post(
            "/v1/conversations",
            &t,
            &json!({"messages": [{"role": "user", "content": big}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.body["error"]["details"]["messages[0].content"].is_string());
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_echoes_the_callers() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    // Generated when the caller sends none: on a route, on an unknown one, on an error.
    let mut seen = Vec::new();
    for path in ["/healthz", "/v1/conversations", "/v1/nothing-here"] {
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        let id = r
            .headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{path}: no x-request-id"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id}");
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "one id per request");
    // The caller's own id comes back as it was sent.
    let r = app
        .client
        .get(app.url("/v1/conversations"))
        .bearer_auth(&t)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let r = app.get("/v1/nothing-here", &t).await.expect(404);
    assert_eq!(r.body["error"]["code"], "NOT_FOUND");
    let r = app
        .call(Method::PUT, "/v1/conversations", Some(&t), None)
        .await
        .expect(405);
    assert_eq!(r.body["error"]["code"], "METHOD_NOT_ALLOWED");
}

/// Many lookups at once, mixed: each tenant's own conversations, the other tenant's ids and ids
/// nobody has, all in flight together. Each caller gets its own answer: its conversation, or a
/// 404 for the rest. On PostgreSQL concurrent lookups share one statement (the store's
/// `postgres/read_batch.rs`), so this pins that a batch hands every caller its own row, never
/// another tenant's, and that a miss in a batch stays a 404 without failing its neighbours.
#[tokio::test]
async fn concurrent_lookups_each_get_their_own_answer() {
    let app = TestApp::spawn().await;
    let tokens = [app.token("acme").await, app.token("globex").await];
    // (token, id, the title it must see, or None for a 404)
    let mut cases: Vec<(String, String, Option<String>)> = Vec::new();
    for i in 0..6 {
        for (who, t) in tokens.iter().enumerate() {
            let title = format!("tenant {who}, conversation {i}");
            let r = app
                .post("/v1/conversations", t, &json!({"title": title}))
                .await
                .expect(201);
            let id = r.body["id"].as_str().unwrap().to_owned();
            let other = tokens[1 - who].clone();
            cases.push((t.clone(), id.clone(), Some(title)));
            cases.push((other, id, None));
            cases.push((t.clone(), uuid::Uuid::now_v7().to_string(), None));
        }
    }
    let tasks: Vec<_> = (0..8)
        .flat_map(|_| cases.clone())
        .map(|(t, id, want)| {
            let client = app.client.clone();
            let url = app.url(&format!("/v1/conversations/{id}"));
            tokio::spawn(async move {
                let r = Resp::read(client.get(&url).bearer_auth(&t).send().await.unwrap()).await;
                match want {
                    Some(title) => {
                        let r = r.expect(200);
                        assert_eq!(r.body["id"], id.as_str());
                        assert_eq!(r.body["title"], title.as_str());
                    }
                    None => {
                        r.expect(404);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
