//! The Sensay dialect over HTTP: seed 004's navigation loop and placeholder expansion on long
//! conversations with irregular runs, cursors, analytics across day boundaries, and every
//! error answer in Sensay's shape.

mod common;

use common::{Resp, TestApp};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

const REPLICA: &str = "f0e4c2f7-ae27-4b35-89bf-7cf729a73687";

/// One tenant's view of the server.
struct Client<'a> {
    app: &'a TestApp,
    token: String,
}

/// A stored message as the test knows it.
#[derive(Debug, Clone)]
struct Msg {
    id: String,
    role: String,
}

impl<'a> Client<'a> {
    async fn new(app: &'a TestApp, tenant: &str) -> Client<'a> {
        Client {
            app,
            token: app.token(tenant).await,
        }
    }

    /// GET with Sensay's headers.
    async fn get(&self, path: &str) -> Resp {
        get_with(self.app, path, Some(&self.token)).await
    }

    /// GET expecting 200 and `{success: true, items, count}`; answers the items.
    async fn items(&self, path: &str) -> Vec<Value> {
        let r = self.get(path).await.expect(200);
        assert_eq!(r.body["success"], true, "{}", r.text);
        let items = r.body["items"].as_array().expect("items").clone();
        assert_eq!(r.body["count"], items.len(), "{}", r.text);
        items
    }

    /// Creates a conversation of `replica` through the native API; answers its id and its
    /// messages in order.
    async fn conversation(
        &self,
        replica: &str,
        source: Option<&str>,
        created_at: Option<OffsetDateTime>,
        roles: &[&str],
    ) -> (String, Vec<Msg>) {
        let messages: Vec<Value> = roles
            .iter()
            .enumerate()
            .map(|(i, r)| json!({"role": r, "content": format!("{r} {i}")}))
            .collect();
        let mut body = json!({"agent_id": replica, "messages": messages});
        if let Some(s) = source {
            body["source"] = json!(s);
        }
        if let Some(t) = created_at {
            body["created_at"] = json!(
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap()
            );
        }
        let r = self
            .app
            .post("/v1/conversations", &self.token, &body)
            .await
            .expect(201);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let mut msgs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/conversations/{id}/messages?limit=100");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.app.get(&path, &self.token).await.expect(200);
            for m in page.body["data"].as_array().unwrap() {
                msgs.push(Msg {
                    id: m["id"].as_str().unwrap().to_owned(),
                    role: m["role"].as_str().unwrap().to_owned(),
                });
            }
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(msgs.len(), roles.len());
        (id, msgs)
    }
}

async fn get_with(app: &TestApp, path: &str, secret: Option<&str>) -> Resp {
    let mut rb = app
        .client
        .get(app.url(path))
        .header("X-API-Version", "2025-03-25")
        .header("Content-Type", "application/json");
    if let Some(s) = secret {
        rb = rb.header("X-ORGANIZATION-SECRET", s);
    }
    Resp::read(rb.send().await.expect("request")).await
}

/// Irregular user/assistant runs (lengths 1–6, sometimes long), with a few system and tool
/// messages mixed in; deterministic per seed.
fn irregular_roles(n: usize, seed: u64) -> Vec<&'static str> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let mut out = Vec::with_capacity(n);
    let mut assistant = next(2) == 0;
    while out.len() < n {
        let run = if next(10) == 0 {
            8 + next(12)
        } else {
            1 + next(6)
        };
        for _ in 0..run {
            let r = match next(20) {
                0 => "system",
                1 => "tool",
                _ if assistant => "assistant",
                _ => "user",
            };
            out.push(r);
        }
        assistant = !assistant;
    }
    out.truncate(n);
    out
}

fn shown(msgs: &[Msg]) -> Vec<Msg> {
    msgs.iter()
        .filter(|m| m.role == "user" || m.role == "assistant")
        .cloned()
        .collect()
}

fn base(conv: &str) -> String {
    format!("/v1/replicas/{REPLICA}/conversations/{conv}")
}

