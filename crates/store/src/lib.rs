//! confab's storage API: one `Store`, with the backend chosen once from the database URL.
//!
//! Every method takes the caller's [`TenantId`], which only the store can make, so no query can
//! forget tenant scoping. Writes are validated here once more, whatever dialect sent them, so
//! nothing invalid is ever stored half-way.

/// Calls the same method on whichever backend is open. New `impl Store` blocks in their own
/// files (one per concern) use it too, so adding a capability touches no shared file.
macro_rules! dispatch {
    ($self:ident, $b:ident => $call:expr) => {
        match &*$self.backend {
            crate::Backend::Sqlite($b) => $call,
            crate::Backend::Postgres($b) => $call,
        }
    };
}

pub mod analytics;
mod backup;
mod copy;
pub mod error;
mod export;
mod has_insights;
mod heap;
mod import;
mod insights;
pub mod jobs;
mod keycache;
pub mod keys;
pub(crate) mod long_reads;
mod lru;
mod postgres;
mod search;
pub mod sensay;
mod sqlite;
mod stats;
mod tenant_keys;
pub mod types;
pub mod webhooks;

use std::sync::Arc;

use confab_core::input::{AppendMessages, ConversationPatch, Limits, NewConversation};
use confab_core::{Conversation, Message, Scopes};
use time::OffsetDateTime;
use uuid::Uuid;

pub use analytics::{InsightsQuery, InsightsSummary};
pub use backup::restore;
pub use error::{Result, StoreError};
pub use export::*;
pub use heap::tune_allocator;
pub use import::*;
pub use jobs::{Backfill, FailOutcome, Job, JobCounts, RetryPolicy};
pub use keycache::KEY_CACHE_TTL;
pub use search::*;
pub use sensay::DailyCounts;
pub use stats::*;
pub use types::*;

/// Where "now" comes from; tests inject a fixed or moving clock (idempotency expiry).
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Settings that do not come from the URL.
#[derive(Clone)]
pub struct StoreOptions {
    /// Server-side secret mixed into API key hashes.
    pub pepper: Vec<u8>,
    /// Time source.
    pub clock: Clock,
    /// Reader connections (SQLite) or pool size (PostgreSQL; searches that read rows have
    /// half as many again of their own, and reads that hand their connection on as many
    /// again: postgres/warm.rs).
    pub read_connections: u32,
    /// SQLite: once the writer has committed no change for this long, it merges the
    /// full-text index into one segment, step by step (sqlite/merge.rs); None: never.
    /// PostgreSQL: Some builds the search postings in the background (postgres/postings.rs),
    /// whatever the duration; None leaves that to the processes that do (searches read
    /// whatever is built either way).
    pub search_merge_idle: Option<std::time::Duration>,
    /// A read still running after this long is stopped, and fails with
    /// [`StoreError::ReadTimeout`] (the server sets its request timeout here: past it, the
    /// answer would be thrown away, and the read would only hold a core). SQLite: any read
    /// handed over (sqlite/handoff.rs); PostgreSQL: each statement of a search with filters or
    /// sorted newest first (postgres/search.rs). None: reads run to their end.
    pub read_timeout: Option<std::time::Duration>,
    /// PostgreSQL: searches with filters or newest first that run past their budget at once,
    /// the others waiting for a turn (postgres/search.rs, `search`). None: half the cores of
    /// this machine, at least one, the rule of SQLite's long reads (long_reads.rs), which run
    /// in this process; PostgreSQL's run where it does, so a server of its own may take more.
    /// 0 counts as 1 (none at all would leave every long search waiting for ever); the command
    /// line refuses it.
    pub long_searches: Option<usize>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pepper: keys::DEFAULT_PEPPER.as_bytes().to_vec(),
            clock: Arc::new(confab_core::timefmt::now),
            read_connections: 8,
            search_merge_idle: Some(std::time::Duration::from_secs(1)),
            read_timeout: None,
            long_searches: None,
        }
    }
}

/// How long an idempotency key is honoured.
pub const IDEMPOTENCY_TTL: time::Duration = time::Duration::hours(24);

enum Backend {
    Sqlite(sqlite::SqliteStore),
    // Boxed: its batchers make it several times the size of the SQLite store.
    Postgres(Box<postgres::PgStore>),
}

/// Truncations of SQLite page caches skipped so far in this process because they could find no
/// page (sqlite/pcache.rs): for the test that checks the wrapper is in place and loses nothing.
#[doc(hidden)]
pub fn sqlite_page_cache_truncations_skipped() -> u64 {
    sqlite::truncations_skipped()
}

