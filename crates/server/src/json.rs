//! `Json(value)` as a response, serialized into a buffer that starts at the size this thread's
//! last response needed.
//!
//! axum's own `Json` starts every response at 128 bytes and lets the buffer double as serde
//! writes into it: a 20-hit search answer (about 6 KiB) or a 50-message page (about 15 KiB) was
//! six or seven `realloc`s with their copies, 3 % of a ranked search's CPU at 64 connections
//! (docs/performance.md, 2026-11-30, twelfth session). A runtime worker thread serves one route
//! after another, and their sizes are alike far more often than not, so the last size is a good
//! first guess. Too small, the buffer grows as axum's did; too large (after the OpenAPI
//! document, say), one response holds an allocation it does not touch, and the next guess is
//! its own size again.
//!
//! The bytes are serde_json's, written by `confab_core::json_out`, which escapes strings eight
//! bytes at a time instead of one (a third less time for a page's JSON).

use std::cell::Cell;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use confab_core::json_out;
use serde::Serialize;

/// The smallest and largest first guess: below, `malloc` costs the same; above, a rare huge
/// export listing should not make every later response start that large.
const MIN_GUESS: usize = 512;
const MAX_GUESS: usize = 256 * 1024;

thread_local! {
    static LAST: Cell<usize> = const { Cell::new(MIN_GUESS) };
}

/// A JSON response body (`application/json`), like axum's `Json` but without its growth from
/// 128 bytes. Responses only: request bodies go through `crate::extract`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let guess = LAST.with(Cell::get);
        match json_out::to_vec_with_capacity(guess, &self.0) {
            Ok(body) => {
                LAST.with(|l| l.set(body.len().clamp(MIN_GUESS, MAX_GUESS).next_power_of_two()));
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    Bytes::from(body),
                )
                    .into_response()
            }
            // What axum's `Json` answers too: only a value serde cannot represent gets here
            // (a map with non-string keys), which is a bug of ours, not the caller's.
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                e.to_string(),
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> (StatusCode, String, Vec<u8>) {
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let status = r.status();
        let b = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, ct, b.to_vec())
    }

    #[tokio::test]
    async fn small_and_large_bodies_come_out_whole_in_any_order() {
        let big: Vec<String> = (0..5000).map(|i| format!("message {i}")).collect();
        let small = serde_json::json!({"ok": true});
        // Large after small, small after large, large again: the guess moves, the bytes don't.
        for v in [
            serde_json::json!(small),
            serde_json::json!(big),
            serde_json::json!(small),
            serde_json::json!(big),
        ] {
            let (status, ct, b) = body(Json(&v).into_response()).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(ct, "application/json");
            assert_eq!(b, serde_json::to_vec(&v).expect("serializes"));
        }
    }

    #[tokio::test]
    async fn a_value_json_cannot_hold_is_a_500_not_a_panic() {
        let mut m = std::collections::BTreeMap::new();
        m.insert((1, 2), "tuple keys are not JSON object keys");
        let (status, ct, _) = body(Json(&m).into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(ct.starts_with("text/plain"));
    }
}
