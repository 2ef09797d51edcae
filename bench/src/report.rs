//! One row per scenario (medians over runs), the printed table and the JSON document.

use serde::Serialize;

use crate::load::Run;
use crate::stats::median;

/// A scenario's figures: each one the median over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario.
    pub name: String,
    /// Requests in flight.
    pub concurrency: usize,
    /// Runs measured.
    pub runs: usize,
    /// Successful requests in the median run.
    pub requests_per_run: f64,
    /// Failed requests over all runs (should be 0).
    pub errors: usize,
    /// Throughput unit.
    pub unit: String,
    /// Median throughput.
    pub throughput: f64,
    /// Median of the runs' p50 latency, ms.
    pub p50_ms: f64,
    /// Median of the runs' p99 latency, ms.
    pub p99_ms: f64,
    /// Highest server RSS seen during any run, MiB (includes the database pages SQLite maps).
    pub peak_rss_mib: f64,
    /// Highest anonymous (private heap) server RSS seen during any run, MiB.
    pub peak_anon_mib: f64,
    /// Largest RSS growth from a run's start to its peak, MiB (export only). The largest, not
    /// the median: the first run is the one that finds nothing in place (a mapped page read
    /// once stays in the RSS), and a median of three would hide it.
    pub rss_growth_mib: Option<f64>,
    /// Median throughput over the median of the storage ceiling that applies, for write
    /// paths: the batched appends' for appends, the bulk one's for the others.
    pub ceiling_ratio: Option<f64>,
    /// For appends, median throughput over the bulk ceiling's median as well (whole
    /// conversations a transaction: a write an append cannot be).
    pub bulk_ceiling_ratio: Option<f64>,
    /// Median throughput over the HTTP floor's median (`GET /healthz`), for read paths.
    pub floor_ratio: Option<f64>,
    /// That floor, req/s: the median of the floor's runs made beside the row's own.
    pub floor_req_per_s: Option<f64>,
    /// The issue's target.
    pub target: String,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The reference a row's throughput is divided by, when one applies.
#[derive(Debug, Clone, Copy)]
pub enum Reference {
    /// The bulk storage ceiling's median messages/s.
    Ceiling(f64),
    /// The storage ceiling for appends (`appends`), and the bulk one (`bulk`), messages/s.
    AppendCeiling { appends: f64, bulk: f64 },
    /// The HTTP floor's median requests/s.
    Floor(f64),
}

/// Summarises runs against `reference`, when one applies.
pub fn row(
    name: &str,
    concurrency: usize,
    unit: &str,
    target: &str,
    runs: &[Run],
    reference: Option<Reference>,
    rss_growth: bool,
) -> Row {
    let ratio = |r: Option<f64>, throughput: f64| r.filter(|c| *c > 0.0).map(|c| throughput / c);
    let (ceiling, bulk, floor) = match reference {
        Some(Reference::Ceiling(c)) => (Some(c), None, None),
        Some(Reference::AppendCeiling { appends, bulk }) => (Some(appends), Some(bulk), None),
        Some(Reference::Floor(f)) => (None, None, Some(f)),
        None => (None, None, None),
    };
    let of =
        |f: &dyn Fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0);
    let throughput = of(&|r| r.throughput());
    Row {
        name: name.to_owned(),
        concurrency,
        runs: runs.len(),
        requests_per_run: of(&|r| r.ok as f64),
        errors: runs.iter().map(|r| r.errors).sum(),
        unit: unit.to_owned(),
        throughput,
        p50_ms: of(&|r| r.pct_ms(50.0)),
        p99_ms: of(&|r| r.pct_ms(99.0)),
        peak_rss_mib: mib(runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0)),
        peak_anon_mib: mib(runs.iter().map(|r| r.peak_anon_kib).max().unwrap_or(0)),
        rss_growth_mib: rss_growth.then(|| {
            mib(runs
                .iter()
                .map(|r| r.peak_rss_kib.saturating_sub(r.start_rss_kib))
                .max()
                .unwrap_or(0))
        }),
        ceiling_ratio: ratio(ceiling, throughput),
        bulk_ceiling_ratio: ratio(bulk, throughput),
        floor_ratio: ratio(floor, throughput),
        floor_req_per_s: floor,
        target: target.to_owned(),
    }
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table, in Markdown (it pastes into docs/performance.md as is).
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | conns | req/run | throughput | p50 ms | p99 ms | × ceiling | × floor | peak RSS MiB (anon) | errors | target |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let ratio = |r: Option<f64>| r.map(|c| format!("{c:.2}")).unwrap_or_else(|| "—".into());
    for r in rows {
        let ceiling = match r.bulk_ceiling_ratio {
            Some(b) => format!("{} (bulk {b:.2})", ratio(r.ceiling_ratio)),
            None => ratio(r.ceiling_ratio),
        };
        let growth = r
            .rss_growth_mib
            .map(|g| format!(" (+{g:.1})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} {} | {:.2} | {:.2} | {} | {} | {:.0} ({:.0}){growth} | {} | {} |\n",
            r.name,
            r.concurrency,
            r.requests_per_run,
            thousands(r.throughput),
            r.unit,
            r.p50_ms,
            r.p99_ms,
            ceiling,
            ratio(r.floor_ratio),
            r.peak_rss_mib,
            r.peak_anon_mib,
            r.errors,
            r.target,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(units: u64, secs: u64) -> Run {
        Run {
            ok: units as usize,
            errors: 0,
            units,
            elapsed: std::time::Duration::from_secs(secs),
            latencies: vec![std::time::Duration::from_millis(1)],
            peak_rss_kib: 0,
            start_rss_kib: 0,
            peak_anon_kib: 0,
        }
    }

    #[test]
    fn each_row_is_divided_by_its_own_reference_only() {
        let runs = [run(300, 1), run(100, 1), run(200, 1)];
        let read = row(
            "r",
            64,
            "req/s",
            "",
            &runs,
            Some(Reference::Floor(400.0)),
            false,
        );
        assert_eq!(
            (read.throughput, read.floor_ratio, read.ceiling_ratio),
            (200.0, Some(0.5), None)
        );
        let write = row(
            "w",
            64,
            "msg/s",
            "",
            &runs,
            Some(Reference::Ceiling(100.0)),
            false,
        );
        assert_eq!(
            (
                write.ceiling_ratio,
                write.bulk_ceiling_ratio,
                write.floor_ratio
            ),
            (Some(2.0), None, None)
        );
        let append = row(
            "a",
            64,
            "msg/s",
            "",
            &runs,
            Some(Reference::AppendCeiling {
                appends: 400.0,
                bulk: 1000.0,
            }),
            false,
        );
        assert_eq!(
            (
                append.ceiling_ratio,
                append.bulk_ceiling_ratio,
                append.floor_ratio
            ),
            (Some(0.5), Some(0.2), None)
        );
        assert!(table(&[append]).contains("| 0.50 (bulk 0.20) |"));
        // A reference that measured nothing gives no ratio rather than infinity.
        let none = row(
            "n",
            64,
            "req/s",
            "",
            &runs,
            Some(Reference::Floor(0.0)),
            false,
        );
        assert_eq!(none.floor_ratio, None);
        let t = table(&[read, write]);
        assert!(t.contains("| — | 0.50 |"), "{t}");
        assert!(t.contains("| 2.00 | — |"), "{t}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
