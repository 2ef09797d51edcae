//! `GET /v1/search` over HTTP: ranking, snippets, languages, query syntax, filters, paging,
//! tenant isolation, and the index following writes and deletes.

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

/// Creates a conversation; `msgs` are (role, content).
async fn conv(app: &TestApp, t: &str, extra: Value, msgs: &[(&str, &str)]) -> String {
    let mut body = extra;
    body["messages"] = msgs
        .iter()
        .map(|(r, c)| json!({"role": r, "content": c}))
        .collect();
    let r = app.post("/v1/conversations", t, &body).await.expect(201);
    r.body["id"].as_str().unwrap().to_owned()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn search(app: &TestApp, t: &str, q: &str, extra: &str) -> Value {
    app.get(&format!("/v1/search?q={}{extra}", enc(q)), t)
        .await
        .expect(200)
        .body
}

fn contents(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["snippet"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn ranks_and_highlights() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = conv(
        &app,
        &t,
        json!({}),
        &[
            ("user", "I would like a refund for my order, please"),
            ("assistant", "Refund approved: refund refund"),
            ("user", "Nothing to see here"),
        ],
    )
    .await;
    let v = search(&app, &t, "refund", "").await;
    let hits = v["data"].as_array().unwrap();
    assert_eq!(hits.len(), 2);
    // More occurrences in a shorter message ranks first.
    assert_eq!(hits[0]["seq"], 1);
    assert_eq!(hits[0]["role"], "assistant");
    assert!(hits[0]["score"].as_f64().unwrap() > hits[1]["score"].as_f64().unwrap());
    assert_eq!(hits[0]["conversation_id"], id.as_str());
    assert_eq!(
        hits[0]["snippet"],
        "<mark>Refund</mark> approved: <mark>refund</mark> <mark>refund</mark>"
    );
    for k in ["message_id", "created_at"] {
        assert!(hits[0][k].is_string(), "{k}");
    }
    assert!(v["next_cursor"].is_null());
    // Ranked the same where a filter makes the search read its rows (no kept window; on
    // PostgreSQL the window's statement ranks them itself, after its limit).
    let v = search(&app, &t, "refund", &format!("&conversation_id={id}")).await;
    let hits = v["data"].as_array().unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["seq"], 1);
    assert!(hits[0]["score"].as_f64().unwrap() > hits[1]["score"].as_f64().unwrap());
    assert_eq!(
        hits[0]["snippet"],
        "<mark>Refund</mark> approved: <mark>refund</mark> <mark>refund</mark>"
    );
}

#[tokio::test]
async fn folds_accents_and_case() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    conv(
        &app,
        &t,
        json!({}),
        &[("user", "Une Crème Brûlée au CAFÉ, s'il vous plaît")],
    )
    .await;
    for q in ["creme", "BRULEE", "café", "Cafe", "plait"] {
        let v = search(&app, &t, q, "").await;
        assert_eq!(v["data"].as_array().unwrap().len(), 1, "{q}");
    }
    let v = search(&app, &t, "creme", "").await;
    assert!(contents(&v)[0].contains("<mark>Crème</mark>"));
}

#[tokio::test]
async fn finds_chinese_and_japanese_words_inside_text() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    conv(
        &app,
        &t,
        json!({}),
        &[("user", "我很喜欢学习中文和日本语。")],
    )
    .await;
    conv(
        &app,
        &t,
        json!({}),
        &[("user", "昨日は東京タワーに行きました")],
    )
    .await;
    // A two-character Chinese word, a Japanese katakana word, a one-character query.
    for (q, n) in [
        ("中文", 1),
        ("タワー", 1),
        ("東京", 1),
        ("学习中文", 1),
        ("日", 2),
    ] {
        let v = search(&app, &t, q, "").await;
        assert_eq!(v["data"].as_array().unwrap().len(), n, "{q}");
    }
    // Characters present but not adjacent are not a substring.
    assert_eq!(search(&app, &t, "中日", "").await["data"], json!([]));
    let v = search(&app, &t, "中文", "").await;
    assert_eq!(
        contents(&v)[0],
        "我很喜欢学习<mark>中</mark><mark>文</mark>和日本语。"
    );
}

