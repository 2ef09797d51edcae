//! Ranked search's windows kept between searches on PostgreSQL.
//!
//! A ranked search scores the newest `RANK_WINDOW` matches of its query (search.rs), and reading
//! them is nearly all of its cost: a walk of rowids, a pass through the GIN index, or several
//! band queries, each testing up to thousands of rows. ts_rank scores a row from its own tokens
//! alone, so a window read once, scored and sorted, answers every later search of the same query
//! for as long as the tenant's messages are as they were.
//!
//! Whether they are is PostgreSQL's to say, not the rowids' (migration 0005 says why): every
//! statement that changes messages leaves its transaction's id and tenant in `search_changes`,
//! and a window remembers the snapshot it was read under (`txid_current_snapshot()`, taken
//! before its first statement). A later search asks, in the same statement that fetches its
//! page's rows, whether any change of the tenant is invisible to that snapshot: a transaction
//! that committed since, or one that was running then. None: the window is still exact and is
//! used as it is. Only inserts (migration 0006: an insert's change records the lowest rowid it
//! wrote): the window is brought forward, with the query's matches from the lowest of those
//! rowids on ([`Window::forwarded`], [`FORWARD`]). Anything else: it is read again. A change
//! that committed while the window was being read counts as a change too: conservative, never
//! wrong.
//!
//! The rows of the hits shown from a window are kept with it too (a first page or two): they
//! cannot have changed while the window has not. A repeated page then needs nothing from
//! PostgreSQL but the check, which [`Checks`] asks for many searches in one statement, as
//! conversation lookups are batched (read_batch.rs), and no connection is held while it waits.
//!
//! So the check is one index range of `search_changes` per search (the tenant's changes from
//! the snapshot's `xmax` on) and a probe per transaction that was running then. [`Pruner`]
//! deletes the rows no window can still need: a window lives at most [`TTL`] past the snapshot
//! it was read, brought forward or renewed under ([`Window::renewed`]: one in use takes a newer
//! snapshot before it expires), and the pruner deletes only the changes of transactions that
//! had ended before its previous round, at least [`PRUNE_EVERY`] earlier (longer than `TTL`),
//! so they are visible to the snapshot of every window alive, in any process.
//!
//! Only searches without filters and of the first page or of a cursor at or after the window's
//! snapshot are kept; a deployment without the triggers (see `logged`) keeps nothing.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::queue::{self, Asked, Queue};
use super::search::HitRow;
use crate::error::Result;
use crate::lru::Lru;
use crate::search::RANK_WINDOW;
use crate::types::TenantId;

/// How long a window may serve after it was read.
pub(super) const TTL: Duration = Duration::from_secs(30);
/// How often the changes no window can still need are deleted; must exceed [`TTL`].
pub(super) const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Bytes of hit rows' text kept with one window at most: a first page or two of ordinary
/// messages (deeper pages, and pages of very long messages, are read each time), so the 256
/// windows hold 16 MiB of rows at most.
const ROW_BYTES_KEPT: usize = 64 * 1024;

/// A query's window: every candidate up to `snapshot` (the largest rowid then), scored and
/// sorted best first, and the rows of the hits shown from it so far.
pub(super) struct Window {
    /// The largest rowid when it was read: the window holds every match visible then.
    pub snapshot: i64,
    /// `txid_current_snapshot()` as text, taken before the window's first statement.
    pub seen: String,
    pub made: Instant,
    /// `(rowid, ts_rank)`, best first; among equal scores, newest first ([`Window::scored`]).
    scored: OnceLock<Vec<(i64, f64)>>,
    /// The candidates as read, until [`Window::scored`] first sorts them.
    read: Mutex<Vec<(i64, f64)>>,
    /// Hit rows as read while the window was right: they are as they were for as long as it
    /// is (any change to a message of the tenant makes it wrong).
    rows: Mutex<KeptRows>,
}

/// Hit rows by rowid, and the bytes of their text.
#[derive(Default, Clone)]
struct KeptRows {
    by_rowid: HashMap<i64, Arc<HitRow>>,
    bytes: usize,
}

impl Window {
    /// A window of candidates `scored` already best first.
    pub fn new(snapshot: i64, seen: String, made: Instant, scored: Vec<(i64, f64)>) -> Window {
        Window {
            snapshot,
            seen,
            made,
            scored: OnceLock::from(scored),
            read: Mutex::default(),
            rows: Mutex::default(),
        }
    }

