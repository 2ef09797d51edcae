//! The real server, in its own process: a fresh SQLite file (or PostgreSQL database), one API
//! key, `confab_server::serve` on an ephemeral port in a child process (this binary run as
//! `confab-bench serve`), and the load generator's keep-alive connections to it.
//!
//! Why a child process: the server's RSS is then the server's alone (not the dataset's or the
//! load generator's), and the server's runtime does not share worker threads with the client.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use confab_core::Scopes;
use confab_server::{AppState, ServerConfig};
use confab_store::{Store, StoreOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::http::{self, Pool};
use crate::load;

/// A running server process and a client for it.
pub struct Server {
    addr: SocketAddr,
    pid: u32,
    /// The API key (`key_id.key_secret`).
    pub token: String,
    pool: Pool,
    child: tokio::process::Child,
    /// The store's URL.
    url: String,
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

/// The tenant the server's store holds the dataset under: its API key's.
pub const TENANT: &str = "bench";

/// Opens the store at `url` (an existing database, or a new one made by [`open_store_url`]).
pub async fn open_url(url: &str) -> anyhow::Result<Store> {
    Store::open(url, StoreOptions::default())
        .await
        .with_context(|| format!("opening {}", confab_store::redact_url(url)))
}

/// Opens a store on a fresh database: the file `name` in `dir`, or a new PostgreSQL database.
pub async fn open_store(dir: &Path, name: &str) -> anyhow::Result<Store> {
    Ok(open_store_url(dir, name).await?.0)
}

/// [`open_store`], also answering the database URL (for the server process).
pub async fn open_store_url(dir: &Path, name: &str) -> anyhow::Result<(Store, String)> {
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
    Ok((open_url(&url).await?, url))
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
    /// Starts the server on a fresh database in `dir`: the store is created here (with the
    /// benchmark's API key), then served by a child process.
    pub async fn start(dir: &Path) -> anyhow::Result<Server> {
        let (store, url) = open_store_url(dir, "confab.db").await?;
        let key = store
            .create_key(TENANT, Scopes::DEFAULT, Some("bench".into()))
            .await
            .context("creating the API key")?;
        store.close().await;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--database")
            .arg(&url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting the server process")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await?;
        let addr: SocketAddr = line.trim().parse().with_context(|| {
            format!("the server process did not start (said {line:?}; see server.log)")
        })?;
        let pid = child.id().context("server pid")?;
        let s = Server {
            addr,
            pid,
            token: key.token,
            pool: Pool::new(addr),
            child,
            url,
        };
        s.get("/readyz", "").await.context("server not ready")?;
        Ok(s)
    }

    /// `Authorization: Bearer` as a header line.
    pub fn bearer(&self) -> String {
        format!("Authorization: Bearer {}\r\n", self.token)
    }

    /// GET `path` with Bearer and `extra` header lines, failing on a non-2xx status; returns
    /// the body.
    pub async fn get(&self, path: &str, extra: &str) -> anyhow::Result<Vec<u8>> {
        let head = http::head("GET", path, &format!("{}{extra}", self.bearer()), None);
        let res = self.pool.send(&head, &[], true).await?;
        check(&res)?;
        Ok(res.body)
    }

    /// A cheap, cloneable handle for load tasks, sending `Authorization: Bearer`.
    pub fn api(&self) -> Api {
        self.api_with(self.bearer())
    }

    /// A handle that sends exactly these header lines (a dialect with its own credential).
    pub fn api_with(&self, headers: String) -> Api {
        Api {
            pool: self.pool.clone(),
            headers: headers.into(),
        }
    }

    /// A field of the server process's `/proc/PID/status`, in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        load::proc_status_kib(self.pid, field)
    }

    /// The URL of the server's store (for measuring on it once the server has stopped).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server process's id (for RSS sampling).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops the server: its standard input closes, it finishes in-flight requests, the
    /// store flushes and the process exits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("the server process did not exit within 60 s")??;
        if !status.success() {
            bail!("the server process exited with {status}");
        }
        let _ = self.addr;
        Ok(())
    }
}

/// Fails on a non-2xx status, naming it and the body.
pub fn check(res: &http::Response) -> anyhow::Result<()> {
    if (200..300).contains(&res.status) {
        return Ok(());
    }
    let body = String::from_utf8_lossy(&res.body);
    bail!(
        "{}: {}",
        res.status,
        body.chars().take(300).collect::<String>()
    )
}

/// What a load task needs to send requests.
#[derive(Clone)]
pub struct Api {
    pool: Pool,
    headers: Arc<str>,
}

impl Api {
    /// A handle on a server the benchmark did not start (`confab-bench load`).
    pub fn external(addr: std::net::SocketAddr, headers: String) -> Api {
        Api {
            pool: Pool::new(addr),
            headers: headers.into(),
        }
    }

    /// The head of a GET of `path`, rendered once so the load loop only writes it.
    pub fn get_head(&self, path: &str) -> Vec<u8> {
        http::head("GET", path, &self.headers, None)
    }

    /// The head of a POST of `len` bytes of `content_type` to `path`.
    pub fn post_head(&self, path: &str, content_type: &str, len: usize) -> Vec<u8> {
        let headers = format!("{}Content-Type: {content_type}\r\n", self.headers);
        http::head("POST", path, &headers, Some(len))
    }

    /// Sends a pre-rendered request, reads the answer to the end (so the connection is
    /// reused), fails on a non-2xx status; returns the body's size.
    pub async fn send(&self, head: &[u8], body: &[u8]) -> anyhow::Result<u64> {
        let res = self.pool.send(head, body, false).await?;
        check(&res)?;
        Ok(res.len)
    }

    /// POST a body to `path` (set-up requests; the load loop uses [`Api::send`]).
    pub async fn post(&self, path: &str, content_type: &str, body: &[u8]) -> anyhow::Result<()> {
        let head = self.post_head(path, content_type, body.len());
        self.send(&head, body).await?;
        Ok(())
    }
}

/// The child process: serves `database` on an ephemeral port, prints the address on standard
/// output, and stops when standard input closes. Logs go to standard error as `confab serve`
/// writes them (same filter), so the benchmark pays for logging as production does.
pub async fn serve_child(database: &str) -> anyhow::Result<()> {
    confab_server::tls::install_crypto_provider();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let config = ServerConfig::default();
    let opts = StoreOptions {
        read_timeout: Some(config.request_timeout),
        ..StoreOptions::default()
    };
    let store = Store::open(database, opts).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    let state = AppState::new(store, config);
    confab_server::serve(listener, state, async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    })
    .await?;
    Ok(())
}
