//! Messages and the replica's conversation list: walks both ways, and the wire shapes.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::*;

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