#[tokio::test]
async fn phrases_prefixes_or_and_exclusions() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    conv(
        &app,
        &t,
        json!({}),
        &[("user", "my credit card was declined")],
    )
    .await;
    conv(&app, &t, json!({}), &[("user", "card credit is different")]).await;
    conv(&app, &t, json!({}), &[("user", "the invoice is wrong")]).await;
    let n = |v: Value| v["data"].as_array().unwrap().len();
    assert_eq!(n(search(&app, &t, "\"credit card\"", "").await), 1);
    assert_eq!(n(search(&app, &t, "credit card", "").await), 2);
    assert_eq!(n(search(&app, &t, "decl*", "").await), 1);
    assert_eq!(n(search(&app, &t, "invoice OR declined", "").await), 2);
    assert_eq!(n(search(&app, &t, "credit -declined", "").await), 1);
}

#[tokio::test]
async fn unreadable_queries_are_400_naming_q() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    for q in [
        "",
        "\"unclosed",
        "OR",
        "a OR",
        "*",
        "-only",
        "\"\"",
        "NEAR(",
        "a AND",
    ] {
        let r = app.get(&format!("/v1/search?q={}", enc(q)), &t).await;
        if q == "NEAR(" || q == "a AND" {
            // Engine operators are plain words here: never a 500.
            assert_eq!(r.status.as_u16(), 200, "{q}: {}", r.text);
            continue;
        }
        let r = r.expect(400);
        assert!(
            r.body["error"]["details"]["q"].is_string(),
            "{q}: {}",
            r.text
        );
    }
    let r = app.get("/v1/search", &t).await.expect(400);
    assert!(r.text.contains('q'), "{}", r.text);
    let r = app.get("/v1/search?q=a&cursor=nope", &t).await.expect(400);
    assert!(r.body["error"]["details"]["cursor"].is_string());
    let r = app.get("/v1/search?q=a&limit=101", &t).await.expect(400);
    assert!(r.body["error"]["details"]["limit"].is_string());
}

#[tokio::test]
async fn filters() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let a = conv(
        &app,
        &t,
        json!({"agent_id": "bot-a", "user_id": "u1", "source": "web", "status": "completed"}),
        &[("user", "alpha question"), ("assistant", "alpha answer")],
    )
    .await;
    app.post(
        "/v1/conversations",
        &t,
        &json!({"agent_id": "bot-b", "user_id": "u2", "source": "telegram",
                "messages": [{"role": "user", "content": "alpha later", "created_at": "2030-01-01T00:00:00Z"}]}),
    )
    .await
    .expect(201);
    let n = |v: Value| v["data"].as_array().unwrap().len();
    assert_eq!(n(search(&app, &t, "alpha", "").await), 3);
    assert_eq!(n(search(&app, &t, "alpha", "&role=assistant").await), 1);
    assert_eq!(n(search(&app, &t, "alpha", "&agent_id=bot-a").await), 2);
    assert_eq!(n(search(&app, &t, "alpha", "&user_id=u2").await), 1);
    assert_eq!(n(search(&app, &t, "alpha", "&source=telegram").await), 1);
    assert_eq!(n(search(&app, &t, "alpha", "&status=completed").await), 2);
    assert_eq!(n(search(&app, &t, "alpha", "&status=active").await), 1);
    assert_eq!(
        n(search(&app, &t, "alpha", &format!("&conversation_id={a}")).await),
        2
    );
    assert_eq!(
        n(search(&app, &t, "alpha", "&created_after=2029-01-01T00:00:00Z").await),
        1
    );
    assert_eq!(
        n(search(&app, &t, "alpha", "&created_before=2029-01-01T00:00:00Z").await),
        2
    );
    let r = app
        .get("/v1/search?q=a&created_after=soon", &t)
        .await
        .expect(400);
    assert!(r.body["error"]["details"]["created_after"].is_string());
    let r = app.get("/v1/search?q=a&role=bot", &t).await.expect(400);
    assert!(r.text.contains("role"), "{}", r.text);
}

