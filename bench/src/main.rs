//! confab's benchmark: generates a seeded dataset, loads it into the real server (in this
//! process, on a fresh SQLite file, or on new PostgreSQL databases when
//! `CONFAB_BENCH_POSTGRES_URL` names a server) over HTTP, drives every hot path from its own
//! load generator, measures a storage ceiling side by side, prints one table and writes JSON.
//!
//!     cargo run --release -p confab-bench -- all
//!     cargo run --release -p confab-bench -- all --conversations 500 --messages-per-conversation 40

mod ceiling;
mod dataset;
mod harness;
mod http;
mod insights;
mod load;
mod probe;
mod report;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;

use dataset::{Dataset, Spec};
use harness::Server;
use load::Run;
use report::{Reference, Row};
use scenarios::{Compare, Ctx, Scenario};

/// The heap `confab` runs on (crates/cli/src/main.rs), so that the server this binary starts as
/// its child, and the ceilings it measures in this process, allocate as `confab serve` does.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "confab's benchmark")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every scenario, the storage ceiling, one table and a JSON file.
    All(Args),
    /// Only the storage ceilings (no HTTP): a quick check while working on the write path.
    Ceiling(CeilingArgs),
    /// Writes the dataset as NDJSON (the import format) to standard output.
    Dataset(Args),
    /// Prints the vocabulary's COUNT commonest words, one a line, commonest first: by default
    /// the words the "different words in turn" row searches, for driving `load` by hand
    /// (bench/scripts/load_args.py).
    Words {
        #[arg(long, default_value_t = scenarios::COLD_WORDS)]
        count: usize,
    },
    /// The server process the benchmark starts (not for direct use): serves DATABASE on an
    /// ephemeral port, prints the address, stops when standard input closes.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        database: String,
    },
    /// Times SQL statements (one per line on standard input) on a SQLite file, each run five
    /// times, printing the row count and the median time: for studying query plans on a store
    /// kept with --keep-dir, with the same SQLite build as the server.
    #[command(hide = true)]
    Sql {
        #[arg(long)]
        database: String,
        /// Open the file for writing (maintenance statements such as an FTS5 'merge'); each
        /// statement then runs once.
        #[arg(long)]
        write: bool,
    },
    /// Times the store's own ranked search, one call at a time without HTTP, on a store kept
    /// with --keep-dir: the fastest decile and the median of each query, round after round,
    /// for telling two builds apart on a noisy machine.
    #[command(hide = true)]
    Search {
        /// The store's URL (sqlite:///…/confab.db).
        #[arg(long)]
        database: String,
        /// A query; repeat for several, timed in turn.
        #[arg(long, required = true)]
        q: Vec<String>,
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Drives a server that is already running (one started by hand on a store kept with
    /// --keep-dir) with GETs of PATH (POSTs of BODY, if given), in turn, at a fixed
    /// concurrency, and prints throughput and latency: for profiling one route with perf while
    /// it is under load.
    #[command(hide = true)]
    Load {
        /// host:port of the server.
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// An API key (sent as Bearer).
        #[arg(long)]
        key: String,
        /// A path to request (GET, or POST with --body); repeat for several, sent in turn.
        #[arg(long, required = true)]
        path: Vec<String>,
        /// POST this JSON instead of a GET (an append, say); repeat for several: request i
        /// sends body i to path i, each list taken in turn.
        #[arg(long)]
        body: Vec<String>,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Stop after this many requests (a burst: `--requests 64 --concurrency 64`).
        #[arg(long)]
        requests: Option<usize>,
        /// The server's process id, for its RSS (0: none).
        #[arg(long, default_value_t = 0)]
        pid: u32,
        /// Send the key as `X-ORGANIZATION-SECRET` too, the Sensay routes' credential.
        #[arg(long)]
        sensay: bool,
        /// Send at most this many requests a second, evenly spaced (a steady trickle beside
        /// another load); the latencies printed then include each request's wait for its turn.
        #[arg(long)]
        rate: Option<f64>,
    },
}

#[derive(clap::Args, Debug, Clone)]
struct CeilingArgs {
    #[command(flatten)]
    args: Args,
    /// Also measure the appends' ceiling and the store's own append path on this store (a URL
    /// such as sqlite:///tmp/s.db), which must hold this dataset under the tenant `bench`
    /// (`confab-bench dataset > ds.ndjson; confab --database URL import --tenant bench
    /// ds.ndjson`) and which no server may be using: where `all` measures them, on the
    /// server's store.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
struct Args {
    /// Conversations in the dataset.
    #[arg(long, default_value_t = 10_000)]
    conversations: usize,
    /// Average messages per conversation (each has 50–150 % of it).
    #[arg(long, default_value_t = 100)]
    messages_per_conversation: usize,
    /// Runs per scenario; the table shows medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Connections (requests in flight) for the concurrent scenarios.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per run of a request/response scenario (most runs end on the time budget
    /// first; the count only bounds the fastest).
    #[arg(long, default_value_t = 50_000)]
    requests: usize,
    /// Time budget of one run, in seconds (a run stops early when it is spent). Runs of a fast
    /// path need to be long enough that one scheduling hiccup on a shared machine does not
    /// decide the figure: at 5,000 requests a `get conversation` run lasted 50 ms.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Messages per run written by the ceiling and by the import scenario.
    #[arg(long, default_value_t = 50_000)]
    ceiling_messages: usize,
    /// Dataset seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Only the scenarios whose name contains this (the ceiling always runs).
    #[arg(long)]
    only: Option<String>,
    /// Keep the databases in this directory (created if missing) instead of a temporary one
    /// that is removed at the end: for profiling a loaded store afterwards.
    #[arg(long, value_name = "DIR")]
    keep_dir: Option<PathBuf>,
    /// Where the JSON goes.
    #[arg(long, default_value = "bench/results/latest.json")]
    out: PathBuf,
}

impl Args {
    /// The dataset these arguments name. Its timestamps end at tomorrow's midnight (UTC), so
    /// the last week's analytics hold the newest conversations, and a day's runs (`all`,
    /// `dataset` for an import by hand, `ceiling --store` on that import) draw the same
    /// conversations with the same ids.
    fn spec(&self) -> Spec {
        let today = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
        Spec {
            seed: self.seed,
            conversations: self.conversations,
            messages_per_conversation: self.messages_per_conversation,
            anchor: today + time::Duration::days(1),
        }
    }

    /// What the storage ceilings measure: as many runs as every scenario, appends a run as
    /// requests a run, the scenarios' concurrency and time budget.
    fn ceiling_plan(&self) -> ceiling::Plan {
        ceiling::Plan {
            runs: self.runs,
            appends: self.requests,
            concurrency: self.concurrency,
            budget: Duration::from_secs(self.seconds),
        }
    }
}

/// Conversations per import request (the server commits 200 per transaction).
const IMPORT_CHUNK: usize = 200;

fn ndjson(dataset: &Dataset, range: std::ops::Range<usize>) -> (Vec<u8>, u64) {
    let messages = range
        .clone()
        .map(|i| dataset.conversation(i).messages.len() as u64)
        .sum();
    (dataset.ndjson(range), messages)
}

/// Where the databases go: `--keep-dir` (kept), or a temporary directory removed on drop.
enum WorkDir<'a> {
    Kept(&'a std::path::Path),
    Temp(tempfile::TempDir),
}

impl<'a> WorkDir<'a> {
    fn new(keep: Option<&'a std::path::Path>) -> anyhow::Result<WorkDir<'a>> {
        Ok(match keep {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                WorkDir::Kept(d)
            }
            None => WorkDir::Temp(tempfile::tempdir().context("temporary directory")?),
        })
    }

    fn path(&self) -> &std::path::Path {
        match self {
            WorkDir::Kept(d) => d,
            WorkDir::Temp(t) => t.path(),
        }
    }
}

async fn measure(pid: u32, s: &Scenario, runs: usize, budget: Duration) -> Vec<Run> {
    let mut out = Vec::new();
    for k in 0..runs {
        out.push(measure_one(pid, s, k, budget).await);
    }
    out
}

/// Run `k` of `s`, logged.
async fn measure_one(pid: u32, s: &Scenario, k: usize, budget: Duration) -> Run {
    let r = load::run(pid, s.concurrency, s.requests, budget, s.op.clone()).await;
    eprintln!(
        "  {} run {}: {:.0} {} p50 {:.2} ms p99 {:.2} ms errors {}",
        s.name,
        k + 1,
        r.throughput(),
        s.unit,
        r.pct_ms(50.0),
        r.pct_ms(99.0),
        r.errors
    );
    r
}

/// The runs of `s`, each after a run of the HTTP floor `floor`, and the median of those floor
/// runs: the reference of the same minutes as the row's own runs. The reads take minutes, and
/// a shared machine's speed moves within them (a floor measured once before them all was 0.10
/// of the 1,024 words' rate where loads of those minutes gave 0.13–0.14, docs/performance.md
/// 2026-12-03).
async fn measure_beside_floor(
    pid: u32,
    s: &Scenario,
    floor: &Scenario,
    runs: usize,
    budget: Duration,
) -> (Vec<Run>, f64) {
    let (mut out, mut floors) = (Vec::new(), Vec::new());
    for k in 0..runs {
        floors.push(measure_one(pid, floor, k, budget).await.throughput());
        out.push(measure_one(pid, s, k, budget).await);
    }
    (out, stats::median(&floors).unwrap_or(0.0))
}

/// A scenario's row, its throughput divided by the reference that applies to it: a storage
/// ceiling (messages/s) for writes, `floor` (requests/s) for reads.
fn summarise(s: &Scenario, runs: &[Run], ceilings: ceiling::Medians, floor: f64) -> Row {
    let reference = match s.compare {
        Compare::Nothing => None,
        Compare::Ceiling => Some(Reference::Ceiling(ceilings.bulk)),
        Compare::AppendCeiling => Some(Reference::AppendCeiling {
            appends: ceilings.appends,
            bulk: ceilings.bulk,
        }),
        Compare::Floor => Some(Reference::Floor(floor)),
    };
    report::row(
        &s.name,
        s.concurrency,
        s.unit,
        s.target,
        runs,
        reference,
        s.rss_growth,
    )
}

async fn ceiling_only(c: CeilingArgs) -> anyhow::Result<()> {
    let a = c.args;
    let dataset = Dataset::new(a.spec());
    let work = WorkDir::new(a.keep_dir.as_deref())?;
    let dir = work.path();
    let m = a.messages_per_conversation.max(1);
    let convs = a.ceiling_messages.div_ceil(m).max(1);
    let plan = a.ceiling_plan();
    let mut measured = ceiling::Measured::default();
    measured.fresh(dir, plan, &dataset, 0..convs).await?;
    if let Some(url) = &c.store {
        // The ids in the order the append scenarios take them (Ctx::ids).
        let ids = (0..a.conversations)
            .map(|i| dataset.conversation(i).conversation.id)
            .collect();
        measured
            .on_store(url, Arc::new(ids), plan, &dataset)
            .await?;
    }
    let c = measured.medians();
    println!(
        "ceiling {:.0} msg/s; for appends on a fresh store {:.0}/s ({:.2} x the bulk one)",
        c.bulk,
        c.fresh_appends,
        c.fresh_appends / c.bulk.max(1.0)
    );
    if c.appends > 0.0 {
        println!(
            "on the given store: for appends {:.0}/s ({:.2} x the fresh store's); store append {:.0}/s = {:.2} x the appends' ceiling there",
            c.appends,
            c.appends / c.fresh_appends.max(1.0),
            c.direct,
            c.direct / c.appends
        );
    }
    Ok(())
}

/// Waits until a server that has just taken the bulk load has done what it does once idle:
/// on SQLite, merged its search index and stored the windows of the common words
/// (docs/operations.md, "Background work on SQLite"); on PostgreSQL, built the search postings
/// of every segment and laid them out word by word (postgres/layout.rs). The reads are
/// measured on the store as a server holds it for most of its life, not while that work still
/// runs beside them.
async fn settle(server: &Server) -> anyhow::Result<()> {
    let started = Instant::now();
    let metric = if harness::backend() == "sqlite" {
        "confab_store_search_tail_builds_total "
    } else {
        "confab_store_search_postings_settled "
    };
    let built = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(metric))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .is_some_and(|n| n >= 1.0)
    };
    while !built(&String::from_utf8_lossy(&server.get("/metrics", "").await?)) {
        if started.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("the server had not settled its search index 300 s after the load");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "the server settled its search index (built, merged, stored or laid out) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn all(a: Args) -> anyhow::Result<()> {
    let budget = Duration::from_secs(a.seconds);
    let dataset = Arc::new(Dataset::new(a.spec()));
    let terms = dataset::search_terms();
    let work = WorkDir::new(a.keep_dir.as_deref())?;
    let dir = work.path();
    let server = Server::start(dir).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle_rss = server.status_kib("VmRSS");

    eprintln!(
        "loading {} conversations through POST /v1/import …",
        a.conversations
    );
    let api = server.api();
    let started = Instant::now();
    let n = dataset.spec().conversations;
    let mut ids = Vec::with_capacity(n);
    let mut loaded = 0u64;
    for start in (0..n).step_by(IMPORT_CHUNK) {
        let end = (start + IMPORT_CHUNK).min(n);
        ids.extend((start..end).map(|i| dataset.conversation(i).conversation.id));
        let (body, n) = ndjson(&dataset, start..end);
        api.post("/v1/import", "application/x-ndjson", &body)
            .await
            .with_context(|| format!("importing conversations {start}..{end}"))?;
        loaded += n;
    }
    let load_secs = started.elapsed().as_secs_f64();
    eprintln!("loaded {loaded} messages in {load_secs:.1} s (generation included)");
    settle(&server).await?;
    let summary: serde_json::Value =
        serde_json::from_slice(&server.get("/v1/analytics/summary", "").await?)?;
    let total_messages = summary["messages"].as_u64().unwrap_or(loaded);

    let ctx = Ctx {
        ids: Arc::new(ids),
        total_messages,
        dataset: dataset.clone(),
        concurrency: a.concurrency,
        requests: a.requests,
    };
    let selected = |name: &str| a.only.as_deref().is_none_or(|o| name.contains(o));
    let mut reads = Vec::new();
    let chosen: Vec<_> = ctx
        .reads(&server, &terms)
        .into_iter()
        .filter(|s| selected(&s.name))
        .collect();
    // Pairs of loads run at once (scenarios.rs): searches beside appends, gets beside long
    // searches.
    let pairs: Vec<_> = [
        ctx.beside(&server, &terms.2),
        ctx.beside_long(&server, &terms.2),
    ]
    .into_iter()
    .filter(|(s, _)| selected(&s.name))
    .collect();
    // The reads' reference: its own row, measured just before them whenever one of them
    // runs, and again before each run of each read, whose ratio divides by those runs.
    let mut floor = 0.0;
    let floor_scenario = ctx.floor(&server);
    if !chosen.is_empty() || !pairs.is_empty() {
        let runs = measure(server.pid(), &floor_scenario, a.runs, budget).await;
        floor = stats::median(&runs.iter().map(Run::throughput).collect::<Vec<_>>()).unwrap_or(0.0);
        reads.push(summarise(
            &floor_scenario,
            &runs,
            ceiling::Medians::default(),
            floor,
        ));
    }
    for s in chosen {
        if s.compare == Compare::Floor {
            let (runs, beside) =
                measure_beside_floor(server.pid(), &s, &floor_scenario, a.runs, budget).await;
            reads.push(summarise(&s, &runs, ceiling::Medians::default(), beside));
        } else {
            let runs = measure(server.pid(), &s, a.runs, budget).await;
            reads.push(summarise(&s, &runs, ceiling::Medians::default(), floor));
        }
    }
    for (s, w) in &pairs {
        let (mut first, mut second, mut floors) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..a.runs {
            let pid = server.pid();
            floors.push(
                measure_one(pid, &floor_scenario, k, budget)
                    .await
                    .throughput(),
            );
            let (sr, wr) = tokio::join!(
                load::run(pid, s.concurrency, s.requests, budget, s.op.clone()),
                load::run(pid, w.concurrency, w.requests, budget, w.op.clone()),
            );
            eprintln!(
                "  {} run {}: {:.0} req/s p50 {:.2} ms p99 {:.2} ms errors {}; beside, {:.0}/s p50 {:.2} ms errors {}",
                s.name,
                k + 1,
                sr.throughput(),
                sr.pct_ms(50.0),
                sr.pct_ms(99.0),
                sr.errors,
                wr.throughput(),
                wr.pct_ms(50.0),
                wr.errors
            );
            first.push(sr);
            second.push(wr);
        }
        let beside = stats::median(&floors).unwrap_or(0.0);
        reads.push(summarise(s, &first, ceiling::Medians::default(), beside));
        reads.push(summarise(w, &second, ceiling::Medians::default(), beside));
    }

    eprintln!("storage ceiling …");
    let m = a.messages_per_conversation.max(1);
    let ceiling_convs = a.ceiling_messages.div_ceil(m).max(1);
    let plan = a.ceiling_plan();
    let mut measured = ceiling::Measured::default();
    measured
        .fresh(dir, plan, &dataset, 0..ceiling_convs)
        .await?;

    let per_run = (a.ceiling_messages.div_ceil(IMPORT_CHUNK * m)).max(1);
    let mut import = Vec::new();
    for c in 0..a.runs * per_run {
        let start = a.conversations + c * IMPORT_CHUNK;
        let (body, n) = ndjson(&dataset, start..start + IMPORT_CHUNK);
        import.push(("/v1/import".to_owned(), body, n));
    }
    // Summarised once the ceiling for appends has been measured on the server's store, after
    // the server stops.
    let mut writes = Vec::new();
    for s in ctx.writes(&server, import, per_run) {
        if !a.only.as_deref().is_none_or(|o| s.name.contains(o)) {
            continue;
        }
        let runs = measure(server.pid(), &s, a.runs, budget).await;
        writes.push((s, runs));
    }
    // Last, as it writes insights: the worker's rate over completed conversations of the
    // dataset (insights.rs).
    const INSIGHTS: &str = "insights analysis rate (1 worker, built-in analyzer)";
    let mut insights_row = None;
    if a.only.as_deref().is_none_or(|o| INSIGHTS.contains(o)) {
        let mut runs = Vec::new();
        // Different conversations in each run; on a small dataset, fewer per run.
        let ids = insights::completed(&dataset, insights::PER_RUN * a.runs);
        let per = (ids.len() / a.runs.max(1)).max(1);
        for (k, ids) in ids.chunks(per).take(a.runs).enumerate() {
            let r = insights::measure(&server, a.concurrency, ids.to_vec(), budget * 20).await?;
            eprintln!(
                "  {INSIGHTS} run {}: {:.0} conversations/s ({} done, {} failed)",
                k + 1,
                r.throughput(),
                r.ok,
                r.errors
            );
            runs.push(r);
        }
        insights_row = Some(report::row(
            INSIGHTS,
            1,
            "conv/s",
            "(measured; the issue sets no target)",
            &runs,
            None,
            false,
        ));
    }
    let hwm = server.status_kib("VmHWM");
    let url = server.url().to_owned();
    server.stop().await?;

    eprintln!("storage ceiling for appends, on the server's store …");
    measured
        .on_store(&url, ctx.ids.clone(), plan, &dataset)
        .await?;
    let ceilings = measured.medians();
    let mut rows: Vec<Row> = writes
        .iter()
        .map(|(s, runs)| summarise(s, runs, ceilings, floor))
        .collect();
    rows.extend(insights_row);
    rows.push(report::row(
        &format!(
            "storage ceiling: {} msg per transaction (whole conversations), no HTTP",
            ceiling::BATCH_MESSAGES
        ),
        1,
        "msg/s",
        "(reference)",
        &measured.bulk,
        Some(Reference::Ceiling(ceilings.bulk)),
        false,
    ));
    let append_reference = Some(Reference::AppendCeiling {
        appends: ceilings.appends,
        bulk: ceilings.bulk,
    });
    rows.push(report::row(
        &format!(
            "storage ceiling for appends: {} one-message appends per transaction, no HTTP, on the server's store",
            ceiling::BATCH_MESSAGES
        ),
        1,
        "msg/s",
        "(reference)",
        &measured.appends,
        append_reference,
        false,
    ));
    rows.push(report::row(
        &format!(
            "the same appends on the bulk ceiling's fresh store ({ceiling_convs} conversations)"
        ),
        1,
        "msg/s",
        "(reference)",
        &measured.fresh_appends,
        append_reference,
        false,
    ));
    rows.push(report::row(
        "store append_messages, no HTTP (group commit), on the server's store",
        a.concurrency,
        "msg/s",
        "(reference)",
        &measured.direct,
        append_reference,
        false,
    ));
    rows.extend(reads);

    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let size = format!(
        "{} conversations / {} messages (seed {})",
        a.conversations, total_messages, a.seed
    );
    println!(
        "\nconfab benchmark, {}, {size}, {build} build; medians of {} runs\n",
        harness::backend(),
        a.runs
    );
    print!("{}", report::table(&rows));
    println!(
        "\nserver process: idle RSS after start {:.1} MiB, peak (VmHWM) {:.1} MiB. The \
         no-HTTP reference rows run in the benchmark's own process; their RSS is that process's. \
         A read's × floor divides by the floor's runs made one before each of its own runs.",
        idle_rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let doc = json!({
        "backend": harness::backend(),
        "build": build,
        "dataset": {
            "conversations": a.conversations,
            "messages": total_messages,
            "messages_per_conversation": a.messages_per_conversation,
            "seed": a.seed,
            "search_terms": {"rare": terms.0, "mid": terms.1, "common": terms.2},
        },
        "runs": a.runs,
        "concurrency": a.concurrency,
        "requests_per_run": a.requests,
        "seconds_per_run": a.seconds,
        "machine": "shared 2-core machine; absolute figures drift, ratios to the ceiling (writes) and to the HTTP floor (reads) do not",
        "load_seconds": load_secs,
        "idle_rss_mib": idle_rss as f64 / 1024.0,
        "peak_rss_hwm_mib": hwm as f64 / 1024.0,
        "ceiling_msg_per_s": ceilings.bulk,
        "append_ceiling_msg_per_s": ceilings.appends,
        "fresh_append_ceiling_msg_per_s": ceilings.fresh_appends,
        "ceiling_note": "ceiling_msg_per_s writes whole conversations, about 100 messages a transaction, to a fresh store (the bulk paths' reference); append_ceiling_msg_per_s writes the appends' own one-message appends, 100 a transaction, to the conversations the append scenarios wrote to, on the server's store after it stopped (the append rows' ceiling_ratio; their bulk_ceiling_ratio divides by the bulk one); fresh_append_ceiling_msg_per_s is the same appends on the bulk runs' fresh stores, the append rows' reference before 2026-12-05d",
        "http_floor_req_per_s": floor,
        "http_floor_note": "each read row's floor_ratio divides by the median of floor runs made one before each of its own runs (its floor_req_per_s); http_floor_req_per_s is the floor row's, measured before all reads",
        "rows": rows,
    });
    if let Some(parent) = a.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&a.out, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

fn sql_probe(database: &str, write: bool) -> anyhow::Result<()> {
    let c = if write {
        rusqlite::Connection::open(database)?
    } else {
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?
    };
    c.execute_batch("PRAGMA mmap_size = 268435456; PRAGMA cache_size = -32000;")?;
    for line in std::io::stdin().lines() {
        let line = line?;
        let sql = line.trim();
        if sql.is_empty() || sql.starts_with("--") {
            continue;
        }
        let mut times = Vec::new();
        let mut n = 0;
        let runs = if write { 1 } else { 5 };
        for _ in 0..runs {
            let t = Instant::now();
            let mut st = c.prepare(sql)?;
            let cols = st.column_count();
            let mut rows = st.query([])?;
            n = 0;
            let mut first = String::new();
            // A plan is read, not timed: print it whole, once.
            let explain = sql
                .get(..7)
                .is_some_and(|w| w.eq_ignore_ascii_case("explain"));
            while let Some(r) = rows.next()? {
                if explain && times.is_empty() {
                    let cells: Vec<String> = (0..cols)
                        .map(|i| match r.get_ref(i) {
                            Ok(rusqlite::types::ValueRef::Text(t)) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            Ok(rusqlite::types::ValueRef::Integer(v)) => v.to_string(),
                            Ok(rusqlite::types::ValueRef::Null) => String::new(),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    println!("{}", cells.join("\t"));
                }
                if n == 0 {
                    first = (0..cols.min(3))
                        .map(|i| format!("{:?}", r.get_ref(i).map(|v| v.data_type())))
                        .collect::<Vec<_>>()
                        .join(",");
                    if let (1, Ok(v)) = (cols, r.get::<_, i64>(0)) {
                        first = v.to_string();
                    }
                }
                n += 1;
            }
            times.push(t.elapsed());
            if times.len() == runs {
                times.sort();
                println!(
                    "{:>9.3} ms  {n:>7} rows  first: {first}  | {sql}",
                    times[times.len() / 2].as_secs_f64() * 1e3
                );
            }
        }
        let _ = n;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The server child as `confab` runs, and the ceiling's store in this process the same way,
    // so that the ratios compare code, not allocator settings.
    confab_store::tune_allocator();
    if let Cmd::Serve { database } = &cli.cmd {
        // The server gets the runtime `confab serve` builds: multi-threaded, a worker per core.
        return tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(harness::serve_child(database));
    }
    // The load generator is one thread (like wrk's per-thread event loop): 64 connections on
    // a single-threaded runtime cost less CPU than on a work-stealing one, and the CPU it does
    // not use is the server's.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(bench(cli))
}

async fn bench(cli: Cli) -> anyhow::Result<()> {
    let out = match cli.cmd {
        Cmd::Serve { .. } => unreachable!("handled in main"),
        Cmd::Sql { database, write } => sql_probe(&database, write),
        Cmd::Search {
            database,
            q,
            iterations,
            rounds,
        } => probe::search(&database, &q, iterations, rounds).await,
        Cmd::Load {
            addr,
            key,
            path,
            body,
            concurrency,
            seconds,
            requests,
            pid,
            sensay,
            rate,
        } => {
            let mut headers = format!("Authorization: Bearer {key}\r\n");
            if sensay {
                headers.push_str(&format!("X-ORGANIZATION-SECRET: {key}\r\n"));
            }
            let api = harness::Api::external(addr, headers);
            let op = if body.is_empty() {
                scenarios::get_op(api, path)
            } else {
                let n = path.len().max(body.len());
                let bodies = (0..n).map(|i| {
                    let b = &body[i % body.len()];
                    (path[i % path.len()].clone(), b.clone().into_bytes(), 1)
                });
                scenarios::post_op(api, "application/json", bodies.collect())
            };
            let op = match rate {
                Some(rate) => load::paced(op, rate),
                None => op,
            };
            let r = load::run(
                pid,
                concurrency,
                requests.unwrap_or(usize::MAX),
                Duration::from_secs(seconds),
                op,
            )
            .await;
            println!(
                "{} ok, {} errors, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                r.ok,
                r.errors,
                r.throughput(),
                r.pct_ms(50.0),
                r.pct_ms(99.0),
                r.pct_ms(100.0)
            );
            Ok(())
        }
        Cmd::Words { count } => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for r in 0..count.min(dataset::VOCABULARY) {
                writeln!(out, "{}", dataset::word(r))?;
            }
            Ok(())
        }
        Cmd::All(a) => all(a).await,
        Cmd::Ceiling(a) => ceiling_only(a).await,
        Cmd::Dataset(a) => {
            let d = Dataset::new(a.spec());
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for start in (0..a.conversations).step_by(IMPORT_CHUNK) {
                let end = (start + IMPORT_CHUNK).min(a.conversations);
                out.write_all(&d.ndjson(start..end))?;
            }
            Ok(())
        }
    };
    // Whatever happened, leave no benchmark database behind on PostgreSQL.
    harness::drop_databases().await?;
    out
}
