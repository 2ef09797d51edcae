//! VADER sentiment (Hutto & Gilbert, ICWSM 2014): a port of PyPI `vaderSentiment` 3.3.2,
//! rule for rule, so per-message scores can be checked against the reference implementation
//! (`tests/vader_agreement.rs` holds it to 0.01 on real sentences). The lexicon and the emoji
//! descriptions are the package's own files (MIT), trimmed to the columns the scorer reads.
//!
//! Known deviation from the Rust `vader_sentiment` 0.1.1 crate, not from Python: that crate
//! pushes a raw sum of exactly 0 negative when the text ends in `?` or `!` ("Can you reset my
//! password?" → −0.046). Python only amplifies a non-zero sum, and so do we (a unit test pins
//! it). Quirks of the Python code that change scores are kept on purpose, with a note where
//! they look like mistakes (`but_check` below), because agreement is the point of a port.

use std::collections::HashMap;
use std::sync::OnceLock;

const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOSTERS_UP: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

const BOOSTERS_DOWN: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "just enough",
    "kind of",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sort of",
    "sorta",
    "sortof",
    "sort-of",
];

const SPECIAL_CASES: &[(&str, f64)] = &[
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

/// The four numbers `polarity_scores` answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polarity {
    /// Share of negative weight, 0..1.
    pub neg: f64,
    /// Share of neutral words, 0..1.
    pub neu: f64,
    /// Share of positive weight, 0..1.
    pub pos: f64,
    /// Normalised sum, −1..1 (rounded to 4 places like the reference).
    pub compound: f64,
}

struct Lexicon {
    words: HashMap<String, f64>,
    emoji: HashMap<char, &'static str>,
}

fn lexicon() -> &'static Lexicon {
    static LEX: OnceLock<Lexicon> = OnceLock::new();
    LEX.get_or_init(|| {
        let words = include_str!("data/vader_lexicon.tsv")
            .lines()
            .filter_map(|l| {
                let (w, v) = l.split_once('\t')?;
                Some((w.to_owned(), v.trim().parse().ok()?))
            })
            .collect();
        let emoji = include_str!("data/vader_emoji.tsv")
            .lines()
            .filter_map(|l| {
                let (e, d) = l.split_once('\t')?;
                Some((e.chars().next()?, d))
            })
            .collect();
        Lexicon { words, emoji }
    })
}

fn booster(word_lower: &str) -> Option<f64> {
    if BOOSTERS_UP.contains(&word_lower) {
        Some(B_INCR)
    } else if BOOSTERS_DOWN.contains(&word_lower) {
        Some(B_DECR)
    } else {
        None
    }
}

/// Python's `str.isupper()`: at least one cased character and no lower-case one.
fn is_upper(s: &str) -> bool {
    s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase)
}

fn negated(word_lower: &str) -> bool {
    NEGATE.contains(&word_lower) || word_lower.contains("n't")
}

/// Python's `str.strip(string.punctuation)`, keeping the token when two or fewer characters
/// would remain (emoticons such as `:)`).
fn strip_punc_if_word(token: &str) -> &str {
    let stripped = token.trim_matches(|c: char| c.is_ascii_punctuation());
    if stripped.chars().count() <= 2 {
        token
    } else {
        stripped
    }
}

/// Replaces emoji with their descriptions, as the reference does before tokenising.
fn replace_emoji(text: &str, lex: &Lexicon) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev_space = true;
    for ch in text.chars() {
        if let Some(d) = lex.emoji.get(&ch) {
            if !prev_space {
                out.push(' ');
            }
            out.push_str(d);
            prev_space = false;
        } else {
            out.push(ch);
            prev_space = ch == ' ';
        }
    }
    out
}

/// Scores one text the way `SentimentIntensityAnalyzer.polarity_scores` does.
pub fn polarity_scores(text: &str) -> Polarity {
    let lex = lexicon();
    let text = replace_emoji(text, lex);
    let text = text.trim();
    let words: Vec<&str> = text.split_whitespace().map(strip_punc_if_word).collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let caps = words.iter().filter(|w| is_upper(w)).count();
    let is_cap_diff = caps > 0 && caps < words.len();
    let s = Sentence {
        words: &words,
        lower: &lower,
        is_cap_diff,
        lex: &lex.words,
    };
    let mut sentiments = Vec::with_capacity(words.len());
    for (i, lw) in lower.iter().enumerate() {
        let kind_of = i + 1 < words.len() && lw == "kind" && lower[i + 1] == "of";
        if booster(lw).is_some() || kind_of {
            sentiments.push(0.0);
        } else {
            sentiments.push(s.valence(i));
        }
    }
    but_check(&lower, &mut sentiments);
    score_valence(&sentiments, text)
}

