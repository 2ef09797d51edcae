//! Time-bounded fuzzing of every parser that reads untrusted input: the Converra transcript
//! parser, the three cursor decoders, the search query language (and what it feeds: FTS5
//! expressions, snippets, index text) and the Sensay mention grouper.
//!
//! Inputs are mutations (bit flips, byte insertions and deletions, splices, repeated chunks) of a
//! corpus of valid inputs, from a seeded generator, for `CONFAB_FUZZ_SECONDS` per target (default
//! 2; CI runs 20). A panic is caught, the input written to `target/fuzz-crashes/<target>-<n>`
//! and the test fails naming that file: copy it into `tests/fuzz-regressions/<target>/` and it
//! is replayed on every run from then on.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain, which this machine cannot fetch. Coverage
//! guidance matters less here than breadth: these parsers are small and the mutations start
//! from inputs that already reach their deep branches.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use confab_core::Role;
use confab_core::cursor::{ConversationCursor, MessageCursor, SearchCursor};
use confab_core::mentions::mentions_page;
use confab_core::search::{index_text, parse_query, snippet, tenant_tag, tokens};
use confab_core::seek::Seek;
use confab_core::transcript::{TranscriptLimits, parse};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic for a seed, good enough to pick mutations.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that steer the parsers: labels, separators, JSON punctuation, query operators, UTF-8
/// lead bytes, CJK and combining marks.
const DICT: &[&[u8]] = &[
    b"User:",
    b"Assistant:",
    b"Human:",
    b"AI:",
    b"Customer:",
    b"Agent:",
    b"System:",
    b"Tool:",
    b"\r\n",
    b"\n",
    b":",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b"\\u0000",
    b"\\",
    b"null",
    b"\"messages\"",
    b"\"role\"",
    b"\"content\"",
    b"\"timestamp\"",
    b"\"metadata\"",
    b" OR ",
    b"-",
    b"*",
    b"\"",
    b"(",
    b")",
    b"NEAR",
    b"AND",
    b"NOT",
    b"^",
    "\u{4e2d}\u{6587}".as_bytes(),
    "e\u{301}".as_bytes(),
    b"\xf0\x9f",
    b"\xff",
    b"c1:",
    b"m1:",
    b"s1:r:",
    b"s1:n:",
    b"=",
    b"-1",
    b"99999999999999999999",
    b"0",
];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.insert(at, rng.next() as u8),
            2 if !v.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 => {
                let w = DICT[rng.below(DICT.len())];
                v.splice(at..at, w.iter().copied());
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(64)).min(other.len());
                v.splice(at..at, other[from..to].iter().copied());
            }
            _ if !v.is_empty() => {
                let from = rng.below(v.len());
                let to = (from + 1 + rng.below(32)).min(v.len());
                let chunk = v[from..to].to_vec();
                for _ in 0..rng.below(20) {
                    v.splice(at..at, chunk.iter().copied());
                }
            }
            _ => {}
        }
    }
    v
}

fn seconds() -> Duration {
    let s = std::env::var("CONFAB_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(s)
}

fn crash_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-crashes")
}

fn regressions(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(std::fs::read(e.path()).expect("regression input"));
        }
    }
    out
}

