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

/// Where a dialect documents its credential: each route accepts only its own dialect's header,
/// so the OpenAPI document's security requirement is exactly what the route checks.
pub trait Credential: Send + Sync + 'static {
    /// The token in `h`, if present.
    fn token(h: &HeaderMap) -> Option<&str>;
}

/// `Authorization: Bearer <token>` (native, Converra, perform.chat).
pub struct Bearer;
/// `CONVAI-API-KEY: <token>` (Convai).
pub struct ConvaiKey;
/// `X-ORGANIZATION-SECRET: <token>` (Sensay).
pub struct OrganizationSecret;

impl Credential for Bearer {
    fn token(h: &HeaderMap) -> Option<&str> {
        bearer_token(h)
    }
}
impl Credential for ConvaiKey {
    fn token(h: &HeaderMap) -> Option<&str> {
        h.get("convai-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }
}
impl Credential for OrganizationSecret {
    fn token(h: &HeaderMap) -> Option<&str> {
        h.get("x-organization-secret")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }
}

/// An authenticated caller whose key holds scope `N`, presented the way `C` says.
pub struct Auth<N: Need, C: Credential = Bearer>(pub Principal, pub PhantomData<(N, C)>);

/// A caller allowed to read.
pub type Reader = Auth<NeedRead>;
/// A caller allowed to write.
pub type Writer = Auth<NeedWrite>;
/// A caller allowed to administer.
pub type Admin = Auth<NeedAdmin>;
/// A Convai caller allowed to read.
pub type ConvaiReader = Auth<NeedRead, ConvaiKey>;
/// A Sensay caller allowed to read.
pub type SensayReader = Auth<NeedRead, OrganizationSecret>;

impl<N: Need, C: Credential> Auth<N, C> {
    /// Wraps a principal already checked for `N`.
    pub fn checked(p: Principal) -> Self {
        Auth(p, PhantomData)
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(h: &HeaderMap) -> Option<&str> {
    let v = h
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    (v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ")).then(|| v[7..].trim())
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

impl<N: Need, C: Credential> FromRequestParts<AppState> for Auth<N, C> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = C::token(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("Missing API credentials"))?;
        Ok(Auth::checked(verify_token(state, token, N::SCOPE).await?))
    }
}
