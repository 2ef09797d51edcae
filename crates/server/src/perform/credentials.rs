//! perform.chat authentication: `{"keyId","keySecret"}` as a JSON body (on GET, as the seeds'
//! clients send it), or the single-string token in `Authorization: Bearer` for clients that
//! cannot send a body with GET.

use axum::extract::{FromRequest, FromRequestParts, Request};
use confab_core::Scope;
use confab_store::Principal;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::auth::{bearer_token, verify, verify_token};
use crate::error::ApiError;
use crate::extract::{QueryParams, parse_json, read_body};

/// The credentials body. Unknown fields are refused so a misspelt `keyID` is named in a 400
/// instead of ending as a puzzling 401.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsIn {
    #[serde(rename = "keyId")]
    key_id: Option<String>,
    #[serde(rename = "keySecret")]
    key_secret: Option<String>,
}

/// A verified perform.chat caller (read scope) and the route's query parameters.
///
/// Both come from one extractor because the credentials may be in the body, which only the
/// last extractor may read, while bad credentials must win over bad parameters: an
/// unauthenticated caller learns nothing about the route.
pub struct Authed<Q> {
    /// The caller.
    pub principal: Principal,
    /// Parsed query parameters.
    pub query: Q,
}

impl<Q: DeserializeOwned + Send> FromRequest<AppState> for Authed<Q> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let query = QueryParams::<Q>::from_request_parts(&mut parts, state).await;
        let principal = match bearer_token(&parts.headers) {
            Some(token) => verify_token(state, token, Scope::Read).await?,
            None => {
                let bytes = read_body(Request::from_parts(parts, body), state).await?;
                from_body(&bytes, state).await?
            }
        };
        Ok(Authed {
            principal,
            query: query?.0,
        })
    }
}

async fn from_body(bytes: &[u8], state: &AppState) -> Result<Principal, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::unauthorized(
            "Missing API credentials: send {\"keyId\",\"keySecret\"} as the JSON body",
        ));
    }
    let c: CredentialsIn = parse_json(bytes)?;
    let missing = |field: &str| {
        ApiError::unauthorized(format!("Missing API credentials: {field} is required"))
            .with_detail(field, "is required")
    };
    let key_id = c.key_id.ok_or_else(|| missing("keyId"))?;
    let key_secret = c.key_secret.ok_or_else(|| missing("keySecret"))?;
    verify(state, &key_id, &key_secret, Scope::Read).await
}
