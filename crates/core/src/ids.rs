//! Identifiers: UUIDv7 everywhere, accepted with or without dashes (Convai shows 32 hex digits).

use uuid::Uuid;

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Parses the dashed form or the 32-hex-digit form.
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    let s = s.trim();
    if s.len() != 36 && s.len() != 32 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

/// The 32-hex-digit form Convai shows.
pub fn hex32(id: Uuid) -> String {
    id.simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_to_the_same_id() {
        let id = new_id();
        assert_eq!(parse_uuid(&id.to_string()), Some(id));
        assert_eq!(parse_uuid(&hex32(id)), Some(id));
        assert_eq!(parse_uuid("conv_123"), None);
        assert_eq!(parse_uuid("{00000000-0000-0000-0000-000000000000}"), None);
    }
}
