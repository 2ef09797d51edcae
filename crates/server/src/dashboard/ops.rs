//! Operations pages for admin-scoped keys: the tenant's API keys (create with scopes, revoke)
//! and its webhook endpoints with their recent deliveries.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use confab_core::{Scope, Scopes};
use confab_store::{CreatedKey, KeyInfo};
use serde::Deserialize;

use super::fmt::{iso, opt};
use super::pages::{Nav, PageError, PageResult, render};
use super::session::{HasCsrf, Post, Session};
use crate::AppState;
use crate::auth::NeedAdmin;

/// Attempts listed per endpoint.
const RECENT_DELIVERIES: i64 = 10;

fn need_admin(s: &Session) -> Result<(), PageError> {
    if s.can_admin() {
        Ok(())
    } else {
        Err(PageError::page(
            StatusCode::FORBIDDEN,
            "This page needs an API key with the `admin` scope.",
        ))
    }
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    nav: Nav,
    keys: Vec<KeyInfo>,
    current: String,
    created: Option<CreatedKey>,
    error: Option<&'static str>,
    notice: Option<&'static str>,
}

async fn keys_page(
    st: &AppState,
    session: &Session,
    created: Option<CreatedKey>,
    error: Option<&'static str>,
    notice: Option<&'static str>,
) -> PageResult {
    let keys = st.store.list_tenant_keys(&session.principal.tenant).await?;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        &KeysPage {
            nav: Nav::signed_in(session, "keys"),
            keys,
            current: session.principal.key_id.clone(),
            created,
            error,
            notice,
        },
    ))
}

#[derive(Deserialize)]
pub struct KeysParams {
    notice: Option<String>,
}

/// `GET /ui/keys`.
pub async fn keys(
    State(st): State<AppState>,
    session: Session,
    axum::extract::Query(q): axum::extract::Query<KeysParams>,
) -> PageResult {
    need_admin(&session)?;
    let notice = q.notice.as_deref().and_then(super::fmt::notice_text);
    keys_page(&st, &session, None, None, notice).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    read: Option<String>,
    #[serde(default)]
    write: Option<String>,
    #[serde(default)]
    admin: Option<String>,
}

impl HasCsrf for CreateForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /ui/keys/create`: the new key's secret is shown on this answer only (it is not
/// stored), so this renders the page rather than redirecting.
pub async fn create_key(
    State(st): State<AppState>,
    post: Post<NeedAdmin, CreateForm>,
) -> PageResult {
    let f = &post.form;
    let mut scopes = Scopes::default();
    for (on, s) in [
        (&f.read, Scope::Read),
        (&f.write, Scope::Write),
        (&f.admin, Scope::Admin),
    ] {
        if on.is_some() {
            scopes = scopes.with(s);
        }
    }
    if scopes == Scopes::default() {
        return keys_page(
            &st,
            &post.session,
            None,
            Some("Choose at least one scope."),
            None,
        )
        .await;
    }
    let name = f.name.trim();
    if name.len() > 200 {
        return keys_page(
            &st,
            &post.session,
            None,
            Some("The name is too long."),
            None,
        )
        .await;
    }
    let tenant = st.store.tenant_name(&post.session.principal.tenant).await?;
    let created = st
        .store
        .create_key(&tenant, scopes, (!name.is_empty()).then(|| name.to_owned()))
        .await?;
    keys_page(&st, &post.session, Some(created), None, None).await
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: String,
    key_id: String,
}

impl HasCsrf for RevokeForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /ui/keys/revoke`: another tenant's key id is not found, like an unknown one.
pub async fn revoke_key(
    State(st): State<AppState>,
    post: Post<NeedAdmin, RevokeForm>,
) -> Result<Response, PageError> {
    st.store
        .revoke_tenant_key(&post.session.principal.tenant, post.form.key_id.trim())
        .await
        .map_err(|e| match e {
            confab_store::StoreError::NotFound => {
                PageError::page(StatusCode::NOT_FOUND, "There is no such key.")
            }
            e => e.into(),
        })?;
    Ok(Redirect::to("/ui/keys?notice=revoked").into_response())
}

/// One delivery attempt as shown.
pub struct AttemptView {
    event_type: String,
    attempt: i64,
    outcome: String,
    ok: bool,
    latency: String,
    state: String,
    at: String,
}

/// One endpoint as shown (never its secret).
pub struct EndpointView {
    id: String,
    url: String,
    description: String,
    events: String,
    enabled: bool,
    problem: Option<String>,
    created: String,
    attempts: Vec<AttemptView>,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    nav: Nav,
    endpoints: Vec<EndpointView>,
}

/// `GET /ui/webhooks`.
pub async fn webhooks(State(st): State<AppState>, session: Session) -> PageResult {
    need_admin(&session)?;
    let tenant = session.principal.tenant;
    let mut endpoints = Vec::new();
    for e in st.store.list_endpoints(&tenant).await? {
        let attempts = st
            .store
            .list_attempts(&tenant, e.id, RECENT_DELIVERIES)
            .await?
            .into_iter()
            .map(|a| {
                let ok = a.status_code.is_some_and(|c| (200..300).contains(&c));
                AttemptView {
                    event_type: a.event_type,
                    attempt: a.attempt,
                    outcome: match (a.status_code, a.error) {
                        (Some(c), _) => format!("HTTP {c}"),
                        (None, Some(err)) => err,
                        (None, None) => "no answer".into(),
                    },
                    ok,
                    latency: format!("{} ms", a.latency_ms),
                    state: a.delivery_state,
                    at: a.created_at,
                }
            })
            .collect();
        endpoints.push(EndpointView {
            id: e.id.to_string(),
            url: e.url,
            description: opt(&e.description),
            events: if e.event_types.is_empty() {
                "all events".into()
            } else {
                e.event_types.join(", ")
            },
            enabled: e.enabled,
            problem: e
                .disabled_reason
                .or_else(|| e.failing_since.map(|t| format!("failing since {}", iso(t)))),
            created: iso(e.created_at),
            attempts,
        });
    }
    Ok(render(
        StatusCode::OK,
        &WebhooksPage {
            nav: Nav::signed_in(&session, "webhooks"),
            endpoints,
        },
    ))
}