fn mentions_of(items: &[Value]) -> Vec<&Value> {
    items.iter().filter(|i| i["type"] == "mention").collect()
}

/// Checks that `items` (a concatenation of pages, newest first) is the whole conversation as
/// mention groups and placeholders: read oldest first, every shown message appears exactly
/// once, in order, groups are user + maximal assistant run, placeholders are user-only.
fn check_reconstructs(items: &[Value], shown: &[Msg]) {
    let mut i = 0;
    for it in items.iter().rev() {
        match it["type"].as_str().unwrap() {
            "mention" => {
                let ms = it["messages"].as_array().unwrap();
                assert!(!ms.is_empty());
                for (k, m) in ms.iter().enumerate() {
                    let want = &shown[i + k];
                    assert_eq!(m["uuid"], want.id.as_str(), "group out of place");
                    let role = if k == 0 && i > 0 { "user" } else { "assistant" };
                    if k > 0 || i > 0 {
                        assert_eq!(m["role"], role, "group shape at {i}");
                    }
                }
                i += ms.len();
                // Maximal: the next shown message is not another reply.
                if let Some(next) = shown.get(i) {
                    assert_eq!(next.role, "user", "group not maximal at {i}");
                }
            }
            "placeholder" => {
                let n = it["count"].as_u64().unwrap() as usize;
                assert!(n > 0);
                assert!(shown[i..i + n].iter().all(|m| m.role == "user"));
                i += n;
            }
            other => panic!("unknown item type {other}"),
        }
    }
    assert_eq!(i, shown.len(), "not every message was shown");
}

/// The seed's implementation pattern, looped: the first page, then `loadNextPage` with the
/// last message of the `mention` items flattened, until no mention is left. Answers every page.
async fn navigate_back(c: &Client<'_>, conv: &str, limit: usize) -> Vec<Vec<Value>> {
    let mut pages = vec![
        c.items(&format!("{}/mentions?limit={limit}", base(conv)))
            .await,
    ];
    loop {
        // const lastMessage = data.items.filter(item => item.type === 'mention')
        //   .flatMap(mention => mention.messages).pop();
        let last = mentions_of(pages.last().unwrap())
            .into_iter()
            .flat_map(|m| m["messages"].as_array().unwrap().clone())
            .next_back();
        let Some(last) = last else { break };
        let uuid = last["uuid"].as_str().unwrap();
        let next = c
            .items(&format!(
                "{}/mentions?limit={limit}&beforeUUID={uuid}",
                base(conv)
            ))
            .await;
        pages.push(next);
        assert!(pages.len() < 1000, "the navigation loop does not end");
    }
    pages
}

#[tokio::test]
async fn navigation_loop_shows_every_message_once() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    for (seed, n) in [(1u64, 420usize), (7, 300), (42, 257)] {
        let roles = irregular_roles(n, seed);
        let (conv, msgs) = c.conversation(REPLICA, Some("web"), None, &roles).await;
        let shown = shown(&msgs);
        for limit in [1usize, 3, 20, 100] {
            let pages = navigate_back(&c, &conv, limit).await;
            for p in &pages {
                let groups = mentions_of(p).len();
                assert!(groups <= limit);
                if groups > 0 {
                    assert_eq!(
                        p.last().unwrap()["type"],
                        "mention",
                        "page ends with a group"
                    );
                }
            }
            let all: Vec<Value> = pages.into_iter().flatten().collect();
            check_reconstructs(&all, &shown);
        }
    }
}

