//! Insights end to end: the durable queue, the worker, the built-in and LLM analyzers, and the
//! native routes, driven over HTTP against the real server (and the store directly where a
//! test has to play a dying worker).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestApp;
use confab_core::Status;
use confab_core::input::{NewConversation, NewMessage};
use confab_core::{Role, Scopes};
use confab_server::ServerConfig;
use confab_server::insights::{InsightsConfig, LlmConfig};
use confab_store::{FailOutcome, RetryPolicy, Store, StoreOptions, TenantId};
use serde_json::{Value, json};

/// Generous: the machine is shared and debug builds are slow; polling ends as soon as it can.
const DEADLINE: Duration = Duration::from_secs(30);

fn config(workers: usize, llm: Option<LlmConfig>) -> ServerConfig {
    ServerConfig {
        insights: InsightsConfig {
            workers,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(20),
            llm,
            ..InsightsConfig::default()
        },
        ..ServerConfig::default()
    }
}

/// Polls `f` until it answers `Some`, failing the test at the deadline.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn insights_of(app: &TestApp, token: &str, id: &str) -> Value {
    let path = format!("/v1/conversations/{id}/insights");
    eventually("insights", || async {
        let r = app.get(&path, token).await;
        (r.status == 200).then_some(r.body)
    })
    .await
}

fn happy() -> Value {
    json!([
        {"role": "system", "content": "You are a support assistant."},
        {"role": "user", "content": "Hi, I need to change the shipping address on order 5521."},
        {"role": "assistant", "content": "Sure, I have updated the shipping address on order 5521 to the new one.", "latency_ms": 900},
        {"role": "user", "content": "Perfect, thank you so much! Great service."}
    ])
}

fn angry() -> Value {
    json!([
        {"role": "user", "content": "My internet has been down for three days and nobody fixed it."},
        {"role": "assistant", "content": "I'm sorry to hear that. Have you restarted the router?", "latency_ms": 15000},
        {"role": "user", "content": "Yes, twice. This is useless and I am really angry. Let me talk to a real person!"}
    ])
}