    /// A window of candidates in any order, sorted when a page of it is first asked for: a
    /// first page takes its hits from the candidates as read (`search::best_of`), and most
    /// windows of words searched once are never asked for another (sorting 1,000 candidates
    /// was 6–7 % of confab's CPU for such a search: docs/performance.md, fifty-second
    /// session).
    pub fn unsorted(snapshot: i64, seen: String, made: Instant, read: Vec<(i64, f64)>) -> Window {
        Window {
            scored: OnceLock::new(),
            read: Mutex::new(read),
            ..Window::new(snapshot, seen, made, Vec::new())
        }
    }

    /// The candidates, best first; among equal scores, newest first.
    pub fn scored(&self) -> &[(i64, f64)] {
        self.scored.get_or_init(|| {
            let mut s = std::mem::take(&mut *self.read.lock().expect("window lock"));
            super::search::best_first(&mut s);
            s
        })
    }

    /// Whether this window may answer a page bounded at `cursor` (`None`: a first page): it is
    /// young enough, and it holds every match the page may show. It holds every match visible
    /// when it was read, so any later snapshot is answered alike as long as nothing changed,
    /// which the page's own statement then checks.
    pub fn serves(&self, cursor: Option<i64>) -> bool {
        self.made.elapsed() < TTL && cursor.is_none_or(|s| s >= self.snapshot)
    }

    /// This window brought forward to a later snapshot past inserts only: `newer` holds every
    /// match of the query from the lowest rowid they wrote on (some perhaps already here), so
    /// the newest [`RANK_WINDOW`] of both are the newest matches visible now, as a window read
    /// afresh would hold (docs/search.md gives the argument). The rows kept stay: no row
    /// changed.
    pub fn forwarded(
        &self,
        snapshot: i64,
        seen: String,
        made: Instant,
        newer: Vec<(i64, f64)>,
    ) -> Window {
        let mut all = newer;
        all.extend_from_slice(self.scored());
        // Newest first, each rowid once (a row in both has one score: it did not change).
        all.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        all.dedup_by_key(|r| r.0);
        all.truncate(usize::try_from(RANK_WINDOW).unwrap_or(usize::MAX));
        super::search::best_first(&mut all);
        let mut rows = KeptRows::default();
        {
            let kept = self.rows.lock().expect("kept rows lock");
            let ids: std::collections::HashSet<i64> = all.iter().map(|r| r.0).collect();
            for (rowid, row) in kept.by_rowid.iter().filter(|(r, _)| ids.contains(r)) {
                rows.bytes += row.text_len();
                rows.by_rowid.insert(*rowid, row.clone());
            }
        }
        Window {
            rows: Mutex::new(rows),
            ..Window::new(snapshot, seen, made, all)
        }
    }

    /// Whether a window still right should take a newer snapshot ([`Window::renewed`]): past
    /// half its [`TTL`], so one in use never expires and is never read again for its age.
    pub fn renewal_due(&self) -> bool {
        self.made.elapsed() > TTL / 2
    }

    /// This window, found right by a check asked in snapshot `seen` (nothing of its tenant
    /// changed unseen), as if read under that snapshot at `made` (taken before the check). It
    /// holds the same matches: a window right at the later snapshot is read there as well.
    /// The largest rowid stays, so the cursors it gave still find it.
    pub fn renewed(&self, seen: String, made: Instant) -> Window {
        let rows = self.rows.lock().expect("kept rows lock").clone();
        Window {
            rows: Mutex::new(rows),
            ..Window::new(self.snapshot, seen, made, self.scored().to_vec())
        }
    }

    /// Keeps `rows`, read while this window was right, up to [`ROW_BYTES_KEPT`] in all.
    pub fn keep_rows(&self, rows: &[(i64, Arc<HitRow>)]) {
        let mut kept = self.rows.lock().expect("kept rows lock");
        for (rowid, row) in rows {
            if kept.by_rowid.contains_key(rowid) {
                continue;
            }
            let bytes = kept.bytes + row.text_len();
            if bytes > ROW_BYTES_KEPT {
                return;
            }
            kept.bytes = bytes;
            kept.by_rowid.insert(*rowid, row.clone());
        }
    }

