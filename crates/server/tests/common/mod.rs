//! Test harness: the real server on port 0 over a fresh database, driven over HTTP.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use confab_core::Scopes;
use confab_server::{AppState, ServerConfig};
use confab_store::{Store, StoreOptions};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "../../../store/tests/support/testdb.rs"]
pub mod testdb;
#[allow(unused_imports)]
pub use testdb::{TestDb, on_postgres};

/// A test's scratch directory and, when the suites run on PostgreSQL, its database (one per
/// directory, so a stopped server restarts on the same data). Both go when the last `Arc` does.
pub struct TestDir {
    tmp: tempfile::TempDir,
    pg: Option<TestDb>,
}

impl TestDir {
    /// A new directory (and PostgreSQL database when `CONFAB_TEST_POSTGRES_URL` is set).
    pub async fn new() -> std::sync::Arc<TestDir> {
        let pg = match testdb::pg_admin_url() {
            Some(admin) => Some(TestDb::new_pg(&admin).await),
            None => None,
        };
        std::sync::Arc::new(TestDir {
            tmp: tempfile::tempdir().expect("tempdir"),
            pg,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// The database URL: this directory's PostgreSQL database, or the SQLite file `db`.
    pub fn url(&self, db: &Path) -> String {
        match &self.pg {
            Some(d) => d.url.clone(),
            None => format!("sqlite://{}", db.display()),
        }
    }
}

/// A value bound into [`TestApp::sql`].
pub enum Arg {
    /// A uuid (a BLOB on SQLite).
    Uuid(uuid::Uuid),
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

/// A running server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The server's store (for key creation and direct checks).
    pub store: Store,
    /// Database file (SQLite; on PostgreSQL only the key a restart passes back).
    pub db_path: PathBuf,
    /// The database URL the store was opened with.
    pub db_url: String,
    /// Keeps the temporary directory (and the PostgreSQL database) alive.
    pub dir: std::sync::Arc<TestDir>,
    /// HTTP client.
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// A server over a new, empty database.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(ServerConfig::default()).await
    }

    /// The same, with settings.
    pub async fn spawn_with(config: ServerConfig) -> TestApp {
        let dir = TestDir::new().await;
        let db = dir.path().join("confab.db");
        Self::start(dir, db, config, StoreOptions::default()).await
    }

    /// A server over an existing database (a restart).
    pub async fn start(
        dir: std::sync::Arc<TestDir>,
        db: PathBuf,
        config: ServerConfig,
        opts: StoreOptions,
    ) -> TestApp {
        let url = dir.url(&db);
        Self::start_at(dir, db, url, config, opts).await
    }

    /// The same over the database at `url` (through a proxy, say), `dir` kept alive with it.
    pub async fn start_at(
        dir: std::sync::Arc<TestDir>,
        db: PathBuf,
        url: String,
        config: ServerConfig,
        opts: StoreOptions,
    ) -> TestApp {
        confab_server::tls::install_crypto_provider();
        let store = Store::open(&url, opts).await.expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::new(store.clone(), config);
        let task = tokio::spawn(confab_server::serve(listener, state, async move {
            let _ = rx.await;
        }));
        TestApp {
            base,
            store,
            db_path: db,
            db_url: url,
            dir,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops gracefully (in-flight requests finish, the store is flushed and closed).
    pub async fn stop(mut self) -> (std::sync::Arc<TestDir>, PathBuf) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server result");
        }
        (self.dir.clone(), self.db_path.clone())
    }

    /// Stops and starts again on the same database file.
    pub async fn restart(self) -> TestApp {
        let (dir, db) = self.stop().await;
        Self::start(dir, db, ServerConfig::default(), StoreOptions::default()).await
    }

    /// A `key_id.secret` token with read and write for `tenant`.
    pub async fn token(&self, tenant: &str) -> String {
        self.token_with(tenant, Scopes::DEFAULT).await
    }

    /// A token with the given scopes.
    pub async fn token_with(&self, tenant: &str, scopes: Scopes) -> String {
        self.store
            .create_key(tenant, scopes, None)
            .await
            .expect("create key")
            .token
    }

    /// Full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with a bearer token and optional JSON body; answers status, headers and
    /// the JSON body (`Value::Null` when the body is empty; panics when it is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        Resp::read(rb.send().await.expect("request")).await
    }

    /// `GET /metrics` as text (it needs no credentials).
    pub async fn metrics(&self) -> String {
        let r = self.client.get(self.url("/metrics")).send().await.unwrap();
        r.text().await.unwrap()
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// POST JSON with a token.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// True when the store is PostgreSQL.
    pub fn is_pg(&self) -> bool {
        self.store.backend_name() == "postgres"
    }

    /// Runs `sql` (parameters written `$1`, `$2`…, which both engines accept) directly on the
    /// database and answers every row as JSON values (integers, floats, text, booleans, uuids
    /// as strings, NULL). For checks the API does not expose.
    pub async fn sql(&self, sql: &str, args: &[Arg]) -> Vec<Vec<Value>> {
        use sqlx::{Connection, Row};
        macro_rules! run {
            ($conn:expr) => {{
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
                for a in args {
                    q = match a {
                        Arg::Uuid(u) => q.bind(*u),
                        Arg::Int(i) => q.bind(*i),
                        Arg::Text(t) => q.bind(t.clone()),
                    };
                }
                let rows = q.fetch_all(&mut $conn).await.expect("test SQL");
                rows.iter()
                    .map(|r| {
                        (0..r.columns().len())
                            .map(|i| {
                                if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
                                    serde_json::json!(v)
                                } else if let Ok(v) = r.try_get::<Option<f64>, _>(i) {
                                    serde_json::json!(v)
                                } else if let Ok(v) = r.try_get::<Option<bool>, _>(i) {
                                    serde_json::json!(v)
                                } else if let Ok(v) = r.try_get::<Option<String>, _>(i) {
                                    serde_json::json!(v)
                                } else if let Ok(v) = r.try_get::<Option<uuid::Uuid>, _>(i) {
                                    serde_json::json!(v)
                                } else {
                                    panic!("test SQL: column {i} has a type sql() does not read")
                                }
                            })
                            .collect()
                    })
                    .collect::<Vec<Vec<Value>>>()
            }};
        }
        if self.is_pg() {
            let mut c = sqlx::PgConnection::connect(&self.db_url).await.unwrap();
            let out = run!(c);
            let _ = c.close().await;
            out
        } else {
            let mut c = sqlx::SqliteConnection::connect(&self.db_url).await.unwrap();
            let out = run!(c);
            let _ = c.close().await;
            out
        }
    }

    /// Row counts of every table, for "nothing left behind" checks.
    pub async fn table_counts(&self) -> Vec<(String, i64)> {
        // PostgreSQL's summary counts are deltas folded within a second (migration 0002): fold
        // them first, so the counts are of the data, not of when the last fold ran, and a
        // deleted conversation's count rows are gone as they are after that second.
        self.store.compact_summary().await.unwrap();
        let list = if self.is_pg() {
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_type = 'BASE TABLE' AND table_name NOT LIKE '_sqlx%' ORDER BY 1"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name"
        };
        let names: Vec<String> = self
            .sql(list, &[])
            .await
            .into_iter()
            .map(|r| r[0].as_str().unwrap().to_owned())
            .collect();
        let mut out = Vec::new();
        for n in names {
            // FTS5's shadow tables (SQLite) are bookkeeping, not data.
            if n.contains("fts")
                && (n.ends_with("_data")
                    || n.ends_with("_idx")
                    || n.ends_with("_docsize")
                    || n.ends_with("_config")
                    || n.ends_with("_content"))
            {
                continue;
            }
            // Derived from the index, rebuilt behind the writes (sqlite/tails.rs): FTS5's list
            // of its words and the windows of the common ones.
            if n == "messages_fts_terms" || n == "search_tails" {
                continue;
            }
            let rows = self
                .sql(&format!("SELECT COUNT(*) FROM \"{n}\""), &[])
                .await;
            out.push((n, rows[0][0].as_i64().unwrap()));
        }
        out
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// JSON body, or Null when empty.
    pub body: Value,
    /// Raw text.
    pub text: String,
}

impl Resp {
    /// Reads a reqwest response.
    pub async fn read(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text}"))
        };
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// Panics with the body unless the status is `s`.
    pub fn expect(self, s: u16) -> Resp {
        assert_eq!(
            self.status.as_u16(),
            s,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

/// Path of the repository root (for committed fixtures such as openapi.json).
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}
