//! The seeded dataset: conversations generated one at a time from `(seed, index)`, so the whole
//! set never sits in memory (the server runs in this process and its RSS is what we report) and
//! any conversation can be rebuilt on demand with the same ids and text.
//!
//! Text is drawn from a Zipf-like vocabulary (word of rank r has weight 1/(r+1)) of pseudo-words
//! made of two-letter syllables, so the most common, a mid-frequency and a rare word are known
//! before anything is generated. Lengths are log-normal: users write short turns, assistants
//! long ones. Speakers come in irregular runs (1–3 user turns, 1–2 assistant turns).

use confab_core::export::ExportRecord;
use confab_core::{Conversation, Message, Role, Status};
use serde_json::Map;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Distinct words.
pub const VOCABULARY: usize = 20_000;
/// Rank of the word used as the mid-frequency search term.
pub const MID_RANK: usize = 100;
/// Rank of the word used as the rare search term.
pub const RARE_RANK: usize = 12_000;
/// Agents (Sensay replicas).
pub const AGENTS: usize = 8;
/// End users.
pub const USERS: usize = 500;
/// Channels.
pub const SOURCES: [&str; 5] = ["web", "telegram", "discord", "embed", "api"];
/// Days the conversations' creation times spread over, ending at the anchor.
pub const SPAN_DAYS: i64 = 60;

const SYLLABLES: [&str; 40] = [
    "ka", "lo", "mi", "nu", "pa", "ro", "si", "tu", "va", "zo", "bi", "du", "fa", "go", "hi", "ju",
    "ko", "la", "mo", "ni", "po", "ra", "so", "ti", "vu", "za", "bo", "da", "fi", "gu", "ha", "jo",
    "ku", "li", "ma", "no", "pi", "ru", "sa", "to",
];

/// SplitMix64: tiny, fast and stable across versions (a library RNG may change its stream).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one stream.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi] (inclusive).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Log-normal with the given median and shape.
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let (u1, u2) = (self.unit().max(1e-12), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median * (sigma * z).exp()
    }
}

/// The word of a rank: one syllable for the 40 most common, then two, then three (unique).
pub fn word(rank: usize) -> String {
    let n = SYLLABLES.len();
    let (digits, mut r) = if rank < n {
        (1, rank)
    } else if rank < n + n * n {
        (2, rank - n)
    } else {
        (3, rank - n - n * n)
    };
    let mut out = String::with_capacity(digits * 2);
    let mut parts = Vec::with_capacity(digits);
    for _ in 0..digits {
        parts.push(SYLLABLES[r % n]);
        r /= n;
    }
    for p in parts.iter().rev() {
        out.push_str(p);
    }
    out
}

/// The search terms known in advance: (rare, mid-frequency, most common).
pub fn search_terms() -> (String, String, String) {
    (word(RARE_RANK), word(MID_RANK), word(0))
}

/// Cumulative Zipf weights, for sampling a rank by binary search.
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// Weights 1/(r+1) over `n` ranks.
    pub fn new(n: usize) -> Self {
        let mut acc = 0.0;
        let cumulative = (0..n)
            .map(|r| {
                acc += 1.0 / (r as f64 + 1.0);
                acc
            })
            .collect();
        Zipf { cumulative }
    }

    /// A rank.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let x = rng.unit() * total;
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len() - 1)
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Seed of every stream.
    pub seed: u64,
    /// Conversations.
    pub conversations: usize,
    /// Average messages per conversation (each has 50–150 % of it).
    pub messages_per_conversation: usize,
    /// The newest possible creation time; the dataset spans `SPAN_DAYS` before it.
    pub anchor: OffsetDateTime,
}

/// The generator: cheap to clone, shares nothing mutable.
#[derive(Debug, Clone)]
pub struct Dataset {
    spec: Spec,
    words: Vec<String>,
    zipf: Zipf,
}

