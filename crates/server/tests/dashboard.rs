//! The web dashboard over HTTP with the real server: every page and action, sign-in and the
//! cookie, CSRF and cross-site checks, scopes, tenant isolation and exports.

mod common;

use common::TestApp;
use confab_core::{Insights, Scope, Scopes, Sentiment};
use confab_server::ServerConfig;
use confab_server::insights::InsightsConfig;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A browser-like client: no redirects followed (tests look at them), cookie sent by hand.
struct Ui {
    app: TestApp,
    client: reqwest::Client,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn expect(self, s: u16) -> Page {
        assert_eq!(self.status.as_u16(), s, "body: {}", self.text);
        self
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .text
            .find(r#"name="csrf" value=""#)
            .expect("a form with a CSRF token");
        let rest = &self.text[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Ui {
    /// A server whose insights worker is off, so queued analyses stay visible.
    async fn spawn() -> Ui {
        let app = TestApp::spawn_with(ServerConfig {
            insights: InsightsConfig {
                workers: 0,
                ..InsightsConfig::default()
            },
            ..ServerConfig::default()
        })
        .await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Ui { app, client }
    }

    async fn read(r: reqwest::Response) -> Page {
        Page {
            status: r.status(),
            headers: r.headers().clone(),
            text: r.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Page {
        let mut rb = self.client.get(self.app.url(path));
        if let Some(t) = token {
            rb = rb.header("cookie", format!("confab_session={t}"));
        }
        Self::read(rb.send().await.unwrap()).await
    }

    /// Posts a form as a same-origin browser would.
    async fn post(&self, path: &str, token: Option<&str>, form: &[(&str, &str)]) -> Page {
        self.post_with(path, token, form, &[("sec-fetch-site", "same-origin")])
            .await
    }

    async fn post_with(
        &self,
        path: &str,
        token: Option<&str>,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut rb = self
            .client
            .post(self.app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        if let Some(t) = token {
            rb = rb.header("cookie", format!("confab_session={t}"));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        Self::read(rb.send().await.unwrap()).await
    }

    /// Creates a conversation through the API and answers its id.
    async fn conversation(&self, token: &str, body: Value) -> String {
        self.app
            .post("/v1/conversations", token, &body)
            .await
            .expect(201)
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

async fn seeded() -> (Ui, String, String) {
    let ui = Ui::spawn().await;
    let t = ui.app.token("acme").await;
    let billing = ui
        .conversation(
            &t,
            json!({
                "agent_id": "support-bot", "user_id": "u1", "source": "web", "model": "gpt-4o",
                "title": "Billing <question>", "metadata": {"plan": "pro"},
                "messages": [
                    {"role": "user", "content": "I need a refund for order 42"},
                    {"role": "assistant", "content": "Sure, refund started.", "model": "gpt-4o",
                     "tokens": 12, "prompt_tokens": 8, "completion_tokens": 4, "latency_ms": 350},
                    {"role": "tool", "content": "", "tool_calls": [{"name": "lookup", "arguments": {"id": 7}}]}
                ]
            }),
        )
        .await;
    ui.conversation(
            &t,
            json!({"agent_id": "sales-bot", "user_id": "u2", "source": "telegram", "status": "completed",
                   "messages": [{"role": "user", "content": "What does the pro plan cost?"}]}),
        )
        .await;
    (ui, t, billing)
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_sign_out_clears_it() {
    let ui = Ui::spawn().await;
    let t = ui.app.token("acme").await;

    // Not signed in: pages and the root redirect to the form.
    assert_eq!(ui.get("/", None).await.expect(303).location(), "/ui/login");
    let p = ui.get("/ui/conversations", None).await.expect(303);
    assert_eq!(p.location(), "/ui/login");
    let form = ui.get("/ui/login", None).await.expect(200);
    assert!(form.text.contains(r#"<label for="token">"#));
    assert!(form.text.contains(r#"<html lang="en">"#));
    let h = &form.headers;
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h.contains_key("referrer-policy"));

    // A wrong key: the form again, 401, no cookie.
    let bad = ui
        .post("/ui/login", None, &[("token", "ck_nope.nope")])
        .await
        .expect(401);
    assert!(bad.text.contains("not valid"));
    assert!(!bad.headers.contains_key("set-cookie"));

    let ok = ui
        .post("/ui/login", None, &[("token", &t)])
        .await
        .expect(303);
    assert_eq!(ok.location(), "/ui/conversations");
    let cookie = ok.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with(&format!("confab_session={t};")),
        "{cookie}"
    );
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag");
    // Behind a TLS proxy the cookie is Secure.
    let tls = ui
        .post_with(
            "/ui/login",
            None,
            &[("token", &t)],
            &[("x-forwarded-proto", "https")],
        )
        .await
        .expect(303);
    assert!(
        tls.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    // Signed in: the root goes to the list.
    assert_eq!(
        ui.get("/", Some(&t)).await.expect(303).location(),
        "/ui/conversations"
    );
    let list = ui.get("/ui/conversations", Some(&t)).await.expect(200);
    let csrf = list.csrf();

    // Sign out needs the CSRF token too.
    ui.post("/ui/logout", Some(&t), &[("csrf", "forged")])
        .await
        .expect(403);
    let out = ui
        .post("/ui/logout", Some(&t), &[("csrf", &csrf)])
        .await
        .expect(303);
    assert_eq!(out.location(), "/ui/login");
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );

    // A revoked key's cookie no longer signs in.
    let (key_id, _) = t.split_once('.').unwrap();
    ui.app.store.revoke_key(key_id).await.unwrap();
    assert_eq!(
        ui.get("/ui/conversations", Some(&t))
            .await
            .expect(303)
            .location(),
        "/ui/login"
    );
}

#[tokio::test]
async fn the_list_filters_counts_and_pages() {
    let (ui, t, _) = seeded().await;
    let all = ui.get("/ui/conversations", Some(&t)).await.expect(200);
    assert!(
        all.text.contains("Showing 1–2 of 2 conversations"),
        "{}",
        all.text
    );
    // Titles are escaped.
    assert!(
        all.text.contains("Billing &#60;question&#62;")
            || all.text.contains("Billing &lt;question&gt;")
    );
    assert!(!all.text.contains("<question>"));

    let by_agent = ui
        .get("/ui/conversations?agent=sales-bot", Some(&t))
        .await
        .expect(200);
    assert!(by_agent.text.contains("Showing 1–1 of 1"));
    assert!(by_agent.text.contains("What does the pro plan cost?"));
    let by_status = ui
        .get(
            "/ui/conversations?status=completed&source=telegram&user=u2",
            Some(&t),
        )
        .await
        .expect(200);
    assert!(by_status.text.contains("Showing 1–1 of 1"));
    let none = ui
        .get("/ui/conversations?source=discord", Some(&t))
        .await
        .expect(200);
    assert!(none.text.contains("No conversations match."));
    let future = ui
        .get("/ui/conversations?from=2999-01-01&to=2999-12-31", Some(&t))
        .await
        .expect(200);
    assert!(future.text.contains("No conversations match."));
    let today = time::OffsetDateTime::now_utc().date();
    let today = format!("{today}");
    let dated = ui
        .get(
            &format!("/ui/conversations?from={today}&to={today}&status="),
            Some(&t),
        )
        .await
        .expect(200);
    assert!(dated.text.contains("of 2 conversations"));
    // Bad filter values are explained, not fatal.
    let bad = ui
        .get("/ui/conversations?status=bogus", Some(&t))
        .await
        .expect(400);
    assert!(bad.text.contains("Status:"));
    ui.get("/ui/conversations?from=yesterday", Some(&t))
        .await
        .expect(400);
    ui.get("/ui/conversations?sentiment=positive", Some(&t))
        .await
        .expect(200);

    // Pagination: 30 more conversations make two pages of 25, newest first.
    for i in 0..30 {
        ui.conversation(&t, json!({"title": format!("bulk {i:02}")}))
            .await;
    }
    let p1 = ui
        .get("/ui/conversations?agent=&page=1", Some(&t))
        .await
        .expect(200);
    assert!(p1.text.contains("Showing 1–25 of 32"));
    assert!(p1.text.contains("bulk 29"));
    assert!(
        p1.text
            .contains(r#"rel="next" href="/ui/conversations?page=2""#),
        "{}",
        p1.text
    );
    let p2 = ui
        .get("/ui/conversations?page=2", Some(&t))
        .await
        .expect(200);
    assert!(p2.text.contains("Showing 26–32 of 32"));
    assert!(p2.text.contains("Billing"));
    assert!(p2.text.contains(r#"rel="prev""#));
    assert!(!p2.text.contains(r#"rel="next""#));
}

#[tokio::test]
async fn a_conversation_page_shows_the_transcript_insights_and_metadata() {
    let (ui, t, id) = seeded().await;
    let (key_id, secret) = t.split_once('.').unwrap();
    let tenant = ui
        .app
        .store
        .authenticate(key_id, secret)
        .await
        .unwrap()
        .unwrap()
        .tenant;
    let p = ui
        .get(&format!("/ui/conversations/{id}"), Some(&t))
        .await
        .expect(200);
    for want in [
        "I need a refund for order 42",
        "12 tokens (8 prompt + 4 completion)",
        "350 ms",
        "gpt-4o",
        "<summary>Tool calls</summary>",
        "&#34;lookup&#34;",
        "&#34;plan&#34;: &#34;pro&#34;",
        "Not analysed yet.",
        "support-bot",
        r#"id="m-1""#,
        "?format=markdown",
        "Re-analyse",
        "Delete…",
    ] {
        assert!(p.text.contains(want), "missing {want}");
    }
    // Dates in UTC ISO form.
    assert!(p.text.contains("Z</time>"));

    ui.app
        .store
        .put_insights(
            &tenant,
            Insights {
                conversation_id: id.parse().unwrap(),
                sentiment: Sentiment::Positive,
                sentiment_score: 0.5,
                task_completed: true,
                topics: vec!["refund".into()],
                summary: "A refund was started.".into(),
                issues: vec![],
                analyzer: "test".into(),
                created_at: time::OffsetDateTime::now_utc(),
            },
        )
        .await
        .unwrap();
    let p = ui
        .get(&format!("/ui/conversations/{id}"), Some(&t))
        .await
        .expect(200);
    assert!(p.text.contains("A refund was started."));
    assert!(p.text.contains("+0.50"));
    // The list can now filter on sentiment.
    let pos = ui
        .get("/ui/conversations?sentiment=positive", Some(&t))
        .await
        .expect(200);
    assert!(pos.text.contains("Showing 1–1 of 1"));

    // Unknown ids and junk are an HTML 404, not the API's JSON.
    let nf = ui
        .get(
            "/ui/conversations/0190b7a0-0000-7000-8000-000000000000",
            Some(&t),
        )
        .await
        .expect(404);
    assert!(
        nf.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    ui.get("/ui/conversations/not-an-id", Some(&t))
        .await
        .expect(404);
    ui.get("/ui/nope", Some(&t)).await.expect(404);
}

#[tokio::test]
async fn another_tenants_conversation_is_not_found_anywhere() {
    let (ui, _t, id) = seeded().await;
    let other = ui.app.token("globex").await;
    for path in [
        format!("/ui/conversations/{id}"),
        format!("/ui/conversations/{id}/export?format=json"),
        format!("/ui/conversations/{id}/delete"),
    ] {
        ui.get(&path, Some(&other)).await.expect(404);
    }
    let csrf = ui
        .get("/ui/conversations", Some(&other))
        .await
        .expect(200)
        .csrf();
    ui.post(
        &format!("/ui/conversations/{id}/delete"),
        Some(&other),
        &[("csrf", &csrf)],
    )
    .await
    .expect(404);
    ui.post(
        &format!("/ui/conversations/{id}/analyze"),
        Some(&other),
        &[("csrf", &csrf)],
    )
    .await
    .expect(404);
    let list = ui.get("/ui/conversations", Some(&other)).await.expect(200);
    assert!(list.text.contains("No conversations match."));
    let s = ui
        .get("/ui/search?q=refund", Some(&other))
        .await
        .expect(200);
    assert!(s.text.contains("No messages match."));
}

#[tokio::test]
async fn a_read_key_sees_no_buttons_and_cannot_post() {
    let (ui, t, id) = seeded().await;
    let read = ui
        .app
        .token_with("acme", Scopes::default().with(Scope::Read))
        .await;
    let p = ui
        .get(&format!("/ui/conversations/{id}"), Some(&read))
        .await
        .expect(200);
    assert!(!p.text.contains("Re-analyse"));
    assert!(!p.text.contains("Delete…"));
    assert!(p.text.contains("?format=json"), "reading includes exports");
    // Its own forms (sign-out) carry a valid token, which still does not grant writes.
    let csrf = p.csrf();
    for action in ["analyze", "delete"] {
        ui.post(
            &format!("/ui/conversations/{id}/{action}"),
            Some(&read),
            &[("csrf", &csrf)],
        )
        .await
        .expect(403);
    }
    ui.get(&format!("/ui/conversations/{id}/delete"), Some(&read))
        .await
        .expect(403);
    ui.get("/ui/keys", Some(&read)).await.expect(403);
    ui.get("/ui/webhooks", Some(&read)).await.expect(403);
    ui.post(
        "/ui/keys/create",
        Some(&read),
        &[("csrf", &csrf), ("read", "on")],
    )
    .await
    .expect(403);
    // A read-write key is not an admin either; the nav hides the admin pages.
    let list = ui.get("/ui/conversations", Some(&t)).await.expect(200);
    assert!(!list.text.contains("/ui/keys"));
    ui.get("/ui/keys", Some(&t)).await.expect(403);
    // The conversation is still there.
    ui.get(&format!("/ui/conversations/{id}"), Some(&t))
        .await
        .expect(200);
    // A key without `read` cannot sign in.
    let write_only = ui
        .app
        .token_with("acme", Scopes::default().with(Scope::Write))
        .await;
    ui.post("/ui/login", None, &[("token", &write_only)])
        .await
        .expect(403);
}

#[tokio::test]
async fn posts_need_the_csrf_token_and_the_same_site() {
    let (ui, t, id) = seeded().await;
    let path = format!("/ui/conversations/{id}/delete");
    let csrf = ui.get(&path, Some(&t)).await.expect(200).csrf();
    // Missing, wrong, or another session's token.
    ui.post(&path, Some(&t), &[]).await.expect(400);
    ui.post(&path, Some(&t), &[("csrf", "")]).await.expect(403);
    ui.post(&path, Some(&t), &[("csrf", &format!("{csrf}x"))])
        .await
        .expect(403);
    let other_key = ui.app.token("acme").await;
    let other_csrf = ui.get("/ui/conversations", Some(&other_key)).await.csrf();
    assert_ne!(other_csrf, csrf);
    ui.post(&path, Some(&t), &[("csrf", &other_csrf)])
        .await
        .expect(403);
    // The right token from another site.
    ui.post_with(
        &path,
        Some(&t),
        &[("csrf", &csrf)],
        &[("sec-fetch-site", "cross-site")],
    )
    .await
    .expect(403);
    ui.post_with(
        &path,
        Some(&t),
        &[("csrf", &csrf)],
        &[("origin", "http://evil.example")],
    )
    .await
    .expect(403);
    ui.post_with(
        "/ui/login",
        None,
        &[("token", &t)],
        &[("sec-fetch-site", "cross-site")],
    )
    .await
    .expect(403);
    // Without a session a POST goes to sign-in.
    assert_eq!(
        ui.post(&path, None, &[("csrf", &csrf)])
            .await
            .expect(303)
            .location(),
        "/ui/login"
    );
    // Nothing was deleted; GET never changes anything.
    ui.get(&format!("/ui/conversations/{id}"), Some(&t))
        .await
        .expect(200);
}

#[tokio::test]
async fn delete_asks_first_then_deletes() {
    let (ui, t, id) = seeded().await;
    let path = format!("/ui/conversations/{id}/delete");
    let confirm = ui.get(&path, Some(&t)).await.expect(200);
    assert!(confirm.text.contains("Delete this conversation?"));
    let csrf = confirm.csrf();
    let host = ui.app.base.trim_start_matches("http://").to_owned();
    let done = ui
        .post_with(
            &path,
            Some(&t),
            &[("csrf", &csrf)],
            &[("origin", &format!("http://{host}"))],
        )
        .await
        .expect(303);
    assert_eq!(done.location(), "/ui/conversations?notice=deleted");
    ui.get(&format!("/v1/conversations/{id}"), None).await;
    ui.app
        .get(&format!("/v1/conversations/{id}"), &t)
        .await
        .expect(404);
    let list = ui.get(done.location(), Some(&t)).await.expect(200);
    assert!(list.text.contains("The conversation was deleted."));
    assert!(list.text.contains("of 1 conversations"));
    ui.get(&path, Some(&t)).await.expect(404);
}

#[tokio::test]
async fn reanalyse_queues_a_job() {
    let (ui, t, id) = seeded().await;
    let before = ui.app.store.job_counts().await.unwrap().queued;
    let csrf = ui
        .get(&format!("/ui/conversations/{id}"), Some(&t))
        .await
        .csrf();
    let r = ui
        .post(
            &format!("/ui/conversations/{id}/analyze"),
            Some(&t),
            &[("csrf", &csrf)],
        )
        .await
        .expect(303);
    assert_eq!(
        r.location(),
        format!("/ui/conversations/{id}?notice=analysis-queued")
    );
    assert_eq!(ui.app.store.job_counts().await.unwrap().queued, before + 1);
    let p = ui.get(r.location(), Some(&t)).await.expect(200);
    assert!(p.text.contains("Analysis queued"));
    // Notices are fixed texts: an unknown code shows nothing.
    let p = ui
        .get(&format!("/ui/conversations/{id}?notice=<script>"), Some(&t))
        .await
        .expect(200);
    assert!(!p.text.contains("<script>"));
}

#[tokio::test]
async fn exports_come_in_three_formats() {
    let (ui, t, id) = seeded().await;
    let json = ui
        .get(
            &format!("/ui/conversations/{id}/export?format=json"),
            Some(&t),
        )
        .await
        .expect(200);
    assert!(
        json.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(
        json.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("conversation-{id}.json"))
    );
    let v: Value = serde_json::from_str(&json.text).unwrap();
    assert_eq!(v[0]["id"], id.as_str());
    assert_eq!(v[0]["messages"].as_array().unwrap().len(), 3);
    let csv = ui
        .get(
            &format!("/ui/conversations/{id}/export?format=csv"),
            Some(&t),
        )
        .await
        .expect(200);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(
        csv.text.trim_end().lines().count(),
        4,
        "header + 3 messages"
    );
    let md = ui
        .get(
            &format!("/ui/conversations/{id}/export?format=markdown"),
            Some(&t),
        )
        .await
        .expect(200);
    assert!(md.text.contains("I need a refund for order 42"));
    ui.get(
        &format!("/ui/conversations/{id}/export?format=xml"),
        Some(&t),
    )
    .await
    .expect(400);
    assert_eq!(
        ui.get(&format!("/ui/conversations/{id}/export?format=json"), None)
            .await
            .expect(303)
            .location(),
        "/ui/login"
    );
}

#[tokio::test]
async fn search_highlights_and_links_into_the_conversation() {
    let (ui, t, id) = seeded().await;
    let empty = ui.get("/ui/search", Some(&t)).await.expect(200);
    assert!(empty.text.contains(r#"<label for="q">"#));
    let p = ui.get("/ui/search?q=refund", Some(&t)).await.expect(200);
    assert!(p.text.contains("<mark>refund</mark>"), "{}", p.text);
    assert!(
        p.text
            .contains(&format!("/ui/conversations/{id}?from=0#m-0"))
    );
    let recent = ui
        .get("/ui/search?q=refund&sort=recent", Some(&t))
        .await
        .expect(200);
    assert!(recent.text.contains("<mark>"));
    let none = ui.get("/ui/search?q=zebra", Some(&t)).await.expect(200);
    assert!(none.text.contains("No messages match."));
    ui.get("/ui/search?q=%22", Some(&t)).await;
    // Markup typed into a message never becomes markup.
    ui.conversation(
        &t,
        json!({"messages": [{"role": "user", "content": "<b>refund</b> <script>x</script>"}]}),
    )
    .await;
    let p = ui
        .get("/ui/search?q=refund&sort=recent", Some(&t))
        .await
        .expect(200);
    assert!(!p.text.contains("<script>x"));
    assert!(!p.text.contains("<b>"));
}

#[tokio::test]
async fn analytics_draws_charts_for_the_tenant_and_per_agent() {
    let (ui, t, _) = seeded().await;
    let p = ui.get("/ui/analytics", Some(&t)).await.expect(200);
    assert_eq!(p.text.matches("<svg").count(), 5, "{}", p.text);
    assert!(p.text.contains("<polyline"));
    assert!(p.text.contains("Conversations by source"));
    assert!(p.text.contains(r#"<option value="support-bot""#));
    // The cumulative series ends with every conversation.
    assert!(p.text.contains("1 new, 2 in all") || p.text.contains("2 new, 2 in all"));
    let a = ui
        .get("/ui/analytics?agent=sales-bot", Some(&t))
        .await
        .expect(200);
    assert!(a.text.contains("agent sales-bot"));
    assert!(a.text.contains("1 new, 1 in all"));
    assert!(a.text.contains("telegram"));
    assert!(!a.text.contains(">web<"));
}

#[tokio::test]
async fn admins_create_and_revoke_keys_of_their_own_tenant_only() {
    let ui = Ui::spawn().await;
    let admin = ui
        .app
        .token_with("acme", Scopes::DEFAULT.with(Scope::Admin))
        .await;
    let foreign = ui.app.token("globex").await;
    let (foreign_id, _) = foreign.split_once('.').unwrap();
    let page = ui.get("/ui/keys", Some(&admin)).await.expect(200);
    assert!(page.text.contains("this session"));
    assert!(
        !page.text.contains(foreign_id),
        "other tenants' keys are not listed"
    );
    let csrf = page.csrf();

    ui.post(
        "/ui/keys/create",
        Some(&admin),
        &[("csrf", &csrf), ("name", "ci")],
    )
    .await
    .expect(400);
    let created = ui
        .post(
            "/ui/keys/create",
            Some(&admin),
            &[("csrf", &csrf), ("name", "ci bot"), ("read", "on")],
        )
        .await
        .expect(200);
    assert!(created.text.contains("New key created"));
    let at = created
        .text
        .find(r#"id="new-token" readonly value=""#)
        .unwrap();
    let rest = &created.text[at + r#"id="new-token" readonly value=""#.len()..];
    let token = &rest[..rest.find('"').unwrap()];
    let (new_id, _) = token.split_once('.').unwrap();
    // The new key works, with exactly its scope.
    ui.app.get("/v1/conversations", token).await.expect(200);
    let p = ui.get("/ui/keys", Some(&admin)).await.expect(200);
    assert!(p.text.contains("ci bot"));
    assert!(p.text.contains(new_id));

    // Another tenant's key id is not found and stays live.
    ui.post(
        "/ui/keys/revoke",
        Some(&admin),
        &[("csrf", &csrf), ("key_id", foreign_id)],
    )
    .await
    .expect(404);
    ui.app.get("/v1/conversations", &foreign).await.expect(200);
    let r = ui
        .post(
            "/ui/keys/revoke",
            Some(&admin),
            &[("csrf", &csrf), ("key_id", new_id)],
        )
        .await
        .expect(303);
    assert_eq!(r.location(), "/ui/keys?notice=revoked");
    ui.app.get("/v1/conversations", token).await.expect(401);
    let p = ui.get(r.location(), Some(&admin)).await.expect(200);
    assert!(p.text.contains("The key was revoked."));
    assert!(p.text.contains("revoked 20"));
}

#[tokio::test]
async fn admins_see_webhook_endpoints_and_deliveries() {
    let ui = Ui::spawn().await;
    let admin = ui
        .app
        .token_with("acme", Scopes::DEFAULT.with(Scope::Admin))
        .await;
    let empty = ui.get("/ui/webhooks", Some(&admin)).await.expect(200);
    assert!(empty.text.contains("No webhook endpoints."));
    ui.app
        .post(
            "/v1/webhooks",
            &admin,
            &json!({"url": "https://hooks.example.com/confab", "description": "ops <team>"}),
        )
        .await
        .expect(201);
    let p = ui.get("/ui/webhooks", Some(&admin)).await.expect(200);
    assert!(p.text.contains("https://hooks.example.com/confab"));
    assert!(p.text.contains("ops &#60;team&#62;") || p.text.contains("ops &lt;team&gt;"));
    assert!(!p.text.contains("whsec_"), "secrets are never shown");
}

#[tokio::test]
async fn static_assets_are_embedded_and_cached() {
    let ui = Ui::spawn().await;
    let css = ui.get("/ui/static/app.css", None).await.expect(200);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(
        css.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert!(css.text.contains("@media (max-width: 700px)"));
    ui.get("/ui/static/app.js", None).await.expect(200);
    ui.get("/ui/static/nope.js", None).await.expect(404);
    // The API's own 404 is still JSON.
    let api = ui.app.get("/v1/nope", "x").await;
    assert_eq!(api.status, 404);
}

#[tokio::test]
async fn long_transcripts_are_paged_by_seq() {
    let ui = Ui::spawn().await;
    let t = ui.app.token("acme").await;
    let messages: Vec<Value> = (0..230)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            json!({"role": role, "content": format!("line {i:03}")})
        })
        .collect();
    let id = ui.conversation(&t, json!({"messages": messages})).await;
    let first = ui
        .get(&format!("/ui/conversations/{id}"), Some(&t))
        .await
        .expect(200);
    assert!(first.text.contains("line 199") && !first.text.contains("line 200"));
    assert!(
        first
            .text
            .contains(&format!("/ui/conversations/{id}?from=200\">Later messages"))
    );
    assert!(!first.text.contains("Earlier messages"));
    let second = ui
        .get(&format!("/ui/conversations/{id}?from=200"), Some(&t))
        .await
        .expect(200);
    assert!(second.text.contains("line 200") && second.text.contains("line 229"));
    assert!(!second.text.contains("line 199"));
    assert!(second.text.contains(&format!(
        "/ui/conversations/{id}?from=0\">← Earlier messages"
    )));
    assert!(!second.text.contains("Later messages"));
    // A link into the middle (from search) starts there; junk starts at the beginning.
    let mid = ui
        .get(&format!("/ui/conversations/{id}?from=97"), Some(&t))
        .await
        .expect(200);
    assert!(mid.text.contains(r#"id="m-97""#) && !mid.text.contains(r#"id="m-96""#));
    let junk = ui
        .get(&format!("/ui/conversations/{id}?from=abc"), Some(&t))
        .await
        .expect(200);
    assert!(junk.text.contains(r#"id="m-0""#));
}
