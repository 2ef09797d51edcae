//! The queue behind every batched path on PostgreSQL (appends, lookups, summaries): callers
//! put a request in and wait for its answer; a few workers each take every request waiting and
//! handle them together, so under load the batches form by themselves and a lone request is
//! handled at once.
//!
//! A worker may keep something from one batch to the next ([`Keep`]): the appends keep their
//! connection while requests keep coming (`held.rs`), and let go of it after [`LINGER`] without
//! any.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Result, StoreError};

/// Requests waiting at most (callers wait for room beyond it).
const CAPACITY: usize = 8192;

/// Workers for a pool of `pool_size` connections: two, so one batch gathers while another
/// runs ([`Pace`]), but one on a pool of 2 or 3, so other reads always keep a connection.
pub(super) fn workers(pool_size: u32) -> usize {
    (pool_size as usize / 2).clamp(1, 2)
}

/// How long a worker keeps what it holds once no request waits: longer than the gap between
/// one client's requests (a request's round trip through HTTP), short enough that a quiet
/// server gives its connections back to the pool at once for anything a person would notice.
pub(super) const LINGER: Duration = Duration::from_millis(100);

/// What a worker keeps between batches.
pub(super) trait Keep: Send + 'static {
    /// Whether it holds anything now (then the worker lets go of it after [`LINGER`] idle).
    fn holds(&self) -> bool {
        false
    }

    /// Gives back what it holds.
    fn let_go(&mut self) {}
}

/// Workers that keep nothing.
impl Keep for () {}

/// A request and where its answer goes.
pub(super) struct Asked<R, T> {
    pub req: R,
    pub reply: oneshot::Sender<Result<T>>,
}

impl<R, T> Asked<R, T> {
    /// Answers the caller (who may have stopped waiting: then nothing happens).
    pub fn answer(self, answer: Result<T>) {
        let _ = self.reply.send(answer);
    }
}

/// Answers `batch` from one shared run of `together` over its requests (an answer per request,
/// in their order), or, should that run fail, each request from its own run of `alone`: every
/// caller gets its own answer or its own error, never another's and never the batch's. `name`
/// names the batch in the warning and in `confab_store_batches_run_alone_total`. For reads,
/// which can always run again; appends have a third outcome (a COMMIT that failed may have
/// taken effect) and answer for themselves (`append_batch.rs`).
pub(super) async fn together_or_alone<R, T, F, Fut, G, GFut>(
    batch: Vec<Asked<R, T>>,
    name: &'static str,
    together: F,
    alone: G,
) where
    R: Clone,
    F: FnOnce(Vec<R>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<T>>>>,
    G: Fn(R) -> GFut,
    GFut: Future<Output = Result<T>>,
{
    let reqs: Vec<R> = batch.iter().map(|a| a.req.clone()).collect();
    let failed = match together(reqs).await {
        Ok(answers) if answers.len() == batch.len() => {
            for (a, answer) in batch.into_iter().zip(answers) {
                a.answer(answer);
            }
            return;
        }
        Ok(answers) => StoreError::Corrupt(format!(
            "{} answers for {} requests",
            answers.len(),
            batch.len()
        )),
        Err(e) => e,
    };
    tracing::warn!(error = %failed, requests = batch.len(), "batched {name} failed; running each request alone");
    ran_alone(name);
    for a in batch {
        let answer = alone(a.req.clone()).await;
        a.answer(answer);
    }
}

/// Where the answer to the request at `i` goes: `i` is the 1-based position `WITH ORDINALITY`
/// gave the request in the batch statement's arrays, so each row finds its own request's slot.
/// A position outside the batch is a corrupt answer (`what` names the batch in the error).
pub(super) fn slot<'a, T>(out: &'a mut [T], i: i64, what: &str) -> Result<&'a mut T> {
    usize::try_from(i - 1)
        .ok()
        .and_then(|i| out.get_mut(i))
        .ok_or_else(|| StoreError::Corrupt(format!("{what} position {i} out of range")))
}

/// Counts a batch that failed and ran its requests one by one: a few when PostgreSQL restarts,
/// none otherwise.
pub(super) fn ran_alone(name: &'static str) {
    metrics::counter!("confab_store_batches_run_alone_total", "batch" => name).increment(1);
}

