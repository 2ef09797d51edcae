//! The conversations list (filters, pages, counts) and one conversation's page (transcript,
//! insights, metadata) with its actions: re-analyse, export, delete.

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use confab_core::export::ExportFormat;
use confab_core::{Conversation, Insights, Message, Sentiment, Status};
use confab_store::{ConversationFilter, ConversationPage, ExportItem, MessageQuery};
use serde::Deserialize;
use uuid::Uuid;

use super::fmt::{iso, notice_text, opt, parse_day, pretty_json, query_string};
use super::pages::{Nav, PageError, PageResult, render};
use super::session::{CsrfOnly, Post, Session};
use crate::AppState;
use crate::auth::NeedWrite;
use crate::ids::conversation_id;

/// Conversations per list page.
const PAGE_SIZE: i64 = 25;
/// Messages per transcript page.
const MESSAGES_PAGE: i64 = 200;

/// The list's filters as the form sends them: empty fields mean "any".
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    agent: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    sentiment: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    page: Option<String>,
    notice: Option<String>,
}

impl ListParams {
    fn filter(&self) -> Result<ConversationFilter, String> {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let status = some(&self.status)
            .map(|s| s.parse::<Status>())
            .transpose()
            .map_err(|e| format!("Status: {e}"))?;
        let sentiment = some(&self.sentiment)
            .map(|s| s.parse::<Sentiment>())
            .transpose()
            .map_err(|e| format!("Sentiment: {e}"))?;
        let from = parse_day(&self.from).map_err(|e| format!("From: {e}"))?;
        let to = parse_day(&self.to).map_err(|e| format!("To: {e}"))?;
        Ok(ConversationFilter {
            agent_id: some(&self.agent),
            user_id: some(&self.user),
            status,
            source: some(&self.source),
            created_after: from.map(|d| d.midnight().assume_utc()),
            // The "to" day is included: before the midnight that ends it.
            created_before: to.map(|d| (d.midnight().assume_utc()) + time::Duration::DAY),
            has_insights: None,
            sentiment,
            task_completed: None,
        })
    }

    /// The filters as a query string, for pagination links.
    fn query(&self, page: u32) -> String {
        query_string(&[
            ("agent", &self.agent),
            ("user", &self.user),
            ("status", &self.status),
            ("source", &self.source),
            ("sentiment", &self.sentiment),
            ("from", &self.from),
            ("to", &self.to),
            ("page", &page.to_string()),
        ])
    }
}

/// One list row.
pub struct Row {
    id: String,
    title: String,
    agent: String,
    user: String,
    status: &'static str,
    source: String,
    messages: i64,
    created: String,
    analysed: bool,
}

#[derive(Template)]
#[template(path = "conversations.html")]
struct ListPage<'a> {
    nav: Nav,
    p: &'a ListParams,
    error: Option<String>,
    notice: Option<&'static str>,
    rows: Vec<Row>,
    total: i64,
    first: i64,
    last: i64,
    prev: Option<String>,
    next: Option<String>,
    statuses: &'static [Status],
    sentiments: &'static [Sentiment],
}

/// `GET /ui/conversations`.
pub async fn list(
    State(st): State<AppState>,
    session: Session,
    Query(p): Query<ListParams>,
) -> PageResult {
    let tenant = session.principal.tenant;
    let page: u32 = p
        .page
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .clamp(1, 1_000_000);
    let mut view = ListPage {
        nav: Nav::signed_in(&session, "conversations"),
        p: &p,
        error: None,
        notice: p.notice.as_deref().and_then(notice_text),
        rows: Vec::new(),
        total: 0,
        first: 0,
        last: 0,
        prev: None,
        next: None,
        statuses: Status::ALL,
        sentiments: Sentiment::ALL,
    };
    let filter = match p.filter() {
        Ok(f) => f,
        Err(e) => {
            view.error = Some(e);
            return Ok(render(StatusCode::BAD_REQUEST, &view));
        }
    };
    let offset = i64::from(page - 1) * PAGE_SIZE;
    let (total, items) = futures::try_join!(
        st.store.count_conversations(&tenant, &filter),
        st.store.list_conversations(
            &tenant,
            &filter,
            ConversationPage::Offset(offset, PAGE_SIZE)
        ),
    )?;
    let ids: Vec<Uuid> = items.iter().map(|c| c.id).collect();
    let analysed = st.store.with_insights(&tenant, &ids).await?;
    view.rows = items
        .into_iter()
        .map(|c| Row {
            id: c.id.to_string(),
            title: title(&c),
            agent: opt(&c.agent_id),
            user: opt(&c.user_id),
            status: c.status.as_str(),
            source: opt(&c.source),
            messages: c.message_count,
            created: iso(c.created_at),
            analysed: analysed.contains(&c.id),
        })
        .collect();
    view.total = total;
    view.first = if view.rows.is_empty() { 0 } else { offset + 1 };
    view.last = offset + view.rows.len() as i64;
    view.prev = (page > 1).then(|| p.query(page - 1));
    view.next = (view.last < total).then(|| p.query(page + 1));
    Ok(render(StatusCode::OK, &view))
}

