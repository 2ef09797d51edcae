//! Import on SQLite: raw inserts that keep every id, seq and timestamp as exported.

use confab_core::export::ExportRecord;
use confab_core::timefmt::to_micros;
use rusqlite::{Connection, params};
use uuid::Uuid;

use super::SqliteStore;
use super::raw::{self, id as b};
use crate::error::Result;
use crate::import::ImportOutcome;
use crate::types::TenantId;

fn insert_record(c: &Connection, tenant: TenantId, r: &ExportRecord) -> Result<()> {
    let conv = &r.conversation;
    if let Some(a) = &conv.agent_id {
        super::ops::upsert_agent(c, tenant, a, conv.created_at)?;
    }
    super::ops::insert_conversation(c, tenant, conv)?;
    let mut st = c.prepare_cached(super::ops::INSERT_MESSAGE)?;
    for m in &r.messages {
        st.execute(params![
            b(&tenant.0),
            b(&conv.id),
            m.seq,
            b(&m.id),
            m.role.as_str(),
            &m.content,
            to_micros(m.created_at),
            &m.model,
            m.tokens,
            m.prompt_tokens,
            m.completion_tokens,
            m.latency_ms,
            m.tool_calls.as_ref().map(|v| v.to_string()),
            m.metadata
                .as_ref()
                .map(|v| serde_json::Value::Object(v.clone()).to_string()),
            &m.source,
            m.is_trigger
        ])?;
    }
    Ok(())
}

impl SqliteStore {
    pub async fn import_records(
        &self,
        tenant: TenantId,
        records: Vec<ExportRecord>,
    ) -> Result<ImportOutcome> {
        self.writer
            .exec(move |c, _now| {
                Box::pin(async move {
                    raw::with(c, |c| {
                        let mut out = ImportOutcome::default();
                        for r in &records {
                            let exists = raw::one(
                                c,
                                "SELECT 1 FROM conversations WHERE tenant_id = ? AND id = ?",
                                params![b(&tenant.0), b(&r.conversation.id)],
                                |_| Ok(()),
                            )?;
                            if exists.is_some() {
                                out.skipped += 1;
                                continue;
                            }
                            insert_record(c, tenant, r)?;
                            out.imported += 1;
                            out.messages += r.messages.len() as u64;
                        }
                        Ok(out)
                    })
                    .await
                })
            })
            .await
    }

    pub async fn find_tenant(&self, name: &str) -> Result<Option<TenantId>> {
        let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM tenants WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        Ok(id.map(TenantId))
    }

    pub async fn ensure_tenant(&self, name: &str) -> Result<TenantId> {
        let name = name.to_owned();
        self.writer
            .exec(move |c, now| {
                Box::pin(async move {
                    raw::with(c, |c| super::ops::tenant_named(c, &name, now))
                        .await
                        .map(TenantId)
                })
            })
            .await
    }
}