#[tokio::test]
async fn pages_with_cursors_in_both_orders() {
    let msgs: Vec<String> = (0..25).map(|i| format!("page test number {i}")).collect();
    let pairs: Vec<(&str, &str)> = msgs.iter().map(|m| ("user", m.as_str())).collect();
    for sort in ["", "&sort=recent"] {
        let app = TestApp::spawn().await;
        let t = app.token("acme").await;
        conv(&app, &t, json!({}), &pairs).await;
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let extra = match &cursor {
                Some(c) => format!("&limit=10{sort}&cursor={c}"),
                None => format!("&limit=10{sort}"),
            };
            let v = search(&app, &t, "page", &extra).await;
            pages += 1;
            for h in v["data"].as_array().unwrap() {
                seen.push(h["seq"].as_i64().unwrap());
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            // Writes between pages do not shift them.
            conv(&app, &t, json!({}), &[("user", "page intruder")]).await;
        }
        assert_eq!(pages, 3, "{sort}");
        seen.sort();
        assert_eq!(seen, (0..25).collect::<Vec<_>>(), "{sort}");
    }
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    conv(&app, &t, json!({}), &pairs).await;
    if sort_mismatch(&app, &t).await {
        panic!("a relevance cursor must not be accepted by a recent search");
    }
}

async fn sort_mismatch(app: &TestApp, t: &str) -> bool {
    let v = search(app, t, "page", "&limit=1").await;
    let c = v["next_cursor"].as_str().unwrap();
    let r = app
        .get(&format!("/v1/search?q=page&sort=recent&cursor={c}"), t)
        .await;
    r.status.as_u16() != 400
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = TestApp::spawn().await;
    let a = app.token("acme").await;
    let b = app.token("globex").await;
    conv(&app, &a, json!({}), &[("user", "secret acme plans")]).await;
    assert_eq!(search(&app, &b, "secret", "").await["data"], json!([]));
    assert_eq!(search(&app, &b, "sec*", "").await["data"], json!([]));
    assert_eq!(
        search(&app, &a, "secret", "").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn the_index_follows_appends_and_deletes() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let id = conv(&app, &t, json!({}), &[("user", "first words")]).await;
    app.post(
        &format!("/v1/conversations/{id}/messages"),
        &t,
        &json!({"messages": [{"role": "assistant", "content": "appended zebra"}]}),
    )
    .await
    .expect(200);
    let v = search(&app, &t, "zebra", "").await;
    assert_eq!(v["data"][0]["seq"], 1);
    app.call(
        Method::DELETE,
        &format!("/v1/conversations/{id}"),
        Some(&t),
        None,
    )
    .await
    .expect(204);
    assert_eq!(search(&app, &t, "zebra", "").await["data"], json!([]));
    assert_eq!(search(&app, &t, "first", "").await["data"], json!([]));
    for (table, n) in app.table_counts().await {
        if table == "messages_fts" || table == "messages" || table == "conversations" {
            assert_eq!(n, 0, "{table}");
        }
    }
}

/// A search repeated with nothing written since starts from the window of candidates the
/// previous one kept (sqlite/windows.rs, postgres/kept.rs; `confab_store_search_windows_total` counts
/// how each search found its window), and one repeated after writes still answers them: the
/// new message first, the deleted conversation gone.
#[tokio::test]
async fn a_repeated_search_follows_writes_made_since() {
    let app = TestApp::spawn().await;
    let t = app.token("acme").await;
    let a = conv(
        &app,
        &t,
        json!({}),
        &[("user", "a quagga and some other words")],
    )
    .await;
    let first = search(&app, &t, "quagga", "").await;
    assert_eq!(contents(&first).len(), 1);
    let windows = |m: &str, outcome: &str| -> u64 {
        let line = format!("confab_store_search_windows_total{{outcome=\"{outcome}\"}} ");
        m.lines()
            .find(|l| l.starts_with(&line))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let before = windows(&app.metrics().await, "kept");
    for _ in 0..5 {
        assert_eq!(search(&app, &t, "quagga", "").await, first);
    }
    // Other tests of this binary only add to the count.
    assert!(windows(&app.metrics().await, "kept") >= before + 5);
    let forwarded = windows(&app.metrics().await, "forward");
    app.post(
        &format!("/v1/conversations/{a}/messages"),
        &t,
        &json!({"messages": [{"role": "assistant", "content": "quagga quagga"}]}),
    )
    .await
    .expect(200);
    let v = search(&app, &t, "quagga", "").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["seq"], 1, "{v}");
    // The window was brought forward past the append, on both backends, not read again.
    assert!(windows(&app.metrics().await, "forward") > forwarded);
    // A newer conversation keeps the newest message where it is while the first one goes.
    let b = conv(&app, &t, json!({}), &[("user", "quagga")]).await;
    assert_eq!(contents(&search(&app, &t, "quagga", "").await).len(), 3);
    app.call(
        Method::DELETE,
        &format!("/v1/conversations/{a}"),
        Some(&t),
        None,
    )
    .await
    .expect(204);
    let v = search(&app, &t, "quagga", "").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["data"][0]["conversation_id"], b.as_str());
}

