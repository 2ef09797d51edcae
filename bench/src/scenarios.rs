//! The scenarios: each is a name, a concurrency, a request count and an operation that the
//! load generator calls with a request index. Request bodies are built before the clock
//! starts, so the client's CPU goes to sending, not to generating text.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use crate::dataset::{Dataset, Rng, SOURCES};
use crate::harness::{Api, Server};
use crate::load::Op;

/// Words the cold search scenario takes in turn: the most common ones, four times as many as
/// the server keeps candidate windows for.
pub const COLD_WORDS: usize = 1024;

/// Which reference measured in the same run a scenario's throughput is divided by, so that
/// figures from a slow day and a fast one can be compared (absolute rates on this shared
/// machine drift by a factor of three from one day to the next; the ratios do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// No reference applies (exports count messages of one long request; a single connection
    /// has no floor of its own).
    Nothing,
    /// Messages written per second, against the bulk storage ceiling's messages per second.
    Ceiling,
    /// Messages appended per second, against the storage ceiling for appends (and the bulk
    /// one beside it).
    AppendCeiling,
    /// Requests per second, against the HTTP floor's: the same server, load generator and
    /// connections answering `GET /healthz`, which touches no storage. What is left of the
    /// ratio is the route's own work.
    Floor,
}

/// One line of the table.
pub struct Scenario {
    /// Name in the table.
    pub name: String,
    /// Requests in flight.
    pub concurrency: usize,
    /// Requests per run (the time budget may stop it earlier).
    pub requests: usize,
    /// What the throughput counts.
    pub unit: &'static str,
    /// The target for this path.
    pub target: &'static str,
    /// The reference its throughput is divided by.
    pub compare: Compare,
    /// Whether the RSS growth over the run is reported (export).
    pub rss_growth: bool,
    /// The request.
    pub op: Op,
}

/// What the scenarios need to know about the loaded dataset.
pub struct Ctx {
    /// Conversation ids, by dataset index.
    pub ids: Arc<Vec<Uuid>>,
    /// Messages stored when the read scenarios start (export's unit count).
    pub total_messages: u64,
    /// The generator.
    pub dataset: Arc<Dataset>,
    /// Concurrency for everything that is not a single-connection scenario.
    pub concurrency: usize,
    /// Requests per run for request/response scenarios.
    pub requests: usize,
}

/// Each call takes the next unused body (import: a chunk imported twice would be skipped).
fn take_op(api: Api, ct: &'static str, bodies: Vec<(String, Vec<u8>, u64)>) -> Op {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let bodies: Arc<Vec<_>> = Arc::new(
        bodies
            .into_iter()
            .map(|b| std::sync::Mutex::new(Some(b)))
            .collect(),
    );
    Arc::new(move |_| {
        let (api, bodies) = (api.clone(), bodies.clone());
        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            let taken = bodies
                .get(k)
                .and_then(|b| b.lock().expect("not poisoned").take());
            let (path, body, units) = taken.ok_or_else(|| anyhow::anyhow!("no chunk {k} left"))?;
            api.post(&path, ct, &body).await?;
            Ok(units)
        })
    })
}

/// GETs of `paths` in turn; request heads are rendered before the clock starts.
pub fn get_op(api: Api, paths: Vec<String>) -> Op {
    let heads: Arc<Vec<Vec<u8>>> = Arc::new(paths.iter().map(|p| api.get_head(p)).collect());
    Arc::new(move |i| {
        let (api, heads) = (api.clone(), heads.clone());
        Box::pin(async move {
            api.send(&heads[i % heads.len()], &[]).await?;
            Ok(1)
        })
    })
}

/// POSTs of `bodies` in turn, heads and bodies rendered before the clock starts.
pub fn post_op(api: Api, ct: &'static str, bodies: Vec<(String, Vec<u8>, u64)>) -> Op {
    // (head, body, units) per request.
    type Prepared = (Vec<u8>, Vec<u8>, u64);
    let reqs: Arc<Vec<Prepared>> = Arc::new(
        bodies
            .into_iter()
            .map(|(path, body, units)| (api.post_head(&path, ct, body.len()), body, units))
            .collect(),
    );
    Arc::new(move |i| {
        let (api, reqs) = (api.clone(), reqs.clone());
        Box::pin(async move {
            let (head, body, units) = &reqs[i % reqs.len()];
            api.send(head, body).await?;
            Ok(*units)
        })
    })
}

