//! Authentication and scopes. A handler names what it needs by type (`Reader`, `Writer`,
//! `Admin`); without one of these it holds no `TenantId` and cannot reach the store.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use confab_core::Scope;
use confab_store::Principal;

use crate::AppState;
use crate::error::ApiError;

/// A scope requirement, as a type.
pub trait Need: Send + Sync + 'static {
    /// The scope the key must hold.
    const SCOPE: Scope;
}

/// Needs `read`.
pub struct NeedRead;
/// Needs `write` (which includes delete).
pub struct NeedWrite;
/// Needs `admin`.
pub struct NeedAdmin;

impl Need for NeedRead {
    const SCOPE: Scope = Scope::Read;
}
impl Need for NeedWrite {
    const SCOPE: Scope = Scope::Write;
}
impl Need for NeedAdmin {
    const SCOPE: Scope = Scope::Admin;
}

/// An authenticated caller whose key holds scope `N`.
pub struct Auth<N: Need>(pub Principal, pub PhantomData<N>);

/// A caller allowed to read.
pub type Reader = Auth<NeedRead>;
/// A caller allowed to write.
pub type Writer = Auth<NeedWrite>;
/// A caller allowed to administer.
pub type Admin = Auth<NeedAdmin>;

impl<N: Need> Auth<N> {
    /// Wraps a principal already checked for `N`.
    pub fn checked(p: Principal) -> Self {
        Auth(p, PhantomData)
    }
}

/// The token a request carries in any header a dialect documents: `Authorization: Bearer`
/// (native, Converra, perform.chat), `CONVAI-API-KEY` (Convai), `X-ORGANIZATION-SECRET` (Sensay).
pub fn header_token(h: &HeaderMap) -> Option<&str> {
    if let Some(v) = h
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim());
        }
    }
    for name in ["convai-api-key", "x-organization-secret"] {
        if let Some(v) = h.get(name).and_then(|v| v.to_str().ok()) {
            return Some(v.trim());
        }
    }
    None
}

/// Verifies a key id and secret and checks the scope: 401 for bad credentials, 403 for a
/// missing scope.
pub async fn verify(
    state: &AppState,
    key_id: &str,
    secret: &str,
    need: Scope,
) -> Result<Principal, ApiError> {
    let p = state
        .store
        .authenticate(key_id, secret)
        .await?
        .ok_or_else(|| ApiError::unauthorized("Invalid API credentials"))?;
    if let Some(l) = &state.limiter {
        l.check(&p.key_id)?;
    }
    if !p.scopes.has(need) {
        return Err(ApiError::forbidden(format!(
            "this API key lacks the `{need}` scope"
        )));
    }
    Ok(p)
}

/// Verifies a `key_id.secret` token.
pub async fn verify_token(
    state: &AppState,
    token: &str,
    need: Scope,
) -> Result<Principal, ApiError> {
    let (id, secret) = confab_store::keys::split_token(token)
        .ok_or_else(|| ApiError::unauthorized("Invalid API credentials"))?;
    verify(state, id, secret, need).await
}

impl<N: Need> FromRequestParts<AppState> for Auth<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = header_token(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("Missing API credentials"))?;
        Ok(Auth::checked(verify_token(state, token, N::SCOPE).await?))
    }
}