/// The server's workers poll the writer twice a second, and those polls change nothing: the
/// index is still merged into one segment once the writes stop (SQLite's idle merge,
/// sqlite/merge.rs, waits a second without changes). Searches answer the same before and after.
#[tokio::test]
async fn the_index_is_merged_once_writes_stop() {
    let app = TestApp::spawn().await;
    if app.is_pg() {
        return;
    }
    let t = app.token("acme").await;
    // One transaction each; FTS5 merges its per-transaction segments only four at a time.
    for i in 0..39 {
        let text = format!("refund number {i} {}", "card ".repeat(i % 5));
        conv(&app, &t, json!({}), &[("user", text.as_str())]).await;
    }
    let segments = || async {
        let rows = app
            .sql(
                "SELECT hex(substr(block, 1, 10)) FROM messages_fts_data WHERE id = 10",
                &[],
            )
            .await;
        let hex = rows[0][0].as_str().unwrap().to_owned();
        let b: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        // A 4-byte cookie, FTS5's version-2 marker, then levels and segments (small varints).
        let at = if b[4..8] == [0xff, 0, 0, 1] { 8 } else { 4 };
        b[at + 1]
    };
    let before = search(&app, &t, "refund", "&limit=100").await;
    let mut n = segments().await;
    assert!(n > 1, "the writes left {n} segment(s)");
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        n = segments().await;
        if n == 1 {
            break;
        }
    }
    assert_eq!(n, 1, "still {n} segments 10 s after the last write");
    assert_eq!(search(&app, &t, "refund", "&limit=100").await, before);
}

/// A tenant with 12,003 messages holding `okra`: the three oldest, in a conversation of
/// agent `old` from source `legacy`, under all the others, of agent `new` from `web`. Its
/// token and that conversation's id.
async fn okra(app: &TestApp) -> (String, String) {
    let t = app.token("acme").await;
    let many: Vec<(&str, String)> = (0..2_000).map(|i| ("user", format!("okra {i}"))).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(r, c)| (*r, c.as_str())).collect();
    let oldest = conv(
        app,
        &t,
        json!({"agent_id": "old", "source": "legacy"}),
        &many[..3],
    )
    .await;
    for _ in 0..6 {
        conv(app, &t, json!({"agent_id": "new", "source": "web"}), &many).await;
    }
    (t, oldest)
}

