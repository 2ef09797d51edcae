//! The Converra dialect (seed 003) over HTTP: every documented route, its limits, idempotency,
//! concurrency and every kind of bad input.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::TestApp;
use confab_core::{Insights, Issue, Sentiment};
use confab_server::ServerConfig;
use confab_store::{MessageQuery, StoreOptions, TenantId};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

const BASE: &str = "/api/v1/conversations";
const HINT: &str = "Append turns to this conversation. Send status: 'completed' on the final call to trigger analysis.";

async fn tenant_of(app: &TestApp, token: &str) -> TenantId {
    let (id, secret) = confab_store::keys::split_token(token).unwrap();
    app.store
        .authenticate(id, secret)
        .await
        .unwrap()
        .unwrap()
        .tenant
}

/// Creates and answers the new id.
async fn create(app: &TestApp, t: &str, body: Value) -> String {
    let r = app.post(BASE, t, &body).await.expect(200);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn open(app: &TestApp, t: &str) -> String {
    create(
        app,
        t,
        json!({"promptId": "p1", "content": "", "status": "active"}),
    )
    .await
}

async fn get(app: &TestApp, t: &str, id: &str) -> Value {
    app.get(&format!("{BASE}/{id}"), t).await.expect(200).body
}

async fn append(app: &TestApp, t: &str, id: &str, body: Value) -> common::Resp {
    app.post(&format!("{BASE}/{id}/messages"), t, &body).await
}

async fn insights_jobs(app: &TestApp, id: &str) -> i64 {
    let rows = app
        .sql(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'insights' AND state = 'queued' AND conversation_id = $1",
            &[common::Arg::Uuid(Uuid::parse_str(id).unwrap())],
        )
        .await;
    rows[0][0].as_i64().unwrap()
}

fn roles_and_content(conv: &Value) -> Vec<(String, String)> {
    conv["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn insights_for(id: &str) -> Insights {
    Insights {
        conversation_id: Uuid::parse_str(id).unwrap(),
        sentiment: Sentiment::Positive,
        sentiment_score: 0.82,
        task_completed: true,
        topics: vec!["greeting".into(), "product inquiry".into()],
        summary: "User asked about availability.".into(),
        issues: vec![Issue {
            code: "slow_reply".into(),
            text: "One reply was slow".into(),
        }],
        analyzer: "builtin".into(),
        created_at: confab_core::timefmt::parse("2025-01-20T14:35:00Z").unwrap(),
    }
}

#[tokio::test]
async fn create_answers_as_documented_and_queues_analysis() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let r = app
        .post(
            BASE,
            &t,
            &json!({
                "promptId": "prompt_123",
                "content": "User: Hello, I need help\nAssistant: Hi! How can I help you today?",
                "status": "completed",
                "llmModel": "gpt-4o",
                "companyName": "Acme"
            }),
        )
        .await
        .expect(200);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["promptId"], "prompt_123");
    assert_eq!(r.body["status"], "completed");
    assert!(confab_core::timefmt::parse(r.body["createdAt"].as_str().unwrap()).is_ok());
    assert_eq!(
        r.body["_links"],
        json!({"appendMessages": {
            "href": format!("/api/v1/conversations/{id}/messages"),
            "method": "POST",
            "hint": HINT
        }})
    );
    assert_eq!(insights_jobs(&app, &id).await, 1);

    let c = get(&app, &t, &id).await;
    assert_eq!(
        c["content"],
        "User: Hello, I need help\nAssistant: Hi! How can I help you today?"
    );
    assert_eq!(c["promptId"], "prompt_123");
    assert_eq!(c["llmModel"], "gpt-4o");
    assert_eq!(c["companyName"], "Acme");
    assert_eq!(c["title"], "Hello, I need help");
    assert_eq!(c["messageCount"], 2);
    assert_eq!(c["insights"], Value::Null);
    assert!(c.as_object().unwrap().contains_key("insights"));
}

#[tokio::test]
async fn status_defaults_to_completed() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let r = app
        .post(BASE, &t, &json!({"promptId": "p", "content": "User: hi"}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(insights_jobs(&app, r.body["id"].as_str().unwrap()).await, 1);
}

#[tokio::test]
async fn every_label_pair_of_the_text_format() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    for (u, a) in [
        ("User", "Assistant"),
        ("Human", "AI"),
        ("Customer", "Agent"),
    ] {
        let content = format!("{u}: Hello\nthere\n{a}: Hi! How can I help?\n{u}: Thanks");
        let id = create(&app, &t, json!({"promptId": "p", "content": content})).await;
        let c = get(&app, &t, &id).await;
        assert_eq!(
            roles_and_content(&c),
            [
                ("user".into(), "Hello\nthere".into()),
                ("assistant".into(), "Hi! How can I help?".into()),
                ("user".into(), "Thanks".into()),
            ],
            "{u}/{a}"
        );
        assert_eq!(
            c["content"],
            "User: Hello\nthere\nAssistant: Hi! How can I help?\nUser: Thanks"
        );
    }
}

