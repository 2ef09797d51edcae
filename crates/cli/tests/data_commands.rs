//! The data commands end to end on a local database: import, export (round trip), search,
//! stats, backup and restore. stderr is not a terminal here, so no progress bar is drawn.

use std::path::Path;
use std::process::{Command, Output};

const FIXTURE: &str = include_str!("../../server/tests/golden/fixture.ndjson");

#[path = "support/dbs.rs"]
mod dbs;
use dbs::{db_url, test_dir, testdb};

fn confab(db: &Path, args: &[&str]) -> Output {
    confab_url(&db_url(db), args)
}

fn confab_url(url: &str, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(args)
        .env("CONFAB_DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run confab");
    assert!(
        out.status.success(),
        "confab {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn import_export_search_stats_backup_restore() {
    let dir = test_dir();
    let db = dir.path().join("a.db");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, FIXTURE).unwrap();

    let out = confab(
        &db,
        &["import", input.to_str().unwrap(), "--tenant", "acme"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("imported 2 conversations"));
    // Idempotent.
    let out = confab(
        &db,
        &["import", input.to_str().unwrap(), "--tenant", "acme"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped 2"));

    let exported = dir.path().join("out.ndjson");
    let out = confab(
        &db,
        &[
            "export",
            "--tenant",
            "acme",
            "--out",
            exported.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&exported).unwrap(), FIXTURE);
    // Counted from the chunks the store hands over.
    assert!(String::from_utf8_lossy(&out.stderr).contains("exported 2 conversations"));
    let csv = confab(&db, &["export", "--tenant", "acme", "--format", "csv"]);
    assert!(
        String::from_utf8_lossy(&csv.stdout)
            .starts_with("ID,Title,User ID,Messages,Created,Updated")
    );

    let hits = confab(&db, &["search", "refund", "--tenant", "acme"]);
    let hits = String::from_utf8(hits.stdout).unwrap();
    assert_eq!(hits.lines().count(), 2, "{hits}");
    let first: serde_json::Value = serde_json::from_str(hits.lines().next().unwrap()).unwrap();
    assert!(first["snippet"].as_str().unwrap().contains("<mark>"));

    let stats = confab(&db, &["stats", "--tenant", "acme"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["conversations"], 2);
    assert_eq!(stats["messages"], 4);

    let backup = dir.path().join("backup.db");
    confab(&db, &["backup", backup.to_str().unwrap()]);
    let restored = dir.path().join("restored.db");
    confab(&restored, &["restore", backup.to_str().unwrap()]);
    let again = dir.path().join("again.ndjson");
    confab(
        &restored,
        &[
            "export",
            "--tenant",
            "acme",
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&again).unwrap(), FIXTURE);
    let hits = confab(&restored, &["search", "中文", "--tenant", "acme"]);
    assert_eq!(String::from_utf8(hits.stdout).unwrap().lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_stats_and_export_against_a_server() {
    let dir = test_dir();
    let db = dir.path().join("s.db");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, FIXTURE).unwrap();
    confab(
        &db,
        &["import", input.to_str().unwrap(), "--tenant", "acme"],
    );

    let url = db_url(&db);
    let store = confab_store::Store::open(&url, confab_store::StoreOptions::default())
        .await
        .unwrap();
    let token = store
        .create_key("acme", confab_core::Scopes::DEFAULT, None)
        .await
        .unwrap()
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = confab_server::AppState::new(store, confab_server::ServerConfig::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(confab_server::serve(listener, state, async move {
        let _ = rx.await;
    }));

    let other = dir.path().join("unused.db");
    let run = move |args: Vec<String>| {
        let other = other.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            confab(&other, &args)
        })
    };
    let remote = |cmd: &[&str]| {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--server".into(),
            base.clone(),
            "--token".into(),
            token.clone(),
        ]);
        v
    };
    let hits = run(remote(&["search", "refund"])).await.unwrap();
    assert_eq!(String::from_utf8(hits.stdout).unwrap().lines().count(), 2);
    let stats = run(remote(&["stats"])).await.unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["messages"], 4);
    let out = dir.path().join("remote.ndjson");
    let mut args = remote(&["export"]);
    args.extend(["--out".into(), out.display().to_string()]);
    run(args).await.unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), FIXTURE);

    let _ = tx.send(());
    server.await.unwrap().unwrap();
}

fn sqlite_url(p: &Path) -> String {
    format!("sqlite://{}", p.display())
}