/// `confab_store_reads_handed_over_total` as `/metrics` shows it (0 before the first).
async fn handed_over(app: &TestApp) -> u64 {
    let m = app.metrics().await;
    m.lines()
        .find_map(|l| l.strip_prefix("confab_store_reads_handed_over_total "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// A search that walks many matches (its filter, which no index narrows, keeps only the
/// oldest conversation's) runs long; on SQLite, where the hot reads run on the runtime's
/// worker threads, it gives its worker's other requests to another thread
/// (store/src/sqlite/handoff.rs) and answers the same. A prefix search goes there at once. The
/// store's own test shows the other tasks running meanwhile; here, the real server's answers
/// and the count of such reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_search_gives_its_worker_away_and_answers_the_same() {
    let app = TestApp::spawn().await;
    let (t, oldest) = okra(&app).await;
    let before = handed_over(&app).await;
    let v = search(&app, &t, "okra", "&source=legacy").await;
    let hits = v["data"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h["conversation_id"] == oldest.as_str()));
    let none = search(&app, &t, "okra", "&source=nowhere&sort=recent").await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    let prefix = search(&app, &t, "okr*", "&source=legacy").await;
    assert_eq!(contents(&prefix).len(), 3);
    let after = handed_over(&app).await;
    if app.is_pg() {
        // PostgreSQL's reads wait on sockets, never on a worker, and none of these runs
        // past its budget (store/tests/pg_long_searches.rs makes some).
        assert_eq!(after, before);
    } else {
        assert!(after >= before + 3, "{before} → {after}");
    }
}

/// On PostgreSQL a search with filters that runs past its budget (50 ms) gives its connection
/// back and waits for a long read's turn (store/src/postgres/search.rs, `search`), counted in
/// `confab_store_reads_handed_over_total`; one that finds a turn free takes it and runs
/// without a budget, so a long search alone is never stopped. Searches are held past the
/// budget by a lock on `messages`; once it goes, each answers as it would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_postgresql_search_alone_keeps_running_and_the_others_wait_their_turn() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    if !app.is_pg() {
        return;
    }
    let (t, oldest) = okra(&app).await;
    let turns = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
    let before = handed_over(&app).await;
    use sqlx::Connection;
    let mut lock = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let spawn = |n: usize| -> Vec<_> {
        (0..n)
            .map(|_| {
                let (app, t) = (app.clone(), t.clone());
                tokio::spawn(async move { search(&app, &t, "okra", "&source=legacy").await })
            })
            .collect()
    };
    // Polled rather than slept on: on a loaded machine a request can take its time to reach
    // PostgreSQL, and the test waits for what it asserts, 20 s at most.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let waiting = || async {
        let mut c = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
        let n = common::testdb::waiting_on_locks(&mut c).await;
        let _ = c.close().await;
        n
    };
    let mut searches = spawn(turns);
    // Each of the first searches holds a turn once it waits in PostgreSQL.
    while waiting().await < turns as i64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first searches never reached the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        handed_over(&app).await,
        before,
        "searches that found a turn free"
    );
    searches.extend(spawn(2));
    while handed_over(&app).await < before + 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "two searches were not handed over"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        handed_over(&app).await,
        before + 2,
        "searches past their budget"
    );
    sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
    for s in searches {
        let v = s.await.unwrap();
        let hits = v["data"].as_array().unwrap();
        assert_eq!(hits.len(), 3, "{v}");
        assert!(hits.iter().all(|h| h["conversation_id"] == oldest.as_str()));
    }
    let _ = lock.close().await;
}

