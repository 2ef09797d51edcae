//! Keyphrases, YAKE-style (Campos et al., 2020): unsupervised, per document, no corpus. Each
//! word gets a score from five statistics of where and how it occurs (casing, position,
//! frequency, how many different words surround it, how many sentences it appears in); a
//! candidate phrase of one to three words that neither starts nor ends with a stop word scores
//! the product of its words over its frequency. Lower is better. Candidates that repeat one
//! already chosen (same words, or one inside the other) are dropped, so the topics differ.

use std::collections::{HashMap, HashSet};

use super::text::{is_stopword, norm, sentences, words};

/// Longest phrase considered.
const MAX_NGRAM: usize = 3;

#[derive(Default)]
struct TermStats {
    tf: f64,
    tf_upper: f64,
    tf_capital: f64,
    sentences: Vec<usize>,
    left: HashMap<String, f64>,
    right: HashMap<String, f64>,
    stop: bool,
}

/// One token as it stood: surface form, normalised key, sentence index.
struct Tok<'a> {
    surface: &'a str,
    key: String,
    sentence_start: bool,
}

/// Up to `top` keyphrases of `text`, best first, lower-cased.
pub fn keyphrases(text: &str, top: usize) -> Vec<String> {
    let sents: Vec<Vec<Tok>> = sentences(text)
        .into_iter()
        .map(|s| {
            words(s)
                .enumerate()
                .map(|(i, w)| Tok {
                    surface: w,
                    key: norm(w),
                    sentence_start: i == 0,
                })
                .collect()
        })
        .collect();
    let stats = term_stats(&sents);
    let scores = word_scores(&stats, sents.len());
    let mut cands: HashMap<Vec<String>, (f64, String)> = HashMap::new();
    for s in &sents {
        for start in 0..s.len() {
            for n in 1..=MAX_NGRAM.min(s.len() - start) {
                let toks = &s[start..start + n];
                if !is_candidate(toks) {
                    continue;
                }
                let key: Vec<String> = toks.iter().map(|t| t.key.clone()).collect();
                let surface = toks
                    .iter()
                    .map(|t| t.surface.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                cands.entry(key).or_insert((0.0, surface)).0 += 1.0;
            }
        }
    }
    let mut ranked: Vec<(f64, Vec<String>, String)> = cands
        .into_iter()
        .map(|(key, (tf, surface))| {
            let (mut prod, mut sum) = (1.0, 0.0);
            for k in key.iter().filter(|k| !stats[*k].stop) {
                prod *= scores[k];
                sum += scores[k];
            }
            (prod / (tf * (1.0 + sum)), key, surface)
        })
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
    let mut out: Vec<(Vec<String>, String)> = Vec::new();
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
    let ok_word =
        |t: &Tok| t.surface.chars().any(char::is_alphabetic) && t.surface.chars().count() > 2;
    let (first, last) = (&toks[0], &toks[toks.len() - 1]);
    !is_stopword(first.surface)
        && !is_stopword(last.surface)
        && ok_word(first)
        && ok_word(last)
        && toks
            .iter()
            .all(|t| !t.surface.chars().all(|c| c.is_ascii_digit()))
}

/// Two phrases repeat each other when one's words all occur in the other.
fn overlaps(a: &[String], b: &[String]) -> bool {
    let (sa, sb): (HashSet<&String>, HashSet<&String>) = (a.iter().collect(), b.iter().collect());
    sa.is_subset(&sb) || sb.is_subset(&sa)
}

fn term_stats(sents: &[Vec<Tok>]) -> HashMap<String, TermStats> {
    let mut stats: HashMap<String, TermStats> = HashMap::new();
    for (si, s) in sents.iter().enumerate() {
        for (i, t) in s.iter().enumerate() {
            let e = stats.entry(t.key.clone()).or_default();
            e.tf += 1.0;
            e.stop = is_stopword(t.surface);
            let letters: Vec<char> = t.surface.chars().filter(|c| c.is_alphabetic()).collect();
            if letters.len() > 1 && letters.iter().all(|c| c.is_uppercase()) {
                e.tf_upper += 1.0;
            } else if !t.sentence_start && letters.first().is_some_and(|c| c.is_uppercase()) {
                e.tf_capital += 1.0;
            }
            if e.sentences.last() != Some(&si) {
                e.sentences.push(si);
            }
            // Co-occurrence with the immediate neighbours (YAKE's default window of one).
            if i > 0 {
                *e.left.entry(s[i - 1].key.clone()).or_default() += 1.0;
            }
            if i + 1 < s.len() {
                *e.right.entry(s[i + 1].key.clone()).or_default() += 1.0;
            }
        }
    }
    stats
}

fn word_scores(stats: &HashMap<String, TermStats>, n_sent: usize) -> HashMap<String, f64> {
    let content: Vec<f64> = stats.values().filter(|s| !s.stop).map(|s| s.tf).collect();
    let n = content.len().max(1) as f64;
    let mean = content.iter().sum::<f64>() / n;
    let std = (content.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let max_tf = content.iter().copied().fold(1.0, f64::max);
    stats
        .iter()
        .map(|(k, s)| {
            let case = s.tf_upper.max(s.tf_capital) / (1.0 + s.tf.ln());
            let median = median_of(&s.sentences);
            let pos = (3.0 + median).ln().ln();
            let freq = s.tf / (mean + std);
            let spread = |m: &HashMap<String, f64>| {
                let total: f64 = m.values().sum();
                if total > 0.0 {
                    m.len() as f64 / total
                } else {
                    0.0
                }
            };
            let rel = (0.5 + spread(&s.left) * (s.tf / max_tf))
                + (0.5 + spread(&s.right) * (s.tf / max_tf));
            let different = s.sentences.len() as f64 / n_sent.max(1) as f64;
            let h = (pos * rel) / (case + freq / rel + different / rel);
            (k.clone(), h)
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
