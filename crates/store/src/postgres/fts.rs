//! Full-text tokens for PostgreSQL, made by the same Rust code the SQLite index uses
//! (`confab_core::search`: folding, CJK per character, tenant tag). They are written as a
//! tsvector literal with positions, so PostgreSQL's own parser and dictionaries never touch
//! them: the `simple` configuration's job (lower-casing, no stemming) and unaccent's (folding)
//! are done once, in Rust, identically for both backends, and both find the same messages.
//! Queries become tsquery literals over the same tokens (`<->` for phrases, `:*` for prefixes).

use confab_core::search::{Query, Term, tenant_tag, tokens};
use uuid::Uuid;

/// PostgreSQL refuses a lexeme longer than this (bytes).
const MAX_LEXEME: usize = 2046;
/// A tsvector must stay under 1 MiB; leave room for positions and headers.
const MAX_VECTOR: usize = 700_000;
/// The largest position a tsvector records (larger ones are clamped by PostgreSQL).
const MAX_POS: usize = 16_383;

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

/// The tsvector literal for a message of `tenant`.
pub fn tsvector(tenant: Uuid, content: &str) -> String {
    let tag = tenant_tag(tenant.as_bytes());
    let mut out = String::with_capacity(content.len() + content.len() / 2);
    for (i, t) in tokens(content).iter().enumerate() {
        if tag.len() + t.len() > MAX_LEXEME {
            continue;
        }
        if out.len() > MAX_VECTOR {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        quote(&mut out, &tag, t);
        out.push(':');
        out.push_str(&(i + 1).min(MAX_POS).to_string());
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

    #[test]
    fn literals_quote_and_position() {
        let t = Uuid::from_bytes([0; 16]);
        assert_eq!(
            tsvector(t, "It's Café"),
            "'t000000000000it':1 't000000000000s':2 't000000000000cafe':3"
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