#[tokio::test]
async fn structured_content_maps_metadata_and_per_message_fields() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let content = json!({
        "messages": [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "Hello", "timestamp": "2025-01-20T14:30:00Z"},
            {"role": "assistant", "content": "Hi! How can I help?", "model": "gpt-4o", "tokens": 9}
        ],
        "metadata": {"userId": "user_789", "sessionId": "s1", "channel": "web", "language": "en", "plan": "pro"}
    })
    .to_string();
    let id = create(&app, &t, json!({"promptId": "p", "content": content})).await;
    let c = get(&app, &t, &id).await;
    assert_eq!(c["userId"], "user_789");
    assert_eq!(c["channel"], "web");
    assert_eq!(
        c["metadata"],
        json!({"sessionId": "s1", "language": "en", "plan": "pro"})
    );
    assert_eq!(c["title"], "Hello");
    assert_eq!(c["messages"][1]["timestamp"], "2025-01-20T14:30:00.000000Z");
    assert_eq!(c["messages"][2]["model"], "gpt-4o");
    assert_eq!(c["messages"][2]["tokens"], 9);
    assert_eq!(
        c["content"],
        "System: Be brief\nUser: Hello\nAssistant: Hi! How can I help?"
    );
}

#[tokio::test]
async fn prompt_fields_link_an_agent_and_prompt_name_is_never_analysed() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    for field in ["promptId", "agentId", "systemPromptId"] {
        let r = app
            .post(BASE, &t, &json!({field: "bot-7", "content": "User: hi"}))
            .await
            .expect(200);
        assert_eq!(r.body["promptId"], "bot-7", "{field}");
        assert_eq!(insights_jobs(&app, r.body["id"].as_str().unwrap()).await, 1);
    }
    let same = app
        .post(
            BASE,
            &t,
            &json!({"promptId": "bot-7", "agentId": "bot-7", "content": "User: hi"}),
        )
        .await
        .expect(200);
    assert_eq!(same.body["promptId"], "bot-7");

    let r = app
        .post(
            BASE,
            &t,
            &json!({"promptName": "Support bot v2", "content": "User: hi\nAI: hello"}),
        )
        .await
        .expect(200);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["promptId"], Value::Null);
    assert_eq!(r.body["status"], "completed");
    assert_eq!(insights_jobs(&app, &id).await, 0);
    let c = get(&app, &t, &id).await;
    assert_eq!(c["metadata"]["promptName"], "Support bot v2");
    let i = app
        .get(&format!("{BASE}/{id}/insights"), &t)
        .await
        .expect(404);
    assert_eq!(i.body["error"]["code"], "INSIGHTS_NOT_READY");
    assert_eq!(i.body["error"]["details"]["reason"], "not_analyzed");
}

#[tokio::test]
async fn live_flow_open_append_complete() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let r = app
        .post(
            BASE,
            &t,
            &json!({"promptId": "p1", "content": "", "status": "active"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "active");
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(insights_jobs(&app, &id).await, 0);

    let a = append(
        &app,
        &t,
        &id,
        json!({
            "messages": [
                {"role": "user", "content": "Can you check my order status?"},
                {"role": "assistant", "content": "Sure — what's your order number?"}
            ],
            "status": "active",
            "metadata": {"sessionId": "sess_abc"}
        }),
    )
    .await
    .expect(200);
    let b = &a.body;
    assert_eq!(b["id"], id.as_str());
    assert_eq!(b["status"], "active");
    assert_eq!(b["title"], "Can you check my order status?");
    assert_eq!(b["userId"], Value::Null);
    assert_eq!(b["metadata"], json!({"sessionId": "sess_abc"}));
    assert_eq!(
        b["content"],
        "User: Can you check my order status?\nAssistant: Sure — what's your order number?"
    );
    assert_eq!(b["messages"].as_array().unwrap().len(), 2);
    assert!(b["updatedAt"].is_string() && b["createdAt"].is_string());
    assert_eq!(insights_jobs(&app, &id).await, 0);

    let a = append(
        &app,
        &t,
        &id,
        json!({
            "messages": [{"role": "user", "content": "#1234"}],
            "status": "completed",
            "metadata": {"resolved": true}
        }),
    )
    .await
    .expect(200);
    assert_eq!(a.body["status"], "completed");
    assert_eq!(
        a.body["metadata"],
        json!({"sessionId": "sess_abc", "resolved": true})
    );
    assert!(
        a.body["content"]
            .as_str()
            .unwrap()
            .ends_with("\nUser: #1234")
    );
    assert_eq!(insights_jobs(&app, &id).await, 1);

    // A second "completed" and later turns are kept, but queue no second analysis; "active"
    // does not reopen.
    let a = append(
        &app,
        &t,
        &id,
        json!({"messages": [{"role": "assistant", "content": "Shipped."}], "status": "completed"}),
    )
    .await
    .expect(200);
    assert_eq!(a.body["messageCount"], 4);
    let a = append(
        &app,
        &t,
        &id,
        json!({"messages": [{"role": "user", "content": "Thanks"}], "status": "active"}),
    )
    .await
    .expect(200);
    assert_eq!(a.body["status"], "completed");
    assert_eq!(a.body["messages"].as_array().unwrap().len(), 5);
    assert_eq!(insights_jobs(&app, &id).await, 1);
}

#[tokio::test]
async fn appended_message_fields_round_trip() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = open(&app, &t).await;
    let a = append(
        &app,
        &t,
        &id,
        json!({"messages": [
            {"role": "user", "content": "Weather?", "timestamp": "2025-01-20T14:30:00+02:00"},
            {"role": "assistant", "content": "Let me look.", "model": "gpt-4o", "tokens": 30,
             "toolCalls": [{"id": "c1", "name": "weather", "arguments": {"city": "Oslo"}}],
             "usage": {"promptTokens": 20, "completionTokens": 10}, "latencyMs": 850,
             "metadata": {"trace": "t1"}},
            {"role": "tool", "content": "", "toolCalls": [{"id": "c1", "result": "sunny"}]},
            {"role": "tool", "toolCalls": [{"id": "c2", "result": "windy"}]}
        ]}),
    )
    .await
    .expect(200);
    let m = &a.body["messages"];
    assert_eq!(m[0]["timestamp"], "2025-01-20T12:30:00.000000Z");
    assert_eq!(m[1]["toolCalls"][0]["arguments"]["city"], "Oslo");
    assert_eq!(
        m[1]["usage"],
        json!({"promptTokens": 20, "completionTokens": 10})
    );
    assert_eq!(m[1]["latencyMs"], 850);
    assert_eq!(m[1]["tokens"], 30);
    assert_eq!(m[1]["metadata"], json!({"trace": "t1"}));
    assert_eq!(m[2]["content"], "");
    assert!(m[0].get("usage").is_none());
    assert!(
        a.body["content"]
            .as_str()
            .unwrap()
            .ends_with("Tool: [{\"id\":\"c2\",\"result\":\"windy\"}]")
    );
}

