//! Idempotency keys at the HTTP edge: read the header, fingerprint the request. The rule itself
//! (lookup, replay, expiry, mismatch) lives in the store, inside the write's transaction.

use axum::http::HeaderMap;
use confab_store::IdempotencyClaim;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Longest accepted key.
pub const MAX_KEY: usize = 255;

/// Checks a client key: 1 to 255 printable ASCII characters.
pub fn check_key(field: &str, key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ApiError::field(
            field,
            format!("must be 1 to {MAX_KEY} printable ASCII characters"),
        ));
    }
    Ok(())
}

/// The native `Idempotency-Key` claim (Stripe semantics): the fingerprint covers the route and
/// the body in canonical form, so the same key on another route or with another body is a 422.
pub fn native_claim(
    headers: &HeaderMap,
    route: &str,
    canonical_body: impl FnOnce() -> Vec<u8>,
) -> Result<Option<IdempotencyClaim>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .map_err(|_| ApiError::field("Idempotency-Key", "must be printable ASCII"))?;
    check_key("Idempotency-Key", key)?;
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(canonical_body());
    Ok(Some(IdempotencyClaim {
        family: "native",
        key: key.to_owned(),
        fingerprint: Some(h.finalize().to_vec()),
    }))
}
