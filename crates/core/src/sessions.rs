//! The session-list rules (Convai `chatHistory/list`): how many sessions a `limit` asks for.

use serde_json::Value;

use crate::error::ValidationError;

/// How many sessions to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimit {
    /// Every session (`"-1"`, or no limit given).
    All,
    /// At most this many, newest first.
    Newest(i64),
}

impl SessionLimit {
    /// Reads Convai's `limit`: documented as a string (`"-1"` = all), but clients also send a
    /// number, so both are read. Absent or null means all, as the documented `"-1"` does.
    /// Zero, other negatives and anything that is not a whole number are refused rather than
    /// guessed at. There is no upper bound: "all" is allowed, so a large number is too.
    pub fn parse(v: Option<&Value>) -> Result<SessionLimit, ValidationError> {
        let bad = |got: &dyn std::fmt::Display| {
            ValidationError::field(
                "limit",
                format!("must be a positive whole number or \"-1\" for all, got {got}"),
            )
        };
        let n = match v {
            None | Some(Value::Null) => return Ok(SessionLimit::All),
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| bad(&format!("{s:?}")))?,
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| bad(n))?,
            Some(other) => return Err(bad(other)),
        };
        match n {
            -1 => Ok(SessionLimit::All),
            n if n >= 1 => Ok(SessionLimit::Newest(n)),
            n => Err(bad(&n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_numbers_and_all() {
        let p = |v: Value| SessionLimit::parse(Some(&v));
        assert_eq!(SessionLimit::parse(None), Ok(SessionLimit::All));
        assert_eq!(p(json!(null)), Ok(SessionLimit::All));
        assert_eq!(p(json!("-1")), Ok(SessionLimit::All));
        assert_eq!(p(json!(-1)), Ok(SessionLimit::All));
        assert_eq!(p(json!("5")), Ok(SessionLimit::Newest(5)));
        assert_eq!(p(json!(" 7 ")), Ok(SessionLimit::Newest(7)));
        assert_eq!(p(json!(500)), Ok(SessionLimit::Newest(500)));
        for bad in [
            json!("0"),
            json!(0),
            json!("-2"),
            json!("ten"),
            json!(""),
            json!(2.5),
            json!(true),
            json!([1]),
        ] {
            let e = p(bad.clone()).unwrap_err();
            assert_eq!(e.errors[0].field, "limit", "{bad}");
        }
    }
}