/// A search within a few conversations of a word in nearly every message starts from those
/// conversations (store/src/sqlite/driven.rs, postgres/driven.rs): it answers their hits in
/// both orders and is not a long read, so on SQLite it never gives its worker away, where
/// walking the word's 12,003 matches did. An agent with no conversations, or another
/// tenant's conversation, finds nothing. `confab_store_search_filtered_total` counts where
/// each started; a rare word's search starts from the index. On PostgreSQL the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_within_a_few_conversations_starts_from_them() {
    let app = TestApp::spawn().await;
    let (t, oldest) = okra(&app).await;
    let rare = conv(
        &app,
        &t,
        json!({"agent_id": "new"}),
        &[("user", "okra quince")],
    )
    .await;
    if app.is_pg() {
        // PostgreSQL weighs the sides by the planner's statistics of the words.
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
        sqlx::raw_sql("ANALYZE messages")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let theirs = app.token("globex").await;
    let before = handed_over(&app).await;
    let started = |m: &str, from: &str| {
        let line = format!("confab_store_search_filtered_total{{from=\"{from}\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap())
    };
    let theirs_before = started(&app.metrics().await, "conversations");
    for filter in [
        format!("&conversation_id={oldest}"),
        "&agent_id=old".to_owned(),
        format!("&conversation_id={oldest}&sort=recent"),
        "&agent_id=old&role=user&sort=recent".to_owned(),
    ] {
        let v = search(&app, &t, "okra", &filter).await;
        let hits = v["data"].as_array().unwrap();
        assert_eq!(hits.len(), 3, "{filter}: {v}");
        assert!(hits.iter().all(|h| h["conversation_id"] == oldest.as_str()));
        let mut seqs: Vec<i64> = hits.iter().map(|h| h["seq"].as_i64().unwrap()).collect();
        if filter.contains("recent") {
            // Newest first.
            assert_eq!(seqs, [2, 1, 0], "{filter}");
        }
        seqs.sort_unstable();
        assert_eq!(seqs, [0, 1, 2], "{filter}");
    }
    for filter in [
        "&agent_id=nobody",
        "&agent_id=nobody&sort=recent",
        "&user_id=nobody",
    ] {
        let v = search(&app, &t, "okra", filter).await;
        assert_eq!(v["data"].as_array().unwrap().len(), 0, "{filter}: {v}");
    }
    // Another tenant's conversation: nothing of it, and nothing of the tenant's own.
    let v = search(&app, &theirs, "okra", &format!("&conversation_id={oldest}")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(handed_over(&app).await, before);
    // On PostgreSQL a word in every message is walked in one statement whose join its
    // planner turns around itself, so those are left to it; only the other tenant's search,
    // to which the word is unknown (the index's plan), is weighed, and no conversation of its
    // passes. A word of a few per cent is weighed: search_filtered.rs.
    let m = app.metrics().await;
    let from_them = if app.is_pg() { 1 } else { 8 };
    assert_eq!(
        started(&m, "conversations"),
        theirs_before + from_them,
        "{m}"
    );
    let index_before = started(&m, "index");
    // A word in one message, within an agent's 12,001: found by the index.
    let v = search(&app, &t, "quince", "&agent_id=new").await;
    let hits = v["data"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{v}");
    assert_eq!(hits[0]["conversation_id"], rare.as_str());
    let m = app.metrics().await;
    assert_eq!(started(&m, "index"), index_before + 1, "{m}");
}

/// A read past the store's time limit (`confab serve` sets it to the request timeout) is
/// stopped and answered 408, as the request timeout answers; the reads within it are not, and
/// the server goes on serving. On PostgreSQL the limit is each search statement's
/// `statement_timeout` (1 ms at least: PostgreSQL reads 0 as none), so a search held by a lock
/// on `messages` is stopped there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_its_time_limit_answers_408() {
    let dir = common::TestDir::new().await;
    let db = dir.path().join("confab.db");
    let opts = confab_store::StoreOptions {
        // No time at all: every read handed over is past it, however fast the machine (with
        // a millisecond, a fast machine walked the prefix search's window within it).
        read_timeout: Some(std::time::Duration::ZERO),
        ..confab_store::StoreOptions::default()
    };
    let app = TestApp::start(dir, db, confab_server::ServerConfig::default(), opts).await;
    let (t, oldest) = okra(&app).await;
    let long = "/v1/search?q=okra&source=legacy";
    let long = if app.is_pg() {
        use sqlx::Connection;
        let mut lock = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
        sqlx::raw_sql("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            .execute(&mut lock)
            .await
            .unwrap();
        let answer = app.get(long, &t).await;
        sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
        answer
    } else {
        app.get(long, &t).await
    };
    let long = long.expect(408);
    assert_eq!(long.body["error"]["code"], "TIMEOUT", "{}", long.body);
    if !app.is_pg() {
        let prefix = app.get("/v1/search?q=okr*", &t).await.expect(408);
        assert_eq!(prefix.body["error"]["code"], "TIMEOUT");
    }
    // Short reads are within any limit: on SQLite they are never handed over; on PostgreSQL a
    // ranked search without filters reads one window and goes without the limit.
    let v = search(&app, &t, "okra", "&limit=5").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 5);
    app.get(&format!("/v1/conversations/{oldest}"), &t)
        .await
        .expect(200);
    let m = app.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("confab_store_reads_timed_out_total ")),
        "{m}"
    );
}

