//! Full-text tokens for PostgreSQL, made by the same Rust code the SQLite index uses
//! (`confab_core::search`: folding, CJK per character, tenant tag). They are written as a
//! tsvector literal with positions, so PostgreSQL's own parser and dictionaries never touch
//! them: the `simple` configuration's job (lower-casing, no stemming) and unaccent's (folding)
//! are done once, in Rust, identically for both backends, and both find the same messages.
//! Queries become tsquery literals over the same tokens (`<->` for phrases, `:*` for prefixes).

use std::collections::HashMap;

use confab_core::search::{Query, Term, tenant_tag, tokens};
use uuid::Uuid;

/// What the search index holds (migration 0004, word for word: a query uses the index only
/// when it says `SEARCH_VECTOR @@ …` exactly so): the message's tokens and its band lexeme.
pub const SEARCH_VECTOR: &str =
    "(m.fts || array_to_tsvector(ARRAY['~b' || (m.rowid / 4096)::text]))";
/// Rowids per band (migration 0004).
pub const BAND_ROWS: i64 = 4096;
/// A message's band as the block-range summary holds it (migration 0007, word for word: a
/// condition on it uses the summary only when written exactly so).
pub const BAND_OF_ROW: &str = "(m.rowid / 4096)";

/// The band of `rowid`.
pub fn band(rowid: i64) -> i64 {
    rowid.div_euclid(BAND_ROWS)
}

/// `tsq` restricted to messages of the bands `lo..=hi`: GIN then reads the query's postings
/// only where they meet those bands' (migration 0004).
pub fn in_bands(tsq: &str, lo: i64, hi: i64) -> String {
    let mut out = String::with_capacity(tsq.len() + 16 * (hi - lo + 1).max(1) as usize);
    out.push('(');
    out.push_str(tsq);
    out.push_str(") & (");
    for b in (lo..=hi).rev() {
        if b != hi {
            out.push_str(" | ");
        }
        out.push_str("'~b");
        out.push_str(&b.to_string());
        out.push('\'');
    }
    out.push(')');
    out
}

/// PostgreSQL refuses a lexeme longer than this (bytes).
const MAX_LEXEME: usize = 2046;
/// A tsvector's lexemes, together, must stay under 1 MiB; stop a little before.
const MAX_LEXEME_BYTES: usize = 1_000_000;
/// The largest position a tsvector records (larger ones are clamped by PostgreSQL).
const MAX_POS: usize = 16_383;
/// Positions a tsvector keeps per lexeme.
const MAX_POSITIONS: usize = 256;

/// Quotes one lexeme for a tsvector or tsquery literal.
fn quote(out: &mut String, tag: &str, tok: &str) {
    out.push('\'');
    out.push_str(tag);
    for ch in tok.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// The tsvector literal for a message of `tenant`: each distinct token once, with its positions.
/// A message with more distinct words than a tsvector holds (about 50,000) is indexed up to
/// that point; SQLite indexes all of them.
pub fn tsvector(tenant: Uuid, content: &str) -> String {
    let tag = tenant_tag(tenant.as_bytes());
    let mut order: Vec<String> = Vec::new();
    let mut positions: HashMap<String, Vec<usize>> = HashMap::new();
    let mut bytes = 0;
    for (i, t) in tokens(content).into_iter().enumerate() {
        if tag.len() + t.len() > MAX_LEXEME {
            continue;
        }
        let pos = (i + 1).min(MAX_POS);
        if let Some(p) = positions.get_mut(&t) {
            if p.len() < MAX_POSITIONS && p.last() != Some(&pos) {
                p.push(pos);
            }
            continue;
        }
        bytes += tag.len() + t.len();
        if bytes > MAX_LEXEME_BYTES {
            break;
        }
        positions.insert(t.clone(), vec![pos]);
        order.push(t);
    }
    let mut out = String::with_capacity(bytes + bytes / 2);
    for t in &order {
        if !out.is_empty() {
            out.push(' ');
        }
        quote(&mut out, &tag, t);
        out.push(':');
        for (k, p) in positions[t].iter().enumerate() {
            if k > 0 {
                out.push(',');
            }
            out.push_str(&p.to_string());
        }
    }
    out
}

fn term(out: &mut String, tag: &str, t: &Term) {
    out.push('(');
    for (i, tok) in t.tokens.iter().enumerate() {
        if i > 0 {
            out.push_str(" <-> ");
        }
        quote(out, tag, tok);
        if t.prefix && i + 1 == t.tokens.len() {
            out.push_str(":*");
        }
    }
    out.push(')');
}

/// The tsquery literal for a parsed query of `tenant`: AND of ORs, then NOT the excluded.
pub fn tsquery(tenant: Uuid, q: &Query) -> String {
    let tag = tenant_tag(tenant.as_bytes());
    let mut out = String::new();
    for (gi, g) in q.groups.iter().enumerate() {
        if gi > 0 {
            out.push_str(" & ");
        }
        out.push('(');
        for (ti, t) in g.iter().enumerate() {
            if ti > 0 {
                out.push_str(" | ");
            }
            term(&mut out, &tag, t);
        }
        out.push(')');
    }
    for t in &q.excluded {
        out.push_str(" & !");
        term(&mut out, &tag, t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expression searches test is the one migration 0004 indexed, and its bands are
    /// [`BAND_ROWS`] wide: otherwise PostgreSQL still answers every search, but by reading every
    /// message (the planner matches an index's expression only as written). A later migration
    /// that redefines the index must be the one read here.
    #[test]
    fn the_search_vector_is_the_indexed_expression() {
        let migration = include_str!("../../migrations/postgres/0004_search_bands.sql");
        let indexed = SEARCH_VECTOR.replace("m.", "");
        assert!(
            migration.contains(&format!("USING gin ({indexed})")),
            "migration 0004 does not index {indexed}"
        );
        assert!(SEARCH_VECTOR.contains(&format!("(m.rowid / {BAND_ROWS})")));
        let summary = include_str!("../../migrations/postgres/0007_search_band_summary.sql");
        let summarized = BAND_OF_ROW.replace("m.", "");
        assert!(
            summary.contains(&format!("USING brin ({summarized})")),
            "migration 0007 does not summarize {summarized}"
        );
        assert_eq!(BAND_OF_ROW, format!("(m.rowid / {BAND_ROWS})"));
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.as_str() > "0004_search_bands.sql" {
                let sql = std::fs::read_to_string(&path).unwrap();
                assert!(
                    !sql.contains("messages_fts"),
                    "{name} changes messages_fts: read it here instead of 0004"
                );
            }
        }
    }

    #[test]
    fn literals_quote_and_position() {
        let t = Uuid::from_bytes([0; 16]);
        assert_eq!(
            tsvector(t, "It's Café, it's"),
            "'t000000000000it':1,4 't000000000000s':2,5 't000000000000cafe':3"
        );
        let q = confab_core::search::parse_query("\"hello world\" -spam caf*").unwrap();
        let s = tsquery(t, &q);
        assert!(
            s.contains("'t000000000000hello' <-> 't000000000000world'"),
            "{s}"
        );
        assert!(s.contains("& !('t000000000000spam')"), "{s}");
        assert!(s.contains("'t000000000000caf':*"), "{s}");
    }
}
