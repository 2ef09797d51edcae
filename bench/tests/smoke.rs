//! The benchmark runs end to end on a tiny dataset: the server in its child process, every
//! scenario over HTTP, both storage ceilings (the one for appends on the server's store once
//! it has stopped), the table and the JSON. Its figures are not looked at (tests never assert
//! timings); what is pinned is that every row was measured, without errors, against the
//! reference it names. On PostgreSQL too when `CONFAB_TEST_POSTGRES_URL` is set.

use std::process::Command;

use serde_json::Value;

fn run(postgres: Option<&str>) -> Value {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("smoke.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab-bench"));
    cmd.args([
        "all",
        "--conversations",
        "40",
        "--messages-per-conversation",
        "10",
        "--runs",
        "1",
        "--seconds",
        "1",
        "--requests",
        "300",
        "--ceiling-messages",
        "400",
        "--concurrency",
        "8",
        "--keep-dir",
    ])
    .arg(dir.path().join("stores"))
    .arg("--out")
    .arg(&out);
    match postgres {
        Some(url) => cmd.env("CONFAB_BENCH_POSTGRES_URL", url),
        None => cmd.env_remove("CONFAB_BENCH_POSTGRES_URL"),
    };
    let o = cmd.output().expect("running confab-bench");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "confab-bench all failed:\n{stderr}");
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("| append 1 message, 8 connections |"),
        "the table:\n{table}"
    );
    serde_json::from_slice(&std::fs::read(&out).expect("the JSON file")).expect("JSON")
}

fn row<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .unwrap_or_else(|| panic!("no row {name:?} in {doc:#}"))
}

fn check(doc: &Value, backend: &str) {
    assert_eq!(doc["backend"], backend);
    let rows = doc["rows"].as_array().expect("rows");
    assert!(rows.len() >= 25, "{} rows", rows.len());
    for r in rows {
        assert_eq!(r["errors"], 0, "errors in {r:#}");
        assert!(
            r["throughput"].as_f64().unwrap_or(0.0) > 0.0,
            "nothing measured: {r:#}"
        );
    }
    let appends = doc["append_ceiling_msg_per_s"]
        .as_f64()
        .expect("ceiling for appends");
    let bulk = doc["ceiling_msg_per_s"].as_f64().expect("bulk ceiling");
    let fresh = doc["fresh_append_ceiling_msg_per_s"]
        .as_f64()
        .expect("fresh store's");
    assert!(appends > 0.0 && bulk > 0.0 && fresh > 0.0, "{doc:#}");
    // The append rows divide by the ceiling for appends measured on the server's store, and
    // show the bulk ratio beside it; transcripts divide by the bulk one; reads by the floor.
    let a = row(doc, "append 1 message, 8 connections");
    let ratio = a["ceiling_ratio"].as_f64().expect("append ratio");
    let t = a["throughput"].as_f64().unwrap();
    assert!((ratio - t / appends).abs() < 1e-6 * ratio.max(1.0), "{a:#}");
    assert!(
        (a["bulk_ceiling_ratio"].as_f64().unwrap() - t / bulk).abs() < 1e-6,
        "{a:#}"
    );
    let c = row(doc, "storage ceiling for appends");
    assert!(
        c["name"]
            .as_str()
            .unwrap()
            .contains("on the server's store")
    );
    assert!((c["throughput"].as_f64().unwrap() - appends).abs() < 1e-6);
    let tr = row(doc, "create conversation with 20-message transcript");
    let tt = tr["throughput"].as_f64().unwrap();
    assert!(
        (tr["ceiling_ratio"].as_f64().unwrap() - tt / bulk).abs() < 1e-6,
        "{tr:#}"
    );
    assert!(
        row(doc, "get conversation")["floor_ratio"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
fn the_benchmark_runs_end_to_end_on_sqlite() {
    check(&run(None), "sqlite");
}

#[test]
fn the_benchmark_runs_end_to_end_on_postgres() {
    let Some(url) = std::env::var("CONFAB_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return;
    };
    check(&run(Some(&url)), "postgres");
}

/// `words` prints the words the "different words in turn" row searches, commonest first, as
/// bench/scripts/load_args.py takes them (so the vocabulary's scheme lives only in
/// dataset.rs); and the binary runs on mimalloc, as `confab` does, so that the ceilings it
/// measures in its own process allocate as the server it starts does.
#[test]
fn words_are_the_cold_rows_and_the_heap_is_mimalloc() {
    let out = Command::new(env!("CARGO_BIN_EXE_confab-bench"))
        .arg("words")
        .env("MIMALLOC_VERBOSE", "1")
        .output()
        .expect("running confab-bench words");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("mimalloc:"),
        "mimalloc said nothing: {stderr}"
    );
    let words: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(words.len(), 1024);
    let unique: std::collections::HashSet<_> = words.iter().collect();
    assert_eq!(unique.len(), 1024);
    // One syllable a word for the 40 commonest, two after them.
    assert_eq!(&words[..3], ["ka", "lo", "mi"]);
    assert_eq!(words[40], "kaka");
    let three = Command::new(env!("CARGO_BIN_EXE_confab-bench"))
        .args(["words", "--count", "3"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(three.stdout).unwrap(), "ka\nlo\nmi\n");
}
