//! The dashboard's sign-in session and CSRF protection.
//!
//! The session cookie holds the API key token itself and is verified on every request exactly
//! like a Bearer token (`auth::verify_token`: same key store, scopes and rate limit), so
//! revoking a key signs its browsers out at once and there is no second credential to manage.
//! Forms that change state carry `HMAC(server secret, token)`; a POST is refused (403) without
//! it, or when the browser says it came from another site.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confab_core::Scope;
use confab_store::Principal;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::pages::error_page;
use crate::AppState;
use crate::auth::{Need, verify_token};

/// The cookie's name.
pub const COOKIE: &str = "confab_session";

/// A signed-in browser: the verified key and the CSRF token its forms must carry.
pub struct Session {
    /// The verified key.
    pub principal: Principal,
    /// CSRF token for this session's forms.
    pub csrf: String,
}

impl Session {
    /// Whether the key may change conversations.
    pub fn can_write(&self) -> bool {
        self.principal.scopes.has(Scope::Write)
    }

    /// Whether the key may manage keys and see webhooks.
    pub fn can_admin(&self) -> bool {
        self.principal.scopes.has(Scope::Admin)
    }
}

/// The session token from the `Cookie` header, if any.
pub fn cookie_token(h: &HeaderMap) -> Option<&str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The CSRF token of a session: it cannot be computed without the server secret, and it
/// changes with the key, so a token seen for one key is useless for another.
pub fn csrf_token(state: &AppState, session_token: &str) -> String {
    let secret = state
        .config
        .dashboard
        .csrf_secret
        .as_deref()
        .unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"confab-dashboard-csrf\0");
    mac.update(session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of a submitted CSRF token with the session's.
pub fn csrf_ok(expected: &str, got: &str) -> bool {
    expected.len() == got.len() && bool::from(expected.as_bytes().ct_eq(got.as_bytes()))
}

/// Whether a POST plainly came from another site. Modern browsers send `Sec-Fetch-Site`,
/// which a page cannot forge, and it decides alone. Otherwise `Origin` (sent on every POST by
/// browsers of the last decade) must name this host, as the client saw it: `X-Forwarded-Host`
/// when a proxy rewrote `Host`. A request with neither header (curl, old tools) is judged by
/// the CSRF token alone.
pub fn cross_site(h: &HeaderMap) -> bool {
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // `Origin: null` (sandboxed frames, some redirects) is never our own page.
    let Some(origin_host) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return true;
    };
    let named = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(origin_host))
    };
    !(named("host") || named("x-forwarded-host"))
}

/// The `Set-Cookie` value that signs a browser in.
pub fn set_cookie(state: &AppState, h: &HeaderMap, token: &str) -> HeaderValue {
    let secure = state
        .config
        .dashboard
        .secure_cookie
        .unwrap_or_else(|| came_over_tls(h));
    let v = format!(
        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    );
    // The token is `ck_<hex>.<base64url>`, which is always a valid header value; a token that
    // is not was refused by verification before this is reached.
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that signs a browser out.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "confab_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
    )
}

/// TLS is terminated in front of confab, so the proxy's word is all there is; trusting it only
/// ever adds `Secure`, which cannot weaken anything.
fn came_over_tls(h: &HeaderMap) -> bool {
    h.get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Where an unauthenticated page request goes.
fn to_login() -> Response {
    Redirect::to("/ui/login").into_response()
}

async fn verify(parts: &Parts, state: &AppState) -> Result<Session, Response> {
    let Some(token) = cookie_token(&parts.headers) else {
        return Err(to_login());
    };
    match verify_token(state, token, Scope::Read).await {
        Ok(principal) => Ok(Session {
            principal,
            csrf: csrf_token(state, token),
        }),
        // A revoked or unknown key, or one that lost `read`: sign in again.
        Err(e) if matches!(e.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
            let mut r = to_login();
            r.headers_mut().insert(header::SET_COOKIE, clear_cookie());
            Err(r)
        }
        Err(e) => Err(error_page(e.status, &e.message)),
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        verify(parts, state).await
    }
}

/// Every form that changes state carries this field.
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    /// The session's CSRF token.
    pub csrf: String,
}

/// A form posted by a signed-in browser, checked in this order: session (else sign-in),
/// same-site (else 403), form syntax (else 400), CSRF token (else 403), scope `N` (else 403).
pub struct Post<N: Need, T> {
    /// The session.
    pub session: Session,
    /// The form's fields.
    pub form: T,
    _need: std::marker::PhantomData<N>,
}

/// What a posted form must have besides its own fields.
pub trait HasCsrf {
    /// The submitted CSRF token.
    fn csrf(&self) -> &str;
}

impl HasCsrf for CsrfOnly {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl<N: Need, T: DeserializeOwned + HasCsrf + Send> FromRequest<AppState> for Post<N, T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let session = verify(&parts, state).await?;
        if cross_site(&parts.headers) {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "This form was submitted from another site.",
            ));
        }
        let bytes = axum::body::to_bytes(body, state.config.max_body_bytes)
            .await
            .map_err(|_| error_page(StatusCode::BAD_REQUEST, "The form could not be read."))?;
        let form: T = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| error_page(StatusCode::BAD_REQUEST, "The form is incomplete."))?;
        if !csrf_ok(&session.csrf, form.csrf()) {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "The form has expired or was not issued by this server. Reload the page and try again.",
            ));
        }
        if !session.principal.scopes.has(N::SCOPE) {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                &format!("This API key lacks the `{}` scope.", N::SCOPE),
            ));
        }
        Ok(Post {
            session,
            form,
            _need: std::marker::PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_reads_fetch_metadata_and_origin() {
        assert!(!cross_site(&headers(&[])));
        assert!(!cross_site(&headers(&[
            ("host", "a:1"),
            ("origin", "http://a:1"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(cross_site(&headers(&[
            ("host", "a:1"),
            ("origin", "http://evil:1")
        ])));
        assert!(cross_site(&headers(&[("host", "a:1"), ("origin", "null")])));
        // Behind a proxy that rewrote Host.
        assert!(!cross_site(&headers(&[
            ("host", "backend:8080"),
            ("x-forwarded-host", "confab.example"),
            ("origin", "https://confab.example")
        ])));
        // The browser's own word wins over header comparisons.
        assert!(!cross_site(&headers(&[
            ("host", "backend:8080"),
            ("origin", "https://confab.example"),
            ("sec-fetch-site", "same-origin")
        ])));
    }

    #[test]
    fn cookie_is_found_among_others() {
        let h = headers(&[("cookie", "x=1; confab_session=ck_1.abc ; y=2")]);
        assert_eq!(cookie_token(&h), Some("ck_1.abc"));
        assert_eq!(
            cookie_token(&headers(&[("cookie", "confab_session=")])),
            None
        );
    }

    #[test]
    fn csrf_compare_is_exact() {
        assert!(csrf_ok("abc", "abc"));
        assert!(!csrf_ok("abc", "abd"));
        assert!(!csrf_ok("abc", "ab"));
    }
}
