//! Compact JSON output, byte for byte what `serde_json::to_vec` writes, with strings escaped
//! eight bytes at a time.
//!
//! Why: serde_json looks every byte of every string up in its escape table, one at a time.
//! A 50-message page is some 25 KB of strings (contents, ids, times and every field's name),
//! and that loop was the largest single entry in a page's profile: 10.7 % of the server's
//! CPU for the native page on SQLite, 7 % of it on PostgreSQL's Sensay page
//! (docs/performance.md, twenty-second session). A word of eight bytes that holds no quote, no
//! backslash and no control character (almost every word of a message) is copied as it is
//! after one test.
//!
//! The output is serde_json's, so clients see no difference: the same escapes (`\"`, `\\`,
//! `\b \f \n \r \t`, other control characters as `\u00xx` with lower-case hex digits, nothing
//! else), numbers through the same `itoa` and `zmij`, non-finite floats as `null`, enums and map
//! keys as serde_json writes them, and `serde_json::value::RawValue` written raw. The unit tests
//! compare the two on every kind of value serde has.

use std::fmt::Display;

use serde::ser::{self, Serialize};

/// Why a value could not be written: only a map key that is not a string, a number, a bool or
/// a char, or a custom `Serialize` that fails on its own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

type Result<T = ()> = std::result::Result<T, Error>;

/// `value` as compact JSON, appended to `out` (on an error `out` may hold part of it).
pub fn write<T: ?Sized + Serialize>(out: &mut Vec<u8>, value: &T) -> Result {
    value.serialize(&mut Writer { out })
}

/// `value` as compact JSON in a buffer that starts with room for `capacity` bytes.
pub fn to_vec_with_capacity<T: ?Sized + Serialize>(capacity: usize, value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(capacity);
    write(&mut out, value)?;
    Ok(out)
}

/// `value` as compact JSON.
pub fn to_vec<T: ?Sized + Serialize>(value: &T) -> Result<Vec<u8>> {
    to_vec_with_capacity(128, value)
}

/// serde_json's name for the one-field struct a `RawValue` serializes as.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

// What each byte becomes in a JSON string: 0 stays as it is, `u` is `\u00xx`, any other is
// the letter after a backslash (serde_json's table).
const U: u8 = b'u';
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = U;
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `w` needs an escape. Exact (the classic "has a byte less
/// than n" and "has a zero byte" tests answer "any" without error, bytes of 0x80 and over
/// included: `!w` clears their high bit).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (control | quote | backslash) & HIGHS != 0
}

/// Whether any byte of `b` needs an escape, eight at a time. The bytes after the last whole
/// word are tested in a word that overlaps the one before (or, in a string shorter than a
/// word, in words put together in registers): assembling them in memory, byte by byte, and
/// reading that back as one word stalls the load (no store forwarding), which cost more than
/// the whole test.
#[inline]
fn needs_escape(b: &[u8]) -> bool {
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"));
    let n = b.len();
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            if word_needs_escape(word(i)) {
                return true;
            }
            i += 8;
        }
        i < n && word_needs_escape(word(n - 8))
    } else if n >= 4 {
        let half =
            |at: usize| u64::from(u32::from_le_bytes(b[at..at + 4].try_into().expect("four")));
        word_needs_escape(half(0) | half(n - 4) << 32)
    } else if n > 0 {
        const SPACES: u64 = ONES * 0x20;
        let w = u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16;
        word_needs_escape(w | (SPACES & !0xff_ffff))
    } else {
        false
    }
}

/// `s` as a JSON string, quotes included: copied whole when nothing in it needs an escape
/// (nearly always), else byte by byte as serde_json does.
fn string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    if needs_escape(b) {
        escaped(out, b);
    } else {
        out.extend_from_slice(b);
    }
    out.push(b'"');
}

#[cold]
fn escaped(out: &mut Vec<u8>, b: &[u8]) {
    let mut from = 0;
    for (i, &byte) in b.iter().enumerate() {
        let e = ESCAPE[usize::from(byte)];
        if e != 0 {
            out.extend_from_slice(&b[from..i]);
            escape(out, byte, e);
            from = i + 1;
        }
    }
    out.extend_from_slice(&b[from..]);
}

fn escape(out: &mut Vec<u8>, byte: u8, e: u8) {
    if e == U {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', e]);
    }
}

