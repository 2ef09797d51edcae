//! Per-key rate limiting: a token bucket per API key, checked right after the key is verified
//! (so one noisy key never slows another). Off until configured.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::StatusCode;

use crate::error::ApiError;

/// Sustained rate and burst.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: requests allowed at once after a quiet spell.
    pub burst: u32,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every key seen.
pub struct Limiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// A limiter with one policy for every key.
    pub fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or answers 429 with the seconds until one is available.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut map = self.buckets.lock().expect("rate limiter lock");
        let burst = f64::from(self.limit.burst.max(1));
        let b = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.limit.per_second).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - b.tokens) / self.limit.per_second).ceil().max(1.0) as u64;
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "too many requests for this API key",
        );
        e.retry_after = Some(wait);
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills() {
        let l = Limiter::new(RateLimit {
            per_second: 1000.0,
            burst: 2,
        });
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_ok());
        let e = l.check("a").unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(l.check("b").is_ok(), "keys are independent");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(l.check("a").is_ok());
    }
}
