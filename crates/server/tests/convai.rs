//! The Convai dialect over HTTP, in seed 002's request format: `CONVAI-API-KEY` header and the
//! JSON payload sent as a string (`json.dumps`) with `Content-Type: application/json`.

mod common;

use std::collections::HashSet;

use common::{Resp, TestApp};
use serde_json::{Value, json};

/// POSTs `payload` the way seed 002's Python sample does.
async fn convai(app: &TestApp, route: &str, key: Option<&str>, payload: &str) -> Resp {
    let mut rb = app
        .client
        .post(app.url(&format!("/character/chatHistory/{route}")))
        .header("Content-Type", "application/json")
        .body(payload.to_owned());
    if let Some(k) = key {
        rb = rb.header("CONVAI-API-KEY", k);
    }
    Resp::read(rb.send().await.unwrap()).await
}

async fn list(app: &TestApp, key: &str, payload: Value) -> Resp {
    convai(app, "list", Some(key), &payload.to_string()).await
}

async fn details(app: &TestApp, key: &str, payload: Value) -> Resp {
    convai(app, "details", Some(key), &payload.to_string()).await
}

/// Creates a session of `char_id` through the native API; answers its id (dashed).
async fn session(
    app: &TestApp,
    token: &str,
    char_id: &str,
    created_at: &str,
    msgs: Value,
) -> String {
    let b = json!({"agent_id": char_id, "created_at": created_at, "messages": msgs});
    let r = app.post("/v1/conversations", token, &b).await.expect(201);
    r.body["id"].as_str().unwrap().to_owned()
}

fn hex(id: &str) -> String {
    id.replace('-', "")
}

fn session_ids(r: &Resp) -> Vec<String> {
    r.body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionID"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sessions_per_character_newest_first() {
    let app = TestApp::spawn().await;
    let key = app.token("acme").await;
    // Three characters, created interleaved so each list must filter and order.
    let mut by_char: Vec<Vec<String>> = vec![Vec::new(); 3];
    for k in 0..12 {
        let c = k % 3;
        if c == 2 && k > 2 {
            continue; // character 2 has a single session
        }
        let t = format!("2024-09-25T{:02}:54:56.{:06}Z", 8 + k, k * 1111);
        let msgs = json!([{"role": "user", "content": format!("hello {k}")}]);
        by_char[c].push(session(&app, &key, &format!("char-{c}"), &t, msgs).await);
    }
    for (c, ids) in by_char.iter().enumerate() {
        let want: Vec<String> = ids.iter().rev().map(|i| hex(i)).collect();
        for limit in [json!("-1"), json!(-1), Value::Null] {
            let mut p = json!({"charID": format!("char-{c}")});
            if !limit.is_null() {
                p["limit"] = limit;
            }
            let r = list(&app, &key, p).await.expect(200);
            assert_eq!(session_ids(&r), want, "char-{c}");
        }
        let r = list(
            &app,
            &key,
            json!({"charID": format!("char-{c}"), "limit": "2"}),
        )
        .await
        .expect(200);
        assert_eq!(session_ids(&r), want[..want.len().min(2)].to_vec());
        let r = list(
            &app,
            &key,
            json!({"charID": format!("char-{c}"), "limit": 1}),
        )
        .await
        .expect(200);
        assert_eq!(session_ids(&r), want[..1].to_vec());
    }
    // A character nobody talked to has no sessions.
    let r = list(&app, &key, json!({"charID": "char-9", "limit": "-1"}))
        .await
        .expect(200);
    assert_eq!(r.body, json!([]));
}

