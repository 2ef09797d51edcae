//! Authorization walked over the route table itself: every operation in `openapi.json` declares
//! the scope it needs (`security: [{scheme: [scope]}]`), and this test proves the declaration is
//! enforced, with the credential header of the operation's own dialect:
//!
//! 1. a key lacking that scope gets 403;
//! 2. another tenant's key, pointed at this tenant's resources, gets exactly the answer it gets
//!    for ids that do not exist (and a 404 wherever the id is in the path of a read);
//! 3. a key holding only that scope gets past authorization (neither 401 nor 403).
//!
//! A new route without a declared scope, or declaring one it does not check, fails here.

mod common;

use common::{Resp, TestApp};
use confab_core::{Scope, Scopes};
use reqwest::Method;
use serde_json::{Value, json};

const OPEN: [&str; 2] = ["/healthz", "/readyz"];

struct Op {
    method: Method,
    path: String,
    scheme: String,
    scope: Scope,
}

fn operations() -> Vec<Op> {
    let doc: Value = serde_json::from_str(&confab_server::openapi_json()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if OPEN.contains(&path.as_str()) {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let Ok(m) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            let reqs = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: no security requirement"));
            assert_eq!(reqs.len(), 1, "{method} {path}: one security requirement");
            let (scheme, scopes) = reqs[0].as_object().unwrap().iter().next().unwrap();
            let scopes = scopes.as_array().unwrap();
            assert_eq!(
                scopes.len(),
                1,
                "{method} {path} must declare exactly the one scope it needs, got {scopes:?}"
            );
            let scope = match scopes[0].as_str().unwrap() {
                "read" => Scope::Read,
                "write" => Scope::Write,
                "admin" => Scope::Admin,
                other => panic!("{method} {path}: unknown scope {other}"),
            };
            ops.push(Op {
                method: m,
                path: path.clone(),
                scheme: scheme.clone(),
                scope,
            });
        }
    }
    ops
}

/// The ids a path's parameters are filled with.
struct Ids {
    conversation: String,
    agent: String,
    webhook: String,
    delivery: String,
}

impl Ids {
    fn missing() -> Ids {
        let id = "01a20000-0000-7000-8000-000000000000".to_owned();
        Ids {
            conversation: id.clone(),
            agent: id.clone(),
            webhook: id.clone(),
            delivery: id,
        }
    }

    fn fill(&self, path: &str) -> String {
        path.replace("{replicaUUID}", &self.agent)
            .replace("{conversationUUID}", &self.conversation)
            .replace("{delivery_id}", &self.delivery)
            .replace(
                "{id}",
                if path.starts_with("/v1/webhooks/") {
                    &self.webhook
                } else {
                    &self.conversation
                },
            )
    }

    /// A body that is valid for the operation, so a refusal cannot hide behind a 400.
    fn body(&self, method: &Method, path: &str) -> Option<Value> {
        let msg = json!({"role": "user", "content": "hello"});
        Some(match (method.as_str(), path) {
            ("GET" | "DELETE", _) => return None,
            ("POST", "/v1/conversations") => json!({"messages": [msg]}),
            ("POST", "/v1/conversations/{id}/messages") => json!({"messages": [msg]}),
            ("PATCH", "/v1/conversations/{id}") => json!({"title": "t"}),
            ("POST", "/api/v1/conversations") => {
                json!({"promptId": "p1", "content": "User: hi", "status": "active"})
            }
            ("POST", "/api/v1/conversations/{id}/messages") => json!({"messages": [msg]}),
            ("POST", "/character/chatHistory/details") => {
                json!({"charID": self.agent, "sessionID": self.conversation})
            }
            ("POST", "/character/chatHistory/list") => json!({"charID": self.agent}),
            ("POST", "/v1/webhooks") => json!({"url": "https://example.com/hook"}),
            ("PATCH", "/v1/webhooks/{id}") => json!({"description": "d"}),
            _ => json!({}),
        })
    }
}

async fn call(app: &TestApp, op: &Op, ids: &Ids, token: &str) -> Resp {
    let mut rb = app
        .client
        .request(op.method.clone(), app.url(&ids.fill(&op.path)));
    rb = match op.scheme.as_str() {
        "bearer" => rb.bearer_auth(token),
        "convai_key" => rb.header("CONVAI-API-KEY", token),
        "organization_secret" => rb.header("X-ORGANIZATION-SECRET", token),
        other => panic!("unknown security scheme {other}"),
    };
    if op.path == "/v1/import" && op.method == Method::POST {
        rb = rb
            .header("Content-Type", "application/x-ndjson")
            .body(String::new());
    } else if let Some(b) = ids.body(&op.method, &op.path) {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let text = r.text().await.unwrap();
    // Exports stream NDJSON, CSV or Markdown; errors are always JSON.
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        assert!(
            !body.is_null(),
            "{} {}: error body is not JSON: {text}",
            op.method,
            op.path
        );
    }
    Resp {
        status,
        headers,
        body,
        text,
    }
}

