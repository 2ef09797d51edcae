//! The real server, in this process: a fresh SQLite file, `confab_server::serve` on an
//! ephemeral port, one API key, and an HTTP/1.1 keep-alive client sized for the concurrency.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use confab_core::Scopes;
use confab_server::{AppState, ServerConfig};
use confab_store::{Store, StoreOptions};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

/// A running server and a client for it.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The API key (`key_id.key_secret`).
    pub token: String,
    /// Keep-alive client (HTTP/1.1: reqwest is built without HTTP/2).
    pub client: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// With this variable set to a PostgreSQL admin URL, the benchmark runs on PostgreSQL: each
/// store is a new database on that server, dropped by [`drop_databases`] at the end.
pub const PG_ENV: &str = "CONFAB_BENCH_POSTGRES_URL";

/// `(admin URL, database)` of every database the run created.
static CREATED: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// `sqlite` or `postgres`, from the environment.
pub fn backend() -> &'static str {
    if std::env::var(PG_ENV).is_ok_and(|v| !v.is_empty()) {
        "postgres"
    } else {
        "sqlite"
    }
}

/// Opens a store on a fresh database: the file `name` in `dir`, or a new PostgreSQL database.
pub async fn open_store(dir: &Path, name: &str) -> anyhow::Result<Store> {
    use sqlx::{ConnectOptions, Connection};
    let url = match std::env::var(PG_ENV).ok().filter(|v| !v.is_empty()) {
        None => format!("sqlite://{}", dir.join(name).display()),
        Some(admin) => {
            let db = format!("confab_bench_{}", uuid::Uuid::now_v7().simple());
            let mut c = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&mut c)
                .await?;
            c.close().await?;
            CREATED
                .lock()
                .expect("not poisoned")
                .push((admin.clone(), db.clone()));
            let opts: sqlx::postgres::PgConnectOptions = admin.parse()?;
            opts.database(&db).to_url_lossy().to_string()
        }
    };
    Store::open(&url, StoreOptions::default())
        .await
        .with_context(|| format!("opening {}", confab_store::redact_url(&url)))
}

/// Drops the PostgreSQL databases the run created.
pub async fn drop_databases() -> anyhow::Result<()> {
    use sqlx::Connection;
    let created = std::mem::take(&mut *CREATED.lock().expect("not poisoned"));
    for (admin, db) in created {
        let mut c = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut c)
        .await?;
        c.close().await?;
    }
    Ok(())
}

impl Server {
    /// Starts the server on a fresh database in `dir`.
    pub async fn start(dir: &Path, concurrency: usize) -> anyhow::Result<Server> {
        confab_server::tls::install_crypto_provider();
        let store = open_store(dir, "confab.db").await?;
        let key = store
            .create_key("bench", Scopes::DEFAULT, Some("bench".into()))
            .await
            .context("creating the API key")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let state = AppState::new(store, ServerConfig::default());
        let task = tokio::spawn(confab_server::serve(listener, state, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency.max(1) * 2)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(600))
            .build()?;
        let s = Server {
            base,
            token: key.token,
            client,
            stop,
            task,
        };
        s.get("/readyz", &[]).await.context("server not ready")?;
        Ok(s)
    }

    /// `Authorization: Bearer` plus any extra headers.
    pub fn headers(&self, extra: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        let bearer = format!("Bearer {}", self.token);
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&bearer).expect("ascii token"),
        );
        for (k, v) in extra {
            h.insert(*k, HeaderValue::from_str(v).expect("ascii header"));
        }
        h
    }

    /// GET `path`, failing on a non-2xx status; returns the body.
    pub async fn get(
        &self,
        path: &str,
        extra: &[(&'static str, String)],
    ) -> anyhow::Result<Vec<u8>> {
        let res = self
            .client
            .get(format!("{}{path}", self.base))
            .headers(self.headers(extra))
            .send()
            .await?;
        Ok(check(res).await?.bytes().await?.to_vec())
    }

    /// A cheap, cloneable handle for load tasks, sending `Authorization: Bearer`.
    pub fn api(&self) -> Api {
        self.api_with(self.headers(&[]))
    }

    /// A handle that sends exactly `headers` (a dialect with its own credential header).
    pub fn api_with(&self, headers: HeaderMap) -> Api {
        Api {
            base: self.base.clone().into(),
            client: self.client.clone(),
            headers,
        }
    }

    /// Stops the server (in-flight requests finish, the store flushes).
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// The response when its status is 2xx; otherwise an error naming status and body.
pub async fn check(res: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    let body = res.text().await.unwrap_or_default();
    bail!("{status}: {}", body.chars().take(300).collect::<String>())
}

/// What a load task needs to send requests.
#[derive(Clone)]
pub struct Api {
    base: std::sync::Arc<str>,
    client: reqwest::Client,
    headers: HeaderMap,
}

impl Api {
    /// GET `path`, reading the body to the end (so the connection is reused); returns its size.
    pub async fn get(&self, path: &str) -> anyhow::Result<u64> {
        let mut res = check(
            self.client
                .get(format!("{}{path}", self.base))
                .headers(self.headers.clone())
                .send()
                .await?,
        )
        .await?;
        let mut n = 0u64;
        while let Some(chunk) = res.chunk().await? {
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    /// POST a JSON (or NDJSON) body to `path`, reading the answer to the end.
    pub async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let res = check(
            self.client
                .post(format!("{}{path}", self.base))
                .headers(self.headers.clone())
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await?,
        )
        .await?;
        res.bytes().await?;
        Ok(())
    }
}
