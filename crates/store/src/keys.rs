//! API keys: a public id and a random secret; only an HMAC of the secret is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The built-in pepper, used when `CONFAB_KEY_PEPPER` is not set. Secrets are 256-bit random,
/// so a leaked hash cannot be brute-forced even with it; a deployment's own pepper adds a
/// second secret outside the database.
pub const DEFAULT_PEPPER: &str = "confab-key-pepper-v1";

/// A freshly generated key pair.
pub struct GeneratedKey {
    /// `ck_` + 32 hex digits; public.
    pub key_id: String,
    /// 43 base64url characters; shown once.
    pub secret: String,
}

/// Generates a key id and secret from the OS random generator.
pub fn generate() -> GeneratedKey {
    let mut rng = rand::rng();
    let mut id = [0u8; 16];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let key_id = format!(
        "ck_{}",
        id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    GeneratedKey {
        key_id,
        secret: URL_SAFE_NO_PAD.encode(secret),
    }
}

/// HMAC-SHA256(pepper, secret).
pub fn hash_secret(pepper: &[u8], secret: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(pepper).expect("HMAC takes any key length");
    mac.update(secret.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time comparison of a presented secret with a stored hash.
pub fn verify(pepper: &[u8], secret: &str, stored: &[u8]) -> bool {
    let h = hash_secret(pepper, secret);
    h.len() == stored.len() && bool::from(h.ct_eq(stored))
}

/// Splits `key_id.secret`.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.trim().split_once('.')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_accepts_only_the_secret() {
        let k = generate();
        let h = hash_secret(b"p", &k.secret);
        assert!(verify(b"p", &k.secret, &h));
        assert!(!verify(b"q", &k.secret, &h));
        assert!(!verify(b"p", "nope", &h));
        assert_eq!(
            split_token(&format!("{}.{}", k.key_id, k.secret)),
            Some((k.key_id.as_str(), k.secret.as_str()))
        );
        assert_eq!(split_token("nodot"), None);
    }
}