/// PostgreSQL's append batch statements, `[begin, lock rows, write, versioned read, versioned
/// write]`: for the test that checks their generic plans (tests/pg_plans.rs).
#[doc(hidden)]
pub fn postgres_append_batch_sql() -> [&'static str; 5] {
    postgres::append_batch_sql()
}

/// The text of PostgreSQL's statement for a page of messages as `q` asks: for the test that
/// checks PostgreSQL settles on its generic plan (tests/pg_plans.rs).
#[doc(hidden)]
pub fn postgres_page_sql(q: &MessageQuery) -> String {
    postgres::page_sql(q)
}

/// The text of PostgreSQL's statement for a Sensay page of messages: for the test that checks
/// PostgreSQL settles on its generic plan (tests/pg_plans.rs).
#[doc(hidden)]
pub fn postgres_sensay_window_sql(
    agent: Option<&str>,
    w: confab_core::seek::SeqWindow,
    roles: &[confab_core::Role],
) -> String {
    postgres::sensay_window_sql(agent, w, roles)
}

/// The connection options of PostgreSQL's append workers for the database at `url`: for the
/// test that checks they ask for generic plans (tests/pg_plans.rs).
#[doc(hidden)]
pub fn postgres_appending_options(url: &str) -> Result<sqlx::postgres::PgConnectOptions> {
    Ok(postgres::appending_options(postgres::options(url)?))
}

/// PostgreSQL's kept windows' statements meant to be planned once, `[checks, checked rows,
/// forward near]`: for the test that checks PostgreSQL settles on their generic plans
/// (tests/pg_plans.rs).
#[doc(hidden)]
pub fn postgres_kept_sql() -> [&'static str; 3] {
    postgres::kept_sql()
}

/// PostgreSQL's batched first searches' statements, `[newest segments, page rows]`: for the
/// test that checks PostgreSQL settles on their generic plans (tests/pg_plans.rs).
#[doc(hidden)]
pub fn postgres_first_batch_sql() -> [&'static str; 2] {
    postgres::first_batch_sql()
}

