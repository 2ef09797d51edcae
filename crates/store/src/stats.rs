//! Aggregates for dashboards and reports, computed by the database (one query each), never by
//! downloading conversations.

use std::collections::HashMap;

use confab_core::Status;
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

    /// Folds the summary's pending counts now: when it returns, every count committed before
    /// the call is in its group's single row and emptied groups are gone. PostgreSQL keeps them
    /// as insert-only deltas (migration 0002) that a background task folds every second;
    /// SQLite's counters are exact in place, so there it does nothing. For tests, which compare
    /// whole tables before and after.
    #[doc(hidden)]
    pub async fn compact_summary(&self) -> Result<()> {
        match &*self.backend {
            crate::Backend::Sqlite(_) => Ok(()),
            crate::Backend::Postgres(b) => b.compact_summary().await,
        }
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

/// One row of the summary's single scan: the tenant's conversations grouped by status, source
/// and agent. Each backend runs that one `GROUP BY`; [`Summary::fold`] turns the rows into every
/// figure, so the grouping and ordering rules live here once.
pub(crate) struct SummaryGroup {
    pub status: Status,
    pub source: Option<String>,
    pub agent: Option<String>,
    pub conversations: i64,
    pub messages: i64,
    pub last_24h: i64,
    pub last_7d: i64,
}

impl Summary {
    pub(crate) fn fold(groups: impl IntoIterator<Item = SummaryGroup>) -> Summary {
        let mut sum = Summary {
            conversations: 0,
            messages: 0,
            last_24h: 0,
            last_7d: 0,
            by_status: Status::ALL.iter().map(|s| (*s, 0)).collect(),
            by_source: Vec::new(),
            by_agent: Vec::new(),
        };
        let mut sources: HashMap<Option<String>, (i64, i64)> = HashMap::new();
        let mut agents: HashMap<Option<String>, (i64, i64)> = HashMap::new();
        for g in groups {
            sum.conversations += g.conversations;
            sum.messages += g.messages;
            sum.last_24h += g.last_24h;
            sum.last_7d += g.last_7d;
            if let Some(e) = sum.by_status.iter_mut().find(|(k, _)| *k == g.status) {
                e.1 += g.conversations;
            }
            for (map, key) in [(&mut sources, g.source), (&mut agents, g.agent)] {
                let e = map.entry(key).or_default();
                e.0 += g.conversations;
                e.1 += g.messages;
            }
        }
        sum.by_source = ranked(sources);
        sum.by_agent = ranked(agents);
        sum
    }
}

/// Groups largest first, then by key with "unset" first.
fn ranked(map: HashMap<Option<String>, (i64, i64)>) -> Vec<GroupCount> {
    let mut v: Vec<GroupCount> = map
        .into_iter()
        .map(|(key, (conversations, messages))| GroupCount {
            key,
            conversations,
            messages,
        })
        .collect();
    v.sort_by(|a, b| {
        b.conversations
            .cmp(&a.conversations)
            .then_with(|| a.key.cmp(&b.key))
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(status: Status, source: Option<&str>, agent: Option<&str>, n: i64) -> SummaryGroup {
        SummaryGroup {
            status,
            source: source.map(str::to_owned),
            agent: agent.map(str::to_owned),
            conversations: n,
            messages: 10 * n,
            last_24h: n / 2,
            last_7d: n,
        }
    }

    #[test]
    fn fold_totals_every_figure_and_orders_groups_largest_first_unset_first_on_ties() {
        let s = Summary::fold([
            g(Status::Active, Some("web"), Some("a"), 2),
            g(Status::Completed, Some("web"), None, 3),
            g(Status::Completed, None, Some("a"), 5),
            g(Status::Active, Some("api"), Some("b"), 5),
        ]);
        assert_eq!(
            (s.conversations, s.messages, s.last_24h, s.last_7d),
            (15, 150, 6, 15)
        );
        let status = |st| s.by_status.iter().find(|(k, _)| *k == st).unwrap().1;
        assert_eq!((status(Status::Active), status(Status::Completed)), (7, 8));
        assert_eq!(
            s.by_status.len(),
            Status::ALL.len(),
            "every status is listed"
        );
        let keys = |v: &[GroupCount]| {
            v.iter()
                .map(|c| (c.key.clone(), c.conversations, c.messages))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(&s.by_source),
            vec![
                (None, 5, 50),
                (Some("api".into()), 5, 50),
                (Some("web".into()), 5, 50)
            ]
        );
        assert_eq!(
            keys(&s.by_agent),
            vec![
                (Some("a".into()), 7, 70),
                (Some("b".into()), 5, 50),
                (None, 3, 30)
            ]
        );
    }
}
