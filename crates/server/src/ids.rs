//! Path ids. An id that cannot exist is simply not found: the same 404 as another tenant's.

use uuid::Uuid;

use crate::error::ApiError;

/// A conversation id from a path (dashed or 32-hex form).
pub fn conversation_id(s: &str) -> Result<Uuid, ApiError> {
    confab_core::ids::parse_uuid(s).ok_or_else(|| ApiError::not_found("conversation"))
}