#[tokio::test]
async fn concurrent_appends_all_land_once_in_order() {
    let app = Arc::new(TestApp::spawn().await);
    let t = app.token("acme").await;
    let id = open(&app, &t).await;
    let mut tasks = Vec::new();
    for client in 0..8 {
        let (app, t, id) = (app.clone(), t.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                append(
                    &app,
                    &t,
                    &id,
                    json!({"messages": [
                        {"role": "user", "content": format!("q {client} {i}")},
                        {"role": "assistant", "content": format!("a {client} {i}")}
                    ]}),
                )
                .await
                .expect(200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let c = get(&app, &t, &id).await;
    assert_eq!(c["messageCount"], 80);
    let got = roles_and_content(&c);
    assert_eq!(got.len(), 80);
    let unique: HashSet<&String> = got.iter().map(|(_, c)| c).collect();
    assert_eq!(unique.len(), 80, "a turn was stored twice");
    // Each append's pair is adjacent, and each client's appends keep their order.
    let mut next = [0; 8];
    for pair in got.chunks(2) {
        let q: Vec<&str> = pair[0].1.split(' ').collect();
        assert_eq!(pair[0].0, "user");
        assert_eq!(pair[1].1, format!("a {} {}", q[1], q[2]));
        let client: usize = q[1].parse().unwrap();
        assert_eq!(q[2], next[client].to_string());
        next[client] += 1;
    }
    let tenant = tenant_of(&app, &t).await;
    let stored = app
        .store
        .list_messages(
            &tenant,
            Uuid::parse_str(&id).unwrap(),
            &MessageQuery::default(),
        )
        .await
        .unwrap();
    let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (0..80).collect::<Vec<i64>>());
}

#[tokio::test]
async fn racing_creates_with_one_key_make_one_conversation() {
    let app = Arc::new(TestApp::spawn().await);
    let t = app.token("acme").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (app, t) = (app.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            create(
                &app,
                &t,
                json!({"promptId": "p", "content": format!("User: try {i}"), "idempotencyKey": "session_abc123_1705764600"}),
            )
            .await
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap());
    }
    assert_eq!(ids.len(), 1);
    let l = app.get(BASE, &t).await.expect(200);
    assert_eq!(l.body["pagination"]["total"], 1);
    let id = ids.into_iter().next().unwrap();
    assert_eq!(insights_jobs(&app, &id).await, 1);
}

#[tokio::test]
async fn idempotency_returns_the_existing_conversation_per_tenant() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let other = app.token("globex").await;
    let body =
        json!({"promptId": "p", "content": "User: Hello\nAssistant: Hi!", "idempotencyKey": "k1"});
    let first = app.post(BASE, &t, &body).await.expect(200);
    let id = first.body["id"].as_str().unwrap().to_owned();
    // Same key, another body: the existing conversation, as it is now.
    append(
        &app,
        &t,
        &id,
        json!({"messages": [{"role": "user", "content": "more"}]}),
    )
    .await
    .expect(200);
    let again = app
        .post(
            BASE,
            &t,
            &json!({"promptId": "q", "content": "User: different", "idempotencyKey": "k1"}),
        )
        .await
        .expect(200);
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(again.body["promptId"], "p");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(get(&app, &t, &id).await["messageCount"], 3);
    // Keys are scoped to the account.
    let theirs = create(&app, &other, body.clone()).await;
    assert_ne!(theirs, id);
    // Without a key, every call creates.
    let a = create(&app, &t, json!({"promptId": "p", "content": "User: x"})).await;
    let b = create(&app, &t, json!({"promptId": "p", "content": "User: x"})).await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn idempotency_keys_expire_after_24_hours() {
    let offset = Arc::new(AtomicI64::new(0));
    let clock_offset = offset.clone();
    let opts = StoreOptions {
        clock: Arc::new(move || {
            time::OffsetDateTime::now_utc()
                + time::Duration::seconds(clock_offset.load(Ordering::SeqCst))
        }),
        ..StoreOptions::default()
    };
    let dir = common::TestDir::new().await;
    let db = dir.path().join("confab.db");
    let app = TestApp::start(dir, db, ServerConfig::default(), opts).await;
    let t = app.token("acme").await;
    let body = json!({"promptId": "p", "content": "User: hi", "idempotencyKey": "daily"});
    let first = create(&app, &t, body.clone()).await;
    offset.store(24 * 3600 - 60, Ordering::SeqCst);
    assert_eq!(create(&app, &t, body.clone()).await, first);
    offset.store(24 * 3600 + 1, Ordering::SeqCst);
    let later = create(&app, &t, body.clone()).await;
    assert_ne!(later, first);
    // The key now belongs to the new conversation.
    assert_eq!(create(&app, &t, body).await, later);
}

fn assert_error(r: &common::Resp, status: u16, code: &str, field: &str) {
    assert_eq!(r.status.as_u16(), status, "{field}: {}", r.text);
    assert_eq!(r.body["error"]["code"], code, "{}", r.text);
    assert!(r.body["error"]["message"].is_string());
    assert!(
        r.body["error"]["details"].get(field).is_some(),
        "details should name `{field}`: {}",
        r.text
    );
}

#[tokio::test]
async fn create_limits_just_under_and_just_over() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    // 512 KiB of content in messages of under 100 KiB each.
    let mut content = String::new();
    while content.len() < 512 * 1024 {
        content.push_str("User: ");
        content.push_str(&"x".repeat(90 * 1024));
        content.push('\n');
    }
    content.truncate(512 * 1024);
    create(&app, &t, json!({"promptId": "p", "content": content})).await;
    let before = app.table_counts().await;
    content.push('y');
    let r = app
        .post(BASE, &t, &json!({"promptId": "p", "content": content}))
        .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE", "content");

    let structured = |n: usize| {
        json!({"messages": (0..n).map(|i| json!({"role": "user", "content": format!("m{i}")})).collect::<Vec<_>>()})
            .to_string()
    };
    let r = app
        .post(
            BASE,
            &t,
            &json!({"promptId": "p", "content": structured(501)}),
        )
        .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE", "content.messages");
    let text501: String = (0..501).map(|i| format!("User: {i}\n")).collect();
    let r = app
        .post(BASE, &t, &json!({"promptId": "p", "content": text501}))
        .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE", "content");

    let big = |n: usize| {
        json!({"messages": [{"role": "user", "content": "é".repeat(n / 2)}]}).to_string()
    };
    let r = app
        .post(
            BASE,
            &t,
            &json!({"promptId": "p", "content": big(100 * 1024 + 2)}),
        )
        .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE", "content.messages[0].content");
    let r = app
        .post(
            BASE,
            &t,
            &json!({"promptId": "p", "content": format!("User: {}", "x".repeat(100 * 1024 + 1))}),
        )
        .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE", "content");
    assert_eq!(
        app.table_counts().await,
        before,
        "a refused request stored something"
    );

    let id = create(
        &app,
        &t,
        json!({"promptId": "p", "content": structured(500)}),
    )
    .await;
    assert_eq!(get(&app, &t, &id).await["messageCount"], 500);
    let id = create(
        &app,
        &t,
        json!({"promptId": "p", "content": big(100 * 1024)}),
    )
    .await;
    assert_eq!(
        get(&app, &t, &id).await["messages"][0]["content"]
            .as_str()
            .unwrap()
            .len(),
        100 * 1024
    );
    create(
        &app,
        &t,
        json!({"promptId": "p", "content": format!("User: {}", "x".repeat(100 * 1024))}),
    )
    .await;
}

