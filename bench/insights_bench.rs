//! Conversations analysed per second by the built-in analyzer, median of 3 runs, on a fixed
//! corpus: the 60 chatterbot-corpus dialogues of the keyphrase fixture, each turned into a
//! user/assistant conversation, repeated to 1,200 conversations.
//!
//!     cargo run -p confab-core --example insights_bench            # debug build
//!     cargo run -p confab-core --example insights_bench --release  # the number to quote

use std::time::Instant;

use confab_core::analysis::analyze;
use confab_core::{Message, Role};
use time::OffsetDateTime;
use uuid::Uuid;

const REPEAT: usize = 20;
const RUNS: usize = 3;

fn corpus() -> Vec<Vec<Message>> {
    let fixture = include_str!("../crates/core/tests/fixtures/yake_reference.jsonl");
    let mut out = Vec::new();
    for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("fixture line");
        let text = v["text"].as_str().expect("text");
        let conv = Uuid::now_v7();
        let messages: Vec<Message> = text
            .lines()
            .enumerate()
            .map(|(i, l)| Message {
                id: Uuid::now_v7(),
                conversation_id: conv,
                seq: i as i64,
                role: if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                content: l.to_owned(),
                created_at: OffsetDateTime::UNIX_EPOCH,
                model: None,
                tokens: None,
                prompt_tokens: None,
                completion_tokens: None,
                latency_ms: None,
                tool_calls: None,
                metadata: None,
                source: None,
                is_trigger: false,
            })
            .collect();
        out.push(messages);
    }
    let base = out.clone();
    for _ in 1..REPEAT {
        out.extend(base.iter().cloned());
    }
    out
}

fn main() {
    let convs = corpus();
    let messages: usize = convs.iter().map(Vec::len).sum();
    // Warm the lexicon (parsed once, on first use).
    let _ = analyze(&convs[0]);
    let mut rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for c in &convs {
                std::hint::black_box(analyze(c));
            }
            convs.len() as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("| corpus | conversations | messages | build | runs (conv/s) | median conv/s |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| chatterbot dialogues ×{REPEAT} | {} | {messages} | {profile} | {} | {:.0} |",
        convs.len(),
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        rates[RUNS / 2]
    );
}
