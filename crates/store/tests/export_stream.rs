//! The export iterator keeps memory flat: a counting allocator measures the Rust heap while a
//! large export is consumed, and its peak must stay far below the size of the data.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use confab_core::export::{ExportFormat, ExportRecord};
use confab_core::{Conversation, Message};
use confab_store::{ConversationFilter, Importer, Store, StoreOptions};
use futures::StreamExt;

#[path = "support/records.rs"]
mod records;
#[path = "support/testdb.rs"]
mod testdb;
use records::record;
use testdb::TestDb;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

/// A store over a new database (SQLite file `name`, or a PostgreSQL database that lives as long
/// as the returned `TestDb`).
async fn open(dir: &tempfile::TempDir, name: &str) -> (Store, TestDb) {
    let db = TestDb::new(&dir.path().join(name)).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    (store, db)
}

/// The whole export of `tenant` in `format`, and how many chunks and conversations it came in.
async fn export_all(
    store: &Store,
    tenant: &confab_store::TenantId,
    filter: ConversationFilter,
    format: ExportFormat,
) -> (Vec<u8>, usize, u64) {
    let mut s = store.export(tenant, filter, format);
    let (mut out, mut chunks, mut conversations) = (Vec::new(), 0, 0);
    while let Some(c) = s.next().await {
        let c = c.unwrap();
        out.extend(c.bytes);
        chunks += 1;
        conversations += c.conversations;
    }
    (out, chunks, conversations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_memory_stays_flat() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _db) = open(&dir, "big.db").await;
    let tenant = store.ensure_tenant("acme").await.unwrap();
    // 2,000 conversations × 10 messages × ~1 KiB = ~20 MiB of content.
    let (convs, per, size) = (2_000u128, 10, 1_000);
    for chunk in (0..convs).collect::<Vec<_>>().chunks(200) {
        let recs = chunk.iter().map(|i| record(*i, per, size)).collect();
        store.import_records(&tenant, recs).await.unwrap();
    }
    let total_bytes = convs as usize * per * size;

    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut chunks = store.export(&tenant, ConversationFilter::default(), ExportFormat::Ndjson);
    let mut written = 0usize;
    let mut lines = 0usize;
    while let Some(c) = chunks.next().await {
        let c = c.unwrap();
        lines += c.bytes.iter().filter(|b| **b == b'\n').count();
        written += c.bytes.len();
    }
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    eprintln!("exported {written} bytes with a peak heap growth of {peak} bytes");
    assert_eq!(lines, convs as usize);
    assert!(written > total_bytes, "{written} bytes written");
    // The reader holds one batch of conversations, and a bounded channel of chunks (about
    // 0.6 MiB measured), against ~27 MiB exported; anything proportional to the data fails.
    assert!(
        peak < 4 * 1024 * 1024,
        "peak heap growth {peak} bytes while exporting {written} bytes"
    );
    store.close().await;
}

