//! Export, import and their round trip over HTTP. Golden files pin every format; the data is
//! imported from a fixture with fixed ids and timestamps, so nothing needs normalising.

mod common;

use common::TestApp;
use confab_server::ServerConfig;
use reqwest::Method;
use serde_json::json;

const FIXTURE: &str = include_str!("golden/fixture.ndjson");

/// Raw GET: status, content type and body text (exports are not JSON).
async fn raw(app: &TestApp, path: &str, token: &str) -> (u16, String, String) {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

async fn import(app: &TestApp, token: &str, body: impl Into<reqwest::Body>) -> common::Resp {
    let r = app
        .client
        .post(app.url("/v1/import"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    common::Resp::read(r).await
}

/// Compares with `tests/golden/NAME`; `UPDATE_GOLDEN=1` rewrites the file instead.
fn golden(name: &str, actual: &str) {
    let path = common::repo_root()
        .join("crates/server/tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {name}"));
    assert_eq!(actual, expected, "golden file {name} differs");
}

#[tokio::test]
async fn import_then_export_is_byte_identical_and_formats_match_goldens() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let r = import(&app, &t, FIXTURE).await.expect(200);
    assert_eq!(r.body, json!({"imported": 2, "skipped": 0, "messages": 4}));

    let (s, ct, nd) = raw(&app, "/v1/export?format=ndjson", &t).await;
    assert_eq!((s, ct.as_str()), (200, "application/x-ndjson"));
    assert_eq!(nd, FIXTURE, "export of an import must be byte-identical");

    for (q, file, ct_want) in [
        ("format=json", "export.json", "application/json"),
        ("format=csv", "export.csv", "text/csv; charset=utf-8"),
        (
            "format=csv&rows=messages",
            "export.messages.csv",
            "text/csv; charset=utf-8",
        ),
        (
            "format=markdown",
            "export.md",
            "text/markdown; charset=utf-8",
        ),
    ] {
        let (s, ct, body) = raw(&app, &format!("/v1/export?{q}"), &t).await;
        assert_eq!(s, 200, "{q}: {body}");
        assert_eq!(ct, ct_want, "{q}");
        golden(file, &body);
    }

    // The JSON array holds exactly the NDJSON objects.
    let (_, _, arr) = raw(&app, "/v1/export?format=json", &t).await;
    let arr: Vec<serde_json::Value> = serde_json::from_str(&arr).unwrap();
    let lines: Vec<serde_json::Value> = FIXTURE
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(arr, lines);
}

#[tokio::test]
async fn csv_escapes_commas_quotes_and_newlines() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    import(&app, &t, FIXTURE).await.expect(200);
    let (_, _, body) = raw(&app, "/v1/export?format=csv", &t).await;
    let mut rd = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header[..6],
        ["ID", "Title", "User ID", "Messages", "Created", "Updated"]
    );
    assert_eq!(header[6..], ["Status", "Agent", "Source", "Sentiment"]);
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][1], "Refund, \"urgent\"\nplease");
    assert_eq!(&rows[0][3], "3");
    assert!(
        body.contains("\"Refund, \"\"urgent\"\"\nplease\""),
        "{body}"
    );
    assert!(body.ends_with("\r\n"));

    let (_, _, body) = raw(&app, "/v1/export?format=csv&rows=messages", &t).await;
    let mut rd = csv::Reader::from_reader(body.as_bytes());
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        &rows[0][4],
        "Hi, I was charged twice: \"order #42\".\nCan you help?"
    );
}

#[tokio::test]
async fn sentiment_column_comes_from_insights() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    import(&app, &t, FIXTURE).await.expect(200);
    let (id, secret) = confab_store::keys::split_token(&t).unwrap();
    let p = app.store.authenticate(id, secret).await.unwrap().unwrap();
    app.store
        .put_insights(
            &p.tenant,
            confab_core::Insights {
                conversation_id: "0195a0b0-0000-7000-8000-000000000001".parse().unwrap(),
                sentiment: confab_core::Sentiment::Positive,
                sentiment_score: 0.5,
                task_completed: true,
                topics: vec![],
                summary: String::new(),
                issues: vec![],
                analyzer: "test".into(),
                created_at: confab_core::timefmt::now(),
            },
        )
        .await
        .unwrap();
    let (_, _, body) = raw(&app, "/v1/export?format=csv", &t).await;
    let mut rd = csv::Reader::from_reader(body.as_bytes());
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(&rows[0][9], "positive");
    assert_eq!(&rows[1][9], "");
}