    /// The kept rows of `page`, in its order, if every one is kept.
    pub fn kept_rows(&self, page: &[(i64, f64)]) -> Option<Vec<Arc<HitRow>>> {
        let kept = self.rows.lock().expect("kept rows lock");
        page.iter()
            .map(|(rowid, _)| kept.by_rowid.get(rowid).cloned())
            .collect()
    }
}

/// The kept windows, keyed by tsquery (which carries the tenant's tag: tenants never share one).
#[derive(Default)]
pub(super) struct Windows(Lru<Window>);

impl Windows {
    pub fn get(&self, key: &str, cursor: Option<i64>) -> Option<Arc<Window>> {
        self.0.get(key, |w| w.serves(cursor))
    }

    /// Keeps `w` unless the one kept was read later.
    pub fn put(&self, key: &str, w: Window) {
        let made = w.made;
        self.0.put(key, Arc::new(w), |old| old.made <= made);
    }

    /// Keeps `w` renewed ([`Window::renewed`]) if it is due: a check asked in snapshot `seen`
    /// at `made` found it right.
    pub fn renew(&self, key: &str, w: &Window, seen: String, made: Instant) {
        if w.renewal_due() {
            self.put(key, w.renewed(seen, made));
        }
    }

    pub fn forget(&self, key: &str) {
        self.0.remove(key);
    }
}

/// True when migration 0005's triggers log changes (they can be dropped, as 0002's can for
/// Citus; then nothing is kept).
pub(super) async fn logged(c: &mut PgConnection) -> Result<bool> {
    super::triggers_present(
        c,
        "messages",
        &[
            "search_changes_insert",
            "search_changes_update",
            "search_changes_delete",
        ],
    )
    .await
}

/// The largest rowid and the snapshot of the statement, as columns `max` and `seen`: what a
/// window read, brought forward or renewed in that statement's snapshot is bounded by and
/// remembers.
macro_rules! now {
    () => {
        "(SELECT COALESCE(MAX(rowid), 0) AS max, txid_current_snapshot()::text AS seen \
         FROM messages)"
    };
}

/// [`now!`] for statements put together elsewhere (postings.rs).
pub(super) const NOW: &str = now!();

/// Which changes of tenant `$t` (`search_changes c`) are invisible to snapshot `$s` (a
/// `txid_snapshot`), the one rule every statement below applies, as two conditions: the
/// transaction started at or after the snapshot's `xmax` (`newer`), or was running then (in
/// its `xip` list, `running`). Together exactly `NOT txid_visible_in_snapshot`, written as two
/// so that the index on `(tenant_id, xid)` answers each alone (one `OR` inside one subquery
/// made PostgreSQL filter every change of the tenant). A bound at the snapshot's `xmin`
/// instead would read every change since the oldest transaction running then: minutes of
/// writes while a backup holds its snapshot open.
macro_rules! unseen_where {
    (newer, $t:literal, $s:literal) => {
        concat!(
            "c.tenant_id = ",
            $t,
            " AND c.xid >= txid_snapshot_xmax(",
            $s,
            ")"
        )
    };
    (running, $t:literal, $s:literal) => {
        concat!(
            "c.tenant_id = ",
            $t,
            " AND c.xid = ANY (ARRAY(SELECT txid_snapshot_xip(",
            $s,
            ")))"
        )
    };
}

/// Whether some change of tenant `$t` is invisible to snapshot `$s` ([`unseen_where`]): two
/// index probes that stop at the first change found.
macro_rules! changed_since {
    ($t:literal, $s:literal) => {
        concat!(
            "(EXISTS (SELECT 1 FROM search_changes c WHERE ",
            unseen_where!(newer, $t, $s),
            ") OR EXISTS (SELECT 1 FROM search_changes c WHERE ",
            unseen_where!(running, $t, $s),
            "))"
        )
    };
}

/// Whether an update or delete of the messages of tenant `v.t` is invisible to snapshot `v.s`
/// ([`changed_since`] of the changes without a `lo`): a condition for row_cache.rs's checks,
/// in a statement put together elsewhere (postings.rs).
pub(super) const UPDATED_UNSEEN: &str = concat!(
    "(EXISTS (SELECT 1 FROM search_changes c WHERE ",
    unseen_where!(newer, "v.t", "v.s"),
    " AND c.lo IS NULL) OR EXISTS (SELECT 1 FROM search_changes c WHERE ",
    unseen_where!(running, "v.t", "v.s"),
    " AND c.lo IS NULL))"
);

