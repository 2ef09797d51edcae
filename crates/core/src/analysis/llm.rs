//! The rules of the optional LLM analyzer that do not need a network: what we ask a
//! chat-completions model, and what we accept back. The reply must be the insights JSON shape
//! (seed 003's field names, camelCase; snake_case is accepted too); anything else is refused so
//! the caller falls back to the built-in result. Limits are enforced here, not trusted to the
//! model: at most five topics, a summary of at most 400 characters, a score in [-1, 1].

use serde_json::Value;

use super::{Analysis, MAX_TOPICS, summary};
use crate::{Issue, Message, Role, Sentiment};

/// Characters of transcript sent at most; longer conversations keep their start and end.
pub const MAX_TRANSCRIPT_CHARS: usize = 24_000;

/// The system message: the task and the exact shape wanted.
pub const SYSTEM_PROMPT: &str = "You analyse a conversation between a user and an assistant. \
Answer with one JSON object and nothing else, with exactly these fields: \
\"sentiment\": one of \"positive\", \"neutral\", \"negative\", \"mixed\" (the user's overall tone); \
\"sentimentScore\": a number from -1 to 1; \
\"taskCompleted\": true if the user got what they came for, else false; \
\"topics\": up to 5 short keyphrases; \
\"summary\": at most three sentences and 400 characters; \
\"issues\": a list of objects {\"code\": snake_case identifier, \"text\": short explanation}, \
for example unresolved_question, user_frustration, assistant_refusal, escalation_requested.";

/// The transcript as one user message: `User: …` / `Assistant: …` lines.
pub fn transcript(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        let label = match m.role {
            Role::User => "User",
            Role::Assistant => "Assistant",
            Role::System | Role::Tool => continue,
        };
        if m.content.trim().is_empty() {
            continue;
        }
        out.push_str(label);
        out.push_str(": ");
        out.push_str(m.content.trim());
        out.push('\n');
    }
    let n = out.chars().count();
    if n <= MAX_TRANSCRIPT_CHARS {
        return out;
    }
    let half = MAX_TRANSCRIPT_CHARS / 2;
    let head: String = out.chars().take(half).collect();
    let tail: String = out.chars().skip(n - half).collect();
    format!("{head}\n[… middle of the conversation omitted …]\n{tail}")
}

fn field<'a>(o: &'a serde_json::Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel).or_else(|| o.get(snake))
}

/// Strips a Markdown code fence some models wrap JSON in.
fn unfence(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

/// Validates a model's reply; `Err` names what was wrong.
pub fn parse_reply(content: &str) -> Result<Analysis, String> {
    let v: Value =
        serde_json::from_str(unfence(content)).map_err(|e| format!("reply is not JSON: {e}"))?;
    let o = v.as_object().ok_or("reply is not a JSON object")?;
    let sentiment: Sentiment = field(o, "sentiment", "sentiment")
        .and_then(Value::as_str)
        .ok_or("sentiment is missing or not a string")?
        .parse()
        .map_err(|e| format!("sentiment: {e}"))?;
    let score = field(o, "sentimentScore", "sentiment_score")
        .and_then(Value::as_f64)
        .ok_or("sentimentScore is missing or not a number")?;
    if !(-1.0..=1.0).contains(&score) {
        return Err(format!("sentimentScore {score} is outside [-1, 1]"));
    }
    let task_completed = field(o, "taskCompleted", "task_completed")
        .and_then(Value::as_bool)
        .ok_or("taskCompleted is missing or not a boolean")?;
    let topics_v = field(o, "topics", "topics")
        .and_then(Value::as_array)
        .ok_or("topics is missing or not an array")?;
    let mut topics: Vec<String> = Vec::new();
    for t in topics_v {
        let t = t
            .as_str()
            .ok_or("topics must be strings")?
            .trim()
            .to_lowercase();
        if !t.is_empty() && !topics.contains(&t) && topics.len() < MAX_TOPICS {
            topics.push(t);
        }
    }
    let summary_text = field(o, "summary", "summary")
        .and_then(Value::as_str)
        .ok_or("summary is missing or not a string")?;
    let issues_v = field(o, "issues", "issues")
        .and_then(Value::as_array)
        .ok_or("issues is missing or not an array")?;
    let mut issues = Vec::new();
    for i in issues_v {
        let code = i.get("code").and_then(Value::as_str);
        let text = i.get("text").and_then(Value::as_str);
        match (code, text) {
            (Some(c), Some(t)) if !c.trim().is_empty() => issues.push(Issue {
                code: c.trim().to_owned(),
                text: t.trim().to_owned(),
            }),
            _ => return Err("each issue needs a non-empty code and a text".into()),
        }
    }
    Ok(Analysis {
        sentiment,
        sentiment_score: score,
        task_completed,
        topics,
        summary: summary::truncate(summary_text.trim(), summary::MAX_CHARS),
        issues,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_seed_shape_and_fences() {
        let reply = "```json\n{\"sentiment\":\"positive\",\"sentimentScore\":0.82,\"taskCompleted\":true,\
            \"topics\":[\"Greeting\",\"product inquiry\",\"greeting\",\"a\",\"b\",\"c\",\"d\"],\
            \"summary\":\"User asked about availability.\",\"issues\":[]}\n```";
        let a = parse_reply(reply).unwrap();
        assert_eq!(a.sentiment, Sentiment::Positive);
        assert_eq!(a.topics, vec!["greeting", "product inquiry", "a", "b", "c"]);
        assert!(a.task_completed);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        for bad in [
            "not json",
            "[]",
            r#"{"sentiment":"happy","sentimentScore":0.1,"taskCompleted":true,"topics":[],"summary":"","issues":[]}"#,
            r#"{"sentiment":"positive","sentimentScore":3,"taskCompleted":true,"topics":[],"summary":"","issues":[]}"#,
            r#"{"sentiment":"positive","sentimentScore":0.3,"topics":[],"summary":"","issues":[]}"#,
            r#"{"sentiment":"positive","sentimentScore":0.3,"taskCompleted":true,"topics":[1],"summary":"","issues":[]}"#,
            r#"{"sentiment":"positive","sentimentScore":0.3,"taskCompleted":true,"topics":[],"summary":"","issues":[{"code":""}]}"#,
        ] {
            assert!(parse_reply(bad).is_err(), "accepted {bad}");
        }
    }
}