/// True for a PostgreSQL URL (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with its password (in the user part or a `password=` parameter) replaced by `***`, for
/// messages and logs.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(start) = url.find("://").map(|i| i + 3) {
        let rest = &url[start..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            out = format!("{}{}:***{}", &url[..start], &rest[..colon], &rest[at..]);
        }
    }
    if let Some(i) = out.find("password=") {
        let from = i + "password=".len();
        let to = out[from..].find('&').map_or(out.len(), |j| from + j);
        out.replace_range(from..to, "***");
    }
    out
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn passwords_are_redacted() {
        use super::redact_url;
        assert_eq!(
            redact_url("postgres://u:s3cret@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=p&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(redact_url("sqlite://confab.db"), "sqlite://confab.db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}

/// The store: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    keys: Arc<keycache::KeyCache>,
    pepper: Arc<[u8]>,
}

impl Store {
    /// Opens (creating and migrating as needed) the database at `url`:
    /// `sqlite://path` (or a bare path ending in `.db`) or `postgres://…` (`postgresql://…`).
    pub async fn open(url: &str, opts: StoreOptions) -> Result<Store> {
        let pepper: Arc<[u8]> = opts.pepper.clone().into();
        let backend = if is_postgres_url(url) {
            Backend::Postgres(Box::new(postgres::PgStore::open(url, opts).await?))
        } else if url.starts_with("sqlite:") || url.ends_with(".db") {
            Backend::Sqlite(sqlite::SqliteStore::open(url, opts).await?)
        } else {
            return Err(StoreError::Config(
                "unsupported database URL: use sqlite://PATH or postgres://…".into(),
            ));
        };
        Ok(Store {
            backend: Arc::new(backend),
            keys: Default::default(),
            pepper,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &*self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Waits for queued writes to commit and closes connections.
    pub async fn close(&self) {
        dispatch!(self, b => b.close().await)
    }

    /// Succeeds when the database answers.
    pub async fn ping(&self) -> Result<()> {
        dispatch!(self, b => b.ping().await)
    }

    /// Creates a key for `tenant` (creating the tenant on first use).
    pub async fn create_key(
        &self,
        tenant: &str,
        scopes: Scopes,
        name: Option<String>,
    ) -> Result<CreatedKey> {
        if tenant.trim().is_empty() || tenant.len() > 200 {
            return Err(confab_core::ValidationError::field(
                "tenant",
                "must be 1 to 200 characters",
            )
            .into());
        }
        dispatch!(self, b => b.create_key(tenant, scopes, name).await)
    }

    /// Every key of every tenant, newest first, without secrets.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        dispatch!(self, b => b.list_keys().await)
    }

    /// Revokes a key; `NotFound` if there is no such key.
    pub async fn revoke_key(&self, key_id: &str) -> Result<()> {
        dispatch!(self, b => b.revoke_key(key_id).await)?;
        self.keys.forget(key_id);
        Ok(())
    }

    /// The principal for a key id and secret, or `None` when they do not match a live key.
    /// Verified keys are remembered for [`KEY_CACHE_TTL`] (see `keycache.rs`).
    pub async fn authenticate(&self, key_id: &str, secret: &str) -> Result<Option<Principal>> {
        let hash = keys::hash_secret(&self.pepper, secret);
        if let Some(p) = self.keys.get(key_id, &hash) {
            return Ok(Some(p));
        }
        let found = dispatch!(self, b => b.authenticate(key_id, secret).await)?;
        if let Some(p) = &found {
            self.keys.put(hash, p.clone());
        }
        Ok(found)
    }

    /// Creates a conversation with its first messages, in one transaction.
    pub async fn create_conversation(
        &self,
        tenant: &TenantId,
        input: NewConversation,
        idem: Option<IdempotencyClaim>,
    ) -> Result<Written> {
        input.validate(&Limits::default())?;
        dispatch!(self, b => b.create_conversation(*tenant, input, idem).await)
    }

    /// Appends messages atomically (seqs assigned in the transaction), optionally changing status
    /// and merging metadata.
    pub async fn append_messages(
        &self,
        tenant: &TenantId,
        id: Uuid,
        input: AppendMessages,
        idem: Option<IdempotencyClaim>,
    ) -> Result<Written> {
        input.validate(&Limits::default())?;
        dispatch!(self, b => b.append_messages(*tenant, id, input, idem).await)
    }

    /// Appends to many conversations in one transaction, each append as
    /// [`Store::append_messages`] would without an idempotency key or a status change: all of
    /// them in order, or none (the first conversation missing is the answer). The benchmark's
    /// storage ceiling for appends writes through it (bench/src/ceiling.rs): the server's own
    /// statements with neither HTTP nor the group commit's waiting in front of them.
    pub async fn append_many(
        &self,
        tenant: &TenantId,
        appends: Vec<(Uuid, AppendMessages)>,
    ) -> Result<Vec<Written>> {
        for (i, (_, a)) in appends.iter().enumerate() {
            if a.status.is_some() {
                return Err(confab_core::ValidationError::field(
                    format!("appends[{i}].status"),
                    "is not taken by a batch of appends",
                )
                .into());
            }
            a.validate(&Limits::default())
                .map_err(|e| e.prefixed(&format!("appends[{i}]")))?;
        }
        dispatch!(self, b => b.append_many(*tenant, appends).await)
    }

    /// Changes title, status, metadata or the memory flag.
    pub async fn patch_conversation(
        &self,
        tenant: &TenantId,
        id: Uuid,
        patch: ConversationPatch,
    ) -> Result<Conversation> {
        patch.validate(&Limits::default())?;
        dispatch!(self, b => b.patch_conversation(*tenant, id, patch).await)
    }

    /// Deletes a conversation and everything that refers to it.
    pub async fn delete_conversation(&self, tenant: &TenantId, id: Uuid) -> Result<()> {
        dispatch!(self, b => b.delete_conversation(*tenant, id).await)
    }

    /// One conversation.
    pub async fn get_conversation(&self, tenant: &TenantId, id: Uuid) -> Result<Conversation> {
        dispatch!(self, b => b.get_conversation(*tenant, id).await)
    }

    /// Conversations newest first (created_at, then id).
    pub async fn list_conversations(
        &self,
        tenant: &TenantId,
        filter: &ConversationFilter,
        page: ConversationPage,
    ) -> Result<Vec<Conversation>> {
        dispatch!(self, b => b.list_conversations(*tenant, filter, page).await)
    }

    /// How many conversations match.
    pub async fn count_conversations(
        &self,
        tenant: &TenantId,
        filter: &ConversationFilter,
    ) -> Result<i64> {
        dispatch!(self, b => b.count_conversations(*tenant, filter).await)
    }

    /// A conversation's messages; `NotFound` when the conversation does not exist.
    pub async fn list_messages(
        &self,
        tenant: &TenantId,
        conversation: Uuid,
        q: &MessageQuery,
    ) -> Result<Vec<Message>> {
        dispatch!(self, b => b.list_messages(*tenant, conversation, q).await)
    }

    /// The seq of a message inside a conversation, if it belongs to it.
    pub async fn message_seq(
        &self,
        tenant: &TenantId,
        conversation: Uuid,
        message: Uuid,
    ) -> Result<Option<i64>> {
        dispatch!(self, b => b.message_seq(*tenant, conversation, message).await)
    }
}
