//! The PostgreSQL backend: a connection pool and one transaction per request. Writers meet on
//! row locks (an append locks its conversation row to assign seqs), claims use
//! `FOR UPDATE SKIP LOCKED`, and idempotency races end at the unique index; so any number of
//! confab processes can share one database.

mod analytics;
mod append_batch;
pub(crate) mod backup;
mod columns;
mod driven;
mod export;
mod first_batch;
mod flights;
mod fts;
mod has_insights;
mod held;
mod import;
mod insights;
mod jobs;
mod kept;
mod layout;
mod ops;
mod pending;
mod postings;
mod queue;
mod read;
mod read_batch;
mod row_cache;
mod rows;
mod search;
mod sensay;
mod stats;
mod summary_batch;
mod tenant_keys;
mod versioned;
mod warm;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use confab_core::input::{AppendMessages, ConversationPatch, NewConversation};
use confab_core::{Conversation, Scopes};
use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::types::*;
use crate::{Clock, StoreOptions};

pub(crate) use backup::restore_file;
pub(crate) use fts::tsvector;

pub(crate) struct PgStore {
    pool: PgPool,
    /// Plain appends, many per transaction (`append_batch.rs`).
    appends: append_batch::Batcher,
    /// Conversation lookups, many per statement (`read_batch.rs`).
    lookups: read_batch::Lookups,
    /// Analytics summaries, one query per tenant for all waiting (`summary_batch.rs`).
    summaries: summary_batch::Summaries,
    /// Connections reads hand on to one another untested (`warm.rs`), a pool of their own.
    warm: warm::Warm,
    pepper: Vec<u8>,
    clock: Clock,
    /// When this process last refreshed the planner's statistics after a bulk import.
    analyzed_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// Whether triggers keep the summary's counts (`stats::groups_counted`).
    counted: bool,
    /// This process imported or restored messages: closing merges the search index's pending
    /// list, which a command-line import would otherwise leave for every search to read.
    bulk_written: std::sync::atomic::AtomicBool,
    /// The planner's statistics of the search tokens, for choosing a search's plan.
    frequencies: search::Frequencies,
    /// Whether migration 0005's triggers log the changes that kept windows are checked
    /// against (`kept::logged`).
    keeps_windows: bool,
    /// Whether migration 0009's triggers keep the search segments' marks, so that one-word
    /// searches may read the postings of the segments built (`postings::kept`).
    postings: bool,
    /// Ranked search's windows kept between searches (kept.rs).
    windows: kept::Windows,
    /// Whether kept windows are still right, many searches per statement (kept.rs).
    checks: kept::Checks,
    /// First reads of a query's window in flight, so concurrent searches read it once.
    flights: flights::Flights,
    /// First searches of one word, many per statement (`first_batch.rs`), on `searching`.
    firsts: first_batch::Firsts,
    /// The connections of searches that read rows (all but a kept window's page): a pool of
    /// their own, half the size of `pool` (search.rs, `search`).
    searching: PgPool,
    /// Each statement of a search with filters or sorted newest first is stopped by
    /// PostgreSQL past this (`StoreOptions::read_timeout`; search.rs, `search`).
    read_timeout: Option<Duration>,
    /// Turns of the searches that ran past their budget (search.rs, `search`).
    long_searches: tokio::sync::Semaphore,
}

/// True when every one of `names` is a trigger on `table`: the statement triggers that keep
/// derived tables (the summary's counts, the search changes) can be dropped where they cannot
/// run (Citus), and what depends on them then does without.
pub(crate) async fn triggers_present(
    c: &mut PgConnection,
    table: &str,
    names: &[&str],
) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = ANY($2)",
    )
    .bind(table)
    .bind(names)
    .fetch_one(&mut *c)
    .await?;
    Ok(n == names.len() as i64)
}

/// A pool of `max` connections (one kept open).
fn pool_options(max: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        // sqlx pings every connection it hands out: one more round trip on every request,
        // which cost a fifth of a `get conversation` under load. A connection used within the
        // last second is known to be alive; only one idle for longer is pinged (the rule
        // HikariCP applies), so a database restart still costs no request an error.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                // A dead connection is closed and the pool hands out another.
                Ok(meta.idle_for < Duration::from_secs(1)
                    || sqlx::Connection::ping(conn).await.is_ok())
            })
        })
}