#[tokio::test]
async fn append_limits_just_under_and_just_over() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = open(&app, &t).await;
    let msgs = |n: usize, size: usize| json!({"messages": (0..n).map(|_| json!({"role": "user", "content": "x".repeat(size)})).collect::<Vec<_>>()});
    let r = append(&app, &t, &id, msgs(501, 1)).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE", "messages");
    let r = append(&app, &t, &id, msgs(1, 100 * 1024 + 1)).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE", "messages[0].content");
    // Six messages of 512 KiB / 6 (rounded up) are over 512 KiB together.
    let r = append(&app, &t, &id, msgs(6, 512 * 1024 / 6 + 1)).await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE", "messages");
    assert_eq!(get(&app, &t, &id).await["messageCount"], 0);

    append(&app, &t, &id, msgs(500, 1)).await.expect(200);
    append(&app, &t, &id, msgs(1, 100 * 1024)).await.expect(200);
    let mut at_limit = msgs(5, 100 * 1024);
    at_limit["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "user", "content": "x".repeat(12 * 1024)}));
    let r = append(&app, &t, &id, at_limit).await.expect(200);
    assert_eq!(r.body["messageCount"], 507);
}

#[tokio::test]
async fn bad_create_input_names_the_field_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let before = app.table_counts().await;
    let cases = [
        (json!({"content": "User: hi"}), "promptId"),
        (json!({"promptId": "p"}), "content"),
        (json!({"promptId": "p", "content": null}), "content"),
        (json!({"promptId": "", "content": "User: hi"}), "promptId"),
        (
            json!({"promptName": " ", "content": "User: hi"}),
            "promptName",
        ),
        (
            json!({"promptId": "a", "agentId": "b", "content": "User: hi"}),
            "agentId",
        ),
        (json!({"promptId": "p", "content": ""}), "content"),
        (
            json!({"promptId": "p", "content": "  ", "status": "abandoned"}),
            "content",
        ),
        (
            json!({"promptId": "p", "content": "User: hi", "status": "done"}),
            "status",
        ),
        (json!({"promptId": "p", "content": 42}), "content"),
        (json!({"promptId": 7, "content": "User: hi"}), "promptId"),
        (
            json!({"promptId": "p", "content": "User: hi", "llmModel": 4}),
            "llmModel",
        ),
        (
            json!({"promptId": "p", "content": "User: hi", "llmModel": "m".repeat(300)}),
            "llmModel",
        ),
        (
            json!({"promptId": "p", "content": "User: hi", "companyName": "a\u{0}b"}),
            "companyName",
        ),
        (
            json!({"promptId": "x".repeat(300), "content": "User: hi"}),
            "promptId",
        ),
        (
            json!({"promptId": "p", "content": "User: hi", "idempotencyKey": ""}),
            "idempotencyKey",
        ),
        (
            json!({"promptId": "p", "content": "User: hi", "idempotencyKey": "ü"}),
            "idempotencyKey",
        ),
        (
            json!({"promptId": "p", "content": "User: hi", "colour": "red"}),
            "colour",
        ),
        (
            json!({"promptId": "p", "content": "User: hi\nAssistant:"}),
            "content",
        ),
        (
            json!({"promptId": "p", "content": "User: a\u{0}"}),
            "content",
        ),
        (
            json!({"promptId": "p", "content": "{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}"}),
            "content.messages[0].role",
        ),
        (
            json!({"promptId": "p", "content": "{\"messages\": [{\"role\": \"user\", \"content\": \"\"}]}"}),
            "content.messages[0].content",
        ),
        (
            json!({"promptId": "p", "content": "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"tokens\": -1}]}"}),
            "content.messages[0].tokens",
        ),
        (
            json!({"promptId": "p", "content": "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"toolCalls\": 1}]}"}),
            "content.messages[0].toolCalls",
        ),
        (
            json!({"promptId": "p", "content": "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"metadata\": {\"userId\": 1}}"}),
            "content.metadata.userId",
        ),
        (
            json!({"promptId": "p", "content": "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"metadata\": {\"userId\": \"\"}}"}),
            "content.metadata.userId",
        ),
        (
            json!({"promptId": "p", "content": "{\"messages\": ["}),
            "content.messages",
        ),
        (json!({"promptId": "p", "content": "{oops"}), "content"),
    ];
    for (body, field) in cases {
        let r = app.post(BASE, &t, &body).await;
        assert_error(&r, 400, "VALIDATION_ERROR", field);
    }
    let r = app.post(BASE, &t, &json!({"content": "User: hi"})).await;
    assert_eq!(r.body["error"]["details"]["promptId"], "Required field");
    for raw in ["", "not json", "[1]", "{\"promptId\": \"p\""] {
        let r = app
            .client
            .post(app.url(BASE))
            .bearer_auth(&t)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let r = common::Resp::read(r).await;
        assert_eq!(r.status.as_u16(), 400, "{raw}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "VALIDATION_ERROR");
    }
    assert_eq!(app.table_counts().await, before);
}

