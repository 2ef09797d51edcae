//! Search on PostgreSQL: a GIN index over the `fts` tsvector that holds the same tokens as the
//! SQLite index (see fts.rs); ranked with ts_rank over a bounded window like the SQLite twin.

use confab_core::cursor::SearchCursor;
use confab_core::search::snippet;
use confab_core::timefmt::{from_micros, to_micros};
use sqlx::{Postgres, QueryBuilder, Row};

use super::PgStore;
use super::fts::tsquery;
use crate::error::{Result, StoreError};
use crate::search::*;
use crate::types::TenantId;

/// `FROM … WHERE …` of the candidate rows: matches of the tenant, filtered, rowid-bounded.
fn push_candidates(q: &mut QueryBuilder<Postgres>, tenant: TenantId, req: &SearchRequest) {
    let f = &req.filter;
    q.push(" FROM messages m");
    if f.needs_conversation() {
        q.push(" JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id");
    }
    q.push(" WHERE m.fts @@ ")
        .push_bind(tsquery(tenant.0, &req.query))
        .push("::tsquery");
    // The tag already confines the match to the tenant; this is the belt to its braces.
    q.push(" AND m.tenant_id = ").push_bind(tenant.0);
    match req.cursor {
        Some(SearchCursor::Ranked { snapshot, .. }) => {
            q.push(" AND m.rowid <= ").push_bind(snapshot);
        }
        Some(SearchCursor::Recent { before }) => {
            q.push(" AND m.rowid < ").push_bind(before);
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

impl PgStore {
    pub async fn search(&self, tenant: TenantId, req: &SearchRequest) -> Result<SearchPage> {
        let mut conn = self.pool.acquire().await?;
        let limit = req.limit;
        let tsq = tsquery(tenant.0, &req.query);
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
                // The window: the newest RANK_WINDOW candidates by rowid, ranked with ts_rank
                // on those only (ranking every match of a very common word would read them
                // all), every column taken in the same pass: joining back to `messages` made
                // the planner scan the table.
                let mut q = QueryBuilder::<Postgres>::new(
                    "SELECT * FROM (SELECT m.rowid AS r, ts_rank(m.fts, ",
                );
                q.push_bind(tsq.clone()).push(
                    "::tsquery)::float8 AS s, m.conversation_id, m.id, m.seq, m.role, m.content, m.created_at",
                );
                let req = SearchRequest {
                    cursor: Some(SearchCursor::Ranked { snapshot, offset }),
                    ..req.clone()
                };
                push_candidates(&mut q, tenant, &req);
                q.push(" ORDER BY m.rowid DESC LIMIT ")
                    .push_bind(RANK_WINDOW);
                q.push(") w ORDER BY s DESC, r DESC LIMIT ");
                q.push_bind(limit + 1).push(" OFFSET ").push_bind(offset);
                (q, snapshot, offset)
            }
            SearchSort::Recent => {
                let mut q = QueryBuilder::<Postgres>::new("SELECT m.rowid, ts_rank(m.fts, ");
                q.push_bind(tsq).push(
                    "::tsquery)::float8, m.conversation_id, m.id, m.seq, m.role, m.content, m.created_at",
                );
                push_candidates(&mut q, tenant, req);
                q.push(" ORDER BY m.rowid DESC LIMIT ").push_bind(limit + 1);
                (q, 0, 0)
            }
        };
        // Not a named prepared statement: an unnamed one is planned with the actual tsquery, so
        // PostgreSQL can walk the rowid index backwards for a common word and use the GIN
        // index for a rare one (a generic plan cannot tell them apart).
        let rows = q.build().persistent(false).fetch_all(&mut *conn).await?;
        let more = rows.len() as i64 > limit;
        let mut hits = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last_rowid = 0;
        for r in rows.iter().take(limit as usize) {
            last_rowid = r.try_get::<i64, _>(0)?;
            let rank: f64 = r.try_get(1)?;
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
                // ts_rank is already "higher is better".
                score: (rank * 1e6).round() / 1e6,
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

    /// Recomputes every message's tokens (after a change to the tokenizer rules), in batches
    /// so no single statement holds the whole table.
    pub async fn rebuild_search_index(&self) -> Result<()> {
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(
                "SELECT rowid, tenant_id, content FROM messages WHERE rowid > $1 ORDER BY rowid LIMIT 500",
            )
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = last.try_get(0)?;
            let mut ids = Vec::with_capacity(rows.len());
            let mut vectors = Vec::with_capacity(rows.len());
            for r in &rows {
                ids.push(r.try_get::<i64, _>(0)?);
                vectors.push(super::fts::tsvector(r.try_get(1)?, r.try_get(2)?));
            }
            sqlx::query(
                "UPDATE messages m SET fts = v.fts::tsvector FROM unnest($1::bigint[], $2::text[]) AS v(r, fts) \
                 WHERE m.rowid = v.r",
            )
            .bind(ids)
            .bind(vectors)
            .execute(&self.pool)
            .await?;
        }
    }
}
