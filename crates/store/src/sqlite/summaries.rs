//! Summaries of one tenant asked for at once share one query, as on PostgreSQL
//! (`postgres/summary_batch.rs`).
//!
//! A summary steps the tenant's group rows and its last week's conversations: about 330 µs of
//! the server's CPU on the benchmark's store, so a dashboard's 64 connections asking for it
//! kept both cores busy at 5,500 summaries a second (docs/performance.md, forty-second
//! session). Now one request per tenant runs the query (the leader) while the others of that
//! tenant wait; when it is done, the leader answers every request that was waiting when the
//! query started, and hands the lead to one that arrived during it, which runs the next query
//! for itself and every other that arrived meanwhile. So no answer is older than its request:
//! each comes from a query that started after the request arrived, with the latest of the
//! batch's "now"s (the summary's recent counts are relative to it).

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::error::Result;
use crate::stats::Summary;

/// What a waiting request is told.
enum Told {
    /// Its answer, from a query that started after it arrived.
    Answer(Summary),
    /// Run the next query, for itself and whoever is waiting then. After a failed query every
    /// request it was to answer is told this, so each runs a query of its own (the error is
    /// not shared: it is each request's own to report) and the first of them takes those
    /// waiting by then.
    Lead,
}

#[derive(Default)]
struct Tenant {
    /// A request of this tenant is running the query.
    running: bool,
    waiting: Vec<(OffsetDateTime, oneshot::Sender<Told>)>,
}

#[derive(Default)]
pub(super) struct Summaries {
    tenants: Mutex<HashMap<Uuid, Tenant>>,
}

/// A request waiting for its answer. Dropped before it read what it was told (its request
/// went away), it passes a lead it was given on, so that the others are not left waiting for
/// a leader that will never run.
struct Waiting<'a> {
    shared: &'a Summaries,
    tenant: Uuid,
    rx: oneshot::Receiver<Told>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(Told::Lead) = self.rx.try_recv() {
            self.shared.hand_on(self.tenant);
        }
    }
}

impl Summaries {
    /// The tenant's summary at `now` or a little later, from `run` (the query) shared with the
    /// tenant's other requests waiting.
    pub async fn summary(
        &self,
        tenant: Uuid,
        now: OffsetDateTime,
        run: impl Fn(OffsetDateTime) -> Result<Summary>,
    ) -> Result<Summary> {
        let waiting = {
            let mut tenants = self.tenants.lock().expect("summaries lock");
            let t = tenants.entry(tenant).or_default();
            if std::mem::replace(&mut t.running, true) {
                let (tx, rx) = oneshot::channel();
                t.waiting.push((now, tx));
                Some(Waiting {
                    shared: self,
                    tenant,
                    rx,
                })
            } else {
                None
            }
        };
        if let Some(mut w) = waiting {
            match (&mut w.rx).await {
                Ok(Told::Answer(s)) => return Ok(s),
                // Told to lead (the sender is never dropped unanswered: a leader runs to the
                // end without yielding): lead.
                Ok(Told::Lead) | Err(_) => {}
            }
        }
        self.lead(tenant, now, &run)
    }

    /// Runs the query for this request and every one waiting now, answers them, and hands the
    /// lead on if more arrived meanwhile.
    fn lead(
        &self,
        tenant: Uuid,
        now: OffsetDateTime,
        run: &impl Fn(OffsetDateTime) -> Result<Summary>,
    ) -> Result<Summary> {
        let batch = {
            let mut tenants = self.tenants.lock().expect("summaries lock");
            let t = tenants.entry(tenant).or_default();
            t.running = true;
            std::mem::take(&mut t.waiting)
        };
        let latest = batch.iter().map(|(n, _)| *n).fold(now, OffsetDateTime::max);
        let result = run(latest);
        for (_, w) in batch {
            let _ = w.send(match &result {
                Ok(s) => Told::Answer(s.clone()),
                Err(_) => Told::Lead,
            });
        }
        self.hand_on(tenant);
        result
    }

    /// Gives the lead to the longest-waiting request, or ends the tenant's run. The one told
    /// leaves the list: the query it runs answers it directly.
    fn hand_on(&self, tenant: Uuid) {
        let mut tenants = self.tenants.lock().expect("summaries lock");
        let Some(t) = tenants.get_mut(&tenant) else {
            return;
        };
        while !t.waiting.is_empty() {
            let (_, first) = t.waiting.remove(0);
            // Gone (its request dropped): the next one.
            if first.send(Told::Lead).is_ok() {
                return;
            }
        }
        tenants.remove(&tenant);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::error::StoreError;

    /// 64 requests of one tenant while writes keep landing: each answer counts every write
    /// that landed before its request was made (no answer is older than its request), the
    /// queries are fewer than the requests (they shared), and a failed query is not shared.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn waiting_summaries_share_a_query_that_started_after_them() {
        let shared = Arc::new(Summaries::default());
        let writes = Arc::new(AtomicI64::new(0));
        let queries = Arc::new(AtomicI64::new(0));
        let tenant = Uuid::now_v7();
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (shared, writes, queries) = (shared.clone(), writes.clone(), queries.clone());
            tasks.push(tokio::spawn(async move {
                // A write that returns before the request is made.
                let seen = writes.fetch_add(1, Ordering::SeqCst) + 1;
                let fail = i == 40;
                let r = shared
                    .summary(tenant, OffsetDateTime::now_utc(), |_| {
                        queries.fetch_add(1, Ordering::SeqCst);
                        let mut s = Summary::fold(Vec::new());
                        s.conversations = writes.load(Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        if fail {
                            return Err(StoreError::Config("injected".into()));
                        }
                        Ok(s)
                    })
                    .await;
                (i, seen, r)
            }));
            if i % 8 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut failed = 0;
        for t in tasks {
            let (i, seen, r) = t.await.unwrap();
            match r {
                Ok(s) => assert!(
                    s.conversations >= seen,
                    "request {i}: {} < {seen}",
                    s.conversations
                ),
                Err(_) => {
                    assert_eq!(i, 40, "request {i} got another's error");
                    failed += 1;
                }
            }
        }
        assert!(failed <= 1);
        let q = queries.load(Ordering::SeqCst);
        assert!(q < 64, "{q} queries for 64 requests: none shared");
        assert!(
            shared.tenants.lock().unwrap().is_empty(),
            "a run left behind"
        );
    }

    /// A waiting request that goes away after it was told to lead passes the lead on: the
    /// request behind it is answered, and the tenant's run ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_gone_after_it_was_told_to_lead_passes_the_lead_on() {
        let shared = Arc::new(Summaries::default());
        let tenant = Uuid::now_v7();
        let query = |_| Ok(Summary::fold(Vec::new()));
        // A leader is "running": two requests wait behind it.
        shared
            .tenants
            .lock()
            .unwrap()
            .entry(tenant)
            .or_default()
            .running = true;
        let now = OffsetDateTime::now_utc();
        let mut gone = Box::pin(shared.summary(tenant, now, query));
        assert!(futures::poll!(gone.as_mut()).is_pending());
        let behind = {
            let shared = shared.clone();
            tokio::spawn(async move { shared.summary(tenant, now, query).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The leader is done and hands on to the first waiting, which goes away unpolled.
        shared.hand_on(tenant);
        drop(gone);
        let answered = tokio::time::timeout(Duration::from_secs(5), behind).await;
        assert!(matches!(answered, Ok(Ok(Ok(_)))), "{answered:?}");
        assert!(
            shared.tenants.lock().unwrap().is_empty(),
            "a run left behind"
        );
    }
}
