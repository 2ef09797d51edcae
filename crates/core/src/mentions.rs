//! Sensay's mentions view: a conversation as mention groups and placeholders, paged by groups.
//!
//! Only user and assistant messages are shown; system and tool messages are dropped *before*
//! grouping, so a tool call between a question and its answer does not split the group. On the
//! shown messages (oldest first):
//!
//! - a **group** is a maximal run of assistant messages together with the user message just
//!   before it (a run at the very start of the conversation has no user message);
//! - every other maximal run of user messages is a **placeholder** that only carries its count.
//!
//! Pages are listed newest first and `limit` counts groups. A page runs from just before the
//! cursor (or from the newest message) back to its `limit`-th group, or to its oldest group when
//! fewer remain, so it always ends with a group and what is older belongs to the next page; a
//! page that finds no group holds only the placeholder left, if any. A cursor that points into a
//! group stands for the whole group (a group is never split); any other cursor is a plain
//! position. `After` mirrors all of this towards the newest message.
//!
//! So the seed's loop (cursor = last message of the last mention on the page) shows every user
//! and assistant message exactly once, as a group member or inside one placeholder count, and
//! ends; the property tests below pin that for every sequence of roles and every limit.

use crate::model::Role;
use crate::seek::Seek;

/// One item of a mentions page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MentionItem {
    /// A mention group: the seqs of its messages, oldest first.
    Mention(Vec<i64>),
    /// Collapsed user-only messages: their seqs (oldest first); the wire shows only the count.
    Placeholder(Vec<i64>),
}

impl MentionItem {
    /// The seqs this item stands for, oldest first.
    pub fn seqs(&self) -> &[i64] {
        match self {
            MentionItem::Mention(s) | MentionItem::Placeholder(s) => s,
        }
    }

    /// True for a mention group.
    pub fn is_mention(&self) -> bool {
        matches!(self, MentionItem::Mention(_))
    }
}

/// A shown message: its seq and whether the replica said it.
#[derive(Debug, Clone, Copy)]
struct Shown {
    seq: i64,
    assistant: bool,
}