pub(super) struct Queue<R, T> {
    tx: Mutex<Option<mpsc::Sender<Asked<R, T>>>>,
    workers: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl<R: Send + 'static, T: Send + 'static> Queue<R, T> {
    /// Starts `workers` workers, each calling `handle` with up to `max_batch` requests at a time
    /// (every one waiting when it looks); `handle` answers each of them.
    pub fn start<F, Fut>(workers: usize, max_batch: usize, handle: F) -> Queue<R, T>
    where
        F: Fn(Vec<Asked<R, T>>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self::start_keeping(
            workers,
            max_batch,
            LINGER,
            || (),
            move |(), batch| handle(batch),
        )
    }

    /// As [`Queue::start`], each worker keeping a `K` (made by `keep`) from batch to batch:
    /// `handle` takes it with the batch and gives it back; a worker lets go of what it holds
    /// once `linger` has passed without a request ([`LINGER`] but in tests).
    pub fn start_keeping<K, I, F, Fut>(
        workers: usize,
        max_batch: usize,
        linger: Duration,
        keep: I,
        handle: F,
    ) -> Queue<R, T>
    where
        K: Keep,
        I: Fn() -> K,
        F: Fn(K, Vec<Asked<R, T>>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = K> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let pace = Arc::new(Pace::default());
        let workers = (0..workers.max(1))
            .map(|_| {
                let (rx, pace) = (rx.clone(), pace.clone());
                let max_batch = max_batch.max(1);
                tokio::spawn(work(rx, pace, max_batch, linger, keep(), handle.clone()))
            })
            .collect();
        Queue {
            tx: Mutex::new(Some(tx)),
            workers: tokio::sync::Mutex::new(workers),
        }
    }

    /// Queues `req` and waits for its answer; `Closed` once the queue is closed.
    pub async fn ask(&self, req: R) -> Result<T> {
        let tx = self
            .tx
            .lock()
            .expect("queue sender lock")
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Asked { req, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        drop(tx);
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Requests queued and not taken by a worker yet.
    #[cfg(test)]
    fn queued(&self) -> usize {
        let tx = self.tx.lock().expect("queue sender lock");
        tx.as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Stops taking requests and waits for the queued ones to be answered.
    pub async fn close(&self) {
        self.tx.lock().expect("queue sender lock").take();
        for w in self.workers.lock().await.drain(..) {
            let _ = w.await;
        }
    }
}

/// How the workers of one queue take turns. A worker that takes requests while another runs a
/// batch gathers until it holds as many as the batch last started, or until no batch runs,
/// instead of starting with the first request to arrive. A shared statement costs about 90 µs
/// of the two cores whatever its batch (PostgreSQL's side and this process's together), so
/// batches of one or two started beside a running one cost more than their wait saves: with
/// it, 12 % more appends a second, 3 % more gets and 4–9 % less CPU a first search (docs/
/// performance.md, fiftieth session). A quiet queue never waits: nothing runs.
#[derive(Default)]
struct Pace {
    /// Batches running now.
    running: AtomicUsize,
    /// The size of the batch last started.
    last: AtomicUsize,
    /// Rung each time a batch is done.
    done: Notify,
}

impl Pace {
    /// Counts `batch` as running until the guard is dropped (a handler that panics included).
    fn run(&self, batch: usize) -> Running<'_> {
        self.last.store(batch, Ordering::Relaxed);
        self.running.fetch_add(1, Ordering::AcqRel);
        Running(self)
    }

    /// Adds to `batch` the requests that arrive while another batch runs, until it holds as
    /// many as the last one started (at most `max_batch`) or none runs.
    async fn gather<R, T>(
        &self,
        rx: &mut mpsc::Receiver<Asked<R, T>>,
        batch: &mut Vec<Asked<R, T>>,
        max_batch: usize,
    ) {
        let want = self.last.load(Ordering::Relaxed).min(max_batch);
        while batch.len() < want {
            // Enabled before `running` is read, so a batch done in between still wakes it.
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => {
                        batch.push(r);
                        waiting(rx, batch, max_batch);
                    }
                    None => return,
                },
                () = &mut done => {}
            }
        }
    }
}

/// A batch counted as running by [`Pace::run`].
struct Running<'a>(&'a Pace);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
        self.0.done.notify_waiters();
    }
}

async fn work<R, T, K, F, Fut>(
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Asked<R, T>>>>,
    pace: Arc<Pace>,
    max_batch: usize,
    linger: Duration,
    mut kept: K,
    handle: F,
) where
    K: Keep,
    F: Fn(K, Vec<Asked<R, T>>) -> Fut,
    Fut: Future<Output = K>,
{
    loop {
        let linger = kept.holds().then_some(linger);
        let batch = match take(&rx, &pace, max_batch, linger).await {
            Taken::Batch(batch) => batch,
            Taken::Idle => {
                kept.let_go();
                continue;
            }
            Taken::Closed => return,
        };
        let _running = pace.run(batch.len());
        kept = handle(kept, batch).await;
    }
}