fn title(c: &Conversation) -> String {
    match c.title.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => "(untitled)".to_owned(),
    }
}

/// One transcript entry.
pub struct MessageView {
    id: String,
    seq: i64,
    role: &'static str,
    created: String,
    content: String,
    model: Option<String>,
    tokens: Option<String>,
    latency: Option<String>,
    tool_calls: Option<String>,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        let tokens = match (m.tokens, m.prompt_tokens, m.completion_tokens) {
            (None, None, None) => None,
            (t, p, c) => {
                let total = t.or_else(|| Some(p.unwrap_or(0) + c.unwrap_or(0)));
                let split = match (p, c) {
                    (Some(p), Some(c)) => format!(" ({p} prompt + {c} completion)"),
                    _ => String::new(),
                };
                Some(format!("{} tokens{split}", total.unwrap_or(0)))
            }
        };
        MessageView {
            id: m.id.to_string(),
            seq: m.seq,
            role: m.role.as_str(),
            created: iso(m.created_at),
            content: m.content,
            model: m.model,
            tokens,
            latency: m.latency_ms.map(|l| format!("{l} ms")),
            tool_calls: m.tool_calls.as_ref().map(pretty_json),
        }
    }
}

/// Insights as shown.
pub struct InsightsView {
    sentiment: &'static str,
    score: String,
    task_completed: bool,
    topics: Vec<String>,
    summary: String,
    issues: Vec<String>,
    analyzer: String,
    created: String,
}