struct Sentence<'a> {
    words: &'a [&'a str],
    lower: &'a [String],
    is_cap_diff: bool,
    lex: &'a HashMap<String, f64>,
}

impl Sentence<'_> {
    fn in_lex(&self, i: usize) -> bool {
        self.lex.contains_key(&self.lower[i])
    }

    fn valence(&self, i: usize) -> f64 {
        let Some(&base) = self.lex.get(&self.lower[i]) else {
            return 0.0;
        };
        let lw = |k: usize| self.lower[k].as_str();
        let mut valence = base;
        if lw(i) == "no" && i + 1 < self.words.len() && self.in_lex(i + 1) {
            valence = 0.0;
        }
        if (i > 0 && lw(i - 1) == "no")
            || (i > 1 && lw(i - 2) == "no")
            || (i > 2 && lw(i - 3) == "no" && matches!(lw(i - 1), "or" | "nor"))
        {
            valence = base * N_SCALAR;
        }
        if is_upper(self.words[i]) && self.is_cap_diff {
            valence += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        for start_i in 0..3 {
            if i > start_i && !self.in_lex(i - (start_i + 1)) {
                let mut s = self.scalar_inc_dec(i - (start_i + 1), valence);
                if start_i == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start_i == 2 && s != 0.0 {
                    s *= 0.9;
                }
                valence += s;
                valence = self.negation_check(valence, start_i, i);
                if start_i == 2 {
                    valence = self.special_idioms_check(valence, i);
                }
            }
        }
        self.least_check(valence, i)
    }

    fn scalar_inc_dec(&self, k: usize, valence: f64) -> f64 {
        let Some(mut scalar) = booster(&self.lower[k]) else {
            return 0.0;
        };
        if valence < 0.0 {
            scalar = -scalar;
        }
        if is_upper(self.words[k]) && self.is_cap_diff {
            scalar += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        scalar
    }

    fn negation_check(&self, valence: f64, start_i: usize, i: usize) -> f64 {
        let lw = |k: usize| self.lower[k].as_str();
        match start_i {
            0 if negated(lw(i - 1)) => valence * N_SCALAR,
            1 => {
                if lw(i - 2) == "never" && matches!(lw(i - 1), "so" | "this") {
                    valence * 1.25
                } else if lw(i - 2) == "without" && lw(i - 1) == "doubt" {
                    valence
                } else if negated(lw(i - 2)) {
                    valence * N_SCALAR
                } else {
                    valence
                }
            }
            2 => {
                // The reference's precedence makes "so"/"this" right before the word boost
                // on its own, with or without "never": kept for agreement.
                if (lw(i - 3) == "never" && matches!(lw(i - 2), "so" | "this"))
                    || matches!(lw(i - 1), "so" | "this")
                {
                    valence * 1.25
                } else if lw(i - 3) == "without" && (lw(i - 2) == "doubt" || lw(i - 1) == "doubt") {
                    valence
                } else if negated(lw(i - 3)) {
                    valence * N_SCALAR
                } else {
                    valence
                }
            }
            _ => valence,
        }
    }

    fn special_idioms_check(&self, mut valence: f64, i: usize) -> f64 {
        let l = self.lower;
        let n = l.len();
        let onezero = format!("{} {}", l[i - 1], l[i]);
        let twoonezero = format!("{} {} {}", l[i - 2], l[i - 1], l[i]);
        let twoone = format!("{} {}", l[i - 2], l[i - 1]);
        let threetwoone = format!("{} {} {}", l[i - 3], l[i - 2], l[i - 1]);
        let threetwo = format!("{} {}", l[i - 3], l[i - 2]);
        let special = |s: &str| SPECIAL_CASES.iter().find(|(k, _)| *k == s).map(|(_, v)| *v);
        for seq in [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo] {
            if let Some(v) = special(seq) {
                valence = v;
                break;
            }
        }
        if n - 1 > i
            && let Some(v) = special(&format!("{} {}", l[i], l[i + 1]))
        {
            valence = v;
        }
        if n - 1 > i + 1
            && let Some(v) = special(&format!("{} {} {}", l[i], l[i + 1], l[i + 2]))
        {
            valence = v;
        }
        for ngram in [&threetwoone, &threetwo, &twoone] {
            if let Some(b) = booster(ngram) {
                valence += b;
            }
        }
        valence
    }

    fn least_check(&self, valence: f64, i: usize) -> f64 {
        let lw = |k: usize| self.lower[k].as_str();
        if i > 1 && !self.in_lex(i - 1) && lw(i - 1) == "least" {
            if lw(i - 2) != "at" && lw(i - 2) != "very" {
                return valence * N_SCALAR;
            }
        } else if i > 0 && !self.in_lex(i - 1) && lw(i - 1) == "least" {
            return valence * N_SCALAR;
        }
        valence
    }
}

/// Halves what comes before the first "but" and boosts what follows it by half. The reference
/// finds each value's index with `list.index`, i.e. the first equal value, so duplicates
/// resolve to the earliest slot; reproduced exactly.
fn but_check(lower: &[String], sentiments: &mut [f64]) {
    let Some(bi) = lower.iter().position(|w| w == "but") else {
        return;
    };
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        let si = sentiments
            .iter()
            .position(|x| *x == v)
            .expect("the value is in the list");
        if si < bi {
            sentiments[si] = v * 0.5;
        } else if si > bi {
            sentiments[si] = v * 1.5;
        }
    }
}

fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.matches('!').count().min(4) as f64 * 0.292;
    let qm = match text.matches('?').count() {
        0 | 1 => 0.0,
        n @ 2..=3 => n as f64 * 0.18,
        _ => 0.96,
    };
    ep + qm
}

fn normalize(score: f64) -> f64 {
    (score / (score * score + 15.0).sqrt()).clamp(-1.0, 1.0)
}

fn round_to(x: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x * m).round() / m
}

fn score_valence(sentiments: &[f64], text: &str) -> Polarity {
    if sentiments.is_empty() {
        return Polarity {
            neg: 0.0,
            neu: 0.0,
            pos: 0.0,
            compound: 0.0,
        };
    }
    let mut sum: f64 = sentiments.iter().sum();
    let amp = punctuation_emphasis(text);
    // Only a non-zero sum is amplified: neutral questions stay neutral (see the module doc).
    if sum > 0.0 {
        sum += amp;
    } else if sum < 0.0 {
        sum -= amp;
    }
    let compound = normalize(sum);
    let (mut pos_sum, mut neg_sum, mut neu) = (0.0, 0.0, 0.0);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu += 1.0;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += amp;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= amp;
    }
    let total = pos_sum + neg_sum.abs() + neu;
    Polarity {
        neg: round_to((neg_sum / total).abs(), 3),
        neu: round_to((neu / total).abs(), 3),
        pos: round_to((pos_sum / total).abs(), 3),
        compound: round_to(compound, 4),
    }
}

/// Just the compound score.
pub fn compound(text: &str) -> f64 {
    polarity_scores(text).compound
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by vaderSentiment 3.3.2's own `__main__` examples.
    #[test]
    fn matches_the_reference_examples() {
        let cases = [
            ("VADER is smart, handsome, and funny.", 0.8316),
            ("VADER is smart, handsome, and funny!", 0.8439),
            ("VADER is very smart, handsome, and funny.", 0.8545),
            ("VADER is VERY SMART, handsome, and FUNNY.", 0.9227),
            ("VADER is VERY SMART, handsome, and FUNNY!!!", 0.9342),
            ("VADER is not smart, handsome, nor funny.", -0.7424),
            ("The book was good.", 0.4404),
            ("At least it isn't a horrible book.", 0.431),
            ("The book was only kind of good.", 0.3832),
            ("Today SUX!", -0.5461),
            ("Make sure you :) or :D today!", 0.8633),
            ("Not bad at all", 0.431),
            ("I am not happy but the food was good and good", 0.7718),
        ];
        for (text, want) in cases {
            let got = compound(text);
            assert!((got - want).abs() < 1e-4, "{text}: got {got}, want {want}");
        }
    }

    #[test]
    fn neutral_questions_and_exclamations_stay_neutral() {
        for t in [
            "Can you reset my password?",
            "Really?!",
            "What??",
            "Where is it!",
        ] {
            assert_eq!(compound(t), 0.0, "{t}");
        }
        assert!(compound("Great!!") > compound("Great"));
    }

    #[test]
    fn empty_text_scores_zero() {
        assert_eq!(compound(""), 0.0);
        assert_eq!(compound("   "), 0.0);
    }
}
