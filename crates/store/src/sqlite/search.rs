//! Search on SQLite: FTS5 over pre-tokenized text (see migrations/sqlite/0002_search.sql).

use confab_core::cursor::SearchCursor;
use confab_core::search::{snippet, tenant_tag};
use confab_core::timefmt::{from_micros, to_micros};
use rusqlite::Connection;

use super::SqliteStore;
use super::raw::{self, Sql, blob};
use crate::error::{Result, StoreError};
use crate::search::*;
use crate::types::TenantId;

/// `FROM … WHERE …` of the candidate rows: matches of the tenant, filtered, rowid-bounded.
fn push_candidates(q: &mut Sql, tenant: TenantId, req: &SearchRequest) {
    let f = &req.filter;
    // CROSS JOIN fixes the loop order (SQLite's documented hint): the full-text index outside,
    // rows looked up by rowid inside. Left to itself, SQLite 3.51 chose to walk every message of
    // the tenant and probe the index for each, which took 1 s for a word found 3 times and 5.5 s
    // for a common one on 20,000 messages; in this order they take 0.3 ms and 3 ms.
    q.push(" FROM messages_fts CROSS JOIN messages m ON m.rowid = messages_fts.rowid");
    if f.needs_conversation() {
        q.push(
            " CROSS JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id",
        );
    }
    let fts = req.query.to_fts5(&tenant_tag(tenant.0.as_bytes()));
    q.push(" WHERE messages_fts MATCH ").bind(fts);
    // The tag already confines the match to the tenant; this is the belt to its braces.
    q.push(" AND m.tenant_id = ").bind(blob(&tenant.0));
    match req.cursor {
        Some(SearchCursor::Ranked { snapshot, .. }) => {
            q.push(" AND messages_fts.rowid <= ").bind(snapshot);
        }
        Some(SearchCursor::Recent { before }) => {
            q.push(" AND messages_fts.rowid < ").bind(before);
        }
        None => {}
    }
    if let Some(v) = &f.agent_id {
        q.push(" AND c.agent_id = ").bind(v.clone());
    }
    if let Some(v) = &f.user_id {
        q.push(" AND c.user_id = ").bind(v.clone());
    }
    if let Some(v) = &f.source {
        q.push(" AND c.source = ").bind(v.clone());
    }
    if let Some(v) = f.status {
        q.push(" AND c.status = ").bind(v.as_str().to_owned());
    }
    if let Some(v) = f.role {
        q.push(" AND m.role = ").bind(v.as_str().to_owned());
    }
    if let Some(v) = f.conversation_id {
        q.push(" AND m.conversation_id = ").bind(blob(&v));
    }
    if let Some(v) = f.created_after {
        q.push(" AND m.created_at >= ").bind(to_micros(v));
    }
    if let Some(v) = f.created_before {
        q.push(" AND m.created_at < ").bind(to_micros(v));
    }
}

/// FTS5 reports syntax and tokenizer problems as SQLITE_ERROR with an "fts5:" message; the
/// core's query renderer should make them impossible, but if one slips through it is the
/// query's fault, not the server's.
fn fts_error(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(_, Some(m)) if m.contains("fts5") => {
            confab_core::ValidationError::field("q", format!("the search engine refused it: {m}"))
                .into()
        }
        _ => e.into(),
    }
}

fn search(c: &Connection, tenant: TenantId, req: &SearchRequest) -> Result<SearchPage> {
    let limit = req.limit;
    let mut q = Sql::default();
    let (snapshot, offset) = match req.sort {
        SearchSort::Relevance => {
            let (snapshot, offset) = match req.cursor {
                Some(SearchCursor::Ranked { snapshot, offset }) => (snapshot, offset),
                _ => {
                    let max: i64 =
                        c.query_row("SELECT COALESCE(MAX(rowid), 0) FROM messages", [], |r| {
                            r.get(0)
                        })?;
                    (max, 0)
                }
            };
            // The window: the newest RANK_WINDOW candidates by rowid (FTS5 walks its
            // index backwards and stops), scored with bm25; then ordered by score.
            q.push("WITH w AS (SELECT messages_fts.rowid AS r, bm25(messages_fts) AS s");
            let req = SearchRequest {
                cursor: Some(SearchCursor::Ranked { snapshot, offset }),
                ..req.clone()
            };
            push_candidates(&mut q, tenant, &req);
            q.push(" ORDER BY messages_fts.rowid DESC LIMIT ")
                .bind(RANK_WINDOW);
            q.push(
                ") SELECT w.r, w.s, m.conversation_id, m.id, m.seq, m.role, m.content, m.created_at \
                 FROM w JOIN messages m ON m.rowid = w.r ORDER BY w.s ASC, w.r DESC LIMIT ",
            );
            q.bind(limit + 1).push(" OFFSET ").bind(offset);
            (snapshot, offset)
        }
        SearchSort::Recent => {
            q.push(
                "SELECT messages_fts.rowid, bm25(messages_fts), m.conversation_id, m.id, m.seq, \
                 m.role, m.content, m.created_at",
            );
            push_candidates(&mut q, tenant, req);
            q.push(" ORDER BY messages_fts.rowid DESC LIMIT ")
                .bind(limit + 1);
            (0, 0)
        }
    };
    let mut st = c.prepare_cached(&q.text).map_err(fts_error)?;
    let mut rows = st
        .query(rusqlite::params_from_iter(q.args))
        .map_err(fts_error)?;
    let mut hits = Vec::new();
    let mut more = false;
    let mut last_rowid = 0;
    while let Some(r) = rows.next().map_err(fts_error)? {
        if hits.len() as i64 == limit {
            more = true;
            break;
        }
        last_rowid = r.get::<_, i64>(0)?;
        let bm25: f64 = r.get(1)?;
        let content: String = r.get(6)?;
        let role: String = r.get(5)?;
        hits.push(SearchHit {
            conversation_id: raw::uuid(r, 2)?,
            message_id: raw::uuid(r, 3)?,
            seq: r.get(4)?,
            role: role.parse().map_err(StoreError::Corrupt)?,
            snippet: snippet(&content, &req.query),
            // bm25() is "lower is better"; clients expect "higher is better".
            score: (-bm25 * 1e6).round() / 1e6,
            created_at: from_micros(r.get(7)?),
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

impl SqliteStore {
    pub async fn search(&self, tenant: TenantId, req: &SearchRequest) -> Result<SearchPage> {
        // On a rusqlite reader, like the other hot reads (fastread.rs).
        self.fast.with(|c| search(c, tenant, req))
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
