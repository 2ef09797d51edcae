//! Import on PostgreSQL: raw inserts that keep every id, seq and timestamp as exported.

use confab_core::export::ExportRecord;
use confab_core::timefmt::to_micros;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::PgStore;
use crate::error::Result;
use crate::import::ImportOutcome;
use crate::types::TenantId;

async fn insert_record(c: &mut PgConnection, tenant: TenantId, r: &ExportRecord) -> Result<()> {
    let conv = &r.conversation;
    if let Some(a) = &conv.agent_id {
        super::ops::upsert_agent(c, tenant, a, conv.created_at).await?;
    }
    super::ops::insert_conversation(c, tenant, conv).await?;
    // 17 bound values per row; PostgreSQL allows 65,535 per statement.
    for chunk in r.messages.chunks(1000) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO messages (tenant_id, conversation_id, seq, id, role, content, created_at, model, tokens, \
             prompt_tokens, completion_tokens, latency_ms, tool_calls, metadata, source, is_trigger, fts) ",
        );
        q.push_values(chunk, |mut b, m| {
            b.push_bind(tenant.0)
                .push_bind(conv.id)
                .push_bind(m.seq)
                .push_bind(m.id)
                .push_bind(m.role.as_str())
                .push_bind(m.content.clone())
                .push_bind(to_micros(m.created_at))
                .push_bind(m.model.clone())
                .push_bind(m.tokens)
                .push_bind(m.prompt_tokens)
                .push_bind(m.completion_tokens)
                .push_bind(m.latency_ms)
                .push_bind(m.tool_calls.clone())
                .push_bind(
                    m.metadata
                        .as_ref()
                        .map(|v| serde_json::Value::Object(v.clone())),
                )
                .push_bind(m.source.clone())
                .push_bind(m.is_trigger);
            b.push("");
            b.push_bind_unseparated(super::fts::tsvector(tenant.0, &m.content));
            b.push_unseparated("::tsvector");
        });
        q.build().execute(&mut *c).await?;
    }
    Ok(())
}

impl PgStore {
    pub async fn import_records(
        &self,
        tenant: TenantId,
        records: Vec<ExportRecord>,
    ) -> Result<ImportOutcome> {
        // Two imports of the same conversations at once: the later insert meets the primary
        // key and its transaction rolls back; run once more, and it skips what the other wrote
        // (SQLite's serial writer gives the same outcome).
        let records = std::sync::Arc::new(records);
        let out = match self.import_once(tenant, records.clone()).await {
            Err(e) if super::unique_violation(&e, "conversations_pkey") => {
                self.import_once(tenant, records).await
            }
            r => r,
        }?;
        if out.imported > 0 {
            self.bulk_written
                .store(true, std::sync::atomic::Ordering::Release);
            self.refresh_statistics().await;
        }
        Ok(out)
    }

    /// A bulk import changes the tables faster than autovacuum re-samples them, and without
    /// statistics the planner cannot tell a rare search word (use the GIN index) from a common
    /// one (walk the newest messages): a ranked search of a common word took seconds on a
    /// freshly imported table, milliseconds after ANALYZE. So an import refreshes them, at most
    /// once a minute per process (ANALYZE samples a fixed number of rows, so it stays cheap).
    async fn refresh_statistics(&self) {
        {
            let mut at = self.analyzed_at.lock().expect("analyze clock lock");
            if at.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(60)) {
                return;
            }
            *at = Some(std::time::Instant::now());
        }
        if let Err(e) = sqlx::query("ANALYZE messages, conversations")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "refreshing planner statistics after an import");
        }
    }

    async fn import_once(
        &self,
        tenant: TenantId,
        records: std::sync::Arc<Vec<ExportRecord>>,
    ) -> Result<ImportOutcome> {
        self.exec(move |c, _now| {
            Box::pin(async move {
                let mut out = ImportOutcome::default();
                for r in records.iter() {
                    let exists: Option<i64> = sqlx::query_scalar(
                        "SELECT 1::bigint FROM conversations WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.0)
                    .bind(r.conversation.id)
                    .fetch_optional(&mut *c)
                    .await?;
                    if exists.is_some() {
                        out.skipped += 1;
                        continue;
                    }
                    insert_record(c, tenant, r).await?;
                    out.imported += 1;
                    out.messages += r.messages.len() as u64;
                }
                Ok(out)
            })
        })
        .await
    }

    pub async fn find_tenant(&self, name: &str) -> Result<Option<TenantId>> {
        let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.map(TenantId))
    }

    pub async fn ensure_tenant(&self, name: &str) -> Result<TenantId> {
        let name = name.to_owned();
        self.exec(move |c, now| {
            Box::pin(async move { super::ops::tenant_named(c, &name, now).await.map(TenantId) })
        })
        .await
    }
}