/// A deterministic UUIDv7 from a time and random bits.
fn uuid_v7(at: OffsetDateTime, rng: &mut Rng) -> Uuid {
    let millis = (at.unix_timestamp_nanos() / 1_000_000) as u64;
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

impl Dataset {
    /// A generator for `spec`.
    pub fn new(spec: Spec) -> Self {
        Dataset {
            words: (0..VOCABULARY).map(word).collect(),
            zipf: Zipf::new(VOCABULARY),
            spec,
        }
    }

    /// The spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The agent id of conversation `i` (also its Sensay replica id).
    pub fn agent(i: usize) -> String {
        format!("agent-{}", i % AGENTS)
    }

    /// `n` words of Zipf text, with a capital and a full stop.
    pub fn text(&self, rng: &mut Rng, n: usize) -> String {
        let mut out = String::with_capacity(n * 6);
        for k in 0..n.max(1) {
            if k > 0 {
                out.push(' ');
            }
            out.push_str(&self.words[self.zipf.sample(rng)]);
        }
        out.push('.');
        out
    }

    /// Conversation `i`, with its messages, as the import format holds it.
    pub fn conversation(&self, i: usize) -> ExportRecord {
        let mut rng = Rng::new(self.spec.seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let span = Duration::days(SPAN_DAYS).whole_seconds() as u64;
        let created = self.spec.anchor - Duration::seconds((rng.next_u64() % span) as i64 + 3600);
        let id = uuid_v7(created, &mut rng);
        let m = self.spec.messages_per_conversation.max(1);
        let count = rng.range(m.div_ceil(2), m + m / 2);
        let mut messages = Vec::with_capacity(count);
        let mut at = created;
        let mut role = Role::User;
        let mut run_left = rng.range(1, 3);
        for seq in 0..count {
            let words = match role {
                Role::User => rng.lognormal(12.0, 0.7),
                _ => rng.lognormal(45.0, 0.6),
            };
            let content = self.text(&mut rng, (words as usize).clamp(1, 400));
            at += Duration::milliseconds(rng.range(500, 90_000) as i64);
            messages.push(Message {
                id: uuid_v7(at, &mut rng),
                conversation_id: id,
                seq: seq as i64,
                role,
                content,
                created_at: at,
                model: (role == Role::Assistant).then(|| "bench-model".to_owned()),
                tokens: None,
                prompt_tokens: None,
                completion_tokens: None,
                latency_ms: None,
                tool_calls: None,
                metadata: None,
                source: None,
                is_trigger: false,
            });
            run_left -= 1;
            if run_left == 0 {
                (role, run_left) = match role {
                    Role::User => (Role::Assistant, rng.range(1, 2)),
                    _ => (Role::User, rng.range(1, 3)),
                };
            }
        }
        let completed = rng.range(0, 2) == 0;
        let conversation = Conversation {
            id,
            agent_id: Some(Self::agent(i)),
            user_id: Some(format!("user-{}", rng.range(0, USERS - 1))),
            title: None,
            status: if completed {
                Status::Completed
            } else {
                Status::Active
            },
            source: Some(SOURCES[i % SOURCES.len()].to_owned()),
            model: Some("bench-model".to_owned()),
            company_name: None,
            added_to_memory: false,
            metadata: Map::new(),
            message_count: count as i64,
            // No insights jobs: the analyzer would compete with the server for the two cores.
            analyze: false,
            created_at: created,
            updated_at: at,
            completed_at: completed.then_some(at),
        };
        ExportRecord {
            conversation,
            messages,
        }
    }

    /// Conversations `range` as confab NDJSON (one record per line).
    pub fn ndjson(&self, range: std::ops::Range<usize>) -> Vec<u8> {
        let mut out = Vec::new();
        for i in range {
            serde_json::to_writer(&mut out, &self.conversation(i)).expect("serializable record");
            out.push(b'\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> Spec {
        Spec {
            seed,
            conversations: 20,
            messages_per_conversation: 10,
            anchor: time::macros::datetime!(2026-01-01 00:00 UTC),
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = Dataset::new(spec(7)).ndjson(0..20);
        let b = Dataset::new(spec(7)).ndjson(0..20);
        let c = Dataset::new(spec(8)).ndjson(0..20);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn records_are_valid_imports() {
        let d = Dataset::new(spec(1));
        for i in 0..20 {
            let r = d.conversation(i);
            r.validate().unwrap();
            assert!(r.messages.len() >= 5 && r.messages.len() <= 15);
            assert_eq!(r.conversation.id.get_version_num(), 7);
            assert!(r.conversation.created_at < d.spec().anchor);
        }
    }

    #[test]
    fn words_are_unique_and_zipf_favours_low_ranks() {
        let all: std::collections::HashSet<String> = (0..VOCABULARY).map(word).collect();
        assert_eq!(all.len(), VOCABULARY);
        let z = Zipf::new(VOCABULARY);
        let mut rng = Rng::new(3);
        let mut top = 0;
        let mut mid = 0;
        for _ in 0..100_000 {
            match z.sample(&mut rng) {
                0 => top += 1,
                MID_RANK => mid += 1,
                _ => {}
            }
        }
        // Rank 0 carries 1/H(20000) ≈ 9.4 % of the mass, rank 100 about 0.09 %.
        assert!((8_000..11_000).contains(&top), "top {top}");
        assert!((40..160).contains(&mid), "mid {mid}");
    }
}
