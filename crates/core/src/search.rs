//! Full-text search rules shared by every backend: how text becomes index tokens, the query
//! language, and snippets. The backend only stores tokens and ranks; the rules live here so
//! SQLite and PostgreSQL agree on what matches.
//!
//! Tokens: a maximal run of letters, digits and combining marks, lowercased, with diacritics
//! removed (`Crème` → `creme`). Every CJK character (Han, kana, Hangul) is a token on its own,
//! so a word of any length written without spaces is found as a phrase of its characters
//! (`中文` is the phrase `中 文`): substring search for CJK without a dictionary.

use std::fmt::Write as _;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::error::ValidationError;

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Most terms in one query.
pub const MAX_TERMS: usize = 32;

/// True for characters written without spaces between words (each is its own token).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF      // CJK radicals, Kangxi
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3100..=0x312F    // Bopomofo
        | 0x3130..=0x318F    // Hangul compatibility jamo
        | 0x31F0..=0x31FF    // Katakana extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x20000..=0x3134F) // CJK extensions B–G
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// Lowercases and removes diacritics.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    fold_into(&mut out, s);
    out
}

/// [`fold`], appended to `out`. ASCII, most words of most messages, has no diacritics to take
/// off and lowercases byte by byte: the decomposition it skips made `index_text` about 4 % of
/// the SQLite writer's time (docs/performance.md, 2026-11-30).
fn fold_into(out: &mut String, s: &str) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| char::from(b.to_ascii_lowercase())));
    } else {
        out.extend(
            s.nfd()
                .filter(|c| !is_combining_mark(*c))
                .flat_map(char::to_lowercase),
        );
    }
}

/// The tokens of `text` with their byte ranges in it, unfolded.
pub fn token_spans(text: &str) -> Vec<(usize, usize)> {
    spans(text).collect()
}

/// [`token_spans`] one at a time, without the vector (snippets stop early; [`tokens`] folds
/// each as it comes).
fn spans(text: &str) -> Spans<'_> {
    Spans {
        text,
        chars: text.char_indices(),
        start: None,
        pending: None,
    }
}

struct Spans<'a> {
    text: &'a str,
    chars: std::str::CharIndices<'a>,
    /// Where the word being read began.
    start: Option<usize>,
    /// A CJK character read while ending a word: the token after it.
    pending: Option<(usize, usize)>,
}

impl Iterator for Spans<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if let Some(p) = self.pending.take() {
            return Some(p);
        }
        for (i, c) in self.chars.by_ref() {
            // ASCII first, nearly every character of nearly every message: a letter or digit
            // is a word's, anything else ends one, without the Unicode tables (the combining
            // marks' lookup for every space and comma was most of a snippet's time).
            if c.is_ascii() {
                if c.is_ascii_alphanumeric() {
                    self.start.get_or_insert(i);
                } else if let Some(s) = self.start.take() {
                    return Some((s, i));
                }
            } else if is_cjk(c) {
                let own = (i, i + c.len_utf8());
                if let Some(s) = self.start.take() {
                    self.pending = Some(own);
                    return Some((s, i));
                }
                return Some(own);
            } else if is_word_char(c) {
                self.start.get_or_insert(i);
            } else if let Some(s) = self.start.take() {
                return Some((s, i));
            }
        }
        self.start.take().map(|s| (s, self.text.len()))
    }
}

/// The folded tokens of `text`.
pub fn tokens(text: &str) -> Vec<String> {
    spans(text)
        .map(|(a, b)| fold(&text[a..b]))
        .filter(|t| !t.is_empty())
        .collect()
}

