//! The built-in analyzer: insights from a conversation's messages with no network and no
//! model. Sentiment is VADER per message, aggregated with more weight on the user and on the
//! end of the conversation; topics are YAKE-style keyphrases; the summary is TextRank over
//! sentences; completion and issues are documented rules. Pure functions: the server's worker
//! only loads messages and stores what comes out.

pub mod heuristics;
pub mod keywords;
pub mod llm;
pub mod summary;
pub mod text;
pub mod vader;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Insights, Issue, Message, Role, Sentiment};

/// The `analyzer` value of built-in results.
pub const BUILTIN: &str = "builtin";
/// At most this many topics.
pub const MAX_TOPICS: usize = 5;
/// A label other than neutral needs at least this much aggregate score (VADER's own cut-off).
pub const LABEL_THRESHOLD: f64 = 0.05;
/// User messages at or beyond ±this count as strongly felt (for `mixed`).
const STRONG: f64 = 0.5;
/// `mixed` only when the aggregate stays this close to zero: strong feelings both ways that
/// cancel out, not a clear arc from angry to happy.
const MIXED_BAND: f64 = 0.35;
/// The summary ranks at most this many sentences (TextRank is quadratic); longer conversations
/// are sampled evenly, which keeps their opening and their end.
const MAX_SUMMARY_SENTENCES: usize = 150;
/// Messages with more sentences than this are scored sentence by sentence and averaged:
/// VADER's compound saturates towards ±1 on long text.
const WHOLE_MESSAGE_SENTENCES: usize = 3;

/// One user or assistant turn, as the analyzers see it.
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    /// Speaker (user or assistant).
    pub role: Role,
    /// Text.
    pub content: &'a str,
    /// Time to produce it, when known.
    pub latency_ms: Option<i64>,
}

/// The turns worth analysing: user and assistant messages with text, in order. System prompts
/// and tool output say nothing about how the conversation went.
pub fn turns(messages: &[Message]) -> Vec<Turn<'_>> {
    messages
        .iter()
        .filter(|m| matches!(m.role, Role::User | Role::Assistant))
        .filter(|m| !m.content.trim().is_empty())
        .map(|m| Turn {
            role: m.role,
            content: &m.content,
            latency_ms: m.latency_ms,
        })
        .collect()
}

/// What an analyzer concludes, before it is tied to a conversation and a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Label.
    pub sentiment: Sentiment,
    /// In [-1, 1].
    pub sentiment_score: f64,
    /// Whether the user got what they came for.
    pub task_completed: bool,
    /// At most [`MAX_TOPICS`] keyphrases.
    pub topics: Vec<String>,
    /// At most three sentences, 400 characters.
    pub summary: String,
    /// Problems noticed.
    pub issues: Vec<Issue>,
}

impl Analysis {
    /// Ties the analysis to its conversation.
    pub fn into_insights(
        self,
        conversation_id: Uuid,
        analyzer: impl Into<String>,
        created_at: OffsetDateTime,
    ) -> Insights {
        Insights {
            conversation_id,
            sentiment: self.sentiment,
            sentiment_score: self.sentiment_score,
            task_completed: self.task_completed,
            topics: self.topics,
            summary: self.summary,
            issues: self.issues,
            analyzer: analyzer.into(),
            created_at,
        }
    }
}

/// Runs the built-in analyzer over a conversation's messages (in seq order).
pub fn analyze(messages: &[Message]) -> Analysis {
    let turns = turns(messages);
    let scores: Vec<f64> = turns.iter().map(|t| message_score(t.content)).collect();
    let (sentiment, sentiment_score) = aggregate(&turns, &scores);
    let issues = heuristics::issues(&turns, &scores);
    let task_completed = heuristics::task_completed(&turns, &scores, &issues);
    let all_text = turns
        .iter()
        .map(|t| t.content)
        .collect::<Vec<_>>()
        .join("\n");
    Analysis {
        sentiment,
        sentiment_score,
        task_completed,
        topics: keywords::keyphrases(&all_text, MAX_TOPICS),
        summary: summarize(&turns),
        issues,
    }
}

/// One message's compound score (see [`WHOLE_MESSAGE_SENTENCES`]).
pub fn message_score(content: &str) -> f64 {
    let sents = text::sentences(content);
    if sents.len() <= WHOLE_MESSAGE_SENTENCES {
        return vader::compound(content);
    }
    sents.iter().map(|s| vader::compound(s)).sum::<f64>() / sents.len() as f64
}