#[tokio::test]
async fn after_uuid_walks_forward() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    let roles = irregular_roles(350, 3);
    let (conv, msgs) = c.conversation(REPLICA, None, None, &roles).await;
    let shown = shown(&msgs);
    for limit in [1usize, 4, 20] {
        let back = navigate_back(&c, &conv, limit).await;
        // Start from the oldest group (and the placeholder left older than it), then
        // `loadPreviousPage(firstMessageUUID)` with the first message of the page's mentions
        // until none is left.
        let oldest = back
            .iter()
            .flatten()
            .rfind(|it| it["type"] == "mention")
            .unwrap()
            .clone();
        let mut all: Vec<Value> = back.last().unwrap().clone();
        all.insert(0, oldest.clone());
        let mut page = vec![oldest];
        for _ in 0..1000 {
            let first = mentions_of(&page)
                .into_iter()
                .flat_map(|m| m["messages"].as_array().unwrap().clone())
                .next();
            let Some(first) = first else { break };
            let uuid = first["uuid"].as_str().unwrap();
            page = c
                .items(&format!(
                    "{}/mentions?limit={limit}&afterUUID={uuid}",
                    base(&conv)
                ))
                .await;
            if !mentions_of(&page).is_empty() {
                assert_eq!(
                    page[0]["type"], "mention",
                    "a forward page ends with a group"
                );
            }
            all.splice(0..0, page.iter().cloned());
        }
        check_reconstructs(&all, &shown);
    }
}

#[tokio::test]
async fn messages_walk_back_and_forward() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    let roles = irregular_roles(310, 11);
    let (conv, msgs) = c
        .conversation(REPLICA, Some("telegram"), None, &roles)
        .await;
    let shown_ids: Vec<String> = shown(&msgs).into_iter().map(|m| m.id).collect();
    for limit in [1usize, 7, 20, 100] {
        let mut seen = Vec::new();
        let mut page = c
            .items(&format!("{}/messages?limit={limit}", base(&conv)))
            .await;
        while let Some(last) = page.last() {
            assert!(page.len() <= limit);
            let uuid = last["uuid"].as_str().unwrap().to_owned();
            seen.extend(page.iter().map(|m| m["uuid"].as_str().unwrap().to_owned()));
            page = c
                .items(&format!(
                    "{}/messages?limit={limit}&beforeUUID={uuid}",
                    base(&conv)
                ))
                .await;
        }
        seen.reverse();
        assert_eq!(seen, shown_ids, "walking back, limit {limit}");

        // Forward from the oldest message: afterUUID = the first (newest) item of each page.
        let mut seen = vec![shown_ids[0].clone()];
        let mut cursor = shown_ids[0].clone();
        loop {
            let page = c
                .items(&format!(
                    "{}/messages?limit={limit}&afterUUID={cursor}",
                    base(&conv)
                ))
                .await;
            let Some(first) = page.first() else { break };
            cursor = first["uuid"].as_str().unwrap().to_owned();
            seen.extend(
                page.iter()
                    .rev()
                    .map(|m| m["uuid"].as_str().unwrap().to_owned()),
            );
        }
        assert_eq!(seen, shown_ids, "walking forward, limit {limit}");
    }
    // Default limit is 20.
    assert_eq!(
        c.items(&format!("{}/messages", base(&conv))).await.len(),
        20
    );
}

