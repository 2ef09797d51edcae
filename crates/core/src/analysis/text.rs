//! Tokens and sentences shared by the keyword, summary and heuristic passes. Deliberately
//! simple (English, whitespace and punctuation): the analyzers only need stable word
//! boundaries, not linguistics.

use std::collections::HashMap;

/// English function words plus chat filler ("hi", "thanks", "okay") that never make a topic.
/// Written for confab (not copied from a licensed list); sorted so lookups can binary-search.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "ah",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "anything",
    "are",
    "aren't",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "bye",
    "can",
    "can't",
    "cannot",
    "could",
    "couldn't",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "doing",
    "don't",
    "down",
    "during",
    "each",
    "else",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "get",
    "gets",
    "getting",
    "go",
    "going",
    "got",
    "had",
    "hadn't",
    "has",
    "hasn't",
    "have",
    "haven't",
    "having",
    "he",
    "he'd",
    "he'll",
    "he's",
    "hello",
    "her",
    "here",
    "here's",
    "hers",
    "herself",
    "hey",
    "hi",
    "him",
    "himself",
    "his",
    "how",
    "how's",
    "i",
    "i'd",
    "i'll",
    "i'm",
    "i've",
    "if",
    "in",
    "into",
    "is",
    "isn't",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "know",
    "let",
    "let's",
    "like",
    "lot",
    "make",
    "may",
    "maybe",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "mustn't",
    "my",
    "myself",
    "need",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "oh",
    "ok",
    "okay",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "ought",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "please",
    "pretty",
    "quite",
    "rather",
    "really",
    "right",
    "said",
    "same",
    "say",
    "says",
    "see",
    "shall",
    "shan't",
    "she",
    "she'd",
    "she'll",
    "she's",
    "should",
    "shouldn't",
    "so",
    "some",
    "something",
    "still",
    "such",
    "sure",
    "take",
    "tell",
    "than",
    "thank",
    "thanks",
    "that",
    "that's",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "there's",
    "these",
    "they",
    "they'd",
    "they'll",
    "they're",
    "they've",
    "thing",
    "things",
    "think",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "us",
    "use",
    "very",
    "want",
    "was",
    "wasn't",
    "way",
    "we",
    "we'd",
    "we'll",
    "we're",
    "we've",
    "well",
    "were",
    "weren't",
    "what",
    "what's",
    "when",
    "when's",
    "where",
    "where's",
    "which",
    "while",
    "who",
    "who's",
    "whom",
    "why",
    "why's",
    "will",
    "with",
    "won't",
    "would",
    "wouldn't",
    "yeah",
    "yes",
    "yet",
    "you",
    "you'd",
    "you'll",
    "you're",
    "you've",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// The longest stop word, in bytes: a word longer than this once lower-cased is not one.
const MAX_STOPWORD: usize = {
    let (mut i, mut max) = (0, 0);
    while i < STOPWORDS.len() {
        if STOPWORDS[i].len() > max {
            max = STOPWORDS[i].len();
        }
        i += 1;
    }
    max
};

/// True for a function word or chat filler (case-insensitive; curly apostrophes count).
///
/// Lower-cased into a buffer on the stack rather than a new string: it runs for every word of
/// every analysed conversation, and the allocations were a fifth of the analyzer's time.
/// Character by character, `to_lowercase` differs from `str::to_lowercase` only for a final
/// capital sigma, and no stop word has one.
pub fn is_stopword(word: &str) -> bool {
    let mut buf = [0u8; MAX_STOPWORD];
    let mut n = 0;
    for c in word.chars() {
        let c = if c == '\u{2019}' { '\'' } else { c };
        for l in c.to_lowercase() {
            let len = l.len_utf8();
            if n + len > MAX_STOPWORD {
                return false;
            }
            l.encode_utf8(&mut buf[n..n + len]);
            n += len;
        }
    }
    std::str::from_utf8(&buf[..n]).is_ok_and(|w| STOPWORDS.binary_search(&w).is_ok())
}

/// The id of `word`'s normalised form ([`norm`]) in `ids`, the next free one when it is new.
/// The analyzer compares words by these ids: integer keys and merges of sorted id lists cost
/// a fraction of what hash maps and sets of strings did.
pub fn word_id(ids: &mut HashMap<String, u32>, word: &str) -> u32 {
    let next = ids.len() as u32;
    *ids.entry(norm(word)).or_insert(next)
}

