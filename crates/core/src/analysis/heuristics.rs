//! Task completion and issues: plain rules over the turns, each documented in docs/insights.md
//! with the reason it exists. They are meant to flag conversations worth a human look, so they
//! prefer clear signals (an explicit request for a person, a question left hanging) over
//! guesses.

use std::collections::HashMap;

use super::Turn;
use super::text::{content_ids, shared};
use crate::{Issue, Role};

/// A reply slower than this is reported (`slow_reply`).
pub const SLOW_REPLY_MS: i64 = 10_000;
/// A user message at or below this compound score counts as frustrated.
pub const FRUSTRATION_SCORE: f64 = -0.5;
/// Two user messages sharing this share of their content words repeat a question.
const REPEAT_JACCARD: f64 = 0.7;

const FRUSTRATION: &[&str] = &[
    "not helpful",
    "useless",
    "doesn't work",
    "does not work",
    "didn't work",
    "did not work",
    "still not",
    "still doesn't",
    "still broken",
    "waste of time",
    "ridiculous",
    "frustrat",
    "annoying",
    "not what i asked",
    "you're not listening",
    "you are not listening",
];
const ESCALATION: &[&str] = &[
    "human",
    "real person",
    "live agent",
    "an agent",
    "representative",
    "supervisor",
    "manager",
    "speak to someone",
    "talk to someone",
    "customer service",
    "call me",
];
const APOLOGY: &[&str] = &["sorry", "apologize", "apologise", "apologies"];
const REFUSAL: &[&str] = &[
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i am not able to",
    "i can't do that",
    "i cannot do that",
    "i'm not allowed",
    "i am not allowed",
    "i can't provide",
    "i cannot provide",
    "i don't have access",
    "i do not have access",
];
const THANKS: &[&str] = &[
    "thank",
    "thx",
    "that worked",
    "that works",
    "it works",
    "works now",
    "perfect",
    "great",
    "awesome",
    "solved",
    "resolved",
    "got it",
    "that helps",
    "that helped",
    "appreciate",
];

#[cfg(test)]
fn has_any(text: &str, phrases: &[&str]) -> bool {
    has_lowered(&lowered(text), phrases)
}

/// `text` as the phrase lists are written: lower case, straight apostrophes.
fn lowered(text: &str) -> String {
    let t = text.to_lowercase();
    if t.contains('\u{2019}') {
        t.replace('\u{2019}', "'")
    } else {
        t
    }
}

/// [`has_any`] on a text already [`lowered`] (each message is lowered once, not once per list).
fn has_lowered(lowered: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| contains_phrase(lowered, p))
}

/// Phrase match on word boundaries ("human" does not match "humanity"); a phrase ending in a
/// stem ("frustrat") matches any continuation.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    let stem = phrase == "frustrat" || phrase == "thank";
    text.match_indices(phrase).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + phrase.len()..].chars().next();
        let bounded = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
        bounded(before) && (stem || bounded(after))
    })
}

fn issue(code: &str, text: impl Into<String>) -> Issue {
    Issue {
        code: code.to_owned(),
        text: text.into(),
    }
}

fn is_question(s: &str) -> bool {
    s.trim_end().ends_with('?')
}

