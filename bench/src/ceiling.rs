//! The storage ceilings: the same schema (a `confab_store::Store`, so the same migrations,
//! full-text index and durability settings as the server), written without HTTP.
//!
//! * batched: about 100 messages per transaction (whole conversations, through the store's
//!   import path), one after the other, on a fresh store: what the disk and the database allow
//!   for bulk writes. The bulk write paths (transcripts, import) are reported as a ratio to
//!   this.
//! * batched appends: the appends the append scenarios make (one message of about 80 bytes to
//!   an existing conversation, the conversations in turn), 100 per transaction through the
//!   store's own append statements (`Store::append_many`), one transaction after the other:
//!   what the disk and the database allow for appends. Measured where the append scenarios
//!   wrote, on the server's own store once it has stopped, to the same conversations in the
//!   same turn: an append changes one leaf of the messages' order index and one conversation
//!   row per conversation touched, so what it costs depends on how many conversations the
//!   appends go round and how large the store is (performance.md, "The ceiling for appends
//!   on the server's store"). The append paths are reported as a ratio to this, and to the
//!   bulk ceiling beside it. The same appends to the bulk runs' fresh stores (500
//!   conversations, 50,000 messages by default) are reported beside it, the reference of the
//!   forty-second session's runs.
//! * direct append: one message per call from `concurrency` tasks into the store's group-commit
//!   writer, on the server's store: the server's append path minus HTTP and JSON.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use confab_core::Role;
use confab_core::export::ExportRecord;
use confab_core::input::{AppendMessages, NewMessage};
use confab_store::{Store, TenantId};
use uuid::Uuid;

use crate::dataset::{Dataset, Rng};
use crate::harness::{self, open_store};
use crate::load::{self, Op, Run};
use crate::stats;

/// Messages per batched transaction, and appends per batched transaction of appends.
pub const BATCH_MESSAGES: usize = 100;

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

/// How much to measure: runs of each measure, appends a run (the time budget may stop a run
/// earlier), tasks in flight for the direct appends.
#[derive(Clone, Copy)]
pub struct Plan {
    pub runs: usize,
    pub appends: usize,
    pub concurrency: usize,
    pub budget: Duration,
}

/// Every run of each measure.
#[derive(Default)]
pub struct Measured {
    /// Whole conversations, about `BATCH_MESSAGES` messages a transaction, on a fresh store.
    pub bulk: Vec<Run>,
    /// One-message appends, `BATCH_MESSAGES` a transaction, to what the bulk runs wrote.
    pub fresh_appends: Vec<Run>,
    /// The same appends to the conversations the server's append scenarios wrote to, on the
    /// server's store once it has stopped: the append rows' reference.
    pub appends: Vec<Run>,
    /// One-message appends from `concurrency` tasks through the group-commit writer, on the
    /// server's store.
    pub direct: Vec<Run>,
}

/// The medians of the runs' throughputs, messages/s (appends/s for the appends); 0 where a
/// measure did not run.
#[derive(Clone, Copy, Default)]
pub struct Medians {
    pub bulk: f64,
    pub fresh_appends: f64,
    pub appends: f64,
    pub direct: f64,
}

impl Measured {
    pub fn medians(&self) -> Medians {
        let med = |r: &[Run]| {
            stats::median(&r.iter().map(Run::throughput).collect::<Vec<_>>()).unwrap_or(0.0)
        };
        Medians {
            bulk: med(&self.bulk),
            fresh_appends: med(&self.fresh_appends),
            appends: med(&self.appends),
            direct: med(&self.direct),
        }
    }

