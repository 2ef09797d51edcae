//! Summary, daily series and the per-conversation report over HTTP.

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn summary_counts_and_breaks_down() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let empty = app.get("/v1/analytics/summary", &t).await.expect(200).body;
    assert_eq!(empty["conversations"], 0);
    assert_eq!(empty["avg_messages_per_conversation"], 0.0);
    let msgs = |n: usize| -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| json!({"role": "user", "content": format!("m{i}")}))
            .collect()
    };
    for (agent, source, status, n, created) in [
        (Some("a"), Some("web"), "completed", 3, None),
        (Some("a"), Some("web"), "active", 1, None),
        (Some("b"), None, "active", 2, Some("2020-01-01T00:00:00Z")),
    ] {
        app.post(
            "/v1/conversations",
            &t,
            &json!({"agent_id": agent, "source": source, "status": status,
                    "created_at": created, "messages": msgs(n)}),
        )
        .await
        .expect(201);
    }
    app.post(
        "/v1/conversations",
        &app.token("globex").await,
        &json!({"messages": msgs(9)}),
    )
    .await
    .expect(201);
    let s = app.get("/v1/analytics/summary", &t).await.expect(200).body;
    assert_eq!(s["conversations"], 3);
    assert_eq!(s["messages"], 6);
    assert_eq!(s["last_24h"], 2);
    assert_eq!(s["last_7d"], 2);
    assert_eq!(s["avg_messages_per_conversation"], 2.0);
    assert_eq!(
        s["by_status"],
        json!({"active": 2, "abandoned": 0, "completed": 1, "in_progress": 0})
    );
    assert_eq!(
        s["by_source"],
        json!([{"source": "web", "conversations": 2, "messages": 4},
               {"source": null, "conversations": 1, "messages": 2}])
    );
    assert_eq!(
        s["by_agent"],
        json!([{"agent_id": "a", "conversations": 2, "messages": 4},
               {"agent_id": "b", "conversations": 1, "messages": 2}])
    );
}

#[tokio::test]
async fn daily_ends_today() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    app.post(
        "/v1/conversations",
        &t,
        &json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await
    .expect(201);
    let d = app
        .get("/v1/analytics/daily?days=7", &t)
        .await
        .expect(200)
        .body;
    let pts = d["data"].as_array().unwrap();
    assert_eq!(pts.len(), 7);
    let today = confab_core::timefmt::rfc3339(confab_core::timefmt::now())[..10].to_owned();
    assert_eq!(pts[6]["date"], today.as_str());
    assert_eq!(pts[6]["conversations"], 1);
    assert_eq!(pts[6]["messages"], 1);
    assert!(pts[0]["date"].as_str().unwrap() < pts[1]["date"].as_str().unwrap());
    assert_eq!(
        app.get("/v1/analytics/daily", &t).await.expect(200).body["data"]
            .as_array()
            .unwrap()
            .len(),
        30
    );
    let r = app.get("/v1/analytics/daily?days=0", &t).await.expect(400);
    assert!(r.body["error"]["details"]["days"].is_string());
}

#[tokio::test]
async fn report_matches_the_seed() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let r = app
        .post(
            "/v1/conversations",
            &t,
            &json!({"title": "Order help", "messages": [
                {"role": "user", "content": "abcd", "created_at": "2025-01-01T10:00:00Z"},
                {"role": "assistant", "content": "ab", "created_at": "2025-01-01T10:01:00Z"},
                {"role": "user", "content": "abcdef", "created_at": "2025-01-01T10:02:30Z"},
            ]}),
        )
        .await
        .expect(201);
    let id = r.body["id"].as_str().unwrap();
    let rep = app
        .get(&format!("/v1/conversations/{id}/report"), &t)
        .await
        .expect(200)
        .body;
    assert_eq!(rep["id"], id);
    assert_eq!(rep["title"], "Order help");
    let s = &rep["stats"];
    assert_eq!(s["total_messages"], 3);
    assert_eq!(s["user_messages"], 2);
    assert_eq!(s["assistant_messages"], 1);
    assert_eq!(s["avg_message_length"], 4.0);
    assert_eq!(s["duration_ms"], 150_000);
    assert_eq!(s["duration_minutes"], 2);
    assert_eq!(s["first_message_at"], "2025-01-01T10:00:00.000000Z");
    let other = app.token("globex").await;
    app.get(&format!("/v1/conversations/{id}/report"), &other)
        .await
        .expect(404);
}

/// Summaries asked for at once by two tenants: each gets its own tenant's numbers, and every
/// summary asked for after a write has returned counts that write. The waiting summaries of a
/// tenant share one query (the store's `postgres/summary_batch.rs` and `sqlite/summaries.rs`),
/// so this pins that sharing never crosses tenants nor serves an answer older than the request.
#[tokio::test]
async fn concurrent_summaries_are_each_tenants_own_and_never_stale() {
    let app = TestApp::spawn().await;
    let tokens = [app.token("acme").await, app.token("globex").await];
    for (who, t) in tokens.iter().enumerate() {
        for _ in 0..(2 + 3 * who) {
            app.post("/v1/conversations", t, &json!({}))
                .await
                .expect(201);
        }
    }
    let burst = |expected: [i64; 2]| {
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let who = i % 2;
                let client = app.client.clone();
                let url = app.url("/v1/analytics/summary");
                let t = tokens[who].clone();
                tokio::spawn(async move {
                    let r =
                        common::Resp::read(client.get(&url).bearer_auth(&t).send().await.unwrap())
                            .await
                            .expect(200);
                    assert_eq!(r.body["conversations"], expected[who], "tenant {who}");
                })
            })
            .collect::<Vec<_>>();
        async move {
            for task in tasks {
                task.await.unwrap();
            }
        }
    };
    burst([2, 5]).await;
    // A write that has returned is in every summary asked for after it.
    app.post("/v1/conversations", &tokens[0], &json!({}))
        .await
        .expect(201);
    burst([3, 5]).await;
}
