//! Aggregates on SQLite.

use confab_core::Role;
use confab_core::timefmt::{from_micros, to_micros};
use sqlx::Row;
use time::{Duration, OffsetDateTime, Time};

use uuid::Uuid;

use super::SqliteStore;
use crate::error::{Result, StoreError};
use crate::stats::*;
use crate::types::TenantId;

const DAY_US: i64 = 86_400_000_000;

impl SqliteStore {
    /// The tenant's group counters (kept by triggers, migration 0008) folded into the
    /// summary, and the recent counts from the `(tenant_id, created_at)` index: a few dozen
    /// rows and one short index range, whatever the number of conversations. A tenant's
    /// requests waiting at once share one query (summaries.rs).
    pub async fn summary(&self, tenant: TenantId, now: OffsetDateTime) -> Result<Summary> {
        self.summaries
            .summary(tenant.0, now, |now| self.summary_now(tenant, now))
            .await
    }

    fn summary_now(&self, tenant: TenantId, now: OffsetDateTime) -> Result<Summary> {
        let now_us = to_micros(now);
        let t = super::raw::id(&tenant.0);
        self.fast.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT status, source, agent_id, conversations, messages \
                 FROM conversation_groups WHERE tenant_id = ?1 AND conversations > 0",
            )?;
            let mut rows = st.query([t])?;
            let mut groups = Vec::new();
            while let Some(r) = rows.next()? {
                let status: String = r.get(0)?;
                groups.push(SummaryGroup {
                    status: status.parse().map_err(StoreError::Corrupt)?,
                    source: r.get(1)?,
                    agent: r.get(2)?,
                    conversations: r.get(3)?,
                    messages: r.get(4)?,
                    last_24h: 0,
                    last_7d: 0,
                });
            }
            let mut sum = Summary::fold(groups);
            let (day, week) = c
                .prepare_cached(
                    "SELECT COALESCE(SUM(created_at > ?1), 0), COUNT(*) FROM conversations \
                 WHERE tenant_id = ?2 AND created_at > ?3",
                )?
                .query_row(
                    rusqlite::params![now_us - DAY_US, t, now_us - 7 * DAY_US],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
            sum.last_24h = day;
            sum.last_7d = week;
            Ok(sum)
        })
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
                "SELECT (created_at - ?) / {DAY_US}, COUNT(*) FROM {table} \
                 WHERE tenant_id = ? AND created_at >= ? GROUP BY 1"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(start)
                .bind(tenant.0)
                .bind(start)
                .fetch_all(&self.read)
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
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM conversations WHERE tenant_id = ? AND id = ?")
                .bind(tenant.0)
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let r = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(role = 'user'), 0), COALESCE(SUM(role = 'assistant'), 0), \
             COALESCE(SUM(role = 'system'), 0), COALESCE(SUM(role = 'tool'), 0), \
             COALESCE(AVG(length(content)), 0.0), \
             (SELECT created_at FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2 ORDER BY seq ASC LIMIT 1), \
             (SELECT created_at FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2 ORDER BY seq DESC LIMIT 1) \
             FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2",
        )
        .bind(tenant.0)
        .bind(id)
        .fetch_one(&self.read)
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
