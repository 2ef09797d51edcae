//! The storage ceiling: the same schema (a `confab_store::Store` on a fresh file, so the same
//! migrations, full-text index and durability settings as the server), written without HTTP.
//!
//! * batched: about 100 messages per transaction (whole conversations, through the store's
//!   import path), one after the other: what the disk and the database allow for bulk writes.
//!   The bulk write paths (transcripts, import) are reported as a ratio to this.
//! * batched appends: the appends the append scenarios make (one message of about 80 bytes to
//!   an existing conversation, the conversations in turn), 100 per transaction through the
//!   store's own append statements (`Store::append_many`), one transaction after the other:
//!   what the disk and the database allow for appends. The append paths are reported as a
//!   ratio to this, and to the bulk ceiling beside it. An append cannot be written like a
//!   bulk import: it changes one leaf of the messages' order index and one conversation row
//!   per conversation touched, pages scattered over the file, where an import fills pages
//!   next to each other (performance.md, "Two ceilings").
//! * direct append: one message per call from `concurrency` tasks into the store's group-commit
//!   writer: the server's append path minus HTTP and JSON.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_core::Role;
use confab_core::export::ExportRecord;
use confab_core::input::{AppendMessages, NewMessage};

use crate::dataset::{Dataset, Rng};
use crate::harness::open_store;
use crate::load::{self, Op, Run};

/// Messages per batched transaction, and appends per batched transaction of appends.
pub const BATCH_MESSAGES: usize = 100;

/// One run's three measures.
pub struct Ceilings {
    /// Whole conversations, about `BATCH_MESSAGES` messages a transaction.
    pub bulk: Run,
    /// One-message appends, `BATCH_MESSAGES` a transaction.
    pub appends: Run,
    /// One-message appends from `concurrency` tasks through the group-commit writer.
    pub direct: Run,
}

/// Groups whole conversations into transactions of at least `BATCH_MESSAGES` messages.
pub fn batches(records: Vec<ExportRecord>) -> Vec<Vec<ExportRecord>> {
    let mut out = Vec::new();
    let mut cur: Vec<ExportRecord> = Vec::new();
    let mut n = 0;
    for r in records {
        n += r.messages.len();
        cur.push(r);
        if n >= BATCH_MESSAGES {
            out.push(std::mem::take(&mut cur));
            n = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One run of both ceilings and the direct appends on a fresh database `ceiling-{run}.db` in
/// `dir`: the bulk writes first, then the appends to what they wrote.
pub async fn measure(
    dir: &Path,
    run: usize,
    dataset: &Dataset,
    conversations: std::ops::Range<usize>,
    concurrency: usize,
    appends: usize,
    budget: Duration,
) -> anyhow::Result<Ceilings> {
    let name = format!("ceiling-{run}.db");
    let store = open_store(dir, &name).await?;
    let tenant = store.ensure_tenant("ceiling").await?;
    let records: Vec<ExportRecord> = conversations.map(|i| dataset.conversation(i)).collect();
    let groups = batches(records);
    let group_ids: Vec<Vec<_>> = groups
        .iter()
        .map(|g| g.iter().map(|r| r.conversation.id).collect())
        .collect();
    let count = groups.len();
    let slots: Arc<Vec<Mutex<Option<Vec<ExportRecord>>>>> =
        Arc::new(groups.into_iter().map(|g| Mutex::new(Some(g))).collect());
    let s = store.clone();
    let taken = slots.clone();
    let import: Op = Arc::new(move |i| {
        let (s, slots) = (s.clone(), slots.clone());
        Box::pin(async move {
            let batch = slots[i]
                .lock()
                .expect("not poisoned")
                .take()
                .unwrap_or_default();
            Ok(s.import_records(&tenant, batch).await?.messages)
        })
    });
    let batched = load::run(std::process::id(), 1, count, budget * 4, import).await;
    // On a slow day the time budget ends the import early: append only to what was imported.
    let ids: Arc<Vec<_>> = Arc::new(
        group_ids
            .into_iter()
            .zip(taken.iter())
            .filter(|(_, slot)| slot.lock().expect("not poisoned").is_none())
            .flat_map(|(ids, _)| ids)
            .collect(),
    );
    anyhow::ensure!(
        !ids.is_empty(),
        "the ceiling imported nothing in its time budget"
    );

    let mut rng = Rng::new(0xCE11 + run as u64);
    let texts: Arc<Vec<String>> = Arc::new(
        (0..appends.min(10_000))
            .map(|_| dataset.text(&mut rng, 12))
            .collect(),
    );
    let message = |text: &str| AppendMessages {
        messages: vec![NewMessage {
            role: Some(Role::User),
            content: text.to_owned(),
            ..Default::default()
        }],
        status: None,
        metadata: None,
    };
    let s = store.clone();
    let (ids2, texts2) = (ids.clone(), texts.clone());
    let appends_batched: Op = Arc::new(move |call| {
        let (s, ids, texts) = (s.clone(), ids2.clone(), texts2.clone());
        Box::pin(async move {
            let batch = (call * BATCH_MESSAGES..(call + 1) * BATCH_MESSAGES)
                .map(|i| (ids[i % ids.len()], message(&texts[i % texts.len()])))
                .collect();
            Ok(s.append_many(&tenant, batch).await?.len() as u64)
        })
    });
    let calls = appends.div_ceil(BATCH_MESSAGES).max(1);
    let appends_run = load::run(std::process::id(), 1, calls, budget, appends_batched).await;
    let s = store.clone();
    let append: Op = Arc::new(move |i| {
        let (s, ids, texts) = (s.clone(), ids.clone(), texts.clone());
        Box::pin(async move {
            let input = message(&texts[i % texts.len()]);
            s.append_messages(&tenant, ids[i % ids.len()], input, None)
                .await?;
            Ok(1)
        })
    });
    let direct = load::run(std::process::id(), concurrency, appends, budget, append).await;
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{name}{suffix}")));
    }
    Ok(Ceilings {
        bulk: batched,
        appends: appends_run,
        direct,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Spec;

    #[test]
    fn batches_hold_whole_conversations_of_at_least_100_messages() {
        let d = Dataset::new(Spec {
            seed: 5,
            conversations: 30,
            messages_per_conversation: 20,
            anchor: time::macros::datetime!(2026-01-01 00:00 UTC),
        });
        let records: Vec<_> = (0..30).map(|i| d.conversation(i)).collect();
        let total: usize = records.iter().map(|r| r.messages.len()).sum();
        let b = batches(records);
        let sizes: Vec<usize> = b
            .iter()
            .map(|g| g.iter().map(|r| r.messages.len()).sum())
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), total);
        assert!(
            sizes[..sizes.len() - 1]
                .iter()
                .all(|&n| n >= BATCH_MESSAGES)
        );
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 30);
    }
}
