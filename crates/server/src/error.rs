//! The HTTP layer's one error type. Every handler and extractor answers with it; its body is the
//! `{"error":{"code","message","details"}}` shape (native, Converra, perform.chat, Convai), and
//! a dialect with another documented shape re-renders it in one place (see `sensay_errors`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_core::ValidationError;
use confab_store::StoreError;
use serde_json::{Map, Value, json};

/// An error answer: status, stable code, human message, and per-field details.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`VALIDATION_ERROR`, `NOT_FOUND`, …).
    pub code: &'static str,
    /// For humans; never internal text.
    pub message: String,
    /// Field name → problem.
    pub details: Option<Map<String, Value>>,
    /// Seconds to wait before retrying (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 400 naming one field.
    pub fn field(field: &str, problem: impl Into<String>) -> Self {
        ValidationError::field(field, problem).into()
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 404 for anything the caller cannot see, including other tenants' rows.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", message)
    }

    /// 500, logged with its cause; the client sees a generic message.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error; see the server log",
        )
    }

    /// Adds a detail entry.
    pub fn with_detail(mut self, field: &str, problem: impl Into<String>) -> Self {
        self.details
            .get_or_insert_with(Map::new)
            .insert(field.into(), Value::String(problem.into()));
        self
    }

    /// The Converra-shaped body.
    pub fn body(&self) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.details {
            e["details"] = Value::Object(d.clone());
        }
        json!({ "error": e })
    }
}

impl From<ValidationError> for ApiError {
    fn from(v: ValidationError) -> Self {
        let mut details = Map::new();
        for e in &v.errors {
            details
                .entry(e.field.clone())
                .or_insert_with(|| Value::String(e.message.clone()));
        }
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "VALIDATION_ERROR",
            message: format!("Invalid request: {v}"),
            details: Some(details),
            retry_after: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("conversation"),
            StoreError::Invalid(v) => v.into(),
            StoreError::IdempotencyMismatch => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was already used with a different request",
            ),
            StoreError::Conflict(what) => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                format!("{what} already exists"),
            ),
            // The same answer as the request timeout's own (lib.rs), which this one beats to
            // it: a read on a thread of its own cannot be dropped when the timer fires.
            StoreError::ReadTimeout => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "TIMEOUT",
                "the request took too long",
            ),
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the server is shutting down",
            ),
            // The database may have stored the write (PostgreSQL: the connection was lost with
            // the commit in flight), so this is not "nothing happened": the client learns what
            // was stored by sending it again with the same Idempotency-Key, which answers the
            // first write's result if there was one and stores it otherwise.
            StoreError::Commit(cause) => {
                tracing::error!(error = %cause, "a write's commit could not be confirmed");
                metrics::counter!("confab_writes_unconfirmed_total").increment(1);
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "WRITE_UNCONFIRMED",
                    "the write could not be confirmed and may have been stored; send it again \
                     with the same Idempotency-Key to get its result without storing it twice",
                );
                e.retry_after = Some(1);
                e
            }
            other => ApiError::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, crate::json::Json(self.body())).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res.extensions_mut().insert(self);
        res
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
