//! Keyphrases, YAKE-style (Campos et al., 2020): unsupervised, per document, no corpus. Each
//! word gets a score from five statistics of where and how it occurs (casing, position,
//! frequency, how many different words surround it, how many sentences it appears in); a
//! candidate phrase of one to three words that neither starts nor ends with a stop word scores
//! the product of its words over its frequency. Lower is better. Candidates that repeat one
//! already chosen (same words, or one inside the other) are dropped, so the topics differ.

use std::collections::HashMap;

use super::text::{is_stopword, sentences, word_id, words};

/// Longest phrase considered.
const MAX_NGRAM: usize = 3;

/// Fills the unused places of a phrase's key (no word has this id).
const NONE: u32 = u32::MAX;

#[derive(Default)]
struct TermStats {
    tf: f64,
    tf_upper: f64,
    tf_capital: f64,
    sentences: Vec<usize>,
    /// The words seen just before and just after it, one entry per occurrence.
    left: Vec<u32>,
    right: Vec<u32>,
    stop: bool,
}

/// One token as it stood: surface form, its word's id (the normalised form, interned), and
/// what the candidate test asks of it, computed once.
struct Tok<'a> {
    surface: &'a str,
    id: u32,
    sentence_start: bool,
    stop: bool,
    /// Neither a stop word nor too short to start or end a phrase.
    edge: bool,
    digits: bool,
}

/// Up to `top` keyphrases of `text`, best first, lower-cased.
///
/// Words are interned: every statistic and candidate below is keyed by a small integer, where
/// strings as keys cost a hash, a comparison and often an allocation per lookup, most of the
/// analyzer's time on a long conversation.
pub fn keyphrases(text: &str, top: usize) -> Vec<String> {
    let mut ids: HashMap<String, u32> = HashMap::new();
    let sents: Vec<Vec<Tok>> = sentences(text)
        .into_iter()
        .map(|s| {
            words(s)
                .enumerate()
                .map(|(i, w)| {
                    let stop = is_stopword(w);
                    Tok {
                        surface: w,
                        id: word_id(&mut ids, w),
                        sentence_start: i == 0,
                        stop,
                        edge: !stop && w.chars().any(char::is_alphabetic) && w.chars().count() > 2,
                        digits: w.chars().all(|c| c.is_ascii_digit()),
                    }
                })
                .collect()
        })
        .collect();
    let stats = term_stats(&sents, ids.len());
    let scores = word_scores(&stats, sents.len());
    let mut cands: HashMap<[u32; MAX_NGRAM], (f64, String)> = HashMap::new();
    for s in &sents {
        for start in 0..s.len() {
            for n in 1..=MAX_NGRAM.min(s.len() - start) {
                let toks = &s[start..start + n];
                if !is_candidate(toks) {
                    continue;
                }
                let mut key = [NONE; MAX_NGRAM];
                for (k, t) in key.iter_mut().zip(toks) {
                    *k = t.id;
                }
                cands
                    .entry(key)
                    .or_insert_with(|| {
                        let surface = toks
                            .iter()
                            .map(|t| t.surface.to_lowercase())
                            .collect::<Vec<_>>()
                            .join(" ");
                        (0.0, surface)
                    })
                    .0 += 1.0;
            }
        }
    }
    let mut ranked: Vec<(f64, [u32; MAX_NGRAM], String)> = cands
        .into_iter()
        .map(|(key, (tf, surface))| {
            let (mut prod, mut sum) = (1.0, 0.0);
            for &k in key
                .iter()
                .filter(|&&k| k != NONE && !stats[k as usize].stop)
            {
                prod *= scores[k as usize];
                sum += scores[k as usize];
            }
            (prod / (tf * (1.0 + sum)), key, surface)
        })
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
    let mut out: Vec<([u32; MAX_NGRAM], String)> = Vec::new();
    for (_, key, surface) in ranked {
        if out.len() == top {
            break;
        }
        if out.iter().all(|(k, _)| !overlaps(k, &key)) {
            out.push((key, surface));
        }
    }
    out.into_iter().map(|(_, s)| s).collect()
}

