//! The native API over HTTP: the happy paths, pagination, idempotency, concurrency, restart.

mod common;

use std::collections::HashSet;

use common::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

async fn create(app: &TestApp, t: &str, body: Value) -> Value {
    app.post("/v1/conversations", t, &body)
        .await
        .expect(201)
        .body
}

#[tokio::test]
async fn create_with_messages_then_read_everything_back() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let c = create(
        &app,
        &t,
        json!({
            "agent_id": "support-bot", "user_id": "u1", "source": "web", "model": "gpt-4o",
            "company_name": "Acme", "added_to_memory": true, "metadata": {"plan": "pro"},
            "created_at": "2025-01-15T10:30:00.123456+02:00",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Help with billing, please", "created_at": "2025-01-15T08:30:01Z"},
                {"role": "assistant", "content": "Sure.", "model": "gpt-4o", "tokens": 12, "prompt_tokens": 8,
                 "completion_tokens": 4, "latency_ms": 350, "metadata": {"k": 1}, "source": "api"},
                {"role": "tool", "content": "", "tool_calls": [{"name": "lookup", "arguments": {"id": 7}}]},
                {"role": "user", "content": "go", "is_trigger": true}
            ]
        }),
    )
    .await;
    assert_eq!(c["status"], "active");
    assert_eq!(c["message_count"], 5);
    assert_eq!(c["title"], "Help with billing, please");
    assert_eq!(c["created_at"], "2025-01-15T08:30:00.123456Z");
    assert_eq!(c["added_to_memory"], true);
    let id = c["id"].as_str().unwrap();
    let got = app
        .get(&format!("/v1/conversations/{id}"), &t)
        .await
        .expect(200)
        .body;
    assert_eq!(got, c);
    let msgs = app
        .get(&format!("/v1/conversations/{id}/messages"), &t)
        .await
        .expect(200)
        .body;
    let data = msgs["data"].as_array().unwrap();
    assert_eq!(data.len(), 5);
    assert_eq!(msgs["next_cursor"], Value::Null);
    let seqs: Vec<i64> = data.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
    assert_eq!(data[1]["created_at"], "2025-01-15T08:30:01.000000Z");
    assert_eq!(
        data[1]["source"], "web",
        "a message inherits its conversation's source"
    );
    assert_eq!(data[2]["source"], "api", "unless it gives its own");
    assert_eq!(data[2]["tokens"], 12);
    assert_eq!(data[2]["latency_ms"], 350);
    assert_eq!(data[2]["metadata"], json!({"k": 1}));
    assert_eq!(
        data[3]["tool_calls"],
        json!([{"name": "lookup", "arguments": {"id": 7}}])
    );
    assert_eq!(data[4]["is_trigger"], true);
}

#[tokio::test]
async fn append_changes_status_and_merges_metadata() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let c = create(&app, &t, json!({"metadata": {"a": 1, "b": 2}})).await;
    assert_eq!(c["title"], Value::Null);
    let id = c["id"].as_str().unwrap();
    let path = format!("/v1/conversations/{id}/messages");
    let r = app
        .post(&path, &t, &json!({"messages": [{"role": "user", "content": "Where is my order?"}], "metadata": {"b": null, "c": 3}}))
        .await
        .expect(200)
        .body;
    assert_eq!(r["message_count"], 1);
    assert_eq!(r["metadata"], json!({"a": 1, "c": 3}));
    assert_eq!(
        r["title"], "Where is my order?",
        "title derived from the first user message"
    );
    let r = app
        .post(&path, &t, &json!({"messages": [{"role": "assistant", "content": "On its way."}], "status": "completed"}))
        .await
        .expect(200)
        .body;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["message_count"], 2);
    assert!(r["completed_at"].is_string());
}

