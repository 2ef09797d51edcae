//! The dashboard end to end in headless Chromium: the real server with a seeded tenant, driven
//! by `tests/e2e/run.mjs` (playwright-core against Debian's `/usr/bin/chromium`), which signs
//! in, filters, opens a conversation, searches, views the charts and keeps screenshots in
//! `target/e2e-artifacts/`. Afterwards the server-side time of each page is measured on the
//! same few thousand conversations and printed (never asserted: the machine is shared).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestApp, repo_root};
use confab_core::export::ExportRecord;
use confab_core::{Conversation, Message, Role, Scope, Scopes, Status};
use confab_store::TenantId;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

/// Conversations in the seeded tenant.
const CONVERSATIONS: usize = 3_000;
/// Of which every this many is analysed, so the insights charts have data on every day.
const ANALYSED_EVERY: usize = 12;

const AGENTS: [&str; 4] = ["support-bot", "sales-bot", "onboarding-guide", "tutor"];
const SOURCES: [&str; 5] = ["web", "telegram", "discord", "embed", "api"];
const USER_LINES: [&str; 8] = [
    "I need a refund for my last order, it arrived broken.",
    "How do I reset my password? The link expired.",
    "Can you send me the invoice for March?",
    "What does the pro plan cost per seat?",
    "The app crashes when I upload a photo.",
    "Thanks, that solved it!",
    "Still not working, this is frustrating.",
    "Can I change my delivery address?",
];
const ASSISTANT_LINES: [&str; 6] = [
    "I'm sorry about that. I have started a refund; it takes 3-5 business days.",
    "You can reset it from Settings → Security. I have sent a fresh link.",
    "Here is your invoice. Anything else I can help with?",
    "The pro plan is $12 per seat per month, billed yearly.",
    "Thanks for the report. Which version of the app are you using?",
    "Done: your delivery address is updated.",
];

/// A small deterministic generator, so screenshots are stable from run to run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}

