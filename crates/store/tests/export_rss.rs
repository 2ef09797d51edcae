//! A SQLite export leaves the process's RSS where it was: it reads on a connection that maps
//! nothing (`fastread::Readers::streaming`), while the hot reads map the whole file. A mapped
//! page read once stays in the RSS, so an export through a mapping grows it by about the
//! pages it reads. Alone in its test binary, so no other test's mappings move `RssFile`.

use confab_core::export::ExportFormat;
use confab_store::{ConversationFilter, Store, StoreOptions};
use futures::StreamExt;

#[path = "support/records.rs"]
mod records;
use records::record;

/// The process's file-backed resident memory (mapped files), KiB; `None` without procfs.
fn rss_file_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssFile:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_export_maps_nothing() {
    if rss_file_kib().is_none() {
        eprintln!("no /proc/self/status here: nothing to measure");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rss.db");
    // No index merge in the background: its reads would map pages during the export.
    let opts = StoreOptions {
        search_merge_idle: None,
        ..StoreOptions::default()
    };
    let store = Store::open(&format!("sqlite://{}", path.display()), opts)
        .await
        .unwrap();
    let tenant = store.ensure_tenant("acme").await.unwrap();
    // 2,000 conversations × 10 messages × ~1 KiB: ~20 MiB of messages to read.
    for chunk in (0..2_000u128).collect::<Vec<_>>().chunks(200) {
        let recs = chunk.iter().map(|i| record(*i, 10, 1_000)).collect();
        store.import_records(&tenant, recs).await.unwrap();
    }

    let before = rss_file_kib().unwrap();
    let mut chunks = store.export(&tenant, ConversationFilter::default(), ExportFormat::Ndjson);
    let mut written = 0usize;
    while let Some(c) = chunks.next().await {
        written += c.unwrap().bytes.len();
    }
    let grown = rss_file_kib().unwrap().saturating_sub(before);
    eprintln!("exported {written} bytes; file-backed RSS grew by {grown} KiB");
    assert!(written > 20_000_000, "{written} bytes exported");
    // Through a mapping the export grows it by about the messages it reads (over 20 MiB).
    assert!(grown < 4 * 1024, "file-backed RSS grew by {grown} KiB");
    store.close().await;
}
