//! Timestamps: stored as microseconds since the Unix epoch (UTC), shown as RFC 3339.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Microseconds since the epoch; the precision every backend stores.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// The inverse of [`to_micros`], in UTC.
pub fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Truncates to microseconds and moves to UTC, so a value round-trips through storage unchanged.
pub fn normalize(t: OffsetDateTime) -> OffsetDateTime {
    from_micros(to_micros(t))
}

/// The current time at storage precision.
pub fn now() -> OffsetDateTime {
    normalize(OffsetDateTime::now_utc())
}

/// `2025-01-15T10:30:00.123456Z`: RFC 3339, UTC, always six fractional digits.
pub fn rfc3339(t: OffsetDateTime) -> String {
    Rfc3339Text::new(t).as_str().to_owned()
}

/// [`rfc3339`] through `format!`: the reference [`Rfc3339Text`] is held to, and its path for
/// years RFC 3339 cannot write.
fn formatted(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// [`rfc3339`] on the stack: every JSON response and export row writes timestamps, and
/// `format!` with seven padded fields cost 4 % of an export's CPU (perf), most of it in the
/// formatting machinery rather than the digits.
pub struct Rfc3339Text {
    buf: [u8; 32],
    len: usize,
}

impl Rfc3339Text {
    /// The text of `t` in UTC.
    pub fn new(t: OffsetDateTime) -> Rfc3339Text {
        let t = t.to_offset(UtcOffset::UTC);
        let mut buf = [0u8; 32];
        let year = t.year();
        if !(0..=9999).contains(&year) {
            // Outside what RFC 3339 can say; never stored by confab, formatted as before.
            let text = formatted(t);
            let len = text.len().min(buf.len());
            buf[..len].copy_from_slice(&text.as_bytes()[..len]);
            return Rfc3339Text { buf, len };
        }
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, t.month() as u32);
        put(8, 2, u32::from(t.day()));
        put(11, 2, u32::from(t.hour()));
        put(14, 2, u32::from(t.minute()));
        put(17, 2, u32::from(t.second()));
        put(20, 6, t.microsecond());
        for (i, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (26, b'Z'),
        ] {
            buf[i] = c;
        }
        Rfc3339Text { buf, len: 27 }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Parses a client timestamp: RFC 3339 with any offset (stored in UTC, microsecond precision).
/// A bare `YYYY-MM-DD HH:MM:SS[.ffffff]` is read as UTC, since exporters often drop the zone.
pub fn parse(s: &str) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(normalize(t));
    }
    let fmt = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(s, &fmt)
        .map(|p| normalize(p.assume_utc()))
        .map_err(|_| format!("`{s}` is not an RFC 3339 timestamp (e.g. 2025-01-15T10:30:00Z)"))
}

/// Serde adapters for RFC 3339 timestamps in the format above.
pub mod serde_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Serializes as [`super::rfc3339`].
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(super::Rfc3339Text::new(*t).as_str())
    }

    /// Deserializes with [`super::parse`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }

    /// The same for optional values.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        /// Serializes `Some` as RFC 3339 and `None` as null.
        pub fn serialize<S: Serializer>(
            t: &Option<OffsetDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(super::super::Rfc3339Text::new(*t).as_str()),
                None => s.serialize_none(),
            }
        }

        /// Accepts null, absent or an RFC 3339 string.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(s) => super::super::parse(&s)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
                None => Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_text_matches_format_across_the_range() {
        // Edges of the fast path, the epoch, leap days, and a spread of ordinary values.
        let mut samples = vec![
            i64::MIN / 4,
            -62_167_219_200_000_000, // 0000-01-01T00:00:00Z
            -62_167_219_200_000_001, // one microsecond before: year -1, the slow path
            0,
            951_782_400_000_000,     // 2000-02-29
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999Z
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push((x % 253_402_300_800_000_000) as i64);
        }
        for us in samples {
            let t = from_micros(us);
            assert_eq!(Rfc3339Text::new(t).as_str(), formatted(t), "{us}");
        }
        assert_eq!(
            Rfc3339Text::new(from_micros(951_782_400_000_007)).as_str(),
            "2000-02-29T00:00:00.000007Z"
        );
    }

    #[test]
    fn round_trips_micros() {
        let t = parse("2024-09-24T09:09:55.667091+02:00").unwrap();
        assert_eq!(rfc3339(t), "2024-09-24T07:09:55.667091Z");
        assert_eq!(from_micros(to_micros(t)), t);
    }

    #[test]
    fn reads_bare_timestamps_as_utc() {
        assert_eq!(
            rfc3339(parse("2024-09-25 19:54:59.124733").unwrap()),
            "2024-09-25T19:54:59.124733Z"
        );
        assert_eq!(
            rfc3339(parse("2024-09-25T19:54:59").unwrap()),
            "2024-09-25T19:54:59.000000Z"
        );
        assert!(parse("yesterday").is_err());
        assert!(parse("2024-13-01T00:00:00Z").is_err());
    }
}