/// The changes of tenant `$t` invisible to snapshot `$s` ([`unseen_where`]), aggregated:
/// whether any may have changed rows anywhere (an update or a delete: no `lo`), and the lowest
/// rowid an insert among them wrote (none when there is no change at all). The two index
/// ranges read whole: they hold what was written since the window was read, brought forward or
/// renewed, usually nothing or a few rows.
macro_rules! unseen {
    ($t:literal, $s:literal) => {
        concat!(
            "(SELECT COALESCE(bool_or(u.lo IS NULL), false) AS anywhere, min(u.lo) AS lo \
             FROM (SELECT c.lo FROM search_changes c WHERE ",
            unseen_where!(newer, $t, $s),
            " UNION ALL SELECT c.lo FROM search_changes c WHERE ",
            unseen_where!(running, $t, $s),
            ") u)"
        )
    };
}

/// The largest rowid and the snapshot, read by one statement: the bound and the `seen` of a
/// window about to be read.
pub(super) async fn snapshot(c: &mut PgConnection) -> Result<(i64, String)> {
    Ok(
        sqlx::query_as(concat!("SELECT x.max, x.seen FROM ", now!(), " x"))
            .fetch_one(&mut *c)
            .await?,
    )
}

/// The rows of a page's hits (`$1`: their rowids, `$2`: the tenant) as `hits` reads them,
/// each followed by what changed of the tenant unseen by the window's snapshot (`$3`: its
/// `seen`), as [`Since::read`] reads it from column 7, and the statement's own snapshot (to
/// renew the window with when nothing changed, [`Window::renewed`]). Always one row at least:
/// without hits, one of NULLs and the answer.
///
/// Its parameters are read through subqueries ([`FORWARD_NEAR`] says why): planned once per
/// connection, where a page of few hits was planned at every execution.
pub(super) const CHECKED_ROWS: &str = concat!(
    "SELECT m.rowid, m.conversation_id, m.id, m.seq, m.role, m.content, m.created_at, \
     k.anywhere, k.lo, x.max, x.seen FROM ",
    unseen!("(SELECT $2::uuid)", "(SELECT $3::txid_snapshot)"),
    " k CROSS JOIN ",
    now!(),
    " x LEFT JOIN messages m ON m.rowid = ANY((SELECT $1::int8[])::int8[]) \
     AND m.tenant_id = (SELECT $2::uuid)"
);

/// The matches of a query (`$1`, a tsquery) of tenant `$2` from rowid `$4` on, newest first,
/// `$5` at most, with their ts_rank; read in one statement with what changed unseen by the
/// window's snapshot (`$3`) and the statement's own largest rowid and snapshot (what changed
/// as [`Since::read`] reads it from column 0). Always one row at least. The stored tokens are
/// tested first on each row and the index is there for PostgreSQL to choose (search.rs's
/// `push_candidates` says why both).
pub(super) static FORWARD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT k.anywhere, k.lo, x.max, x.seen, f.rowid, f.score FROM {unseen} k \
         CROSS JOIN {now} x LEFT JOIN (SELECT m.rowid, ts_rank(m.fts, $1::tsquery)::float8 AS score \
         FROM messages m WHERE m.fts @@ $1::tsquery AND {vector} @@ $1::tsquery \
         AND m.tenant_id = $2 AND m.rowid >= $4 ORDER BY m.rowid DESC LIMIT $5) f ON true",
        unseen = unseen!("$2", "$3::txid_snapshot"),
        now = now!(),
        vector = super::fts::SEARCH_VECTOR,
    )
});

/// Rows from a window's snapshot on that [`FORWARD_NEAR`] reads, one by one.
pub(super) const NEAR_ROWS: i64 = super::fts::BAND_ROWS;