/// Seeds one tenant with a conversation under a UUID-named agent (so it is also a Convai
/// character and a Sensay replica) and a webhook endpoint with one delivery.
async fn seed(app: &TestApp, admin: &str) -> Ids {
    let agent = "01a30000-0000-7000-8000-0000000000aa".to_owned();
    let c = app
        .post(
            "/v1/conversations",
            admin,
            &json!({"agent_id": agent, "user_id": "u1",
                    "messages": [{"role": "user", "content": "hello there"},
                                 {"role": "assistant", "content": "hi"}]}),
        )
        .await
        .expect(201);
    let hook = app
        .post(
            "/v1/webhooks",
            admin,
            &json!({"url": "https://example.com/hook"}),
        )
        .await
        .expect(201);
    let webhook = hook.body["id"].as_str().unwrap().to_owned();
    let test = app
        .post(&format!("/v1/webhooks/{webhook}/test"), admin, &json!({}))
        .await;
    let delivery = test.body["delivery_id"]
        .as_str()
        .or(test.body["id"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| Ids::missing().delivery);
    Ids {
        conversation: c.body["id"].as_str().unwrap().to_owned(),
        agent,
        webhook,
        delivery,
    }
}

fn only(s: Scope) -> Scopes {
    Scopes::parse(match s {
        Scope::Read => "read",
        Scope::Write => "write",
        Scope::Admin => "admin",
    })
    .unwrap()
}

fn lacking(s: Scope) -> Scopes {
    match s {
        Scope::Read => only(Scope::Write),
        Scope::Write => only(Scope::Read),
        Scope::Admin => Scopes::DEFAULT,
    }
}

fn all() -> Scopes {
    Scopes::DEFAULT.with(Scope::Admin)
}

#[tokio::test]
async fn every_route_enforces_its_declared_scope_and_tenant() {
    let app = TestApp::spawn().await;
    let ops = operations();
    assert!(ops.len() >= 40, "walked only {} operations", ops.len());
    let admin = app.token_with("acme", all()).await;
    let ids = seed(&app, &admin).await;

    // 1. A key without the declared scope is refused before anything else happens.
    for op in &ops {
        let key = app.token_with("acme", lacking(op.scope)).await;
        let r = call(&app, op, &ids, &key).await;
        assert_eq!(
            r.status, 403,
            "{} {} with a key lacking {:?}: {}",
            op.method, op.path, op.scope, r.text
        );
    }

    // 2. Another tenant cannot tell this tenant's resources from ones that do not exist.
    let stranger = app.token_with("globex", all()).await;
    let missing = Ids::missing();
    for op in ops
        .iter()
        .filter(|o| o.path.contains('{') || o.path.contains("chatHistory"))
    {
        let theirs = call(&app, op, &ids, &stranger).await;
        let none = call(&app, op, &missing, &stranger).await;
        assert_eq!(
            (theirs.status, &theirs.body["error"]["code"]),
            (none.status, &none.body["error"]["code"]),
            "{} {}: another tenant's ids answer differently from missing ids: {} vs {}",
            op.method,
            op.path,
            theirs.text,
            none.text
        );
        if op.method == Method::GET && op.path.contains('{') {
            assert_eq!(
                theirs.status, 404,
                "{} {} with another tenant's id: {}",
                op.method, op.path, theirs.text
            );
        }
    }
    // The resources are untouched by the stranger's writes and deletes.
    app.get(&format!("/v1/conversations/{}", ids.conversation), &admin)
        .await
        .expect(200);
    app.get(&format!("/v1/webhooks/{}", ids.webhook), &admin)
        .await
        .expect(200);

    // 3. A key with exactly the declared scope gets through authorization. Deletes go last so
    // every other operation sees the seeded resources.
    let mut ordered: Vec<&Op> = ops.iter().collect();
    ordered.sort_by_key(|o| o.method == Method::DELETE);
    for op in ordered {
        let key = app.token_with("acme", only(op.scope)).await;
        let r = call(&app, op, &ids, &key).await;
        assert!(
            r.status != 401 && r.status != 403 && !r.status.is_server_error(),
            "{} {} with a key holding {:?}: {} {}",
            op.method,
            op.path,
            op.scope,
            r.status,
            r.text
        );
    }
}