/// Replays the target's regressions, then mutates `corpus` until the time is up.
fn fuzz(target: &str, seed: u64, corpus: Vec<Vec<u8>>, run: impl Fn(&[u8])) {
    let check = |input: &[u8], n: u64| {
        if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
            let dir = crash_dir();
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{target}-{n}"));
            std::fs::write(&path, input).unwrap();
            panic!("{target} panicked; input saved to {}", path.display());
        }
    };
    for (i, r) in regressions(target).iter().enumerate() {
        check(r, i as u64);
    }
    for c in &corpus {
        check(c, 0);
    }
    let mut rng = Rng(seed);
    let deadline = Instant::now() + seconds();
    let mut n = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            n += 1;
            check(&mutate(&mut rng, &corpus), n);
        }
    }
    eprintln!("{target}: {n} inputs");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn transcript_parser() {
    let corpus = [
        "User: hi\nAssistant: hello\nUser: how are you?\nAssistant: fine\n  continued",
        "Human: a\r\nAI: b\r\n",
        "Customer: my order\nAgent: which one?\nSystem: note\nTool: {\"x\":1}",
        r#"{"messages":[{"role":"user","content":"hi","timestamp":"2026-01-01T00:00:00Z"},{"role":"assistant","content":"yo","model":"m","tokens":3}],"metadata":{"userId":"u","channel":"web","x":[1,2]}}"#,
        r#"{"messages":[]}"#,
        "",
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec();
    fuzz("transcript", 1, corpus, |b| {
        let _ = parse(&text(b), &TranscriptLimits::CONVERRA);
    });
}

#[test]
fn cursor_decoders() {
    let corpus = vec![
        ConversationCursor {
            created_at_us: 1_700_000_000_000_000,
            id: uuid::Uuid::nil(),
        }
        .encode()
        .into_bytes(),
        MessageCursor { seq: 42 }.encode().into_bytes(),
        SearchCursor::Ranked {
            snapshot: 99,
            offset: 20,
        }
        .encode()
        .into_bytes(),
        SearchCursor::Recent { before: 7 }.encode().into_bytes(),
        b"YzE6MTox".to_vec(),
    ];
    fuzz("cursor", 2, corpus, |b| {
        let s = text(b);
        if let Some(c) = ConversationCursor::decode(&s) {
            assert_eq!(ConversationCursor::decode(&c.encode()), Some(c));
        }
        if let Some(c) = MessageCursor::decode(&s) {
            assert_eq!(MessageCursor::decode(&c.encode()), Some(c));
        }
        if let Some(c) = SearchCursor::decode(&s) {
            assert_eq!(SearchCursor::decode(&c.encode()), Some(c));
        }
    });
}

#[test]
fn search_query_language() {
    let corpus = [
        "refund",
        "\"exact phrase\" OR other -not pre*",
        "中文 检索",
        "café naïve",
        "a OR b OR -c \"d e\"*",
        "- * \" OR",
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec();
    let tag = tenant_tag(&[7u8; 16]);
    fuzz("query", 3, corpus, |b| {
        let s = text(b);
        let _ = tokens(&s);
        let _ = index_text(&tag, &s);
        if let Ok(q) = parse_query(&s) {
            let _ = q.to_fts5(&tag);
            let _ = snippet(&s, &q);
            let _ = snippet("some message text with refund and 中文 in it", &q);
        }
    });
}

#[test]
fn mention_grouper() {
    // Bytes become a conversation: each byte's low two bits a role, the seq gaps from the rest;
    // the last bytes choose the cursor and the page size.
    let corpus = vec![
        vec![0, 1, 1, 0, 1, 2, 0, 1, 3, 1, 0, 9, 4],
        vec![1, 1, 1, 1, 0, 0, 0],
        vec![0; 40],
        (0u8..=255).collect(),
    ];
    fuzz("mentions", 4, corpus, |b| {
        if b.len() < 2 {
            let _ = mentions_page(&[], None, 1);
            return;
        }
        let (body, tail) = b.split_at(b.len() - 2);
        let mut seq = 0i64;
        let messages: Vec<(i64, Role)> = body
            .iter()
            .map(|&x| {
                seq += 1 + i64::from(x >> 5);
                let role = match x & 3 {
                    0 => Role::User,
                    1 => Role::Assistant,
                    2 => Role::System,
                    _ => Role::Tool,
                };
                (seq, role)
            })
            .collect();
        let seek = match (tail[0] & 3, messages.len()) {
            (_, 0) | (0, _) => None,
            (1, n) => Some(Seek::Before(messages[usize::from(tail[0]) % n].0)),
            (_, n) => Some(Seek::After(messages[usize::from(tail[0]) % n].0)),
        };
        let page = mentions_page(&messages, seek, usize::from(tail[1]));
        let seqs: Vec<i64> = page.iter().flat_map(|it| it.seqs().to_vec()).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] != w[1]),
            "a message shown twice: {seqs:?}"
        );
    });
}