/// Connection options for `url`, statements logged at trace level like the SQLite backend's.
pub(crate) fn options(url: &str) -> Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?
        .log_statements(tracing::log::LevelFilter::Trace))
}

/// The append batch's BEGIN, its row lock and its write (append_batch.rs), then the versioned
/// path's read and write (versioned.rs), for the test that checks the plans they are given.
pub(crate) fn append_batch_sql() -> [&'static str; 5] {
    [
        append_batch::BEGIN,
        append_batch::LOCK_ROWS.as_str(),
        columns::WRITE_BATCH.as_str(),
        versioned::READ.as_str(),
        columns::VERSIONED_WRITE.as_str(),
    ]
}

/// The text of a page of messages' statement for `q` (read.rs), for the test that checks its
/// plan.
pub(crate) fn page_sql(q: &MessageQuery) -> String {
    read::page_sql(q)
}

/// The text of a Sensay page of messages' statement (sensay.rs), for the test that checks its
/// plan.
pub(crate) fn sensay_window_sql(
    agent: Option<&str>,
    w: confab_core::seek::SeqWindow,
    roles: &[confab_core::Role],
) -> String {
    sensay::window_sql(agent, w, roles)
}

/// The append workers' connections: `base`'s, asking for generic plans for the whole session
/// (versioned.rs).
pub(crate) fn appending_options(base: PgConnectOptions) -> PgConnectOptions {
    base.options([("plan_cache_mode", "force_generic_plan")])
}

/// The kept windows' statements planned once per connection, `[checks, checked rows, forward
/// near]` (kept.rs).
pub(crate) fn kept_sql() -> [&'static str; 3] {
    [
        kept::CHECKS,
        kept::CHECKED_ROWS,
        kept::FORWARD_NEAR.as_str(),
    ]
}

/// The batched first searches' statements, `[newest segments, page rows]` (first_batch.rs).
pub(crate) fn first_batch_sql() -> [&'static str; 2] {
    [postings::NEWEST_OF.as_str(), first_batch::PAGE_ROWS]
}

/// True when `e` is PostgreSQL's `query_canceled`: a statement stopped by its
/// `statement_timeout` (or by someone's `pg_cancel_backend`).
pub(crate) fn canceled(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => d.code().as_deref() == Some("57014"),
        _ => false,
    }
}

/// True when `e` is a unique violation of the constraint or index `name`.
pub(crate) fn unique_violation(e: &StoreError, name: &str) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => {
            d.code().as_deref() == Some("23505") && d.constraint() == Some(name)
        }
        _ => false,
    }
}

/// Durability is a promise, not a default: refuse a server that may lose committed writes.
async fn assert_durable(c: &mut PgConnection) -> Result<()> {
    for setting in ["fsync", "synchronous_commit"] {
        let v: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
            .fetch_one(&mut *c)
            .await?;
        // synchronous_commit may be on, remote_write, remote_apply or local: all wait for the
        // local WAL flush. Only `off` acknowledges commits that a crash can lose.
        if v.eq_ignore_ascii_case("off") {
            return Err(StoreError::Config(format!(
                "PostgreSQL must run with fsync and synchronous_commit on, got {setting}={v}"
            )));
        }
    }
    Ok(())
}

/// The oldest PostgreSQL confab runs on (`server_version_num`): 12 brought `plan_cache_mode`,
/// which every append batch sets (append_batch.rs `BEGIN`). Tested on 15.
const OLDEST_VERSION: i64 = 120_000;

/// Refuses a server older than [`OLDEST_VERSION`], naming both, rather than failing each
/// append batch later.
fn supported(version_num: i64) -> Result<()> {
    if version_num < OLDEST_VERSION {
        return Err(StoreError::Config(format!(
            "PostgreSQL 12 or later is needed; this server is version {} (server_version_num \
             {version_num})",
            version_num / 10_000
        )));
    }
    Ok(())
}

