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

/// A running server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The server's store (for key creation and direct checks).
    pub store: Store,
    /// Database file.
    pub db_path: PathBuf,
    /// Keeps the temporary directory alive.
    pub dir: std::sync::Arc<tempfile::TempDir>,
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
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
        let db = dir.path().join("confab.db");
        Self::start(dir, db, config, StoreOptions::default()).await
    }

    /// A server over an existing database (a restart).
    pub async fn start(
        dir: std::sync::Arc<tempfile::TempDir>,
        db: PathBuf,
        config: ServerConfig,
        opts: StoreOptions,
    ) -> TestApp {
        // reqwest is built without a default TLS provider (see CRATES.md): install ring once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = format!("sqlite://{}", db.display());
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
            dir,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops gracefully (in-flight requests finish, the store is flushed and closed).
    pub async fn stop(mut self) -> (std::sync::Arc<tempfile::TempDir>, PathBuf) {
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

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// POST JSON with a token.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Row counts of every table, for "nothing left behind" checks.
    pub async fn table_counts(&self) -> Vec<(String, i64)> {
        use sqlx::Connection;
        let mut c =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", self.db_path.display()))
                .await
                .unwrap();
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        let mut out = Vec::new();
        for n in names {
            if n.contains("fts")
                && (n.ends_with("_data")
                    || n.ends_with("_idx")
                    || n.ends_with("_docsize")
                    || n.ends_with("_config")
                    || n.ends_with("_content"))
            {
                continue;
            }
            let sql = format!("SELECT COUNT(*) FROM \"{n}\"");
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut c)
                .await
                .unwrap();
            out.push((n, count));
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
