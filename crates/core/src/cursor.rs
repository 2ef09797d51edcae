//! Opaque cursors for keyset pagination: a version tag and the key, base64url-encoded, so
//! clients cannot depend on the layout and a garbage cursor is detected, not guessed at.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

/// Position in a newest-first conversation list: the last item seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationCursor {
    /// created_at of the last item, microseconds.
    pub created_at_us: i64,
    /// id of the last item.
    pub id: Uuid,
}

/// Position in a message list: the seq of the last item seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageCursor {
    /// seq of the last item.
    pub seq: i64,
}

fn encode(s: String) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

fn decode(s: &str, tag: &str) -> Option<Vec<String>> {
    let raw = URL_SAFE_NO_PAD.decode(s.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split(':');
    if parts.next()? != tag {
        return None;
    }
    Some(parts.map(str::to_owned).collect())
}

impl ConversationCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        encode(format!("c1:{}:{}", self.created_at_us, self.id.simple()))
    }

    /// Parses the opaque form; `None` for anything else.
    pub fn decode(s: &str) -> Option<Self> {
        let p = decode(s, "c1")?;
        if p.len() != 2 {
            return None;
        }
        Some(ConversationCursor {
            created_at_us: p[0].parse().ok()?,
            id: Uuid::try_parse(&p[1]).ok()?,
        })
    }
}

impl MessageCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        encode(format!("m1:{}", self.seq))
    }

    /// Parses the opaque form; `None` for anything else.
    pub fn decode(s: &str) -> Option<Self> {
        let p = decode(s, "m1")?;
        if p.len() != 1 {
            return None;
        }
        let seq: i64 = p[0].parse().ok()?;
        (seq >= 0).then_some(MessageCursor { seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let c = ConversationCursor {
            created_at_us: 1_700_000_000_123_456,
            id: Uuid::now_v7(),
        };
        assert_eq!(ConversationCursor::decode(&c.encode()), Some(c));
        let m = MessageCursor { seq: 42 };
        assert_eq!(MessageCursor::decode(&m.encode()), Some(m));
        assert_eq!(MessageCursor::decode(&c.encode()), None);
        assert_eq!(ConversationCursor::decode("garbage!"), None);
    }

    proptest! {
        #[test]
        fn decoding_never_panics(s in ".*") {
            let _ = ConversationCursor::decode(&s);
            let _ = MessageCursor::decode(&s);
        }
    }
}