impl PgStore {
    pub async fn open(url: &str, opts: StoreOptions) -> Result<Self> {
        let base = options(url)?;
        let mut conn = base.connect().await?;
        let version: String = sqlx::query_scalar("SHOW server_version_num")
            .fetch_one(&mut conn)
            .await?;
        // A server that does not answer with a number (a look-alike) is left to its own devices.
        if let Ok(v) = version.trim().parse() {
            supported(v)?;
        }
        assert_durable(&mut conn).await?;
        // sqlx takes an advisory lock while migrating: processes starting together wait.
        sqlx::migrate!("./migrations/postgres")
            .run(&mut conn)
            .await?;
        let counted = stats::groups_counted(&mut conn).await?;
        let keeps_windows = kept::logged(&mut conn).await?;
        let posted = postings::kept(&mut conn).await?;
        pending::merge_left_over(&mut conn).await;
        let _ = sqlx::Connection::close(conn).await;
        let size = opts.read_connections.max(2);
        // Searches that read rows can run long (a role or date filter that matches little of
        // a common word reads most of its matches: 0.3–0.75 s on a million messages), and
        // each holds a connection meanwhile. Half as many connections as the main pool, and
        // apart from it, so that however many run, the other requests still find connections:
        // sixteen at once had held all eight, and get conversation beside them fell from
        // 35,056 to 9 req/s (docs/performance.md, twenty-eighth session).
        let searching = pool_options(size / 2).connect_with(base.clone()).await?;
        // Reads that hand their connection on (`warm.rs`) keep it from one read to the next
        // while reads keep coming: on a pool of their own, so that the queue workers and
        // transactions of the main pool never wait for them to pause (as many again). Here
        // every connection the pool hands out is tested: under load the reads hand theirs on
        // and take none from the pool, so the test costs them nothing, and one that waited in
        // the pool since PostgreSQL ended it (a restart) is never a read's error.
        let reading = pool_options(size)
            .test_before_acquire(true)
            .connect_with(base.clone())
            .await?;
        // The append workers' connections (`held.rs`), asking for generic plans for their
        // whole session: the versioned write runs outside a transaction, where `SET LOCAL`
        // cannot (versioned.rs, and append_batch.rs `BEGIN` for why).
        let appending = pool_options(queue::workers(size) as u32)
            .connect_with(appending_options(base.clone()))
            .await?;
        let pool = pool_options(size).connect_with(base).await?;
        if counted {
            stats::spawn_compaction(pool.clone());
        }
        if keeps_windows {
            kept::spawn_pruning(pool.clone());
        }
        if posted && opts.search_merge_idle.is_some() {
            postings::spawn_builder(pool.clone());
        }
        let checks = kept::Checks::start(pool.clone());
        Ok(PgStore {
            appends: append_batch::Batcher::start(pool.clone(), appending, opts.clock.clone()),
            lookups: read_batch::Lookups::start(pool.clone()),
            summaries: summary_batch::Summaries::start(pool.clone(), counted),
            warm: warm::Warm::new(reading, size as usize),
            pool,
            pepper: opts.pepper,
            clock: opts.clock,
            analyzed_at: std::sync::Mutex::new(None),
            counted,
            bulk_written: std::sync::atomic::AtomicBool::new(false),
            frequencies: search::Frequencies::default(),
            keeps_windows,
            postings: posted,
            windows: kept::Windows::default(),
            flights: flights::Flights::default(),
            checks,
            firsts: first_batch::Firsts::start(searching.clone()),
            searching,
            read_timeout: opts.read_timeout,
            long_searches: tokio::sync::Semaphore::new(
                opts.long_searches
                    .unwrap_or_else(crate::long_reads::turns)
                    .max(1),
            ),
        })
    }

    /// "Now" at storage precision, from the injected clock.
    fn now(&self) -> OffsetDateTime {
        confab_core::timefmt::normalize((self.clock)())
    }

