//! The web dashboard: server-rendered HTML pages over the same store, signed in with an API
//! key kept in a cookie. Pages read through the store and the core exactly as the API does;
//! nothing here calls the HTTP API. These routes are not part of the OpenAPI document.

mod analytics;
mod charts;
mod conversations;
mod fmt;
mod ops;
mod pages;
mod search;
pub mod session;

use askama::Template;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use confab_core::Scope;

use crate::AppState;
use crate::auth::{NeedRead, verify_token};
use pages::{Nav, render};
use session::{CsrfOnly, Post, Session};

pub use pages::PageError;

/// The dashboard's routes, with their security headers.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/ui", get(root))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/conversations", get(conversations::list))
        .route("/ui/conversations/{id}", get(conversations::show))
        .route("/ui/conversations/{id}/export", get(conversations::export))
        .route(
            "/ui/conversations/{id}/analyze",
            post(conversations::analyze),
        )
        .route(
            "/ui/conversations/{id}/delete",
            get(conversations::confirm_delete).post(conversations::delete),
        )
        .route("/ui/search", get(search::page))
        .route("/ui/analytics", get(analytics::page))
        .route("/ui/keys", get(ops::keys))
        .route("/ui/keys/create", post(ops::create_key))
        .route("/ui/keys/revoke", post(ops::revoke_key))
        .route("/ui/webhooks", get(ops::webhooks))
        .route("/ui/static/{file}", get(pages::asset))
        .route("/ui/{*rest}", get(pages::not_found))
        .layer(middleware::from_fn(pages::security_headers))
}

/// `/`: the conversations list, or the sign-in form when the browser has no valid session.
async fn root(session: Result<Session, Response>) -> Response {
    match session {
        Ok(_) => Redirect::to("/ui/conversations").into_response(),
        Err(r) => r,
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    error: Option<&'static str>,
}

async fn login_form() -> Response {
    render(
        StatusCode::OK,
        &LoginPage {
            nav: Nav::anonymous(),
            error: None,
        },
    )
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// Signs in: the key is verified as a Bearer token would be (it must hold `read`), then kept
/// in the cookie. Sign-in forms carry no CSRF token (there is no session yet); a cross-site
/// post is refused instead, so another site cannot sign a browser into its own account.
async fn login(State(st): State<AppState>, headers: HeaderMap, req: Request) -> Response {
    if session::cross_site(&headers) {
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "This form was submitted from another site.",
        );
    }
    let fail = |status, error| {
        render(
            status,
            &LoginPage {
                nav: Nav::anonymous(),
                error: Some(error),
            },
        )
    };
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
        return fail(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&bytes) else {
        return fail(StatusCode::BAD_REQUEST, "Enter an API key.");
    };
    let token = form.token.trim();
    match verify_token(&st, token, Scope::Read).await {
        Ok(_) => {
            let mut r = Redirect::to("/ui/conversations").into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                session::set_cookie(&st, &headers, token),
            );
            r
        }
        Err(e) if e.status == StatusCode::FORBIDDEN => fail(
            StatusCode::FORBIDDEN,
            "This API key lacks the read scope, which the dashboard needs.",
        ),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            fail(StatusCode::UNAUTHORIZED, "This API key is not valid.")
        }
        Err(e) => pages::error_page(e.status, &e.message),
    }
}

/// Signs out (a POST with the CSRF token, so another site cannot sign a browser out).
async fn logout(_: Post<NeedRead, CsrfOnly>) -> Response {
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    r
}
