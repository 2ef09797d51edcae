//! Webhooks end to end: a receiver inside the test verifies Standard Webhooks signatures, fails
//! on demand, and is stopped and restarted mid-stream; confab is stopped between commit and
//! delivery; every event still arrives once per attempt log, in order per conversation.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::TestApp;
use confab_core::{Scope, Scopes};
use confab_server::ServerConfig;
use confab_server::config::WebhookConfig;
use reqwest::Method;
use serde_json::{Value, json};

#[derive(Default)]
struct Inbox {
    /// Secrets a signature may be made with.
    secrets: Vec<String>,
    /// Answer this many requests with 500 before accepting.
    fail_next: usize,
    /// Answer everything with this status instead (redirect tests).
    always: Option<u16>,
    /// Accepted events: (webhook-id, body).
    got: Vec<(String, Value)>,
    /// Every request seen.
    seen: usize,
    bad_signatures: usize,
}

type Shared = Arc<Mutex<Inbox>>;

async fn receive(
    State(inbox): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, HeaderMap) {
    let mut i = inbox.lock().unwrap();
    i.seen += 1;
    let id = headers
        .get("webhook-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let ts: i64 = headers
        .get("webhook-timestamp")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let sigs = headers
        .get("webhook-signature")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let valid = i.secrets.iter().any(|s| {
        let expect = confab_server::webhooks::sign::sign(s, &id, ts, &body);
        sigs.split(' ').any(|p| p == expect)
    });
    let mut h = HeaderMap::new();
    if let Some(s) = i.always {
        h.insert("location", "http://example.com/elsewhere".parse().unwrap());
        return (StatusCode::from_u16(s).unwrap(), h);
    }
    if !valid {
        i.bad_signatures += 1;
        return (StatusCode::UNAUTHORIZED, h);
    }
    if i.fail_next > 0 {
        i.fail_next -= 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, h);
    }
    i.got.push((id, serde_json::from_str(&body).unwrap()));
    (StatusCode::OK, h)
}