#[tokio::test]
async fn session_fields_in_utc() {
    let app = TestApp::spawn().await;
    let key = app.token("acme").await;
    let msgs = json!([{"role": "user", "content": "Hi there"}]);
    // 22:52:57 at +02:00 is 20:52:57 UTC; an evening in UTC-5 is the next day in UTC.
    let a = session(
        &app,
        &key,
        "museum",
        "2024-09-25T22:52:57.5+02:00",
        msgs.clone(),
    )
    .await;
    let b = session(&app, &key, "museum", "2024-09-25T21:54:56-05:00", msgs).await;
    let patch = json!({"added_to_memory": true});
    app.call(
        reqwest::Method::PATCH,
        &format!("/v1/conversations/{a}"),
        Some(&key),
        Some(&patch),
    )
    .await
    .expect(200);
    let r = list(&app, &key, json!({"charID": "museum", "limit": "-1"}))
        .await
        .expect(200);
    assert_eq!(
        r.body,
        json!([
            {"sessionID": hex(&b), "date": "26-09-2024", "time": "02:54:56", "is_added_to_memory": false},
            {"sessionID": hex(&a), "date": "25-09-2024", "time": "20:52:57", "is_added_to_memory": true},
        ])
    );
    for s in session_ids(&r) {
        assert_eq!(s.len(), 32);
        assert!(
            s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
}

#[tokio::test]
async fn details_group_interactions() {
    let app = TestApp::spawn().await;
    let key = app.token("acme").await;
    let t = |s: u32, us: u32| format!("2024-09-25T19:54:{s:02}.{us:06}Z");
    let msgs = json!([
        {"role": "system", "content": "You are a museum guide.", "created_at": t(50, 0)},
        {"role": "assistant", "content": "Welcome to the History Museum!", "created_at": t(51, 1)},
        {"role": "user", "content": "Hi there", "created_at": t(59, 124_733)},
        {"role": "tool", "content": "{\"fossils\": 3}", "created_at": t(59, 200_000)},
        {"role": "assistant", "content": "We have the most ancient fossil.", "created_at": t(59, 300_000)},
        {"role": "assistant", "content": "Would you like a tour?", "created_at": "2024-09-25T19:55:00Z"},
        {"role": "user", "content": "<wave>", "is_trigger": true, "created_at": "2024-09-25T19:56:00Z"},
        {"role": "user", "content": "Yes please", "created_at": "2024-09-25T21:57:01.5+02:00"},
        {"role": "assistant", "content": "Follow me.", "created_at": "2024-09-25T19:57:02Z"},
    ]);
    let id = session(&app, &key, "museum", &t(50, 0), msgs).await;
    let want = json!([
        {"timestamp": "2024-09-25 19:54:51.000001", "interaction": [
            {"speaker": "Character", "message": "Welcome to the History Museum!"}], "is_trigger_input": false},
        {"timestamp": "2024-09-25 19:54:59.124733", "interaction": [
            {"speaker": "User", "message": "Hi there"},
            {"speaker": "Character", "message": "We have the most ancient fossil."},
            {"speaker": "Character", "message": "Would you like a tour?"}], "is_trigger_input": false},
        {"timestamp": "2024-09-25 19:56:00.000000", "interaction": [
            {"speaker": "User", "message": "<wave>"}], "is_trigger_input": true},
        {"timestamp": "2024-09-25 19:57:01.500000", "interaction": [
            {"speaker": "User", "message": "Yes please"},
            {"speaker": "Character", "message": "Follow me."}], "is_trigger_input": false},
    ]);
    // Either id form names the session.
    for sid in [hex(&id), id.clone(), hex(&id).to_uppercase()] {
        let r = details(&app, &key, json!({"charID": "museum", "sessionID": sid}))
            .await
            .expect(200);
        assert_eq!(r.body, want);
    }
    // A session with no messages has no interactions.
    let empty = session(&app, &key, "museum", &t(1, 0), json!([])).await;
    let r = details(
        &app,
        &key,
        json!({"charID": "museum", "sessionID": hex(&empty)}),
    )
    .await
    .expect(200);
    assert_eq!(r.body, json!([]));
}

#[tokio::test]
async fn several_characters_and_sessions_round_trip() {
    let app = TestApp::spawn().await;
    let key = app.token("acme").await;
    let mut made = Vec::new();
    for c in 0..3 {
        for s in 0..4 {
            let turns = (0..(c + s + 1))
                .flat_map(|i| {
                    [
                        json!({"role": "user", "content": format!("q{c}.{s}.{i}")}),
                        json!({"role": "assistant", "content": format!("a{c}.{s}.{i}")}),
                    ]
                })
                .collect::<Vec<_>>();
            let at = format!("2024-09-2{c}T10:{s:02}:00Z");
            let id = session(&app, &key, &format!("char-{c}"), &at, json!(turns)).await;
            made.push((c, s, id));
        }
    }
    for c in 0..3 {
        let r = list(
            &app,
            &key,
            json!({"charID": format!("char-{c}"), "limit": "-1"}),
        )
        .await
        .expect(200);
        let listed = session_ids(&r);
        assert_eq!(listed.len(), 4);
        for sid in listed {
            let (_, s, _) = made.iter().find(|(_, _, id)| hex(id) == sid).unwrap();
            let r = details(
                &app,
                &key,
                json!({"charID": format!("char-{c}"), "sessionID": sid}),
            )
            .await
            .expect(200);
            let v = r.body.as_array().unwrap();
            assert_eq!(v.len(), c + s + 1);
            for (i, it) in v.iter().enumerate() {
                assert_eq!(
                    it["interaction"],
                    json!([
                        {"speaker": "User", "message": format!("q{c}.{s}.{i}")},
                        {"speaker": "Character", "message": format!("a{c}.{s}.{i}")},
                    ])
                );
            }
        }
    }
}

fn fields(r: &Resp) -> HashSet<String> {
    r.body["error"]["details"]
        .as_object()
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let key = app.token("acme").await;
    let id = session(&app, &key, "museum", "2024-09-25T10:00:00Z", json!([])).await;
    let cases: Vec<(&str, String, &str)> = vec![
        ("list", json!({"limit": "-1"}).to_string(), "charID"),
        (
            "list",
            json!({"charID": "", "limit": "-1"}).to_string(),
            "charID",
        ),
        ("list", json!({"charID": "  "}).to_string(), "charID"),
        ("list", json!({"charID": 42}).to_string(), "charID"),
        (
            "list",
            json!({"charID": "museum", "limit": "0"}).to_string(),
            "limit",
        ),
        (
            "list",
            json!({"charID": "museum", "limit": 0}).to_string(),
            "limit",
        ),
        (
            "list",
            json!({"charID": "museum", "limit": "-2"}).to_string(),
            "limit",
        ),
        (
            "list",
            json!({"charID": "museum", "limit": "all"}).to_string(),
            "limit",
        ),
        (
            "list",
            json!({"charID": "museum", "limit": 2.5}).to_string(),
            "limit",
        ),
        (
            "list",
            json!({"charID": "museum", "limit": [1]}).to_string(),
            "limit",
        ),
        (
            "list",
            json!({"charID": "museum", "lmit": "5"}).to_string(),
            "lmit",
        ),
        ("list", "".to_owned(), "body"),
        ("list", "charID=museum".to_owned(), "body"),
        ("list", "[]".to_owned(), "body"),
        (
            "details",
            json!({"sessionID": hex(&id)}).to_string(),
            "charID",
        ),
        (
            "details",
            json!({"charID": "museum"}).to_string(),
            "sessionID",
        ),
        (
            "details",
            json!({"charID": "museum", "sessionID": ""}).to_string(),
            "sessionID",
        ),
        (
            "details",
            json!({"charID": "museum", "sessionID": 7}).to_string(),
            "sessionID",
        ),
        (
            "details",
            json!({"charID": "museum", "sessionID": "c123"}).to_string(),
            "sessionID",
        ),
        ("details", "{".to_owned(), "body"),
    ];
    for (route, payload, field) in cases {
        let r = convai(&app, route, Some(&key), &payload).await;
        assert_eq!(r.status, 400, "{route} {payload}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "VALIDATION_ERROR");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(field),
            "{route} {payload}: {}",
            r.text
        );
    }
    let r = list(&app, &key, json!({"limit": "0"})).await.expect(400);
    assert_eq!(fields(&r), HashSet::from(["charID".to_owned()]));
}

#[tokio::test]
async fn missing_or_bad_key_is_401() {
    let app = TestApp::spawn().await;
    let key = app.token("acme").await;
    let id = session(&app, &key, "museum", "2024-09-25T10:00:00Z", json!([])).await;
    let payloads = [
        (
            "list",
            json!({"charID": "museum", "limit": "-1"}).to_string(),
        ),
        (
            "details",
            json!({"charID": "museum", "sessionID": hex(&id)}).to_string(),
        ),
        ("list", "not json".to_owned()),
    ];
    for (route, payload) in &payloads {
        for k in [None, Some(""), Some("nope"), Some("k_nope.secret")] {
            let r = convai(&app, route, k, payload).await;
            assert_eq!(r.status, 401, "{route} with {k:?}: {}", r.text);
            assert_eq!(r.body["error"]["code"], "UNAUTHORIZED");
        }
    }
    let (id_part, _) = key.split_once('.').unwrap();
    let r = convai(
        &app,
        "list",
        Some(&format!("{id_part}.wrong")),
        &payloads[0].1,
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn other_characters_and_tenants_sessions_are_404() {
    let app = TestApp::spawn().await;
    let a = app.token("acme").await;
    let b = app.token("globex").await;
    let msgs = json!([{"role": "user", "content": "Hi"}]);
    let mine = session(&app, &a, "museum", "2024-09-25T10:00:00Z", msgs.clone()).await;
    let other_char = session(&app, &a, "zoo", "2024-09-25T10:00:00Z", msgs.clone()).await;
    let theirs = session(&app, &b, "museum", "2024-09-25T11:00:00Z", msgs.clone()).await;
    let unknown = "0190a0b0000070008000000000000000".to_owned();
    for sid in [hex(&other_char), hex(&theirs), theirs.clone(), unknown] {
        let r = details(&app, &a, json!({"charID": "museum", "sessionID": sid}))
            .await
            .expect(404);
        assert_eq!(r.body["error"]["code"], "NOT_FOUND");
    }
    // A session with no character is nobody's.
    let plain = app
        .post("/v1/conversations", &a, &json!({"messages": msgs}))
        .await
        .expect(201);
    let sid = hex(plain.body["id"].as_str().unwrap());
    details(&app, &a, json!({"charID": "museum", "sessionID": sid}))
        .await
        .expect(404);
    // Same charID, two tenants: each lists only its own.
    let r = list(&app, &a, json!({"charID": "museum"}))
        .await
        .expect(200);
    assert_eq!(session_ids(&r), vec![hex(&mine)]);
    let r = list(&app, &b, json!({"charID": "museum"}))
        .await
        .expect(200);
    assert_eq!(session_ids(&r), vec![hex(&theirs)]);
    details(
        &app,
        &b,
        json!({"charID": "museum", "sessionID": hex(&theirs)}),
    )
    .await
    .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_python_samples_work() {
    let app = TestApp::spawn().await;
    let key = app.token("acme").await;
    let old = session(
        &app,
        &key,
        "guide",
        "2024-09-25T19:54:56Z",
        json!([{"role": "user", "content": "Hello"}]),
    )
    .await;
    let new = session(
        &app,
        &key,
        "guide",
        "2024-09-25T20:52:57Z",
        json!([
            {"role": "user", "content": "Hi there", "created_at": "2024-09-25T20:52:59.124733Z"},
            {"role": "assistant", "content": "Welcome to the History Museum.", "created_at": "2024-09-25T20:53:00Z"},
        ]),
    )
    .await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/convai_samples.py"
    );
    let base = app.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("CONVAI_BASE_URL", base)
            .env("CONVAI_API_KEY", key)
            .env("CONVAI_CHAR_ID", "guide")
            .output()
            .expect("python3 runs (with the `requests` package installed)")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "samples failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        out["list"],
        json!([
            {"sessionID": hex(&new), "date": "25-09-2024", "time": "20:52:57", "is_added_to_memory": false},
            {"sessionID": hex(&old), "date": "25-09-2024", "time": "19:54:56", "is_added_to_memory": false},
        ])
    );
    assert_eq!(
        out["details"],
        json!([{
            "timestamp": "2024-09-25 20:52:59.124733",
            "interaction": [
                {"speaker": "User", "message": "Hi there"},
                {"speaker": "Character", "message": "Welcome to the History Museum."},
            ],
            "is_trigger_input": false,
        }])
    );
}
