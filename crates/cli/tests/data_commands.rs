//! The data commands end to end on a local database: import, export (round trip), search,
//! stats, backup and restore. stderr is not a terminal here, so no progress bar is drawn.

use std::path::Path;
use std::process::{Command, Output};

const FIXTURE: &str = include_str!("../../server/tests/golden/fixture.ndjson");

fn confab(db: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(args)
        .env("CONFAB_DATABASE_URL", format!("sqlite://{}", db.display()))
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
    let dir = tempfile::tempdir().unwrap();
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
    confab(
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
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, FIXTURE).unwrap();
    confab(
        &db,
        &["import", input.to_str().unwrap(), "--tenant", "acme"],
    );

    let url = format!("sqlite://{}", db.display());
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