#[tokio::test]
async fn bad_append_input_names_the_field_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = open(&app, &t).await;
    let before = app.table_counts().await;
    let m = |extra: Value| {
        let mut base = json!({"role": "user", "content": "x"});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"messages": [base]})
    };
    let cases = [
        (json!({}), "messages"),
        (json!({"messages": []}), "messages"),
        (json!({"messages": "hi"}), "messages"),
        (json!({"messages": [{"content": "x"}]}), "messages[0].role"),
        (m(json!({"role": "bot"})), "messages[0].role"),
        (m(json!({"content": ""})), "messages[0].content"),
        (
            m(json!({"role": "assistant", "content": null})),
            "messages[0].content",
        ),
        (
            m(json!({"role": "tool", "content": ""})),
            "messages[0].content",
        ),
        (
            m(json!({"role": "tool", "content": "", "toolCalls": []})),
            "messages[0].content",
        ),
        (
            m(json!({"toolCalls": {"name": "x"}})),
            "messages[0].toolCalls",
        ),
        (m(json!({"toolCalls": ["x"]})), "messages[0].toolCalls"),
        (
            m(json!({"usage": {"promptTokens": -1}})),
            "messages[0].usage.promptTokens",
        ),
        (
            m(json!({"usage": {"completionTokens": -1}})),
            "messages[0].usage.completionTokens",
        ),
        (m(json!({"usage": {"total": 3}})), "messages[0].usage.total"),
        (m(json!({"latencyMs": -5})), "messages[0].latencyMs"),
        (m(json!({"latencyMs": 1.5})), "messages[0].latencyMs"),
        (m(json!({"tokens": "ten"})), "messages[0].tokens"),
        (m(json!({"timestamp": "noon"})), "messages[0].timestamp"),
        (m(json!({"model": ""})), "messages[0].model"),
        (m(json!({"metadata": [1]})), "messages[0].metadata"),
        (
            m(json!({"metadata": {"k": "a\u{0}"}})),
            "messages[0].metadata",
        ),
        (m(json!({"colour": "red"})), "messages[0].colour"),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "status": "abandoned"}),
            "status",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "metadata": "x"}),
            "metadata",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "extra": 1}),
            "extra",
        ),
    ];
    for (body, field) in cases {
        let r = append(&app, &t, &id, body).await;
        assert_error(&r, 400, "VALIDATION_ERROR", field);
    }
    assert_eq!(app.table_counts().await, before);
}

