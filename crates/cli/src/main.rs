//! The `confab` command: run the server and manage its database.

mod analyze;
mod config;
mod data;
mod remote;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use confab_core::Scopes;
use confab_server::{AppState, serve};
use confab_store::Store;

use config::{Config, LogFormat};

/// The Rust heap: mimalloc (why, and how it was chosen: the workspace Cargo.toml).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// confab: a self-hosted conversation-history server.
///
/// Stores the conversations of chatbots, agents, characters and support assistants and serves
/// them through confab's own API and the perform.chat, Convai, Converra and Sensay dialects.
/// SQLite is embedded (the default); PostgreSQL is used when the URL says so.
///
/// Settings come from flags, then CONFAB_* environment variables, then the TOML file given by
/// --config, then built-in defaults.
#[derive(Parser, Debug)]
#[command(
    name = "confab",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// Database URL: sqlite://PATH (created if missing) or postgres://USER@HOST/DB (the database
    /// must exist). Every command migrates it first.
    #[arg(long, global = true, env = "CONFAB_DATABASE_URL", value_name = "URL")]
    database: Option<String>,

    /// Database connections: SQLite's pool of readers beside its one writer, or the size of
    /// the PostgreSQL pool (every request holds one while it runs; searches have half as many
    /// again of their own, and page reads as many again). Default 8.
    #[arg(long, global = true, env = "CONFAB_POOL_SIZE", value_name = "N")]
    pool_size: Option<u32>,

    /// TOML file with settings (keys: database_url, addr, max_body_bytes, request_timeout_secs,
    /// key_pepper, log_format, pool_size).
    #[arg(long, global = true, env = "CONFAB_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    /// Log format on stderr: text or json. Filter with RUST_LOG (default: info).
    #[arg(long, global = true, env = "CONFAB_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server until SIGTERM or Ctrl-C (in-flight requests finish first).
    Serve(ServeArgs),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Compute insights now, in this process: conversations without insights, or --all, or
    /// --since DATE. Shows a progress bar on stderr when it is a terminal.
    Analyze(analyze::AnalyzeArgs),
    /// Search a tenant's messages; prints one JSON hit per line.
    Search(data::SearchArgs),
    /// Export a tenant's conversations (progress bar on stderr).
    Export(data::ExportArgs),
    /// Import confab NDJSON into a tenant; safe to repeat (progress bar on stderr).
    Import(data::ImportArgs),
    /// Write a consistent snapshot of the whole database to a new file, even while serving.
    Backup(data::FileArg),
    /// Restore a backup into a new or empty database (the server must be stopped).
    Restore(data::FileArg),
    /// Print a tenant's summary (totals, recent activity, breakdowns) as JSON.
    Stats(data::StatsArgs),
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CONFAB_ADDR", value_name = "HOST:PORT")]
    addr: Option<std::net::SocketAddr>,
    /// Largest request body in bytes (default 4 MiB); larger ones get 413.
    #[arg(long, env = "CONFAB_MAX_BODY_BYTES", value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// Longest a request may run, in seconds (default 30).
    #[arg(long, env = "CONFAB_REQUEST_TIMEOUT_SECS", value_name = "SECS")]
    request_timeout_secs: Option<u64>,
    /// Let webhooks reach loopback, private and link-local addresses (refused by default).
    #[arg(long, env = "CONFAB_WEBHOOKS_ALLOW_INTERNAL")]
    webhooks_allow_internal: bool,
    /// Do not deliver webhooks from this process (another process sharing the database does).
    #[arg(long, env = "CONFAB_NO_WEBHOOK_WORKER")]
    no_webhook_worker: bool,
    /// Per-API-key rate limit in requests per second (token bucket; unlimited when unset).
    #[arg(long, env = "CONFAB_RATE_LIMIT_PER_SECOND", value_name = "N")]
    rate_limit_per_second: Option<f64>,
    /// Burst size of the per-key rate limit (default: one second's worth, at least 1).
    #[arg(long, env = "CONFAB_RATE_LIMIT_BURST", value_name = "N")]
    rate_limit_burst: Option<u32>,
    /// PostgreSQL: how many searches that run longer than 50 ms (with filters, or newest first)
    /// may run at once; the others wait for a turn. Default: half this machine's cores, at
    /// least 1. With PostgreSQL on a machine of its own, about half of that machine's cores.
    #[arg(long, env = "CONFAB_LONG_SEARCHES", value_name = "N")]
    long_searches: Option<usize>,
    /// Requests handled at once; more are refused with 503 (default 1024).
    #[arg(long, env = "CONFAB_MAX_CONCURRENT_REQUESTS", value_name = "N")]
    max_concurrent_requests: Option<usize>,
    /// Insights workers in this process (0: leave the queue to other processes).
    #[arg(long, env = "CONFAB_INSIGHTS_WORKERS", default_value_t = 1)]
    insights_workers: usize,
    /// Key of the dashboard's CSRF tokens; set the same value on every process serving one
    /// site (default: random per process, so open forms need a reload after a restart).
    #[arg(
        long,
        env = "CONFAB_DASHBOARD_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    dashboard_secret: Option<String>,
    /// Mark the dashboard's session cookie `Secure` (true) or never (false); by default it is
    /// when the request came over TLS (`X-Forwarded-Proto: https` from the proxy in front).
    #[arg(long, env = "CONFAB_SECURE_COOKIE", value_name = "BOOL")]
    secure_cookie: Option<bool>,
    #[command(flatten)]
    llm: analyze::LlmArgs,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create an API key (and its tenant, on first use). Prints one JSON object on stdout:
    /// {"tenant","key_id","key_secret","token","scopes"}. The secret is shown only here.
    Create {
        /// Tenant (account) name.
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes: read, write, admin (default: read,write).
        #[arg(long, value_name = "LIST")]
        scopes: Option<String>,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never their secrets), one JSON object per line.
    List,
    /// Revoke a key by its key_id; requests with it get 401 from then on.
    Revoke {
        /// The key's public id (ck_…).
        key_id: String,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colour codes only for a person at a terminal: a log file or journald gets plain text
    // (and each request's span fields are formatted without them).
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

async fn open(cfg: &Config) -> Result<Store> {
    Store::open(&cfg.database_url, cfg.store_options())
        .await
        .with_context(|| {
            format!(
                "opening the database {}",
                confab_store::redact_url(&cfg.database_url)
            )
        })
}

/// Opens the store, runs `f`, and closes the store whatever `f` answered.
async fn with_store(cfg: &Config, f: impl AsyncFnOnce(&Store) -> Result<()>) -> Result<()> {
    let store = open(cfg).await?;
    let out = f(&store).await;
    store.close().await;
    out
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn run(cli: Cli) -> Result<()> {
    let file = config::FileConfig::load(cli.config.as_deref())?;
    let mut cfg = Config::resolve(cli.database, cli.log_format, &file)?;
    cfg.apply_pool_size(cli.pool_size, &file)?;
    init_logs(cfg.log_format);
    match cli.command {
        Command::Serve(a) => {
            cfg.serving = true;
            cfg.apply_serve(a.addr, a.max_body_bytes, a.request_timeout_secs, &file)?;
            cfg.server.webhooks.allow_internal |= a.webhooks_allow_internal;
            cfg.server.webhooks.worker &= !a.no_webhook_worker;
            if let Some(secret) = a.dashboard_secret {
                anyhow::ensure!(
                    secret.len() >= 32,
                    "--dashboard-secret must be at least 32 characters"
                );
                cfg.server.dashboard.csrf_secret = Some(secret.into_bytes());
            }
            cfg.server.dashboard.secure_cookie = a.secure_cookie;
            if let Some(n) = a.long_searches {
                anyhow::ensure!(n >= 1, "--long-searches must be at least 1");
                cfg.long_searches = Some(n);
            }
            if let Some(n) = a.max_concurrent_requests {
                anyhow::ensure!(n >= 1, "--max-concurrent-requests must be at least 1");
                cfg.server.max_concurrent_requests = n;
            }
            if let Some(rate) = a.rate_limit_per_second {
                anyhow::ensure!(
                    rate > 0.0 && rate.is_finite(),
                    "--rate-limit-per-second must be positive"
                );
                let burst = a.rate_limit_burst.unwrap_or(rate.ceil() as u32).max(1);
                cfg.server.rate_limit = Some(confab_server::ratelimit::RateLimit {
                    per_second: rate,
                    burst,
                });
            }
            cfg.server.insights.workers = a.insights_workers;
            a.llm.apply(&mut cfg.server.insights)?;
            let store = open(&cfg).await?;
            let listener = tokio::net::TcpListener::bind(cfg.addr)
                .await
                .with_context(|| format!("binding {}", cfg.addr))?;
            tracing::info!(addr = %listener.local_addr()?, database = %store.backend_name(), "confab listening");
            serve(
                listener,
                AppState::new(store, cfg.server.clone()),
                shutdown_signal(),
            )
            .await?;
        }
        Command::Keys(k) => {
            let store = open(&cfg).await?;
            let out = keys(&store, k).await;
            store.close().await;
            out?;
        }
        Command::Migrate => {
            let store = open(&cfg).await?;
            store.close().await;
            eprintln!(
                "database {} is up to date",
                confab_store::redact_url(&cfg.database_url)
            );
        }
        Command::Openapi => print!("{}", confab_server::openapi_json()),
        Command::Analyze(a) => {
            let store = open(&cfg).await?;
            let out = analyze::run(&store, cfg.server.insights.clone(), a).await;
            store.close().await;
            out?;
        }
        Command::Restore(a) => data::restore(&cfg.database_url, cfg.store_options(), a).await?,
        Command::Search(a) => match a.remote() {
            Some(r) => data::search_remote(r, a).await?,
            None => with_store(&cfg, async |s| data::search(s, a).await).await?,
        },
        Command::Export(a) => match a.remote() {
            Some(r) => data::export_remote(r, a).await?,
            None => with_store(&cfg, async |s| data::export(s, a).await).await?,
        },
        Command::Import(a) => with_store(&cfg, async |s| data::import(s, a).await).await?,
        Command::Backup(a) => with_store(&cfg, async |s| data::backup(s, a).await).await?,
        Command::Stats(a) => match a.remote() {
            Some(r) => data::stats_remote(r).await?,
            None => with_store(&cfg, async |s| data::stats(s, a).await).await?,
        },
    }
    Ok(())
}

async fn keys(store: &Store, cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Create {
            tenant,
            scopes,
            name,
        } => {
            let scopes = match scopes {
                Some(s) => Scopes::parse(&s).map_err(|e| anyhow::anyhow!("--scopes: {e}"))?,
                None => Scopes::DEFAULT,
            };
            let k = store.create_key(&tenant, scopes, name).await?;
            println!("{}", serde_json::to_string(&k)?);
        }
        KeysCommand::List => {
            for k in store.list_keys().await? {
                println!("{}", serde_json::to_string(&k)?);
            }
        }
        KeysCommand::Revoke { key_id } => match store.revoke_key(&key_id).await {
            Ok(()) => eprintln!("revoked {key_id}"),
            Err(confab_store::StoreError::NotFound) => anyhow::bail!("no key with id {key_id}"),
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    confab_store::tune_allocator();
    // Every HTTP client (webhooks, the LLM analyzer, --server) needs rustls' provider first.
    confab_server::tls::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("confab: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confab: {e:#}");
            ExitCode::FAILURE
        }
    }
}