#[tokio::test]
async fn import_is_idempotent() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    import(&app, &t, FIXTURE).await.expect(200);
    let before = app.table_counts().await;
    let r = import(&app, &t, FIXTURE).await.expect(200);
    assert_eq!(r.body, json!({"imported": 0, "skipped": 2, "messages": 0}));
    assert_eq!(app.table_counts().await, before);
}

#[tokio::test]
async fn a_bad_line_is_a_400_naming_it() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let first = FIXTURE.lines().next().unwrap();
    let r = import(&app, &t, format!("{first}\n{{\"id\": 3}}\n"))
        .await
        .expect(400);
    assert!(
        r.body["error"]["details"]["line 2"].is_string(),
        "{}",
        r.text
    );
    let bad_seq = first.replace("\"seq\":1", "\"seq\":5");
    let r = import(&app, &t, bad_seq).await.expect(400);
    assert!(
        r.body["error"]["details"]["line 1.messages[1].seq"].is_string(),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn import_is_exempt_from_the_body_limit_and_export_is_tenant_scoped() {
    let app = TestApp::spawn_with(ServerConfig {
        max_body_bytes: 1024,
        ..ServerConfig::default()
    })
    .await;
    let t = app.token("acme").await;
    assert!(FIXTURE.len() > 1024);
    import(&app, &t, FIXTURE).await.expect(200);
    // Other routes still refuse big bodies.
    let big = json!({"title": "x".repeat(2000)});
    app.call(Method::POST, "/v1/conversations", Some(&t), Some(&big))
        .await
        .expect(413);
    let other = app.token("globex").await;
    let (s, _, body) = raw(&app, "/v1/export", &other).await;
    assert_eq!((s, body.as_str()), (200, ""));
    let (_, _, body) = raw(&app, "/v1/export?format=json", &other).await;
    assert_eq!(body, "[]\n");
}

#[tokio::test]
async fn export_filters_like_the_list() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    import(&app, &t, FIXTURE).await.expect(200);
    let (_, _, body) = raw(&app, "/v1/export?status=completed&format=ndjson", &t).await;
    assert_eq!(body, format!("{}\n", FIXTURE.lines().next().unwrap()));
    let (_, _, body) = raw(&app, "/v1/export?created_before=2025-03-02T00:00:00Z", &t).await;
    assert_eq!(body, format!("{}\n", FIXTURE.lines().nth(1).unwrap()));
    let r = app.get("/v1/export?format=xml", &t).await.expect(400);
    assert!(r.body["error"]["details"]["format"].is_string());
    let r = app
        .get("/v1/export?format=json&rows=messages", &t)
        .await
        .expect(400);
    assert!(r.body["error"]["details"]["rows"].is_string());
}

#[tokio::test]
async fn exported_conversations_created_over_the_api_import_elsewhere_identically() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    for i in 0..3 {
        app.post(
            "/v1/conversations",
            &t,
            &json!({"title": format!("c{i}"), "created_at": format!("2025-01-0{}T00:00:00Z", i + 1),
                    "messages": [{"role": "user", "content": format!("hello {i}")},
                                 {"role": "assistant", "content": "hi, \"there\""}]}),
        )
        .await
        .expect(201);
    }
    let (_, _, first) = raw(&app, "/v1/export", &t).await;
    let fresh = TestApp::spawn().await;
    let t2 = fresh.token("other").await;
    import(&fresh, &t2, first.clone()).await.expect(200);
    let (_, _, second) = raw(&fresh, "/v1/export", &t2).await;
    assert_eq!(first, second);
    assert_eq!(first.lines().count(), 3);
}

#[tokio::test]
async fn the_export_downloads_as_a_named_file_per_format() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    for (format, name) in [
        ("ndjson", "confab-export.ndjson"),
        ("json", "confab-export.json"),
        ("csv", "confab-export.csv"),
    ] {
        let r = app
            .client
            .get(app.url(&format!("/v1/export?format={format}")))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{format}");
        let cd = r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(cd, format!("attachment; filename=\"{name}\""), "{format}");
    }
}