/// What a worker's wait for requests ended with.
enum Taken<R, T> {
    Batch(Vec<Asked<R, T>>),
    /// `linger` passed with no request taken.
    Idle,
    /// The queue is closed and drained.
    Closed,
}

/// The next request and every one waiting behind it or gathered beside a running batch
/// ([`Pace`]), up to `max_batch`. `linger` bounds only the wait for the first request, the
/// wait for the other worker included (a worker that holds something while the other waits
/// for requests would otherwise keep it until the next one): once a request is taken it is
/// never dropped.
async fn take<R, T>(
    rx: &tokio::sync::Mutex<mpsc::Receiver<Asked<R, T>>>,
    pace: &Pace,
    max_batch: usize,
    linger: Option<Duration>,
) -> Taken<R, T> {
    let first = async {
        let mut rx = rx.lock().await;
        let first = rx.recv().await;
        (rx, first)
    };
    let (mut rx, first) = match linger {
        None => first.await,
        Some(linger) => match tokio::time::timeout(linger, first).await {
            Ok(got) => got,
            Err(_) => return Taken::Idle,
        },
    };
    let Some(first) = first else {
        return Taken::Closed;
    };
    let mut batch = vec![first];
    waiting(&mut rx, &mut batch, max_batch);
    pace.gather(&mut rx, &mut batch, max_batch).await;
    Taken::Batch(batch)
}

