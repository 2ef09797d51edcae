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
    let t = t.to_offset(UtcOffset::UTC);
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
        s.serialize_str(&super::rfc3339(*t))
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
                Some(t) => s.serialize_str(&super::super::rfc3339(*t)),
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
