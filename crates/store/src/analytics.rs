//! Insights aggregated for dashboards: sentiment distribution, completion rate, top topics,
//! by agent and by day. Computed in the database from the insights rows, tenant-scoped.

use time::OffsetDateTime;

use crate::{Result, Store, TenantId};

/// Which analysed conversations to aggregate; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct InsightsQuery {
    /// Only this agent's.
    pub agent_id: Option<String>,
    /// Conversations created at or after this.
    pub created_after: Option<OffsetDateTime>,
    /// Conversations created before this.
    pub created_before: Option<OffsetDateTime>,
}

/// Counts per sentiment label.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SentimentCounts {
    /// positive
    pub positive: i64,
    /// neutral
    pub neutral: i64,
    /// negative
    pub negative: i64,
    /// mixed
    pub mixed: i64,
}

/// The aggregate of one group (everything, one agent, one day).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct InsightsGroup {
    /// Analysed conversations.
    pub conversations: i64,
    /// By label.
    pub sentiment: SentimentCounts,
    /// Mean sentiment score (`None` when empty).
    pub average_sentiment_score: Option<f64>,
    /// Share with `task_completed` (`None` when empty).
    pub completion_rate: Option<f64>,
}

/// A topic and how many conversations have it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopicCount {
    /// The keyphrase.
    pub topic: String,
    /// Conversations.
    pub count: i64,
}

/// The whole aggregate.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct InsightsSummary {
    /// All matching conversations.
    pub total: InsightsGroup,
    /// Most frequent topics, most common first (ties by name).
    pub top_topics: Vec<TopicCount>,
    /// Per agent (`None`: conversations without one), most conversations first.
    pub by_agent: Vec<(Option<String>, InsightsGroup)>,
    /// Per UTC day of the conversation's creation (`YYYY-MM-DD`), ascending.
    pub by_day: Vec<(String, InsightsGroup)>,
}

/// Topics listed at most.
pub const TOP_TOPICS: i64 = 10;

impl Store {
    /// Aggregates the tenant's insights.
    pub async fn insights_summary(
        &self,
        tenant: &TenantId,
        q: &InsightsQuery,
    ) -> Result<InsightsSummary> {
        dispatch!(self, b => b.insights_summary(*tenant, q).await)
    }
}