fn record(rng: &mut Lcg, i: usize, now: OffsetDateTime) -> ExportRecord {
    // Spread over 45 days, so the 30-day cumulative line starts above zero.
    let created = now - Duration::from_secs((i as u64 * 45 * 86_400) / CONVERSATIONS as u64 + 60);
    let id = Uuid::now_v7();
    let n = 2 + rng.next(7);
    let model = Some("gpt-4o-mini".to_owned());
    let mut messages = Vec::new();
    for seq in 0..n {
        let user = seq % 2 == 0;
        let tool = !user && rng.next(6) == 0;
        let content = if user {
            USER_LINES[rng.next(USER_LINES.len())]
        } else if tool {
            "order #4411: shipped"
        } else {
            ASSISTANT_LINES[rng.next(ASSISTANT_LINES.len())]
        };
        let prompt = 40 + rng.next(200) as i64;
        let completion = 10 + rng.next(80) as i64;
        messages.push(Message {
            id: Uuid::now_v7(),
            conversation_id: id,
            seq: seq as i64,
            role: if user {
                Role::User
            } else if tool {
                Role::Tool
            } else {
                Role::Assistant
            },
            content: content.to_owned(),
            created_at: created + Duration::from_secs(seq as u64 * 40),
            model: (!user).then(|| model.clone()).flatten(),
            tokens: (!user).then_some(prompt + completion),
            prompt_tokens: (!user).then_some(prompt),
            completion_tokens: (!user).then_some(completion),
            latency_ms: (!user).then(|| 200 + rng.next(1500) as i64),
            tool_calls: tool
                .then(|| json!([{"name": "lookup_order", "arguments": {"order": 4411}}])),
            metadata: None,
            source: None,
            is_trigger: false,
        });
    }
    let status = [
        Status::Completed,
        Status::Completed,
        Status::Completed,
        Status::Active,
        Status::Abandoned,
        Status::InProgress,
    ][rng.next(6)];
    let first = messages[0].content.clone();
    let plan = ["free", "pro", "team"][rng.next(3)];
    ExportRecord {
        conversation: Conversation {
            id,
            agent_id: Some(AGENTS[rng.next(AGENTS.len())].to_owned()),
            user_id: Some(format!("user-{}", rng.next(80))),
            title: Some(first.chars().take(48).collect()),
            status,
            source: Some(SOURCES[rng.next(SOURCES.len())].to_owned()),
            model,
            company_name: Some("Acme".to_owned()),
            added_to_memory: false,
            metadata: json!({"plan": plan, "locale": "en-GB"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            message_count: n as i64,
            analyze: true,
            created_at: created,
            updated_at: created + Duration::from_secs(n as u64 * 40),
            completed_at: (status == Status::Completed)
                .then(|| created + Duration::from_secs(n as u64 * 40)),
        },
        messages,
    }
}

async fn seed(app: &TestApp, tenant: &TenantId) -> Vec<Uuid> {
    let mut rng = Lcg(42);
    let now = OffsetDateTime::now_utc();
    let records: Vec<ExportRecord> = (0..CONVERSATIONS)
        .map(|i| record(&mut rng, i, now))
        .collect();
    let ids: Vec<Uuid> = records.iter().map(|r| r.conversation.id).collect();
    for batch in records.chunks(200) {
        app.store
            .import_records(tenant, batch.to_vec())
            .await
            .expect("import");
    }
    ids
}

/// Waits for the insights worker to drain the queue (bounded: charts without every insight
/// are still charts).
async fn analysed(app: &TestApp) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        let c = app.store.job_counts().await.unwrap();
        if c.queued == 0 && c.running == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("insights still queued after 120 s; continuing");
}

fn ensure_tools(e2e: &Path) -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install it with `apt-get install -y chromium` (Debian's package)"
    );
    if !e2e.join("node_modules/playwright-core").exists() {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(e2e)
            .status()
            .expect("npm (Node.js) is needed for the end-to-end test");
        assert!(st.success(), "npm ci in tests/e2e failed");
    }
    chromium
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let e2e = repo_root().join("tests/e2e");
    let chromium = ensure_tools(&e2e);
    let app = TestApp::spawn().await;
    let token = app
        .token_with("acme", Scopes::DEFAULT.with(Scope::Admin))
        .await;
    let (key_id, secret) = token.split_once('.').unwrap();
    let tenant = app
        .store
        .authenticate(key_id, secret)
        .await
        .unwrap()
        .unwrap()
        .tenant;
    let ids = seed(&app, &tenant).await;
    for id in ids.iter().step_by(ANALYSED_EVERY) {
        app.store.enqueue_insights(&tenant, *id).await.unwrap();
    }
    analysed(&app).await;

    let artifacts = repo_root().join("target/e2e-artifacts");
    let (base, tok, dir, e2e_dir) = (
        app.base.clone(),
        token.clone(),
        artifacts.display().to_string(),
        e2e.clone(),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("run.mjs")
            .args([&base, &tok, &dir])
            .env("CHROMIUM", chromium)
            .current_dir(e2e_dir)
            .output()
            .expect("node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed ({}); screenshots in {}\n{stdout}\n{stderr}",
        out.status,
        artifacts.display()
    );
    for shot in ["conversations", "conversation", "search", "analytics"] {
        assert!(
            artifacts.join(format!("{shot}.png")).exists(),
            "{shot}.png was taken"
        );
    }

    // Server-side time per page over this tenant (HTTP on loopback, so nearly all of it is
    // the handler): the median of 5, printed for docs/performance.md.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let id = ids[0];
    let pages = [
        "/ui/conversations".to_owned(),
        "/ui/conversations?agent=support-bot&status=completed".to_owned(),
        "/ui/conversations?page=100".to_owned(),
        format!("/ui/conversations/{id}"),
        "/ui/search?q=refund".to_owned(),
        "/ui/search?q=refund&sort=recent".to_owned(),
        "/ui/analytics".to_owned(),
        "/ui/analytics?agent=support-bot".to_owned(),
        "/ui/keys".to_owned(),
        "/ui/webhooks".to_owned(),
        // For comparison: the API route over the same store call.
        "/v1/search?q=refund".to_owned(),
    ];
    println!("page render times, {CONVERSATIONS} conversations (median of 5):");
    for p in pages {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let r = client
                .get(app.url(&p))
                .header("cookie", format!("confab_session={token}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{p}");
            r.bytes().await.unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        println!("  {:>8.1} ms  {p}", times[2].as_secs_f64() * 1000.0);
    }
}
