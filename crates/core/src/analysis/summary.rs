//! Extractive summary, TextRank-style (Mihalcea & Tarau, 2004): sentences are nodes, edges
//! weigh how many content words two sentences share (normalised by their lengths, so long
//! sentences do not win by size), and PageRank picks the sentences the rest of the
//! conversation "agrees" with. The chosen ones are shown in conversation order.

use std::collections::HashMap;

use super::text::{content_ids, shared};

/// At most this many sentences…
pub const MAX_SENTENCES: usize = 3;
/// …and this many characters.
pub const MAX_CHARS: usize = 400;

const DAMPING: f64 = 0.85;
const ITERATIONS: usize = 60;
/// Sentences shorter than this many content words say too little to summarise anything.
const MIN_CONTENT_WORDS: usize = 2;

/// One candidate sentence with a prior: the teleport weight PageRank returns to. The caller
/// raises it for sentences known to matter (the user's opening request).
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The sentence as written.
    pub text: &'a str,
    /// Relative prior weight (> 0).
    pub prior: f64,
}

/// Picks up to [`MAX_SENTENCES`] sentences (at most [`MAX_CHARS`] in all) and joins them in
/// their original order.
pub fn summarize(cands: &[Candidate<'_>]) -> String {
    // Each sentence's content words as sorted word ids: the pairwise overlaps below are
    // merges of small integer lists, not hash-set intersections of strings.
    let mut ids = HashMap::new();
    let bags: Vec<Vec<u32>> = cands
        .iter()
        .map(|c| content_ids(c.text, &mut ids))
        .collect();
    let usable: Vec<usize> = (0..cands.len())
        .filter(|&i| bags[i].len() >= MIN_CONTENT_WORDS)
        .collect();
    let pool: Vec<usize> = if usable.is_empty() {
        (0..cands.len()).collect()
    } else {
        usable
    };
    if pool.is_empty() {
        return String::new();
    }
    let scores = rank(&pool, &bags, cands);
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = Vec::new();
    let mut used = 0;
    for k in order {
        if chosen.len() == MAX_SENTENCES {
            break;
        }
        let len = cands[pool[k]].text.chars().count();
        let sep = usize::from(!chosen.is_empty());
        if used + sep + len <= MAX_CHARS {
            chosen.push(pool[k]);
            used += sep + len;
        }
    }
    if chosen.is_empty() {
        // Even the best sentence is too long: cut it at a word boundary.
        return truncate(cands[pool[0]].text, MAX_CHARS);
    }
    chosen.sort_unstable();
    chosen
        .iter()
        .map(|&i| cands[i].text)
        .collect::<Vec<_>>()
        .join(" ")
}

fn similarity(a: &[u32], b: &[u32]) -> f64 {
    let common = shared(a, b);
    if common == 0 {
        return 0.0;
    }
    let denom = (a.len() as f64 + 1.0).ln() + (b.len() as f64 + 1.0).ln();
    common as f64 / denom
}

/// PageRank with a personalised teleport over the pool.
fn rank(pool: &[usize], bags: &[Vec<u32>], cands: &[Candidate<'_>]) -> Vec<f64> {
    let n = pool.len();
    // Symmetric: each pair is computed once.
    let mut w = vec![vec![0.0; n]; n];
    for a in 0..n {
        for b in a + 1..n {
            let v = similarity(&bags[pool[a]], &bags[pool[b]]);
            w[a][b] = v;
            w[b][a] = v;
        }
    }
    let out_sum: Vec<f64> = w.iter().map(|row| row.iter().sum()).collect();
    // Per sentence, the sentences that link to it and the share of their weight it gets
    // (`w[j][i] / out_sum[j]`, computed once instead of in every iteration). The links of
    // weight 0 are left out: they add exactly nothing.
    let inbound: Vec<Vec<(usize, f64)>> = (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| out_sum[j] > 0.0 && w[j][i] != 0.0)
                .map(|j| (j, w[j][i] / out_sum[j]))
                .collect()
        })
        .collect();
    let prior_total: f64 = pool.iter().map(|&i| cands[i].prior.max(1e-9)).sum();
    let teleport: Vec<f64> = pool
        .iter()
        .map(|&i| cands[i].prior.max(1e-9) / prior_total)
        .collect();
    let mut s = teleport.clone();
    for _ in 0..ITERATIONS {
        // Mass of sentences that share nothing with the others goes back to the prior.
        let dangling: f64 = (0..n).filter(|&j| out_sum[j] == 0.0).map(|j| s[j]).sum();
        let next: Vec<f64> = teleport
            .iter()
            .zip(&inbound)
            .map(|(t, links)| {
                let inflow: f64 = links.iter().map(|&(j, share)| share * s[j]).sum();
                (1.0 - DAMPING) * t + DAMPING * (inflow + dangling * t)
            })
            .collect();
        let delta: f64 = next.iter().zip(&s).map(|(a, b)| (a - b).abs()).sum();
        s = next;
        if delta < 1e-9 {
            break;
        }
    }
    s
}

/// Cuts `s` to at most `max` characters at a word boundary, ending with an ellipsis.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    let cut = match cut.rfind(char::is_whitespace) {
        Some(i) if i > max / 2 => cut[..i].trim_end().to_owned(),
        _ => cut,
    };
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands<'a>(v: &[&'a str]) -> Vec<Candidate<'a>> {
        v.iter()
            .map(|t| Candidate {
                text: t,
                prior: 1.0,
            })
            .collect()
    }

    #[test]
    fn keeps_order_and_limits() {
        let s = [
            "I was charged twice for my annual subscription.",
            "Hello.",
            "The double charge appears on my card statement for the annual subscription.",
            "I can see the duplicate charge for the subscription on your account.",
            "I have refunded the duplicate charge to your card.",
            "Great weather today.",
        ];
        let out = summarize(&cands(&s));
        assert!(out.chars().count() <= MAX_CHARS);
        let picked: Vec<usize> = s
            .iter()
            .enumerate()
            .filter(|(_, t)| out.contains(*t))
            .map(|(i, _)| i)
            .collect();
        assert!(!picked.is_empty() && picked.len() <= MAX_SENTENCES, "{out}");
        assert!(!out.contains("Hello.") && !out.contains("weather"), "{out}");
        // In conversation order.
        let pos: Vec<usize> = picked.iter().map(|&i| out.find(s[i]).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn long_sentences_are_cut() {
        let long = "word ".repeat(200);
        let out = summarize(&cands(&[long.trim()]));
        assert!(out.chars().count() <= MAX_CHARS && out.ends_with('…'));
        assert_eq!(summarize(&[]), "");
    }
}