/// A short tag that prefixes every token of one tenant, so one index serves every tenant while
/// a query can only ever match its own tenant's rows (and term statistics are per tenant).
/// Taken from the random tail of the tenant's UUIDv7.
pub fn tenant_tag(tenant: &[u8]) -> String {
    let tail = &tenant[tenant.len().saturating_sub(6)..];
    let mut s = String::with_capacity(13);
    s.push('t');
    for b in tail {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// What the index stores for a message: its folded tokens, each prefixed with the tenant tag,
/// separated by spaces (the index's own tokenizer only splits on the spaces).
pub fn index_text(tag: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    for (a, b) in spans(text) {
        let mark = out.len();
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(tag);
        let word = out.len();
        fold_into(&mut out, &text[a..b]);
        if out.len() == word {
            // Folded to nothing (a lone combining mark): no token, as in [`tokens`].
            out.truncate(mark);
        }
    }
    out
}

/// One searched-for item: a phrase of folded tokens (one token for a plain word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Folded tokens, matched adjacent and in order.
    pub tokens: Vec<String>,
    /// The last token matches as a prefix (`tok*`).
    pub prefix: bool,
}

/// A parsed query: every group must match (AND), a group matches when any of its terms does
/// (OR), and no excluded term may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// AND of ORs.
    pub groups: Vec<Vec<Term>>,
    /// NOT.
    pub excluded: Vec<Term>,
}

fn bad(msg: impl Into<String>) -> ValidationError {
    ValidationError::field("q", msg)
}

/// A raw item of the query text before it becomes a term.
enum Item {
    Or,
    Term {
        text: String,
        quoted: bool,
        prefix: bool,
        negated: bool,
    },
}

fn lex(q: &str) -> Result<Vec<Item>, ValidationError> {
    let mut items = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let negated = c == '-';
        if negated {
            chars.next();
        }
        let (text, quoted) = if chars.peek() == Some(&'"') {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err(bad("a quoted phrase is not closed (missing `\"`)")),
                }
            }
            (s, true)
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            (s, false)
        };
        let prefix = if chars.peek() == Some(&'*') {
            chars.next();
            true
        } else {
            false
        };
        let (text, prefix) = match text.strip_suffix('*') {
            Some(t) if !quoted => (t.to_owned(), true),
            _ => (text, prefix),
        };
        if !quoted && !negated && !prefix && text == "OR" {
            items.push(Item::Or);
            continue;
        }
        items.push(Item::Term {
            text,
            quoted,
            prefix,
            negated,
        });
    }
    Ok(items)
}

/// Parses the query language: words (all must match), `"exact phrases"`, `prefix*`,
/// `a OR b`, `-excluded`. Anything it cannot read is a 400 naming `q`, never an engine error.
pub fn parse_query(q: &str) -> Result<Query, ValidationError> {
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(bad(format!("must be at most {MAX_QUERY_CHARS} characters")));
    }
    let mut groups: Vec<Vec<Term>> = Vec::new();
    let mut excluded = Vec::new();
    let mut pending_or = false;
    for item in lex(q)? {
        match item {
            Item::Or => {
                if groups.is_empty() || pending_or {
                    return Err(bad("`OR` must stand between two terms"));
                }
                pending_or = true;
            }
            Item::Term {
                text,
                quoted,
                prefix,
                negated,
            } => {
                let toks = tokens(&text);
                if toks.is_empty() {
                    if prefix || quoted {
                        return Err(bad(format!(
                            "`{text}` has no letters or digits to search for"
                        )));
                    }
                    // Bare punctuation between words ("-", "&") is a separator, as in the text.
                    continue;
                }
                let term = Term {
                    tokens: toks,
                    prefix,
                };
                if negated {
                    if pending_or {
                        return Err(bad("`OR` cannot be followed by an excluded term"));
                    }
                    excluded.push(term);
                } else if pending_or {
                    groups.last_mut().expect("checked above").push(term);
                    pending_or = false;
                } else {
                    groups.push(vec![term]);
                }
            }
        }
    }
    if pending_or {
        return Err(bad("`OR` must stand between two terms"));
    }
    if groups.is_empty() {
        return Err(bad(if excluded.is_empty() {
            "must contain at least one word to search for"
        } else {
            "must contain at least one word that is not excluded"
        }));
    }
    let n: usize = groups.iter().map(Vec::len).sum::<usize>() + excluded.len();
    if n > MAX_TERMS {
        return Err(bad(format!("must have at most {MAX_TERMS} terms")));
    }
    Ok(Query { groups, excluded })
}

impl Query {
    /// Whether a term matches by prefix (`tok*`): the index expands it into every token it
    /// starts, in one step that can take a good part of a second over a large index.
    pub fn has_prefix(&self) -> bool {
        self.groups
            .iter()
            .flatten()
            .chain(&self.excluded)
            .any(|t| t.prefix)
    }

