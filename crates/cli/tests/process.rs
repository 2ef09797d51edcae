//! The `confab` binary as an operator runs it: key management, serve, SIGTERM, and SIGKILL in
//! the middle of concurrent writes (no acknowledged write may be lost or duplicated).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "support/dbs.rs"]
mod dbs;
use dbs::{db_url, test_dir};

fn confab(db: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_confab"));
    c.arg("--database").arg(db_url(db));
    c.env_remove("CONFAB_DATABASE_URL").env("RUST_LOG", "info");
    c
}

fn create_key(db: &Path, tenant: &str) -> Value {
    let out = confab(db)
        .args(["keys", "create", "--tenant", tenant])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on one line: {stdout}"
    );
    serde_json::from_str(&stdout).unwrap()
}

/// A running `confab serve` and its address.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(db: &Path) -> Server {
        Self::start_with(db, "info")
    }

    fn start_with(db: &Path, rust_log: &str) -> Server {
        Self::spawn(db, rust_log, &[])
    }

    fn start_args(db: &Path, extra: &[&str]) -> Server {
        Self::spawn(db, "info", extra)
    }

    fn spawn(db: &Path, rust_log: &str, extra: &[&str]) -> Server {
        let mut child = confab(db)
            .env("RUST_LOG", rust_log)
            .args(["--log-format", "json", "serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let keep = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
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
            .recv_timeout(Duration::from_secs(30))
            .expect("server announced its address");
        Server {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[test]
fn keys_create_list_revoke() {
    let dir = test_dir();
    let db = dir.path().join("k.db");
    let k = create_key(&db, "acme");
    for f in ["tenant", "key_id", "key_secret", "token"] {
        assert!(k[f].is_string(), "{f} missing in {k}");
    }
    assert_eq!(
        k["token"].as_str().unwrap(),
        format!(
            "{}.{}",
            k["key_id"].as_str().unwrap(),
            k["key_secret"].as_str().unwrap()
        )
    );
    assert_eq!(k["scopes"], "read,write");
    let admin = confab(&db)
        .args([
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "read,admin",
        ])
        .output()
        .unwrap();
    assert!(admin.status.success());
    let bad = confab(&db)
        .args(["keys", "create", "--tenant", "acme", "--scopes", "root"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--scopes"));
    let list = confab(&db).args(["keys", "list"]).output().unwrap();
    let text = String::from_utf8(list.stdout).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(
        !text.contains(k["key_secret"].as_str().unwrap()),
        "secrets are never listed"
    );
    let r = confab(&db)
        .args(["keys", "revoke", k["key_id"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success());
    let r = confab(&db)
        .args(["keys", "revoke", "ck_missing"])
        .output()
        .unwrap();
    assert!(!r.status.success());
    let list = confab(&db).args(["keys", "list"]).output().unwrap();
    assert!(
        String::from_utf8(list.stdout)
            .unwrap()
            .contains("revoked_at\":\"20")
    );
}

#[test]
fn help_reads_well() {
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "serve",
        "keys",
        "migrate",
        "--database",
        "CONFAB_DATABASE_URL",
    ] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let serve = String::from_utf8(out.stdout).unwrap();
    for word in ["CONFAB_ADDR", "--long-searches", "CONFAB_LONG_SEARCHES"] {
        assert!(serve.contains(word), "serve --help lacks {word}: {serve}");
    }
}

/// `serve --long-searches` (PostgreSQL's turns for long searches) is at least 1, from the flag
/// or the environment; the server refuses to start otherwise, naming the flag.
#[test]
fn long_searches_must_be_at_least_one() {
    // `test_dir`: on PostgreSQL the database `confab` names is dropped with it.
    let dir = test_dir();
    let db = dir.path().join("long.db");
    for (flag, env) in [(Some("0"), None), (None, Some("0"))] {
        let mut c = confab(&db);
        c.env_remove("CONFAB_LONG_SEARCHES")
            .args(["serve", "--addr", "127.0.0.1:0"]);
        if let Some(f) = flag {
            c.args(["--long-searches", f]);
        }
        if let Some(e) = env {
            c.env("CONFAB_LONG_SEARCHES", e);
        }
        let out = c.output().unwrap();
        assert!(!out.status.success(), "{flag:?} {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--long-searches must be at least 1"), "{err}");
    }
}

/// The binary's Rust heap is mimalloc (chosen in the workspace Cargo.toml for the server's CPU a
/// request): told to be verbose through its own environment variable, it names itself as the
/// process starts, before `main`.
#[test]
fn the_rust_heap_is_mimalloc() {
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("mimalloc:"), "mimalloc said nothing: {err}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("confab "));
}

#[test]
fn migrate_creates_a_missing_database() {
    // SQLite only, in both passes: it checks that a database *file* is created.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub.db");
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .env_remove("CONFAB_DATABASE_URL")
        .arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists());
}

fn rt() -> tokio::runtime::Runtime {
    confab_server::tls::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sigterm_finishes_in_flight_work_and_exits_cleanly() {
    let dir = test_dir();
    let db = dir.path().join("t.db");
    let token = create_key(&db, "acme")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = Server::start(&db);
    let base = server.base.clone();
    rt().block_on(async {
        let c = reqwest::Client::new();
        let r = c
            .post(format!("{base}/v1/conversations"))
            .bearer_auth(&token)
            .json(&json!({"title": "t"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    });
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut child = server.child;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Concurrent writers record every acknowledged append; the server is SIGKILLed at a random
/// moment several times; after each restart every acknowledged message is there exactly once,
/// seqs are gapless and message_count matches.
#[test]
fn sigkill_loses_no_acknowledged_write() {
    let dir = test_dir();
    let db = dir.path().join("crash.db");
    let token = create_key(&db, "acme")["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let acked: Arc<Mutex<HashMap<String, HashSet<String>>>> = Arc::default();
    let rt = rt();
    for round in 0..4u64 {
        let server = Server::start(&db);
        let base = server.base.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut handles = Vec::new();
        for w in 0..8u64 {
            let (base, token, acked, stop) =
                (base.clone(), token.clone(), acked.clone(), stop.clone());
            handles.push(rt.spawn(async move {
                let c = reqwest::Client::new();
                let mut conv: Option<String> = None;
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let content = format!("r{round}-w{w}-{i}");
                    match &conv {
                        None => {
                            let r = c
                                .post(format!("{base}/v1/conversations"))
                                .bearer_auth(&token)
                                .json(&json!({"messages": [{"role": "user", "content": content}]}))
                                .send()
                                .await;
                            let Ok(r) = r else { break };
                            if r.status() != 201 {
                                break;
                            }
                            let Ok(v) = r.json::<Value>().await else { break };
                            let id = v["id"].as_str().unwrap().to_owned();
                            acked.lock().unwrap().entry(id.clone()).or_default().insert(content);
                            conv = Some(id);
                        }
                        Some(id) => {
                            let r = c
                                .post(format!("{base}/v1/conversations/{id}/messages"))
                                .bearer_auth(&token)
                                .json(&json!({"messages": [{"role": "assistant", "content": content}]}))
                                .send()
                                .await;
                            let Ok(r) = r else { break };
                            if r.status() != 200 {
                                break;
                            }
                            // Acknowledged only once the answer is complete.
                            if r.bytes().await.is_err() {
                                break;
                            }
                            acked.lock().unwrap().entry(id.clone()).or_default().insert(content);
                            if i.is_multiple_of(25) {
                                conv = None;
                            }
                        }
                    }
                }
            }));
        }
        // Kill at a pseudo-random moment between 300 and 1100 ms.
        let wait = 300 + (round * 7919 + 104_729) % 800;
        std::thread::sleep(Duration::from_millis(wait));
        server.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            for h in handles {
                let _ = h.await;
            }
        });
    }
    // Check everything on a fresh start.
    let server = Server::start(&db);
    let base = server.base.clone();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.values().map(HashSet::len).sum::<usize>() > 50,
        "the test wrote too little to mean anything"
    );
    rt.block_on(async {
        let c = reqwest::Client::new();
        for (id, contents) in &acked {
            let conv: Value = c
                .get(format!("{base}/v1/conversations/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut msgs = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut url = format!("{base}/v1/conversations/{id}/messages?limit=100");
                if let Some(cur) = &cursor {
                    url.push_str(&format!("&cursor={cur}"));
                }
                let page: Value = c
                    .get(url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                msgs.extend(page["data"].as_array().unwrap().clone());
                match page["next_cursor"].as_str() {
                    Some(n) => cursor = Some(n.to_owned()),
                    None => break,
                }
            }
            assert_eq!(
                conv["message_count"].as_u64().unwrap() as usize,
                msgs.len(),
                "message_count matches"
            );
            let seqs: Vec<u64> = msgs.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
            assert_eq!(
                seqs,
                (0..msgs.len() as u64).collect::<Vec<_>>(),
                "gapless seqs"
            );
            let stored: Vec<String> = msgs
                .iter()
                .map(|m| m["content"].as_str().unwrap().to_owned())
                .collect();
            let unique: HashSet<&String> = stored.iter().collect();
            assert_eq!(unique.len(), stored.len(), "nothing stored twice");
            for content in contents {
                assert!(unique.contains(content), "acknowledged {content} was lost");
            }
        }
    });
    server.kill9();
}

#[test]
fn secrets_never_reach_the_log() {
    let dir = test_dir();
    let db = dir.path().join("l.db");
    let k = create_key(&db, "acme");
    let token = k["token"].as_str().unwrap().to_owned();
    let secret = k["key_secret"].as_str().unwrap().to_owned();
    let server = Server::start_with(&db, "trace");
    let base = server.base.clone();
    rt().block_on(async {
        let c = reqwest::Client::new();
        let r = c
            .post(format!("{base}/v1/conversations"))
            .bearer_auth(&token)
            .json(&json!({"title": "t"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = c
            .get(format!("{base}/v1/conversations"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let bad = format!("{}.not-the-secret", k["key_id"].as_str().unwrap());
        let r = c
            .get(format!("{base}/v1/conversations"))
            .bearer_auth(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let body = json!({"keyId": k["key_id"], "keySecret": secret});
        let r = c
            .get(format!("{base}/rest/v1/conversations"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    // The log reaches us through a pipe and a reader thread: wait, within reason, for the
    // last request's lines (the one that presented the secret in its body).
    std::thread::sleep(Duration::from_millis(200));
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server.log.lock().unwrap().join("\n");
        if log.contains("/rest/v1/conversations") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    server.kill9();
    assert!(
        log.contains("/v1/conversations"),
        "the trace log recorded the requests"
    );
    assert!(!log.contains(&secret), "the key secret was logged");
    assert!(
        !log.contains("not-the-secret"),
        "a presented secret was logged"
    );
}

#[test]
fn settings_come_from_flags_then_environment_then_the_toml_file() {
    // SQLite only, in both passes: which setting won is read off which database file exists.
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file.db");
    let from_env = dir.path().join("from-env.db");
    let from_flag = dir.path().join("from-flag.db");
    let cfg = dir.path().join("confab.toml");
    std::fs::write(
        &cfg,
        format!(
            "database_url = \"sqlite://{}\"\nlog_format = \"json\"\n",
            from_file.display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_confab");
    let run = |extra_env: Option<&Path>, flag: Option<&Path>| {
        let mut c = Command::new(bin);
        c.env_remove("CONFAB_DATABASE_URL")
            .arg("--config")
            .arg(&cfg);
        if let Some(e) = extra_env {
            c.env("CONFAB_DATABASE_URL", format!("sqlite://{}", e.display()));
        }
        if let Some(f) = flag {
            c.arg("--database").arg(format!("sqlite://{}", f.display()));
        }
        let out = c.arg("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(None, None);
    assert!(from_file.exists(), "the file's database_url is used");
    run(Some(&from_env), None);
    assert!(from_env.exists(), "the environment beats the file");
    run(Some(&from_env), Some(&from_flag));
    assert!(from_flag.exists(), "the flag beats the environment");
    std::fs::write(&cfg, "databse_url = \"typo\"\n").unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an unknown key in the file is an error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("databse_url"));
}

#[test]
fn pool_size_is_checked_from_flag_environment_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pool.db");
    let cfg = dir.path().join("confab.toml");
    let bin = env!("CARGO_BIN_EXE_confab");
    let run = |flag: Option<&str>, env: Option<&str>, file: Option<&str>| {
        std::fs::write(
            &cfg,
            file.map(|n| format!("pool_size = {n}\n"))
                .unwrap_or_default(),
        )
        .unwrap();
        let mut c = Command::new(bin);
        c.env_remove("CONFAB_POOL_SIZE")
            .arg("--config")
            .arg(&cfg)
            .arg("--database")
            .arg(format!("sqlite://{}", db.display()));
        if let Some(e) = env {
            c.env("CONFAB_POOL_SIZE", e);
        }
        if let Some(f) = flag {
            c.arg("--pool-size").arg(f);
        }
        c.arg("migrate").output().unwrap()
    };
    assert!(run(Some("16"), None, None).status.success());
    assert!(run(None, Some("4"), Some("32")).status.success());
    for (flag, env, file) in [
        (Some("1"), None, None),
        (None, Some("0"), None),
        (None, None, Some("5000")),
        // The flag wins, so a bad flag fails even over a good file.
        (Some("1"), None, Some("8")),
    ] {
        let out = run(flag, env, file);
        assert!(!out.status.success(), "{flag:?} {env:?} {file:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("pool_size must be between 2 and 1000"),
            "{err}"
        );
    }
    // Not a number: clap names the flag.
    let out = run(Some("many"), None, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pool-size"));
}

/// A webhook event committed by a server that is then SIGKILLed before delivering it is
/// delivered by the next server on the same database.
#[test]
fn webhook_events_survive_sigkill_between_commit_and_delivery() {
    use std::io::{Read, Write};
    let dir = test_dir();
    let db = dir.path().join("w.db");
    let out = confab(&db)
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
    let k: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = k["token"].as_str().unwrap().to_owned();
    // A bare receiver that records request bodies.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = bodies.clone();
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
                    let len: usize = text[..i]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= i + 4 + len {
                        seen.lock()
                            .unwrap()
                            .push(text[i + 4..i + 4 + len].to_owned());
                        break;
                    }
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    // First server: commits the events, delivers nothing, dies.
    let first = Server::start_args(&db, &["--webhooks-allow-internal", "--no-webhook-worker"]);
    let base = first.base.clone();
    rt().block_on(async {
        let c = reqwest::Client::new();
        let r = c
            .post(format!("{base}/v1/webhooks"))
            .bearer_auth(&token)
            .json(&json!({"url": hook, "event_types": ["conversation.created"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        for _ in 0..3 {
            let r = c
                .post(format!("{base}/v1/conversations"))
                .bearer_auth(&token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
    });
    first.kill9();
    assert!(bodies.lock().unwrap().is_empty());
    // Second server on the same database delivers them.
    let second = Server::start_args(&db, &["--webhooks-allow-internal"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while bodies.lock().unwrap().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "events were not delivered after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    second.kill9();
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|b| b.contains("conversation.created")));
}
