//! Mentions over HTTP: the seed's navigation loops and placeholder expansion.

use serde_json::Value;

use super::*;

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
            // placeholder (docs/compat.md, Sensay, explains).
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