#[tokio::test]
async fn bad_query_parameters_name_the_parameter() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = open(&app, &t).await;
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("status=done", "status"),
        ("hasInsights=maybe", "hasInsights"),
        ("sort=asc", "sort"),
    ] {
        let r = app.get(&format!("{BASE}?{q}"), &t).await;
        assert_error(&r, 400, "VALIDATION_ERROR", field);
    }
    let r = app
        .get(&format!("{BASE}/{id}?includeInsights=perhaps"), &t)
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR", "includeInsights");
}

#[tokio::test]
async fn not_found_covers_other_accounts_and_unknown_ids() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let other = app.token("globex").await;
    let id = create(
        &app,
        &t,
        json!({"promptId": "p", "content": "User: secret"}),
    )
    .await;
    let before = app.table_counts().await;
    let msg = json!({"messages": [{"role": "user", "content": "x"}]});
    for target in [id.as_str(), "conv_456", &Uuid::now_v7().to_string()] {
        let who = if target == id { &other } else { &t };
        for r in [
            app.get(&format!("{BASE}/{target}"), who).await,
            app.get(&format!("{BASE}/{target}/insights"), who).await,
            append(&app, who, target, msg.clone()).await,
        ] {
            assert_eq!(r.status.as_u16(), 404, "{}", r.text);
            assert_eq!(
                r.body,
                json!({"error": {"code": "NOT_FOUND", "message": "conversation not found"}})
            );
        }
    }
    let l = app.get(BASE, &other).await.expect(200);
    assert_eq!(l.body["pagination"]["total"], 0);
    assert_eq!(app.table_counts().await, before);
}

#[tokio::test]
async fn credentials_are_required() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = open(&app, &t).await;
    let body = json!({"promptId": "p", "content": "User: hi"});
    for (method, path) in [
        (Method::POST, BASE.to_owned()),
        (Method::GET, BASE.to_owned()),
        (Method::GET, format!("{BASE}/{id}")),
        (Method::POST, format!("{BASE}/{id}/messages")),
        (Method::GET, format!("{BASE}/{id}/insights")),
    ] {
        for token in [None, Some("nope"), Some("abc.def")] {
            let r = app.call(method.clone(), &path, token, Some(&body)).await;
            assert_eq!(r.status.as_u16(), 401, "{method} {path}: {}", r.text);
            assert_eq!(r.body["error"]["code"], "UNAUTHORIZED");
        }
    }
}

