//! A 50-message page written as JSON by serde_json and by `confab_core::json_out`, which must
//! write the same bytes: time per page, the medians of 9 alternated rounds, and their ratio.
//!
//!     cargo run -p confab-core --example json_bench --release

use std::time::{Duration, Instant};

use confab_core::{Message, Role, json_out};
use time::OffsetDateTime;
use uuid::Uuid;

const PAGES: u32 = 20_000;
const ROUNDS: usize = 9;

/// A page like the benchmark's: sentences of its made-up words, the optional fields empty.
fn page() -> Vec<Message> {
    let conversation = Uuid::now_v7();
    let words = [
        "mikuno", "ka", "losisi", "nufa", "loto", "guli", "bifi", "pakosa", "lo",
    ];
    (0..50)
        .map(|i| Message {
            id: Uuid::now_v7(),
            conversation_id: conversation,
            seq: i,
            role: if i % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            },
            content: (0..(6 + i % 11) as usize)
                .map(|w| words[(w * 7 + i as usize) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
                + ".",
            created_at: OffsetDateTime::now_utc(),
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
        .collect()
}

fn time(f: impl Fn() -> usize) -> Duration {
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..PAGES {
        bytes += f();
    }
    std::hint::black_box(bytes);
    start.elapsed() / PAGES
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let page = page();
    let theirs = serde_json::to_vec(&page).expect("serde_json writes it");
    assert_eq!(json_out::to_vec(&page).expect("json_out writes it"), theirs);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let serde = || {
            let mut v = Vec::with_capacity(32 * 1024);
            serde_json::to_writer(&mut v, &page).expect("writes");
            v.len()
        };
        let ours = || {
            json_out::to_vec_with_capacity(32 * 1024, &page)
                .expect("writes")
                .len()
        };
        // The order swapped every round: a drifting machine favours neither.
        if round % 2 == 0 {
            a.push(time(serde));
            b.push(time(ours));
        } else {
            b.push(time(ours));
            a.push(time(serde));
        }
    }
    let (a, b) = (median(a), median(b));
    println!(
        "a {}-byte page: serde_json {a:?}, json_out {b:?}, ratio {:.2}",
        theirs.len(),
        b.as_secs_f64() / a.as_secs_f64()
    );
}