async fn create(app: &TestApp, token: &str, status: &str, agent: &str, messages: Value) -> String {
    let r = app
        .post(
            "/v1/conversations",
            token,
            &json!({"status": status, "agent_id": agent, "messages": messages}),
        )
        .await
        .expect(201);
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn completed_conversations_get_insights_that_lists_filter_and_analytics_aggregate() {
    let app = TestApp::spawn_with(config(1, None)).await;
    let t = app.token("acme").await;
    let good = create(&app, &t, "completed", "support-bot", happy()).await;
    let bad = create(&app, &t, "active", "network-bot", angry()).await;
    let open = create(&app, &t, "active", "support-bot", happy()).await;

    let i = insights_of(&app, &t, &good).await;
    assert_eq!(i["conversation_id"], good.as_str());
    assert_eq!(i["sentiment"], "positive", "{i}");
    assert_eq!(i["task_completed"], true, "{i}");
    assert_eq!(i["analyzer"], "builtin");
    assert_eq!(i["issues"], json!([]), "{i}");
    let topics = i["topics"].as_array().unwrap();
    assert!(!topics.is_empty() && topics.len() <= 5, "{i}");
    assert!(
        topics
            .iter()
            .any(|t| t.as_str().unwrap().contains("shipping address")),
        "{i}"
    );
    let summary = i["summary"].as_str().unwrap();
    assert!(!summary.is_empty() && summary.chars().count() <= 400);
    assert!(
        !summary.contains("support assistant"),
        "system prompts are not summarised: {summary}"
    );

    // Completing through PATCH enqueues in the same transaction.
    app.call(
        reqwest::Method::PATCH,
        &format!("/v1/conversations/{bad}"),
        Some(&t),
        Some(&json!({"status": "completed"})),
    )
    .await
    .expect(200);
    let i = insights_of(&app, &t, &bad).await;
    assert_eq!(i["sentiment"], "negative", "{i}");
    assert_eq!(i["task_completed"], false, "{i}");
    let codes: Vec<&str> = i["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["code"].as_str().unwrap())
        .collect();
    for want in [
        "user_frustration",
        "escalation_requested",
        "assistant_apology",
        "slow_reply",
    ] {
        assert!(codes.contains(&want), "{want} missing: {codes:?}");
    }

    // An open conversation has no insights.
    let r = app
        .get(&format!("/v1/conversations/{open}/insights"), &t)
        .await
        .expect(404);
    assert_eq!(r.body["error"]["code"], "NOT_FOUND");

    let ids = |r: common::Resp| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(app
            .get("/v1/conversations?sentiment=positive", &t)
            .await
            .expect(200)),
        vec![good.clone()]
    );
    assert_eq!(
        ids(app
            .get("/v1/conversations?sentiment=negative", &t)
            .await
            .expect(200)),
        vec![bad.clone()]
    );
    assert_eq!(
        ids(app
            .get("/v1/conversations?task_completed=false", &t)
            .await
            .expect(200)),
        vec![bad.clone()]
    );
    assert_eq!(
        ids(app
            .get(
                "/v1/conversations?task_completed=true&agent_id=support-bot",
                &t
            )
            .await
            .expect(200)),
        vec![good.clone()]
    );
    let r = app
        .get("/v1/conversations?sentiment=glum", &t)
        .await
        .expect(400);
    assert!(r.text.contains("sentiment"), "{}", r.text);

    let a = app.get("/v1/analytics/insights", &t).await.expect(200).body;
    assert_eq!(a["conversations"], 2, "{a}");
    assert_eq!(
        a["sentiment"],
        json!({"positive": 1, "neutral": 0, "negative": 1, "mixed": 0})
    );
    assert_eq!(a["completion_rate"], 0.5);
    assert!(
        a["top_topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["topic"].as_str().unwrap().contains("shipping")),
        "{a}"
    );
    let agents: Vec<(&str, i64)> = a["by_agent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["agent_id"].as_str().unwrap(),
                g["conversations"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(agents.len(), 2);
    assert!(agents.contains(&("support-bot", 1)) && agents.contains(&("network-bot", 1)));
    let days = a["by_day"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(
        days[0]["date"],
        confab_core::timefmt::now().date().to_string()
    );
    let one = app
        .get("/v1/analytics/insights?agent_id=network-bot", &t)
        .await
        .expect(200)
        .body;
    assert_eq!(
        (one["conversations"].clone(), one["completion_rate"].clone()),
        (json!(1), json!(0.0))
    );
    app.get("/v1/analytics/insights?created_after=yesterday", &t)
        .await
        .expect(400);
    app.stop().await;
}

#[tokio::test]
async fn a_job_left_by_a_killed_worker_is_done_after_restart() {
    // No worker: the conversation completes, its job is claimed by a "worker" that then dies
    // (the claim's lease runs out at once), and the server stops.
    let app = TestApp::spawn_with(config(0, None)).await;
    let t = app.token("acme").await;
    let id = create(&app, &t, "completed", "bot", happy()).await;
    let job = app
        .store
        .claim_job(Duration::ZERO)
        .await
        .unwrap()
        .expect("the job was enqueued");
    assert_eq!(job.conversation_id.unwrap().to_string(), id);
    app.get(&format!("/v1/conversations/{id}/insights"), &t)
        .await
        .expect(404);
    let (dir, db_path) = app.stop().await;

    // Back up with a worker: the expired claim is taken again and the insights appear.
    let app = TestApp::start(dir, db_path, config(1, None), StoreOptions::default()).await;
    let i = insights_of(&app, &t, &id).await;
    assert_eq!(i["analyzer"], "builtin");
    // Marked done just after the insights are stored; the second claim did it.
    let app_ref = &app;
    eventually("the job to be done", || async move {
        let row = &app_ref.sql("SELECT state, attempts FROM jobs", &[]).await[0];
        assert_eq!(row[1], 2);
        (row[0] == "done").then_some(())
    })
    .await;
    app.stop().await;
}

/// A store with one tenant, for tests that play the worker themselves.
async fn bare_store() -> (std::sync::Arc<common::TestDir>, Store, TenantId) {
    let dir = common::TestDir::new().await;
    let url = dir.url(&dir.path().join("confab.db"));
    let store = Store::open(&url, StoreOptions::default()).await.unwrap();
    let k = store
        .create_key("acme", Scopes::DEFAULT, None)
        .await
        .unwrap();
    let p = store
        .authenticate(&k.key_id, &k.key_secret)
        .await
        .unwrap()
        .unwrap();
    (dir, store, p.tenant)
}

async fn completed_conversation(store: &Store, tenant: &TenantId) -> uuid::Uuid {
    let mut input = NewConversation::new(Status::Completed);
    input.messages = vec![NewMessage {
        role: Some(Role::User),
        content: "Where is my parcel?".into(),
        ..NewMessage::default()
    }];
    store
        .create_conversation(tenant, input, None)
        .await
        .unwrap()
        .conversation()
        .id
}

#[tokio::test]
async fn claims_are_exclusive_expired_leases_are_reclaimed_and_stale_claims_fenced() {
    let (_dir, store, tenant) = bare_store().await;
    let mut convs = Vec::new();
    for _ in 0..6 {
        convs.push(completed_conversation(&store, &tenant).await);
    }
    // Twelve concurrent claimers, six jobs: every job is handed out exactly once.
    let claims =
        futures::future::join_all((0..12).map(|_| store.claim_job(Duration::from_secs(60)))).await;
    let mut got: Vec<uuid::Uuid> = claims
        .into_iter()
        .filter_map(|c| c.unwrap())
        .map(|j| j.conversation_id.unwrap())
        .collect();
    got.sort();
    convs.sort();
    assert_eq!(got, convs);
    assert!(
        store
            .claim_job(Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );

    // A lease that has run out is taken again; the first claim is then stale.
    let (_dir2, store, tenant) = bare_store().await;
    completed_conversation(&store, &tenant).await;
    let first = store.claim_job(Duration::ZERO).await.unwrap().unwrap();
    let second = store
        .claim_job(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.id, first.attempt, second.attempt), (second.id, 1, 2));
    assert!(
        !store.complete_insights_job(&first, None).await.unwrap(),
        "a stale claim cannot complete"
    );
    assert_eq!(
        store
            .fail_job(&first, "late", &RetryPolicy::default())
            .await
            .unwrap(),
        FailOutcome::Stale
    );
    assert!(store.complete_insights_job(&second, None).await.unwrap());
    assert!(store.claim_job(Duration::ZERO).await.unwrap().is_none());
    assert_eq!(store.job_counts().await.unwrap().done, 1);
}

/// Built-in insights of a stored conversation, signed `analyzer` (so two can be told apart).
async fn insights_of_stored(
    store: &Store,
    tenant: &TenantId,
    conversation: uuid::Uuid,
    analyzer: &str,
) -> confab_core::Insights {
    let messages = store
        .list_messages(tenant, conversation, &confab_store::MessageQuery::default())
        .await
        .unwrap();
    confab_core::analysis::analyze(&messages).into_insights(
        conversation,
        analyzer,
        confab_core::timefmt::now(),
    )
}

/// The worker's single write at the end of a job: the insights and the job's `done` land
/// together; a stale claim stores its insights but does not complete the job; a job whose
/// conversation was deleted meanwhile ends without insights and without an error.
#[tokio::test]
async fn a_job_ends_with_its_insights_in_one_write() {
    let (_dir, store, tenant) = bare_store().await;
    let conv = completed_conversation(&store, &tenant).await;
    let job = store
        .claim_job(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(store.get_insights(&tenant, conv).await.unwrap().is_none());
    let insights = insights_of_stored(&store, &tenant, conv, "first").await;
    assert!(
        store
            .complete_insights_job(&job, Some(insights.clone()))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_insights(&tenant, conv)
            .await
            .unwrap()
            .map(|i| i.summary),
        Some(insights.summary)
    );
    let counts = store.job_counts().await.unwrap();
    assert_eq!((counts.done, counts.running), (1, 0));

    // A lease run out and taken again: the first claim's insights are stored, its
    // completion is refused, and the second claim still completes.
    let again = store.enqueue_insights(&tenant, conv).await.unwrap();
    let first = store.claim_job(Duration::ZERO).await.unwrap().unwrap();
    let second = store
        .claim_job(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.id, second.id), (again, again));
    let late = insights_of_stored(&store, &tenant, conv, "late").await;
    assert!(
        !store
            .complete_insights_job(&first, Some(late.clone()))
            .await
            .unwrap(),
        "a stale claim cannot complete"
    );
    assert_eq!(
        store
            .get_insights(&tenant, conv)
            .await
            .unwrap()
            .map(|i| i.summary),
        Some(late.summary)
    );
    assert!(store.complete_insights_job(&second, None).await.unwrap());
    assert_eq!(store.job_counts().await.unwrap().done, 2);

    // Deleted while analysed: its jobs went with it, nothing is stored, no error.
    let gone = completed_conversation(&store, &tenant).await;
    let job = store
        .claim_job(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.conversation_id, Some(gone));
    let orphan = insights_of_stored(&store, &tenant, gone, "orphan").await;
    store.delete_conversation(&tenant, gone).await.unwrap();
    assert!(
        !store
            .complete_insights_job(&job, Some(orphan))
            .await
            .unwrap()
    );
    assert!(matches!(
        store.get_insights(&tenant, gone).await,
        Ok(None) | Err(confab_store::StoreError::NotFound)
    ));
}

#[tokio::test]
async fn failures_back_off_then_give_up() {
    let (_dir, store, tenant) = bare_store().await;
    completed_conversation(&store, &tenant).await;
    let policy = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_secs(600),
        max_delay: Duration::from_secs(3600),
    };
    let job = store
        .claim_job(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let before = confab_core::timefmt::now();
    let FailOutcome::Retry(at) = store
        .fail_job(&job, "model exploded", &policy)
        .await
        .unwrap()
    else {
        panic!("the first failure is retried");
    };
    let wait = at - before;
    assert!(
        wait >= time::Duration::seconds(599) && wait <= time::Duration::seconds(610),
        "{wait}"
    );
    // Not due yet: nobody can claim it.
    assert!(
        store
            .claim_job(Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
    let counts = store.job_counts().await.unwrap();
    assert_eq!((counts.queued, counts.running), (1, 0));

    // A refresh makes it due at once; the second failure is the last.
    let conv = job.conversation_id.unwrap();
    assert_eq!(store.enqueue_insights(&tenant, conv).await.unwrap(), job.id);
    let again = store
        .claim_job(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempt), (job.id, 2));
    assert_eq!(
        store
            .fail_job(&again, "still exploding", &policy)
            .await
            .unwrap(),
        FailOutcome::GaveUp
    );
    assert_eq!(store.job_counts().await.unwrap().failed, 1);
    assert!(store.claim_job(Duration::ZERO).await.unwrap().is_none());
}

#[tokio::test]
async fn the_worker_records_failures_with_backoff() {
    let app = TestApp::spawn_with(config(1, None)).await;
    let t = app.token("acme").await;
    let id = create(&app, &t, "completed", "bot", happy()).await;
    insights_of(&app, &t, &id).await;
    // A job the worker cannot run (an unknown kind, as a newer server version might write).
    let now = confab_core::timefmt::to_micros(confab_core::timefmt::now());
    let random_id = if app.is_pg() {
        "gen_random_uuid()"
    } else {
        "randomblob(16)"
    };
    app.sql(
        &format!(
            "INSERT INTO jobs (tenant_id, id, kind, conversation_id, state, attempts, run_at, created_at, updated_at) \
             SELECT tenant_id, {random_id}, 'mystery', id, 'queued', 0, $1, $1, $1 FROM conversations"
        ),
        &[common::Arg::Int(now)],
    )
    .await;
    let app_ref = &app;
    let (state, attempts, err, run_at) = eventually("the failure", || async move {
        app_ref.sql(
            "SELECT state, attempts, last_error, run_at FROM jobs WHERE kind = 'mystery' AND last_error IS NOT NULL",
            &[],
        )
        .await
        .first()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_i64().unwrap(),
                r[2].as_str().unwrap().to_owned(),
                r[3].as_i64().unwrap(),
            )
        })
    })
    .await;
    assert_eq!((state.as_str(), attempts), ("queued", 1));
    assert!(err.contains("unknown job kind `mystery`"), "{err}");
    assert!(
        run_at >= now + 9_000_000,
        "retried after the default 10 s backoff, not at once"
    );
    app.stop().await;
}

#[tokio::test]
async fn refresh_recomputes_and_other_tenants_see_nothing() {
    let app = TestApp::spawn_with(config(1, None)).await;
    let t = app.token("acme").await;
    let other = app.token("globex").await;
    let id = create(&app, &t, "completed", "bot", happy()).await;
    let first = insights_of(&app, &t, &id).await;

    // More (angry) messages arrive after completion; a refresh picks them up.
    app.post(
        &format!("/v1/conversations/{id}/messages"),
        &t,
        &json!({"messages": angry()}),
    )
    .await
    .expect(200);
    let r = app
        .post(
            &format!("/v1/conversations/{id}/insights/refresh"),
            &t,
            &json!({}),
        )
        .await
        .expect(202);
    assert_eq!(r.body["status"], "queued");
    let path = format!("/v1/conversations/{id}/insights");
    let second = eventually("refreshed insights", || async {
        let b = app.get(&path, &t).await.expect(200).body;
        (b["created_at"] != first["created_at"]).then_some(b)
    })
    .await;
    assert_ne!(second["sentiment"], "positive", "{second}");

    // Another tenant: 404 everywhere, nothing in its aggregate.
    app.get(&path, &other).await.expect(404);
    app.post(
        &format!("/v1/conversations/{id}/insights/refresh"),
        &other,
        &json!({}),
    )
    .await
    .expect(404);
    let a = app
        .get("/v1/analytics/insights", &other)
        .await
        .expect(200)
        .body;
    assert_eq!(a["conversations"], 0);
    assert_eq!(a["completion_rate"], Value::Null);
    assert_eq!(
        app.get("/v1/conversations?sentiment=positive", &other)
            .await
            .expect(200)
            .body["data"],
        json!([])
    );
    // Unknown ids, and read-only keys cannot refresh.
    app.get("/v1/conversations/not-an-id/insights", &t)
        .await
        .expect(404);
    let reader = app
        .token_with("acme", Scopes::default().with(confab_core::Scope::Read))
        .await;
    app.post(
        &format!("/v1/conversations/{id}/insights/refresh"),
        &reader,
        &json!({}),
    )
    .await
    .expect(403);
    app.stop().await;
}

/// What the fake model server does.
#[derive(Clone, Copy)]
enum Fake {
    Valid,
    Invalid,
    Slow,
}

/// Request bodies and `Authorization` headers the fake model server saw.
type Seen = Arc<Mutex<Vec<(Value, Option<String>)>>>;

/// An OpenAI-compatible chat-completions endpoint on port 0; answers per `mode` and keeps every
/// request body and authorization header it saw.
async fn fake_model(mode: Fake) -> (String, Seen) {
    use axum::routing::post;
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
            let log = log.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
                log.lock().unwrap().push((body, auth));
                let content = match mode {
                    Fake::Valid => json!({
                        "sentiment": "mixed", "sentimentScore": -0.1, "taskCompleted": false,
                        "topics": ["Shipping address", "order 5521"],
                        "summary": "The user changed an address.",
                        "issues": [{"code": "other", "text": "Made up by the model."}]
                    })
                    .to_string(),
                    Fake::Invalid => "Sure! The sentiment is positive.".to_owned(),
                    Fake::Slow => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        "{}".to_owned()
                    }
                };
                axum::Json(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn llm(base: String) -> Option<LlmConfig> {
    Some(LlmConfig {
        base_url: base,
        model: "fake-model".into(),
        api_key: Some("sk-test".into()),
        timeout: Duration::from_millis(800),
    })
}

#[tokio::test]
async fn the_llm_analyzer_is_used_when_its_answer_is_valid() {
    let (base, seen) = fake_model(Fake::Valid).await;
    let app = TestApp::spawn_with(config(1, llm(base))).await;
    let t = app.token("acme").await;
    let id = create(&app, &t, "completed", "bot", happy()).await;
    let i = insights_of(&app, &t, &id).await;
    assert_eq!(i["analyzer"], "llm:fake-model");
    assert_eq!(i["sentiment"], "mixed");
    assert_eq!(i["topics"], json!(["shipping address", "order 5521"]));
    assert_eq!(i["issues"][0]["code"], "other");
    let (body, auth) = seen.lock().unwrap()[0].clone();
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(body["model"], "fake-model");
    let transcript = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        transcript.starts_with("User: Hi, I need to change"),
        "{transcript}"
    );
    assert!(
        !transcript.contains("support assistant"),
        "system prompts are not sent"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_or_slow_llm_falls_back_to_the_builtin_analyzer() {
    for mode in [Fake::Invalid, Fake::Slow] {
        let (base, seen) = fake_model(mode).await;
        let app = TestApp::spawn_with(config(1, llm(base))).await;
        let t = app.token("acme").await;
        let id = create(&app, &t, "completed", "bot", happy()).await;
        let i = insights_of(&app, &t, &id).await;
        assert_eq!(i["analyzer"], "builtin", "{i}");
        assert_eq!(i["sentiment"], "positive");
        assert_eq!(seen.lock().unwrap().len(), 1, "the model was asked once");
        // The job itself succeeded (it is marked done just after the insights are stored): a
        // fallback is not a failure to retry.
        let app_ref = &app;
        eventually("the job to be done", || async move {
            let row = &app_ref.sql("SELECT state, last_error FROM jobs", &[]).await[0];
            assert_eq!(row[1], Value::Null);
            (row[0] == "done").then_some(())
        })
        .await;
        app.stop().await;
    }
}
