//! A hot read that turns out long gives its runtime worker away.
//!
//! The hot reads (fastread.rs) run on the calling task, on one of the runtime's worker threads:
//! for the usual few index lookups that is faster than any hand-over to another thread. But a
//! read is not always short. A search whose filter matches nothing walks every match of its
//! words (1.2 s for the most common word of a million messages), and two of those at once held
//! both workers of a two-core server: every other request waited, `GET /healthz` included
//! (docs/performance.md, twenty-eighth session).
//!
//! So a hot read starts with a budget of SQLite virtual-machine steps ([`BUDGET`]: some
//! milliseconds of work, more than any hot read of the benchmark takes). SQLite calls [`progress`]
//! every [`EVERY_OPS`] steps of a statement (so never in the short ones: `BEGIN`, `COMMIT`, a
//! lookup by key); a read that spends its budget is interrupted, and
//! `Readers::with` runs it again from the start inside `tokio::task::block_in_place`, which
//! hands the worker's other tasks to another thread for as long as the read takes. (Handing
//! over in the middle of a statement is not possible: `block_in_place` takes the worker back
//! as soon as its closure returns, so the whole read has to be inside it.) A short read pays a
//! counter every thousand steps; a long one pays its first budget twice, a few per cent of it.
//! Steps, not the clock, measure the budget: a read that the kernel preempts has not worked
//! longer, and a clock costs more to read. Long reads then take turns ([`Gate`]), so that many
//! of them at once cannot crowd the runtime's workers off the cores either.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ffi};

/// SQLite steps between two calls of [`progress`].
const EVERY_OPS: c_int = 1_000;

/// Calls of [`progress`] a read may take inline: 100,000 steps.
const BUDGET: u32 = 100;

/// Long reads running at once. Each runs on a thread of its own, and the kernel shares the
/// cores evenly among runnable threads: sixteen long reads beside the runtime's two workers
/// would leave the workers a ninth of the machine, and every short request would crawl again.
/// So they take turns (`long_reads::turns`); the others wait, asleep, for a turn.
struct Gate {
    running: Mutex<usize>,
    freed: Condvar,
    turns: usize,
}

static LONG_READS: LazyLock<Gate> = LazyLock::new(|| Gate {
    running: Mutex::new(0),
    freed: Condvar::new(),
    turns: crate::long_reads::turns(),
});

