//! Titles derived from the first user message, for conversations created without one.

/// Longest derived title, in characters.
pub const MAX_DERIVED: usize = 80;

/// The first line of `content`, whitespace collapsed, cut at a word boundary to at most
/// [`MAX_DERIVED`] characters with an ellipsis; `None` for blank text.
pub fn derive_title(content: &str) -> Option<String> {
    let line = content.lines().map(str::trim).find(|l| !l.is_empty())?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let full = words.join(" ");
    if full.chars().count() <= MAX_DERIVED {
        return Some(full);
    }
    let mut out = String::new();
    for w in &words {
        let next = if out.is_empty() {
            w.chars().count()
        } else {
            out.chars().count() + 1 + w.chars().count()
        };
        if next > MAX_DERIVED - 1 {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    if out.is_empty() {
        out = full.chars().take(MAX_DERIVED - 1).collect();
    }
    out.push('…');
    Some(out)
}

/// The title a conversation takes from its messages: that of the first user message.
pub fn first_user_title(messages: &[crate::input::NewMessage]) -> Option<String> {
    messages
        .iter()
        .find(|m| m.role == Some(crate::model::Role::User))
        .and_then(|m| derive_title(&m.content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_collapsed() {
        assert_eq!(
            derive_title("\n  Help   with billing \nmore").as_deref(),
            Some("Help with billing")
        );
        assert_eq!(derive_title("   \n "), None);
    }

    #[test]
    fn long_text_cut_at_a_word() {
        let t = derive_title(&"word ".repeat(40)).unwrap();
        assert!(t.chars().count() <= MAX_DERIVED);
        assert!(t.ends_with("word…"));
        let t = derive_title(&"x".repeat(200)).unwrap();
        assert_eq!(t.chars().count(), MAX_DERIVED);
    }
}
