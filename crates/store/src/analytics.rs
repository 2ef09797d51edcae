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

impl InsightsGroup {
    /// A group from its aggregate columns: the count, the four sentiment counts (`None`, an
    /// empty group's sum, is zero), and the two means, reported to four decimals.
    pub(crate) fn from_aggregates(
        conversations: i64,
        [positive, neutral, negative, mixed]: [Option<i64>; 4],
        average_sentiment_score: Option<f64>,
        completion_rate: Option<f64>,
    ) -> InsightsGroup {
        let four_decimals = |v: f64| (v * 10_000.0).round() / 10_000.0;
        InsightsGroup {
            conversations,
            sentiment: SentimentCounts {
                positive: positive.unwrap_or(0),
                neutral: neutral.unwrap_or(0),
                negative: negative.unwrap_or(0),
                mixed: mixed.unwrap_or(0),
            },
            average_sentiment_score: average_sentiment_score.map(four_decimals),
            completion_rate: completion_rate.map(four_decimals),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_counts_missing_sums_as_zero_and_gives_means_to_four_decimals() {
        let g = InsightsGroup::from_aggregates(
            3,
            [Some(2), None, Some(1), None],
            Some(0.123_456),
            Some(2.0 / 3.0),
        );
        assert_eq!(g.conversations, 3);
        assert_eq!(
            g.sentiment,
            SentimentCounts {
                positive: 2,
                neutral: 0,
                negative: 1,
                mixed: 0
            }
        );
        assert_eq!(g.average_sentiment_score, Some(0.1235));
        assert_eq!(g.completion_rate, Some(0.6667));
        let empty = InsightsGroup::from_aggregates(0, [None; 4], None, None);
        assert_eq!(empty, InsightsGroup::default());
    }
}