    /// The FTS5 expression for this query, with every token prefixed by `tag` and quoted, so
    /// no user input can be read as FTS5 syntax.
    pub fn to_fts5(&self, tag: &str) -> String {
        let term = |t: &Term| {
            let mut s = String::from("\"");
            for (i, tok) in t.tokens.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(tag);
                s.push_str(&tok.replace('"', "\"\""));
            }
            s.push('"');
            if t.prefix {
                s.push_str(" *");
            }
            s
        };
        let mut out = self
            .groups
            .iter()
            .map(|g| {
                let parts: Vec<String> = g.iter().map(term).collect();
                format!("({})", parts.join(" OR "))
            })
            .collect::<Vec<_>>()
            .join(" AND ");
        if !self.excluded.is_empty() {
            out = format!("({out})");
            for t in &self.excluded {
                out.push_str(" NOT ");
                out.push_str(&term(t));
            }
        }
        out
    }

    /// [`Query::highlights`] for an ASCII token not yet folded (any case).
    fn highlights_ascii(&self, tok: &[u8]) -> bool {
        self.groups.iter().flatten().any(|t| {
            let last = t.tokens.len().saturating_sub(1);
            t.tokens
                .iter()
                .enumerate()
                .any(|(i, q)| token_matches(tok, q.as_bytes(), t.prefix && i == last))
        })
    }

    /// True when the folded token `tok` is one the query looks for (for highlighting).
    pub fn highlights(&self, tok: &str) -> bool {
        self.groups.iter().flatten().any(|t| {
            t.tokens.iter().enumerate().any(|(i, q)| {
                if t.prefix && i + 1 == t.tokens.len() {
                    tok.starts_with(q.as_str())
                } else {
                    tok == q
                }
            })
        })
    }
}

/// A message's tokens for ranking: slices of ASCII text compared without case (for ASCII the
/// tokenizer's folding is exactly ASCII lowercasing), or the folded tokens of any other text.
/// The ASCII path allocates nothing, and it is the one nearly every message takes.
fn rank_tokens(content: &str) -> Vec<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    if !content.is_ascii() {
        return tokens(content).into_iter().map(Cow::Owned).collect();
    }
    content
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(Cow::Borrowed)
        .collect()
}

impl Query {
    /// The terms that score (every term of every group, in order; excluded terms never occur
    /// in a match).
    pub fn scored_terms(&self) -> impl Iterator<Item = &Term> {
        self.groups.iter().flatten()
    }

    /// How often each of [`Query::scored_terms`] occurs in `content` (a phrase counts where
    /// all its tokens stand in order; a prefix term counts every token it starts), written to
    /// `tf`; answers the content's length in tokens. The same tokens the index holds, so a
    /// ranking computed from these agrees with the index's own statistics.
    pub fn term_frequencies(&self, content: &str, tf: &mut Vec<u32>) -> u32 {
        self.term_counter().count(content, tf)
    }

    /// A counter of this query's terms, built once for many texts.
    pub fn term_counter(&self) -> TermCounter<'_> {
        TermCounter {
            query: self,
            words: self
                .scored_terms()
                .filter(|t| t.tokens.len() == 1)
                .map(|t| (t.tokens[0].as_bytes(), t.prefix))
                // A folded word is letters and digits; anything else takes the general path.
                .filter(|(q, _)| {
                    !q.is_empty() && q.iter().all(|c| !c.is_ascii() || c.is_ascii_alphanumeric())
                })
                .collect(),
        }
    }

    /// [`Query::term_frequencies`] from the list of tokens (phrases, non-ASCII text).
    fn tf_from_tokens(&self, content: &str, tf: &mut [u32]) -> u32 {
        let toks = rank_tokens(content);
        for (n, term) in tf.iter_mut().zip(self.scored_terms()) {
            let k = term.tokens.len();
            if k == 0 || toks.len() < k {
                continue;
            }
            for i in 0..=toks.len() - k {
                let hit = term.tokens.iter().enumerate().all(|(j, q)| {
                    token_matches(
                        toks[i + j].as_bytes(),
                        q.as_bytes(),
                        term.prefix && j + 1 == k,
                    )
                });
                *n += u32::from(hit);
            }
        }
        u32::try_from(toks.len()).unwrap_or(u32::MAX)
    }
}

