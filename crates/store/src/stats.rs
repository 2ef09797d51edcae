//! Aggregates for dashboards and reports, computed by the database (one query each), never by
//! downloading conversations.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, Store, TenantId};

/// Conversations and messages of one group (a source or an agent; `None` for unset).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupCount {
    /// The source or agent; null when unset.
    pub key: Option<String>,
    /// Conversations in the group.
    pub conversations: i64,
    /// Messages in those conversations.
    pub messages: i64,
}

/// The tenant-wide dashboard numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// All conversations.
    pub conversations: i64,
    /// All messages.
    pub messages: i64,
    /// Conversations created in the last 24 hours.
    pub last_24h: i64,
    /// Conversations created in the last 7 days.
    pub last_7d: i64,
    /// Count per status, every status listed.
    pub by_status: Vec<(confab_core::Status, i64)>,
    /// Per source, largest first.
    pub by_source: Vec<GroupCount>,
    /// Per agent, largest first.
    pub by_agent: Vec<GroupCount>,
}

impl Summary {
    /// messages / conversations, 0 when there are none.
    pub fn avg_messages_per_conversation(&self) -> f64 {
        if self.conversations == 0 {
            0.0
        } else {
            self.messages as f64 / self.conversations as f64
        }
    }
}

/// One UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayCount {
    /// Midnight UTC starting the day.
    pub day: time::Date,
    /// Conversations created that day.
    pub conversations: i64,
    /// Messages created that day.
    pub messages: i64,
}

/// Seed 000's per-conversation report.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationReport {
    /// Messages in all.
    pub total_messages: i64,
    /// Per role, in `Role::ALL` order.
    pub by_role: Vec<(confab_core::Role, i64)>,
    /// Mean content length in characters (0 without messages).
    pub avg_message_length: f64,
    /// First message's time (by seq).
    pub first_message_at: Option<OffsetDateTime>,
    /// Last message's time (by seq).
    pub last_message_at: Option<OffsetDateTime>,
}

impl ConversationReport {
    /// Last minus first message time, in milliseconds (0 without messages).
    pub fn duration_ms(&self) -> i64 {
        match (self.first_message_at, self.last_message_at) {
            (Some(a), Some(b)) => (b - a).whole_milliseconds() as i64,
            _ => 0,
        }
    }
}

impl Store {
    /// Totals, recent activity and breakdowns; "recent" is relative to `now`.
    pub async fn summary(&self, tenant: &TenantId, now: OffsetDateTime) -> Result<Summary> {
        dispatch!(self, b => b.summary(*tenant, now).await)
    }

    /// `days` points, oldest first, the last one being `now`'s UTC day.
    pub async fn daily(
        &self,
        tenant: &TenantId,
        days: u32,
        now: OffsetDateTime,
    ) -> Result<Vec<DayCount>> {
        dispatch!(self, b => b.daily(*tenant, days, now).await)
    }

    /// The report of one conversation; `NotFound` when it does not exist for the tenant.
    pub async fn conversation_report(
        &self,
        tenant: &TenantId,
        id: Uuid,
    ) -> Result<ConversationReport> {
        dispatch!(self, b => b.conversation_report(*tenant, id).await)
    }
}