/// The content words of `s` (not stop words) as sorted, distinct [`word_id`]s.
pub fn content_ids(s: &str, ids: &mut HashMap<String, u32>) -> Vec<u32> {
    let mut bag: Vec<u32> = words(s)
        .filter(|w| !is_stopword(w))
        .map(|w| word_id(ids, w))
        .collect();
    bag.sort_unstable();
    bag.dedup();
    bag
}

/// How many ids two sorted, distinct lists share.
pub fn shared(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Words: maximal runs of letters, digits, apostrophes and inner hyphens.
pub fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '\u{2019}' || c == '-'))
        .map(|w| w.trim_matches(|c: char| c == '\'' || c == '\u{2019}' || c == '-'))
        .filter(|w| !w.is_empty())
}

/// A word reduced for comparison: lower case, a plural or possessive `s` dropped. Crude on
/// purpose: it only has to make "refund" and "refunds" meet.
pub fn norm(word: &str) -> String {
    let mut w = word.to_lowercase();
    if w.contains('\u{2019}') {
        w = w.replace('\u{2019}', "'");
    }
    if let Some(stripped) = w.strip_suffix("'s") {
        w = stripped.to_owned();
    }
    if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w.pop();
    }
    w
}

/// Sentences: split after `.`, `!`, `?` (runs of them) followed by whitespace, and at line
/// breaks. Trimmed; empty pieces dropped.
pub fn sentences(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\n' {
            push_trimmed(&mut out, &s[start..i]);
            start = i + 1;
        } else if matches!(b, b'.' | b'!' | b'?') {
            let mut j = i + 1;
            while j < bytes.len() && matches!(bytes[j], b'.' | b'!' | b'?') {
                j += 1;
            }
            if j == bytes.len() || bytes[j].is_ascii_whitespace() {
                push_trimmed(&mut out, &s[start..j]);
                start = j;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    push_trimmed(&mut out, &s[start..]);
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let t = s.trim();
    if t.chars().any(char::is_alphanumeric) {
        out.push(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        assert!(
            STOPWORDS.windows(2).all(|w| w[0] < w[1]),
            "STOPWORDS must stay sorted"
        );
        assert!(is_stopword("The") && is_stopword("don\u{2019}t") && !is_stopword("refund"));
    }

    #[test]
    fn stopwords_match_the_lowercased_string_whatever_the_word() {
        let oracle = |w: &str| {
            let w = w.to_lowercase().replace('\u{2019}', "'");
            STOPWORDS.binary_search(&w.as_str()).is_ok()
        };
        let words = [
            "THE",
            "Don\u{2019}t",
            "DON'T",
            "i",
            "İ",
            "Σ",
            "ΣΑΣ",
            "straße",
            "STRASSE",
            "refund",
            "",
            "'",
            "\u{2019}",
            "themselves",
            "THEMSELVESS",
            "a-very-long-word-indeed",
        ];
        for w in words.iter().copied().chain(STOPWORDS.iter().copied()) {
            assert_eq!(is_stopword(w), oracle(w), "{w:?}");
            let upper = w.to_uppercase();
            assert_eq!(is_stopword(&upper), oracle(&upper), "{upper:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn stopwords_agree_with_the_oracle(w in "\\PC{0,12}") {
            let expected = {
                let l = w.to_lowercase().replace('\u{2019}', "'");
                STOPWORDS.binary_search(&l.as_str()).is_ok()
            };
            proptest::prop_assert_eq!(is_stopword(&w), expected);
        }
    }

    #[test]
    fn content_words_as_ids_and_what_two_lists_share() {
        let mut ids = HashMap::new();
        let a = content_ids("The refunds were refused; a refund is due.", &mut ids);
        let b = content_ids("Refund refused, again!", &mut ids);
        // "refunds"/"refund" meet; "the", "were", "a", "is" are stop words.
        assert_eq!(a.len(), 3, "{ids:?}");
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(shared(&a, &b), 2);
        assert_eq!(shared(&b, &a), 2);
        assert_eq!(shared(&a, &[]), 0);
        assert_eq!(word_id(&mut ids, "REFUND"), word_id(&mut ids, "refunds"));
    }

    #[test]
    fn splits_sentences_and_words() {
        assert_eq!(
            sentences("Hi there! Is v1.2 out?? Yes.\nNew line"),
            vec!["Hi there!", "Is v1.2 out??", "Yes.", "New line"]
        );
        let w: Vec<_> = words("It's a well-known 'quote', ok-").collect();
        assert_eq!(w, vec!["It's", "a", "well-known", "quote", "ok"]);
        assert_eq!(norm("Refunds"), "refund");
        assert_eq!(norm("class"), "class");
        assert_eq!(norm("user's"), "user");
    }
}