/// Counts a query's terms in texts (see [`Query::term_frequencies`]).
pub struct TermCounter<'q> {
    query: &'q Query,
    /// Every scored term as (folded token, prefix); used when all of them are single words.
    words: Vec<(&'q [u8], bool)>,
}

impl TermCounter<'_> {
    /// Writes each scored term's count in `content` to `tf`; answers the length in tokens.
    pub fn count(&self, content: &str, tf: &mut Vec<u32>) -> u32 {
        tf.clear();
        tf.resize(self.query.scored_terms().count(), 0);
        if self.words.len() != tf.len() || !content.is_ascii() {
            return self.query.tf_from_tokens(content, tf);
        }
        // The common case (plain words, ASCII text). This runs for every candidate of every
        // ranked search, so it neither tokenizes nor allocates: each word is found by a SIMD
        // scan for its first letter (either case) and checked in place, and the length is a
        // count of token starts that the compiler vectorizes. Half a microsecond a message
        // less than a byte-by-byte tokenizer, which was a third of a search's CPU.
        let b = content.as_bytes();
        for (n, &(q, prefix)) in tf.iter_mut().zip(&self.words) {
            *n = occurrences(b, q, prefix);
        }
        token_count(b)
    }
}

/// Tokens (runs of ASCII letters and digits) in ASCII text `b`: the bytes where such a run
/// starts, summed over byte pairs without a branch.
fn token_count(b: &[u8]) -> u32 {
    let Some(&first) = b.first() else {
        return 0;
    };
    let starts: u32 = b
        .iter()
        .zip(&b[1..])
        .map(|(p, c)| u32::from(c.is_ascii_alphanumeric() & !p.is_ascii_alphanumeric()))
        .sum();
    starts + u32::from(first.is_ascii_alphanumeric())
}

/// Tokens of ASCII text `b` that are the folded word `q` (or start with it, when `prefix`),
/// ignoring ASCII case. `q` holds no ASCII byte that is not a letter or digit (the counter
/// only takes such words), so a match can only begin where a token begins.
fn occurrences(b: &[u8], q: &[u8], prefix: bool) -> u32 {
    let Some(&first) = q.first() else {
        return 0;
    };
    let mut n = 0;
    for i in memchr::memchr2_iter(first, first.to_ascii_uppercase(), b) {
        n += u32::from(word_at(b, i, q, prefix));
    }
    n
}

/// Where in `within` (a start of ASCII text `b`) the first token of `b` that is the folded
/// word `q` (or starts with it, when `prefix`) begins, as [`occurrences`] finds them; that
/// token may end past `within`.
fn first_word_in(within: &[u8], b: &[u8], q: &[u8], prefix: bool) -> Option<usize> {
    let first = *q.first()?;
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), within)
        .find(|&i| word_at(b, i, q, prefix))
}

/// Whether a token of ASCII text `b` that is the folded word `q` (or starts with it, when
/// `prefix`) begins at byte `i`, ignoring ASCII case. `q` is ASCII letters and digits.
#[inline]
fn word_at(b: &[u8], i: usize, q: &[u8], prefix: bool) -> bool {
    let end = i + q.len();
    let starts_token = i == 0 || !b[i - 1].is_ascii_alphanumeric();
    let ends_token = prefix || b.get(end).is_none_or(|c| !c.is_ascii_alphanumeric());
    starts_token && ends_token && b.get(i..end).is_some_and(|t| t.eq_ignore_ascii_case(q))
}

/// Whether a text token (ASCII case not yet folded, or already folded) is the folded query
/// token `q`, or starts with it when `prefix`.
fn token_matches(t: &[u8], q: &[u8], prefix: bool) -> bool {
    if prefix {
        t.len() >= q.len() && t[..q.len()].eq_ignore_ascii_case(q)
    } else {
        t.eq_ignore_ascii_case(q)
    }
}

/// Marks put around matched words in snippets.
pub const MARK_START: &str = "<mark>";
/// See [`MARK_START`].
pub const MARK_END: &str = "</mark>";
/// Tokens shown in a snippet.
const SNIPPET_TOKENS: usize = 24;
/// Tokens shown before the first match.
const SNIPPET_LEAD: usize = 6;