/// SQLite → PostgreSQL and back, each way one command pair: `confab backup` on the one and
/// `confab restore` on the other (everything: keys, conversations, insights, webhooks), or
/// `confab export` and `confab import` (one tenant's conversations). PostgreSQL only.
#[test]
fn sqlite_to_postgres_and_back() {
    let Some(admin) = testdb::pg_admin_or_skip("the SQLite → PostgreSQL migration test") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("old.db");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, FIXTURE).unwrap();
    confab_url(
        &sqlite_url(&sqlite),
        &["import", input.to_str().unwrap(), "--tenant", "acme"],
    );
    let key = confab_url(
        &sqlite_url(&sqlite),
        &["keys", "create", "--tenant", "acme"],
    );
    let key: serde_json::Value = serde_json::from_slice(&key.stdout).unwrap();
    let key_id = key["key_id"].as_str().unwrap().to_owned();

    // Backup on SQLite, restore on PostgreSQL.
    let backup = dir.path().join("backup.db");
    confab_url(&sqlite_url(&sqlite), &["backup", backup.to_str().unwrap()]);
    let pg = rt.block_on(testdb::TestDb::new_pg(&admin));
    confab_url(&pg.url, &["restore", backup.to_str().unwrap()]);
    let out = dir.path().join("pg.ndjson");
    confab_url(
        &pg.url,
        &["export", "--tenant", "acme", "--out", out.to_str().unwrap()],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), FIXTURE);
    let keys = confab_url(&pg.url, &["keys", "list"]);
    assert!(
        String::from_utf8_lossy(&keys.stdout).contains(&key_id),
        "keys came along"
    );
    for (q, n) in [("refund", 2), ("中文", 1)] {
        let hits = confab_url(&pg.url, &["search", q, "--tenant", "acme"]);
        assert_eq!(
            String::from_utf8(hits.stdout).unwrap().lines().count(),
            n,
            "{q}"
        );
    }
    // Restoring over data is refused, as on SQLite.
    let again = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["restore", backup.to_str().unwrap()])
        .env("CONFAB_DATABASE_URL", &pg.url)
        .output()
        .unwrap();
    assert!(!again.status.success());

    // And back: a PostgreSQL backup is a SQLite file that restores on SQLite.
    let back = dir.path().join("back.db");
    confab_url(&pg.url, &["backup", back.to_str().unwrap()]);
    let sqlite2 = dir.path().join("new.db");
    confab_url(&sqlite_url(&sqlite2), &["restore", back.to_str().unwrap()]);
    let out2 = dir.path().join("sqlite2.ndjson");
    confab_url(
        &sqlite_url(&sqlite2),
        &[
            "export",
            "--tenant",
            "acme",
            "--out",
            out2.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&out2).unwrap(), FIXTURE);

    // The per-tenant pair: export from SQLite, import into PostgreSQL.
    let pg2 = rt.block_on(testdb::TestDb::new_pg(&admin));
    let ndjson = dir.path().join("acme.ndjson");
    confab_url(
        &sqlite_url(&sqlite),
        &[
            "export",
            "--tenant",
            "acme",
            "--out",
            ndjson.to_str().unwrap(),
        ],
    );
    confab_url(
        &pg2.url,
        &["import", ndjson.to_str().unwrap(), "--tenant", "acme"],
    );
    let out3 = dir.path().join("pg2.ndjson");
    confab_url(
        &pg2.url,
        &[
            "export",
            "--tenant",
            "acme",
            "--out",
            out3.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read_to_string(&out3).unwrap(), FIXTURE);
}

/// `confab analyze` with several jobs at once: every completed conversation is analysed once,
/// and a second run finds nothing left.
#[test]
fn analyze_backfills_every_completed_conversation_once_with_several_jobs() {
    let dir = test_dir();
    let db = dir.path().join("a.db");
    let input = dir.path().join("in.ndjson");
    let mut ndjson = String::new();
    for c in 0..30u32 {
        let id = format!("0195a0b0-0000-7000-8000-{:012x}", 0x1000 + c);
        let status = if c % 3 == 2 { "active" } else { "completed" };
        let messages: Vec<serde_json::Value> = (0..12)
            .map(|m| {
                serde_json::json!({
                    "id": format!("0195a0b0-0000-7000-9000-{:012x}", c * 100 + m),
                    "conversation_id": id,
                    "seq": m,
                    "role": if m % 2 == 0 { "user" } else { "assistant" },
                    "content": format!("Message {m}: my refund for order {c} was rejected. Can you check?"),
                    "created_at": "2025-03-02T10:00:00.000000Z",
                    "model": null, "tokens": null, "prompt_tokens": null,
                    "completion_tokens": null, "latency_ms": null, "tool_calls": null,
                    "metadata": null, "source": null, "is_trigger": false,
                })
            })
            .collect();
        let record = serde_json::json!({
            "id": id,
            "agent_id": "support-bot", "user_id": null, "title": null,
            "status": status,
            "source": null, "model": null, "company_name": null, "added_to_memory": false,
            "metadata": {}, "analyze": true,
            "completed_at": if status == "completed" { Some("2025-03-02T10:05:00.000000Z") } else { None },
            "message_count": 12,
            "created_at": "2025-03-02T10:00:00.000000Z",
            "updated_at": "2025-03-02T10:05:00.000000Z",
            "messages": messages,
        });
        ndjson.push_str(&record.to_string());
        ndjson.push('\n');
    }
    std::fs::write(&input, ndjson).unwrap();
    confab(
        &db,
        &["import", input.to_str().unwrap(), "--tenant", "acme"],
    );

    let out = confab(&db, &["analyze", "--jobs", "3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("queued 20; analysed 20 conversation(s), 0 failure(s)"),
        "{err}"
    );
    let out = confab(&db, &["analyze", "--jobs", "3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("queued 0; analysed 0 conversation(s), 0 failure(s)"),
        "{err}"
    );
    // --all queues them again; one job at a time works the same.
    let out = confab(&db, &["analyze", "--all", "--jobs", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("queued 20; analysed 20 conversation(s), 0 failure(s)"),
        "{err}"
    );

    let refused = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["analyze", "--jobs", "0"])
        .env("CONFAB_DATABASE_URL", db_url(&db))
        .output()
        .expect("run confab");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--jobs"));
}
