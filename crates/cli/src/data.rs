//! Data commands: search, export, import, backup, restore, stats, on the local database.
//! Progress bars go to stderr and stay hidden when it is not a terminal; results go to stdout
//! (or `--out`), so the commands compose in pipes.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use confab_core::export::ExportFormat;
use confab_store::{
    ConversationFilter, Importer, SearchFilter, SearchRequest, SearchSort, Store, StoreOptions,
    TenantId,
};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncBufReadExt;

use crate::remote::{Remote, RemoteArgs};

/// `confab search`.
#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// The query: words, "phrases", prefix*, a OR b, -excluded.
    query: String,
    /// Tenant (account) name (local database).
    #[arg(long, required_unless_present = "server")]
    tenant: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Hits to show (1–100).
    #[arg(long, default_value_t = 20)]
    limit: i64,
    /// Newest first instead of best match first.
    #[arg(long)]
    recent: bool,
}

/// Output format of `confab export`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum FormatArg {
    /// One conversation with its messages per line (what `import` reads).
    Ndjson,
    /// One JSON array.
    Json,
    /// One CSV row per conversation.
    Csv,
    /// One CSV row per message.
    CsvMessages,
    /// Markdown transcripts.
    Markdown,
}

/// `confab export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Tenant (account) name (local database).
    #[arg(long, required_unless_present = "server")]
    tenant: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "ndjson")]
    format: FormatArg,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// `confab import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// confab NDJSON file (as `export` writes it).
    file: PathBuf,
    /// Tenant (account) name; created if missing.
    #[arg(long)]
    tenant: String,
}

/// `confab backup` / `confab restore`.
#[derive(clap::Args, Debug)]
pub struct FileArg {
    /// The backup file.
    file: PathBuf,
}

/// `confab stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Tenant (account) name (local database).
    #[arg(long, required_unless_present = "server")]
    tenant: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
}

impl SearchArgs {
    /// The server to ask instead of the local database, if any.
    pub fn remote(&self) -> Option<Remote> {
        Remote::from_args(&self.remote)
    }
}

impl ExportArgs {
    /// The server to ask instead of the local database, if any.
    pub fn remote(&self) -> Option<Remote> {
        Remote::from_args(&self.remote)
    }
}

impl StatsArgs {
    /// The server to ask instead of the local database, if any.
    pub fn remote(&self) -> Option<Remote> {
        Remote::from_args(&self.remote)
    }
}

fn tenant_name(t: &Option<String>) -> Result<&str> {
    t.as_deref()
        .context("--tenant is required without --server")
}

fn output(out: &Option<PathBuf>) -> Result<Box<dyn Write>> {
    Ok(match out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    })
}

/// `confab search --server`.
pub async fn search_remote(r: Remote, a: SearchArgs) -> Result<()> {
    r.search(&a.query, a.limit, a.recent).await
}

/// `confab stats --server`.
pub async fn stats_remote(r: Remote) -> Result<()> {
    r.stats().await
}

/// `confab export --server`.
pub async fn export_remote(r: Remote, a: ExportArgs) -> Result<()> {
    let q: Vec<(&str, String)> = match a.format {
        FormatArg::Ndjson => vec![("format", "ndjson".into())],
        FormatArg::Json => vec![("format", "json".into())],
        FormatArg::Csv => vec![("format", "csv".into())],
        FormatArg::CsvMessages => vec![("format", "csv".into()), ("rows", "messages".into())],
        FormatArg::Markdown => vec![("format", "markdown".into())],
    };
    let mut out = output(&a.out)?;
    r.export(&q, &mut out).await
}

async fn tenant(store: &Store, name: &str) -> Result<TenantId> {
    store
        .find_tenant(name)
        .await?
        .with_context(|| format!("no tenant named `{name}`"))
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, {{eta}} left)"
        ))
        .expect("static template"),
    );
    pb
}