/// Weighted mean of the turn scores (user ×2; the last turn twice the first) and its label.
pub fn aggregate(turns: &[Turn<'_>], scores: &[f64]) -> (Sentiment, f64) {
    let n = turns.len();
    if n == 0 {
        return (Sentiment::Neutral, 0.0);
    }
    let (mut num, mut den) = (0.0, 0.0);
    for (i, (t, s)) in turns.iter().zip(scores).enumerate() {
        let role = if t.role == Role::User { 2.0 } else { 1.0 };
        let pos = if n > 1 {
            1.0 + i as f64 / (n - 1) as f64
        } else {
            1.0
        };
        num += role * pos * s;
        den += role * pos;
    }
    let score = (num / den).clamp(-1.0, 1.0);
    let user = |f: fn(f64) -> bool| {
        turns
            .iter()
            .zip(scores)
            .any(|(t, s)| t.role == Role::User && f(*s))
    };
    let label = if user(|s| s >= STRONG) && user(|s| s <= -STRONG) && score.abs() < MIXED_BAND {
        Sentiment::Mixed
    } else if score >= LABEL_THRESHOLD {
        Sentiment::Positive
    } else if score <= -LABEL_THRESHOLD {
        Sentiment::Negative
    } else {
        Sentiment::Neutral
    };
    // Four decimals, like VADER: more digits would be noise.
    (label, (score * 10_000.0).round() / 10_000.0)
}

fn summarize(turns: &[Turn<'_>]) -> String {
    let first_user = turns.iter().position(|t| t.role == Role::User);
    let mut cands: Vec<summary::Candidate<'_>> = Vec::new();
    for (i, t) in turns.iter().enumerate() {
        // The user's opening message usually states the request: it gets a stronger prior.
        let prior = if Some(i) == first_user { 2.0 } else { 1.0 };
        for s in text::sentences(t.content) {
            cands.push(summary::Candidate { text: s, prior });
        }
    }
    if cands.len() > MAX_SUMMARY_SENTENCES {
        let step = cands.len() as f64 / MAX_SUMMARY_SENTENCES as f64;
        cands = (0..MAX_SUMMARY_SENTENCES)
            .map(|k| cands[((k as f64 * step) as usize).min(cands.len() - 1)].clone())
            .collect();
    }
    summary::summarize(&cands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: i64, role: Role, content: &str) -> Message {
        Message {
            id: Uuid::now_v7(),
            conversation_id: Uuid::nil(),
            seq,
            role,
            content: content.to_owned(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            model: None,
            tokens: None,
            prompt_tokens: None,
            completion_tokens: None,
            latency_ms: None,
            tool_calls: None,
            metadata: None,
            source: None,
            is_trigger: false,
        }
    }

    fn convo(v: &[(Role, &str)]) -> Vec<Message> {
        v.iter()
            .enumerate()
            .map(|(i, (r, c))| msg(i as i64, *r, c))
            .collect()
    }

    #[test]
    fn a_happy_support_chat() {
        let m = convo(&[
            (Role::System, "You are a terrible, awful, horrible bot."),
            (
                Role::User,
                "Hi, I need to change the shipping address on order 5521.",
            ),
            (
                Role::Assistant,
                "Sure, I have updated the shipping address on order 5521.",
            ),
            (Role::User, "Perfect, thank you so much! Great service."),
        ]);
        let a = analyze(&m);
        assert_eq!(a.sentiment, Sentiment::Positive, "{a:?}");
        assert!(a.sentiment_score > 0.2 && a.sentiment_score <= 1.0);
        assert!(a.task_completed);
        assert!(a.issues.is_empty(), "{:?}", a.issues);
        assert!(
            a.topics.iter().any(|t| t.contains("shipping address")),
            "{:?}",
            a.topics
        );
        assert!(a.topics.len() <= MAX_TOPICS);
        assert!(!a.summary.is_empty() && a.summary.chars().count() <= summary::MAX_CHARS);
        // The system prompt's words never reach the analysis.
        assert!(!a.summary.contains("terrible"));
    }

    #[test]
    fn an_angry_unresolved_chat() {
        let m = convo(&[
            (Role::User, "My internet has been down for three days."),
            (
                Role::Assistant,
                "I'm sorry to hear that. Have you restarted the router?",
            ),
            (
                Role::User,
                "Yes, twice. This is useless and I am really angry. Get me a human!",
            ),
        ]);
        let a = analyze(&m);
        assert_eq!(a.sentiment, Sentiment::Negative, "{a:?}");
        assert!(!a.task_completed);
        let codes: Vec<&str> = a.issues.iter().map(|i| i.code.as_str()).collect();
        assert!(
            codes.contains(&"user_frustration") && codes.contains(&"escalation_requested"),
            "{codes:?}"
        );
    }

    #[test]
    fn weights_favour_the_user_and_the_end() {
        let t = |role, content| Turn {
            role,
            content,
            latency_ms: None,
        };
        let turns = [
            t(Role::User, "a"),
            t(Role::Assistant, "b"),
            t(Role::User, "c"),
        ];
        let (_, late_good) = aggregate(&turns, &[-0.8, 0.0, 0.8]);
        assert!(late_good > 0.0, "the end weighs more: {late_good}");
        let (_, user_good) = aggregate(&turns[..2], &[0.6, -0.6]);
        // User weight 2 at position 1 vs assistant weight 1 at position 2: equal, so zero.
        assert!(user_good.abs() < 1e-9);
        let (label, _) = aggregate(&turns, &[0.9, 0.0, -0.7]);
        assert_eq!(label, Sentiment::Mixed);
        assert_eq!(aggregate(&[], &[]), (Sentiment::Neutral, 0.0));
    }

    #[test]
    fn empty_and_tool_only_conversations() {
        let a = analyze(&[]);
        assert_eq!(
            (a.sentiment, a.sentiment_score, a.summary.as_str()),
            (Sentiment::Neutral, 0.0, "")
        );
        assert!(a.topics.is_empty());
        let m = convo(&[(Role::Tool, "{\"ok\":true}")]);
        assert_eq!(analyze(&m).sentiment, Sentiment::Neutral);
    }
}
