//! PostgreSQL only (skipped, saying so, without `CONFAB_TEST_POSTGRES_URL`): two `confab serve`
//! processes on one database, hammered at once with appends to the same conversations and with
//! completed conversations. Every append lands once with consecutive seqs (the conversation row
//! lock), every insights job runs exactly once and every webhook event is delivered exactly once
//! (`FOR UPDATE SKIP LOCKED` claims).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;

#[path = "../../store/tests/support/testdb.rs"]
mod testdb;
use testdb::{TestDb, pg_admin_or_skip};

fn confab(url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_confab"));
    c.arg("--database").arg(url);
    c.env_remove("CONFAB_DATABASE_URL").env("RUST_LOG", "info");
    c
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(url: &str) -> Server {
        let mut child = confab(url)
            .args(["--log-format", "json", "serve", "--addr", "127.0.0.1:0"])
            .args(["--insights-workers", "2", "--webhooks-allow-internal"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent
                    && let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let Some(addr) = v["fields"]["addr"].as_str()
                {
                    let _ = tx.send(addr.to_owned());
                    sent = true;
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server announced its address");
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CONVERSATIONS: usize = 6;
const TASKS_PER_SERVER: usize = 4;
const APPENDS_PER_TASK: usize = 25;
const COMPLETED_PER_SERVER: usize = 10;

#[test]
fn two_servers_one_database_append_once_analyse_once_deliver_once() {
    let Some(admin) = pg_admin_or_skip("the two-process PostgreSQL test") else {
        return;
    };
    confab_server::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::new_pg(&admin));
    let out = confab(&db.url)
        .args([
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "read,write,admin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = key["token"].as_str().unwrap().to_owned();
    let (hook, received) = receiver();
    let servers = [Server::start(&db.url), Server::start(&db.url)];
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();

    rt.block_on(async {
        let c = reqwest::Client::new();
        let r = c
            .post(format!("{}/v1/webhooks", bases[0]))
            .bearer_auth(&token)
            .json(&json!({"url": hook}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let mut convs = Vec::new();
        for i in 0..CONVERSATIONS {
            let r = c
                .post(format!("{}/v1/conversations", bases[i % 2]))
                .bearer_auth(&token)
                .json(&json!({"title": format!("shared {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let v: Value = r.json().await.unwrap();
            convs.push(v["id"].as_str().unwrap().to_owned());
        }

        // Every task of both servers appends to every conversation in turn, all at once.
        let mut tasks = Vec::new();
        for (s, base) in bases.iter().enumerate() {
            for t in 0..TASKS_PER_SERVER {
                let (c, base, token, convs) = (c.clone(), base.clone(), token.clone(), convs.clone());
                tasks.push(tokio::spawn(async move {
                    let mut sent = Vec::new();
                    for k in 0..APPENDS_PER_TASK {
                        let conv = &convs[(k + t) % convs.len()];
                        let content = format!("s{s} t{t} k{k}");
                        let r = c
                            .post(format!("{base}/v1/conversations/{conv}/messages"))
                            .bearer_auth(&token)
                            .json(&json!({"messages": [{"role": "user", "content": content}]}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                        sent.push((conv.clone(), content));
                    }
                    sent
                }));
            }
        }
        // Meanwhile both servers create conversations that arrive completed.
        let mut completers = Vec::new();
        for base in &bases {
            let (c, base, token) = (c.clone(), base.clone(), token.clone());
            completers.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..COMPLETED_PER_SERVER {
                    let r = c
                        .post(format!("{base}/v1/conversations"))
                        .bearer_auth(&token)
                        .json(&json!({"status": "completed", "messages": [
                            {"role": "user", "content": format!("My parcel {i} is late, please help")},
                            {"role": "assistant", "content": "Sorry! It ships today."}]}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    let v: Value = r.json().await.unwrap();
                    ids.push(v["id"].as_str().unwrap().to_owned());
                }
                ids
            }));
        }
        let mut sent: HashMap<String, HashSet<String>> = HashMap::new();
        let mut total = 0;
        for t in tasks {
            for (conv, content) in t.await.unwrap() {
                assert!(sent.entry(conv).or_default().insert(content));
                total += 1;
            }
        }
        assert_eq!(total, 2 * TASKS_PER_SERVER * APPENDS_PER_TASK);
        let mut completed = Vec::new();
        for t in completers {
            completed.extend(t.await.unwrap());
        }
        // The shared conversations are completed from both servers at once: one transition,
        // one job each.
        let mut patches = Vec::new();
        for conv in &convs {
            for base in &bases {
                let (c, url, token) = (
                    c.clone(),
                    format!("{base}/v1/conversations/{conv}"),
                    token.clone(),
                );
                patches.push(tokio::spawn(async move {
                    let r = c
                        .patch(url)
                        .bearer_auth(&token)
                        .json(&json!({"status": "completed"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }));
            }
        }
        for p in patches {
            p.await.unwrap();
        }
        completed.extend(convs.iter().cloned());

        let mut pg = sqlx::PgConnection::connect(&db.url).await.unwrap();
        // Every append exactly once, seqs 0..n without gaps, message_count = n.
        for conv in &convs {
            let id = uuid::Uuid::parse_str(conv).unwrap();
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT seq, content FROM messages WHERE conversation_id = $1 ORDER BY seq",
            )
            .bind(id)
            .fetch_all(&mut pg)
            .await
            .unwrap();
            let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
            assert_eq!(seqs, (0..rows.len() as i64).collect::<Vec<_>>(), "gapless seqs");
            let got: HashSet<String> = rows.into_iter().map(|r| r.1).collect();
            assert_eq!(&got, &sent[conv], "every acknowledged append once");
            let count: i64 =
                sqlx::query_scalar("SELECT message_count FROM conversations WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut pg)
                    .await
                    .unwrap();
            assert_eq!(count, got.len() as i64);
        }

        // Every completed conversation is analysed, by exactly one job that ran once.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM insights")
                .fetch_one(&mut pg)
                .await
                .unwrap();
            let open: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state <> 'done'")
                    .fetch_one(&mut pg)
                    .await
                    .unwrap();
            if done == completed.len() as i64 && open == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{done} of {} analysed, {open} jobs open",
                completed.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let jobs: Vec<(uuid::Uuid, String, i64)> =
            sqlx::query_as("SELECT conversation_id, state, attempts FROM jobs")
                .fetch_all(&mut pg)
                .await
                .unwrap();
        assert_eq!(jobs.len(), completed.len(), "one job per completed conversation");
        let distinct: HashSet<uuid::Uuid> = jobs.iter().map(|j| j.0).collect();
        assert_eq!(distinct.len(), completed.len());
        for (conv, state, attempts) in &jobs {
            assert_eq!((state.as_str(), *attempts), ("done", 1), "job of {conv} ran once");
        }

        // Every webhook event delivered, each exactly once, by one server or the other.
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
            .fetch_one(&mut pg)
            .await
            .unwrap();
        assert!(events > 250, "{events} events");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let pending: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE state <> 'succeeded'",
            )
            .fetch_one(&mut pg)
            .await
            .unwrap();
            if pending == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{pending} deliveries still pending");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let got = received.lock().unwrap().clone();
        let distinct: HashSet<&String> = got.iter().collect();
        assert_eq!(distinct.len(), got.len(), "no event delivered twice");
        assert_eq!(got.len() as i64, events, "every event delivered");
        let retried: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE attempts <> 1",
        )
        .fetch_one(&mut pg)
        .await
        .unwrap();
        assert_eq!(retried, 0);
        pg.close().await.unwrap();
    });
    drop(servers);
}

/// A bare HTTP receiver that answers 204 and records each request's `webhook-id` header.
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = ids.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(i) = text.find("\r\n\r\n") {
                    let header = |name: &str| {
                        text[..i].lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.trim()
                                .eq_ignore_ascii_case(name)
                                .then(|| v.trim().to_owned())
                        })
                    };
                    let len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
                    if buf.len() >= i + 4 + len {
                        if let Some(id) = header("webhook-id") {
                            seen.lock().unwrap().push(id);
                        }
                        break;
                    }
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (hook, ids)
}
