use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::model::Role;

const L: TranscriptLimits = TranscriptLimits::CONVERRA;

fn turns(t: &Transcript) -> Vec<(Role, &str)> {
    t.messages
        .iter()
        .map(|m| (m.role.unwrap(), m.content.as_str()))
        .collect()
}

fn field_of(e: &TranscriptError) -> &str {
    match e {
        TranscriptError::TooLarge(v) | TranscriptError::Invalid(v) => &v.errors[0].field,
    }
}

#[test]
fn every_label_pair() {
    for (u, a) in [
        ("User", "Assistant"),
        ("Human", "AI"),
        ("Customer", "Agent"),
    ] {
        let t = parse(&format!("{u}: Hello\n{a}: Hi! How can I help?"), &L).unwrap();
        assert_eq!(
            turns(&t),
            [
                (Role::User, "Hello"),
                (Role::Assistant, "Hi! How can I help?")
            ],
            "{u}/{a}"
        );
    }
    let t = parse("USER: a\nai:b\nSystem: c\nTool: d", &L).unwrap();
    assert_eq!(
        turns(&t),
        [
            (Role::User, "a"),
            (Role::Assistant, "b"),
            (Role::System, "c"),
            (Role::Tool, "d")
        ]
    );
}

#[test]
fn unlabelled_lines_continue_the_previous_message() {
    let t = parse(
        "User: first line\r\nsecond line\n\n  indented\nNote: not a label\nAssistant:\nOn the next line\n\n",
        &L,
    )
    .unwrap();
    assert_eq!(
        turns(&t),
        [
            (
                Role::User,
                "first line\nsecond line\n\n  indented\nNote: not a label"
            ),
            (Role::Assistant, "On the next line")
        ]
    );
    // " User:" is not at the start of the line, so it is text.
    let t = parse("User: a\n User: b", &L).unwrap();
    assert_eq!(turns(&t), [(Role::User, "a\n User: b")]);
}

#[test]
fn text_before_the_first_label_is_a_user_turn() {
    let t = parse("\n\nJust a question\nAssistant: An answer", &L).unwrap();
    assert_eq!(
        turns(&t),
        [
            (Role::User, "Just a question"),
            (Role::Assistant, "An answer")
        ]
    );
}

