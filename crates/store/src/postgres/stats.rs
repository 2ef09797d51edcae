//! Aggregates on PostgreSQL.

use confab_core::Role;
use confab_core::timefmt::{from_micros, to_micros};
use sqlx::Row;
use time::{Duration, OffsetDateTime, Time};
use uuid::Uuid;

use super::PgStore;
use crate::error::{Result, StoreError};
use crate::stats::*;
use crate::types::TenantId;

const DAY_US: i64 = 86_400_000_000;

impl PgStore {
    /// One scan, grouped by status, source and agent; `Summary::fold` does the rest.
    pub async fn summary(&self, tenant: TenantId, now: OffsetDateTime) -> Result<Summary> {
        let now_us = to_micros(now);
        let rows = sqlx::query(
            "SELECT status, source, agent_id, COUNT(*), COALESCE(SUM(message_count), 0)::bigint, \
             COUNT(*) FILTER (WHERE created_at > $1), COUNT(*) FILTER (WHERE created_at > $2) \
             FROM conversations WHERE tenant_id = $3 GROUP BY 1, 2, 3",
        )
        .bind(now_us - DAY_US)
        .bind(now_us - 7 * DAY_US)
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        let groups = rows
            .iter()
            .map(|r| {
                Ok(SummaryGroup {
                    status: r
                        .try_get::<&str, _>(0)?
                        .parse()
                        .map_err(StoreError::Corrupt)?,
                    source: r.try_get(1)?,
                    agent: r.try_get(2)?,
                    conversations: r.try_get(3)?,
                    messages: r.try_get(4)?,
                    last_24h: r.try_get(5)?,
                    last_7d: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Summary::fold(groups))
    }

    pub async fn daily(
        &self,
        tenant: TenantId,
        days: u32,
        now: OffsetDateTime,
    ) -> Result<Vec<DayCount>> {
        let today = now.date();
        let first = today - Duration::days(i64::from(days.max(1)) - 1);
        let start = to_micros(first.with_time(Time::MIDNIGHT).assume_utc());
        let mut out: Vec<DayCount> = (0..days.max(1))
            .map(|i| DayCount {
                day: first + Duration::days(i64::from(i)),
                conversations: 0,
                messages: 0,
            })
            .collect();
        for (table, is_conv) in [("conversations", true), ("messages", false)] {
            let sql = format!(
                "SELECT (created_at - $1) / {DAY_US}, COUNT(*) FROM {table} \
                 WHERE tenant_id = $2 AND created_at >= $3 GROUP BY 1"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(start)
                .bind(tenant.0)
                .bind(start)
                .fetch_all(&self.pool)
                .await?;
            for r in rows {
                let i: i64 = r.try_get(0)?;
                let n: i64 = r.try_get(1)?;
                if let Some(d) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                    if is_conv {
                        d.conversations = n;
                    } else {
                        d.messages = n;
                    }
                }
            }
        }
        Ok(out)
    }

    pub async fn conversation_report(
        &self,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<ConversationReport> {
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1::bigint FROM conversations WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let r = sqlx::query(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE role = 'user'), COUNT(*) FILTER (WHERE role = 'assistant'), \
             COUNT(*) FILTER (WHERE role = 'system'), COUNT(*) FILTER (WHERE role = 'tool'), \
             COALESCE(AVG(char_length(content)), 0.0)::float8, \
             (SELECT created_at FROM messages WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY seq ASC LIMIT 1), \
             (SELECT created_at FROM messages WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY seq DESC LIMIT 1) \
             FROM messages WHERE tenant_id = $1 AND conversation_id = $2",
        )
        .bind(tenant.0)
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(ConversationReport {
            total_messages: r.try_get(0)?,
            by_role: vec![
                (Role::User, r.try_get(1)?),
                (Role::Assistant, r.try_get(2)?),
                (Role::System, r.try_get(3)?),
                (Role::Tool, r.try_get(4)?),
            ],
            avg_message_length: r.try_get(5)?,
            first_message_at: r.try_get::<Option<i64>, _>(6)?.map(from_micros),
            last_message_at: r.try_get::<Option<i64>, _>(7)?.map(from_micros),
        })
    }
}