/// A short excerpt of `content` around the first matched word, matched words wrapped in
/// `<mark>…</mark>` and `…` where text was cut. The content is not HTML-escaped.
pub fn snippet(content: &str, q: &Query) -> String {
    let hit = |(a, b): (usize, usize)| {
        let t = &content[a..b];
        // ASCII folds to its lowercase, which the comparison ignores: no allocation for the
        // tokens of nearly every message.
        if t.is_ascii() {
            q.highlights_ascii(t.as_bytes())
        } else {
            q.highlights(&fold(t))
        }
    };
    let Cut {
        window,
        first,
        cut_before,
        cut_after,
    } = ascii_cut(content, q).unwrap_or_else(|| streamed_cut(content, &hit));
    let start = if cut_before { window[0].0 } else { 0 };
    let end = if cut_after {
        window[window.len() - 1].1
    } else {
        content.len()
    };
    // Room for both ellipses and four highlighted words, so nearly no snippet grows.
    let mut out = String::with_capacity(
        end - start + 2 * '…'.len_utf8() + 4 * (MARK_START.len() + MARK_END.len()),
    );
    if cut_before {
        out.push('…');
    }
    let mut pos = start;
    if let Some(f) = first {
        for (i, &(a, b)) in window.iter().enumerate().skip(f) {
            if i > f && !hit((a, b)) {
                continue;
            }
            out.push_str(&content[pos..a]);
            out.push_str(MARK_START);
            out.push_str(&content[a..b]);
            out.push_str(MARK_END);
            pos = b;
        }
    }
    out.push_str(&content[pos..end]);
    if cut_after {
        out.push('…');
    }
    out
}

/// The tokens a snippet shows and where it cuts the text.
struct Cut {
    /// Up to [`SNIPPET_TOKENS`] token spans: up to [`SNIPPET_LEAD`] before the first match,
    /// then the match and those after it (or the text's first tokens when nothing matched).
    window: Vec<(usize, usize)>,
    /// The first match's place in `window`.
    first: Option<usize>,
    /// Tokens come before the window / after it.
    cut_before: bool,
    cut_after: bool,
}

/// The [`Cut`] of any text, token by token from its start up to the window's end (a hit's
/// message can be long; its snippet is not).
fn streamed_cut(content: &str, hit: &impl Fn((usize, usize)) -> bool) -> Cut {
    let mut window = Vec::with_capacity(SNIPPET_TOKENS + 1);
    let mut it = spans(content);
    let (mut first, mut cut_before) = (None, false);
    for s in it.by_ref() {
        window.push(s);
        if hit(s) {
            first = Some(window.len() - 1);
            break;
        }
        if window.len() > SNIPPET_LEAD {
            window.remove(0);
            cut_before = true;
        }
    }
    if first.is_none() {
        // No token matched (the index matched a form the snippet cannot see): the start.
        (window, cut_before, it) = (
            Vec::with_capacity(SNIPPET_TOKENS + 1),
            false,
            spans(content),
        );
    }
    let cut_after = fill(&mut window, &mut it);
    Cut {
        window,
        first,
        cut_before,
        cut_after,
    }
}

/// Fills a snippet's window from `tokens` up to [`SNIPPET_TOKENS`]; answers whether tokens are
/// left after it (the text is cut there).
fn fill(
    window: &mut Vec<(usize, usize)>,
    tokens: &mut impl Iterator<Item = (usize, usize)>,
) -> bool {
    while window.len() < SNIPPET_TOKENS {
        match tokens.next() {
            Some(s) => window.push(s),
            None => return false,
        }
    }
    tokens.next().is_some()
}

