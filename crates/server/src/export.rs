//! `GET /v1/export` (streamed) and `POST /v1/import` (streamed, exempt from the body limit).
//! Formats and import rules are the core's and the store's; this module moves bytes.

use crate::json::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use confab_core::Status;
use confab_core::export::ExportFormat;
use confab_store::{ConversationFilter, ImportOutcome, Importer, MAX_IMPORT_LINE};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Auth, Reader, Writer};
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::native::dto::ErrorBody;
use crate::search::time_param;

/// Export format.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatParam {
    /// One conversation with its messages per line (what import reads).
    Ndjson,
    /// One JSON array of the same objects.
    Json,
    /// CSV: one row per conversation, or per message with `rows=messages`.
    Csv,
    /// Markdown transcripts.
    Markdown,
}

/// CSV granularity.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowsParam {
    /// One row per conversation (default).
    Conversations,
    /// One row per message.
    Messages,
}

/// Format and the list route's filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// ndjson (default), json, csv or markdown.
    #[param(inline)]
    pub format: Option<FormatParam>,
    /// For csv: conversations (default) or messages.
    #[param(inline)]
    pub rows: Option<RowsParam>,
    /// Only this agent's.
    pub agent_id: Option<String>,
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only this channel.
    pub source: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_after: Option<String>,
    /// Created before (RFC 3339).
    pub created_before: Option<String>,
    /// Only conversations whose insights have this sentiment.
    pub sentiment: Option<confab_core::Sentiment>,
    /// Only conversations whose insights say the task was (or was not) completed.
    pub task_completed: Option<bool>,
}

/// Export every matching conversation, newest first, streamed from one consistent snapshot.
#[utoipa::path(get, path = "/v1/export", tag = "export", params(ExportParams),
    responses(
        (status = 200, description = "The export, streamed", content(
            (String = "application/x-ndjson"), (Vec<serde_json::Value> = "application/json"),
            (String = "text/csv"), (String = "text/markdown"))),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
    ),
    security(("bearer" = ["read"])))]
pub async fn export(
    State(st): State<AppState>,
    Auth(p, ..): Reader,
    QueryParams(q): QueryParams<ExportParams>,
) -> ApiResult<Response> {
    let format = match (q.format.unwrap_or(FormatParam::Ndjson), q.rows) {
        (FormatParam::Csv, Some(RowsParam::Messages)) => ExportFormat::CsvMessages,
        (FormatParam::Csv, _) => ExportFormat::Csv,
        (_, Some(_)) => return Err(ApiError::field("rows", "only applies to format=csv")),
        (FormatParam::Ndjson, None) => ExportFormat::Ndjson,
        (FormatParam::Json, None) => ExportFormat::Json,
        (FormatParam::Markdown, None) => ExportFormat::Markdown,
    };
    let filter = ConversationFilter {
        agent_id: q.agent_id,
        user_id: q.user_id,
        status: q.status,
        source: q.source,
        created_after: time_param(&q.created_after, "created_after")?,
        created_before: time_param(&q.created_before, "created_before")?,
        has_insights: None,
        sentiment: q.sentiment,
        task_completed: q.task_completed,
    };
    let body = st.store.export(&p.tenant, filter, format).map(|chunk| {
        chunk.map(|c| Bytes::from(c.bytes)).map_err(|e| {
            // Headers are gone: the only way left to say "incomplete" is to cut the body.
            tracing::error!(error = %e, "export failed mid-stream");
            std::io::Error::other("export failed")
        })
    });
    Ok(attachment(Body::from_stream(body), format, "confab-export"))
}

/// A download: `body` in `format`, saved as `{stem}.{extension}` (the API export and the
/// dashboard's one-conversation export).
pub fn attachment(body: Body, format: ExportFormat, stem: &str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{stem}.{}\"",
        format.extension()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOut {
    /// Conversations written.
    pub imported: u64,
    /// Conversations skipped because they already existed (same id).
    pub skipped: u64,
    /// Messages written.
    pub messages: u64,
}

impl From<ImportOutcome> for ImportOut {
    fn from(o: ImportOutcome) -> Self {
        ImportOut {
            imported: o.imported,
            skipped: o.skipped,
            messages: o.messages,
        }
    }
}

/// Import confab NDJSON (as exported) into the caller's tenant: idempotent (conversations that
/// exist are skipped), committed in batches of 200 conversations, ids and timestamps kept.
/// The body is streamed and exempt from the request size limit. A bad line stops the import
/// with a 400 naming it; what came before it stays committed, and re-sending the file is safe.
#[utoipa::path(post, path = "/v1/import", tag = "export",
    request_body(content = String, content_type = "application/x-ndjson", description = "confab NDJSON: one conversation with its messages per line"),
    responses(
        (status = 200, description = "Imported", body = ImportOut),
        (status = 400, description = "A line is not a valid record", body = ErrorBody),
        (status = 401, description = "Missing or bad credentials", body = ErrorBody),
        (status = 413, description = "One line is longer than 64 MiB", body = ErrorBody),
    ),
    security(("bearer" = ["write"])))]
pub async fn import(
    State(st): State<AppState>,
    Auth(p, ..): Writer,
    req: Request,
) -> ApiResult<Json<ImportOut>> {
    let mut imp = Importer::new(st.store.clone(), p.tenant);
    let mut body = req.into_body().into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let fail = |imp: &Importer, e: ApiError| {
        let done = imp.committed();
        e.with_detail(
            "committed",
            format!(
                "{} conversations were imported before this error; re-sending the file is safe",
                done.imported
            ),
        )
    };
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::field("body", format!("could not read the body: {e}")))?;
        // Only the new bytes are scanned for line ends, so a long line costs linear time.
        let mut scan = buf.len();
        buf.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(pos) = buf[scan..].iter().position(|b| *b == b'\n') {
            let end = scan + pos;
            imp.line(&buf[start..end])
                .await
                .map_err(|e| fail(&imp, e.into()))?;
            start = end + 1;
            scan = start;
        }
        buf.drain(..start);
        if buf.len() > MAX_IMPORT_LINE {
            return Err(fail(
                &imp,
                ApiError::too_large("one line is longer than 64 MiB"),
            ));
        }
    }
    imp.line(&buf).await.map_err(|e| fail(&imp, e.into()))?;
    let out = imp.finish().await?;
    Ok(Json(out.into()))
}

/// The export route (body-limited like every other).
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(export))
}

/// The import route, which must be mounted outside the body limit and the request timeout.
pub fn import_router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(import))
}
