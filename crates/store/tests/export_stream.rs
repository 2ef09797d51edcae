//! The export iterator keeps memory flat: a counting allocator measures the Rust heap while a
//! large export is consumed, and its peak must stay far below the size of the data.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use confab_core::export::{ExportFormat, ExportRecord};
use confab_core::{Conversation, Message, Role, Status};
use confab_store::{ConversationFilter, ExportItem, Importer, Store, StoreOptions};
use futures::StreamExt;

#[path = "support/testdb.rs"]
mod testdb;
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

fn record(i: u128, messages: usize, size: usize) -> ExportRecord {
    let t = confab_core::timefmt::from_micros(1_700_000_000_000_000 + i as i64 * 1_000_000);
    let id = uuid::Uuid::from_u128(i << 32);
    ExportRecord {
        conversation: Conversation {
            id,
            agent_id: None,
            user_id: Some(format!("u{}", i % 7)),
            title: Some(format!("conversation {i}")),
            status: Status::Completed,
            source: Some("api".into()),
            model: None,
            company_name: None,
            added_to_memory: false,
            metadata: Default::default(),
            message_count: messages as i64,
            analyze: false,
            created_at: t,
            updated_at: t,
            completed_at: Some(t),
        },
        messages: (0..messages)
            .map(|s| Message {
                id: uuid::Uuid::from_u128((i << 32) + s as u128 + 1),
                conversation_id: id,
                seq: s as i64,
                role: if s % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                content: format!("{s} {}", "lorem ipsum ".repeat(size / 12)),
                created_at: t,
                model: None,
                tokens: None,
                prompt_tokens: None,
                completion_tokens: None,
                latency_ms: None,
                tool_calls: None,
                metadata: None,
                source: Some("api".into()),
                is_trigger: false,
            })
            .collect(),
    }
}

/// A store over a new database (SQLite file `name`, or a PostgreSQL database that lives as long
/// as the returned `TestDb`).
async fn open(dir: &tempfile::TempDir, name: &str) -> (Store, TestDb) {
    let db = TestDb::new(&dir.path().join(name)).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    (store, db)
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
    let items = store.export(&tenant, ConversationFilter::default(), true);
    let mut chunks = confab_store::render(items, ExportFormat::Ndjson);
    let mut written = 0usize;
    let mut lines = 0usize;
    while let Some(c) = chunks.next().await {
        let c = c.unwrap();
        lines += c.iter().filter(|b| **b == b'\n').count();
        written += c.len();
    }
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    eprintln!("exported {written} bytes with a peak heap growth of {peak} bytes");
    assert_eq!(lines, convs as usize);
    assert!(written > total_bytes, "{written} bytes written");
    // The stream holds one batch of conversations, a bounded channel and one chunk (about
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
    let export = |s: Store, t| async move {
        let items = s.export(&t, ConversationFilter::default(), true);
        let mut out = Vec::new();
        let mut chunks = confab_store::render(items, ExportFormat::Ndjson);
        while let Some(c) = chunks.next().await {
            out.extend(c.unwrap());
        }
        out
    };
    let first = export(a.clone(), ta).await;

    let (b, _b_db) = open(&dir, "b.db").await;
    let tb = b.ensure_tenant("other").await.unwrap();
    let mut imp = Importer::new(b.clone(), tb);
    for line in first.split(|c| *c == b'\n') {
        imp.line(line).await.unwrap();
    }
    let o = imp.finish().await.unwrap();
    assert_eq!((o.imported, o.skipped), (250, 0));
    let second = export(b.clone(), tb).await;
    assert_eq!(
        String::from_utf8(first).unwrap(),
        String::from_utf8(second).unwrap()
    );

    // The stream's items come in order: each conversation, then its messages by seq.
    let items: Vec<ExportItem> = b
        .export(&tb, ConversationFilter::default(), true)
        .map(Result::unwrap)
        .collect()
        .await;
    let mut current: Option<(uuid::Uuid, i64, i64)> = None;
    let (mut convs, mut messages) = (0, 0);
    let whole = |c: &Option<(uuid::Uuid, i64, i64)>| {
        if let Some((id, next, count)) = c {
            assert_eq!(next, count, "every message of {id}");
        }
    };
    for it in items {
        match it {
            ExportItem::Conversation(c, _) => {
                whole(&current);
                convs += 1;
                current = Some((c.id, 0, c.message_count));
            }
            ExportItem::Message(m) => {
                let (id, next, _) = current.as_mut().unwrap();
                assert_eq!((m.conversation_id, m.seq), (*id, *next));
                *next += 1;
                messages += 1;
            }
        }
    }
    whole(&current);
    assert_eq!(convs, 250);
    assert_eq!(
        messages,
        (1..=250u128).map(messages_of).sum::<usize>() as i64
    );
}