#[tokio::test]
async fn placeholder_expansion_follows_the_curl_examples() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    let roles = irregular_roles(400, 5);
    let (conv, msgs) = c.conversation(REPLICA, None, None, &roles).await;
    let shown = shown(&msgs);
    let pages = navigate_back(&c, &conv, 5).await;
    let mut expanded = 0;
    let mut js_snippet_wrong = 0;
    for (pi, page) in pages.iter().enumerate() {
        for (ix, item) in page.iter().enumerate() {
            if item["type"] != "placeholder" {
                continue;
            }
            let count = item["count"].as_u64().unwrap() as usize;
            // "Use the UUID of the first message after the placeholder": the first message of
            // the group listed just before it (newer); for a placeholder that opens a page,
            // the cursor's group on the previous page; on the first page, no cursor at all.
            let newer = if ix > 0 {
                Some(&page[ix - 1])
            } else if pi > 0 {
                mentions_of(&pages[pi - 1]).last().copied()
            } else {
                None
            };
            let path = match newer {
                Some(g) => format!(
                    "{}/messages?beforeUUID={}&limit={count}",
                    base(&conv),
                    g["messages"][0]["uuid"].as_str().unwrap()
                ),
                None => format!("{}/messages?limit={count}", base(&conv)),
            };
            let got = c.items(&path).await;
            assert_eq!(got.len(), count);
            assert!(got.iter().all(|m| m["role"] == "user"));
            // They are exactly the shown messages just older than that group, newest first.
            let end = match newer {
                Some(g) => {
                    let first = g["messages"][0]["uuid"].as_str().unwrap();
                    shown.iter().position(|m| m.id == first).unwrap()
                }
                None => shown.len(),
            };
            let want: Vec<&str> = shown[end - count..end]
                .iter()
                .rev()
                .map(|m| m.id.as_str())
                .collect();
            let got_ids: Vec<&str> = got.iter().map(|m| m["uuid"].as_str().unwrap()).collect();
            assert_eq!(got_ids, want);

            // "Use the UUID of the last message before the placeholder": the last message of
            // the group listed just after it (older), with afterUUID, gives the same messages.
            if let Some(older) = page.get(ix + 1).filter(|g| g["type"] == "mention") {
                let last = older["messages"].as_array().unwrap().last().unwrap();
                let after = c
                    .items(&format!(
                        "{}/messages?afterUUID={}&limit={count}",
                        base(&conv),
                        last["uuid"].as_str().unwrap()
                    ))
                    .await;
                let after_ids: Vec<&str> =
                    after.iter().map(|m| m["uuid"].as_str().unwrap()).collect();
                assert_eq!(after_ids, want);
            }

            // The seed's JavaScript snippet: afterUUID = the *last* message of the item listed
            // before the placeholder. That item is newer, so this reads past it, never the
            // placeholder (docs/compat/sensay.md explains).
            if ix > 0 {
                let js = page[ix - 1]["messages"].as_array().unwrap().last().unwrap();
                let wrong = c
                    .items(&format!(
                        "{}/messages?afterUUID={}",
                        base(&conv),
                        js["uuid"].as_str().unwrap()
                    ))
                    .await;
                assert!(
                    wrong
                        .iter()
                        .all(|m| !want.contains(&m["uuid"].as_str().unwrap()))
                );
                js_snippet_wrong += 1;
            }
            expanded += 1;
        }
    }
    assert!(
        expanded > 10,
        "the conversation should have many placeholders"
    );
    assert!(js_snippet_wrong > 0);
}

#[tokio::test]
async fn wire_shapes() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    let body = json!({
        "agent_id": REPLICA, "source": "discord",
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "Hello, how are you?", "created_at": "2024-09-24T09:09:55.66709+00:00"},
            {"role": "tool", "content": "lookup"},
            {"role": "assistant", "content": "I'm doing well", "created_at": "2024-09-24T11:10:15.33421+02:00", "source": "web"},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
        ]
    });
    let r = app
        .post("/v1/conversations", &c.token, &body)
        .await
        .expect(201);
    let conv = r.body["id"].as_str().unwrap();
    let items = c.items(&format!("{}/mentions", base(conv))).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0], json!({"type": "placeholder", "count": 2}));
    let ms = items[1]["messages"].as_array().unwrap();
    assert_eq!(ms.len(), 2);
    let m = ms[0].as_object().unwrap();
    let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "content",
            "createdAt",
            "replicaUUID",
            "role",
            "source",
            "uuid"
        ]
    );
    assert_eq!(ms[0]["createdAt"], "2024-09-24T09:09:55.667090+00:00");
    assert_eq!(ms[0]["role"], "user");
    assert_eq!(ms[0]["source"], "discord");
    assert_eq!(ms[0]["replicaUUID"], REPLICA);
    assert_eq!(ms[1]["createdAt"], "2024-09-24T09:10:15.334210+00:00");
    assert_eq!(ms[1]["source"], "web");
    // Messages: user and assistant only, newest first.
    let items = c.items(&format!("{}/messages", base(conv))).await;
    let contents: Vec<&str> = items
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        ["b", "a", "I'm doing well", "Hello, how are you?"]
    );

    let list = c
        .items(&format!("/v1/replicas/{REPLICA}/conversations"))
        .await;
    assert_eq!(list.len(), 1);
    let item = list[0].as_object().unwrap();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "createdAt",
            "messageCount",
            "source",
            "title",
            "updatedAt",
            "uuid"
        ]
    );
    assert_eq!(list[0]["uuid"], conv);
    assert_eq!(list[0]["messageCount"], 6);
    assert_eq!(list[0]["source"], "discord");
    assert_eq!(list[0]["title"], "Hello, how are you?");
}