    /// Runs `f` in one transaction and commits it; nothing of it is stored when it fails.
    /// The same shape as the SQLite writer's `exec`, so the per-concern code reads alike.
    pub(crate) async fn exec<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection, OffsetDateTime) -> BoxFuture<'c, Result<T>>
            + Send
            + 'static,
    {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let v = f(&mut tx, now).await?;
        tx.commit()
            .await
            .map_err(|e| StoreError::Commit(e.to_string()))?;
        Ok(v)
    }

    pub async fn close(&self) {
        self.appends.close().await;
        self.lookups.close().await;
        self.summaries.close().await;
        self.checks.close().await;
        self.firsts.close().await;
        if self.bulk_written.load(std::sync::atomic::Ordering::Acquire) {
            pending::Flusher::default().flush(&self.pool).await;
        }
        self.searching.close().await;
        self.warm.close().await;
        self.pool.close().await;
    }

    /// Folds every count committed so far, waiting for a fold in progress, and vacuums (tests;
    /// the background task folds every [`stats::COMPACT_EVERY`] and vacuums after a while).
    pub async fn compact_summary(&self) -> Result<()> {
        if !self.counted {
            return Ok(());
        }
        stats::compact_groups(&self.pool, true).await?;
        stats::vacuum_counts(&self.pool).await
    }

    pub async fn ping(&self) -> Result<()> {
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&self.pool).await?;
        debug_assert_eq!(one, 1);
        Ok(())
    }

    pub async fn create_key(
        &self,
        tenant: &str,
        scopes: Scopes,
        name: Option<String>,
    ) -> Result<CreatedKey> {
        let pepper = self.pepper.clone();
        let tenant = tenant.to_owned();
        self.exec(move |c, now| {
            Box::pin(async move { ops::create_key(c, &tenant, scopes, name, &pepper, now).await })
        })
        .await
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        read::list_keys(&self.pool).await
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<()> {
        let key_id = key_id.to_owned();
        self.exec(move |c, now| Box::pin(async move { ops::revoke_key(c, &key_id, now).await }))
            .await
    }

    pub async fn authenticate(&self, key_id: &str, secret: &str) -> Result<Option<Principal>> {
        let row = sqlx::query(
            "SELECT tenant_id, secret_hash, scopes FROM api_keys WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: Vec<u8> = row.try_get(1)?;
        if !crate::keys::verify(&self.pepper, secret, &hash) {
            return Ok(None);
        }
        let scopes = Scopes::parse(row.try_get::<&str, _>(2)?).map_err(StoreError::Corrupt)?;
        Ok(Some(Principal {
            tenant: TenantId(row.try_get(0)?),
            key_id: key_id.to_owned(),
            scopes,
        }))
    }

    /// Runs an idempotent write; when a concurrent request with the same key committed first
    /// (the unique index on idempotency_keys refused ours), runs it once more, which then
    /// answers the other request's result.
    async fn idempotent<'a, F>(&'a self, idem: &Option<IdempotencyClaim>, f: F) -> Result<Written>
    where
        F: Fn(Option<IdempotencyClaim>) -> BoxFuture<'a, Result<Written>>,
    {
        match f(idem.clone()).await {
            Err(e) if idem.is_some() && unique_violation(&e, "idempotency_keys_pkey") => {
                f(idem.clone()).await
            }
            r => r,
        }
    }

    pub async fn create_conversation(
        &self,
        tenant: TenantId,
        input: NewConversation,
        idem: Option<IdempotencyClaim>,
    ) -> Result<Written> {
        self.idempotent(&idem, |idem| {
            let input = input.clone();
            let fut = self.exec(move |c, now| {
                Box::pin(async move { ops::create(c, tenant, input, idem, now).await })
            });
            Box::pin(fut)
        })
        .await
    }

    pub async fn append_messages(
        &self,
        tenant: TenantId,
        id: Uuid,
        input: AppendMessages,
        idem: Option<IdempotencyClaim>,
    ) -> Result<Written> {
        // The common append goes through the batcher; one with a key to remember or a status
        // to change (with its side effects) takes the single path.
        if idem.is_none() && input.status.is_none() {
            return self.appends.append(tenant, id, input).await;
        }
        self.idempotent(&idem, |idem| {
            let input = input.clone();
            let fut = self.exec(move |c, now| {
                Box::pin(async move { ops::append(c, tenant, id, input, idem, now).await })
            });
            Box::pin(fut)
        })
        .await
    }

    pub async fn append_many(
        &self,
        tenant: TenantId,
        appends: Vec<(Uuid, AppendMessages)>,
    ) -> Result<Vec<Written>> {
        append_batch::append_many(&self.pool, tenant, appends, &self.clock).await
    }

    pub async fn patch_conversation(
        &self,
        tenant: TenantId,
        id: Uuid,
        patch: ConversationPatch,
    ) -> Result<Conversation> {
        self.exec(move |c, now| {
            Box::pin(async move { ops::patch_conv(c, tenant, id, patch, now).await })
        })
        .await
        .map(|w| w.conversation().clone())
    }

    pub async fn delete_conversation(&self, tenant: TenantId, id: Uuid) -> Result<()> {
        self.exec(move |c, _| Box::pin(async move { ops::delete(c, tenant, id).await }))
            .await
    }

    pub async fn get_conversation(&self, tenant: TenantId, id: Uuid) -> Result<Conversation> {
        self.lookups.get(tenant, id).await
    }

    pub async fn list_conversations(
        &self,
        tenant: TenantId,
        filter: &ConversationFilter,
        page: ConversationPage,
    ) -> Result<Vec<Conversation>> {
        let mut c = self.warm.lend().await?;
        let rows = read::conversations(c.conn(), tenant, filter, page).await?;
        c.done();
        Ok(rows)
    }

    pub async fn count_conversations(
        &self,
        tenant: TenantId,
        filter: &ConversationFilter,
    ) -> Result<i64> {
        let mut c = self.warm.lend().await?;
        let n = read::count_conversations(c.conn(), tenant, filter).await?;
        c.done();
        Ok(n)
    }

    pub async fn list_messages(
        &self,
        tenant: TenantId,
        conversation: Uuid,
        q: &MessageQuery,
    ) -> Result<Vec<confab_core::Message>> {
        let mut c = self.warm.lend().await?;
        let rows = read::messages(c.conn(), tenant, conversation, q).await?;
        c.done();
        Ok(rows)
    }

    pub async fn message_seq(
        &self,
        tenant: TenantId,
        conversation: Uuid,
        message: Uuid,
    ) -> Result<Option<i64>> {
        let mut c = self.warm.lend().await?;
        let seq = sqlx::query_scalar(
            "SELECT seq FROM messages WHERE tenant_id = $1 AND id = $2 AND conversation_id = $3",
        )
        .bind(tenant.0)
        .bind(message)
        .bind(conversation)
        .fetch_optional(c.conn())
        .await?;
        c.done();
        Ok(seq)
    }
}

