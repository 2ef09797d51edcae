//! Reads behind Sensay's replica routes: replicas, the lightweight role list that mentions are
//! computed from, pages of messages and conversations around a UUID cursor, and the aggregate
//! conversation analytics. The rules (grouping, paging, series) live in the core.

use confab_core::seek::{Seek, SeqWindow};
use confab_core::{Conversation, Message, Role};
use uuid::Uuid;

use crate::{Result, Store, TenantId};

/// Conversation counts of one agent for a day-by-day series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCounts {
    /// Created before the window.
    pub before: i64,
    /// (day index from the window start, conversations created that day), days with any.
    pub per_day: Vec<(i64, i64)>,
}

impl Store {
    /// Whether the tenant has this agent (a Sensay replica exists once a conversation used it).
    pub async fn agent_exists(&self, tenant: &TenantId, agent_id: &str) -> Result<bool> {
        dispatch!(self, b => b.agent_exists(*tenant, agent_id).await)
    }

    /// Every message's `(seq, role)` in seq order, for views computed over the whole
    /// conversation (mentions); `NotFound` when the conversation does not exist.
    pub async fn message_roles(
        &self,
        tenant: &TenantId,
        conversation: Uuid,
    ) -> Result<Vec<(i64, Role)>> {
        dispatch!(self, b => b.message_roles(*tenant, conversation).await)
    }

    /// The messages with these seqs, in seq order.
    pub async fn messages_at(
        &self,
        tenant: &TenantId,
        conversation: Uuid,
        seqs: &[i64],
    ) -> Result<Vec<Message>> {
        dispatch!(self, b => b.messages_at(*tenant, conversation, seqs).await)
    }

    /// The messages of `roles` inside a window, newest first. With `agent`, the conversation
    /// must be that agent's: another agent's is `NotFound`, like a missing one, and the check
    /// is part of the page's own query (a Sensay page needs no lookup of its own before it).
    pub async fn messages_window(
        &self,
        tenant: &TenantId,
        conversation: Uuid,
        agent: Option<&str>,
        window: SeqWindow,
        roles: &[Role],
    ) -> Result<Vec<Message>> {
        dispatch!(self, b => b.messages_window(*tenant, conversation, agent, window, roles).await)
    }

    /// An agent's conversations newest first (created_at, then id): the `limit` nearest before
    /// or after the cursor conversation, or the newest.
    pub async fn agent_conversations(
        &self,
        tenant: &TenantId,
        agent_id: &str,
        seek: Option<Seek<&Conversation>>,
        limit: i64,
    ) -> Result<Vec<Conversation>> {
        dispatch!(self, b => b.agent_conversations(*tenant, agent_id, seek, limit).await)
    }

    /// How many of an agent's conversations were created before `start_us`, and per day from
    /// it until `end_us` (microseconds; days of 24 hours from `start_us`).
    pub async fn agent_daily_counts(
        &self,
        tenant: &TenantId,
        agent_id: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<DailyCounts> {
        dispatch!(self, b => b.agent_daily_counts(*tenant, agent_id, start_us, end_us).await)
    }

    /// An agent's conversations per source, largest first, then by name; conversations without
    /// a source count under `missing`.
    pub async fn agent_sources(
        &self,
        tenant: &TenantId,
        agent_id: &str,
        missing: &str,
    ) -> Result<Vec<(String, i64)>> {
        dispatch!(self, b => b.agent_sources(*tenant, agent_id, missing).await)
    }
}
