//! The perform.chat dialect over HTTP: seed 000's own Python client, plus every bad input.

mod common;

use std::collections::HashSet;

use common::{Resp, TestApp};
use confab_core::Scopes;
use serde_json::{Value, json};

/// A key's two halves (perform.chat sends them separately) and its token form.
struct Creds {
    key_id: String,
    key_secret: String,
    token: String,
}

impl Creds {
    async fn new(app: &TestApp, tenant: &str) -> Creds {
        let k = app
            .store
            .create_key(tenant, Scopes::DEFAULT, None)
            .await
            .unwrap();
        Creds {
            key_id: k.key_id,
            key_secret: k.key_secret,
            token: k.token,
        }
    }

    fn body(&self) -> Value {
        json!({"keyId": self.key_id, "keySecret": self.key_secret})
    }
}

/// GET with an optional JSON body, as seed 000's clients send it.
async fn pget(app: &TestApp, path: &str, body: Option<&Value>) -> Resp {
    let mut rb = app.client.get(app.url(path));
    if let Some(b) = body {
        rb = rb.json(b);
    }
    Resp::read(rb.send().await.unwrap()).await
}

/// What a test conversation holds.
struct Spec {
    created_at: String,
    user: Option<String>,
    title: Option<String>,
    messages: usize,
}

/// Message `i` of conversation `k`: mostly user/assistant turns, with system and tool lines
/// mixed in (perform.chat lists every role).
fn message(k: usize, i: usize) -> Value {
    let role = match i % 7 {
        5 => "system",
        6 => "tool",
        n if n % 2 == 0 => "user",
        _ => "assistant",
    };
    json!({"role": role, "content": format!("c{k} m{i} {role}")})
}