    /// `runs` runs of the bulk ceiling, each on a fresh database `ceiling-{run}.db` in `dir`
    /// (removed after it), each followed by batched appends to what it wrote.
    pub async fn fresh(
        &mut self,
        dir: &Path,
        plan: Plan,
        dataset: &Dataset,
        conversations: std::ops::Range<usize>,
    ) -> anyhow::Result<()> {
        let Plan {
            appends, budget, ..
        } = plan;
        for run in 0..plan.runs {
            let name = format!("ceiling-{run}.db");
            let store = open_store(dir, &name).await?;
            let tenant = store.ensure_tenant("ceiling").await?;
            let (bulk, ids) = bulk(&store, tenant, dataset, conversations.clone(), budget).await;
            let written = batched_appends(
                &store,
                tenant,
                ids,
                texts(dataset, run, appends),
                appends,
                budget,
            )
            .await;
            store.close().await;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(dir.join(format!("{name}{suffix}")));
            }
            let written = written?;
            eprintln!(
                "  ceiling run {}: batched {:.0} msg/s, batched appends {:.0}/s (fresh store)",
                run + 1,
                bulk.throughput(),
                written.throughput(),
            );
            self.bulk.push(bulk);
            self.fresh_appends.push(written);
        }
        Ok(())
    }

    /// `runs` runs of the appends' two measures on the store at `url`, which holds the
    /// dataset's conversations `ids` under [`harness::TENANT`] and which no server is using: the
    /// appends made as the append scenarios make them (the same conversations in the same
    /// turn, the same kind of text), without HTTP.
    pub async fn on_store(
        &mut self,
        url: &str,
        ids: Arc<Vec<Uuid>>,
        plan: Plan,
        dataset: &Dataset,
    ) -> anyhow::Result<()> {
        let Plan {
            runs,
            appends,
            concurrency,
            budget,
        } = plan;
        let store = harness::open_url(url).await?;
        let tenant = store
            .find_tenant(harness::TENANT)
            .await?
            .with_context(|| format!("the store has no tenant {:?}", harness::TENANT))?;
        for run in 0..runs {
            let texts = texts(dataset, run, appends);
            let batched =
                batched_appends(&store, tenant, ids.clone(), texts.clone(), appends, budget)
                    .await?;
            let direct = direct_appends(
                &store,
                tenant,
                ids.clone(),
                texts,
                concurrency,
                appends,
                budget,
            )
            .await;
            eprintln!(
                "  ceiling run {} on the server's store: batched appends {:.0}/s, direct append {:.0}/s (p50 {:.2} ms, p99 {:.2} ms)",
                run + 1,
                batched.throughput(),
                direct.throughput(),
                direct.pct_ms(50.0),
                direct.pct_ms(99.0)
            );
            self.appends.push(batched);
            self.direct.push(direct);
        }
        store.close().await;
        Ok(())
    }
}

/// The bulk ceiling's run: `conversations` of the dataset imported `BATCH_MESSAGES` messages
/// a transaction, one after the other. Answers the run and the ids of what it imported (on a
/// slow day the time budget ends the import early).
async fn bulk(
    store: &Store,
    tenant: TenantId,
    dataset: &Dataset,
    conversations: std::ops::Range<usize>,
    budget: Duration,
) -> (Run, Arc<Vec<Uuid>>) {
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
    let run = load::run(std::process::id(), 1, count, budget * 4, import).await;
    let ids = group_ids
        .into_iter()
        .zip(taken.iter())
        .filter(|(_, slot)| slot.lock().expect("not poisoned").is_none())
        .flat_map(|(ids, _)| ids)
        .collect();
    (run, Arc::new(ids))
}

/// About 80-byte texts drawn like the dataset's, for the appends of run `run`.
fn texts(dataset: &Dataset, run: usize, appends: usize) -> Arc<Vec<String>> {
    let mut rng = Rng::new(0xCE11 + run as u64);
    Arc::new(
        (0..appends.min(10_000))
            .map(|_| dataset.text(&mut rng, 12))
            .collect(),
    )
}

fn message(text: &str) -> AppendMessages {
    AppendMessages {
        messages: vec![NewMessage {
            role: Some(Role::User),
            content: text.to_owned(),
            ..Default::default()
        }],
        status: None,
        metadata: None,
    }
}

/// `appends` one-message appends to `ids` in turn, `BATCH_MESSAGES` a transaction through
/// the store's own append statements (`Store::append_many`), one transaction after the other.
async fn batched_appends(
    store: &Store,
    tenant: TenantId,
    ids: Arc<Vec<Uuid>>,
    texts: Arc<Vec<String>>,
    appends: usize,
    budget: Duration,
) -> anyhow::Result<Run> {
    anyhow::ensure!(!ids.is_empty(), "no conversations to append to");
    let s = store.clone();
    let op: Op = Arc::new(move |call| {
        let (s, ids, texts) = (s.clone(), ids.clone(), texts.clone());
        Box::pin(async move {
            let batch = (call * BATCH_MESSAGES..(call + 1) * BATCH_MESSAGES)
                .map(|i| (ids[i % ids.len()], message(&texts[i % texts.len()])))
                .collect();
            Ok(s.append_many(&tenant, batch).await?.len() as u64)
        })
    });
    let calls = appends.div_ceil(BATCH_MESSAGES).max(1);
    Ok(load::run(std::process::id(), 1, calls, budget, op).await)
}

/// `appends` one-message appends to `ids` in turn from `concurrency` tasks, one a call, into
/// the group-commit writer: the server's append path minus HTTP and JSON.
async fn direct_appends(
    store: &Store,
    tenant: TenantId,
    ids: Arc<Vec<Uuid>>,
    texts: Arc<Vec<String>>,
    concurrency: usize,
    appends: usize,
    budget: Duration,
) -> Run {
    let s = store.clone();
    let op: Op = Arc::new(move |i| {
        let (s, ids, texts) = (s.clone(), ids.clone(), texts.clone());
        Box::pin(async move {
            let input = message(&texts[i % texts.len()]);
            s.append_messages(&tenant, ids[i % ids.len()], input, None)
                .await?;
            Ok(1)
        })
    });
    load::run(std::process::id(), concurrency, appends, budget, op).await
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
