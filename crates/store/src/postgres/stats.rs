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
    /// The tenant's group rows added up (migration 0002: deltas kept by triggers, folded by
    /// [`compact_groups`]), and the two recent counts from the creation-time index, in one
    /// statement so they share a snapshot; `Summary::fold` does the rest.
    pub async fn summary(&self, tenant: TenantId, now: OffsetDateTime) -> Result<Summary> {
        let now_us = to_micros(now);
        let rows = sqlx::query(
            "SELECT status, source, agent_id, SUM(conversations)::bigint, SUM(messages)::bigint, \
             (SELECT COUNT(*) FROM conversations WHERE tenant_id = $3 AND created_at > $1), \
             (SELECT COUNT(*) FROM conversations WHERE tenant_id = $3 AND created_at > $2) \
             FROM conversation_groups WHERE tenant_id = $3 \
             GROUP BY 1, 2, 3 HAVING SUM(conversations) > 0",
        )
        .bind(now_us - DAY_US)
        .bind(now_us - 7 * DAY_US)
        .bind(tenant.0)
        .fetch_all(&self.pool)
        .await?;
        let mut recent = (0, 0);
        let groups = rows
            .iter()
            .map(|r| {
                recent = (r.try_get(5)?, r.try_get(6)?);
                Ok(SummaryGroup {
                    status: r
                        .try_get::<&str, _>(0)?
                        .parse()
                        .map_err(StoreError::Corrupt)?,
                    source: r.try_get(1)?,
                    agent: r.try_get(2)?,
                    conversations: r.try_get(3)?,
                    messages: r.try_get(4)?,
                    last_24h: 0,
                    last_7d: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut sum = Summary::fold(groups);
        // No group rows means no conversations, so (0, 0) is then also the right count.
        (sum.last_24h, sum.last_7d) = recent;
        Ok(sum)
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

/// Advisory lock key of the compaction ("confab" and 1), so one process compacts at a time.
const COMPACT_LOCK: i64 = 0x636f_6e66_6162_0001;

/// Folds every group that has pending delta rows into one row per group and drops groups left
/// without conversations; returns the group rows written. Rows inserted by writers that commit
/// meanwhile are not in this statement's snapshot and stay pending for the next round, and the
/// sum of a group's rows is the same before and after, so readers never see a count move. One
/// process at a time (a try-lock: another process already at it is as good).
pub(crate) async fn compact_groups(pool: &sqlx::PgPool) -> Result<u64> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(COMPACT_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(0);
    }
    let done = sqlx::query(
        "WITH keys AS ( \
             SELECT DISTINCT tenant_id, status, source, agent_id \
             FROM conversation_groups WHERE pending \
         ), gone AS ( \
             DELETE FROM conversation_groups g USING keys k \
             WHERE g.tenant_id = k.tenant_id AND g.status = k.status \
             AND g.source IS NOT DISTINCT FROM k.source \
             AND g.agent_id IS NOT DISTINCT FROM k.agent_id \
             RETURNING g.tenant_id, g.status, g.source, g.agent_id, g.conversations, g.messages \
         ) \
         INSERT INTO conversation_groups \
             (tenant_id, status, source, agent_id, conversations, messages, pending) \
         SELECT tenant_id, status, source, agent_id, SUM(conversations)::bigint, \
             SUM(messages)::bigint, false \
         FROM gone GROUP BY 1, 2, 3, 4 HAVING SUM(conversations) <> 0",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit()
        .await
        .map_err(|e| StoreError::Commit(e.to_string()))?;
    Ok(done.rows_affected())
}

/// How often the background task compacts: the rows a summary adds up are at most this
/// interval's worth of writes on top of one row per group.
pub(crate) const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Compacts every [`COMPACT_EVERY`] until the pool is closed. A failed round is logged and the
/// next one tries again: the counts stay right meanwhile, only the rows to add up grow.
pub(crate) fn spawn_compaction(pool: sqlx::PgPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(COMPACT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(e) = compact_groups(&pool).await {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "compacting the summary counts failed; retrying");
            }
        }
    });
}
