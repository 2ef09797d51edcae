//! The search page: the API's query language and ranking over all the tenant's messages, with
//! highlighted snippets that link to the message inside its conversation.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use confab_core::cursor::SearchCursor;
use confab_core::search::{MARK_END, MARK_START, parse_query};
use confab_store::{SearchFilter, SearchRequest, SearchSort};
use serde::Deserialize;

use super::fmt::{esc, iso, query_string};
use super::pages::{Nav, PageResult, render};
use super::session::Session;
use crate::AppState;

/// Hits per page.
const LIMIT: i64 = 20;
/// Messages shown before the hit when the conversation page opens at it.
const CONTEXT: i64 = 3;

#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    cursor: Option<String>,
}

/// One hit as shown.
pub struct HitView {
    href: String,
    /// The conversation's title and agent, so a hit says where it is.
    title: String,
    agent: String,
    role: &'static str,
    created: String,
    /// Escaped text with `<mark>` kept: safe to emit as markup.
    snippet_html: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage<'a> {
    nav: Nav,
    q: &'a str,
    recent: bool,
    error: Option<String>,
    hits: Vec<HitView>,
    searched: bool,
    next: Option<String>,
}

/// The store's snippet is plain text with `<mark>` around matches: escape all of it, then let
/// only those markers through as markup.
fn snippet_html(snippet: &str) -> String {
    snippet
        .split(MARK_START)
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                return esc(part);
            }
            match part.split_once(MARK_END) {
                Some((hit, rest)) => format!("<mark>{}</mark>{}", esc(hit), esc(rest)),
                None => esc(part),
            }
        })
        .collect()
}

/// `GET /ui/search?q=…`.
pub async fn page(
    State(st): State<AppState>,
    session: Session,
    Query(p): Query<SearchParams>,
) -> PageResult {
    let recent = p.sort == "recent";
    let mut view = SearchPage {
        nav: Nav::signed_in(&session, "search"),
        q: p.q.trim(),
        recent,
        error: None,
        hits: Vec::new(),
        searched: false,
        next: None,
    };
    if view.q.is_empty() {
        return Ok(render(StatusCode::OK, &view));
    }
    let query = match parse_query(view.q) {
        Ok(q) => q,
        Err(e) => {
            view.error = Some(e.to_string());
            return Ok(render(StatusCode::BAD_REQUEST, &view));
        }
    };
    let cursor = p.cursor.as_deref().and_then(SearchCursor::decode);
    let req = SearchRequest {
        query,
        filter: SearchFilter::default(),
        sort: if recent {
            SearchSort::Recent
        } else {
            SearchSort::Relevance
        },
        limit: LIMIT,
        cursor,
    };
    let page = match st.store.search(&session.principal.tenant, &req).await {
        Ok(page) => page,
        // A cursor of the other sort order (edited URL): start again from the first page.
        Err(confab_store::StoreError::Invalid(_)) => {
            let req = SearchRequest {
                cursor: None,
                ..req
            };
            st.store.search(&session.principal.tenant, &req).await?
        }
        Err(e) => return Err(e.into()),
    };
    view.searched = true;
    // A page has at most 20 hits: one point read each for their conversations' titles.
    let mut titles = std::collections::HashMap::new();
    for h in &page.hits {
        if !titles.contains_key(&h.conversation_id)
            && let Ok(c) = st
                .store
                .get_conversation(&session.principal.tenant, h.conversation_id)
                .await
        {
            let title = c.title.clone().unwrap_or_else(|| "(untitled)".into());
            titles.insert(
                h.conversation_id,
                (title, c.agent_id.clone().unwrap_or_default()),
            );
        }
    }
    view.hits = page
        .hits
        .into_iter()
        .map(|h| HitView {
            title: titles
                .get(&h.conversation_id)
                .map(|t| t.0.clone())
                .unwrap_or_default(),
            agent: titles
                .get(&h.conversation_id)
                .map(|t| t.1.clone())
                .unwrap_or_default(),
            href: format!(
                "/ui/conversations/{}?from={}#m-{}",
                h.conversation_id,
                (h.seq - CONTEXT).max(0),
                h.seq
            ),
            role: h.role.as_str(),
            created: iso(h.created_at),
            snippet_html: snippet_html(&h.snippet),
        })
        .collect();
    view.next = page.next_cursor.map(|c| {
        query_string(&[
            ("q", view.q),
            ("sort", if recent { "recent" } else { "" }),
            ("cursor", &c.encode()),
        ])
    });
    Ok(render(StatusCode::OK, &view))
}

#[cfg(test)]
mod tests {
    use super::snippet_html;

    #[test]
    fn snippet_keeps_only_marks() {
        assert_eq!(
            snippet_html("a <b> <mark>refund</mark> & <mark>x<y</mark>"),
            "a &lt;b&gt; <mark>refund</mark> &amp; <mark>x&lt;y</mark>"
        );
        assert_eq!(snippet_html("no marks"), "no marks");
    }
}
