//! The Sensay dialect over HTTP: seed 004's navigation loop and placeholder expansion on long
//! conversations with irregular runs, cursors, analytics across day boundaries, and every
//! error answer in Sensay's shape. Shared helpers here; the tests in `sensay/`.

mod common;

// A test crate's root resolves modules next to it, so the tests' own folder is named.
#[path = "sensay/analytics.rs"]
mod analytics;
#[path = "sensay/errors.rs"]
mod errors;
#[path = "sensay/lists.rs"]
mod lists;
#[path = "sensay/mentions.rs"]
mod mentions;

use common::{Resp, TestApp};
use serde_json::Value;
use time::OffsetDateTime;

pub const REPLICA: &str = "f0e4c2f7-ae27-4b35-89bf-7cf729a73687";

/// One tenant's view of the server.
pub struct Client<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

/// A stored message as the test knows it.
#[derive(Debug, Clone)]
pub struct Msg {
    pub id: String,
    pub role: String,
}

impl<'a> Client<'a> {
    pub async fn new(app: &'a TestApp, tenant: &str) -> Client<'a> {
        Client {
            app,
            token: app.token(tenant).await,
        }
    }

    /// GET with Sensay's headers.
    pub async fn get(&self, path: &str) -> Resp {
        get_with(self.app, path, Some(&self.token)).await
    }

    /// GET expecting 200 and `{success: true, items, count}`; answers the items.
    pub async fn items(&self, path: &str) -> Vec<Value> {
        let r = self.get(path).await.expect(200);
        assert_eq!(r.body["success"], true, "{}", r.text);
        let items = r.body["items"].as_array().expect("items").clone();
        assert_eq!(r.body["count"], items.len(), "{}", r.text);
        items
    }

    /// Creates a conversation of `replica` through the native API; answers its id and its
    /// messages in order.
    pub async fn conversation(
        &self,
        replica: &str,
        source: Option<&str>,
        created_at: Option<OffsetDateTime>,
        roles: &[&str],
    ) -> (String, Vec<Msg>) {
        let messages: Vec<Value> = roles
            .iter()
            .enumerate()
            .map(|(i, r)| serde_json::json!({"role": r, "content": format!("{r} {i}")}))
            .collect();
        let mut body = serde_json::json!({"agent_id": replica, "messages": messages});
        if let Some(s) = source {
            body["source"] = serde_json::json!(s);
        }
        if let Some(t) = created_at {
            body["created_at"] = serde_json::json!(
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

pub async fn get_with(app: &TestApp, path: &str, secret: Option<&str>) -> Resp {
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
pub fn irregular_roles(n: usize, seed: u64) -> Vec<&'static str> {
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

pub fn shown(msgs: &[Msg]) -> Vec<Msg> {
    msgs.iter()
        .filter(|m| m.role == "user" || m.role == "assistant")
        .cloned()
        .collect()
}

pub fn base(conv: &str) -> String {
    format!("/v1/replicas/{REPLICA}/conversations/{conv}")
}

pub fn mentions_of(items: &[Value]) -> Vec<&Value> {
    items.iter().filter(|i| i["type"] == "mention").collect()
}

/// Asserts an error status and Sensay's error shape; answers the message.
pub fn sensay_error(r: Resp, status: u16) -> String {
    let r = r.expect(status);
    let obj = r.body.as_object().unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(obj.len(), 2, "{}", r.text);
    assert_eq!(r.body["success"], false);
    r.body["error"].as_str().expect("error message").to_owned()
}

pub fn uuid_like() -> String {
    "0192f0c4-1111-7222-8333-444455556666".to_owned()
}
