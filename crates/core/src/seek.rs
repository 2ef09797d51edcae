//! Exclusive "before / after this item" cursors (Sensay's `beforeUUID` / `afterUUID`), and the
//! newest-first message window they select.
//!
//! Pages built with these cursors are always listed newest first: `Before` gives the items
//! nearest before the cursor, `After` the items nearest after it. Only the direction of the walk
//! changes, never the order of a page, so a client can render every page the same way.

use uuid::Uuid;

use crate::error::ValidationError;

/// Where a page starts, relative to one item (never included itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek<T> {
    /// Items older than this one.
    Before(T),
    /// Items newer than this one.
    After(T),
}

impl<T> Seek<T> {
    /// The item the cursor names.
    pub fn key(&self) -> &T {
        match self {
            Seek::Before(k) | Seek::After(k) => k,
        }
    }

    /// A borrowed view.
    pub fn as_ref(&self) -> Seek<&T> {
        match self {
            Seek::Before(k) => Seek::Before(k),
            Seek::After(k) => Seek::After(k),
        }
    }

    /// The same direction around another key (a UUID resolved to a position).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Seek<U> {
        match self {
            Seek::Before(k) => Seek::Before(f(k)),
            Seek::After(k) => Seek::After(f(k)),
        }
    }
}

/// Parses the two optional cursor parameters. Both at once is refused: the page would be
/// ambiguous (which end is the limit counted from?). A malformed UUID names its parameter.
pub fn parse_uuid_seek(
    before: Option<&str>,
    after: Option<&str>,
    before_name: &str,
    after_name: &str,
) -> Result<Option<Seek<Uuid>>, ValidationError> {
    let parse = |name: &str, v: &str| {
        crate::ids::parse_uuid(v)
            .ok_or_else(|| ValidationError::field(name, format!("`{v}` is not a UUID")))
    };
    match (before, after) {
        (Some(_), Some(_)) => Err(ValidationError::field(
            before_name,
            format!("{before_name} and {after_name} cannot be used together"),
        )),
        (Some(b), None) => Ok(Some(Seek::Before(parse(before_name, b)?))),
        (None, Some(a)) => Ok(Some(Seek::After(parse(after_name, a)?))),
        (None, None) => Ok(None),
    }
}

/// The slice of a seq-ordered list a message page reads. A backend runs it as
/// `seq > after AND seq < before ORDER BY seq (DESC when newest_end) LIMIT limit`, then lists
/// the rows newest first; [`SeqWindow::select`] is the same rule over a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqWindow {
    /// Only seq > this.
    pub after_seq: Option<i64>,
    /// Only seq < this.
    pub before_seq: Option<i64>,
    /// Take the `limit` newest of the range (true) or the `limit` oldest (false, for `After`).
    pub newest_end: bool,
    /// At most this many.
    pub limit: i64,
}

impl SeqWindow {
    /// The window for a page of `limit` messages around a cursor already resolved to a seq.
    pub fn new(seek: Option<Seek<i64>>, limit: i64) -> SeqWindow {
        let (after_seq, before_seq, newest_end) = match seek {
            None => (None, None, true),
            Some(Seek::Before(s)) => (None, Some(s), true),
            // The items nearest *after* the cursor are the oldest of what is newer than it.
            Some(Seek::After(s)) => (Some(s), None, false),
        };
        SeqWindow {
            after_seq,
            before_seq,
            newest_end,
            limit,
        }
    }

    /// Applies the window to ascending seqs: the page's seqs, newest first.
    pub fn select(&self, seqs: &[i64]) -> Vec<i64> {
        let inside = seqs
            .iter()
            .copied()
            .filter(|s| self.after_seq.is_none_or(|a| *s > a))
            .filter(|s| self.before_seq.is_none_or(|b| *s < b));
        let n = self.limit.max(0) as usize;
        let mut page: Vec<i64> = if self.newest_end {
            inside.rev().take(n).collect()
        } else {
            inside.take(n).collect()
        };
        if !self.newest_end {
            page.reverse();
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_cursor_parameters() {
        let id = Uuid::now_v7().to_string();
        let p = |b, a| parse_uuid_seek(b, a, "beforeUUID", "afterUUID");
        assert_eq!(p(None, None), Ok(None));
        assert!(matches!(p(Some(&id), None), Ok(Some(Seek::Before(_)))));
        assert!(matches!(p(None, Some(&id)), Ok(Some(Seek::After(_)))));
        let both = p(Some(&id), Some(&id)).unwrap_err();
        assert!(both.to_string().contains("cannot be used together"));
        let bad = p(None, Some("nope")).unwrap_err();
        assert_eq!(bad.errors[0].field, "afterUUID");
    }

    #[test]
    fn window_is_newest_first_and_exclusive() {
        let seqs: Vec<i64> = (0..10).collect();
        assert_eq!(SeqWindow::new(None, 3).select(&seqs), vec![9, 8, 7]);
        assert_eq!(
            SeqWindow::new(Some(Seek::Before(5)), 3).select(&seqs),
            vec![4, 3, 2]
        );
        assert_eq!(
            SeqWindow::new(Some(Seek::After(5)), 3).select(&seqs),
            vec![8, 7, 6]
        );
        assert!(
            SeqWindow::new(Some(Seek::Before(0)), 3)
                .select(&seqs)
                .is_empty()
        );
    }

    proptest! {
        /// Walking back with beforeUUID = the last item of each page visits every message once,
        /// and walking forward with afterUUID = the first item does too.
        #[test]
        fn walks_visit_every_message_once(
            seqs in proptest::collection::btree_set(0i64..2000, 0..300),
            limit in 1i64..=100,
        ) {
            let seqs: Vec<i64> = seqs.into_iter().collect();
            let mut seen = Vec::new();
            let mut page = SeqWindow::new(None, limit).select(&seqs);
            while let Some(last) = page.last().copied() {
                prop_assert!(page.windows(2).all(|w| w[0] > w[1]));
                seen.extend(page.iter().copied());
                page = SeqWindow::new(Some(Seek::Before(last)), limit).select(&seqs);
            }
            seen.reverse();
            prop_assert_eq!(&seen, &seqs);

            let mut seen = Vec::new();
            let mut page = match seqs.first() {
                Some(first) => vec![*first],
                None => vec![],
            };
            while let Some(first) = page.first().copied() {
                prop_assert!(page.windows(2).all(|w| w[0] > w[1]));
                seen.extend(page.iter().rev().copied());
                page = SeqWindow::new(Some(Seek::After(first)), limit).select(&seqs);
            }
            prop_assert_eq!(&seen, &seqs);
        }
    }
}