#[tokio::test]
async fn list_filters_and_pages() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let tenant = tenant_of(&app, &t).await;
    let mut p1 = Vec::new();
    for i in 0..5 {
        p1.push(
            create(
                &app,
                &t,
                json!({"promptId": "p1", "content": format!("User: {i}")}),
            )
            .await,
        );
    }
    for _ in 0..3 {
        create(
            &app,
            &t,
            json!({"promptId": "p2", "content": "", "status": "active"}),
        )
        .await;
    }
    for id in &p1[..2] {
        app.store
            .put_insights(&tenant, insights_for(id))
            .await
            .unwrap();
    }
    let l = app.get(BASE, &t).await.expect(200).body;
    assert_eq!(
        l["pagination"],
        json!({"total": 8, "limit": 20, "offset": 0})
    );
    let data = l["data"].as_array().unwrap();
    assert_eq!(data.len(), 8);
    let item = &data[7];
    assert_eq!(item["id"], p1[0].as_str(), "newest first");
    assert_eq!(item["promptId"], "p1");
    assert_eq!(item["status"], "completed");
    assert_eq!(item["hasInsights"], true);
    assert!(item["createdAt"].is_string());
    assert_eq!(data[0]["hasInsights"], false);

    let count = |q: &'static str| {
        let app = &app;
        let t = &t;
        async move {
            let b = app.get(&format!("{BASE}?{q}"), t).await.expect(200).body;
            (
                b["pagination"]["total"].as_i64().unwrap(),
                b["data"].as_array().unwrap().len(),
            )
        }
    };
    assert_eq!(count("promptId=p1").await, (5, 5));
    assert_eq!(count("status=active").await, (3, 3));
    assert_eq!(count("status=completed&promptId=p2").await, (0, 0));
    assert_eq!(count("hasInsights=true").await, (2, 2));
    assert_eq!(count("hasInsights=false").await, (6, 6));
    assert_eq!(count("limit=3").await, (8, 3));
    assert_eq!(count("offset=7").await, (8, 1));
    assert_eq!(count("offset=20").await, (8, 0));
    let page = app
        .get(&format!("{BASE}?promptId=p1&limit=2&offset=2"), &t)
        .await
        .expect(200)
        .body;
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [p1[2].as_str(), p1[1].as_str()]);
    assert_eq!(
        page["pagination"],
        json!({"total": 5, "limit": 2, "offset": 2})
    );
    let hundred = app.get(&format!("{BASE}?limit=100"), &t).await.expect(200);
    assert_eq!(hundred.body["pagination"]["limit"], 100);
}

#[tokio::test]
async fn insights_route_and_include_insights() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let tenant = tenant_of(&app, &t).await;
    let id = create(&app, &t, json!({"promptId": "p", "content": "User: hi"})).await;
    let r = app
        .get(&format!("{BASE}/{id}/insights"), &t)
        .await
        .expect(404);
    assert_eq!(r.body["error"]["code"], "INSIGHTS_NOT_READY");
    assert_eq!(r.body["error"]["details"]["reason"], "pending");
    let live = open(&app, &t).await;
    let r = app
        .get(&format!("{BASE}/{live}/insights"), &t)
        .await
        .expect(404);
    assert_eq!(r.body["error"]["details"]["reason"], "not_completed");

    app.store
        .put_insights(&tenant, insights_for(&id))
        .await
        .unwrap();
    let r = app
        .get(&format!("{BASE}/{id}/insights"), &t)
        .await
        .expect(200);
    assert_eq!(
        r.body,
        json!({
            "conversationId": id,
            "sentiment": "positive",
            "sentimentScore": 0.82,
            "taskCompleted": true,
            "topics": ["greeting", "product inquiry"],
            "summary": "User asked about availability.",
            "issues": [{"code": "slow_reply", "text": "One reply was slow"}],
            "createdAt": "2025-01-20T14:35:00.000000Z"
        })
    );
    let c = get(&app, &t, &id).await;
    assert_eq!(c["insights"]["sentiment"], "positive");
    assert_eq!(c["insights"]["taskCompleted"], true);
    let c = app
        .get(&format!("{BASE}/{id}?includeInsights=true"), &t)
        .await
        .expect(200);
    assert_eq!(
        c.body["insights"]["summary"],
        "User asked about availability."
    );
    let c = app
        .get(&format!("{BASE}/{id}?includeInsights=false"), &t)
        .await
        .expect(200);
    assert!(!c.body.as_object().unwrap().contains_key("insights"));
}

#[tokio::test]
async fn conversations_survive_a_restart() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = open(&app, &t).await;
    append(
        &app,
        &t,
        &id,
        json!({"messages": [{"role": "user", "content": "before"}]}),
    )
    .await
    .expect(200);
    let app = app.restart().await;
    let a = append(
        &app,
        &t,
        &id,
        json!({"messages": [{"role": "assistant", "content": "after"}], "status": "completed"}),
    )
    .await
    .expect(200);
    assert_eq!(a.body["content"], "User: before\nAssistant: after");
    assert_eq!(insights_jobs(&app, &id).await, 1);
}

#[tokio::test]
async fn a_read_only_key_cannot_write() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = open(&app, &t).await;
    let ro = app
        .token_with(
            "acme",
            confab_core::Scopes::default().with(confab_core::Scope::Read),
        )
        .await;
    let r = app
        .post(BASE, &ro, &json!({"promptId": "p", "content": "User: hi"}))
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text);
    let r = append(
        &app,
        &ro,
        &id,
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.body["error"]["code"], "FORBIDDEN");
    app.get(&format!("{BASE}/{id}"), &ro).await.expect(200);
}

