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
        match self.import_once(tenant, records.clone()).await {
            Err(e) if super::unique_violation(&e, "conversations_pkey") => {
                self.import_once(tenant, records).await
            }
            r => r,
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