/// Taken by the unit tests that hold a transaction open on the server or depend on none being
/// open (the horizon of transactions running is the whole cluster's): they take turns, so one
/// never sees the other's.
#[cfg(test)]
pub(crate) static HORIZON_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The PostgreSQL admin URL the unit tests that need a server run against
/// (`CONFAB_TEST_POSTGRES_URL`, as the integration tests' `support/testdb.rs` reads it); `None`,
/// said on standard error with what is skipped (`what`), when it is not set.
#[cfg(test)]
pub(crate) fn test_url(what: &str) -> Option<String> {
    let url = std::env::var("CONFAB_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.trim().is_empty());
    if url.is_none() {
        eprintln!("skipped: set CONFAB_TEST_POSTGRES_URL to {what}");
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_older_than_12_are_refused_by_name() {
        for ok in [120_000, 120_022, 150_020, 180_000] {
            assert!(supported(ok).is_ok(), "{ok}");
        }
        for old in [110_022, 100_000, 90_624] {
            let Err(StoreError::Config(m)) = supported(old) else {
                panic!("{old} accepted");
            };
            assert!(
                m.contains("PostgreSQL 12 or later") && m.contains(&old.to_string()),
                "{m}"
            );
        }
    }

    /// The statements meant to be planned once per connection read every parameter through a
    /// subquery (kept.rs's `FORWARD_NEAR` says why): a bare `$n` shows PostgreSQL its value,
    /// and where that makes a custom plan look cheaper it plans every execution anew. The plan
    /// test (tests/pg_plans.rs) cannot always tell: on its small tables the values in sight do
    /// not change the plan, on the benchmark's store they did.
    #[test]
    fn statements_planned_once_read_their_parameters_through_subqueries() {
        let statements = kept_sql().into_iter().chain(first_batch_sql());
        for sql in statements {
            let mut params = 0;
            for (i, _) in sql.match_indices('$') {
                if !sql[i + 1..].starts_with(|c: char| c.is_ascii_digit()) {
                    continue;
                }
                params += 1;
                assert!(
                    sql[..i].ends_with("(SELECT "),
                    "a bare parameter at {i}: {sql}"
                );
            }
            assert!(params > 0, "{sql}");
        }
    }
}
