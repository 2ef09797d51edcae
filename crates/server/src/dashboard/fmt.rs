//! Small formatting helpers shared by the pages: dates in UTC ISO form, optional fields,
//! query strings, and the fixed notices shown after an action.

use time::{Date, OffsetDateTime, UtcOffset};

/// `2026-11-22T03:05:09Z`: UTC, ISO 8601, to the second.
pub fn iso(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        confab_core::daily::ymd(t.date()),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The value, or a dash.
pub fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "—".to_owned())
}

/// A `YYYY-MM-DD` form field; empty means none.
pub fn parse_day(s: &str) -> Result<Option<Date>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &fmt)
        .map(Some)
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

/// A query string of the non-empty pairs.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.trim().is_empty() {
            q.append_pair(k, v.trim());
        }
    }
    q.finish()
}

/// Indented JSON.
pub fn pretty_json(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The text of a notice named in a redirect (`?notice=…`). Only fixed texts are shown, so a
/// crafted link cannot put words on the page.
pub fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "analysis-queued" => "Analysis queued: the insights change when it has run.",
        "deleted" => "The conversation was deleted.",
        "revoked" => "The key was revoked.",
        _ => return None,
    })
}

/// Escapes text for HTML (for markup built in Rust, such as SVG charts).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(
            iso(time::macros::datetime!(2026-01-02 03:04:05.6 +01:00)),
            "2026-01-02T02:04:05Z"
        );
        assert_eq!(parse_day(" ").unwrap(), None);
        assert!(parse_day("2026-13-01").is_err());
        assert_eq!(
            query_string(&[("a", "x y"), ("b", ""), ("c", "&")]),
            "a=x+y&c=%26"
        );
        assert_eq!(
            esc("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
