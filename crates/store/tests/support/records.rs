//! Export records for the store's tests: conversation `i` with `messages` messages of about
//! `size` bytes each, ids and times derived from `i`, so the same call makes the same record.

use confab_core::export::ExportRecord;
use confab_core::{Conversation, Message, Role, Status};

pub fn record(i: u128, messages: usize, size: usize) -> ExportRecord {
    let t = confab_core::timefmt::from_micros(1_700_000_000_000_000 + i as i64 * 1_000_000);
    let id = uuid::Uuid::from_u128(i << 32);
    ExportRecord {
        conversation: Conversation {
            id,
            agent_id: None,
            user_id: Some(format!("u{}", i % 7)),
            title: Some(format!("conversation {i}")),
            status: Status::Completed,
            source: Some("api".into()),
            model: None,
            company_name: None,
            added_to_memory: false,
            metadata: Default::default(),
            message_count: messages as i64,
            analyze: false,
            created_at: t,
            updated_at: t,
            completed_at: Some(t),
        },
        messages: (0..messages)
            .map(|s| Message {
                id: uuid::Uuid::from_u128((i << 32) + s as u128 + 1),
                conversation_id: id,
                seq: s as i64,
                role: if s % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                content: format!("{s} {}", "lorem ipsum ".repeat(size / 12)),
                created_at: t,
                model: None,
                tokens: None,
                prompt_tokens: None,
                completion_tokens: None,
                latency_ms: None,
                tool_calls: None,
                metadata: None,
                source: Some("api".into()),
                is_trigger: false,
            })
            .collect(),
    }
}