/// Adds every request waiting to `batch`, up to `max_batch`.
fn waiting<R, T>(
    rx: &mut mpsc::Receiver<Asked<R, T>>,
    batch: &mut Vec<Asked<R, T>>,
    max_batch: usize,
) {
    while batch.len() < max_batch {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_pool_keeps_a_connection_for_everything_else() {
        assert_eq!(workers(2), 1);
        assert_eq!(workers(3), 1);
        assert_eq!(workers(4), 2);
        assert_eq!(workers(32), 2);
    }

    type Answers = Vec<oneshot::Receiver<Result<u32>>>;

    /// `n` requests 0..n and the receivers of their answers.
    fn asked(n: u32) -> (Vec<Asked<u32, u32>>, Answers) {
        (0..n)
            .map(|req| {
                let (reply, rx) = oneshot::channel();
                (Asked { req, reply }, rx)
            })
            .unzip()
    }

    async fn answers(rxs: Answers) -> Vec<Result<u32>> {
        let mut out = Vec::new();
        for rx in rxs {
            out.push(rx.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_failed_batch_answers_each_request_alone() {
        let alone_runs = Arc::new(Mutex::new(0));
        let runs = alone_runs.clone();
        // Alone, request 2 fails and the others are tripled.
        let alone = move |n: u32| {
            let runs = runs.clone();
            async move {
                *runs.lock().unwrap() += 1;
                if n == 2 {
                    Err(StoreError::NotFound)
                } else {
                    Ok(n * 3)
                }
            }
        };
        // Together: doubled, each in its place.
        let (batch, rxs) = asked(4);
        together_or_alone(
            batch,
            "tests",
            |reqs: Vec<u32>| async move { Ok(reqs.iter().map(|n| Ok(n * 2)).collect()) },
            alone.clone(),
        )
        .await;
        let got: Vec<_> = answers(rxs).await.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!((got, *alone_runs.lock().unwrap()), (vec![0, 2, 4, 6], 0));
        // The shared run fails: each request runs alone and gets its own answer or error.
        for together_fails in [
            Err(StoreError::Config("the shared statement failed".into())),
            Ok(vec![Ok(0)]),
        ] {
            *alone_runs.lock().unwrap() = 0;
            let (batch, rxs) = asked(4);
            together_or_alone(
                batch,
                "tests",
                |_| async move { together_fails },
                alone.clone(),
            )
            .await;
            let got = answers(rxs).await;
            assert_eq!(*alone_runs.lock().unwrap(), 4);
            assert!(matches!(got[2], Err(StoreError::NotFound)), "{:?}", got[2]);
            let ok: Vec<u32> = got.into_iter().filter_map(|r| r.ok()).collect();
            assert_eq!(ok, [0, 3, 9]);
        }
    }

    /// Counts the batches it was kept through and the times it was let go.
    #[derive(Default)]
    struct Counted {
        holding: bool,
        batches: u32,
        let_go: u32,
    }

    impl Keep for Arc<Mutex<Counted>> {
        fn holds(&self) -> bool {
            self.lock().unwrap().holding
        }

        fn let_go(&mut self) {
            let mut c = self.lock().unwrap();
            c.holding = false;
            c.let_go += 1;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_keep_what_they_hold_while_busy_and_let_go_when_idle() {
        // Each of the two workers gets its own counter.
        let counters: Arc<Mutex<Vec<Arc<Mutex<Counted>>>>> = Arc::default();
        let made = counters.clone();
        let keep = move || {
            let c: Arc<Mutex<Counted>> = Arc::default();
            made.lock().unwrap().push(c.clone());
            c
        };
        let handle = |k: Arc<Mutex<Counted>>, batch: Vec<Asked<u32, u32>>| async move {
            {
                let mut c = k.lock().unwrap();
                c.holding = true;
                c.batches += 1;
            }
            for a in batch {
                let n = a.req;
                a.answer(Ok(n + 1));
            }
            k
        };
        // A linger long enough that no pause of a loaded test machine between two requests
        // reaches it.
        let linger = Duration::from_millis(500);
        let q: Arc<Queue<u32, u32>> = Arc::new(Queue::start_keeping(2, 4, linger, keep, handle));
        let totals = || {
            let all = counters.lock().unwrap();
            let sum = |f: fn(&Counted) -> u32| all.iter().map(|c| f(&c.lock().unwrap())).sum();
            (
                sum(|c| c.batches),
                sum(|c| c.let_go),
                sum(|c| u32::from(c.holding)),
            )
        };
        // Requests one after another and then many at once, each well within the linger of the
        // last: nothing is let go.
        for n in 0..5 {
            assert_eq!(q.ask(n).await.unwrap(), n + 1);
        }
        let many: Vec<_> = (0..50u32)
            .map(|n| {
                let q = q.clone();
                tokio::spawn(async move { q.ask(n).await.unwrap() })
            })
            .collect();
        for (n, a) in many.into_iter().enumerate() {
            assert_eq!(a.await.unwrap(), n as u32 + 1);
        }
        let (batches, let_go, holding) = totals();
        assert!(batches >= 5 + 50 / 4, "{batches}");
        assert_eq!(let_go, 0);
        assert!((1..=2).contains(&holding), "{holding}");
        // Idle for longer than the linger: every worker that held something has let go, once,
        // including one that was waiting for its turn at the queue.
        tokio::time::sleep(linger * 4).await;
        assert_eq!((totals().1, totals().2), (holding, 0));
        // The next request takes hold again; nothing is let go twice.
        assert_eq!(q.ask(99).await.unwrap(), 100);
        assert_eq!(
            (totals().0, totals().1, totals().2),
            (batches + 1, holding, 1)
        );
        q.close().await;
    }

    /// A queue of two workers whose batches each wait for a permit of `gate` before answering
    /// (`n` with `n + 1`), and the sizes of the batches started, in order. Each worker holds
    /// something from its first batch on (so `linger` bounds its waits).
    struct Gated {
        q: Arc<Queue<u32, u32>>,
        gate: Arc<tokio::sync::Semaphore>,
        sizes: Arc<Mutex<Vec<usize>>>,
    }

    impl Gated {
        fn start(linger: Duration) -> Gated {
            let gate = Arc::new(tokio::sync::Semaphore::new(0));
            let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
            let (g, seen) = (gate.clone(), sizes.clone());
            let handle = move |k: Arc<Mutex<Counted>>, batch: Vec<Asked<u32, u32>>| {
                let (gate, seen) = (g.clone(), seen.clone());
                async move {
                    k.lock().unwrap().holding = true;
                    seen.lock().unwrap().push(batch.len());
                    gate.acquire().await.unwrap().forget();
                    for a in batch {
                        let n = a.req;
                        a.answer(Ok(n + 1));
                    }
                    k
                }
            };
            let keep = || Arc::new(Mutex::new(Counted::default()));
            let q = Arc::new(Queue::start_keeping(2, 16, linger, keep, handle));
            Gated { q, gate, sizes }
        }

        /// Asks `n`, answered in a task of its own.
        fn ask(&self, n: u32) -> JoinHandle<Result<u32>> {
            let q = self.q.clone();
            tokio::spawn(async move { q.ask(n).await })
        }

        /// Waits until the batches started are `want` (five seconds at most).
        async fn started(&self, want: &[usize]) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while *self.sizes.lock().unwrap() != want {
                let now = self.sizes.lock().unwrap().clone();
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{now:?}, not {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }

        /// Asks each of `ns` and waits until all of them are queued.
        async fn ask_queued(
            &self,
            ns: std::ops::Range<u32>,
        ) -> Vec<(u32, JoinHandle<Result<u32>>)> {
            let want = self.q.queued() + ns.len();
            let asks = ns.map(|n| (n, self.ask(n))).collect();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while self.q.queued() < want {
                assert!(tokio::time::Instant::now() < deadline, "not queued");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            asks
        }

        /// Brings the queue to one batch of `n` running (requests `2..2 + n`) and the other
        /// worker free, by way of two batches of one (each then answered); the asks of the `n`.
        async fn running(&self, n: u32) -> Vec<(u32, JoinHandle<Result<u32>>)> {
            let mut asks = vec![(0, self.ask(0))];
            self.started(&[1]).await;
            asks.push((1, self.ask(1)));
            self.started(&[1, 1]).await;
            asks.extend(self.ask_queued(2..2 + n).await);
            // The first done, its worker takes the `n`.
            self.release();
            self.started(&[1, 1, n as usize]).await;
            self.release();
            answered(asks.drain(..2).collect()).await;
            asks
        }

        /// Lets one batch answer.
        fn release(&self) {
            self.gate.add_permits(1);
        }
    }

    /// Asserts that every answer is its request's plus one, within five seconds.
    async fn answered(asks: Vec<(u32, JoinHandle<Result<u32>>)>) {
        for (n, a) in asks {
            let got = tokio::time::timeout(Duration::from_secs(5), a).await;
            assert_eq!(got.expect("no answer").unwrap().unwrap(), n + 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_beside_a_running_one_gathers_as_many_or_until_that_one_is_done() {
        let g = Gated::start(Duration::from_secs(30));
        let mut asks = g.running(6).await;
        // Beside the six, one request is not a batch yet: its worker gathers up to six.
        asks.push((8, g.ask(8)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        g.started(&[1, 1, 6]).await;
        asks.extend((9..14).map(|n| (n, g.ask(n))));
        g.started(&[1, 1, 6, 6]).await;
        g.release();
        answered(asks.drain(..6).collect()).await;
        // Beside the second six, one request again; once that batch is done it runs alone.
        asks.push((14, g.ask(14)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        g.started(&[1, 1, 6, 6]).await;
        g.release();
        g.started(&[1, 1, 6, 6, 1]).await;
        g.release();
        answered(asks).await;
        // Nothing runs: a request is a batch at once.
        let one = g.ask(15);
        g.started(&[1, 1, 6, 6, 1, 1]).await;
        g.release();
        answered(vec![(15, one)]).await;
        g.q.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_gathered_past_the_linger_is_still_answered() {
        let linger = Duration::from_millis(50);
        let g = Gated::start(linger);
        // A batch of three running, the other worker holding what its batch of one kept.
        let mut asks = g.running(3).await;
        // Taken within the linger, then gathered for longer than it: kept, not dropped.
        asks.push((5, g.ask(5)));
        tokio::time::sleep(linger * 6).await;
        g.started(&[1, 1, 3]).await;
        g.release();
        g.started(&[1, 1, 3, 1]).await;
        g.release();
        answered(asks).await;
        g.q.close().await;
    }

    #[tokio::test]
    async fn every_request_is_answered_and_none_after_close() {
        // Doubles its input; records the batch sizes it saw.
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let q: Arc<Queue<u32, u32>> =
            Arc::new(Queue::start(2, 4, move |batch: Vec<Asked<u32, u32>>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(batch.len());
                    for a in batch {
                        let n = a.req;
                        a.answer(Ok(n * 2));
                    }
                }
            }));
        let asks: Vec<_> = (0..100u32)
            .map(|n| {
                let q = q.clone();
                tokio::spawn(async move { (n, q.ask(n).await.unwrap()) })
            })
            .collect();
        for a in asks {
            let (n, doubled) = a.await.unwrap();
            assert_eq!(doubled, n * 2);
        }
        assert!(sizes.lock().unwrap().iter().all(|&s| (1..=4).contains(&s)));
        assert_eq!(sizes.lock().unwrap().iter().sum::<usize>(), 100);
        q.close().await;
        assert!(matches!(q.ask(1).await, Err(StoreError::Closed)));
    }
}