/// [`FORWARD`] for a window whose unseen inserts lie within [`NEAR_ROWS`] of the lowest (`$4`):
/// the rows of that range walked by rowid and tested one by one, the plan whatever the word
/// (a rare word's [`NEAR_ROWS`] rows took 0.9 ms, a common word's first thousand matches less).
/// Its columns are [`FORWARD`]'s; when its snapshot's largest rowid (`x.max`) lies beyond the
/// range, rows are missing, and [`FORWARD`] is asked instead.
///
/// Why another statement: [`FORWARD`] is planned at every execution, since its plan depends on
/// the word and the range (a custom plan), and with searches beside appends, where most
/// searches bring their window forward, planning it took 0.71 ms of PostgreSQL's CPU against
/// 0.07 ms running it (`log_min_duration_statement`, docs/performance.md, 2026-12-04). Here
/// every parameter is read through a subquery, so that the custom plans PostgreSQL makes for
/// the first five executions are costed without the values, like the generic plan; it then
/// keeps the generic one, planned once per connection (`tests/pg_plans.rs`). The range is
/// bounded, so the plan is the same for any word.
pub(super) static FORWARD_NEAR: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT k.anywhere, k.lo, x.max, x.seen, f.rowid, f.score FROM {unseen} k \
         CROSS JOIN {now} x LEFT JOIN (SELECT m.rowid, \
         ts_rank(m.fts, (SELECT $1::tsquery))::float8 AS score FROM messages m \
         WHERE m.rowid >= (SELECT $4::int8) AND m.rowid < (SELECT $4::int8 + {NEAR_ROWS}) \
         AND m.fts @@ (SELECT $1::tsquery) AND m.tenant_id = (SELECT $2::uuid) \
         ORDER BY m.rowid DESC LIMIT {RANK_WINDOW}) f ON true",
        unseen = unseen!("(SELECT $2::uuid)", "(SELECT $3::txid_snapshot)"),
        now = now!(),
    )
});

/// What changed of a tenant's messages unseen by a window's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Since {
    /// Nothing: the window is exact.
    Nothing,
    /// Only inserts, of rowids from `lo` on; `max` is the largest rowid now.
    Inserts { lo: i64, max: i64 },
    /// Rows anywhere may have changed: the window must be read again.
    Anything,
}

impl Since {
    /// From the columns `anywhere, lo, max` of a row, the first at `at` ([`unseen`]'s two and
    /// the largest rowid).
    pub fn read(r: &sqlx::postgres::PgRow, at: usize) -> Result<Since> {
        Ok(
            match (
                r.try_get::<bool, _>(at)?,
                r.try_get::<Option<i64>, _>(at + 1)?,
            ) {
                (true, _) => Since::Anything,
                (false, None) => Since::Nothing,
                (false, Some(lo)) => Since::Inserts {
                    lo,
                    max: r.try_get(at + 2)?,
                },
            },
        )
    }

    /// Whether a window may be brought forward past these changes instead of read again:
    /// inserts only, and few enough rows from the lowest of them on (an import or a restore
    /// that wrote old rowids is read again instead).
    pub fn forwardable(self) -> Option<i64> {
        match self {
            Since::Inserts { lo, max } if max - lo < FORWARD_ROWS => Some(lo),
            _ => None,
        }
    }

    /// Whether the inserts lie within [`NEAR_ROWS`] of the lowest, as [`FORWARD_NEAR`] reads
    /// them.
    pub fn near(self) -> bool {
        matches!(self, Since::Inserts { lo, max } if within_near(lo, max))
    }
}

/// Whether a rowid `max` lies in the range [`FORWARD_NEAR`] reads from `lo` on.
pub(super) fn within_near(lo: i64, max: i64) -> bool {
    max < lo.saturating_add(NEAR_ROWS)
}

/// Most rows a window is brought forward across: beyond, reading it again costs no more.
const FORWARD_ROWS: i64 = 4 * super::fts::BAND_ROWS;

/// Whether some change of each `(q.t, q.s)` is invisible to its snapshot, with its position.
/// The arrays are read through subqueries ([`FORWARD_NEAR`] says why): planned once per
/// connection, where a custom plan, costed for the batch's length, was made at every execution.
pub(super) const CHECKS: &str = concat!(
    "SELECT q.i, ",
    changed_since!("q.t", "q.s::txid_snapshot"),
    ", txid_current_snapshot()::text \
     FROM unnest((SELECT $1::uuid[]), (SELECT $2::text[])) WITH ORDINALITY AS q(t, s, i)"
);

/// Most checks in one statement.
const MAX_CHECKS: usize = 128;

