//! Every kind of value serde has, written by [`super`] and by serde_json: the bytes must agree.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::*;

#[track_caller]
fn same<T: ?Sized + Serialize>(v: &T) {
    let theirs = serde_json::to_vec(v).expect("serde_json writes it");
    let ours = to_vec(v).expect("we write it");
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
}

#[test]
fn every_byte_in_every_position_of_a_word_is_escaped_as_serde_json_does() {
    for c in 0u8..0x80 {
        for len in 1..20 {
            for at in 0..len {
                let mut s = vec![b'a'; len];
                s[at] = c;
                same(std::str::from_utf8(&s).expect("ascii"));
            }
        }
    }
}

#[test]
fn strings_of_every_kind() {
    for s in [
        "",
        "a",
        "plain words of a message, longer than a word",
        "\"quoted\" and \\back\\slashed\\",
        "\u{0}\u{1}\u{1f}\u{7f}\u{8}\u{9}\u{a}\u{c}\u{d}",
        "line one\nline two\r\n\ttabbed",
        "héllo wörld — 你好，世界 🎉 emoji at the end 🎉",
        "</script><!-- / is left alone -->",
        "\u{2028}\u{2029} separators stay as they are",
        "ends with an escape\n",
        "ab\"cdefgh\"ijklmnop\\qrstuvw\u{1}xyz",
    ] {
        same(s);
        same(&s.to_owned());
    }
    same(&'"');
    same(&'\n');
    same(&'é');
    same(&'🎉');
}

#[test]
fn numbers_as_itoa_and_zmij_write_them() {
    same(&[i64::MIN, -1, 0, 1, i64::MAX]);
    same(&[0u64, u64::MAX]);
    same(&(i8::MIN, i16::MIN, i32::MIN, u8::MAX, u16::MAX, u32::MAX));
    same(&[i128::MIN, i128::MAX]);
    same(&[u128::MAX]);
    same(&[
        0.0,
        -0.0,
        1.0,
        1.5,
        -2.25,
        0.1,
        1e21,
        1e-7,
        123456789.123,
        5e-324,
        f64::MAX,
        f64::MIN,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ]);
    same(&[0.0f32, 0.1, 1e-45, f32::MAX, f32::NAN, f32::INFINITY]);
}

#[derive(Serialize)]
struct Unit;

#[derive(Serialize)]
struct Newtype(i32);

#[derive(Serialize)]
struct Tuple(i32, String, ());

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    an_id: uuid::Uuid,
    #[serde(rename = "we\"ird key")]
    weird: bool,
    none: Option<String>,
    some: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<i32>,
    #[serde(with = "serde_bytes_like")]
    bytes: Vec<u8>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
    unit: (),
    unit_struct: Unit,
    newtype: Newtype,
    tuple: Tuple,
    empty: Vec<i32>,
    empty_map: HashMap<String, i32>,
}

/// Serializes a `Vec<u8>` through `serialize_bytes`.
mod serde_bytes_like {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
}

#[derive(Serialize)]
enum External {
    Unit,
    Newtype(u8),
    Tuple(u8, &'static str),
    Struct { a: u8, b: Option<bool> },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Internal {
    Mention { messages: Vec<u8> },
    Placeholder { count: u32 },
}

#[derive(Serialize)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    One(String),
    Two { x: i8 },
}

#[derive(Serialize)]
#[serde(untagged)]
enum Untagged {
    Number(i64),
    Text(String),
}

#[test]
fn structs_enums_and_their_attributes() {
    let mut extra = BTreeMap::new();
    extra.insert("flat".to_owned(), Value::from("tened"));
    extra.insert("n".to_owned(), Value::from(3));
    same(&Fields {
        an_id: uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        weird: true,
        none: None,
        some: Some(vec![1, 2]),
        skipped: None,
        bytes: vec![0, 255],
        extra,
        unit: (),
        unit_struct: Unit,
        newtype: Newtype(-7),
        tuple: Tuple(1, "two".into(), ()),
        empty: vec![],
        empty_map: HashMap::new(),
    });
    same(&[
        External::Unit,
        External::Newtype(1),
        External::Tuple(2, "x"),
        External::Struct { a: 3, b: None },
    ]);
    same(&[
        Internal::Mention {
            messages: vec![1, 2],
        },
        Internal::Placeholder { count: 4 },
    ]);
    same(&[Adjacent::One("o".into()), Adjacent::Two { x: -1 }]);
    same(&[Untagged::Number(5), Untagged::Text("t".into())]);
    same(&(Some(Some(1)), None::<u8>, [(); 2]));
}

#[test]
fn map_keys_as_serde_json_writes_them_and_refuses_them() {
    same(&BTreeMap::from([(1i64, "a"), (-2, "b")]));
    same(&BTreeMap::from([(u128::MAX, 1)]));
    same(&BTreeMap::from([(true, 1), (false, 2)]));
    same(&BTreeMap::from([('k', 1), ('"', 2)]));
    same(&BTreeMap::from([("a\nb".to_owned(), 1)]));
    struct FloatKeys(Vec<(f64, i32)>);
    impl Serialize for FloatKeys {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }
    same(&FloatKeys(vec![(1.5, 1), (-0.0, 2), (1e21, 3)]));
    for bad in [
        FloatKeys(vec![(f64::NAN, 1)]),
        FloatKeys(vec![(f64::INFINITY, 1)]),
    ] {
        assert!(serde_json::to_vec(&bad).is_err());
        assert!(to_vec(&bad).is_err());
    }
    let tuple_keys = BTreeMap::from([((1, 2), 3)]);
    assert!(serde_json::to_vec(&tuple_keys).is_err());
    assert_eq!(
        to_vec(&tuple_keys).unwrap_err().to_string(),
        "key must be a string"
    );
    let unit_keys = BTreeMap::from([((), 3)]);
    assert!(to_vec(&unit_keys).is_err());
}

#[test]
fn raw_values_are_written_as_they_are() {
    let raw = serde_json::value::RawValue::from_string(r#"{"a" : [1, 2]}"#.to_owned())
        .expect("valid JSON");
    same(&raw);
    same(&BTreeMap::from([("raw", &raw)]));
}

#[test]
fn the_model_writes_as_serde_json_writes_it() {
    let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("a time");
    let m = crate::model::Message {
        id: uuid::Uuid::from_u128(1),
        conversation_id: uuid::Uuid::from_u128(2),
        seq: 3,
        role: crate::model::Role::Assistant,
        content: "Hello \"there\"\n\tgeneral Kenobi 🎉".into(),
        created_at: t,
        model: Some("gpt".into()),
        tokens: Some(12),
        prompt_tokens: None,
        completion_tokens: Some(4),
        latency_ms: Some(250),
        tool_calls: Some(serde_json::json!([{"name": "f", "args": {"x": 1.25}}])),
        metadata: serde_json::json!({"k": "v", "n": null, "nested": {"deep": [true]}})
            .as_object()
            .cloned(),
        source: Some("web".into()),
        is_trigger: true,
    };
    same(&m);
    same(&vec![&m, &m]);
}

/// Any JSON document.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[\\x00-\\x7f]{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_json_value_is_written_as_serde_json_writes_it(v in value()) {
        prop_assert_eq!(to_vec(&v).expect("we write it"), serde_json::to_vec(&v).expect("they do"));
    }

    #[test]
    fn any_string_is_escaped_as_serde_json_escapes_it(s in any::<String>()) {
        prop_assert_eq!(to_vec(&s).expect("we write it"), serde_json::to_vec(&s).expect("they do"));
    }
}
