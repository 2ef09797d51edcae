//! Recently verified API keys, so a request does not cost a database round trip to authenticate.
//!
//! An entry holds the HMAC of the secret that was verified against the database, and answers
//! only a request presenting the same secret (compared in constant time). It lives
//! [`KEY_CACHE_TTL`]: a key revoked through this store is dropped at once; one revoked by another
//! process (`confab keys revoke` on a running server's database, another server on the same
//! PostgreSQL) stops working within that time. Wrong secrets are never cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::types::Principal;

/// How long a verified key is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; the cache is emptied when full (keys are few, churn is rare).
const CAPACITY: usize = 10_000;

struct Entry {
    hash: Vec<u8>,
    principal: Principal,
    at: Instant,
}

#[derive(Default)]
pub struct KeyCache {
    map: Mutex<HashMap<String, Entry>>,
}

impl KeyCache {
    /// The principal for `key_id` if it was verified with a secret hashing to `hash` lately.
    pub fn get(&self, key_id: &str, hash: &[u8]) -> Option<Principal> {
        let map = self.map.lock().expect("key cache lock");
        let e = map.get(key_id)?;
        (e.at.elapsed() < KEY_CACHE_TTL
            && e.hash.len() == hash.len()
            && bool::from(e.hash.ct_eq(hash)))
        .then(|| e.principal.clone())
    }

    pub fn put(&self, hash: Vec<u8>, principal: Principal) {
        let mut map = self.map.lock().expect("key cache lock");
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(
            principal.key_id.clone(),
            Entry {
                hash,
                principal,
                at: Instant::now(),
            },
        );
    }

    pub fn forget(&self, key_id: &str) {
        self.map.lock().expect("key cache lock").remove(key_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TenantId;

    #[test]
    fn answers_only_the_verified_secret_and_forgets_on_revoke() {
        let c = KeyCache::default();
        let p = Principal {
            tenant: TenantId(uuid::Uuid::nil()),
            key_id: "ck_1".into(),
            scopes: confab_core::Scopes::DEFAULT,
        };
        c.put(vec![1; 32], p);
        assert!(c.get("ck_1", &[1; 32]).is_some());
        assert!(
            c.get("ck_1", &[2; 32]).is_none(),
            "another secret is not served"
        );
        assert!(c.get("ck_2", &[1; 32]).is_none());
        c.forget("ck_1");
        assert!(c.get("ck_1", &[1; 32]).is_none());
    }
}
