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

/// Position in a search result list. Relevance pages are slices of one ranked window frozen at
/// the first page (`snapshot` = the newest message id then), so later writes never shift them;
/// recency pages continue below the last row seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchCursor {
    /// Ranked: rows ≤ `snapshot`, skip `offset`.
    Ranked {
        /// Largest row number the first page could see.
        snapshot: i64,
        /// Rows already shown.
        offset: i64,
    },
    /// Newest first: rows < `before`.
    Recent {
        /// Row number of the last item seen.
        before: i64,
    },
}

impl SearchCursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        match self {
            SearchCursor::Ranked { snapshot, offset } => {
                encode(format!("s1:r:{snapshot}:{offset}"))
            }
            SearchCursor::Recent { before } => encode(format!("s1:n:{before}")),
        }
    }

    /// Parses the opaque form; `None` for anything else.
    pub fn decode(s: &str) -> Option<Self> {
        let p = decode(s, "s1")?;
        let num = |i: usize| p.get(i)?.parse::<i64>().ok().filter(|n| *n >= 0);
        match (p.first()?.as_str(), p.len()) {
            ("r", 3) => Some(SearchCursor::Ranked {
                snapshot: num(1)?,
                offset: num(2)?,
            }),
            ("n", 2) => Some(SearchCursor::Recent { before: num(1)? }),
            _ => None,
        }
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
        for s in [
            SearchCursor::Ranked {
                snapshot: 9,
                offset: 40,
            },
            SearchCursor::Recent { before: 7 },
        ] {
            assert_eq!(SearchCursor::decode(&s.encode()), Some(s));
        }
        assert_eq!(SearchCursor::decode(&m.encode()), None);
    }

    proptest! {
        #[test]
        fn decoding_never_panics(s in ".*") {
            let _ = ConversationCursor::decode(&s);
            let _ = MessageCursor::decode(&s);
            let _ = SearchCursor::decode(&s);
        }
    }
}