#[tokio::test]
async fn export_import_export_round_trip_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _a_db) = open(&dir, "a.db").await;
    let ta = a.ensure_tenant("acme").await.unwrap();
    // 250 conversations: three export batches (newest first: 250..151, 150..51, 50..1), with
    // conversations of no messages scattered through them (every fourth) and at every batch
    // edge, first and last, so a batch's message stream is also read again after it has ended.
    let messages_of = |i: u128| if i % 50 <= 1 { 0 } else { (i % 4) as usize };
    let recs = (1..=250u128)
        .map(|i| record(i, messages_of(i), 40))
        .collect();
    a.import_records(&ta, recs).await.unwrap();
    let ndjson = ExportFormat::Ndjson;
    let (first, _, counted) = export_all(&a, &ta, ConversationFilter::default(), ndjson).await;
    assert_eq!(counted, 250, "conversations counted by the chunks");

    let (b, _b_db) = open(&dir, "b.db").await;
    let tb = b.ensure_tenant("other").await.unwrap();
    let mut imp = Importer::new(b.clone(), tb);
    for line in first.split(|c| *c == b'\n') {
        imp.line(line).await.unwrap();
    }
    let o = imp.finish().await.unwrap();
    assert_eq!((o.imported, o.skipped), (250, 0));
    let (second, _, _) = export_all(&b, &tb, ConversationFilter::default(), ndjson).await;
    assert_eq!(
        String::from_utf8(first).unwrap(),
        String::from_utf8(second.clone()).unwrap()
    );

    // Newest first, each conversation whole, its messages in seq order.
    let records: Vec<ExportRecord> = second
        .split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let order: Vec<u128> = records
        .iter()
        .map(|r| r.conversation.id.as_u128() >> 32)
        .collect();
    assert_eq!(order, (1..=250u128).rev().collect::<Vec<_>>());
    for r in &records {
        r.validate().unwrap();
        let i = r.conversation.id.as_u128() >> 32;
        assert_eq!(r.messages.len(), messages_of(i), "conversation {i}");
    }
}

/// Every format, whole and filtered, in chunks: the same bytes as rendering the conversations
/// in one piece; and a consumer that stops reading early stops the reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_render_every_format_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _db) = open(&dir, "r.db").await;
    let tenant = store.ensure_tenant("acme").await.unwrap();
    // 230 conversations of 0–5 messages of ~300 bytes: several export batches and chunks.
    let recs = (1..=230u128)
        .map(|i| record(i, (i % 6) as usize, 300))
        .collect();
    store.import_records(&tenant, recs).await.unwrap();
    let other = store.ensure_tenant("other").await.unwrap();
    store
        .import_records(&other, vec![record(999, 3, 40)])
        .await
        .unwrap();

    let only_u3 = ConversationFilter {
        user_id: Some("u3".into()),
        ..ConversationFilter::default()
    };
    for filter in [ConversationFilter::default(), only_u3.clone()] {
        // What the store holds, read back through NDJSON; every format must agree with it.
        let (ndjson, chunks, counted) =
            export_all(&store, &tenant, filter.clone(), ExportFormat::Ndjson).await;
        let records: Vec<(Conversation, Vec<Message>)> = ndjson
            .split(|c| *c == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let r: ExportRecord = serde_json::from_slice(l).unwrap();
                (r.conversation, r.messages)
            })
            .collect();
        let expected = if filter.user_id.is_some() { 33 } else { 230 };
        assert_eq!((records.len(), counted), (expected, expected as u64));
        assert!(
            records.iter().all(|(c, _)| c.id.as_u128() >> 32 != 999),
            "only the tenant's own"
        );
        if filter.user_id.is_none() {
            assert!(chunks > 2, "{chunks} chunks");
        }
        for format in [
            ExportFormat::Ndjson,
            ExportFormat::Json,
            ExportFormat::Csv,
            ExportFormat::CsvMessages,
            ExportFormat::Markdown,
        ] {
            let (out, _, _) = export_all(&store, &tenant, filter.clone(), format).await;
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8(confab_core::export::render_all(format, &records)).unwrap(),
                "{format:?}, {filter:?}"
            );
        }
    }

    // A consumer that takes one chunk and goes away: nothing waits on it, and the store goes
    // on (the reader's next send fails and it ends its read transaction, which this cannot
    // observe from outside).
    let mut s = store.export(&tenant, ConversationFilter::default(), ExportFormat::Ndjson);
    assert!(s.next().await.unwrap().is_ok());
    drop(s);
    let again = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        export_all(&store, &tenant, only_u3, ExportFormat::Ndjson),
    )
    .await
    .expect("an export after an abandoned one");
    assert_eq!(again.2, 33);
    store
        .import_records(&tenant, vec![record(5_000, 2, 40)])
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), store.close())
        .await
        .expect("the store closes with an abandoned export behind it");
}
