//! Search on SQLite: FTS5 over pre-tokenized text (see migrations/sqlite/0002_search.sql).

use confab_core::cursor::SearchCursor;
use confab_core::search::{snippet, tenant_tag};
use confab_core::timefmt::{from_micros, to_micros};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::SqliteStore;
use crate::error::{Result, StoreError};
use crate::search::*;
use crate::types::TenantId;

/// `FROM … WHERE …` of the candidate rows: matches of the tenant, filtered, rowid-bounded.
fn push_candidates(q: &mut QueryBuilder<Sqlite>, tenant: TenantId, req: &SearchRequest) {
    let f = &req.filter;
    q.push(" FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid");
    if f.needs_conversation() {
        q.push(" JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id");
    }
    let fts = req.query.to_fts5(&tenant_tag(tenant.0.as_bytes()));
    q.push(" WHERE messages_fts MATCH ").push_bind(fts);
    // The tag already confines the match to the tenant; this is the belt to its braces.
    q.push(" AND m.tenant_id = ").push_bind(tenant.0);
    match req.cursor {
        Some(SearchCursor::Ranked { snapshot, .. }) => {
            q.push(" AND messages_fts.rowid <= ").push_bind(snapshot);
        }
        Some(SearchCursor::Recent { before }) => {
            q.push(" AND messages_fts.rowid < ").push_bind(before);
        }
        None => {}
    }
    if let Some(v) = &f.agent_id {
        q.push(" AND c.agent_id = ").push_bind(v.clone());
    }
    if let Some(v) = &f.user_id {
        q.push(" AND c.user_id = ").push_bind(v.clone());
    }
    if let Some(v) = &f.source {
        q.push(" AND c.source = ").push_bind(v.clone());
    }
    if let Some(v) = f.status {
        q.push(" AND c.status = ").push_bind(v.as_str());
    }
    if let Some(v) = f.role {
        q.push(" AND m.role = ").push_bind(v.as_str());
    }
    if let Some(v) = f.conversation_id {
        q.push(" AND m.conversation_id = ").push_bind(v);
    }
    if let Some(v) = f.created_after {
        q.push(" AND m.created_at >= ").push_bind(to_micros(v));
    }
    if let Some(v) = f.created_before {
        q.push(" AND m.created_at < ").push_bind(to_micros(v));
    }
}

/// FTS5 reports syntax and tokenizer problems as SQLITE_ERROR with an "fts5:" message; the
/// core's query renderer should make them impossible, but if one slips through it is the
/// query's fault, not the server's.
fn fts_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.message().contains("fts5") => {
            confab_core::ValidationError::field(
                "q",
                format!("the search engine refused it: {}", d.message()),
            )
            .into()
        }
        _ => e.into(),
    }
}

impl SqliteStore {
    pub async fn search(&self, tenant: TenantId, req: &SearchRequest) -> Result<SearchPage> {
        let mut conn = self.read.acquire().await?;
        let limit = req.limit;
        let (mut q, snapshot, offset) = match req.sort {
            SearchSort::Relevance => {
                let (snapshot, offset) = match req.cursor {
                    Some(SearchCursor::Ranked { snapshot, offset }) => (snapshot, offset),
                    _ => {
                        let max: i64 =
                            sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM messages")
                                .fetch_one(&mut *conn)
                                .await?;
                        (max, 0)
                    }
                };
                // The window: the newest RANK_WINDOW candidates by rowid (FTS5 walks its
                // index backwards and stops), scored with bm25; then ordered by score.
                let mut q = QueryBuilder::<Sqlite>::new(
                    "WITH w AS (SELECT messages_fts.rowid AS r, bm25(messages_fts) AS s",
                );
                let req = SearchRequest {
                    cursor: Some(SearchCursor::Ranked { snapshot, offset }),
                    ..req.clone()
                };
                push_candidates(&mut q, tenant, &req);
                q.push(" ORDER BY messages_fts.rowid DESC LIMIT ")
                    .push_bind(RANK_WINDOW);
                q.push(
                    ") SELECT w.r, w.s, m.conversation_id, m.id, m.seq, m.role, m.content, m.created_at \
                     FROM w JOIN messages m ON m.rowid = w.r ORDER BY w.s ASC, w.r DESC LIMIT ",
                );
                q.push_bind(limit + 1).push(" OFFSET ").push_bind(offset);
                (q, snapshot, offset)
            }
            SearchSort::Recent => {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "SELECT messages_fts.rowid, bm25(messages_fts), m.conversation_id, m.id, m.seq, \
                     m.role, m.content, m.created_at",
                );
                push_candidates(&mut q, tenant, req);
                q.push(" ORDER BY messages_fts.rowid DESC LIMIT ")
                    .push_bind(limit + 1);
                (q, 0, 0)
            }
        };
        let rows = q.build().fetch_all(&mut *conn).await.map_err(fts_error)?;
        let more = rows.len() as i64 > limit;
        let mut hits = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last_rowid = 0;
        for r in rows.iter().take(limit as usize) {
            last_rowid = r.try_get::<i64, _>(0)?;
            let bm25: f64 = r.try_get(1)?;
            let content: &str = r.try_get(6)?;
            hits.push(SearchHit {
                conversation_id: r.try_get(2)?,
                message_id: r.try_get(3)?,
                seq: r.try_get(4)?,
                role: r
                    .try_get::<&str, _>(5)?
                    .parse()
                    .map_err(StoreError::Corrupt)?,
                snippet: snippet(content, &req.query),
                // bm25() is "lower is better"; clients expect "higher is better".
                score: (-bm25 * 1e6).round() / 1e6,
                created_at: from_micros(r.try_get(7)?),
            });
        }
        let next_cursor = more.then(|| match req.sort {
            SearchSort::Relevance => SearchCursor::Ranked {
                snapshot,
                offset: offset + limit,
            },
            SearchSort::Recent => SearchCursor::Recent { before: last_rowid },
        });
        Ok(SearchPage { hits, next_cursor })
    }

    pub async fn rebuild_search_index(&self) -> Result<()> {
        self.writer
            .exec(|c, _| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')")
                        .execute(&mut *c)
                        .await?;
                    sqlx::query(
                        "INSERT INTO messages_fts (rowid, body) \
                         SELECT rowid, confab_fts(tenant_id, content) FROM messages",
                    )
                    .execute(&mut *c)
                    .await?;
                    Ok(())
                })
            })
            .await
    }
}