#[tokio::test]
async fn replica_conversation_list_pages_both_ways() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    let t0 = OffsetDateTime::now_utc() - Duration::days(3);
    let mut ids = Vec::new();
    for i in 0..25 {
        // Pairs share a created_at, so ties are ordered by id.
        let at = t0 + Duration::minutes(i / 2);
        let (id, _) = c
            .conversation(REPLICA, Some("web"), Some(at), &["user"])
            .await;
        ids.push(id);
        c.conversation("another-replica", None, Some(at), &["user"])
            .await;
    }
    let mut newest_first = ids.clone();
    newest_first.sort_by_key(|id| {
        let i = ids.iter().position(|x| x == id).unwrap() as i64;
        (std::cmp::Reverse(i / 2), std::cmp::Reverse(id.clone()))
    });
    let list = |q: String| {
        let c = &c;
        async move {
            c.items(&format!("/v1/replicas/{REPLICA}/conversations{q}"))
                .await
        }
    };
    let uuids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|x| x["uuid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(uuids(&list(String::new()).await), newest_first[..20]);
    let mut seen = Vec::new();
    let mut page = list("?limit=7".into()).await;
    while let Some(last) = page.last() {
        let cursor = last["uuid"].as_str().unwrap().to_owned();
        seen.extend(uuids(&page));
        page = list(format!("?limit=7&beforeUUID={cursor}")).await;
    }
    assert_eq!(seen, newest_first);
    let mut seen = vec![newest_first[24].clone()];
    let mut cursor = newest_first[24].clone();
    loop {
        let page = list(format!("?limit=6&afterUUID={cursor}")).await;
        let Some(first) = page.first() else { break };
        cursor = first["uuid"].as_str().unwrap().to_owned();
        seen.extend(uuids(&page).into_iter().rev());
    }
    seen.reverse();
    assert_eq!(seen, newest_first);
    // Another replica's conversation is not a cursor here.
    let other = c
        .conversation("another-replica", None, None, &["user"])
        .await
        .0;
    let r = c
        .get(&format!(
            "/v1/replicas/{REPLICA}/conversations?beforeUUID={other}"
        ))
        .await
        .expect(400);
    assert_eq!(r.body["success"], false);
}

#[tokio::test]
async fn analytics_across_day_boundaries() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    let now = OffsetDateTime::now_utc();
    let made = [
        (40, "telegram"),
        (29, "web"),
        (1, "telegram"),
        (0, "discord"),
    ];
    for (days, source) in made {
        c.conversation(
            REPLICA,
            Some(source),
            Some(now - Duration::days(days)),
            &["user", "assistant"],
        )
        .await;
    }
    c.conversation("someone-else", Some("web"), Some(now), &["user"])
        .await;
    let c2 = Client::new(&app, "other-tenant").await;
    c2.conversation(REPLICA, Some("web"), Some(now), &["user"])
        .await;

    let points = c
        .items(&format!(
            "/v1/replicas/{REPLICA}/analytics/conversations/historical"
        ))
        .await;
    assert_eq!(points.len(), 30);
    let dates: Vec<time::Date> = points
        .iter()
        .map(|p| {
            let s = p["date"].as_str().unwrap();
            time::Date::parse(
                s,
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .unwrap_or_else(|_| panic!("date {s} is not YYYY-MM-DD"))
        })
        .collect();
    for w in dates.windows(2) {
        assert_eq!(w[1], w[0] + Duration::days(1), "consecutive ascending days");
    }
    // The last point is today in UTC (read again in case the test crossed midnight).
    let today = dates[29];
    assert!(today == now.date() || today == OffsetDateTime::now_utc().date());
    for (p, d) in points.iter().zip(&dates) {
        let want = made
            .iter()
            .filter(|(days, _)| (now - Duration::days(*days)).date() <= *d)
            .count();
        assert_eq!(p["cumulativeConversations"], want, "on {d}");
    }
    // 40 days ago is before the window yet counted; 29 days ago is its first day.
    assert_eq!(points[0]["cumulativeConversations"], 2);
    assert_eq!(points[29]["cumulativeConversations"], 4);

    let sources = c
        .items(&format!(
            "/v1/replicas/{REPLICA}/analytics/conversations/sources"
        ))
        .await;
    assert_eq!(
        sources,
        vec![
            json!({"source": "telegram", "conversations": 2}),
            json!({"source": "discord", "conversations": 1}),
            json!({"source": "web", "conversations": 1}),
        ]
    );
}