fn spinner(msg: &'static str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Prints hits as JSON lines.
pub async fn search(store: &Store, a: SearchArgs) -> Result<()> {
    let t = tenant(store, tenant_name(&a.tenant)?).await?;
    let query = confab_core::search::parse_query(&a.query).map_err(|e| anyhow::anyhow!("{e}"))?;
    let limit = confab_core::page::limit(Some(a.limit), 20, 100, "--limit")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let page = store
        .search(
            &t,
            &SearchRequest {
                query,
                filter: SearchFilter::default(),
                sort: if a.recent {
                    SearchSort::Recent
                } else {
                    SearchSort::Relevance
                },
                limit,
                cursor: None,
            },
        )
        .await?;
    let mut out = std::io::stdout().lock();
    for h in page.hits {
        let v = serde_json::json!({
            "conversation_id": h.conversation_id, "message_id": h.message_id, "seq": h.seq,
            "role": h.role, "snippet": h.snippet, "score": h.score,
            "created_at": confab_core::timefmt::rfc3339(h.created_at),
        });
        writeln!(out, "{v}")?;
    }
    Ok(())
}

/// Streams an export to a file or stdout with a progress bar counting conversations.
pub async fn export(store: &Store, a: ExportArgs) -> Result<()> {
    let t = tenant(store, tenant_name(&a.tenant)?).await?;
    let format = match a.format {
        FormatArg::Ndjson => ExportFormat::Ndjson,
        FormatArg::Json => ExportFormat::Json,
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::CsvMessages => ExportFormat::CsvMessages,
        FormatArg::Markdown => ExportFormat::Markdown,
    };
    let filter = ConversationFilter::default();
    let total = store.count_conversations(&t, &filter).await?;
    let pb = bar(total as u64, "conversations");
    let mut out = output(&a.out)?;
    let mut chunks = store.export(&t, filter, format);
    // Counted from the export itself: `finish` sets the bar to its length, which was counted
    // before the export's snapshot was taken.
    let mut exported = 0;
    while let Some(c) = chunks.next().await {
        let c = c?;
        out.write_all(&c.bytes)?;
        pb.inc(c.conversations);
        exported += c.conversations;
    }
    out.flush()?;
    pb.finish_and_clear();
    eprintln!("exported {exported} conversations");
    Ok(())
}

/// Imports an NDJSON file with a progress bar over its bytes.
pub async fn import(store: &Store, a: ImportArgs) -> Result<()> {
    let t = store.ensure_tenant(&a.tenant).await?;
    let f = tokio::fs::File::open(&a.file)
        .await
        .with_context(|| format!("opening {}", a.file.display()))?;
    let size = f.metadata().await?.len();
    let pb = bar(size, "bytes");
    let mut rd = tokio::io::BufReader::new(f);
    let mut imp = Importer::new(store.clone(), t);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = rd.read_until(b'\n', &mut line).await?;
        if n == 0 {
            break;
        }
        pb.inc(n as u64);
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if let Err(e) = imp.line(text).await {
            let done = imp.committed();
            bail!(
                "{e}\n{} conversations were imported before this error; running the import again is safe",
                done.imported
            );
        }
    }
    let o = imp.finish().await?;
    pb.finish_and_clear();
    eprintln!(
        "imported {} conversations ({} messages), skipped {} already present",
        o.imported, o.messages, o.skipped
    );
    Ok(())
}

/// Writes a consistent snapshot of the open database to a new file.
pub async fn backup(store: &Store, a: FileArg) -> Result<()> {
    let pb = spinner("backing up");
    store
        .backup(&a.file)
        .await
        .with_context(|| format!("backing up to {}", a.file.display()))?;
    pb.finish_and_clear();
    eprintln!("backup written to {}", a.file.display());
    Ok(())
}

/// Restores a backup into the (new or empty) database at `url`.
pub async fn restore(url: &str, opts: StoreOptions, a: FileArg) -> Result<()> {
    let pb = spinner("restoring");
    let store = confab_store::restore(&a.file, url, opts)
        .await
        .with_context(|| format!("restoring {} into {url}", a.file.display()))?;
    store.close().await;
    pb.finish_and_clear();
    eprintln!("restored {} into {url}", a.file.display());
    Ok(())
}

/// Prints the tenant's summary as one JSON object.
pub async fn stats(store: &Store, a: StatsArgs) -> Result<()> {
    let t = tenant(store, tenant_name(&a.tenant)?).await?;
    let s = store.summary(&t, confab_core::timefmt::now()).await?;
    let by_status: serde_json::Map<String, serde_json::Value> = s
        .by_status
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), (*v).into()))
        .collect();
    let v = serde_json::json!({
        "conversations": s.conversations,
        "messages": s.messages,
        "last_24h": s.last_24h,
        "last_7d": s.last_7d,
        "avg_messages_per_conversation": (s.avg_messages_per_conversation() * 100.0).round() / 100.0,
        "by_status": by_status,
        "by_source": s.by_source.iter().map(|g| serde_json::json!({"source": g.key, "conversations": g.conversations, "messages": g.messages})).collect::<Vec<_>>(),
        "by_agent": s.by_agent.iter().map(|g| serde_json::json!({"agent_id": g.key, "conversations": g.conversations, "messages": g.messages})).collect::<Vec<_>>(),
    });
    println!("{v}");
    Ok(())
}