/// The issues in a conversation, in a stable order. `scores` are the turns' compound
/// sentiment scores, index for index.
pub fn issues(turns: &[Turn<'_>], scores: &[f64]) -> Vec<Issue> {
    let mut out = Vec::new();
    let users: Vec<usize> = (0..turns.len())
        .filter(|&i| turns[i].role == Role::User)
        .collect();
    let has_assistant = turns.iter().any(|t| t.role == Role::Assistant);
    if !users.is_empty() && !has_assistant {
        out.push(issue("no_reply", "The user got no reply."));
    }
    if let Some(&last_user) = users.last() {
        let answered = turns[last_user + 1..]
            .iter()
            .any(|t| t.role == Role::Assistant);
        if is_question(turns[last_user].content) && !answered && has_assistant {
            out.push(issue(
                "unresolved_question",
                "The conversation ended on a user question with no answer.",
            ));
        }
    }
    // Every message lowered once for the phrase lists (user and assistant ones differ).
    let low: Vec<String> = turns
        .iter()
        .map(|t| match t.role {
            Role::User | Role::Assistant => lowered(t.content),
            _ => String::new(),
        })
        .collect();
    let frustrated = users
        .iter()
        .filter(|&&i| scores[i] <= FRUSTRATION_SCORE || has_lowered(&low[i], FRUSTRATION))
        .count();
    if frustrated > 0 {
        out.push(issue(
            "user_frustration",
            format!("The user sounded frustrated in {frustrated} message(s)."),
        ));
    }
    if users.iter().any(|&i| has_lowered(&low[i], ESCALATION)) {
        out.push(issue("escalation_requested", "The user asked for a human."));
    }
    let assistant = |p: &[&str]| {
        turns
            .iter()
            .zip(&low)
            .filter(|(t, l)| t.role == Role::Assistant && has_lowered(l, p))
            .count()
    };
    let refusals = assistant(REFUSAL);
    if refusals > 0 {
        out.push(issue(
            "assistant_refusal",
            format!("The assistant declined or could not help {refusals} time(s)."),
        ));
    }
    let apologies = assistant(APOLOGY);
    if apologies > 0 {
        out.push(issue(
            "assistant_apology",
            format!("The assistant apologised {apologies} time(s)."),
        ));
    }
    if let Some(n) = repeated_question(turns, &users) {
        out.push(issue(
            "repeated_question",
            format!("The user repeated a question {n} time(s)."),
        ));
    }
    let slow: Vec<i64> = turns
        .iter()
        .filter(|t| t.role == Role::Assistant)
        .filter_map(|t| t.latency_ms)
        .filter(|&ms| ms > SLOW_REPLY_MS)
        .collect();
    if let Some(max) = slow.iter().max() {
        out.push(issue(
            "slow_reply",
            format!(
                "{} reply(ies) took longer than {} s (slowest {:.1} s).",
                slow.len(),
                SLOW_REPLY_MS / 1000,
                *max as f64 / 1000.0
            ),
        ));
    }
    out
}

/// How many user messages say again what an earlier one said (≥ 3 content words, high
/// overlap): a sign the first answer did not land.
fn repeated_question(turns: &[Turn<'_>], users: &[usize]) -> Option<usize> {
    let mut ids = HashMap::new();
    let bags: Vec<Vec<u32>> = users
        .iter()
        .map(|&i| content_ids(turns[i].content, &mut ids))
        .collect();
    let mut repeats = 0;
    for j in 1..bags.len() {
        if bags[j].len() < 3 {
            continue;
        }
        let again = bags[..j].iter().any(|b| {
            let common = shared(b, &bags[j]);
            let inter = common as f64;
            let union = (b.len() + bags[j].len() - common) as f64;
            union > 0.0 && inter / union >= REPEAT_JACCARD
        });
        if again {
            repeats += 1;
        }
    }
    (repeats > 0).then_some(repeats)
}

/// Issues that mean the user did not get what they came for.
const BLOCKING: &[&str] = &[
    "no_reply",
    "unresolved_question",
    "escalation_requested",
    "assistant_refusal",
];

/// Whether the task looks done: nothing blocking, the user's last word is not negative, and
/// either the user signalled success or the assistant had the last word.
pub fn task_completed(turns: &[Turn<'_>], scores: &[f64], issues: &[Issue]) -> bool {
    if issues.iter().any(|i| BLOCKING.contains(&i.code.as_str())) {
        return false;
    }
    let Some(last_user) = turns.iter().rposition(|t| t.role == Role::User) else {
        // Nobody asked for anything; an assistant-only log is not a failed task.
        return turns.iter().any(|t| t.role == Role::Assistant);
    };
    let low = lowered(turns[last_user].content);
    if scores[last_user] <= -0.3 || has_lowered(&low, FRUSTRATION) {
        return false;
    }
    let thanked = has_lowered(&low, THANKS);
    let assistant_last = turns.iter().rposition(|t| t.role == Role::Assistant) > Some(last_user);
    thanked || assistant_last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(role: Role, content: &str) -> Turn<'_> {
        Turn {
            role,
            content,
            latency_ms: None,
        }
    }

    fn codes(turns: &[Turn<'_>]) -> Vec<String> {
        let scores: Vec<f64> = turns
            .iter()
            .map(|t| super::super::vader::compound(t.content))
            .collect();
        issues(turns, &scores).into_iter().map(|i| i.code).collect()
    }

    #[test]
    fn unresolved_question_and_escalation() {
        let turns = [
            t(Role::User, "My order never arrived."),
            t(Role::Assistant, "Sorry about that, let me check."),
            t(Role::User, "Can I talk to a real person?"),
        ];
        let c = codes(&turns);
        assert!(c.contains(&"unresolved_question".into()), "{c:?}");
        assert!(c.contains(&"escalation_requested".into()), "{c:?}");
        assert!(c.contains(&"assistant_apology".into()), "{c:?}");
        let scores = vec![0.0; 3];
        assert!(!task_completed(&turns, &scores, &issues(&turns, &scores)));
    }

    #[test]
    fn thanked_conversation_is_completed() {
        let turns = [
            t(Role::User, "How do I reset my password?"),
            t(
                Role::Assistant,
                "Use the 'Forgot password' link on the sign-in page.",
            ),
            t(Role::User, "That worked, thanks!"),
        ];
        assert!(codes(&turns).is_empty(), "{:?}", codes(&turns));
        let scores: Vec<f64> = turns
            .iter()
            .map(|t| super::super::vader::compound(t.content))
            .collect();
        assert!(task_completed(&turns, &scores, &[]));
    }

    #[test]
    fn repeats_refusals_slowness_and_word_boundaries() {
        let mut turns = vec![
            t(Role::User, "How do I export my invoices to CSV?"),
            t(Role::Assistant, "I'm unable to access billing exports."),
            t(Role::User, "How can I export invoices to CSV?"),
            t(Role::Assistant, "Please try the reports page."),
        ];
        turns[3].latency_ms = Some(12_500);
        let c = codes(&turns);
        for want in ["repeated_question", "assistant_refusal", "slow_reply"] {
            assert!(c.contains(&want.to_owned()), "{want} missing from {c:?}");
        }
        assert!(!has_any("humanity is great", ESCALATION));
        assert!(has_any("This is SO frustrating", FRUSTRATION));
        assert_eq!(
            codes(&[t(Role::User, "hello?")]),
            vec!["no_reply".to_owned()]
        );
    }
}