#[tokio::test]
async fn analytics_of_a_replica_without_conversations() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    let (id, _) = c.conversation(REPLICA, Some("web"), None, &["user"]).await;
    app.call(
        reqwest::Method::DELETE,
        &format!("/v1/conversations/{id}"),
        Some(&c.token),
        None,
    )
    .await
    .expect(204);
    let sources = c
        .items(&format!(
            "/v1/replicas/{REPLICA}/analytics/conversations/sources"
        ))
        .await;
    assert!(sources.is_empty());
    let points = c
        .items(&format!(
            "/v1/replicas/{REPLICA}/analytics/conversations/historical"
        ))
        .await;
    assert_eq!(points.len(), 30);
    assert!(points.iter().all(|p| p["cumulativeConversations"] == 0));
    assert!(
        c.items(&format!("/v1/replicas/{REPLICA}/conversations"))
            .await
            .is_empty()
    );
}

/// Asserts an error status and Sensay's error shape; answers the message.
fn sensay_error(r: Resp, status: u16) -> String {
    let r = r.expect(status);
    let obj = r.body.as_object().unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(obj.len(), 2, "{}", r.text);
    assert_eq!(r.body["success"], false);
    r.body["error"].as_str().expect("error message").to_owned()
}

#[tokio::test]
async fn errors_in_sensay_shape() {
    let app = TestApp::spawn().await;
    let c = Client::new(&app, "acme").await;
    let roles = irregular_roles(30, 2);
    let (conv, msgs) = c.conversation(REPLICA, None, None, &roles).await;
    let (other_conv, other_msgs) = c.conversation("other-replica", None, None, &["user"]).await;
    let routes = [
        format!("/v1/replicas/{REPLICA}/conversations"),
        format!("{}/messages", base(&conv)),
        format!("{}/mentions", base(&conv)),
        format!("/v1/replicas/{REPLICA}/analytics/conversations/historical"),
        format!("/v1/replicas/{REPLICA}/analytics/conversations/sources"),
    ];
    for r in &routes {
        // 401 without (or with a bad) secret, before anything else.
        let e = sensay_error(get_with(&app, r, None).await, 401);
        assert!(!e.is_empty());
        sensay_error(get_with(&app, r, Some("nope.nope")).await, 401);
        // 404 for an unknown replica and for another tenant's replica.
        let unknown = r.replace(REPLICA, "00000000-0000-0000-0000-000000000000");
        assert!(sensay_error(c.get(&unknown).await, 404).contains("replica"));
        // Bearer is accepted too (every dialect's token works in any documented header).
        app.get(r, &c.token).await.expect(200);
    }
    // A key without the read scope: 403, in the same shape.
    let writer = app
        .token_with("acme", confab_core::Scopes::parse("write").unwrap())
        .await;
    for r in &routes {
        sensay_error(get_with(&app, r, Some(&writer)).await, 403);
    }
    let intruder = Client::new(&app, "intruder").await;
    intruder.conversation(REPLICA, None, None, &["user"]).await;
    for r in &routes {
        // The intruder has a replica of that id, but not this conversation.
        if r.contains(&conv) {
            sensay_error(intruder.get(r).await, 404);
        }
    }
    let lonely = Client::new(&app, "lonely").await;
    for r in &routes {
        sensay_error(lonely.get(r).await, 404);
    }

    for kind in ["messages", "mentions"] {
        let path = format!("{}/{kind}", base(&conv));
        // The conversation must be the replica's.
        sensay_error(c.get(&format!("{}/{kind}", base(&other_conv))).await, 404);
        sensay_error(c.get(&format!("{}/{kind}", base("not-a-uuid"))).await, 404);
        sensay_error(c.get(&format!("{}/{kind}", base(&uuid_like()))).await, 404);
        for bad in ["limit=0", "limit=101", "limit=abc", "limit=-1"] {
            assert!(sensay_error(c.get(&format!("{path}?{bad}")).await, 400).contains("limit"));
        }
        let m = &msgs[3].id;
        let both = sensay_error(
            c.get(&format!("{path}?beforeUUID={m}&afterUUID={m}")).await,
            400,
        );
        assert!(
            both.contains("beforeUUID") && both.contains("afterUUID"),
            "{both}"
        );
        let e = sensay_error(c.get(&format!("{path}?beforeUUID=xyz")).await, 400);
        assert!(e.contains("beforeUUID"), "{e}");
        let e = sensay_error(c.get(&format!("{path}?afterUUID=12")).await, 400);
        assert!(e.contains("afterUUID"), "{e}");
        // A UUID that is not a message of this conversation.
        let foreign = &other_msgs[0].id;
        let e = sensay_error(c.get(&format!("{path}?beforeUUID={foreign}")).await, 400);
        assert!(e.contains("beforeUUID"), "{e}");
        sensay_error(
            c.get(&format!("{path}?afterUUID={}", uuid_like())).await,
            400,
        );
        let e = sensay_error(c.get(&format!("{path}?before=1")).await, 400);
        assert!(e.contains("before"), "{e}");
        // A method the route does not have.
        let r = Resp::read(
            app.client
                .post(app.url(&path))
                .header("X-ORGANIZATION-SECRET", &c.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        sensay_error(r, 405);
    }
    let list = format!("/v1/replicas/{REPLICA}/conversations");
    sensay_error(c.get(&format!("{list}?limit=0")).await, 400);
    sensay_error(
        c.get(&format!("{list}?beforeUUID={}", uuid_like())).await,
        400,
    );
    sensay_error(c.get(&format!("{list}?afterUUID=bad")).await, 400);
    sensay_error(
        c.get(&format!("{list}?beforeUUID={conv}&afterUUID={conv}"))
            .await,
        400,
    );
    // A message id is not a conversation cursor.
    sensay_error(
        c.get(&format!("{list}?beforeUUID={}", msgs[0].id)).await,
        400,
    );
    // The intruder's view of the same replica id holds only its own conversation.
    let theirs = intruder.items(&list).await;
    assert_eq!(theirs.len(), 1);
    assert_ne!(theirs[0]["uuid"], conv.as_str());
}

fn uuid_like() -> String {
    "0192f0c4-1111-7222-8333-444455556666".to_owned()
}

#[tokio::test]
async fn documented_in_openapi() {
    let app = TestApp::spawn().await;
    let doc = Resp::read(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(200)
    .body;
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/replicas/{replicaUUID}/conversations",
        "/v1/replicas/{replicaUUID}/conversations/{conversationUUID}/messages",
        "/v1/replicas/{replicaUUID}/conversations/{conversationUUID}/mentions",
        "/v1/replicas/{replicaUUID}/analytics/conversations/historical",
        "/v1/replicas/{replicaUUID}/analytics/conversations/sources",
    ] {
        let get = &paths
            .get(p)
            .unwrap_or_else(|| panic!("{p} is not documented"))["get"];
        assert_eq!(get["tags"][0], "sensay");
        let names: Vec<&str> = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"X-API-Version"), "{p}: {names:?}");
        if !p.contains("analytics") {
            for n in ["limit", "beforeUUID", "afterUUID"] {
                assert!(names.contains(&n), "{p} does not document {n}: {names:?}");
            }
        }
    }
    assert!(doc["components"]["securitySchemes"]["organization_secret"].is_object());
}