/// The [`Cut`] of ASCII text, or `None` to leave it to [`streamed_cut`] (text that is not
/// ASCII, a query word that is not, no match). Every search hit's snippet is made, and the
/// token-by-token walk to the first match was most of a snippet's time: here the match is
/// found by a SIMD scan for each query word's first letter, as [`TermCounter`] counts them,
/// and only the window's tokens around it are read, backwards and forwards from it. In ASCII
/// text a token is a run of letters and digits, as [`spans`] reads it.
fn ascii_cut(content: &str, q: &Query) -> Option<Cut> {
    if !content.is_ascii() {
        return None;
    }
    let b = content.as_bytes();
    // Every word a snippet marks: each term's tokens, the last one a prefix in a prefix term.
    let mut at = b.len();
    for t in q.groups.iter().flatten() {
        let last = t.tokens.len().checked_sub(1)?;
        for (i, word) in t.tokens.iter().enumerate() {
            let w = word.as_bytes();
            if w.is_empty() || !w.iter().all(u8::is_ascii_alphanumeric) {
                return None;
            }
            if let Some(i) = first_word_in(&b[..at], b, w, t.prefix && i == last) {
                at = i;
            }
        }
    }
    if at == b.len() {
        return None;
    }
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    // Up to SNIPPET_LEAD tokens before the match, read backwards from it.
    let mut window = Vec::with_capacity(SNIPPET_TOKENS + 1);
    let mut j = at;
    while window.len() < SNIPPET_LEAD {
        while j > 0 && !alnum(&b[j - 1]) {
            j -= 1;
        }
        if j == 0 {
            break;
        }
        let end = j;
        while j > 0 && alnum(&b[j - 1]) {
            j -= 1;
        }
        window.push((j, end));
    }
    let cut_before = window.len() == SNIPPET_LEAD && b[..j].iter().any(alnum);
    window.reverse();
    let first = window.len();
    // The match and the tokens after it: runs of letters and digits, as `spans` reads ASCII
    // text, byte by byte rather than by character (a tenth of a snippet's time).
    let mut i = at;
    let mut after = std::iter::from_fn(|| {
        i += b[i..].iter().position(alnum)?;
        let start = i;
        i += b[i..].iter().position(|c| !alnum(c)).unwrap_or(b.len() - i);
        Some((start, i))
    });
    let cut_after = fill(&mut window, &mut after);
    Some(Cut {
        window,
        first: Some(first),
        cut_before,
        cut_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn folds_accents_and_case() {
        assert_eq!(tokens("Crème BRÛLÉE, naïve"), ["creme", "brulee", "naive"]);
        // Already decomposed input folds the same way.
        assert_eq!(tokens("Cre\u{300}me"), ["creme"]);
    }

    #[test]
    fn cjk_characters_are_tokens() {
        assert_eq!(
            tokens("我喜欢中文abc"),
            ["我", "喜", "欢", "中", "文", "abc"]
        );
        assert_eq!(
            tokens("東京タワー"),
            ["東", "京", "タ", "ワ", "ー"].map(String::from)
        );
    }

    #[test]
    fn index_text_prefixes_the_tenant() {
        assert_eq!(index_text("tx", "Héllo 世界"), "txhello tx世 tx界");
        assert_eq!(
            tenant_tag(&[0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]),
            "t0a0b0c0d0e0f"
        );
    }

    /// The folding and indexing before their ASCII fast paths, as the reference.
    fn fold_slow(s: &str) -> String {
        s.nfd()
            .filter(|c| !is_combining_mark(*c))
            .flat_map(char::to_lowercase)
            .collect()
    }

    fn index_text_slow(tag: &str, text: &str) -> String {
        let folded: Vec<String> = spans(text)
            .map(|(a, b)| fold_slow(&text[a..b]))
            .filter(|t| !t.is_empty())
            .collect();
        folded
            .iter()
            .map(|t| format!("{tag}{t}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_ascii_fast_paths_fold_and_index_as_before() {
        for text in [
            "",
            "Hello, WORLD! it's 42",
            "Héllo Ça VA",
            "\u{301} a\u{301}b \u{301}",
            "東京タワー and TOKYO",
            "ǅungla ΣΊΣΥΦΟΣ İstanbul ß",
            "  spaced\tout\nwords  ",
        ] {
            assert_eq!(
                index_text("tx", text),
                index_text_slow("tx", text),
                "{text:?}"
            );
            assert_eq!(fold(text), fold_slow(text), "{text:?}");
        }
    }

    /// Token spans as first written: every character through the Unicode classes.
    fn spans_slow(text: &str) -> Vec<(usize, usize)> {
        let (mut out, mut start) = (Vec::new(), None);
        for (i, c) in text.char_indices() {
            if is_cjk(c) {
                if let Some(s) = start.take() {
                    out.push((s, i));
                }
                out.push((i, i + c.len_utf8()));
            } else if is_word_char(c) {
                start.get_or_insert(i);
            } else if let Some(s) = start.take() {
                out.push((s, i));
            }
        }
        out.extend(start.map(|s| (s, text.len())));
        out
    }

    proptest::proptest! {
        #[test]
        fn spans_take_the_ascii_path_to_the_same_tokens(
            text in "([a-zA-Z0-9 ,.'!?\t-]|\\PC){0,60}",
        ) {
            proptest::prop_assert_eq!(token_spans(&text), spans_slow(&text));
        }

        #[test]
        fn indexing_any_text_is_unchanged(text in "\\PC{0,40}") {
            proptest::prop_assert_eq!(index_text("t1", &text), index_text_slow("t1", &text));
            proptest::prop_assert_eq!(fold(&text), fold_slow(&text));
        }
    }

    #[test]
    fn parses_the_query_language() {
        let q = parse_query(r#"refund "credit card" pay* OR bill -spam"#).unwrap();
        assert_eq!(q.groups.len(), 3);
        assert_eq!(q.groups[1][0].tokens, ["credit", "card"]);
        assert!(q.groups[2][0].prefix);
        assert_eq!(q.groups[2][1].tokens, ["bill"]);
        assert_eq!(q.excluded[0].tokens, ["spam"]);
        assert_eq!(
            q.to_fts5("t"),
            r#"(("trefund") AND ("tcredit tcard") AND ("tpay" * OR "tbill")) NOT "tspam""#
        );
    }

    #[test]
    fn term_frequencies_count_words_phrases_and_prefixes() {
        let q = parse_query(r#"refund "credit card" pay* OR bill -spam"#).unwrap();
        let mut tf = Vec::new();
        let text = "Refund my CREDIT card: paid, payment, bill. Credit-card refund!";
        let len = q.term_frequencies(text, &mut tf);
        assert_eq!(len, 10);
        // "paid" does not start with "pay"; "payment" does.
        assert_eq!(tf, [2, 2, 1, 1]);
        // Non-ASCII text goes through the folding tokenizer: the same counts as the index.
        let q = parse_query("creme 中文").unwrap();
        let len = q.term_frequencies("Crème brûlée, CRÈME! 我喜欢中文和中文", &mut tf);
        assert_eq!(
            len,
            tokens("Crème brûlée, CRÈME! 我喜欢中文和中文").len() as u32
        );
        assert_eq!(tf, [2, 2]);
    }

    proptest! {
        /// Streamed counting (single words, ASCII) and counting from the token list agree.
        #[test]
        fn streamed_term_frequencies_match_the_token_list(
            text in "[a-cA-C0-9 ,.!-]{0,120}",
            q in "[a-c0-1]{1,3}\\*? ?([a-c0-1]{1,3}\\*?)?",
        ) {
            if let Ok(query) = parse_query(&q) {
                let (mut fast, mut slow) = (Vec::new(), vec![0; query.scored_terms().count()]);
                let a = query.term_frequencies(&text, &mut fast);
                let b = query.tf_from_tokens(&text, &mut slow);
                prop_assert_eq!((a, fast), (b, slow));
            }
        }

        /// Highlighting an ASCII token in place agrees with highlighting its folded form.
        #[test]
        fn ascii_highlights_match_the_folded_token(
            tok in "[a-cA-C0-9]{1,4}",
            q in "[a-c0-1]{1,3}\\*?( [a-c0-1]{1,3}\\*?)?( OR \"[a-c]{1,2} [a-c]{1,2}\\*?\")?",
        ) {
            if let Ok(query) = parse_query(&q) {
                prop_assert_eq!(query.highlights_ascii(tok.as_bytes()), query.highlights(&fold(&tok)));
            }
        }

        /// The ASCII fast path and the general tokenizer agree on every ASCII text.
        #[test]
        fn ascii_rank_tokens_match_the_tokenizer(text in "[ -~]{0,80}") {
            let fast: Vec<String> = rank_tokens(&text).iter().map(|t| t.to_ascii_lowercase()).collect();
            prop_assert_eq!(fast, tokens(&text));
        }
    }

    #[test]
    fn cjk_word_becomes_a_phrase() {
        let q = parse_query("中文").unwrap();
        assert_eq!(q.to_fts5("t"), r#"("t中 t文")"#);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "", "   ", "-", "\"open", "OR", "a OR", "OR a", "-a", "*", "a OR -b", "\"!!\"",
        ] {
            let e = parse_query(bad).unwrap_err();
            assert_eq!(e.errors[0].field, "q", "{bad}");
        }
        assert!(parse_query(&"a ".repeat(40)).is_err());
    }

    /// Which texts take the scan to their first match: ASCII text with a plain ASCII word that
    /// it holds; the rest is read token by token (`ascii_snippets_match_the_reference` holds
    /// both to the same snippets).
    #[test]
    fn ascii_text_with_a_match_takes_the_scan() {
        let q = parse_query("refund").unwrap();
        let cut = ascii_cut("a b c d e f g h I want a REFUND now", &q).unwrap();
        assert_eq!(
            (cut.first, cut.cut_before, cut.cut_after),
            (Some(6), true, false)
        );
        assert!(ascii_cut("no match here", &q).is_none());
        assert!(ascii_cut("un remboursement, refund, s'il vous plaît", &q).is_none());
        assert!(ascii_cut("I want a refund", &parse_query("退款 OR refund").unwrap()).is_none());
    }

    #[test]
    fn snippets_mark_matches() {
        let q = parse_query("refund").unwrap();
        assert_eq!(
            snippet("I want a REFUND, please.", &q),
            "I want a <mark>REFUND</mark>, please."
        );
        let long = format!("{} refund {}", "word ".repeat(30), "tail ".repeat(30));
        let s = snippet(&long, &q);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("<mark>refund</mark>"));
        let q = parse_query("caf*").unwrap();
        assert_eq!(snippet("Un café?", &q), "Un <mark>café</mark>?");
    }

    /// The snippet as first written: every token's span and match, then the window.
    fn snippet_reference(content: &str, q: &Query) -> String {
        let spans = token_spans(content);
        let hits: Vec<bool> = spans
            .iter()
            .map(|&(a, b)| q.highlights(&fold(&content[a..b])))
            .collect();
        let first = hits.iter().position(|h| *h).unwrap_or(0);
        let from = first.saturating_sub(SNIPPET_LEAD);
        let to = (from + SNIPPET_TOKENS).min(spans.len());
        let start = if from == 0 { 0 } else { spans[from].0 };
        let end = if to == spans.len() {
            content.len()
        } else {
            spans[to - 1].1
        };
        let mut out = String::new();
        if start > 0 {
            out.push('…');
        }
        let mut pos = start;
        for (&(a, b), _) in spans[from..to]
            .iter()
            .zip(&hits[from..to])
            .filter(|(_, hit)| **hit)
        {
            out.push_str(&content[pos..a]);
            out.push_str(MARK_START);
            out.push_str(&content[a..b]);
            out.push_str(MARK_END);
            pos = b;
        }
        out.push_str(&content[pos..end]);
        if end < content.len() {
            out.push('…');
        }
        out
    }

    proptest! {
        /// The snippet that stops reading at its window's end is the one built from every
        /// token: matches early, late, absent, at the edges, in accented and CJK text.
        #[test]
        fn streamed_snippets_match_the_reference(
            text in "(([a-cA-C]{1,2}|é|中|日)[ ,.]?){0,60}",
            q in "[a-c]{1,2}\\*?( OR [a-c]{1,2})?",
        ) {
            if let Ok(query) = parse_query(&q) {
                prop_assert_eq!(snippet(&text, &query), snippet_reference(&text, &query));
            }
        }

        /// ASCII text takes `ascii_cut`, which finds the first match by scanning for letters and
        /// reads the window from there: the same snippet, for words, prefixes and phrases in
        /// any case, matches at the edges, long leads and tails, and no match at all.
        #[test]
        fn ascii_snippets_match_the_reference(
            text in "([a-cA-C0-9]{1,3}[ ,.'!?-]{0,2}){0,50}",
            q in "[a-cA-C0-9]{1,2}\\*?( OR [a-c]{1,3}\\*?)?( \"[a-c]{1,2} [a-c]{1,2}\"\\*?)?",
        ) {
            if let Ok(query) = parse_query(&q) {
                prop_assert_eq!(snippet(&text, &query), snippet_reference(&text, &query));
            }
        }

        #[test]
        fn never_panics(s in ".{0,80}") {
            if let Ok(q) = parse_query(&s) {
                let _ = q.to_fts5("t");
                let _ = snippet(&s, &q);
            }
        }
    }
}