impl Ctx {
    fn per_conversation(&self, f: impl Fn(usize, Uuid) -> String) -> Vec<String> {
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| f(i, *id))
            .collect()
    }

    fn read(&self, name: &str, target: &'static str, op: Op) -> Scenario {
        Scenario {
            name: name.to_owned(),
            concurrency: self.concurrency,
            requests: self.requests,
            unit: "req/s",
            target,
            compare: Compare::Floor,
            rss_growth: false,
            op,
        }
    }

    fn export(&self, name: &str, target: &'static str, api: &Api, path: &str) -> Scenario {
        let (api, path, total) = (api.clone(), path.to_owned(), self.total_messages);
        Scenario {
            name: name.to_owned(),
            concurrency: 1,
            requests: 1,
            unit: "msg/s",
            target,
            compare: Compare::Nothing,
            rss_growth: true,
            op: Arc::new(move |_| {
                let (api, path) = (api.clone(), path.clone());
                Box::pin(async move {
                    api.send(&api.get_head(&path), &[]).await?;
                    Ok(total)
                })
            }),
        }
    }

    /// The HTTP floor: `GET /healthz` (no auth, no storage) with the same request head size
    /// and connections as the reads; the reference their `× floor` ratio divides by.
    pub fn floor(&self, server: &Server) -> Scenario {
        self.read(
            "HTTP floor: GET /healthz, no storage",
            "(reference)",
            get_op(server.api(), vec!["/healthz".to_owned()]),
        )
    }

    /// The read scenarios, in table order.
    pub fn reads(&self, server: &Server, terms: &(String, String, String)) -> Vec<Scenario> {
        let api = server.api();
        let sensay = server.api_with(format!("X-ORGANIZATION-SECRET: {}\r\n", server.token));
        let agent = Dataset::agent;
        let mut out = vec![
            self.read(
                "get conversation",
                "≥ 30,000 req/s",
                get_op(
                    api.clone(),
                    self.per_conversation(|_, id| format!("/v1/conversations/{id}")),
                ),
            ),
            self.read(
                "50-message page, native",
                "≥ 6,000 req/s, p99 ≤ 30 ms",
                get_op(
                    api.clone(),
                    self.per_conversation(|_, id| {
                        format!("/v1/conversations/{id}/messages?limit=50")
                    }),
                ),
            ),
            self.read(
                "50-message page, perform.chat",
                "≥ 6,000 req/s, p99 ≤ 30 ms",
                get_op(
                    api.clone(),
                    self.per_conversation(|_, id| {
                        format!("/rest/v1/conversations/{id}/messages?limit=50")
                    }),
                ),
            ),
            self.read(
                "50-message page, Sensay",
                "≥ 6,000 req/s, p99 ≤ 30 ms",
                get_op(
                    sensay.clone(),
                    self.per_conversation(|i, id| {
                        format!(
                            "/v1/replicas/{}/conversations/{id}/messages?limit=50",
                            agent(i)
                        )
                    }),
                ),
            ),
            self.read(
                "mentions page (Sensay, 20 groups)",
                "—",
                get_op(
                    sensay.clone(),
                    self.per_conversation(|i, id| {
                        format!(
                            "/v1/replicas/{}/conversations/{id}/mentions?limit=20",
                            agent(i)
                        )
                    }),
                ),
            ),
        ];
        let (rare, mid, common) = terms;
        for (label, word) in [
            ("rare", rare),
            ("mid-frequency", mid),
            ("most common", common),
        ] {
            out.push(self.read(
                &format!("search {label} word `{word}`, ranked"),
                "p50 ≤ 5 ms, p99 ≤ 50 ms",
                get_op(api.clone(), vec![format!("/v1/search?q={word}")]),
            ));
        }
        // A different word each request, more words than the server keeps windows for
        // (sqlite/windows.rs keeps 256), so no search starts from a kept one: what searches
        // cost when users do not repeat each other. The words above are searched again and
        // again, as a dashboard's or a popular word's searches are.
        out.push(
            self.read(
                &format!("search {COLD_WORDS} different words in turn, ranked (none kept)"),
                "p50 ≤ 5 ms, p99 ≤ 50 ms",
                get_op(
                    api.clone(),
                    (0..COLD_WORDS)
                        .map(|r| format!("/v1/search?q={}", crate::dataset::word(r)))
                        .collect(),
                ),
            ),
        );
        // The same searches one at a time: the latency of a search itself, without the
        // queueing 64 requests in flight on two cores add to every p50.
        for (label, word) in [
            ("rare", rare),
            ("mid-frequency", mid),
            ("most common", common),
        ] {
            let mut s = self.read(
                &format!("search {label} word `{word}`, ranked, 1 connection"),
                "(latency without queueing)",
                get_op(api.clone(), vec![format!("/v1/search?q={word}")]),
            );
            s.concurrency = 1;
            s.requests = (self.requests / 5).max(100);
            // One request at a time against a floor of 64 in flight says nothing.
            s.compare = Compare::Nothing;
            out.push(s);
        }
        out.push(self.read(
            "analytics summary",
            "p50 ≤ 10 ms",
            get_op(api.clone(), vec!["/v1/analytics/summary".into()]),
        ));
        out.push(
            self.read(
                "Sensay 30-day historical",
                "p50 ≤ 10 ms",
                get_op(
                    sensay,
                    (0..crate::dataset::AGENTS)
                        .map(|a| {
                            format!(
                                "/v1/replicas/{}/analytics/conversations/historical",
                                agent(a)
                            )
                        })
                        .collect(),
                ),
            ),
        );
        out.push(self.export(
            "export NDJSON (whole dataset)",
            "≥ 300,000 msg/s, RSS growth ≤ 50 MB",
            &api,
            "/v1/export?format=ndjson",
        ));
        out.push(self.export(
            "export CSV, one row per message",
            "—",
            &api,
            "/v1/export?format=csv&rows=messages",
        ));
        out
    }

    fn append_bodies(&self, n: usize, salt: u64) -> Vec<(String, Vec<u8>, u64)> {
        let mut rng = Rng::new(salt);
        (0..n)
            .map(|i| {
                // About 80 bytes, like the reference servers' load.
                let text = self.dataset.text(&mut rng, 12);
                let id = self.ids[i % self.ids.len()];
                let body = json!({"messages": [{"role": "user", "content": text}]});
                (
                    format!("/v1/conversations/{id}/messages"),
                    body.to_string().into_bytes(),
                    1,
                )
            })
            .collect()
    }

    fn transcript_bodies(&self, n: usize) -> Vec<(String, Vec<u8>, u64)> {
        let mut rng = Rng::new(0x7EA5);
        (0..n)
            .map(|i| {
                let messages: Vec<_> = (0..20)
                    .map(|k| {
                        let (role, words) = if k % 2 == 0 {
                            ("user", rng.range(4, 30))
                        } else {
                            ("assistant", rng.range(20, 120))
                        };
                        json!({"role": role, "content": self.dataset.text(&mut rng, words)})
                    })
                    .collect();
                let body = json!({
                    "agent_id": Dataset::agent(i),
                    "user_id": format!("user-{}", i % 500),
                    "source": SOURCES[i % SOURCES.len()],
                    "messages": messages,
                });
                (
                    "/v1/conversations".into(),
                    body.to_string().into_bytes(),
                    20,
                )
            })
            .collect()
    }

    /// The write scenarios, in table order. `import` holds the NDJSON chunks of every run,
    /// `per_run` of them for each.
    /// Searches of the most common word beside appends, the two loads run at once: a quarter of
    /// the connections append (text drawn like the dataset's, so most of it holds the word),
    /// the rest search. Each append makes the searches' kept window stale, so this is where
    /// bringing windows forward shows (docs/search.md). Both run for the whole time budget.
    pub fn beside(&self, server: &Server, word: &str) -> (Scenario, Scenario) {
        let writers = (self.concurrency / 4).max(1);
        let readers = (self.concurrency - writers).max(1);
        let api = server.api();
        let mut search = self.read(
            &format!(
                "search most common word `{word}`, ranked, beside appends ({readers} + {writers} connections)"
            ),
            "(measured; the issue sets no target)",
            get_op(api.clone(), vec![format!("/v1/search?q={word}")]),
        );
        search.concurrency = readers;
        search.requests = usize::MAX;
        let appends = Scenario {
            name: format!("appends beside those searches ({writers} connections)"),
            concurrency: writers,
            requests: usize::MAX,
            unit: "msg/s",
            target: "(measured; the issue sets no target)",
            compare: Compare::Nothing,
            rss_growth: false,
            op: post_op(
                api,
                "application/json",
                self.append_bodies(self.requests, 3),
            ),
        };
        (search, appends)
    }

    /// Gets of conversations beside two connections searching the most common word with a
    /// filter that matches nothing, the two loads run at once. Each such search walks every
    /// match of the word (about half a second on the full dataset): on SQLite it must give its
    /// runtime worker away (store/src/sqlite/handoff.rs), or two of them hold both workers of
    /// a two-core server and every other request waits (twenty-eighth session). The filter is
    /// a role no message of the dataset has: no index narrows it on either backend (an agent
    /// that does not exist, the filter until the forty-eighth session, is answered at once
    /// from the conversations' side since then, and was on PostgreSQL before).
    pub fn beside_long(&self, server: &Server, word: &str) -> (Scenario, Scenario) {
        let long = 2.min(self.concurrency.saturating_sub(1)).max(1);
        let readers = (self.concurrency - long).max(1);
        let api = server.api();
        let mut gets = self.read(
            &format!("get conversation beside two long searches ({readers} + {long} connections)"),
            "(measured; the issue sets no target)",
            get_op(
                api.clone(),
                self.per_conversation(|_, id| format!("/v1/conversations/{id}")),
            ),
        );
        gets.concurrency = readers;
        gets.requests = usize::MAX;
        let mut searches = self.read(
            &format!(
                "long searches beside those gets ({long} connections): `{word}`, filtered to role `tool`"
            ),
            "(measured; the issue sets no target)",
            get_op(api, vec![format!("/v1/search?q={word}&role=tool")]),
        );
        searches.concurrency = long;
        searches.requests = usize::MAX;
        (gets, searches)
    }

    pub fn writes(
        &self,
        server: &Server,
        import: Vec<(String, Vec<u8>, u64)>,
        per_run: usize,
    ) -> Vec<Scenario> {
        let api = server.api();
        let json = "application/json";
        let write = |name: &str, concurrency, requests, target, op, compare| Scenario {
            name: name.to_owned(),
            concurrency,
            requests,
            unit: "msg/s",
            target,
            compare,
            rss_growth: false,
            op,
        };
        let n = self.requests;
        let transcripts = (n / 10).max(50);
        vec![
            write(
                "append 1 message, 1 connection",
                1,
                n,
                "p50 ≤ 1 ms",
                post_op(api.clone(), json, self.append_bodies(n, 1)),
                Compare::AppendCeiling,
            ),
            write(
                &format!("append 1 message, {} connections", self.concurrency),
                self.concurrency,
                n,
                "≥ 8,000/s, p99 ≤ 40 ms, ≥ 0.6 × ceiling (appends')",
                post_op(api.clone(), json, self.append_bodies(n, 2)),
                Compare::AppendCeiling,
            ),
            write(
                "create conversation with 20-message transcript",
                self.concurrency,
                transcripts,
                "≥ 0.8 × ceiling (messages/s)",
                post_op(api.clone(), json, self.transcript_bodies(transcripts)),
                Compare::Ceiling,
            ),
            write(
                "import NDJSON (200 conversations per request)",
                1,
                per_run,
                "≥ 0.8 × ceiling (messages/s)",
                take_op(api, "application/x-ndjson", import),
                Compare::Ceiling,
            ),
        ]
    }
}
