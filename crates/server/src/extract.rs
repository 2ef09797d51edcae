//! Extractors that turn wire input into typed values or a JSON error naming the field:
//! axum's own rejections are plain text, which no dialect documents.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Turns a serde error with its path into a field-naming validation error.
fn path_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>, root: &str) -> ApiError {
    let path = e.path().to_string();
    // serde_path_to_error says `.` for the root and `?` where it could not tell (e.g. EOF).
    let path = path.trim_end_matches('?').trim_end_matches('.').to_owned();
    let inner = e.into_inner().to_string();
    // A missing field is reported at its parent; name the field itself.
    let missing = inner
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next());
    let field = match (path.is_empty(), missing) {
        (true, Some(m)) => m.to_owned(),
        (false, Some(m)) => format!("{path}.{m}"),
        (true, None) => root.to_owned(),
        (false, None) => path,
    };
    // serde_json appends " at line 1 column 9"; the field path already says where.
    let msg = match inner.find(" at line ") {
        Some(i) => inner[..i].to_owned(),
        None => inner,
    };
    ApiError::field(&field, msg)
}

/// Parses a JSON body (whatever the Content-Type says: vendor clients are loose about it).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::field("body", "a JSON body is required"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // A truncated body, or a syntax error outside any field, is the body's fault. A syntax
        // error inside a field's value names the field: serde_json also reports a value of the
        // wrong kind for an enum (`"status": 1`) as a syntax error, and that field must be named.
        let path = e.path().to_string();
        let in_field = !path.trim_end_matches('?').trim_end_matches('.').is_empty();
        if e.inner().is_eof() || (e.inner().is_syntax() && !in_field) {
            let inner = e.into_inner().to_string();
            let msg = inner.split(" at line ").next().unwrap_or_default();
            ApiError::field("body", format!("is not valid JSON: {msg}"))
        } else {
            path_error(e, "body")
        }
    })?;
    de.end().map_err(|e| {
        ApiError::field(
            "body",
            format!("trailing characters after the JSON value: {e}"),
        )
    })?;
    Ok(v)
}

/// Reads the body within the configured limit; 413 past it.
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large("request body is larger than the configured limit")
        } else {
            ApiError::field("body", format!("could not read the request body: {e}"))
        }
    })
}

/// A JSON body, deserialized with the path of any bad field.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body kept with its raw bytes (for idempotency fingerprints).
pub struct RawJson<T> {
    /// Parsed value.
    pub value: T,
    bytes: axum::body::Bytes,
}

impl<T> RawJson<T> {
    /// The canonical JSON text (keys sorted), for fingerprints; made only when a request
    /// carries an idempotency key.
    pub fn canonical(&self) -> Vec<u8> {
        let v: serde_json::Value = serde_json::from_slice(&self.bytes).unwrap_or_default();
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for RawJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        let value = parse_json(&bytes)?;
        Ok(RawJson { value, bytes })
    }
}

/// Query parameters, deserialized with the name of any bad parameter.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        // `?cursor=&status=` means "not given": forms and generated clients send empty values
        // for unset fields, and an empty string is never a valid value of any parameter here.
        let kept = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form_urlencoded::parse(q.as_bytes()).filter(|(_, v)| !v.is_empty()))
            .finish();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(kept.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| path_error(e, "query"))
    }
}