#[tokio::test]
async fn patch_and_delete_leave_nothing_behind() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let before = app.table_counts().await;
    let c = create(
        &app,
        &t,
        json!({"agent_id": "a", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}),
    )
    .await;
    let id = c["id"].as_str().unwrap();
    let p = app
        .call(
            Method::PATCH,
            &format!("/v1/conversations/{id}"),
            Some(&t),
            Some(&json!({"title": "Renamed", "status": "completed", "metadata": {"x": true}, "added_to_memory": true})),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(p["title"], "Renamed");
    assert_eq!(p["status"], "completed");
    assert_eq!(p["metadata"], json!({"x": true}));
    let p = app
        .call(
            Method::PATCH,
            &format!("/v1/conversations/{id}"),
            Some(&t),
            Some(&json!({"title": null})),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(p["title"], Value::Null);
    // An idempotent append, so an idempotency row refers to the conversation too.
    let r = app
        .client
        .post(app.url(&format!("/v1/conversations/{id}/messages")))
        .bearer_auth(&t)
        .header("Idempotency-Key", "k1")
        .json(&json!({"messages": [{"role": "user", "content": "more"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.call(
        Method::DELETE,
        &format!("/v1/conversations/{id}"),
        Some(&t),
        None,
    )
    .await
    .expect(204);
    app.get(&format!("/v1/conversations/{id}"), &t)
        .await
        .expect(404);
    app.get(&format!("/v1/conversations/{id}/messages"), &t)
        .await
        .expect(404);
    app.call(
        Method::DELETE,
        &format!("/v1/conversations/{id}"),
        Some(&t),
        None,
    )
    .await
    .expect(404);
    // Agents are shared, so they stay. PostgreSQL's `search_changes` (postgres/kept.rs) holds,
    // for a minute or two, that a transaction changed the tenant's messages: the tenant and
    // the transaction's id, nothing of the conversation.
    let compared = |n: &String| n != "agents" && n != "search_changes";
    let after: Vec<(String, i64)> = app
        .table_counts()
        .await
        .into_iter()
        .filter(|(n, _)| compared(n))
        .collect();
    let before: Vec<(String, i64)> = before.into_iter().filter(|(n, _)| compared(n)).collect();
    assert_eq!(
        after, before,
        "every row of the conversation is gone (agents are kept: they are shared)"
    );
}

#[tokio::test]
async fn list_filters_and_paginates_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let mut ids = Vec::new();
    for i in 0..57 {
        // Several share a created_at, so the id tiebreak is exercised.
        let ts = format!("2025-02-01T00:00:{:02}Z", i / 3);
        let c = create(
            &app,
            &t,
            json!({"created_at": ts, "agent_id": if i % 2 == 0 { "even" } else { "odd" },
                   "user_id": format!("u{}", i % 5), "source": if i % 3 == 0 { "web" } else { "telegram" },
                   "status": if i % 4 == 0 { "completed" } else { "active" }}),
        )
        .await;
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/conversations?limit=10&cursor={c}"),
            None => "/v1/conversations?limit=10".into(),
        };
        let r = app.get(&path, &t).await.expect(200).body;
        pages += 1;
        for c in r["data"].as_array().unwrap() {
            seen.push((
                c["created_at"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
            ));
        }
        match r["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 6);
    assert_eq!(seen.len(), 57);
    let unique: HashSet<_> = seen.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(unique.len(), 57, "no repeats");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, ties by id");

    let count = |q: &'static str| {
        let app = &app;
        let t = t.clone();
        async move {
            app.get(&format!("/v1/conversations?limit=100&{q}"), &t)
                .await
                .expect(200)
                .body["data"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(count("agent_id=even").await, 29);
    assert_eq!(count("user_id=u3").await, 11);
    assert_eq!(count("source=web").await, 19);
    assert_eq!(count("status=completed").await, 15);
    assert_eq!(count("status=completed&agent_id=even").await, 15);
    assert_eq!(count("created_after=2025-02-01T00:00:10Z").await, 27);
    assert_eq!(count("created_before=2025-02-01T00:00:10Z").await, 30);
    assert_eq!(count("agent_id=nobody").await, 0);
}

#[tokio::test]
async fn messages_page_in_both_directions() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let msgs: Vec<Value> = (0..23).map(|i| json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": format!("m{i}")})).collect();
    let c = create(&app, &t, json!({"messages": msgs})).await;
    let id = c["id"].as_str().unwrap();
    for (order, expect) in [
        ("asc", (0..23).collect::<Vec<i64>>()),
        ("desc", (0..23).rev().collect()),
    ] {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/conversations/{id}/messages?limit=5&order={order}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let r = app.get(&path, &t).await.expect(200).body;
            got.extend(
                r["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["seq"].as_i64().unwrap()),
            );
            match r["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(got, expect, "order={order}");
    }
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_and_scope() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let other = app.token("globex").await;
    let send = |token: &str, key: &str, body: Value| {
        app.client
            .post(app.url("/v1/conversations"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let body = json!({"title": "once", "messages": [{"role": "user", "content": "hi"}]});
    let first = common::Resp::read(send(&t, "key-1", body.clone()).await.unwrap())
        .await
        .expect(201);
    let again = common::Resp::read(send(&t, "key-1", body.clone()).await.unwrap())
        .await
        .expect(201);
    assert_eq!(again.body, first.body, "the first answer, replayed");
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    // Key order inside the body does not make it another request.
    let reordered: Value =
        serde_json::from_str(r#"{"messages":[{"content":"hi","role":"user"}],"title":"once"}"#)
            .unwrap();
    common::Resp::read(send(&t, "key-1", reordered).await.unwrap())
        .await
        .expect(201);
    let other_body =
        common::Resp::read(send(&t, "key-1", json!({"title": "twice"})).await.unwrap())
            .await
            .expect(422);
    assert_eq!(other_body.body["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
    let fresh = common::Resp::read(send(&t, "key-2", body.clone()).await.unwrap())
        .await
        .expect(201);
    assert_ne!(fresh.body["id"], first.body["id"]);
    // Another tenant's identical key is its own.
    let theirs = common::Resp::read(send(&other, "key-1", body.clone()).await.unwrap())
        .await
        .expect(201);
    assert_ne!(theirs.body["id"], first.body["id"]);
    let list = app.get("/v1/conversations", &t).await.expect(200).body;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        2,
        "one row per distinct key"
    );
    let bad = common::Resp::read(send(&t, "", body.clone()).await.unwrap())
        .await
        .expect(400);
    assert!(bad.body["error"]["details"]["Idempotency-Key"].is_string());
}

#[tokio::test]
async fn concurrent_idempotent_creates_execute_once() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = app.client.clone();
        let url = app.url("/v1/conversations");
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(t)
                .header("Idempotency-Key", "race")
                .json(&json!({"title": "race"}))
                .send()
                .await
                .unwrap();
            common::Resp::read(r).await
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        let r = task.await.unwrap();
        assert!(r.status == 201 || r.status == 409, "{}", r.text);
        if r.status == 201 {
            ids.insert(r.body["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), 1);
    let list = app.get("/v1/conversations", &t).await.expect(200).body;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn thirty_two_concurrent_appenders_all_land_in_order() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let c = create(&app, &t, json!({})).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let per_writer = 10;
    let mut tasks = Vec::new();
    for w in 0..32 {
        let client = app.client.clone();
        let url = app.url(&format!("/v1/conversations/{id}/messages"));
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let r = client
                    .post(&url)
                    .bearer_auth(&t)
                    .json(&json!({"messages": [{"role": "user", "content": format!("w{w}-{i}")}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = 32 * per_writer;
    let conv = app
        .get(&format!("/v1/conversations/{id}"), &t)
        .await
        .expect(200)
        .body;
    assert_eq!(conv["message_count"], total);
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/conversations/{id}/messages?limit=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = app.get(&path, &t).await.expect(200).body;
        all.extend(r["data"].as_array().unwrap().clone());
        match r["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let seqs: Vec<i64> = all.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (0..total).collect::<Vec<i64>>());
    let contents: HashSet<String> = all
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        contents.len(),
        total as usize,
        "every append landed exactly once"
    );
    // Each writer's own messages keep their order.
    for w in 0..32 {
        let mine: Vec<String> = all
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .filter(|c| c.starts_with(&format!("w{w}-")))
            .collect();
        let expect: Vec<String> = (0..per_writer).map(|i| format!("w{w}-{i}")).collect();
        assert_eq!(mine, expect);
    }
}

#[tokio::test]
async fn text_round_trips_byte_for_byte() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let nasty = "quotes \" ' `; DROP TABLE messages; -- \\ emoji 👩‍💻🎉 combining e\u{301} RTL \u{202e}abc \
                 controls \u{1}\u{7}\t\r\n bidi \u{200b} ünïcödé 中文 日本語 𝔘𝔫𝔦";
    let c = create(&app, &t, json!({"title": nasty, "metadata": {nasty: nasty}, "messages": [{"role": "user", "content": nasty}]})).await;
    let id = c["id"].as_str().unwrap();
    assert_eq!(c["title"], nasty);
    let m = app
        .get(&format!("/v1/conversations/{id}/messages"), &t)
        .await
        .expect(200)
        .body;
    assert_eq!(m["data"][0]["content"], nasty);
    let g = app
        .get(&format!("/v1/conversations/{id}"), &t)
        .await
        .expect(200)
        .body;
    assert_eq!(g["metadata"][nasty], nasty);
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let c = create(
        &app,
        &t,
        json!({"messages": [{"role": "user", "content": "persist me"}]}),
    )
    .await;
    let id = c["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/conversations/{id}/messages"),
        &t,
        &json!({"messages": [{"role": "assistant", "content": "ok"}]}),
    )
    .await
    .expect(200);
    let app = app.restart().await;
    let g = app
        .get(&format!("/v1/conversations/{id}"), &t)
        .await
        .expect(200)
        .body;
    assert_eq!(g["message_count"], 2);
    let m = app
        .get(&format!("/v1/conversations/{id}/messages"), &t)
        .await
        .expect(200)
        .body;
    assert_eq!(m["data"][1]["content"], "ok");
    // And appends continue from the right seq.
    app.post(
        &format!("/v1/conversations/{id}/messages"),
        &t,
        &json!({"messages": [{"role": "user", "content": "again"}]}),
    )
    .await
    .expect(200);
    let m = app
        .get(&format!("/v1/conversations/{id}/messages"), &t)
        .await
        .expect(200)
        .body;
    assert_eq!(m["data"][2]["seq"], 2);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let r = common::Resp::read(app.client.get(app.url("/healthz")).send().await.unwrap())
        .await
        .expect(200);
    assert_eq!(r.body["status"], "ok");
    let r = common::Resp::read(app.client.get(app.url("/readyz")).send().await.unwrap())
        .await
        .expect(200);
    let expected = if common::on_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(r.body["database"], expected);
    let m = app.metrics().await;
    assert!(m.contains("confab_http_requests_total"), "{m}");
}

#[tokio::test]
async fn made_up_methods_share_one_metrics_series() {
    let app = TestApp::spawn().await;
    for token in ["BREW", "WHEN"] {
        let method = reqwest::Method::from_bytes(token.as_bytes()).unwrap();
        let r = app
            .client
            .request(method, app.url("/no/such/route"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let m = app.metrics().await;
    assert!(m.contains(r#"method="OTHER""#), "{m}");
    assert!(!m.contains("BREW") && !m.contains("WHEN"), "{m}");
}

/// The group-commit batch size is a count of writes: its buckets are counts up to 512 (the
/// latency buckets began at 0.0005 and ended at 10, so every batch of more than ten writes
/// landed in `+Inf` alone).
#[tokio::test]
async fn commit_batch_sizes_are_counted_in_writes() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let c = create(&app, &t, json!({"agent_id": "a"})).await;
    let id = c["id"].as_str().unwrap();
    // An append is a batched write on both backends.
    app.post(
        &format!("/v1/conversations/{id}/messages"),
        &t,
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect(200);
    let m = app.metrics().await;
    let bucket = |le: &str| -> u64 {
        let key = format!("confab_store_commit_batch_size_bucket{{le=\"{le}\"}} ");
        let line = m
            .lines()
            .find(|l| l.starts_with(&key))
            .unwrap_or_else(|| panic!("{key}: {m}"));
        line[key.len()..].parse().unwrap()
    };
    assert!(bucket("1") >= 1, "{m}");
    // This test's batches are small: all of them are within the largest count bucket.
    assert_eq!(bucket("512"), bucket("+Inf"), "{m}");
    assert!(
        !m.contains("confab_store_commit_batch_size_bucket{le=\"0.0005\"}"),
        "{m}"
    );
}