#[test]
fn empty_label_is_refused_with_its_line() {
    let e = parse("User: hi\nAssistant:   \nUser: again", &L).unwrap_err();
    match e {
        TranscriptError::Invalid(v) => {
            assert_eq!(v.errors[0].field, "content");
            assert!(v.errors[0].message.contains("line 2"), "{v}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn blank_content_has_no_turns_and_only_opens() {
    for s in ["", "  \n\t\n"] {
        let t = parse(s, &L).unwrap();
        assert!(t.messages.is_empty());
        assert!(require_turns(&t, Status::Active).is_ok());
        assert!(require_turns(&t, Status::InProgress).is_ok());
        assert_eq!(
            field_of(&require_turns(&t, Status::Completed).unwrap_err()),
            "content"
        );
        assert!(require_turns(&t, Status::Abandoned).is_err());
    }
}

#[test]
fn nul_is_refused() {
    let e = parse("User: a\0b", &L).unwrap_err();
    assert!(matches!(e, TranscriptError::Invalid(_)));
}

#[test]
fn structured_form() {
    let content = json!({
        "messages": [
            {"role": "user", "content": "Hello", "timestamp": "2025-01-20T14:30:00+01:00"},
            {"role": "assistant", "content": "Hi!", "model": "gpt-4o", "tokens": 12},
            {"role": "tool", "toolCalls": [{"name": "lookup"}]}
        ],
        "metadata": {"userId": "u1", "channel": "web", "sessionId": "s1", "language": "en"}
    })
    .to_string();
    assert_eq!(detect(&content), Format::Structured);
    let t = parse(&content, &L).unwrap();
    assert_eq!(t.user_id.as_deref(), Some("u1"));
    assert_eq!(t.source.as_deref(), Some("web"));
    assert_eq!(
        serde_json::Value::Object(t.metadata.clone()),
        json!({"sessionId": "s1", "language": "en"})
    );
    assert_eq!(
        crate::timefmt::rfc3339(t.messages[0].created_at.unwrap()),
        "2025-01-20T13:30:00.000000Z"
    );
    assert_eq!(t.messages[1].model.as_deref(), Some("gpt-4o"));
    assert_eq!(t.messages[1].tokens, Some(12));
    assert_eq!(t.messages[2].role, Some(Role::Tool));
}

#[test]
fn structured_errors_name_the_path() {
    let cases = [
        ("{\"messages\": [", "content.messages"),
        ("{\"messages\": [1, ", "content.messages[0]"),
        ("{not json", "content"),
        (
            "{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}",
            "content.messages[0].role",
        ),
        (
            "{\"messages\": [{\"content\": \"x\"}]}",
            "content.messages[0].role",
        ),
        (
            "{\"messages\": [{\"role\": \"user\"}]}",
            "content.messages[0].content",
        ),
        (
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"tokens\": \"many\"}]}",
            "content.messages[0].tokens",
        ),
        (
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"timestamp\": \"noon\"}]}",
            "content.messages[0].timestamp",
        ),
        (
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"colour\": 1}]}",
            "content.messages[0].colour",
        ),
        (
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"metadata\": {\"userId\": 7}}",
            "content.metadata.userId",
        ),
        ("{\"metadata\": {}}", "content"),
        ("{\"messages\": []} x", "content"),
    ];
    for (content, field) in cases {
        let e = parse(content, &L).unwrap_err();
        assert!(matches!(e, TranscriptError::Invalid(_)), "{content}: {e:?}");
        assert_eq!(field_of(&e), field, "{content}: {e:?}");
    }
}

#[test]
fn content_limit_is_512_kib() {
    // One message per 100 KiB, so only the content limit can trip.
    let body = "x".repeat(100 * 1024 - 7);
    let mut s = String::new();
    while s.len() < L.max_content_bytes {
        s.push_str("User: ");
        s.push_str(&body);
        s.push('\n');
    }
    s.truncate(L.max_content_bytes);
    assert_eq!(s.len(), 512 * 1024);
    assert!(parse(&s, &L).is_ok());
    s.push('x');
    let e = parse(&s, &L).unwrap_err();
    assert!(matches!(e, TranscriptError::TooLarge(_)), "{e:?}");
    assert_eq!(field_of(&e), "content");
}

#[test]
fn message_limit_is_100_kib() {
    let at = format!("User: {}\nAssistant: ok", "é".repeat(50 * 1024));
    assert!(parse(&at, &L).is_ok());
    let over = format!("User: {}x\nAssistant: ok", "é".repeat(50 * 1024));
    let e = parse(&over, &L).unwrap_err();
    assert!(matches!(e, TranscriptError::TooLarge(_)));
    let s =
        json!({"messages": [{"role": "user", "content": "x".repeat(100 * 1024 + 1)}]}).to_string();
    let e = parse(&s, &L).unwrap_err();
    assert!(matches!(e, TranscriptError::TooLarge(_)));
    assert_eq!(field_of(&e), "content.messages[0].content");
}

#[test]
fn count_limit_is_500() {
    let text = |n: usize| {
        (0..n)
            .map(|i| format!("User: {i}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(parse(&text(500), &L).unwrap().messages.len(), 500);
    assert!(matches!(
        parse(&text(501), &L).unwrap_err(),
        TranscriptError::TooLarge(_)
    ));
    let structured = |n: usize| {
        json!({"messages": (0..n).map(|i| json!({"role": "user", "content": i.to_string()})).collect::<Vec<_>>()})
            .to_string()
    };
    assert_eq!(parse(&structured(500), &L).unwrap().messages.len(), 500);
    let e = parse(&structured(501), &L).unwrap_err();
    assert!(matches!(e, TranscriptError::TooLarge(_)));
    assert_eq!(field_of(&e), "content.messages");
}

#[test]
fn appended_turns_share_the_limits() {
    let m = |n: usize| NewMessage {
        role: Some(Role::User),
        content: "x".repeat(n),
        ..NewMessage::default()
    };
    let full = vec![m(100 * 1024); 5];
    let mut at_limit = full.clone();
    at_limit.push(m(12 * 1024));
    assert!(check_messages(&at_limit, "messages", &L).is_ok());
    at_limit.push(m(1));
    let e = check_messages(&at_limit, "messages", &L).unwrap_err();
    assert!(matches!(e, TranscriptError::TooLarge(_)));
    assert_eq!(field_of(&e), "messages");
    let e = check_messages(&[m(1), m(100 * 1024 + 1)], "messages", &L).unwrap_err();
    assert_eq!(field_of(&e), "messages[1].content");
    let e = check_messages(&[m(1), m(0)], "messages", &L).unwrap_err();
    assert!(matches!(e, TranscriptError::Invalid(_)));
    assert_eq!(field_of(&e), "messages[1].content");
}

#[test]
fn render_every_role() {
    let mk = |role, content: &str, tc: Option<serde_json::Value>| crate::Message {
        id: uuid::Uuid::nil(),
        conversation_id: uuid::Uuid::nil(),
        seq: 0,
        role,
        content: content.into(),
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        model: None,
        tokens: None,
        prompt_tokens: None,
        completion_tokens: None,
        latency_ms: None,
        tool_calls: tc,
        metadata: None,
        source: None,
        is_trigger: false,
    };
    let out = render(&[
        mk(Role::System, "Be kind", None),
        mk(Role::User, "Hi\nthere", None),
        mk(Role::Assistant, "Hello", Some(json!([{"name": "x"}]))),
        mk(Role::Tool, "", Some(json!([{"name": "lookup"}]))),
    ]);
    assert_eq!(
        out,
        "System: Be kind\nUser: Hi\nthere\nAssistant: Hello\nTool: [{\"name\":\"lookup\"}]"
    );
    assert_eq!(render(&[]), "");
}

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL.to_vec())
}

/// Message text the plain-text form can carry: trimmed, non-empty, no CR, no line that starts
/// with a label (those would read back as a new turn; the docs say so).
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 :{}\"\n]{1,60}".prop_filter_map("representable in plain text", |s| {
        let t = s.trim().to_owned();
        let starts_with_label = t.split('\n').any(|l| {
            l.find(':')
                .is_some_and(|c| LABEL_NAMES.iter().any(|n| n.eq_ignore_ascii_case(&l[..c])))
        });
        (!t.is_empty() && !starts_with_label).then_some(t)
    })
}

const LABEL_NAMES: &[&str] = &[
    "user",
    "assistant",
    "human",
    "ai",
    "customer",
    "agent",
    "system",
    "tool",
];

proptest! {
    #[test]
    fn render_then_parse_is_identity(msgs in prop::collection::vec((role(), text()), 0..20)) {
        let mut s = String::new();
        for (r, c) in &msgs {
            render_line(&mut s, *r, c, None);
        }
        let t = parse(&s, &L).unwrap();
        let got: Vec<(Role, String)> = t.messages.into_iter().map(|m| (m.role.unwrap(), m.content)).collect();
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn structured_round_trip(msgs in prop::collection::vec((role(), "[^\u{0}]{1,40}"), 0..20)) {
        let content = json!({
            "messages": msgs.iter().map(|(r, c)| json!({"role": r.as_str(), "content": c})).collect::<Vec<_>>(),
            "metadata": {"userId": "u", "k": [1, 2]}
        })
        .to_string();
        let t = parse(&content, &L).unwrap();
        let got: Vec<(Role, String)> = t.messages.into_iter().map(|m| (m.role.unwrap(), m.content)).collect();
        prop_assert_eq!(got, msgs);
        prop_assert_eq!(t.user_id.as_deref(), Some("u"));
        prop_assert_eq!(serde_json::Value::Object(t.metadata), json!({"k": [1, 2]}));
    }

    #[test]
    fn parser_never_panics(s in "\\PC*") {
        let _ = parse(&s, &L);
    }

    #[test]
    fn parser_never_panics_on_near_misses(parts in prop::collection::vec(
        prop::sample::select(vec!["User:", "AI:", "agent: ", "\n", "\r\n", "{", "}", "\"messages\"", ":", "[", "]", " ", "x", "\u{0}", "é", "{\"role\":\"user\"}"]),
        0..40,
    )) {
        let s: String = parts.concat();
        let _ = parse(&s, &L);
    }

    #[test]
    fn every_parsed_message_is_valid(s in "(User: |AI:|x|\n| |Tool:){0,30}") {
        if let Ok(t) = parse(&s, &L) {
            prop_assert!(check_messages(&t.messages, "m", &L).is_ok());
        }
    }
}
