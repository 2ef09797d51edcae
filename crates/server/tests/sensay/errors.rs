//! Every error case in Sensay's shape, tenant isolation, and the OpenAPI document.

use super::*;

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
        // Only the documented header counts: a Bearer token here is no credential at all.
        sensay_error(app.get(r, &c.token).await, 401);
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
        // The conversation must be the replica's; the error names the conversation (the
        // replica exists), not the replica.
        for id in [other_conv.as_str(), "not-a-uuid", &uuid_like()] {
            let e = sensay_error(c.get(&format!("{}/{kind}", base(id))).await, 404);
            assert!(e.contains("conversation") && !e.contains("replica"), "{e}");
        }
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
        // Another replica's conversation with a cursor, its own or one it does not hold: the
        // conversation's 404 either way, before any word about the cursor (read the cursor
        // first and the second would be a 400).
        for cursor in [&other_msgs[0].id, &msgs[3].id] {
            let theirs = format!("{}/{kind}?beforeUUID={cursor}", base(&other_conv));
            let e = sensay_error(c.get(&theirs).await, 404);
            assert!(e.contains("conversation") && !e.contains("replica"), "{e}");
        }
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
