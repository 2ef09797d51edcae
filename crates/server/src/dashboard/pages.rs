//! What every dashboard page shares: the navigation bar's data, rendering a template into a
//! response, the error page, the embedded assets and the security headers.

use std::sync::LazyLock;

use askama::Template;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::session::Session;

const CSS: &str = include_str!("../../templates/static/app.css");
const JS: &str = include_str!("../../templates/static/app.js");

/// A short hash of the assets, put in their URLs so they can be cached for a year and still
/// change with a new build.
static ASSET_V: LazyLock<String> = LazyLock::new(|| {
    let h = Sha256::new().chain_update(CSS).chain_update(JS).finalize();
    h.iter().take(6).map(|b| format!("{b:02x}")).collect()
});

/// The signed-in part of the navigation bar.
pub struct SessionNav {
    /// The key the browser signed in with.
    pub key_id: String,
    /// For the sign-out form and the page's own forms.
    pub csrf: String,
    /// Whether to show buttons that change conversations.
    pub can_write: bool,
    /// Whether to show the operations pages.
    pub can_admin: bool,
}

/// What the layout needs on every page.
pub struct Nav {
    /// Which menu entry is current (`conversations`, `search`, `analytics`, `keys`, `webhooks`).
    pub active: &'static str,
    /// Asset version for cache-busting URLs.
    pub asset_v: &'static str,
    /// Present when signed in.
    pub session: Option<SessionNav>,
}

impl Nav {
    /// The bar of a signed-in page.
    pub fn signed_in(s: &Session, active: &'static str) -> Nav {
        Nav {
            active,
            asset_v: ASSET_V.as_str(),
            session: Some(SessionNav {
                key_id: s.principal.key_id.clone(),
                csrf: s.csrf.clone(),
                can_write: s.can_write(),
                can_admin: s.can_admin(),
            }),
        }
    }

    /// The bar of a page seen before signing in.
    pub fn anonymous() -> Nav {
        Nav {
            active: "",
            asset_v: ASSET_V.as_str(),
            session: None,
        }
    }
}

/// Renders a template as an HTML response with `status`.
pub fn render<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>Internal error; see the server log."),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Nav,
    status: u16,
    reason: &'a str,
    message: &'a str,
}

/// An HTML error page. Messages are fixed texts or `ApiError` messages, which never carry
/// internal detail.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    render(
        status,
        &ErrorPage {
            nav: Nav::anonymous(),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message,
        },
    )
}

/// The page for an `ApiError` raised by the store or a shared rule.
impl From<crate::ApiError> for PageError {
    fn from(e: crate::ApiError) -> Self {
        PageError::page(e.status, &e.message)
    }
}

impl From<confab_store::StoreError> for PageError {
    fn from(e: confab_store::StoreError) -> Self {
        crate::ApiError::from(e).into()
    }
}

/// A handler's error: already an HTML page (boxed: a response is large and errors are rare).
pub struct PageError(pub Box<Response>);

impl PageError {
    /// The error page with `status` and `message`.
    pub fn page(status: StatusCode, message: &str) -> Self {
        PageError(Box::new(error_page(status, message)))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// A handler's result.
pub type PageResult = Result<Response, PageError>;

/// Unknown `/ui/…` paths answer an HTML 404 rather than the API's JSON one.
pub async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "There is no such page.")
}

/// `/ui/static/{file}`: the embedded stylesheet and script.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, ty) = match file.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return not_found().await,
    };
    (
        [
            (header::CONTENT_TYPE, ty),
            // URLs carry the content hash, so a year is safe.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

/// Security headers on every dashboard answer: scripts, styles and images only from this
/// server (inline SVG is markup, not a resource), no framing, no referrer to other sites, and
/// pages (which show private conversations) never stored by caches.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
