//! `confab-bench search`: the store's own search, timed call by call without HTTP, on a store
//! kept with `--keep-dir`. On a shared machine a throughput figure under load moves by a fifth
//! from one run to the next; the fastest decile of thousands of single calls moves by a few
//! per cent, which is what telling two builds apart by 10 % needs.

use std::time::{Duration, Instant};

use confab_store::{SearchFilter, SearchRequest, SearchSort, Store, StoreOptions};

/// Times `iterations` ranked searches of each query in turn, `rounds` times over, and prints
/// each round's p10 and median per query.
pub async fn search(
    database: &str,
    queries: &[String],
    iterations: usize,
    rounds: usize,
) -> anyhow::Result<()> {
    let opts = StoreOptions {
        // Probing must not start rewriting the index under the figures.
        search_merge_idle: None,
        ..StoreOptions::default()
    };
    let store = Store::open(database, opts).await?;
    let tenant = store
        .find_tenant("bench")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant `bench` in {database}: not a benchmark store"))?;
    let requests = queries
        .iter()
        .map(|q| {
            Ok(SearchRequest {
                query: confab_core::search::parse_query(q)?,
                filter: SearchFilter::default(),
                sort: SearchSort::Relevance,
                limit: 20,
                cursor: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for round in 1..=rounds {
        for (q, req) in queries.iter().zip(&requests) {
            let mut times = Vec::with_capacity(iterations);
            for i in 0..iterations + iterations / 10 {
                let t = Instant::now();
                let page = store.search(&tenant, req).await?;
                // The first tenth warms caches and is not counted.
                if i >= iterations / 10 {
                    times.push(t.elapsed());
                }
                std::hint::black_box(page);
            }
            times.sort();
            let at = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            println!(
                "round {round} {q:>12}: p10 {:>7.1} µs, p50 {:>7.1} µs",
                us(at(10)),
                us(at(50))
            );
        }
    }
    Ok(())
}