/// A receiver on a fixed port that can be stopped and started again.
struct Receiver {
    inbox: Shared,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    async fn start(inbox: Shared, addr: Option<std::net::SocketAddr>) -> Receiver {
        let listener =
            tokio::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
                .await
                .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(inbox.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Receiver {
            inbox,
            addr,
            stop: Some(tx),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    async fn stop(mut self) -> (Shared, std::net::SocketAddr) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::sleep(Duration::from_millis(50)).await;
        (self.inbox, self.addr)
    }
}

fn fast_config(worker: bool) -> ServerConfig {
    ServerConfig {
        webhooks: WebhookConfig {
            worker,
            allow_internal: true,
            timeout: Duration::from_secs(5),
            schedule: vec![Duration::from_millis(50); 6],
            disable_after: Duration::from_secs(3600),
            poll_interval: Duration::from_millis(20),
            concurrency: 8,
        },
        ..ServerConfig::default()
    }
}

async fn admin(app: &TestApp, tenant: &str) -> String {
    app.token_with(tenant, Scopes::DEFAULT.with(Scope::Admin))
        .await
}

async fn register(app: &TestApp, t: &str, url: &str, types: Value) -> (String, String) {
    let r = app
        .post(
            "/v1/webhooks",
            t,
            &json!({"url": url, "event_types": types}),
        )
        .await
        .expect(201);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["secret"].as_str().unwrap().to_owned(),
    )
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The receiver sees an attempt before the server has logged it, so a test
/// that reads the log polls it until it shows what the test waits for.
async fn log_once(
    app: &TestApp,
    t: &str,
    ep: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = app
            .get(&format!("/v1/webhooks/{ep}/deliveries"), t)
            .await
            .expect(200)
            .body;
        if done(&log) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn types_of(inbox: &Shared) -> Vec<String> {
    inbox
        .lock()
        .unwrap()
        .got
        .iter()
        .map(|(_, b)| b["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn events_are_signed_complete_and_in_order() {
    let app = TestApp::spawn_with(fast_config(true)).await;
    let t = admin(&app, "acme").await;
    let rx = Receiver::start(Shared::default(), None).await;
    let (_, secret) = register(&app, &t, &rx.url(), json!([])).await;
    rx.inbox.lock().unwrap().secrets.push(secret);
    let c = app
        .post(
            "/v1/conversations",
            &t,
            &json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .expect(201);
    let id = c.body["id"].as_str().unwrap().to_owned();
    for i in 0..5 {
        app.post(
            &format!("/v1/conversations/{id}/messages"),
            &t,
            &json!({"messages": [{"role": "assistant", "content": format!("a{i}")}]}),
        )
        .await
        .expect(200);
    }
    app.post(&format!("/v1/conversations/{id}/messages"), &t, &json!({"messages": [{"role": "user", "content": "bye"}], "status": "completed", "metadata": {"k": 1}}))
        .await
        .expect(200);
    let inbox = rx.inbox.clone();
    wait_for("8 events", || inbox.lock().unwrap().got.len() >= 8).await;
    let got = inbox.lock().unwrap().got.clone();
    let types = types_of(&inbox);
    assert_eq!(
        types,
        [
            "conversation.created",
            "conversation.updated",
            "conversation.updated",
            "conversation.updated",
            "conversation.updated",
            "conversation.updated",
            "conversation.updated",
            "conversation.completed"
        ]
    );
    // Message counts grow in order: events of one conversation arrive in the order they happened.
    let counts: Vec<i64> = got
        .iter()
        .map(|(_, b)| b["data"]["conversation"]["message_count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![1, 2, 3, 4, 5, 6, 7, 7]);
    let last_update = &got[6].1["data"];
    let changed: Vec<&str> = last_update["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in [
        "messages",
        "message_count",
        "status",
        "metadata",
        "completed_at",
    ] {
        assert!(changed.contains(&f), "{f} missing from {changed:?}");
    }
    assert_eq!(got[0].1["data"]["conversation"]["id"], id.as_str());
    assert!(
        got[0].1["data"]["conversation"].get("analyze").is_none(),
        "no internal flags in payloads"
    );
    assert!(got.iter().all(|(wid, _)| wid.starts_with("msg_")));
    let ids: std::collections::HashSet<_> = got.iter().map(|(w, _)| w.clone()).collect();
    assert_eq!(ids.len(), got.len(), "each event has its own stable id");
    assert_eq!(inbox.lock().unwrap().bad_signatures, 0);
}

#[tokio::test]
async fn failures_are_retried_and_every_attempt_is_logged() {
    let app = TestApp::spawn_with(fast_config(true)).await;
    let t = admin(&app, "acme").await;
    let rx = Receiver::start(Shared::default(), None).await;
    let (ep, secret) = register(&app, &t, &rx.url(), json!(["conversation.created"])).await;
    {
        let mut i = rx.inbox.lock().unwrap();
        i.secrets.push(secret);
        i.fail_next = 3;
    }
    app.post("/v1/conversations", &t, &json!({}))
        .await
        .expect(201);
    // Only the subscribed type is sent.
    app.post("/v1/conversations", &t, &json!({}))
        .await
        .expect(201);
    let inbox = rx.inbox.clone();
    wait_for("both deliveries", || inbox.lock().unwrap().got.len() == 2).await;
    let log = log_once(&app, &t, &ep, "five logged attempts", |l| {
        l["data"].as_array().unwrap().len() >= 5
    })
    .await;
    let attempts = log["data"].as_array().unwrap();
    assert_eq!(attempts.len(), 5, "3 failures and 2 successes: {log}");
    let failed: Vec<&Value> = attempts
        .iter()
        .filter(|a| a["status_code"] == 500)
        .collect();
    assert_eq!(failed.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|a| a["latency_ms"].is_i64() && a["event_type"] == "conversation.created")
    );
    assert!(attempts.iter().all(|a| a["delivery_state"] == "succeeded"));
    assert_eq!(
        types_of(&inbox),
        vec!["conversation.created", "conversation.created"]
    );
}

#[tokio::test]
async fn a_delivery_that_fails_for_good_can_be_resent() {
    let mut config = fast_config(true);
    config.webhooks.schedule = vec![Duration::from_millis(20); 2];
    let app = TestApp::spawn_with(config).await;
    let t = admin(&app, "acme").await;
    let rx = Receiver::start(Shared::default(), None).await;
    let (ep, secret) = register(&app, &t, &rx.url(), json!(["conversation.created"])).await;
    {
        let mut i = rx.inbox.lock().unwrap();
        i.secrets.push(secret);
        i.fail_next = 1000;
    }
    app.post("/v1/conversations", &t, &json!({}))
        .await
        .expect(201);
    let inbox = rx.inbox.clone();
    wait_for("three attempts", || inbox.lock().unwrap().seen >= 3).await;
    let failed = log_once(&app, &t, &ep, "the delivery to fail", |l| {
        l["data"][0]["delivery_state"] == "failed"
    })
    .await;
    assert_eq!(
        failed["data"].as_array().unwrap().len(),
        3,
        "1 attempt + 2 retries: {failed}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        inbox.lock().unwrap().seen,
        3,
        "no attempt after the last retry"
    );
    inbox.lock().unwrap().fail_next = 0;
    let delivery = failed["data"][0]["delivery_id"].as_str().unwrap();
    app.call(
        Method::POST,
        &format!("/v1/webhooks/{ep}/deliveries/{delivery}/retry"),
        Some(&t),
        None,
    )
    .await
    .expect(202);
    wait_for("the re-sent event", || inbox.lock().unwrap().got.len() == 1).await;
    // Only failed deliveries can be re-sent.
    app.call(
        Method::POST,
        &format!("/v1/webhooks/{ep}/deliveries/{delivery}/retry"),
        Some(&t),
        None,
    )
    .await
    .expect(404);
}

#[tokio::test]
async fn a_receiver_that_goes_away_mid_stream_gets_everything_in_order() {
    let app = TestApp::spawn_with(fast_config(true)).await;
    let t = admin(&app, "acme").await;
    let rx = Receiver::start(Shared::default(), None).await;
    let (_, secret) = register(
        &app,
        &t,
        &rx.url(),
        json!(["conversation.created", "conversation.updated"]),
    )
    .await;
    rx.inbox.lock().unwrap().secrets.push(secret);
    let c = app
        .post("/v1/conversations", &t, &json!({}))
        .await
        .expect(201);
    let id = c.body["id"].as_str().unwrap().to_owned();
    let inbox = rx.inbox.clone();
    wait_for("the first event", || inbox.lock().unwrap().got.len() == 1).await;
    let (inbox, addr) = rx.stop().await;
    for i in 0..10 {
        app.post(
            &format!("/v1/conversations/{id}/messages"),
            &t,
            &json!({"messages": [{"role": "user", "content": format!("m{i}")}]}),
        )
        .await
        .expect(200);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let rx = Receiver::start(inbox, Some(addr)).await;
    let inbox = rx.inbox.clone();
    wait_for("all 11 events", || inbox.lock().unwrap().got.len() == 11).await;
    let counts: Vec<i64> = inbox
        .lock()
        .unwrap()
        .got
        .iter()
        .map(|(_, b)| b["data"]["conversation"]["message_count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, (0..=10).collect::<Vec<i64>>());
}

#[tokio::test]
async fn events_committed_before_a_crash_are_delivered_after_restart() {
    // The first server commits events but never delivers them (no worker), as if killed
    // between commit and delivery; the second one, on the same database, delivers them.
    let app = TestApp::spawn_with(fast_config(false)).await;
    let t = admin(&app, "acme").await;
    let rx = Receiver::start(Shared::default(), None).await;
    let (_, secret) = register(
        &app,
        &t,
        &rx.url(),
        json!(["conversation.created", "conversation.completed"]),
    )
    .await;
    rx.inbox.lock().unwrap().secrets.push(secret);
    for _ in 0..3 {
        app.post("/v1/conversations", &t, &json!({"status": "completed"}))
            .await
            .expect(201);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rx.inbox.lock().unwrap().seen, 0);
    let (dir, db) = app.stop().await;
    let app = TestApp::start(dir, db, fast_config(true), Default::default()).await;
    let inbox = rx.inbox.clone();
    wait_for("six events", || inbox.lock().unwrap().got.len() == 6).await;
    drop(app);
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_during_the_grace_period() {
    let app = TestApp::spawn_with(fast_config(true)).await;
    let t = admin(&app, "acme").await;
    let rx = Receiver::start(Shared::default(), None).await;
    let (ep, old) = register(&app, &t, &rx.url(), json!(["conversation.created"])).await;
    let r = app
        .post(
            &format!("/v1/webhooks/{ep}/rotate-secret"),
            &t,
            &json!({"grace_seconds": 3600}),
        )
        .await
        .expect(200);
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(r.body["previous_secret_expires_at"].is_string());
    // A receiver that still holds only the old secret keeps verifying.
    rx.inbox.lock().unwrap().secrets.push(old.clone());
    app.post("/v1/conversations", &t, &json!({}))
        .await
        .expect(201);
    let inbox = rx.inbox.clone();
    wait_for("delivery under the old secret", || {
        inbox.lock().unwrap().got.len() == 1
    })
    .await;
    // After rotating with no grace, only the newest secret signs.
    let r = app
        .post(
            &format!("/v1/webhooks/{ep}/rotate-secret"),
            &t,
            &json!({"grace_seconds": 0}),
        )
        .await
        .expect(200);
    let newest = r.body["secret"].as_str().unwrap().to_owned();
    {
        let mut i = inbox.lock().unwrap();
        i.secrets = vec![old, new];
    }
    app.post("/v1/conversations", &t, &json!({}))
        .await
        .expect(201);
    wait_for("a refused signature", || {
        inbox.lock().unwrap().bad_signatures >= 1
    })
    .await;
    inbox.lock().unwrap().secrets.push(newest);
    wait_for("delivery under the newest secret", || {
        inbox.lock().unwrap().got.len() == 2
    })
    .await;
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let app = TestApp::spawn_with(fast_config(true)).await;
    let t = admin(&app, "acme").await;
    let rx = Receiver::start(Shared::default(), None).await;
    rx.inbox.lock().unwrap().always = Some(302);
    let (ep, _) = register(&app, &t, &rx.url(), json!(["webhook.test"])).await;
    app.call(
        Method::POST,
        &format!("/v1/webhooks/{ep}/test"),
        Some(&t),
        None,
    )
    .await
    .expect(202);
    let inbox = rx.inbox.clone();
    wait_for("an attempt", || inbox.lock().unwrap().seen >= 1).await;
    let log = log_once(&app, &t, &ep, "a logged attempt", |l| {
        !l["data"].as_array().unwrap().is_empty()
    })
    .await;
    assert_eq!(log["data"][0]["status_code"], 302, "{log}");
}

#[tokio::test]
async fn an_endpoint_failing_for_too_long_is_disabled() {
    let mut config = fast_config(true);
    config.webhooks.disable_after = Duration::from_millis(100);
    config.webhooks.schedule = vec![Duration::from_millis(60); 10];
    let app = TestApp::spawn_with(config).await;
    let t = admin(&app, "acme").await;
    let rx = Receiver::start(Shared::default(), None).await;
    rx.inbox.lock().unwrap().fail_next = 1000;
    let (ep, _) = register(&app, &t, &rx.url(), json!([])).await;
    app.post("/v1/conversations", &t, &json!({}))
        .await
        .expect(201);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = app
            .get(&format!("/v1/webhooks/{ep}"), &t)
            .await
            .expect(200)
            .body;
        if e["enabled"] == false {
            assert!(e["disabled_reason"].as_str().unwrap().contains("failed"));
            break;
        }
        assert!(Instant::now() < deadline, "never disabled: {e}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let e = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{ep}"),
            Some(&t),
            Some(&json!({"enabled": true})),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(e["disabled_reason"], Value::Null);
}

#[tokio::test]
async fn endpoint_management_rules() {
    let mut config = fast_config(false);
    config.webhooks.allow_internal = false;
    let app = TestApp::spawn_with(config).await;
    let t = admin(&app, "acme").await;
    let rw = app.token("acme").await;
    let other = admin(&app, "globex").await;
    for (body, field) in [
        (json!({"url": "ftp://example.com/x"}), "url"),
        (json!({"url": "http://127.0.0.1:8080/x"}), "url"),
        (json!({"url": "http://10.0.0.5/x"}), "url"),
        (json!({"url": "http://169.254.169.254/latest"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (
            json!({"url": "https://example.com/x", "event_types": ["conversation.exploded"]}),
            "event_types[0]",
        ),
        (json!({}), "url"),
    ] {
        let r = app.post("/v1/webhooks", &t, &body).await.expect(400);
        assert!(
            r.body["error"]["details"].get(field).is_some(),
            "{body}: {}",
            r.text
        );
    }
    let r = app
        .post(
            "/v1/webhooks",
            &t,
            &json!({"url": "https://example.com/hook", "description": "prod"}),
        )
        .await
        .expect(201);
    let ep = r.body["id"].as_str().unwrap().to_owned();
    assert!(r.body["secret"].as_str().unwrap().starts_with("whsec_"));
    let listed = app.get("/v1/webhooks", &t).await.expect(200);
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert!(
        !listed.text.contains("whsec_"),
        "secrets are shown only on creation and rotation"
    );
    let got = app.get(&format!("/v1/webhooks/{ep}"), &t).await.expect(200);
    assert!(got.body.get("secret").is_none());
    // Keys without admin, and other tenants, get nothing.
    app.get("/v1/webhooks", &rw).await.expect(403);
    app.post(
        "/v1/webhooks",
        &rw,
        &json!({"url": "https://example.com/x"}),
    )
    .await
    .expect(403);
    for (m, path) in [
        (Method::GET, format!("/v1/webhooks/{ep}")),
        (Method::PATCH, format!("/v1/webhooks/{ep}")),
        (Method::DELETE, format!("/v1/webhooks/{ep}")),
        (Method::POST, format!("/v1/webhooks/{ep}/test")),
        (Method::POST, format!("/v1/webhooks/{ep}/rotate-secret")),
        (Method::GET, format!("/v1/webhooks/{ep}/deliveries")),
    ] {
        let body = if m == Method::PATCH {
            Some(json!({"enabled": false}))
        } else {
            None
        };
        let r = app
            .call(m.clone(), &path, Some(&other), body.as_ref())
            .await;
        assert_eq!(r.status, 404, "{m} {path}: {}", r.text);
    }
    assert_eq!(
        app.get("/v1/webhooks", &other).await.expect(200).body["data"],
        json!([])
    );
    let p = app
        .call(
            Method::PATCH,
            &format!("/v1/webhooks/{ep}"),
            Some(&t),
            Some(&json!({"description": null, "event_types": ["insights.ready"]})),
        )
        .await
        .expect(200);
    assert_eq!(p.body["description"], Value::Null);
    assert_eq!(p.body["event_types"], json!(["insights.ready"]));
    app.call(
        Method::PATCH,
        &format!("/v1/webhooks/{ep}"),
        Some(&t),
        Some(&json!({"url": "gopher://x"})),
    )
    .await
    .expect(400);
    app.call(
        Method::DELETE,
        &format!("/v1/webhooks/{ep}"),
        Some(&t),
        None,
    )
    .await
    .expect(204);
    app.get(&format!("/v1/webhooks/{ep}"), &t).await.expect(404);
}

#[tokio::test]
async fn deleting_a_conversation_removes_its_events() {
    let app = TestApp::spawn_with(fast_config(false)).await;
    let t = admin(&app, "acme").await;
    register(&app, &t, "http://127.0.0.1:9/hook", json!([])).await;
    let before = app.table_counts().await;
    let c = app
        .post("/v1/conversations", &t, &json!({"status": "completed"}))
        .await
        .expect(201);
    let id = c.body["id"].as_str().unwrap();
    let mid = app.table_counts().await;
    assert_ne!(mid, before, "events were written");
    app.call(
        Method::DELETE,
        &format!("/v1/conversations/{id}"),
        Some(&t),
        None,
    )
    .await
    .expect(204);
    assert_eq!(app.table_counts().await, before);
}

#[tokio::test]
async fn patches_and_insights_emit_their_events() {
    let app = TestApp::spawn_with(fast_config(true)).await;
    let t = admin(&app, "acme").await;
    let rx = Receiver::start(Shared::default(), None).await;
    let (_, secret) = register(
        &app,
        &t,
        &rx.url(),
        json!(["conversation.updated", "insights.ready"]),
    )
    .await;
    rx.inbox.lock().unwrap().secrets.push(secret);
    let c = app
        .post("/v1/conversations", &t, &json!({}))
        .await
        .expect(201);
    let id = c.body["id"].as_str().unwrap().to_owned();
    app.call(
        Method::PATCH,
        &format!("/v1/conversations/{id}"),
        Some(&t),
        Some(&json!({"title": "T", "added_to_memory": true})),
    )
    .await
    .expect(200);
    // A PATCH that changes nothing emits nothing.
    app.call(
        Method::PATCH,
        &format!("/v1/conversations/{id}"),
        Some(&t),
        Some(&json!({"title": "T"})),
    )
    .await
    .expect(200);
    let tenant = app
        .store
        .authenticate(t.split_once('.').unwrap().0, t.split_once('.').unwrap().1)
        .await
        .unwrap()
        .unwrap()
        .tenant;
    let insights = confab_core::Insights {
        conversation_id: id.parse().unwrap(),
        sentiment: confab_core::Sentiment::Positive,
        sentiment_score: 0.5,
        task_completed: true,
        topics: vec!["billing".into()],
        summary: "ok".into(),
        issues: vec![],
        analyzer: "builtin".into(),
        created_at: confab_core::timefmt::now(),
    };
    app.store.put_insights(&tenant, insights).await.unwrap();
    let inbox = rx.inbox.clone();
    wait_for("two events", || inbox.lock().unwrap().got.len() == 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = inbox.lock().unwrap().got.clone();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].1["type"], "conversation.updated");
    let changed: Vec<&str> = got[0].1["data"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(changed, vec!["title", "added_to_memory"]);
    assert_eq!(got[1].1["type"], "insights.ready");
    assert_eq!(got[1].1["data"]["insights"]["topics"], json!(["billing"]));
}
