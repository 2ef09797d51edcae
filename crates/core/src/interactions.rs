//! The interactions view (Convai chat-history details): a conversation told as exchanges, each
//! one user turn followed by the character's replies to it.
//!
//! Convai's model is "the user says something, the character answers", so a user message always
//! opens a new interaction, even when the previous one got no reply: an interaction holds at most
//! one `User` line and it comes first. Replies before any user message (a character that greets
//! first) form a leading `Character`-only interaction rather than being dropped or glued to the
//! next user turn, which would misplace them in time. System and tool messages are plumbing the
//! end user never saw, so they are not shown.

use time::OffsetDateTime;

use crate::model::{Message, Role};

/// Who says a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// The end user.
    User,
    /// The character (an assistant message).
    Character,
}

impl Speaker {
    /// Convai's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::User => "User",
            Speaker::Character => "Character",
        }
    }

    /// The speaker of a shown role; `None` for roles the view hides.
    pub fn of(role: Role) -> Option<Speaker> {
        match role {
            Role::User => Some(Speaker::User),
            Role::Assistant => Some(Speaker::Character),
            Role::System | Role::Tool => None,
        }
    }
}

/// One line of an interaction: a stored message and who said it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    /// User or Character.
    pub speaker: Speaker,
    /// The message shown.
    pub message: &'a Message,
}

/// One exchange: at most one user line, first, then the character's replies.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction<'a> {
    /// Its first message's time (never empty, so always defined).
    pub timestamp: OffsetDateTime,
    /// The lines, in conversation order; never empty.
    pub lines: Vec<Line<'a>>,
    /// True when the user line was sent as a trigger (false without a user line).
    pub is_trigger_input: bool,
}

/// Groups `messages` (in `seq` order, as the store lists them) into interactions.
pub fn interactions(messages: &[Message]) -> Vec<Interaction<'_>> {
    let mut out: Vec<Interaction<'_>> = Vec::new();
    for m in messages {
        let Some(speaker) = Speaker::of(m.role) else {
            continue;
        };
        let line = Line {
            speaker,
            message: m,
        };
        match (speaker, out.last_mut()) {
            (Speaker::Character, Some(current)) => current.lines.push(line),
            (Speaker::Character, None) => out.push(Interaction {
                timestamp: m.created_at,
                lines: vec![line],
                is_trigger_input: false,
            }),
            (Speaker::User, _) => out.push(Interaction {
                timestamp: m.created_at,
                lines: vec![line],
                is_trigger_input: m.is_trigger,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timefmt::from_micros;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn msg(seq: i64, role: Role, trigger: bool) -> Message {
        Message {
            id: Uuid::from_u128(seq as u128 + 1),
            conversation_id: Uuid::nil(),
            seq,
            role,
            content: format!("{role} {seq}"),
            created_at: from_micros(1_700_000_000_000_000 + seq * 1_000_003),
            model: None,
            tokens: None,
            prompt_tokens: None,
            completion_tokens: None,
            latency_ms: None,
            tool_calls: None,
            metadata: None,
            source: None,
            is_trigger: trigger,
        }
    }

    fn msgs(roles: &[Role]) -> Vec<Message> {
        roles
            .iter()
            .enumerate()
            .map(|(i, r)| msg(i as i64, *r, false))
            .collect()
    }

    fn shape(v: &[Interaction<'_>]) -> Vec<Vec<(Speaker, i64)>> {
        v.iter()
            .map(|i| i.lines.iter().map(|l| (l.speaker, l.message.seq)).collect())
            .collect()
    }

    #[test]
    fn a_greeting_opens_a_character_only_interaction() {
        use Role::*;
        use Speaker::{Character as C, User as U};
        let m = msgs(&[
            System, Assistant, User, Tool, Assistant, Assistant, User, User,
        ]);
        let v = interactions(&m);
        assert_eq!(
            shape(&v),
            vec![
                vec![(C, 1)],
                vec![(U, 2), (C, 4), (C, 5)],
                vec![(U, 6)],
                vec![(U, 7)],
            ]
        );
        assert_eq!(v[1].timestamp, m[2].created_at);
        assert!(interactions(&msgs(&[System, Tool])).is_empty());
    }

    #[test]
    fn trigger_flag_comes_from_the_user_line() {
        let m = vec![
            msg(0, Role::User, true),
            msg(1, Role::Assistant, true),
            msg(2, Role::User, false),
        ];
        let v = interactions(&m);
        assert!(v[0].is_trigger_input);
        assert!(!v[1].is_trigger_input);
    }

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![
            Just(Role::User),
            Just(Role::Assistant),
            Just(Role::System),
            Just(Role::Tool)
        ]
    }

    proptest! {
        #[test]
        fn every_shown_message_appears_once_in_order(
            spec in prop::collection::vec((role(), any::<bool>()), 0..60)
        ) {
            let m: Vec<Message> = spec
                .iter()
                .enumerate()
                .map(|(i, (r, t))| msg(i as i64, *r, *t))
                .collect();
            let v = interactions(&m);

            let shown: Vec<Uuid> = m
                .iter()
                .filter(|x| matches!(x.role, Role::User | Role::Assistant))
                .map(|x| x.id)
                .collect();
            let flat: Vec<Uuid> = v.iter().flat_map(|i| i.lines.iter().map(|l| l.message.id)).collect();
            prop_assert_eq!(flat, shown);

            let users = m.iter().filter(|x| x.role == Role::User).count();
            let leading_reply = m
                .iter()
                .find(|x| matches!(x.role, Role::User | Role::Assistant))
                .is_some_and(|x| x.role == Role::Assistant);
            // Replies join the user turn before them: no more interactions than that needs.
            prop_assert_eq!(v.len(), users + usize::from(leading_reply));

            for (k, i) in v.iter().enumerate() {
                prop_assert!(!i.lines.is_empty());
                let user_at: Vec<usize> = i
                    .lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.speaker == Speaker::User)
                    .map(|(n, _)| n)
                    .collect();
                prop_assert!(user_at.is_empty() || user_at == vec![0]);
                prop_assert!(k == 0 || user_at == vec![0], "only the first may lack a user line");
                for l in &i.lines {
                    prop_assert_eq!(Some(l.speaker), Speaker::of(l.message.role));
                }
                prop_assert_eq!(i.timestamp, i.lines[0].message.created_at);
                let first = i.lines[0].message;
                prop_assert_eq!(i.is_trigger_input, first.role == Role::User && first.is_trigger);
            }
        }
    }
}
