//! Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")),
//! where the secret is the base64 part of `whsec_…`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One `v1,…` signature.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let raw = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = STANDARD
        .decode(raw)
        .unwrap_or_else(|_| raw.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per live secret, space-separated, so a receiver
/// holding either the new or the old secret accepts it during a rotation's grace period.
pub fn signature_header(secrets: &[String], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn standard_webhooks_test_vector() {
        let sig = super::sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