fn integer(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// A finite float as zmij writes it, else `null` (serde_json's choice).
fn float(out: &mut Vec<u8>, v: impl zmij::Float, finite: bool) {
    if finite {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The ten integer methods of a `Serializer`, each `$body(self, v)`.
macro_rules! integers {
    (|$s:ident, $v:ident| $body:expr) => {
        integers!(@ $s $v $body; serialize_i8 i8, serialize_i16 i16, serialize_i32 i32,
            serialize_i64 i64, serialize_i128 i128, serialize_u8 u8, serialize_u16 u16,
            serialize_u32 u32, serialize_u64 u64, serialize_u128 u128);
    };
    (@ $s:ident $v:ident $body:expr; $($method:ident $t:ty),*) => {$(
        fn $method(self, $v: $t) -> Result {
            let $s = self;
            $body
        }
    )*};
}

struct Writer<'o> {
    out: &'o mut Vec<u8>,
}

/// An array or object being written: whether an element was, and what closes it (`]`, `}`, or
/// `]}` / `}}` for an enum variant wrapped in `{"variant":…}`).
struct Compound<'a, 'o> {
    w: &'a mut Writer<'o>,
    first: bool,
    close: &'static [u8],
    /// A `RawValue`: its one field is written as it is.
    raw: bool,
}

impl<'a, 'o> Compound<'a, 'o> {
    fn new(w: &'a mut Writer<'o>, open: &[u8], close: &'static [u8]) -> Self {
        w.out.extend_from_slice(open);
        Compound {
            w,
            first: true,
            close,
            raw: false,
        }
    }

    /// `{"variant":` and then an array or object closed by `close` (its `]` or `}`, then `}`).
    fn variant(w: &'a mut Writer<'o>, name: &str, open: &[u8], close: &'static [u8]) -> Self {
        w.out.push(b'{');
        string(w.out, name);
        Compound::new(w, open, close)
    }

    fn comma(&mut self) {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
    }

    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result {
        self.comma();
        value.serialize(&mut *self.w)
    }

    fn field<T: ?Sized + Serialize>(&mut self, key: &str, value: &T) -> Result {
        if self.raw {
            return value.serialize(Key {
                out: self.w.out,
                raw: true,
            });
        }
        self.comma();
        string(self.w.out, key);
        self.w.out.push(b':');
        value.serialize(&mut *self.w)
    }

    fn finish(self) -> Result {
        self.w.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl<'a, 'o> ser::Serializer for &'a mut Writer<'o> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, 'o>;
    type SerializeTuple = Compound<'a, 'o>;
    type SerializeTupleStruct = Compound<'a, 'o>;
    type SerializeTupleVariant = Compound<'a, 'o>;
    type SerializeMap = Compound<'a, 'o>;
    type SerializeStruct = Compound<'a, 'o>;
    type SerializeStructVariant = Compound<'a, 'o>;

    fn serialize_bool(self, v: bool) -> Result {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(|w, v| {
        integer(w.out, v);
        Ok(())
    });
    fn serialize_f32(self, v: f32) -> Result {
        float(self.out, v, v.is_finite());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result {
        float(self.out, v, v.is_finite());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result {
        string(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result {
        string(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        self.out.push(b'{');
        string(self.out, variant);
        self.out.push(b':');
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a, 'o>> {
        Ok(Compound::new(self, b"[", b"]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'o>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'a, 'o>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'o>> {
        Ok(Compound::variant(self, variant, b":[", b"]}"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a, 'o>> {
        Ok(Compound::new(self, b"{", b"}"))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Compound<'a, 'o>> {
        if name == RAW_VALUE_TOKEN {
            let mut c = Compound::new(self, b"", b"");
            c.raw = true;
            return Ok(c);
        }
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'o>> {
        Ok(Compound::variant(self, variant, b":{", b"}}"))
    }
}

/// The compound traits whose elements need no key: all alike.
macro_rules! elements {
    ($($tr:ident :: $method:ident),*) => {$(
        impl ser::$tr for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result {
                self.element(value)
            }
            fn end(self) -> Result {
                self.finish()
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result {
        self.comma();
        key.serialize(Key {
            out: self.w.out,
            raw: false,
        })
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result {
        self.w.out.push(b':');
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

/// Structs and struct variants: fields by name.
macro_rules! fields {
    ($($tr:ident),*) => {$(
        impl ser::$tr for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: ?Sized + Serialize>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result {
                self.field(key, value)
            }
            fn end(self) -> Result {
                self.finish()
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

/// A map key, written as a JSON string as serde_json writes it (strings and chars, unit
/// variants, and numbers and bools in quotes), or, with `raw`, a `RawValue`'s text as it is.
struct Key<'o> {
    out: &'o mut Vec<u8>,
    raw: bool,
}

impl Key<'_> {
    fn quoted(self, text: &str) -> Result {
        if self.raw {
            return Err(not_a_string());
        }
        self.out.push(b'"');
        self.out.extend_from_slice(text.as_bytes());
        self.out.push(b'"');
        Ok(())
    }
}

fn not_a_string() -> Error {
    Error("key must be a string".to_owned())
}

impl ser::Serializer for Key<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result {
        if self.raw {
            self.out.extend_from_slice(v.as_bytes());
        } else {
            string(self.out, v);
        }
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_bool(self, v: bool) -> Result {
        self.quoted(if v { "true" } else { "false" })
    }
    integers!(|k, v| k.quoted(itoa::Buffer::new().format(v)));
    fn serialize_f32(self, v: f32) -> Result {
        if !v.is_finite() {
            return Err(Error("float key must be finite".to_owned()));
        }
        self.quoted(zmij::Buffer::new().format_finite(v))
    }
    fn serialize_f64(self, v: f64) -> Result {
        if !v.is_finite() {
            return Err(Error("float key must be finite".to_owned()));
        }
        self.quoted(zmij::Buffer::new().format_finite(v))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result {
        Err(not_a_string())
    }
    fn serialize_none(self) -> Result {
        Err(not_a_string())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result {
        Err(not_a_string())
    }
    fn serialize_unit(self) -> Result {
        Err(not_a_string())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        Err(not_a_string())
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result {
        Err(not_a_string())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(not_a_string())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(not_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(not_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(not_a_string())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(not_a_string())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(not_a_string())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(not_a_string())
    }
}

#[cfg(test)]
mod tests;
