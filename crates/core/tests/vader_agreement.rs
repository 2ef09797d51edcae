//! The VADER port against PyPI `vaderSentiment` 3.3.2 on real dialogue lines from
//! `chatterbot-corpus` (fixture made by `tools/vader_reference.py`). The target: within 0.01 on
//! at least 99% of at least 1,000 sentences. No line is exempted: the one deliberate deviation
//! documented in `analysis::vader` is from the Rust `vader_sentiment` crate, not from Python.

use confab_core::analysis::vader;

#[test]
fn agrees_with_the_reference_implementation() {
    let fixture = include_str!("fixtures/vader_reference.jsonl");
    let (mut total, mut agree, mut nonzero, mut nonzero_agree) = (0usize, 0usize, 0usize, 0usize);
    let (mut exact, mut max_diff) = (0usize, 0.0f64);
    let mut worst: Vec<(f64, String, f64, f64)> = Vec::new();
    for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("fixture line is JSON");
        let text = v["text"].as_str().expect("text");
        let want = v["compound"].as_f64().expect("compound");
        let got = vader::compound(text);
        let diff = (got - want).abs();
        max_diff = max_diff.max(diff);
        if diff < 1e-9 {
            exact += 1;
        }
        total += 1;
        if want != 0.0 {
            nonzero += 1;
        }
        if diff <= 0.01 {
            agree += 1;
            if want != 0.0 {
                nonzero_agree += 1;
            }
        } else {
            worst.push((diff, text.to_owned(), got, want));
        }
    }
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    let share = agree as f64 / total as f64;
    eprintln!(
        "vader agreement: {agree}/{total} = {:.2}% within 0.01 (non-zero reference: {nonzero_agree}/{nonzero}); \
         identical to 4 places: {exact}; largest difference {max_diff:.4}",
        share * 100.0
    );
    for (d, t, g, w) in worst.iter().take(10) {
        eprintln!("  off by {d:.4}: got {g} want {w}: {t}");
    }
    assert!(
        total >= 1000,
        "the fixture must hold at least 1,000 sentences, has {total}"
    );
    assert!(
        share >= 0.99,
        "agreement {:.2}% is below 99%",
        share * 100.0
    );
    assert!(
        nonzero >= 500,
        "the fixture must exercise the scorer, not only neutral lines"
    );
}
