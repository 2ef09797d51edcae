//! Charts as inline SVG, built on the server: nothing to download, nothing to run in the
//! browser, readable without script. Each chart has a `<title>` for screen readers, and the
//! pages put the same numbers in a table beside it. Colours come from the stylesheet (classes),
//! since the content security policy allows no inline styles.

use std::fmt::Write;

use super::fmt::esc;

const W: f64 = 640.0;
const H: f64 = 220.0;
/// Room for the axis labels.
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 30.0;
const TOP: f64 = 16.0;

fn open(title: &str) -> String {
    format!(
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}" preserveAspectRatio="xMidYMid meet"><title>{t}</title>"#,
        t = esc(title)
    )
}

/// A y axis from 0 with its top value labelled, and the first and last x labels.
fn frame(s: &mut String, top_label: &str, first: &str, last: &str) {
    let base = H - BOTTOM;
    let _ = write!(
        s,
        r#"<line class="axis" x1="{LEFT}" y1="{base}" x2="{W}" y2="{base}"/><line class="grid" x1="{LEFT}" y1="{TOP}" x2="{W}" y2="{TOP}"/><text class="lbl" x="{x}" y="{ty}" text-anchor="end">{top}</text><text class="lbl" x="{x}" y="{base}" text-anchor="end">0</text><text class="lbl" x="{LEFT}" y="{H}" >{first}</text><text class="lbl" x="{W}" y="{H}" text-anchor="end">{last}</text>"#,
        x = LEFT - 6.0,
        ty = TOP + 6.0,
        top = esc(top_label),
        first = esc(first),
        last = esc(last),
    );
}

fn x_at(i: usize, n: usize) -> f64 {
    if n <= 1 {
        return LEFT + (W - LEFT) / 2.0;
    }
    LEFT + (W - LEFT - 8.0) * i as f64 / (n - 1) as f64 + 4.0
}

fn y_at(v: f64, max: f64) -> f64 {
    let base = H - BOTTOM;
    if max <= 0.0 {
        return base;
    }
    base - (base - TOP) * (v / max)
}

/// A line over labelled points (a cumulative count).
pub fn line(title: &str, points: &[(String, i64)]) -> String {
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let mut s = open(title);
    frame(
        &mut s,
        &format!("{max}"),
        points.first().map_or("", |p| &p.0),
        points.last().map_or("", |p| &p.0),
    );
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x_at(i, points.len()), y_at(p.1 as f64, max)))
        .collect();
    let _ = write!(
        s,
        r#"<polyline class="line" fill="none" points="{}"/>"#,
        path.join(" ")
    );
    s.push_str("</svg>");
    s
}

/// A rate in [0, 1] per labelled point; gaps where there is no value.
pub fn rate(title: &str, points: &[(String, Option<f64>)]) -> String {
    let mut s = open(title);
    frame(
        &mut s,
        "100%",
        points.first().map_or("", |p| &p.0),
        points.last().map_or("", |p| &p.0),
    );
    for (i, p) in points.iter().enumerate() {
        if let Some(v) = p.1 {
            let _ = write!(
                s,
                r#"<circle class="dot" cx="{:.1}" cy="{:.1}" r="3.5"><title>{}: {:.0}%</title></circle>"#,
                x_at(i, points.len()),
                y_at(v.clamp(0.0, 1.0), 1.0),
                esc(&p.0),
                v * 100.0
            );
        }
    }
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            p.1.map(|v| {
                format!(
                    "{:.1},{:.1}",
                    x_at(i, points.len()),
                    y_at(v.clamp(0.0, 1.0), 1.0)
                )
            })
        })
        .collect();
    if path.len() > 1 {
        let _ = write!(
            s,
            r#"<polyline class="line" fill="none" points="{}"/>"#,
            path.join(" ")
        );
    }
    s.push_str("</svg>");
    s
}

/// Vertical bars over labelled points (counts per day).
pub fn columns(title: &str, points: &[(String, i64)]) -> String {
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let mut s = open(title);
    frame(
        &mut s,
        &format!("{max}"),
        points.first().map_or("", |p| &p.0),
        points.last().map_or("", |p| &p.0),
    );
    let n = points.len().max(1);
    let slot = (W - LEFT) / n as f64;
    let base = H - BOTTOM;
    for (i, p) in points.iter().enumerate() {
        let y = y_at(p.1 as f64, max);
        let _ = write!(
            s,
            r#"<rect class="bar" x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}"><title>{}: {}</title></rect>"#,
            LEFT + slot * i as f64 + slot * 0.15,
            slot * 0.7,
            base - y,
            esc(&p.0),
            p.1
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars, one row per label (sources, sentiment labels). `class_of` picks a bar's
/// class, so sentiment bars can have their own colours.
pub fn bars(
    title: &str,
    rows: &[(String, i64)],
    class_of: impl Fn(&str) -> &'static str,
) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let row_h = 32.0;
    let h = (rows.len().max(1) as f64) * row_h + 8.0;
    let label_w = 170.0;
    let mut s = format!(
        r#"<svg class="chart" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 4.0 + row_h * i as f64;
        let w = ((W - label_w - 60.0) * r.1 as f64 / max).max(if r.1 > 0 { 2.0 } else { 0.0 });
        let label: String = r.0.chars().take(16).collect();
        let _ = write!(
            s,
            r#"<text class="lbl" x="{lx}" y="{ty:.1}" text-anchor="end">{label}</text><rect class="{cls}" x="{label_w}" y="{y:.1}" width="{w:.1}" height="{bh}"><title>{full}: {v}</title></rect><text class="lbl" x="{vx:.1}" y="{ty:.1}">{v}</text>"#,
            lx = label_w - 8.0,
            ty = y + row_h * 0.6,
            label = esc(&label),
            cls = class_of(&r.0),
            bh = row_h - 8.0,
            full = esc(&r.0),
            v = r.1,
            vx = label_w + w + 6.0,
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_labels_and_handle_empty_input() {
        let pts = vec![("<a>".to_owned(), 3), ("b".to_owned(), 0)];
        for svg in [
            line("t", &pts),
            columns("t", &pts),
            bars("t", &pts, |_| "bar"),
        ] {
            assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            assert!(svg.contains("&lt;a&gt;") && !svg.contains("<a>"));
        }
        assert!(line("empty", &[]).ends_with("</svg>"));
        assert!(rate("r", &[("d".into(), Some(0.5)), ("e".into(), None)]).contains("50%"));
    }
}