#[tokio::test]
async fn the_routes_are_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc = common::Resp::read(r).await.expect(200).body;
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/conversations", "post"),
        ("/api/v1/conversations", "get"),
        ("/api/v1/conversations/{id}", "get"),
        ("/api/v1/conversations/{id}/messages", "post"),
        ("/api/v1/conversations/{id}/insights", "get"),
    ] {
        let op = &paths[path][method];
        assert_eq!(op["tags"][0], "converra", "{method} {path}");
    }
    // Operation ids and schema names share one namespace with the native API, so ours carry a
    // prefix and must each be unique.
    let ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op.get("operationId").and_then(Value::as_str))
        .collect();
    for ours in [
        "converra_create",
        "converra_list",
        "converra_get",
        "converra_append",
        "converra_insights",
    ] {
        assert_eq!(ids.iter().filter(|id| **id == ours).count(), 1, "{ours}");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ConverraCreate",
        "ConverraCreated",
        "ConverraAppend",
        "ConverraConversation",
        "ConverraList",
        "ConverraInsights",
        "StructuredMessage",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
}

/// A small deterministic generator, so the fuzz test below is repeatable without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }

    fn value(&mut self, depth: u32) -> Value {
        let strings = [
            "",
            " ",
            "User: hi",
            "User:\nAI: yo",
            "Assistant:",
            "{\"messages\":[]}",
            "{\"messages\":[{\"role\":\"tool\"}]}",
            "{",
            "completed",
            "active",
            "abandoned",
            "user",
            "tool",
            "2025-01-20T14:30:00Z",
            "a\u{0}b",
            "ü",
            "p1",
        ];
        match self.next() % if depth > 1 { 5 } else { 7 } {
            0 => Value::Null,
            1 => json!(self.next().is_multiple_of(3)),
            2 => json!((self.next() % 2000) as i64 - 1000),
            3 => json!(1.5),
            4 => json!(*self.pick(&strings)),
            5 => Value::Array(
                (0..self.next() % 3)
                    .map(|_| self.value(depth + 1))
                    .collect(),
            ),
            _ => self.object(depth + 1),
        }
    }

    fn object(&mut self, depth: u32) -> Value {
        let mut m = serde_json::Map::new();
        for _ in 0..self.next() % 4 {
            m.insert((*self.pick(KEYS)).to_owned(), self.value(depth));
        }
        Value::Object(m)
    }

    /// A valid body with up to two fields removed, replaced or added at random.
    fn mutate(&mut self, mut v: Value) -> Value {
        for _ in 0..self.next() % 3 {
            let target = if v.get("messages").is_some_and(Value::is_array)
                && self.next().is_multiple_of(2)
            {
                &mut v["messages"][0]
            } else {
                &mut v
            };
            let Some(obj) = target.as_object_mut() else {
                continue;
            };
            let key = (*self.pick(KEYS)).to_owned();
            if self.next().is_multiple_of(3) {
                obj.remove(&key);
            } else {
                obj.insert(key, self.value(1));
            }
        }
        v
    }
}

const KEYS: &[&str] = &[
    "promptId",
    "agentId",
    "systemPromptId",
    "promptName",
    "content",
    "status",
    "llmModel",
    "companyName",
    "idempotencyKey",
    "messages",
    "metadata",
    "role",
    "toolCalls",
    "usage",
    "latencyMs",
    "tokens",
    "timestamp",
    "model",
    "x",
];

#[tokio::test]
async fn arbitrary_bodies_never_get_a_5xx_or_store_half_a_request() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = open(&app, &t).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut created, mut appended) = (0, 0);
    for _ in 0..300 {
        let content = *rng.pick(&[
            "User: hi\nAssistant: hello",
            "Human: a\nAI: b",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"metadata\":{\"userId\":\"u\"}}",
        ]);
        let body = rng.mutate(json!({"promptId": "p1", "content": content}));
        let r = app.post(BASE, &t, &body).await;
        assert!(
            [200, 400, 413].contains(&r.status.as_u16()),
            "{body}: {}",
            r.text
        );
        if r.status == 200 && r.headers.get("idempotent-replayed").is_none() {
            created += 1;
        }
        let body = rng.mutate(json!({"messages": [{"role": "user", "content": "hi"}]}));
        let r = append(&app, &t, &id, body.clone()).await;
        assert!(
            [200, 400, 413].contains(&r.status.as_u16()),
            "{body}: {}",
            r.text
        );
        if r.status == 200 {
            appended += body["messages"].as_array().unwrap().len();
        }
    }
    // Both outcomes must occur, or the test proves nothing.
    assert!(created > 20 && appended > 20, "{created} {appended}");
    let l = app.get(BASE, &t).await.expect(200);
    assert_eq!(l.body["pagination"]["total"], created + 1);
    assert_eq!(get(&app, &t, &id).await["messageCount"], appended);
}
