//! Sensay reads on SQLite: every query on the fast (rusqlite) readers and scoped by tenant.
//! A Sensay page is four or five of these lookups; on sqlx's pool each cost two thread
//! wake-ups, which made a Sensay page five times slower than the same native page.

use confab_core::seek::{Seek, SeqWindow};
use confab_core::timefmt::to_micros;
use confab_core::{Conversation, Message, Role};
use rusqlite::params;
use uuid::Uuid;

use super::SqliteStore;
use super::raw::{self, Sql, blob, id as b};
use super::read::{conversation_exists, conversation_of};
use super::rows::{self, CONVERSATION_COLS, MESSAGE_COLS};
use crate::error::{Result, StoreError};
use crate::sensay::DailyCounts;
use crate::types::TenantId;

impl SqliteStore {
    pub async fn agent_exists(&self, tenant: TenantId, agent_id: &str) -> Result<bool> {
        self.fast.with(|c| {
            Ok(raw::one(
                c,
                "SELECT 1 FROM agents WHERE tenant_id = ? AND id = ?",
                params![b(&tenant.0), agent_id],
                |_| Ok(()),
            )?
            .is_some())
        })
    }

    pub async fn message_roles(&self, tenant: TenantId, id: Uuid) -> Result<Vec<(i64, Role)>> {
        self.fast.with(|c| {
            conversation_exists(c, tenant, id)?;
            let mut st = c.prepare_cached(
                "SELECT seq, role FROM messages WHERE tenant_id = ? AND conversation_id = ? ORDER BY seq",
            )?;
            let mut rows = st.query(params![b(&tenant.0), b(&id)])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let role = r.get_ref(1)?.as_str().map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push((r.get(0)?, role.parse().map_err(StoreError::Corrupt)?));
            }
            Ok(out)
        })
    }

    pub async fn messages_at(
        &self,
        tenant: TenantId,
        id: Uuid,
        seqs: &[i64],
    ) -> Result<Vec<Message>> {
        // One JSON array parameter instead of one bind per seq: a page of 100 long groups can
        // pass SQLite's limit on bound parameters.
        let list = serde_json::to_string(seqs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sql = format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = ? AND conversation_id = ? \
             AND seq IN (SELECT value FROM json_each(?)) ORDER BY seq"
        );
        self.fast.with(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query(params![b(&tenant.0), b(&id), list])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(rows::message_raw(r)?);
            }
            Ok(out)
        })
    }

    pub async fn messages_window(
        &self,
        tenant: TenantId,
        id: Uuid,
        agent: Option<&str>,
        w: SeqWindow,
        roles: &[Role],
    ) -> Result<Vec<Message>> {
        let mut q = Sql::default();
        q.push(&format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = "
        ))
        .bind(blob(&tenant.0))
        .push(" AND conversation_id = ")
        .bind(blob(&id));
        if let Some(s) = w.after_seq {
            q.push(" AND seq > ").bind(s);
        }
        if let Some(s) = w.before_seq {
            q.push(" AND seq < ").bind(s);
        }
        q.push(" AND role IN (''");
        for r in roles {
            q.push(", ").bind(r.as_str().to_owned());
        }
        q.push(")");
        q.push(if w.newest_end {
            " ORDER BY seq DESC"
        } else {
            " ORDER BY seq ASC"
        });
        q.push(" LIMIT ").bind(w.limit);
        let mut out = self.fast.with(|c| {
            conversation_of(c, tenant, id, agent)?;
            q.rows(c, rows::message_raw)
        })?;
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
        let mut q = Sql::default();
        q.push(&format!(
            "SELECT {CONVERSATION_COLS} FROM conversations WHERE tenant_id = "
        ))
        .bind(blob(&tenant.0))
        .push(" AND agent_id = ")
        .bind(agent_id.to_owned());
        // Keyset on (created_at, id), the list's order; `After` reads upwards and is reversed.
        let (cmp, order) = match seek {
            Some(Seek::After(_)) => (">", "ASC"),
            _ => ("<", "DESC"),
        };
        if let Some(s) = seek {
            let c = *s.key();
            let at = to_micros(c.created_at);
            q.push(&format!(" AND (created_at {cmp} ")).bind(at);
            q.push(" OR (created_at = ").bind(at);
            q.push(&format!(" AND id {cmp} "))
                .bind(blob(&c.id))
                .push("))");
        }
        q.push(&format!(" ORDER BY created_at {order}, id {order} LIMIT "))
            .bind(limit);
        let mut out = self.fast.with(|c| q.rows(c, rows::conversation_raw))?;
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
        self.fast.with(|c| {
            let before: i64 = raw::one(
                c,
                "SELECT COUNT(*) FROM conversations WHERE tenant_id = ? AND agent_id = ? AND created_at < ?",
                params![b(&tenant.0), agent_id, start_us],
                |r| Ok(r.get(0)?),
            )?
            .unwrap_or(0);
            let mut st = c.prepare_cached(
                "SELECT (created_at - ?1) / ?2 AS day, COUNT(*) FROM conversations \
                 WHERE tenant_id = ?3 AND agent_id = ?4 AND created_at >= ?1 AND created_at < ?5 \
                 GROUP BY day ORDER BY day",
            )?;
            let mut rows = st.query(params![
                start_us,
                confab_core::daily::DAY_US,
                b(&tenant.0),
                agent_id,
                end_us
            ])?;
            let mut per_day = Vec::new();
            while let Some(r) = rows.next()? {
                per_day.push((r.get(0)?, r.get(1)?));
            }
            Ok(DailyCounts { before, per_day })
        })
    }

    pub async fn agent_sources(
        &self,
        tenant: TenantId,
        agent_id: &str,
        missing: &str,
    ) -> Result<Vec<(String, i64)>> {
        self.fast.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT COALESCE(source, ?) AS s, COUNT(*) AS n FROM conversations \
                 WHERE tenant_id = ? AND agent_id = ? GROUP BY s ORDER BY n DESC, s ASC",
            )?;
            let mut rows = st.query(params![missing, b(&tenant.0), agent_id])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push((r.get(0)?, r.get(1)?));
            }
            Ok(out)
        })
    }
}
