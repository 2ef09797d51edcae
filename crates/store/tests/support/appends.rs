//! Appends for the store's tests.

use confab_core::Role;
use confab_core::input::{AppendMessages, NewMessage};

/// One user message saying `text`, nothing else changed.
pub fn said(text: &str) -> AppendMessages {
    AppendMessages {
        messages: vec![NewMessage {
            role: Some(Role::User),
            content: text.into(),
            ..NewMessage::default()
        }],
        status: None,
        metadata: None,
    }
}
