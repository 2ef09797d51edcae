//! Wire types of the insights routes (native: snake_case).

use confab_core::timefmt::rfc3339;
use confab_core::{Insights, Issue, Sentiment};
use confab_store::analytics::{InsightsGroup, InsightsSummary, SentimentCounts, TopicCount};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A conversation's insights.
#[derive(Debug, Serialize, ToSchema)]
pub struct InsightsOut {
    /// The conversation.
    pub conversation_id: Uuid,
    /// Overall tone.
    pub sentiment: Sentiment,
    /// In [-1, 1].
    pub sentiment_score: f64,
    /// Whether the user got what they came for.
    pub task_completed: bool,
    /// Up to five keyphrases.
    pub topics: Vec<String>,
    /// Extractive summary: up to three sentences, 400 characters.
    pub summary: String,
    /// Problems noticed.
    pub issues: Vec<Issue>,
    /// `builtin` or `llm:<model>`.
    pub analyzer: String,
    /// When they were computed (RFC 3339).
    pub created_at: String,
}

impl From<Insights> for InsightsOut {
    fn from(i: Insights) -> Self {
        InsightsOut {
            conversation_id: i.conversation_id,
            sentiment: i.sentiment,
            sentiment_score: i.sentiment_score,
            task_completed: i.task_completed,
            topics: i.topics,
            summary: i.summary,
            issues: i.issues,
            analyzer: i.analyzer,
            created_at: rfc3339(i.created_at),
        }
    }
}

/// A queued (re)analysis.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshOut {
    /// The job that will recompute the insights.
    pub job_id: Uuid,
    /// Always `queued`.
    pub status: &'static str,
}

/// Filters of the insights aggregate.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsParams {
    /// Only this agent's conversations.
    pub agent_id: Option<String>,
    /// Conversations created at or after (RFC 3339).
    pub created_after: Option<String>,
    /// Conversations created before (RFC 3339).
    pub created_before: Option<String>,
}

/// Conversations per sentiment label.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentimentCountsOut {
    /// positive
    pub positive: i64,
    /// neutral
    pub neutral: i64,
    /// negative
    pub negative: i64,
    /// mixed
    pub mixed: i64,
}

impl From<SentimentCounts> for SentimentCountsOut {
    fn from(s: SentimentCounts) -> Self {
        SentimentCountsOut {
            positive: s.positive,
            neutral: s.neutral,
            negative: s.negative,
            mixed: s.mixed,
        }
    }
}

/// Aggregates of one group of analysed conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupOut {
    /// Analysed conversations.
    pub conversations: i64,
    /// Distribution of labels.
    pub sentiment: SentimentCountsOut,
    /// Mean score; null when empty.
    pub average_sentiment_score: Option<f64>,
    /// Share of completed tasks, 0..1; null when empty.
    pub completion_rate: Option<f64>,
}

fn group(g: InsightsGroup) -> GroupOut {
    GroupOut {
        conversations: g.conversations,
        sentiment: g.sentiment.into(),
        average_sentiment_score: g.average_sentiment_score,
        completion_rate: g.completion_rate,
    }
}

/// One agent's aggregates.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentGroupOut {
    /// The agent; null for conversations without one.
    pub agent_id: Option<String>,
    /// Its aggregates.
    #[serde(flatten)]
    pub stats: GroupOut,
}

/// One day's aggregates.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayGroupOut {
    /// UTC day of conversation creation, `YYYY-MM-DD`.
    pub date: String,
    /// Its aggregates.
    #[serde(flatten)]
    pub stats: GroupOut,
}

/// A topic and how many conversations have it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicOut {
    /// Keyphrase.
    pub topic: String,
    /// Conversations.
    pub count: i64,
}

impl From<TopicCount> for TopicOut {
    fn from(t: TopicCount) -> Self {
        TopicOut {
            topic: t.topic,
            count: t.count,
        }
    }
}

/// Insights across conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InsightsAnalyticsOut {
    /// Analysed conversations.
    pub conversations: i64,
    /// Distribution of labels.
    pub sentiment: SentimentCountsOut,
    /// Mean score; null when empty.
    pub average_sentiment_score: Option<f64>,
    /// Share of completed tasks, 0..1; null when empty.
    pub completion_rate: Option<f64>,
    /// Ten most frequent topics.
    pub top_topics: Vec<TopicOut>,
    /// Per agent, most conversations first.
    pub by_agent: Vec<AgentGroupOut>,
    /// Per UTC day of conversation creation, ascending.
    pub by_day: Vec<DayGroupOut>,
}

impl From<InsightsSummary> for InsightsAnalyticsOut {
    fn from(s: InsightsSummary) -> Self {
        let total = group(s.total);
        InsightsAnalyticsOut {
            conversations: total.conversations,
            sentiment: total.sentiment,
            average_sentiment_score: total.average_sentiment_score,
            completion_rate: total.completion_rate,
            top_topics: s.top_topics.into_iter().map(Into::into).collect(),
            by_agent: s
                .by_agent
                .into_iter()
                .map(|(agent_id, g)| AgentGroupOut {
                    agent_id,
                    stats: group(g),
                })
                .collect(),
            by_day: s
                .by_day
                .into_iter()
                .map(|(date, g)| DayGroupOut {
                    date,
                    stats: group(g),
                })
                .collect(),
        }
    }
}