/// Creates conversations through the native API; answers their ids in `specs` order.
async fn create_all(app: &TestApp, token: &str, specs: &[Spec]) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in specs.chunks(25).enumerate() {
        let (c, specs) = chunk;
        let calls = specs.iter().enumerate().map(|(j, s)| {
            let k = c * 25 + j;
            let mut b = json!({
                "created_at": s.created_at,
                "messages": (0..s.messages).map(|i| message(k, i)).collect::<Vec<_>>(),
            });
            if let Some(u) = &s.user {
                b["user_id"] = json!(u);
            }
            if let Some(t) = &s.title {
                b["title"] = json!(t);
            }
            async move { app.post("/v1/conversations", token, &b).await.expect(201) }
        });
        for r in futures::future::join_all(calls).await {
            ids.push(r.body["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

fn specs(n: usize) -> Vec<Spec> {
    (0..n)
        .map(|k| Spec {
            // Every 10th shares its neighbour's time, so ties (ordered by id) are exercised.
            created_at: format!(
                "2025-01-15T{:02}:{:02}:00.{:06}Z",
                (k - usize::from(k % 10 == 9)) / 60 % 24,
                (k - usize::from(k % 10 == 9)) % 60,
                k / 1440
            ),
            user: (k % 3 != 0).then(|| format!("cu_{}", k % 17)),
            title: (k % 5 == 0).then(|| format!("Given title {k}")),
            messages: match k {
                7 => 101,
                42 => 150,
                150 => 230,
                200 => 100,
                13 => 0,
                _ => k % 9,
            },
        })
        .collect()
}

/// The expected list order: newest first, ties by id (descending).
fn expected_order(specs: &[Spec], ids: &[String]) -> Vec<String> {
    let mut v: Vec<(String, String)> = specs
        .iter()
        .zip(ids)
        .map(|(s, id)| (s.created_at.clone(), id.replace('-', "")))
        .collect();
    v.sort_by(|a, b| b.cmp(a));
    v.into_iter()
        .map(|(_, hex)| {
            ids.iter()
                .find(|i| i.replace('-', "") == hex)
                .unwrap()
                .clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_python_client_exports_everything() {
    let app = TestApp::spawn().await;
    let c = Creds::new(&app, "acme").await;
    let specs = specs(310);
    let ids = create_all(&app, &c.token, &specs).await;
    // Another tenant's conversations must never show up.
    let other = Creds::new(&app, "other").await;
    create_all(&app, &other.token, &specs[..3]).await;

    let driver = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/perform_driver.py"
    );
    let base = app.url("/rest/v1");
    let (key_id, key_secret) = (c.key_id.clone(), c.key_secret.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(driver)
            // Keep the source tree clean of __pycache__.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PERFORM_BASE_URL", base)
            .env("API_KEY_ID", key_id)
            .env("API_KEY_SECRET", key_secret)
            .output()
            .expect("python3 runs (with the `requests` package installed)")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "driver failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();

    let n = specs.len() as i64;
    let order = expected_order(&specs, &ids);
    let first = &out["first_page"];
    assert_eq!(
        first["pagination"],
        json!({"page": 1, "limit": 10, "total": n, "total_pages": (n + 9) / 10})
    );
    let first_ids: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(first_ids, order[..10].to_vec());

    let all = out["all"].as_array().unwrap();
    let all_ids: Vec<&str> = all.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        all_ids, order,
        "export_all: every conversation once, newest first"
    );

    for conv in all {
        let id = conv["id"].as_str().unwrap();
        let k = ids.iter().position(|i| i == id).unwrap();
        let s = &specs[k];
        let keys: HashSet<&str> = conv
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            HashSet::from([
                "id",
                "title",
                "customer_user_id",
                "message_count",
                "created_at",
                "updated_at"
            ])
        );
        assert_eq!(conv["message_count"], s.messages);
        assert_eq!(conv["customer_user_id"], json!(s.user));
        let title = match (&s.title, s.messages) {
            (Some(t), _) => t.clone(),
            (None, 0) => String::new(),
            (None, _) => format!("c{k} m0 user"),
        };
        assert_eq!(conv["title"], title);

        let export = &out["exports"][id];
        assert_eq!(&export["conversation"], conv);
        let contents: Vec<&str> = export["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        let want: Vec<String> = (0..s.messages)
            .map(|i| message(k, i)["content"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(contents, want, "export_conversation of #{k}: all, in order");
        if let Some(m) = export["messages"].get(5) {
            assert_eq!(m["role"], "system");
            let keys: HashSet<&str> = m.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            assert_eq!(keys, HashSet::from(["id", "role", "content", "created_at"]));
        }
    }
    assert_eq!(out["get"].as_array().unwrap()[..], all[..5]);
    assert_eq!(out["missing_status"], 404);
    assert_eq!(out["bad_credentials_status"], 401);
    assert_eq!(out["bad_limit_status"], 400);
}

#[tokio::test]
async fn message_pages_and_totals() {
    let app = TestApp::spawn().await;
    let c = Creds::new(&app, "acme").await;
    let s = vec![Spec {
        created_at: "2025-01-15T10:30:00Z".into(),
        user: Some("cu_1".into()),
        title: None,
        messages: 120,
    }];
    let id = &create_all(&app, &c.token, &s).await[0];
    let b = c.body();
    let r = pget(
        &app,
        &format!("/rest/v1/conversations/{id}/messages"),
        Some(&b),
    )
    .await
    .expect(200);
    assert_eq!(
        r.body["pagination"],
        json!({"page": 1, "limit": 50, "total": 120, "total_pages": 3})
    );
    assert_eq!(r.body["data"].as_array().unwrap().len(), 50);
    assert_eq!(r.body["conversation"]["id"], json!(id));
    let path = format!("/rest/v1/conversations/{id}/messages?page=2&limit=100");
    let r = pget(&app, &path, Some(&b)).await.expect(200);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 20);
    assert_eq!(r.body["data"][0]["content"], message(0, 100)["content"]);
    assert_eq!(r.body["pagination"]["total_pages"], 2);
    // Past the end: an empty page, not an error.
    let path = format!("/rest/v1/conversations/{id}/messages?page=9");
    let r = pget(&app, &path, Some(&b)).await.expect(200);
    assert_eq!(r.body["data"], json!([]));
    assert_eq!(r.body["pagination"]["page"], 9);

    let g = pget(&app, &format!("/rest/v1/conversations/{id}"), Some(&b))
        .await
        .expect(200);
    assert_eq!(g.body["customer_user_id"], "cu_1");
    assert_eq!(g.body["message_count"], 120);
    assert_eq!(g.body["created_at"], "2025-01-15T10:30:00.000000Z");
}

#[tokio::test]
async fn empty_account_ends_the_loop_at_once() {
    let app = TestApp::spawn().await;
    let c = Creds::new(&app, "acme").await;
    let r = pget(
        &app,
        "/rest/v1/conversations?page=1&limit=100",
        Some(&c.body()),
    )
    .await
    .expect(200);
    assert_eq!(
        r.body,
        json!({"data": [], "pagination": {"page": 1, "limit": 100, "total": 0, "total_pages": 0}})
    );
    let s = vec![Spec {
        created_at: "2025-01-15T10:30:00Z".into(),
        user: None,
        title: None,
        messages: 0,
    }];
    let id = &create_all(&app, &c.token, &s).await[0];
    let r = pget(
        &app,
        &format!("/rest/v1/conversations/{id}/messages"),
        Some(&c.body()),
    )
    .await
    .expect(200);
    assert_eq!(r.body["pagination"]["total_pages"], 0);
    assert_eq!(r.body["conversation"]["title"], "");
    assert_eq!(r.body["conversation"]["customer_user_id"], Value::Null);
}

#[tokio::test]
async fn doubled_prefix_and_bearer_token_work() {
    let app = TestApp::spawn().await;
    let c = Creds::new(&app, "acme").await;
    let s = vec![Spec {
        created_at: "2025-01-15T10:30:00Z".into(),
        user: None,
        title: Some("Help with billing question".into()),
        messages: 3,
    }];
    let id = &create_all(&app, &c.token, &s).await[0];
    for prefix in ["/rest/v1", "/rest/v1/v1"] {
        let r = pget(
            &app,
            &format!("{prefix}/conversations?page=1&limit=10"),
            Some(&c.body()),
        )
        .await
        .expect(200);
        assert_eq!(r.body["data"][0]["title"], "Help with billing question");
        pget(
            &app,
            &format!("{prefix}/conversations/{id}"),
            Some(&c.body()),
        )
        .await
        .expect(200);
        pget(
            &app,
            &format!("{prefix}/conversations/{id}/messages"),
            Some(&c.body()),
        )
        .await
        .expect(200);
        let r = app
            .get(&format!("{prefix}/conversations/{id}/messages"), &c.token)
            .await
            .expect(200);
        assert_eq!(r.body["data"].as_array().unwrap().len(), 3);
        // The 32-hex form names the same conversation.
        let hex = id.replace('-', "");
        app.get(&format!("{prefix}/conversations/{hex}"), &c.token)
            .await
            .expect(200);
    }
}

fn field_of(r: &Resp) -> Vec<String> {
    r.body["error"]["details"]
        .as_object()
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn bad_credentials_are_401() {
    let app = TestApp::spawn().await;
    let c = Creds::new(&app, "acme").await;
    let cases: Vec<(&str, Option<Value>)> = vec![
        ("no body", None),
        ("empty object", Some(json!({}))),
        ("no secret", Some(json!({"keyId": c.key_id}))),
        (
            "wrong secret",
            Some(json!({"keyId": c.key_id, "keySecret": "nope"})),
        ),
        (
            "unknown key",
            Some(json!({"keyId": "k_nope", "keySecret": c.key_secret})),
        ),
        (
            "null values",
            Some(json!({"keyId": null, "keySecret": null})),
        ),
    ];
    for path in [
        "/rest/v1/conversations".to_owned(),
        format!("/rest/v1/conversations/{}", uuid_like()),
        format!("/rest/v1/conversations/{}/messages?page=0", uuid_like()),
    ] {
        for (what, body) in &cases {
            let r = pget(&app, &path, body.as_ref()).await;
            assert_eq!(r.status, 401, "{what} on {path}: {}", r.text);
            assert_eq!(r.body["error"]["code"], "UNAUTHORIZED");
        }
        let r = app.get(&path, "k_nope.secret").await.expect(401);
        assert_eq!(r.body["error"]["code"], "UNAUTHORIZED");
    }
    let r = pget(
        &app,
        "/rest/v1/conversations",
        Some(&json!({"keyId": c.key_id})),
    )
    .await
    .expect(401);
    assert_eq!(field_of(&r), ["keySecret"]);
    // A key without the read scope authenticates but may not list.
    let w = app
        .store
        .create_key("acme", Scopes::parse("write").unwrap(), None)
        .await
        .unwrap();
    let b = json!({"keyId": w.key_id, "keySecret": w.key_secret});
    pget(&app, "/rest/v1/conversations", Some(&b))
        .await
        .expect(403);
}

fn uuid_like() -> String {
    "0190a0b0-0000-7000-8000-000000000000".into()
}

#[tokio::test]
async fn bad_parameters_are_400_naming_them() {
    let app = TestApp::spawn().await;
    let c = Creds::new(&app, "acme").await;
    let s = vec![Spec {
        created_at: "2025-01-15T10:30:00Z".into(),
        user: None,
        title: None,
        messages: 2,
    }];
    let id = &create_all(&app, &c.token, &s).await[0];
    let b = c.body();
    for base in [
        "/rest/v1/conversations".to_owned(),
        format!("/rest/v1/conversations/{id}/messages"),
    ] {
        for (q, field) in [
            ("page=0", "page"),
            ("page=-3", "page"),
            ("page=abc", "page"),
            ("page=1.5", "page"),
            ("page=9223372036854775807&limit=100", "page"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("pag=2", "pag"),
        ] {
            let r = pget(&app, &format!("{base}?{q}"), Some(&b)).await;
            assert_eq!(r.status, 400, "{base}?{q}: {}", r.text);
            assert_eq!(r.body["error"]["code"], "VALIDATION_ERROR");
            assert!(
                r.body["error"]["message"].as_str().unwrap().contains(field),
                "{base}?{q}: {}",
                r.text
            );
        }
    }
    let path = format!("/rest/v1/conversations/{id}?page=2");
    let r = pget(&app, &path, Some(&b)).await.expect(400);
    assert_eq!(field_of(&r), ["page"]);
    // Malformed credential bodies name what is wrong.
    let path = "/rest/v1/conversations";
    let bad_json = app
        .client
        .get(app.url(path))
        .header("content-type", "application/json")
        .body("{\"keyId\":")
        .send()
        .await
        .unwrap();
    let r = Resp::read(bad_json).await.expect(400);
    assert_eq!(field_of(&r), ["body"]);
    let r = pget(&app, path, Some(&json!({"keyID": "x", "keySecret": "y"})))
        .await
        .expect(400);
    assert!(r.text.contains("keyID"), "{}", r.text);
    let r = pget(&app, path, Some(&json!({"keyId": 5, "keySecret": "y"})))
        .await
        .expect(400);
    assert_eq!(field_of(&r), ["keyId"]);
    let r = pget(&app, path, Some(&json!(["keyId"]))).await.expect(400);
    assert_eq!(r.body["error"]["code"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn unknown_and_foreign_ids_are_404() {
    let app = TestApp::spawn().await;
    let a = Creds::new(&app, "acme").await;
    let b = Creds::new(&app, "globex").await;
    let s = vec![Spec {
        created_at: "2025-01-15T10:30:00Z".into(),
        user: Some("cu_1".into()),
        title: None,
        messages: 2,
    }];
    let theirs = &create_all(&app, &b.token, &s).await[0];
    let body = a.body();
    for id in [theirs.as_str(), "conv_123", &uuid_like(), "%20"] {
        for path in [
            format!("/rest/v1/conversations/{id}"),
            format!("/rest/v1/conversations/{id}/messages"),
            format!("/rest/v1/v1/conversations/{id}/messages?page=2"),
        ] {
            let r = pget(&app, &path, Some(&body)).await;
            assert_eq!(r.status, 404, "{path}: {}", r.text);
            assert_eq!(r.body["error"]["code"], "NOT_FOUND");
        }
    }
    let r = pget(&app, "/rest/v1/conversations", Some(&body))
        .await
        .expect(200);
    assert_eq!(r.body["pagination"]["total"], 0);
    // The owner does see it.
    pget(
        &app,
        &format!("/rest/v1/conversations/{theirs}"),
        Some(&b.body()),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn openapi_lists_each_route_once() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc = Resp::read(r).await.expect(200).body;
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/rest/v1/conversations",
        "/rest/v1/conversations/{id}",
        "/rest/v1/conversations/{id}/messages",
        "/character/chatHistory/list",
        "/character/chatHistory/details",
    ] {
        assert!(paths.contains_key(p), "{p} is documented");
    }
    assert!(!paths.keys().any(|p| p.starts_with("/rest/v1/v1")));
}