/// A turn through [`Gate`], given back when dropped.
struct Turn(&'static Gate);

impl Gate {
    /// Waits (blocking this thread, which is off the runtime's workers by then) for a turn,
    /// until `deadline` if there is one: `None` when it passed first. A read cannot be dropped
    /// while it blocks a thread (the request's own timeout has no say until it returns), so
    /// the wait must end at the read's deadline by itself.
    fn enter(&'static self, deadline: Option<Instant>) -> Option<Turn> {
        let mut n = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.turns {
            n = match deadline {
                None => self.freed.wait(n).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.checked_duration_since(Instant::now())?;
                    self.freed
                        .wait_timeout(n, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        *n += 1;
        Some(Turn(self))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// Runs `read` where it may block, once [`LONG_READS`] gives it a turn, with no budget but
/// the `deadline`, if any. The answer, or `None` when the deadline stopped it.
fn blocking<T>(read: impl Fn() -> T, deadline: Option<Instant>) -> Option<T> {
    let before = STATE.with(|s| s.get());
    let out = tokio::task::block_in_place(|| {
        // The deadline runs from the read's start: time spent waiting for a turn counts.
        let _turn = LONG_READS.enter(deadline)?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        STATE.with(|s| s.set(deadline.map_or(State::Off, State::Until)));
        let out = read();
        let stopped = matches!(STATE.with(|s| s.get()), State::Stopped);
        (!stopped).then_some(out)
    });
    STATE.with(|s| s.set(before));
    out
}

#[derive(Clone, Copy)]
enum State {
    /// No hot read on this thread, or one that must not be interrupted.
    Off,
    /// A hot read with this many calls left.
    Left(u32),
    /// A hot read that spent its budget and was interrupted.
    Spent,
    /// A long read that may run until then.
    Until(Instant),
    /// A long read stopped at its deadline.
    Stopped,
}

thread_local! {
    static STATE: Cell<State> = const { Cell::new(State::Off) };
}

/// Makes SQLite call [`progress`] while `c` runs statements.
pub fn install(c: &Connection) {
    // SAFETY: `c` is a live connection; the callback takes no user data and touches only this
    // thread's `STATE` (SQLite calls it on the thread running the statement).
    unsafe {
        ffi::sqlite3_progress_handler(c.handle(), EVERY_OPS, Some(progress), std::ptr::null_mut());
    }
}

/// Whether a read on this thread may be handed over: on a worker of a multi-thread runtime.
/// Elsewhere (a current-thread runtime, as in most tests, or off the runtime) nothing would be
/// gained, and `block_in_place` refuses a current-thread runtime.
fn can_hand_over() -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

/// How a read ran.
pub enum Ran<T> {
    /// On the calling thread, within its budget.
    Inline(T),
    /// Where it may block, after spending its budget or at once.
    HandedOver(T),
    /// Stopped at its time limit.
    TimedOut,
}

/// Runs `read` inline with a budget; if it spends it, runs it again where it may block. A read
/// known to be `long` goes where it may block at once: one step of SQLite's can itself be long
/// (FTS5 expands a prefix term within one), and a step is never interrupted halfway. Handed
/// over, a read is stopped once it has run for `limit` since it started.
pub fn run<T>(read: impl Fn() -> T, long: bool, limit: Option<Duration>) -> Ran<T> {
    if !can_hand_over() {
        return Ran::Inline(read());
    }
    let deadline = limit.and_then(|l| Instant::now().checked_add(l));
    let over = |out: Option<T>| out.map_or(Ran::TimedOut, Ran::HandedOver);
    if long {
        return over(blocking(read, deadline));
    }
    let before = STATE.with(|s| s.replace(State::Left(BUDGET)));
    let out = read();
    let spent = matches!(STATE.with(|s| s.replace(before)), State::Spent);
    if !spent {
        return Ran::Inline(out);
    }
    drop(out);
    over(blocking(read, deadline))
}

/// SQLite's progress callback: non-zero interrupts the statement.
unsafe extern "C" fn progress(_: *mut c_void) -> c_int {
    STATE.with(|s| match s.get() {
        State::Left(0) | State::Spent => {
            s.set(State::Spent);
            1
        }
        State::Left(n) => {
            s.set(State::Left(n - 1));
            0
        }
        State::Until(t) if Instant::now() >= t => {
            s.set(State::Stopped);
            1
        }
        State::Stopped => 1,
        State::Until(_) | State::Off => 0,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;

    /// A statement that spends the budget many times over.
    const LONG: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) \
                        SELECT count(*) FROM n";

    fn counted(c: &Connection) -> rusqlite::Result<i64> {
        c.query_row(LONG, [], |r| r.get(0))
    }

    /// What `run` answered, and how: 0 inline, 1 handed over; `None` timed out.
    fn ran<T>(r: Ran<T>) -> Option<(T, u8)> {
        match r {
            Ran::Inline(t) => Some((t, 0)),
            Ran::HandedOver(t) => Some((t, 1)),
            Ran::TimedOut => None,
        }
    }

    fn connection() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        install(&c);
        c
    }

    /// While a long read runs on the only worker of a runtime, the runtime's other tasks run:
    /// the read was handed over. Without that the counter could not move, since the read never
    /// yields between its two looks at it. The read's answer is whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_long_read_lets_the_other_tasks_run() {
        let ticks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (ticks, stop) = (ticks.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        while ticks.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        // The read runs as a task of its own, on the worker (the test's body does not).
        let (n, handed, before, after) = tokio::spawn({
            let ticks = ticks.clone();
            async move {
                let c = connection();
                let before = ticks.load(Ordering::Relaxed);
                let (n, handed) = ran(run(|| counted(&c), false, None)).unwrap();
                (n.unwrap(), handed, before, ticks.load(Ordering::Relaxed))
            }
        })
        .await
        .unwrap();
        assert_eq!((n, handed), (2_000_000, 1));
        assert!(after > before, "no other task ran during the read");
        stop.store(true, Ordering::Relaxed);
        ticker.await.unwrap();
    }

    /// Long reads take turns: however many start together, no more than the gate's share of
    /// the cores run at once, and every one of them ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn long_reads_take_turns() {
        let inside = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let reads: Vec<_> = (0..8)
            .map(|_| {
                let (inside, most) = (inside.clone(), most.clone());
                tokio::spawn(async move {
                    let read = || {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        inside.fetch_sub(1, Ordering::SeqCst);
                        7
                    };
                    assert_eq!(ran(run(read, true, None)), Some((7, 1)));
                })
            })
            .collect();
        for r in reads {
            r.await.unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            most >= 1 && most <= LONG_READS.turns as u64,
            "{most} at once, at most {}",
            LONG_READS.turns
        );
    }

    /// A read waiting for a turn stops waiting at its time limit: while every turn is taken, a
    /// long read with a limit of 50 ms answers that it timed out, well before any turn is free.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_waiting_for_a_turn_stops_at_its_time_limit() {
        let held: Vec<Turn> = (0..LONG_READS.turns)
            .map(|_| LONG_READS.enter(None).unwrap())
            .collect();
        let read =
            tokio::spawn(async { ran(run(|| 7, true, Some(Duration::from_millis(50)))).is_none() });
        let answered = tokio::time::timeout(Duration::from_secs(10), read).await;
        // Given back before any assertion, so that a failure here cannot hold up other tests'
        // reads (or this one's, which would then finish).
        drop(held);
        let timed_out = answered.expect("the read still waits for a turn after 10 s");
        assert!(timed_out.unwrap(), "the read ran although no turn was free");
    }

    /// A short read is not interrupted; neither is a long one outside a multi-thread runtime;
    /// and nothing stays behind for the next statement on the thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn short_reads_and_reads_off_the_workers_run_once() {
        tokio::spawn(async {
            let c = connection();
            let seven = || c.query_row("SELECT 7", [], |r| r.get::<_, i64>(0)).unwrap();
            // A time limit touches only reads handed over.
            let limit = Some(Duration::ZERO);
            assert_eq!(ran(run(seven, false, limit)), Some((7, 0)));
        })
        .await
        .unwrap();
        let c = connection();
        let outside = std::thread::spawn(move || {
            ran(run(|| counted(&c).unwrap(), true, Some(Duration::ZERO)))
        });
        assert_eq!(outside.join().unwrap(), Some((2_000_000, 0)));
        let c = connection();
        assert_eq!(counted(&c).unwrap(), 2_000_000);
    }

    /// A read handed over is stopped at its time limit, counted from its start, whether it
    /// was found long by its budget or known long; a read within the limit is not; and the
    /// connection runs the next statement as usual.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_read_past_its_time_limit_is_stopped() {
        tokio::spawn(async {
            let c = connection();
            for long in [false, true] {
                let r = run(|| counted(&c), long, Some(Duration::from_millis(5)));
                assert!(matches!(r, Ran::TimedOut), "long: {long}");
            }
            let r = run(|| counted(&c), false, Some(Duration::from_secs(600)));
            assert_eq!(
                ran(r).map(|(n, how)| (n.unwrap(), how)),
                Some((2_000_000, 1))
            );
            assert_eq!(counted(&c).unwrap(), 2_000_000);
        })
        .await
        .unwrap();
    }
}
