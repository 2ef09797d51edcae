//! Insights rows on SQLite.

use confab_core::Insights;
use confab_core::timefmt::{from_micros, to_micros};
use sqlx::Row;
use uuid::Uuid;

use super::SqliteStore;
use crate::error::{Result, StoreError};
use crate::types::TenantId;

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("insights: {e}"))
}

impl SqliteStore {
    pub async fn get_insights(
        &self,
        tenant: TenantId,
        conversation: Uuid,
    ) -> Result<Option<Insights>> {
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM conversations WHERE tenant_id = ? AND id = ?")
                .bind(tenant.0)
                .bind(conversation)
                .fetch_optional(&self.read)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let row = sqlx::query(
            "SELECT sentiment, sentiment_score, task_completed, topics, summary, issues, analyzer, created_at \
             FROM insights WHERE tenant_id = ? AND conversation_id = ?",
        )
        .bind(tenant.0)
        .bind(conversation)
        .fetch_optional(&self.read)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Insights {
            conversation_id: conversation,
            sentiment: r.try_get::<&str, _>(0)?.parse().map_err(corrupt)?,
            sentiment_score: r.try_get(1)?,
            task_completed: r.try_get(2)?,
            topics: serde_json::from_str(r.try_get(3)?).map_err(corrupt)?,
            summary: r.try_get(4)?,
            issues: serde_json::from_str(r.try_get(5)?).map_err(corrupt)?,
            analyzer: r.try_get(6)?,
            created_at: from_micros(r.try_get(7)?),
        }))
    }

    pub async fn put_insights(&self, tenant: TenantId, i: Insights) -> Result<()> {
        self.writer
            .exec(move |c, now| Box::pin(async move { upsert(c, tenant, &i, now).await }))
            .await
    }
}

/// Stores `i` (replacing earlier insights) and emits `insights.ready`, inside the caller's
/// transaction; `NotFound`, with nothing written, when the conversation is gone.
pub(super) async fn upsert(
    c: &mut sqlx::SqliteConnection,
    tenant: TenantId,
    i: &Insights,
    now: time::OffsetDateTime,
) -> Result<()> {
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM conversations WHERE tenant_id = ? AND id = ?")
            .bind(tenant.0)
            .bind(i.conversation_id)
            .fetch_optional(&mut *c)
            .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    sqlx::query(
        "INSERT INTO insights (tenant_id, conversation_id, sentiment, sentiment_score, task_completed, \
         topics, summary, issues, analyzer, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET sentiment = excluded.sentiment, \
         sentiment_score = excluded.sentiment_score, task_completed = excluded.task_completed, \
         topics = excluded.topics, summary = excluded.summary, issues = excluded.issues, \
         analyzer = excluded.analyzer, created_at = excluded.created_at",
    )
    .bind(tenant.0)
    .bind(i.conversation_id)
    .bind(i.sentiment.as_str())
    .bind(i.sentiment_score)
    .bind(i.task_completed)
    .bind(serde_json::to_string(&i.topics).map_err(corrupt)?)
    .bind(&i.summary)
    .bind(serde_json::to_string(&i.issues).map_err(corrupt)?)
    .bind(&i.analyzer)
    .bind(to_micros(i.created_at))
    .execute(&mut *c)
    .await?;
    let data = serde_json::json!({ "insights": &i });
    super::webhooks::emit_async(
        c,
        tenant,
        "insights.ready",
        Some(i.conversation_id),
        data,
        now,
        None,
    )
    .await?;
    Ok(())
}