/// Whether some change of a tenant is invisible to a window's snapshot (its `seen`), asked by
/// many searches in one statement, as conversation lookups are (read_batch.rs): a search from
/// a kept window and its kept rows needs nothing else from PostgreSQL, so the round trip is all
/// it costs there.
pub(super) struct Checks(Queue<(TenantId, String), Check>);

/// A check's answer: whether a change is unseen, and the snapshot it was asked in.
#[derive(Debug, Clone)]
pub(super) struct Check {
    pub changed: bool,
    pub now: String,
}

impl Checks {
    pub fn start(pool: PgPool) -> Checks {
        let workers = queue::workers(pool.options().get_max_connections());
        Checks(Queue::start(workers, MAX_CHECKS, move |batch| {
            let pool = pool.clone();
            async move { answer(&pool, batch).await }
        }))
    }

    /// Whether a change of `tenant` is invisible to `seen`, through the next batch.
    pub async fn changed(&self, tenant: TenantId, seen: String) -> Result<Check> {
        self.0.ask((tenant, seen)).await
    }

    /// Stops taking checks and waits for the queued ones to be answered.
    pub async fn close(&self) {
        self.0.close().await;
    }
}

async fn answer(pool: &PgPool, batch: Vec<Asked<(TenantId, String), Check>>) {
    queue::together_or_alone(
        batch,
        "checks",
        |keys| async move { Ok(changed(pool, &keys).await?.into_iter().map(Ok).collect()) },
        |key| async move { Ok(changed(pool, &[key]).await?.swap_remove(0)) },
    )
    .await;
}

/// For each `(tenant, seen)`, in order, whether a change of the tenant is invisible to `seen`.
async fn changed(pool: &PgPool, keys: &[(TenantId, String)]) -> Result<Vec<Check>> {
    let (tenants, seen): (Vec<Uuid>, Vec<&str>) =
        keys.iter().map(|(t, s)| (t.0, s.as_str())).unzip();
    let rows = sqlx::query(CHECKS)
        .bind(tenants)
        .bind(seen)
        .fetch_all(pool)
        .await?;
    let mut out = vec![
        Check {
            changed: true,
            now: String::new(),
        };
        keys.len()
    ];
    for row in &rows {
        *queue::slot(&mut out, row.try_get(0)?, "check")? = Check {
            changed: row.try_get(1)?,
            now: row.try_get(2)?,
        };
    }
    Ok(out)
}

/// Deletes, every [`PRUNE_EVERY`], the changes no window can still need (module docs).
pub(super) struct Pruner {
    /// [`PRUNE_EVERY`], except in tests.
    every: Duration,
    /// The oldest transaction running at the last round that pruned (or the first), and when
    /// that was.
    horizon: Option<(i64, Instant)>,
}

impl Default for Pruner {
    fn default() -> Self {
        Pruner {
            every: PRUNE_EVERY,
            horizon: None,
        }
    }
}

impl Pruner {
    /// Deletes the changes older than the horizon of the last round that pruned, if that was at
    /// least `every` ago, and takes a new horizon; answers how many rows went.
    pub async fn round(&mut self, pool: &sqlx::PgPool) -> Result<u64> {
        let mut deleted = 0;
        if let Some((xmin, at)) = self.horizon {
            // Younger than that, the horizon might still be needed by a window alive now.
            if at.elapsed() < self.every {
                return Ok(0);
            }
            deleted = sqlx::query("DELETE FROM search_changes WHERE xid < $1")
                .bind(xmin)
                .execute(pool)
                .await?
                .rows_affected();
        }
        let xmin: i64 = sqlx::query_scalar("SELECT txid_snapshot_xmin(txid_current_snapshot())")
            .fetch_one(pool)
            .await?;
        self.horizon = Some((xmin, Instant::now()));
        Ok(deleted)
    }
}

