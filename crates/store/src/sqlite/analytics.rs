//! Insights aggregates on SQLite: one grouped query per view over insights ⋈ conversations.

use confab_core::timefmt::to_micros;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::SqliteStore;
use crate::analytics::*;
use crate::error::Result;
use crate::types::TenantId;

/// The aggregate columns every grouped query selects after its key.
const AGG: &str = "COUNT(*), \
    SUM(i.sentiment = 'positive'), SUM(i.sentiment = 'neutral'), \
    SUM(i.sentiment = 'negative'), SUM(i.sentiment = 'mixed'), \
    AVG(i.sentiment_score), AVG(i.task_completed)";

fn from_where(q: &mut QueryBuilder<Sqlite>, tenant: TenantId, f: &InsightsQuery, join: &str) {
    q.push(" FROM insights i")
        .push(join)
        .push(" JOIN conversations c ON c.tenant_id = i.tenant_id AND c.id = i.conversation_id WHERE i.tenant_id = ")
        .push_bind(tenant.0);
    if let Some(a) = &f.agent_id {
        q.push(" AND c.agent_id = ").push_bind(a.clone());
    }
    if let Some(t) = f.created_after {
        q.push(" AND c.created_at >= ").push_bind(to_micros(t));
    }
    if let Some(t) = f.created_before {
        q.push(" AND c.created_at < ").push_bind(to_micros(t));
    }
}

/// Reads the [`AGG`] columns starting at `at`.
fn group(r: &SqliteRow, at: usize) -> Result<InsightsGroup> {
    let count = |k: usize| r.try_get::<Option<i64>, _>(at + k);
    Ok(InsightsGroup::from_aggregates(
        r.try_get(at)?,
        [count(1)?, count(2)?, count(3)?, count(4)?],
        r.try_get(at + 5)?,
        r.try_get(at + 6)?,
    ))
}

impl SqliteStore {
    pub async fn insights_summary(
        &self,
        tenant: TenantId,
        f: &InsightsQuery,
    ) -> Result<InsightsSummary> {
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {AGG}"));
        from_where(&mut q, tenant, f, "");
        let total = group(&q.build().fetch_one(&self.read).await?, 0)?;

        // json_each expands the stored topic array: one row per (conversation, topic).
        let mut q = QueryBuilder::<Sqlite>::new("SELECT j.value, COUNT(*)");
        from_where(&mut q, tenant, f, " JOIN json_each(i.topics) j");
        q.push(" GROUP BY j.value ORDER BY COUNT(*) DESC, j.value LIMIT ")
            .push_bind(TOP_TOPICS);
        let top_topics = q
            .build()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| {
                Ok(TopicCount {
                    topic: r.try_get(0)?,
                    count: r.try_get(1)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT c.agent_id, {AGG}"));
        from_where(&mut q, tenant, f, "");
        q.push(" GROUP BY c.agent_id ORDER BY COUNT(*) DESC, c.agent_id");
        let by_agent = q
            .build()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, group(r, 1)?)))
            .collect::<Result<Vec<_>>>()?;

        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT date(c.created_at / 1000000, 'unixepoch') AS day, {AGG}"
        ));
        from_where(&mut q, tenant, f, "");
        q.push(" GROUP BY day ORDER BY day");
        let by_day = q
            .build()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, group(r, 1)?)))
            .collect::<Result<Vec<_>>>()?;

        Ok(InsightsSummary {
            total,
            top_topics,
            by_agent,
            by_day,
        })
    }
}