impl From<Insights> for InsightsView {
    fn from(i: Insights) -> Self {
        InsightsView {
            sentiment: i.sentiment.as_str(),
            score: format!("{:+.2}", i.sentiment_score),
            task_completed: i.task_completed,
            topics: i.topics,
            summary: i.summary,
            issues: i.issues.into_iter().map(|x| x.text).collect(),
            analyzer: i.analyzer,
            created: iso(i.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "conversation.html")]
struct ShowPage {
    nav: Nav,
    notice: Option<&'static str>,
    id: String,
    title: String,
    facts: Vec<(&'static str, String)>,
    metadata: String,
    insights: Option<InsightsView>,
    messages: Vec<MessageView>,
    older: Option<i64>,
    newer: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct ShowParams {
    /// First seq shown (search results link into the middle of long conversations).
    from: Option<String>,
    notice: Option<String>,
}

/// `GET /ui/conversations/{id}`. Another tenant's id is the same 404 as an unknown one.
pub async fn show(
    State(st): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<ShowParams>,
) -> PageResult {
    let tenant = session.principal.tenant;
    let id = conversation_id(&id)?;
    let c = st.store.get_conversation(&tenant, id).await?;
    let from: i64 = q
        .from
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
        .max(0);
    let mq = MessageQuery {
        after_seq: (from > 0).then_some(from - 1),
        limit: Some(MESSAGES_PAGE + 1),
        ..MessageQuery::default()
    };
    let (mut messages, insights) = futures::try_join!(
        st.store.list_messages(&tenant, id, &mq),
        st.store.get_insights(&tenant, id),
    )?;
    let more = messages.len() as i64 > MESSAGES_PAGE;
    messages.truncate(MESSAGES_PAGE as usize);
    let facts = vec![
        ("Id", c.id.to_string()),
        ("Status", c.status.as_str().to_owned()),
        ("Agent", opt(&c.agent_id)),
        ("User", opt(&c.user_id)),
        ("Source", opt(&c.source)),
        ("Model", opt(&c.model)),
        ("Company", opt(&c.company_name)),
        ("Messages", c.message_count.to_string()),
        ("Created", iso(c.created_at)),
        ("Updated", iso(c.updated_at)),
        (
            "Completed",
            c.completed_at.map(iso).unwrap_or_else(|| "—".into()),
        ),
    ];
    let view = ShowPage {
        nav: Nav::signed_in(&session, "conversations"),
        notice: q.notice.as_deref().and_then(notice_text),
        id: c.id.to_string(),
        title: title(&c),
        facts,
        metadata: pretty_json(&serde_json::Value::Object(c.metadata.clone())),
        insights: insights.map(Into::into),
        messages: messages.into_iter().map(Into::into).collect(),
        older: (from > 0).then(|| (from - MESSAGES_PAGE).max(0)),
        newer: more.then_some(from + MESSAGES_PAGE),
    };
    Ok(render(StatusCode::OK, &view))
}

#[derive(Debug, Deserialize)]
pub struct ExportParams {
    format: Option<String>,
}

/// `GET /ui/conversations/{id}/export?format=json|csv|markdown`: the API's export renderers
/// over this one conversation (CSV: one row per message).
pub async fn export(
    State(st): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<ExportParams>,
) -> PageResult {
    let tenant = session.principal.tenant;
    let format = match q.format.as_deref().unwrap_or("json") {
        "json" => ExportFormat::Json,
        "csv" => ExportFormat::CsvMessages,
        "markdown" => ExportFormat::Markdown,
        "ndjson" => ExportFormat::Ndjson,
        _ => {
            return Err(PageError::page(
                StatusCode::BAD_REQUEST,
                "The format must be json, csv or markdown.",
            ));
        }
    };
    let id = conversation_id(&id)?;
    let c = st.store.get_conversation(&tenant, id).await?;
    let all = MessageQuery::default();
    let (messages, insights) = futures::try_join!(
        st.store.list_messages(&tenant, id, &all),
        st.store.get_insights(&tenant, id),
    )?;
    let sentiment = insights.map(|i| i.sentiment);
    let items: Vec<ExportItem> = std::iter::once(ExportItem::Conversation(Box::new(c), sentiment))
        .chain(
            messages
                .into_iter()
                .map(|m| ExportItem::Message(Box::new(m))),
        )
        .collect();
    Ok(crate::export::attachment(
        Body::from(confab_store::render(&items, format)),
        format,
        &format!("conversation-{id}"),
    ))
}

/// `POST /ui/conversations/{id}/analyze`: queues a fresh analysis, like the API's refresh.
pub async fn analyze(
    State(st): State<AppState>,
    Path(id): Path<String>,
    post: Post<NeedWrite, CsrfOnly>,
) -> PageResult {
    let id = conversation_id(&id)?;
    st.store
        .enqueue_insights(&post.session.principal.tenant, id)
        .await?;
    Ok(Redirect::to(&format!("/ui/conversations/{id}?notice=analysis-queued")).into_response())
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDelete {
    nav: Nav,
    id: String,
    title: String,
    messages: i64,
}

/// `GET /ui/conversations/{id}/delete`: asks before deleting (the page works without script).
pub async fn confirm_delete(
    State(st): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult {
    if !session.can_write() {
        return Err(PageError::page(
            StatusCode::FORBIDDEN,
            "This API key lacks the `write` scope.",
        ));
    }
    let id = conversation_id(&id)?;
    let c = st
        .store
        .get_conversation(&session.principal.tenant, id)
        .await?;
    Ok(render(
        StatusCode::OK,
        &ConfirmDelete {
            nav: Nav::signed_in(&session, "conversations"),
            id: c.id.to_string(),
            title: title(&c),
            messages: c.message_count,
        },
    ))
}

/// `POST /ui/conversations/{id}/delete`: deletes it and everything that refers to it.
pub async fn delete(
    State(st): State<AppState>,
    Path(id): Path<String>,
    post: Post<NeedWrite, CsrfOnly>,
) -> PageResult {
    let id = conversation_id(&id)?;
    st.store
        .delete_conversation(&post.session.principal.tenant, id)
        .await?;
    Ok(Redirect::to("/ui/conversations?notice=deleted").into_response())
}