fn is_candidate(toks: &[Tok]) -> bool {
    let (first, last) = (&toks[0], &toks[toks.len() - 1]);
    first.edge && last.edge && toks.iter().all(|t| !t.digits)
}

/// Two phrases repeat each other when one's words all occur in the other.
fn overlaps(a: &[u32; MAX_NGRAM], b: &[u32; MAX_NGRAM]) -> bool {
    let within = |x: &[u32; MAX_NGRAM], y: &[u32; MAX_NGRAM]| {
        x.iter().filter(|&&w| w != NONE).all(|w| y.contains(w))
    };
    within(a, b) || within(b, a)
}

fn term_stats(sents: &[Vec<Tok>], words: usize) -> Vec<TermStats> {
    let mut stats: Vec<TermStats> = (0..words).map(|_| TermStats::default()).collect();
    for (si, s) in sents.iter().enumerate() {
        for (i, t) in s.iter().enumerate() {
            let e = &mut stats[t.id as usize];
            e.tf += 1.0;
            e.stop = t.stop;
            let (mut letters, mut upper, mut first_upper) = (0, true, None);
            for c in t.surface.chars().filter(|c| c.is_alphabetic()) {
                letters += 1;
                upper &= c.is_uppercase();
                first_upper.get_or_insert(c.is_uppercase());
            }
            if letters > 1 && upper {
                e.tf_upper += 1.0;
            } else if !t.sentence_start && first_upper == Some(true) {
                e.tf_capital += 1.0;
            }
            if e.sentences.last() != Some(&si) {
                e.sentences.push(si);
            }
            // Co-occurrence with the immediate neighbours (YAKE's default window of one).
            if i > 0 {
                e.left.push(s[i - 1].id);
            }
            if i + 1 < s.len() {
                e.right.push(s[i + 1].id);
            }
        }
    }
    stats
}

/// Different neighbours per occurrence with one (0 without any).
fn spread(neighbours: &[u32]) -> f64 {
    if neighbours.is_empty() {
        return 0.0;
    }
    let mut v = neighbours.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len() as f64 / neighbours.len() as f64
}

fn word_scores(stats: &[TermStats], n_sent: usize) -> Vec<f64> {
    let content: Vec<f64> = stats.iter().filter(|s| !s.stop).map(|s| s.tf).collect();
    let n = content.len().max(1) as f64;
    let mean = content.iter().sum::<f64>() / n;
    let std = (content.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let max_tf = content.iter().copied().fold(1.0, f64::max);
    stats
        .iter()
        .map(|s| {
            let case = s.tf_upper.max(s.tf_capital) / (1.0 + s.tf.ln());
            let median = median_of(&s.sentences);
            let pos = (3.0 + median).ln().ln();
            let freq = s.tf / (mean + std);
            let rel = (0.5 + spread(&s.left) * (s.tf / max_tf))
                + (0.5 + spread(&s.right) * (s.tf / max_tf));
            let different = s.sentences.len() as f64 / n_sent.max(1) as f64;
            (pos * rel) / (case + freq / rel + different / rel)
        })
        .collect()
}

fn median_of(v: &[usize]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let m = v.len() / 2;
    if !v.len().is_multiple_of(2) {
        v[m] as f64
    } else {
        (v[m - 1] + v[m]) as f64 / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_subject_and_skips_stopwords() {
        let text = "My refund request was rejected. I asked for a refund of my annual \
                    subscription last week. The refund request number is 4411. Can you check \
                    the refund request status? The annual subscription renews in March.";
        let k = keyphrases(text, 5);
        assert!(k.len() <= 5 && !k.is_empty());
        assert!(k.iter().any(|p| p.contains("refund")), "{k:?}");
        assert!(
            k.iter().all(|p| !is_stopword(p.split(' ').next().unwrap())),
            "{k:?}"
        );
        // No phrase repeats another.
        for (i, a) in k.iter().enumerate() {
            for b in &k[i + 1..] {
                assert!(!(a.contains(b.as_str()) || b.contains(a.as_str())), "{k:?}");
            }
        }
    }

    #[test]
    fn empty_text_has_no_topics() {
        assert!(keyphrases("", 5).is_empty());
        assert!(keyphrases("ok thanks", 5).is_empty());
    }
}
