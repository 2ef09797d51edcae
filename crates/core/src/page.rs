//! Page-size rules shared by every list route: 1..=100 everywhere.

use crate::error::ValidationError;

/// Largest page any route serves.
pub const MAX_LIMIT: i64 = 100;

/// `v` or `default`, refused outside 1..=`max` with an error naming `field`.
pub fn limit(v: Option<i64>, default: i64, max: i64, field: &str) -> Result<i64, ValidationError> {
    match v {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ValidationError::field(
            field,
            format!("must be between 1 and {max}, got {n}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounds() {
        assert_eq!(super::limit(None, 20, 100, "limit"), Ok(20));
        assert_eq!(super::limit(Some(100), 20, 100, "limit"), Ok(100));
        assert!(super::limit(Some(0), 20, 100, "limit").is_err());
        assert!(super::limit(Some(101), 20, 100, "limit").is_err());
    }
}