/// `confab_store_search_windows_total` for one outcome as `/metrics` shows it (0 before the
/// first).
fn windows_counted(metrics: &str, outcome: &str) -> u64 {
    let line = format!("confab_store_search_windows_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find(|l| l.starts_with(&line))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Once the server has been idle a moment, it stores the window of every word in 256 messages
/// or more (sqlite/tails.rs); a first search of such a word reads it instead of walking the
/// index, and answers what walking answers. (PostgreSQL reads its postings instead:
/// pg_postings.rs.)
#[tokio::test]
async fn a_first_search_of_a_common_word_reads_its_stored_window() {
    let app = TestApp::spawn().await;
    if app.is_pg() {
        return;
    }
    let t = app.token("acme").await;
    for c in 0..3 {
        let texts: Vec<String> = (0..100)
            .map(|i| format!("okapi {}number {}", "word ".repeat(i % 5), c * 100 + i))
            .collect();
        let msgs: Vec<(&str, &str)> = texts.iter().map(|m| ("user", m.as_str())).collect();
        conv(&app, &t, json!({}), &msgs).await;
    }
    let stored = async |app: &TestApp| {
        app.sql(
            "SELECT count(*) FROM search_tails WHERE key LIKE '%okapi%'",
            &[],
        )
        .await[0][0]
            .as_i64()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stored(&app).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no window stored for `okapi` 30 s after the writes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let before = windows_counted(&app.metrics().await, "stored");
    let read = search(&app, &t, "okapi", "&limit=50").await;
    assert!(windows_counted(&app.metrics().await, "stored") > before);
    assert_eq!(read["data"].as_array().unwrap().len(), 50);

    // The same search walked: the stored windows removed (their build's mark kept, so none is
    // built again), on a restarted server, which has nothing in memory.
    app.sql("DELETE FROM search_tails WHERE key <> ''", &[])
        .await;
    let app = app.restart().await;
    let walked = search(&app, &t, "okapi", "&limit=50").await;
    assert_eq!(read, walked);
    assert_eq!(stored(&app).await, 0);
}

/// First searches of many words sent at once, by two tenants, each answer their own tenant's
/// matches of their own word: on PostgreSQL they share their statements
/// (postgres/first_batch.rs), each page matched back to its search by position and tenant.
#[tokio::test]
async fn first_searches_sent_at_once_each_answer_their_own_word() {
    let app = TestApp::spawn().await;
    let tenants = [app.token("acme").await, app.token("globex").await];
    let words = ["heron", "otter", "badger", "lynx", "marten", "stoat"];
    // Word `w` in `w + 1` messages of each tenant, each message naming its tenant.
    for (k, t) in tenants.iter().enumerate() {
        for (w, word) in words.iter().enumerate() {
            let text = format!("a {word} seen by tenant{k}");
            let msgs = vec![("user", text.as_str()); w + 1];
            conv(&app, t, json!({}), &msgs).await;
        }
    }
    // The postings built now rather than when the server next pauses (PostgreSQL; SQLite stores
    // its common words' windows here), and one search first, so that PostgreSQL's statistics
    // are read before the burst.
    app.store.build_search_postings().await.unwrap();
    assert_eq!(
        search(&app, &tenants[0], "nothing", "").await["data"],
        json!([])
    );
    let asked: Vec<(usize, usize)> = (0..2)
        .flat_map(|k| (0..words.len()).map(move |w| (k, w)))
        .collect();
    let pages = futures::future::join_all(
        asked
            .iter()
            .map(|&(k, w)| search(&app, &tenants[k], words[w], "")),
    )
    .await;
    for (&(k, w), page) in asked.iter().zip(&pages) {
        let found = contents(page);
        assert_eq!(found.len(), w + 1, "{} of tenant{k}: {page}", words[w]);
        for snippet in found {
            assert!(
                snippet.contains(words[w]) && snippet.contains(&format!("tenant{k}")),
                "{} of tenant{k}: {snippet}",
                words[w]
            );
        }
    }
}
