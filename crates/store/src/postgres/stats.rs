//! Aggregates on PostgreSQL.

use confab_core::Role;
use confab_core::timefmt::{from_micros, to_micros};
use sqlx::{PgPool, Row};
use time::{Duration, OffsetDateTime, Time};
use uuid::Uuid;

use super::PgStore;
use crate::error::{Result, StoreError};
use crate::stats::*;
use crate::types::TenantId;

const DAY_US: i64 = 86_400_000_000;

impl PgStore {
    /// The summary in one statement; `Summary::fold` does the rest. Normally the tenant's
    /// group rows added up (migration 0002: deltas kept by triggers, folded by
    /// [`compact_groups`]), with the two recent counts from the hour buckets in the same
    /// statement, so they share a snapshot. Where the triggers have been dropped (Citus cannot
    /// run them; docs/operations.md), a scan of the tenant's conversations grouped the same way.
    pub async fn summary(&self, tenant: TenantId, now: OffsetDateTime) -> Result<Summary> {
        self.summaries.get(tenant, now).await
    }
}

/// The summary of `tenant` at `now`, as [`PgStore::summary`] describes; `counted` is whether
/// the triggers keep the counts. The query behind `summary_batch.rs`.
pub(super) async fn summary(
    pool: &PgPool,
    counted: bool,
    tenant: TenantId,
    now: OffsetDateTime,
) -> Result<Summary> {
    let now_us = to_micros(now);
    // Both answer (status, source, agent, conversations, messages, last 24 h, last 7 days):
    // the scan per group, the counted one with the tenant's recent counts on every row.
    // A recent count is the whole hours after the window's first hour, from the hour
    // buckets, plus the conversations of that first hour's part inside the window.
    let sql = if counted {
        "SELECT status, source, agent_id, SUM(conversations)::bigint, SUM(messages)::bigint, \
             (SELECT COALESCE(SUM(conversations), 0) FROM conversation_hours \
              WHERE tenant_id = $3 AND hour > $4)::bigint \
             + (SELECT COUNT(*) FROM conversations WHERE tenant_id = $3 \
                AND created_at > $1 AND created_at < $5), \
             (SELECT COALESCE(SUM(conversations), 0) FROM conversation_hours \
              WHERE tenant_id = $3 AND hour > $6)::bigint \
             + (SELECT COUNT(*) FROM conversations WHERE tenant_id = $3 \
                AND created_at > $2 AND created_at < $7) \
             FROM conversation_groups WHERE tenant_id = $3 \
             GROUP BY 1, 2, 3 HAVING SUM(conversations) > 0"
    } else {
        "SELECT status, source, agent_id, COUNT(*), COALESCE(SUM(message_count), 0)::bigint, \
             COUNT(*) FILTER (WHERE created_at > $1), COUNT(*) FILTER (WHERE created_at > $2) \
             FROM conversations WHERE tenant_id = $3 GROUP BY 1, 2, 3"
    };
    let (day, week) = (now_us - DAY_US, now_us - 7 * DAY_US);
    let (day_hour, day_edge) = first_hour(day);
    let (week_hour, week_edge) = first_hour(week);
    let rows = sqlx::query(sql)
        .bind(day)
        .bind(week)
        .bind(tenant.0)
        .bind(day_hour)
        .bind(day_edge)
        .bind(week_hour)
        .bind(week_edge)
        .fetch_all(pool)
        .await?;
    let mut recent = (0, 0);
    let groups = rows
        .iter()
        .map(|r| {
            let (day, week) = (r.try_get(5)?, r.try_get(6)?);
            if counted {
                recent = (day, week);
            }
            Ok(SummaryGroup {
                status: r
                    .try_get::<&str, _>(0)?
                    .parse()
                    .map_err(StoreError::Corrupt)?,
                source: r.try_get(1)?,
                agent: r.try_get(2)?,
                conversations: r.try_get(3)?,
                messages: r.try_get(4)?,
                last_24h: if counted { 0 } else { day },
                last_7d: if counted { 0 } else { week },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut sum = Summary::fold(groups);
    if counted {
        // No group rows means no conversations, so (0, 0) is then also the right count.
        (sum.last_24h, sum.last_7d) = recent;
    }
    Ok(sum)
}

impl PgStore {
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

/// Microseconds per bucket of `conversation_hours` (migration 0002 divides by the same).
const HOUR_US: i64 = 3_600_000_000;

/// For a window starting after `start`: the hour bucket holding `start` (buckets after it are
/// whole hours inside the window) and the end of that hour (conversations between `start` and
/// it are counted one by one). Buckets are `created_at / HOUR_US` rounded toward zero, so
/// before 1970 they are not floors: there the whole window is counted one by one.
fn first_hour(start: i64) -> (i64, i64) {
    if start < 0 {
        (i64::MAX, i64::MAX)
    } else {
        let h = start / HOUR_US;
        (h, (h + 1) * HOUR_US)
    }
}

/// Advisory lock key of the compaction ("confab" and 1), so one process compacts at a time.
const COMPACT_LOCK: i64 = 0x636f_6e66_6162_0001;

/// Folds every group that has pending delta rows into one row per group and drops groups left
/// without conversations, and the same for the hour buckets and the agent days (migration
/// 0003); returns the rows deleted. Rows inserted by writers that commit meanwhile are not in
/// this statement's snapshot and stay pending for the next round, and the sum of a group's
/// rows is the same before and after, so readers never see a count move. One process at a
/// time: the background task takes a try-lock (another process already at it is as good);
/// `wait` waits for the lock instead, so that everything committed before the call is folded
/// when it returns.
pub(crate) async fn compact_groups(pool: &sqlx::PgPool, wait: bool) -> Result<u64> {
    let mut tx = pool.begin().await?;
    if wait {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(COMPACT_LOCK)
            .execute(&mut *tx)
            .await?;
    } else {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(COMPACT_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(0);
        }
    }
    // Each statement answers the rows it deleted (the INSERT in a WITH runs to completion
    // whether or not the outer query reads it).
    let groups: i64 = sqlx::query_scalar(
        "WITH keys AS ( \
             SELECT DISTINCT tenant_id, status, source, agent_id \
             FROM conversation_groups WHERE pending \
         ), gone AS ( \
             DELETE FROM conversation_groups g USING keys k \
             WHERE g.tenant_id = k.tenant_id AND g.status = k.status \
             AND COALESCE(g.source, '') = COALESCE(k.source, '') \
             AND COALESCE(g.agent_id, '') = COALESCE(k.agent_id, '') \
             AND g.source IS NOT DISTINCT FROM k.source \
             AND g.agent_id IS NOT DISTINCT FROM k.agent_id \
             RETURNING g.tenant_id, g.status, g.source, g.agent_id, g.conversations, g.messages \
         ), folded AS ( \
             INSERT INTO conversation_groups \
                 (tenant_id, status, source, agent_id, conversations, messages, pending) \
             SELECT tenant_id, status, source, agent_id, SUM(conversations)::bigint, \
                 SUM(messages)::bigint, false \
             FROM gone GROUP BY 1, 2, 3, 4 HAVING SUM(conversations) <> 0 \
         ) \
         SELECT COUNT(*) FROM gone",
    )
    .fetch_one(&mut *tx)
    .await?;
    let hours: i64 = sqlx::query_scalar(
        "WITH keys AS ( \
             SELECT DISTINCT tenant_id, hour FROM conversation_hours WHERE pending \
         ), gone AS ( \
             DELETE FROM conversation_hours h USING keys k \
             WHERE h.tenant_id = k.tenant_id AND h.hour = k.hour \
             RETURNING h.tenant_id, h.hour, h.conversations \
         ), folded AS ( \
             INSERT INTO conversation_hours (tenant_id, hour, conversations, pending) \
             SELECT tenant_id, hour, SUM(conversations)::bigint, false \
             FROM gone GROUP BY 1, 2 HAVING SUM(conversations) <> 0 \
         ) \
         SELECT COUNT(*) FROM gone",
    )
    .fetch_one(&mut *tx)
    .await?;
    let days: i64 = sqlx::query_scalar(
        "WITH keys AS ( \
             SELECT DISTINCT tenant_id, agent_id, day FROM conversation_agent_days WHERE pending \
         ), gone AS ( \
             DELETE FROM conversation_agent_days a USING keys k \
             WHERE a.tenant_id = k.tenant_id AND a.agent_id = k.agent_id AND a.day = k.day \
             RETURNING a.tenant_id, a.agent_id, a.day, a.conversations \
         ), folded AS ( \
             INSERT INTO conversation_agent_days (tenant_id, agent_id, day, conversations, pending) \
             SELECT tenant_id, agent_id, day, SUM(conversations)::bigint, false \
             FROM gone GROUP BY 1, 2, 3 HAVING SUM(conversations) <> 0 \
         ) \
         SELECT COUNT(*) FROM gone",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit()
        .await
        .map_err(|e| StoreError::Commit(e.to_string()))?;
    Ok((groups + hours + days) as u64)
}

/// Vacuums the count tables when folding has left dead rows in them for this long (or at
/// once when the writes pause). Every fold deletes the rows it folds; until a vacuum, their
/// index entries stay, and the summary's scans visit each to find it dead. After the
/// benchmark's import, autovacuum (once a minute at best) had left the summary at a third of
/// its speed.
const VACUUM_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) async fn vacuum_counts(pool: &sqlx::PgPool) -> Result<()> {
    // SKIP_LOCKED: another process vacuuming them is as good. The simple protocol: VACUUM may
    // not run inside a transaction block, which some drivers open for a prepared statement.
    sqlx::raw_sql(
        "VACUUM (SKIP_LOCKED) conversation_groups, conversation_hours, conversation_agent_days",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// How often the background task compacts: the rows a summary adds up are at most this
/// interval's worth of writes on top of one row per group.
pub(crate) const COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// True when migration 0002's three triggers keep `conversation_groups` (they can be dropped
/// for Citus, which does not run statement triggers with transition tables on distributed
/// tables; the summary then scans).
pub(crate) async fn groups_counted(c: &mut sqlx::PgConnection) -> Result<bool> {
    super::triggers_present(
        c,
        "conversations",
        &[
            "conversation_groups_insert",
            "conversation_groups_update",
            "conversation_groups_delete",
        ],
    )
    .await
}

/// Compacts every [`COMPACT_EVERY`] until the pool is closed (and merges the search index's
/// pending list when it vacuums). A failed round is logged and the next one tries again: the
/// counts stay right meanwhile, only the rows to add up grow.
pub(crate) fn spawn_compaction(pool: sqlx::PgPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(COMPACT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When this process first folded rows that no vacuum has cleared since.
        let mut dirty_since: Option<std::time::Instant> = None;
        let mut pending = super::pending::Flusher::default();
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            let round = async {
                let folded = compact_groups(&pool, false).await?;
                if folded > 0 && dirty_since.is_none() {
                    dirty_since = Some(std::time::Instant::now());
                }
                // As soon as the writes pause (a round with nothing to fold), or every
                // VACUUM_AFTER while they go on.
                if dirty_since.is_some_and(|t| folded == 0 || t.elapsed() >= VACUUM_AFTER) {
                    vacuum_counts(&pool).await?;
                    // The same moments suit the search index's pending list (pending.rs): a
                    // write to `messages` updates its conversation, so it made rows to fold.
                    pending.flush(&pool).await;
                    dirty_since = None;
                }
                Ok::<_, StoreError>(())
            };
            if let Err(e) = round.await {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "compacting the summary counts failed; retrying");
            }
        }
    });
}