/// Splits shown messages (oldest first) into groups and placeholders, oldest first.
fn group(shown: &[Shown]) -> Vec<MentionItem> {
    let seqs = |r: &[Shown]| r.iter().map(|m| m.seq).collect::<Vec<_>>();
    let run_end = |from: usize| {
        let kind = shown[from].assistant;
        (from..shown.len())
            .find(|&i| shown[i].assistant != kind)
            .unwrap_or(shown.len())
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < shown.len() {
        if shown[i].assistant {
            // Only possible at the start: elsewhere an assistant run follows a user message.
            let end = run_end(i);
            out.push(MentionItem::Mention(seqs(&shown[i..end])));
            i = end;
            continue;
        }
        let users_end = run_end(i);
        if users_end == shown.len() {
            out.push(MentionItem::Placeholder(seqs(&shown[i..])));
            break;
        }
        // The last user message opens the group; the ones before it collapse.
        let opener = users_end - 1;
        if opener > i {
            out.push(MentionItem::Placeholder(seqs(&shown[i..opener])));
        }
        let end = run_end(users_end);
        out.push(MentionItem::Mention(seqs(&shown[opener..end])));
        i = end;
    }
    out
}

/// A page of mentions, newest first. `messages` is the conversation's `(seq, role)` list in seq
/// order (every role; hidden ones are dropped here); `seek` is the cursor resolved to its seq
/// (any message of the conversation, shown or not); `limit` counts groups and is at least 1.
pub fn mentions_page(
    messages: &[(i64, Role)],
    seek: Option<Seek<i64>>,
    limit: usize,
) -> Vec<MentionItem> {
    let shown: Vec<Shown> = messages
        .iter()
        .filter(|(_, r)| matches!(r, Role::User | Role::Assistant))
        .map(|&(seq, r)| Shown {
            seq,
            assistant: r == Role::Assistant,
        })
        .collect();
    debug_assert!(shown.windows(2).all(|w| w[0].seq < w[1].seq));
    let limit = limit.max(1);

    // A cursor inside a group's span stands for the whole group: move it to the group's edge.
    let inside_group = |s: i64| {
        group(&shown).into_iter().find_map(|it| match it {
            MentionItem::Mention(g) if g[0] <= s && s <= g[g.len() - 1] => Some(g),
            _ => None,
        })
    };
    match seek {
        None => walk(group(&shown).into_iter().rev(), limit),
        Some(Seek::Before(s)) => {
            let bound = inside_group(s).map_or(s, |g| g[0]);
            let older: Vec<Shown> = shown.iter().copied().filter(|m| m.seq < bound).collect();
            // Grouping a prefix cut outside every group gives the same groups, and the
            // placeholder the cut crosses keeps only its older part.
            walk(group(&older).into_iter().rev(), limit)
        }
        Some(Seek::After(s)) => {
            let bound = inside_group(s).map_or(s, |g| g[g.len() - 1]);
            let newer: Vec<Shown> = shown.iter().copied().filter(|m| m.seq > bound).collect();
            let mut page = walk(group(&newer).into_iter(), limit);
            // Walked oldest first; every page is listed newest first.
            page.reverse();
            page
        }
    }
}

/// Takes items in walk order (starting next to the cursor) up to the `limit`-th group, and
/// drops what follows the last group taken: it belongs to the next page. Without any group,
/// what is left (at most one placeholder).
fn walk(items: impl Iterator<Item = MentionItem>, limit: usize) -> Vec<MentionItem> {
    let mut page = Vec::new();
    let mut groups = 0;
    let mut through = 0;
    for it in items {
        let is_group = it.is_mention();
        page.push(it);
        if is_group {
            groups += 1;
            through = page.len();
            if groups == limit {
                break;
            }
        }
    }
    if groups > 0 {
        page.truncate(through);
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::{Assistant as A, System as S, Tool as T, User as U};
    use proptest::prelude::*;

    fn conv(roles: &[Role]) -> Vec<(i64, Role)> {
        roles
            .iter()
            .enumerate()
            .map(|(i, r)| (i as i64, *r))
            .collect()
    }

    fn m(s: &[i64]) -> MentionItem {
        MentionItem::Mention(s.to_vec())
    }

    fn p(s: &[i64]) -> MentionItem {
        MentionItem::Placeholder(s.to_vec())
    }

    #[test]
    fn groups_and_placeholders() {
        //           0  1  2  3  4  5  6  7  8  9 10 11
        let c = conv(&[A, U, U, U, A, A, U, A, S, A, U, U]);
        assert_eq!(
            mentions_page(&c, None, 20),
            vec![
                p(&[10, 11]),
                m(&[6, 7, 9]),
                m(&[3, 4, 5]),
                p(&[1, 2]),
                m(&[0])
            ]
        );
        // Two groups: the page ends with the second; the placeholder before it is older.
        assert_eq!(
            mentions_page(&c, None, 2),
            vec![p(&[10, 11]), m(&[6, 7, 9]), m(&[3, 4, 5])]
        );
        // The cursor is the last message of the page's last group.
        assert_eq!(
            mentions_page(&c, Some(Seek::Before(5)), 2),
            vec![p(&[1, 2]), m(&[0])]
        );
        // Inside a group (even a hidden message inside it) means the whole group.
        assert_eq!(
            mentions_page(&c, Some(Seek::Before(8)), 1),
            vec![m(&[3, 4, 5])]
        );
        assert_eq!(
            mentions_page(&c, Some(Seek::After(3)), 1),
            vec![m(&[6, 7, 9])]
        );
        // Mirrored: the page ends (at its newest side) with a group; what is newer is next.
        assert_eq!(
            mentions_page(&c, Some(Seek::After(0)), 1),
            vec![m(&[3, 4, 5]), p(&[1, 2])]
        );
        assert_eq!(
            mentions_page(&c, Some(Seek::After(6)), 1),
            vec![p(&[10, 11])]
        );
        // A cursor inside a placeholder is a plain position.
        assert_eq!(
            mentions_page(&c, Some(Seek::Before(2)), 5),
            vec![p(&[1]), m(&[0])]
        );
        assert_eq!(mentions_page(&c, Some(Seek::After(10)), 5), vec![p(&[11])]);
        assert!(mentions_page(&c, Some(Seek::Before(0)), 5).is_empty());
    }

    #[test]
    fn no_group_means_one_placeholder_or_nothing() {
        assert_eq!(mentions_page(&conv(&[U, T, U]), None, 3), vec![p(&[0, 2])]);
        assert!(mentions_page(&conv(&[S, T]), None, 3).is_empty());
        assert!(mentions_page(&[], None, 3).is_empty());
    }

    fn roles() -> impl Strategy<Value = Vec<Role>> {
        // Weighted towards user and assistant so long runs of both occur.
        let role = prop_oneof![6 => Just(U), 6 => Just(A), 1 => Just(S), 1 => Just(T)];
        proptest::collection::vec(role, 0..400)
    }

    fn shown(c: &[(i64, Role)]) -> Vec<i64> {
        c.iter()
            .filter(|(_, r)| matches!(r, U | A))
            .map(|(s, _)| *s)
            .collect()
    }

    /// The seed's loop: cursor = last message of the last mention on the page, until a page
    /// without mentions. Answers every page.
    fn walk_back(c: &[(i64, Role)], limit: usize) -> Vec<Vec<MentionItem>> {
        let mut pages = vec![mentions_page(c, None, limit)];
        while let Some(last) = pages
            .last()
            .unwrap()
            .iter()
            .filter(|it| it.is_mention())
            .flat_map(|it| it.seqs())
            .next_back()
        {
            pages.push(mentions_page(c, Some(Seek::Before(*last)), limit));
            assert!(pages.len() <= c.len() + 2, "the loop does not end");
        }
        pages
    }

    /// Every shown message once, groups whole (as the full grouping has them), each page ends
    /// with a group unless it has none, and no page has more than `limit` groups.
    fn check_cover(c: &[(i64, Role)], items: &[MentionItem]) -> Result<(), TestCaseError> {
        let mut seen: Vec<i64> = items.iter().flat_map(|it| it.seqs().to_vec()).collect();
        seen.sort();
        prop_assert_eq!(seen, shown(c));
        let full = mentions_page(c, None, usize::MAX);
        for it in items.iter().filter(|it| it.is_mention()) {
            prop_assert!(full.contains(it), "group {:?} was split", it);
        }
        Ok(())
    }

    /// A page has at most `limit` groups and ends with one (the oldest item for `Before`, the
    /// newest for `After`), or holds at most one placeholder.
    fn check_page(page: &[MentionItem], limit: usize, after: bool) -> Result<(), TestCaseError> {
        let groups = page.iter().filter(|it| it.is_mention()).count();
        prop_assert!(groups <= limit);
        if groups > 0 {
            let end = if after { page.first() } else { page.last() };
            prop_assert!(end.unwrap().is_mention(), "page {:?}", page);
        } else {
            prop_assert!(page.len() <= 1);
        }
        // Newest first between items, chronological inside them.
        let flat: Vec<i64> = page
            .iter()
            .rev()
            .flat_map(|it| it.seqs().to_vec())
            .collect();
        prop_assert!(flat.windows(2).all(|w| w[0] < w[1]));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn walking_back_shows_everything_once(c in roles(), limit in 1usize..=100) {
            let c = conv(&c);
            let pages = walk_back(&c, limit);
            for p in &pages {
                check_page(p, limit, false)?;
            }
            let items: Vec<MentionItem> = pages.into_iter().flatten().collect();
            check_cover(&c, &items)?;
        }

        #[test]
        fn walking_forward_shows_everything_once(c in roles(), limit in 1usize..=100) {
            let c = conv(&c);
            // Start where the backward walk ends: its oldest group, plus the placeholder left
            // older than it; then afterUUID = first message of the first mention on the page,
            // until a page without mentions.
            let back = walk_back(&c, limit);
            let oldest = back.iter().flatten().rfind(|it| it.is_mention());
            let Some(oldest) = oldest else {
                prop_assert!(back.len() == 1);
                check_cover(&c, &back[0])?;
                return Ok(());
            };
            let mut items: Vec<MentionItem> = back.last().unwrap().clone();
            let mut page = vec![oldest.clone()];
            let mut steps = 0;
            loop {
                check_page(&page, limit, steps > 0)?;
                items.extend(page.iter().cloned());
                let first = page.iter().find(|it| it.is_mention()).map(|it| it.seqs()[0]);
                let Some(first) = first else { break };
                page = mentions_page(&c, Some(Seek::After(first)), limit);
                steps += 1;
                prop_assert!(steps <= c.len() + 2, "the loop does not end");
            }
            check_cover(&c, &items)?;
        }

        #[test]
        fn a_cursor_anywhere_never_splits_a_group(
            c in roles(), limit in 1usize..=100, at in 0usize..400, after in any::<bool>(),
        ) {
            let c = conv(&c);
            prop_assume!(!c.is_empty());
            let s = c[at % c.len()].0;
            let seek = if after { Seek::After(s) } else { Seek::Before(s) };
            let page = mentions_page(&c, Some(seek), limit);
            check_page(&page, limit, after)?;
            let full = mentions_page(&c, None, usize::MAX);
            for it in page.iter().filter(|it| it.is_mention()) {
                prop_assert!(full.contains(it));
                prop_assert!(!it.seqs().contains(&s));
            }
        }
    }
}
