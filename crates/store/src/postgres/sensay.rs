//! Sensay reads on PostgreSQL: every query on the reader pool and scoped by tenant.

use confab_core::seek::{Seek, SeqWindow};
use confab_core::timefmt::to_micros;
use confab_core::{Conversation, Message, Role};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::PgStore;
use super::rows::{self, CONVERSATION_COLS, MESSAGE_COLS};
use crate::error::{Result, StoreError};
use crate::sensay::DailyCounts;
use crate::types::TenantId;

impl PgStore {
    pub async fn agent_exists(&self, tenant: TenantId, agent_id: &str) -> Result<bool> {
        let mut c = self.warm.lend().await?;
        let one: Option<i64> =
            sqlx::query_scalar("SELECT 1::bigint FROM agents WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.0)
                .bind(agent_id)
                .fetch_optional(c.conn())
                .await?;
        c.done();
        Ok(one.is_some())
    }

    pub async fn message_roles(&self, tenant: TenantId, id: Uuid) -> Result<Vec<(i64, Role)>> {
        let mut c = self.warm.lend().await?;
        let rows = sqlx::query(
            "SELECT seq, role FROM messages WHERE tenant_id = $1 AND conversation_id = $2 ORDER BY seq",
        )
        .bind(tenant.0)
        .bind(id)
        .fetch_all(c.conn())
        .await?;
        if rows.is_empty() {
            // Rows prove the conversation exists; only an empty answer needs the check.
            super::read::conversation_exists(c.conn(), tenant, id).await?;
        }
        c.done();
        rows.iter()
            .map(|r| {
                let role: &str = r.try_get(1)?;
                Ok((r.try_get(0)?, role.parse().map_err(StoreError::Corrupt)?))
            })
            .collect()
    }

    pub async fn messages_at(
        &self,
        tenant: TenantId,
        id: Uuid,
        seqs: &[i64],
    ) -> Result<Vec<Message>> {
        // One array parameter instead of one bind per seq, like the SQLite twin's JSON array.
        let list = seqs.to_vec();
        let mut c = self.warm.lend().await?;
        let sql = format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = $1 AND conversation_id = $2 \
             AND seq = ANY($3) ORDER BY seq"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.0)
            .bind(id)
            .bind(list)
            .fetch_all(c.conn())
            .await?;
        c.done();
        rows.iter().map(rows::message).collect()
    }

    pub async fn messages_window(
        &self,
        tenant: TenantId,
        id: Uuid,
        agent: Option<&str>,
        w: SeqWindow,
        roles: &[Role],
    ) -> Result<Vec<Message>> {
        let mut q = window(tenant, id, agent, w, roles);
        let mut c = self.warm.lend().await?;
        let rows = q.build().fetch_all(c.conn()).await?;
        if rows.is_empty() {
            // Rows prove the conversation exists (and is the agent's); only an empty page needs
            // the check.
            super::read::conversation_of(c.conn(), tenant, id, agent).await?;
        }
        c.done();
        let mut out: Vec<Message> = rows.iter().map(rows::message).collect::<Result<_>>()?;
        if !w.newest_end {
            out.reverse();
        }
        Ok(out)
    }

    pub async fn agent_conversations(
        &self,
        tenant: TenantId,
        agent_id: &str,
        seek: Option<Seek<&Conversation>>,
        limit: i64,
    ) -> Result<Vec<Conversation>> {
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {CONVERSATION_COLS} FROM conversations WHERE tenant_id = "
        ));
        q.push_bind(tenant.0)
            .push(" AND agent_id = ")
            .push_bind(agent_id.to_owned());
        // Keyset on (created_at, id), the list's order; `After` reads upwards and is reversed.
        let (cmp, order) = match seek {
            Some(Seek::After(_)) => (">", "ASC"),
            _ => ("<", "DESC"),
        };
        if let Some(s) = seek {
            let c = *s.key();
            let at = to_micros(c.created_at);
            q.push(format_args!(" AND (created_at {cmp} "))
                .push_bind(at)
                .push(" OR (created_at = ")
                .push_bind(at)
                .push(format_args!(" AND id {cmp} "))
                .push_bind(c.id)
                .push("))");
        }
        q.push(format_args!(
            " ORDER BY created_at {order}, id {order} LIMIT "
        ))
        .push_bind(limit);
        let mut c = self.warm.lend().await?;
        let rows = q.build().fetch_all(c.conn()).await?;
        c.done();
        let mut out: Vec<Conversation> =
            rows.iter().map(rows::conversation).collect::<Result<_>>()?;
        if order == "ASC" {
            out.reverse();
        }
        Ok(out)
    }

    pub async fn agent_daily_counts(
        &self,
        tenant: TenantId,
        agent_id: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<DailyCounts> {
        // One statement (one round trip): everything before the window counts as day -1. The
        // window starts and ends at UTC midnights, so the agent's day rows (migration 0003)
        // answer it exactly: a few dozen rows instead of every conversation of the agent.
        // (Creation times before 1970 are rounded toward zero into day 0, hence start > 0.)
        let day = confab_core::daily::DAY_US;
        let mut c = self.warm.lend().await?;
        let rows = if self.counted && start_us > 0 && start_us % day == 0 && end_us % day == 0 {
            sqlx::query(
                "SELECT CASE WHEN day < $1 THEN -1 ELSE day - $1 END AS d, \
                 SUM(conversations)::bigint FROM conversation_agent_days \
                 WHERE tenant_id = $2 AND agent_id = $3 AND day < $4 \
                 GROUP BY d HAVING SUM(conversations) <> 0 ORDER BY d",
            )
            .bind(start_us / day)
            .bind(tenant.0)
            .bind(agent_id)
            .bind(end_us / day)
            .fetch_all(c.conn())
            .await?
        } else {
            daily_counts_scan(c.conn(), tenant, agent_id, start_us, end_us).await?
        };
        c.done();
        let mut before = 0;
        let mut per_day = Vec::with_capacity(rows.len());
        for r in &rows {
            let (day, n): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
            if day < 0 {
                before = n;
            } else {
                per_day.push((day, n));
            }
        }
        Ok(DailyCounts { before, per_day })
    }

    pub async fn agent_sources(
        &self,
        tenant: TenantId,
        agent_id: &str,
        missing: &str,
    ) -> Result<Vec<(String, i64)>> {
        let mut c = self.warm.lend().await?;
        let rows = sqlx::query(
            "SELECT COALESCE(source, $1) AS s, COUNT(*) AS n FROM conversations \
             WHERE tenant_id = $2 AND agent_id = $3 GROUP BY s ORDER BY n DESC, s ASC",
        )
        .bind(missing)
        .bind(tenant.0)
        .bind(agent_id)
        .fetch_all(c.conn())
        .await?;
        c.done();
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// [`PgStore::agent_daily_counts`] without the agent days (their triggers dropped, as on
/// Citus, or a window not on UTC midnights): the agent's conversations counted by day.
async fn daily_counts_scan(
    c: &mut sqlx::PgConnection,
    tenant: TenantId,
    agent_id: &str,
    start_us: i64,
    end_us: i64,
) -> Result<Vec<sqlx::postgres::PgRow>> {
    Ok(sqlx::query(
        "SELECT CASE WHEN created_at < $1 THEN -1 ELSE (created_at - $1) / $2 END AS day, \
         COUNT(*) FROM conversations \
         WHERE tenant_id = $3 AND agent_id = $4 AND created_at < $5 \
         GROUP BY day ORDER BY day",
    )
    .bind(start_us)
    .bind(confab_core::daily::DAY_US)
    .bind(tenant.0)
    .bind(agent_id)
    .bind(end_us)
    .fetch_all(c)
    .await?)
}

/// A Sensay page of a conversation's messages: `w` of them, of `roles`, the agent's only if
/// `agent` is given.
fn window(
    tenant: TenantId,
    id: Uuid,
    agent: Option<&str>,
    w: SeqWindow,
    roles: &[Role],
) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = "
    ));
    q.push_bind(tenant.0)
        .push(" AND conversation_id = ")
        .push_bind(id);
    if let Some(a) = agent {
        // Uncorrelated: PostgreSQL tests it once, before the first row (a one-time filter).
        q.push(" AND EXISTS (SELECT 1 FROM conversations WHERE tenant_id = ")
            .push_bind(tenant.0)
            .push(" AND id = ")
            .push_bind(id)
            .push(" AND agent_id = ")
            .push_bind(a.to_owned())
            .push(")");
    }
    super::read::push_seqs(&mut q, w.after_seq, w.before_seq, Some(roles), w.newest_end);
    super::read::push_limit(&mut q, w.limit);
    q
}

/// The text of [`window`]'s statement, for the test that checks its plan.
pub(crate) fn window_sql(agent: Option<&str>, w: SeqWindow, roles: &[Role]) -> String {
    window(TenantId(Uuid::nil()), Uuid::nil(), agent, w, roles).into_string()
}