/// Prunes until the pool is closed; a failed round is logged and the next one tries again (the
/// table only grows meanwhile).
pub(super) fn spawn_pruning(pool: sqlx::PgPool) {
    tokio::spawn(async move {
        // Rounds more often than they prune, so a horizon is used soon after it is old enough.
        let mut tick = tokio::time::interval(PRUNE_EVERY / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruner = Pruner::default();
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(e) = pruner.round(&pool).await {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "pruning search_changes failed; will retry");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;
    use sqlx::{ConnectOptions, Connection};

    async fn change(pool: &sqlx::PgPool) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO search_changes (tenant_id) VALUES (gen_random_uuid()) RETURNING xid",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    }

    async fn left(pool: &sqlx::PgPool) -> Vec<i64> {
        sqlx::query_scalar("SELECT xid FROM search_changes ORDER BY xid")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    /// A window serves a first page and a cursor at or after its snapshot while it is young;
    /// past its TTL (which the pruning's safety rests on) it serves nothing.
    #[test]
    fn a_window_serves_while_young_and_from_its_snapshot_on() {
        let young = Window::new(10, "1:1:".into(), Instant::now(), vec![]);
        assert!(young.serves(None));
        assert!(young.serves(Some(10)) && young.serves(Some(12)));
        assert!(!young.serves(Some(9)), "an older cursor's page");
        let old = Window::new(10, "1:1:".into(), Instant::now() - TTL, vec![]);
        assert!(!old.serves(None) && !old.serves(Some(10)));
    }

    /// A window keeps the rows of the pages it has shown up to its bytes, and answers a page
    /// from them only when it holds every row of it.
    #[test]
    fn a_window_keeps_rows_up_to_its_bytes() {
        let w = Window::new(10, "1:1:".into(), Instant::now(), vec![]);
        let row = |n: usize| Arc::new(HitRow::with_text(&"x".repeat(n)));
        let third = ROW_BYTES_KEPT / 3;
        w.keep_rows(&[(1, row(third)), (2, row(third))]);
        // Again, the same rows: kept once.
        w.keep_rows(&[(1, row(third)), (2, row(third))]);
        assert!(w.kept_rows(&[(2, 0.5), (1, 0.4)]).is_some());
        // Two more would pass the bytes: the first fits, the second is not kept.
        w.keep_rows(&[(3, row(third)), (4, row(2))]);
        assert!(w.kept_rows(&[(1, 0.5), (3, 0.4)]).is_some());
        assert!(w.kept_rows(&[(3, 0.5), (4, 0.4)]).is_none());
        assert!(w.kept_rows(&[(9, 0.5)]).is_none());
        let got = w.kept_rows(&[(3, 0.5), (1, 0.4)]).unwrap();
        assert_eq!(
            got.iter().map(|r| r.text_len()).collect::<Vec<_>>(),
            [third, third]
        );
    }

    /// Brought forward, a window holds the newest [`RANK_WINDOW`] of its matches and the new
    /// ones, each once, best first, and keeps the rows it still shows.
    #[test]
    fn a_window_brought_forward_holds_the_newest_matches() {
        let n = RANK_WINDOW;
        // Rowids 1..=n, the newest scoring least.
        let mut scored: Vec<(i64, f64)> = (1..=n).map(|r| (r, 1.0 / r as f64)).collect();
        super::super::search::best_first(&mut scored);
        let old = Window::new(n, "1:1:".into(), Instant::now() - TTL, scored);
        let row = || Arc::new(HitRow::with_text("kept"));
        old.keep_rows(&[(1, row()), (n, row())]);
        // Three new matches, one of them (n) already in the window.
        let newer = vec![(n + 2, 5.0), (n + 1, 0.0), (n, 1.0 / n as f64)];
        let w = old.forwarded(n + 2, "2:2:".into(), Instant::now(), newer);
        assert_eq!((w.snapshot, w.seen.as_str()), (n + 2, "2:2:"));
        assert!(w.serves(None), "young again");
        assert_eq!(w.scored().len(), n as usize);
        let mut rowids: Vec<i64> = w.scored().iter().map(|r| r.0).collect();
        rowids.sort_unstable();
        assert_eq!(rowids, (3..=n + 2).collect::<Vec<_>>(), "the two oldest go");
        assert_eq!(w.scored()[0], (n + 2, 5.0));
        assert_eq!(w.scored()[1], (3, 1.0 / 3.0));
        assert_eq!(*w.scored().last().unwrap(), (n + 1, 0.0));
        // Rowid 1 left the window, and its row with it; n's row stays.
        assert!(w.kept_rows(&[(n, 0.0)]).is_some());
        assert!(w.kept_rows(&[(1, 0.0)]).is_none());
    }

    /// A window past half its TTL is due a newer snapshot; renewed, it holds the same matches,
    /// rows and largest rowid, and serves for a whole TTL again.
    #[test]
    fn a_window_renewed_keeps_its_matches_and_serves_again() {
        let young = Window::new(10, "1:1:".into(), Instant::now(), vec![]);
        assert!(!young.renewal_due());
        let old = Window::new(
            10,
            "1:1:".into(),
            Instant::now() - TTL,
            vec![(4, 0.5), (9, 0.1)],
        );
        old.keep_rows(&[(4, Arc::new(HitRow::with_text("kept")))]);
        assert!(old.renewal_due() && !old.serves(None));
        let w = old.renewed("5:5:".into(), Instant::now());
        assert_eq!((w.snapshot, w.seen.as_str()), (10, "5:5:"));
        assert_eq!(w.scored(), old.scored());
        assert!(w.serves(None) && w.serves(Some(10)) && !w.renewal_due());
        assert!(w.kept_rows(&[(4, 0.5)]).is_some());
    }

    /// A search that finds its window right renews it in the map only once it is due.
    #[test]
    fn the_map_renews_a_window_only_when_due() {
        let windows = Windows::default();
        let seen = |w: &Windows| w.get("q", None).map(|w| w.seen.clone());
        windows.put("q", Window::new(10, "1:1:".into(), Instant::now(), vec![]));
        let young = windows.get("q", None).unwrap();
        windows.renew("q", &young, "2:2:".into(), Instant::now());
        assert_eq!(seen(&windows).as_deref(), Some("1:1:"), "not due yet");
        let made = Instant::now() - TTL * 3 / 4;
        windows.put("r", Window::new(10, "1:1:".into(), made, vec![]));
        let due = windows.get("r", None).unwrap();
        windows.renew("r", &due, "3:3:".into(), Instant::now());
        let renewed = windows.get("r", None).unwrap();
        assert_eq!(renewed.seen, "3:3:");
        assert!(!renewed.renewal_due());
    }

    /// Only inserts, within reach, bring a window forward.
    #[test]
    fn only_near_inserts_bring_a_window_forward() {
        assert_eq!(Since::Inserts { lo: 90, max: 100 }.forwardable(), Some(90));
        let far = Since::Inserts {
            lo: 1,
            max: FORWARD_ROWS + 1,
        };
        assert_eq!(far.forwardable(), None, "an import of old rowids");
        assert_eq!(Since::Anything.forwardable(), None);
        assert_eq!(Since::Nothing.forwardable(), None);
    }

    /// A round deletes only what had ended before the previous round that pruned, and only
    /// once that round is old enough.
    #[tokio::test]
    async fn pruning_deletes_only_changes_older_than_the_last_horizon() {
        let Some(admin) = super::super::test_url("run the pruning test") else {
            return;
        };
        let _turn = super::super::HORIZON_TESTS.lock().await;
        let name = format!("confab_t_{}", uuid::Uuid::now_v7().simple());
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .unwrap();
        let opts: sqlx::postgres::PgConnectOptions = admin.parse().unwrap();
        let url = opts.database(&name).to_url_lossy().to_string();
        let store = super::super::PgStore::open(&url, StoreOptions::default())
            .await
            .unwrap();
        let pool = &store.pool;
        let (a, b) = (change(pool).await, change(pool).await);
        // Not old enough yet: a second round right away deletes nothing.
        let mut slow = Pruner::default();
        assert_eq!(slow.round(pool).await.unwrap(), 0);
        assert_eq!(slow.round(pool).await.unwrap(), 0);
        let mut pruner = Pruner {
            every: Duration::ZERO,
            horizon: None,
        };
        // The first round only takes its horizon.
        assert_eq!(pruner.round(pool).await.unwrap(), 0);
        let c3 = change(pool).await;
        assert_eq!(left(pool).await, [a, b, c3]);
        // The second deletes what ended before the first: not the change made since.
        assert_eq!(pruner.round(pool).await.unwrap(), 2);
        assert_eq!(left(pool).await, [c3]);
        assert_eq!(pruner.round(pool).await.unwrap(), 1);
        assert!(left(pool).await.is_empty());
        pool.close().await;
        drop(store);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&mut c)
        .await
        .unwrap();
    }
}
