//! Topics against PyPI `yake` 0.7.3 on chatterbot-corpus dialogues (fixture made by
//! `tools/yake_reference.py`). YAKE keeps near-duplicates ("electronic device", "device",
//! "electronic"); confab drops a phrase whose words are all inside another one, so exact
//! agreement is not the goal. The test reports two figures and holds them above floors a
//! regression would break:
//! - exact: share of YAKE's top-5 phrases that confab also lists;
//! - covered: share of YAKE's phrases that share a word with one of confab's.

use std::collections::HashSet;

use confab_core::analysis::keywords::keyphrases;

#[test]
fn keyphrases_overlap_with_yake() {
    let fixture = include_str!("fixtures/yake_reference.jsonl");
    let (mut yake_total, mut exact, mut covered, mut docs) = (0usize, 0usize, 0usize, 0usize);
    for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = v["text"].as_str().unwrap();
        let theirs: Vec<String> = v["yake"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_lowercase())
            .collect();
        let ours = keyphrases(text, 5);
        assert!(ours.len() <= 5);
        let our_words: HashSet<&str> = ours.iter().flat_map(|p| p.split(' ')).collect();
        docs += 1;
        for k in &theirs {
            yake_total += 1;
            if ours.contains(k) {
                exact += 1;
            }
            if k.split(' ').any(|w| our_words.contains(w)) {
                covered += 1;
            }
        }
    }
    let pct = |n: usize| 100.0 * n as f64 / yake_total as f64;
    eprintln!(
        "yake overlap over {docs} dialogues, {yake_total} reference phrases: exact {:.1}%, covered {:.1}%",
        pct(exact),
        pct(covered)
    );
    assert!(docs >= 50);
    assert!(
        pct(exact) >= 45.0,
        "exact overlap fell to {:.1}%",
        pct(exact)
    );
    assert!(
        pct(covered) >= 80.0,
        "covered overlap fell to {:.1}%",
        pct(covered)
    );
}
