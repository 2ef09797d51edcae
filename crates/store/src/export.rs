//! Streaming export: every conversation that matches a filter, each followed by its messages,
//! read from one snapshot and handed over one row at a time, so memory stays flat however
//! large the export is and no conversation is seen half-written.

use confab_core::{Conversation, Message, Sentiment};
use futures::stream::BoxStream;

use crate::{ConversationFilter, Result, Store, TenantId};

/// One item of an export stream, in order: a conversation, then its messages by seq.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportItem {
    /// A conversation and the sentiment of its insights, if any.
    Conversation(Box<Conversation>, Option<Sentiment>),
    /// A message of the last conversation.
    Message(Box<Message>),
}

/// Conversations read per query while exporting (the stream holds at most this many).
pub const EXPORT_BATCH: i64 = 100;

impl Store {
    /// The tenant's conversations matching `filter`, newest first, each followed by its
    /// messages (when `with_messages`). Ends after an error item.
    pub fn export(
        &self,
        tenant: &TenantId,
        filter: ConversationFilter,
        with_messages: bool,
    ) -> BoxStream<'static, Result<ExportItem>> {
        dispatch!(self, b => b.export(*tenant, filter, with_messages))
    }
}

/// Bytes handed out per chunk by [`render`] (about; one row may exceed it).
pub const RENDER_CHUNK: usize = 64 * 1024;

/// Renders an export stream in `format` as chunks of bytes (header, rows, footer). Memory is
/// one chunk; an error ends the stream after being yielded.
pub fn render(
    items: BoxStream<'static, Result<ExportItem>>,
    format: confab_core::export::ExportFormat,
) -> BoxStream<'static, Result<Vec<u8>>> {
    use confab_core::export::ExportRenderer;
    use futures::StreamExt;
    struct State {
        items: BoxStream<'static, Result<ExportItem>>,
        r: ExportRenderer,
        started: bool,
        done: bool,
    }
    let state = State {
        items,
        r: ExportRenderer::new(format),
        started: false,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let mut buf = if s.started { Vec::new() } else { s.r.begin() };
        s.started = true;
        while buf.len() < RENDER_CHUNK {
            match s.items.next().await {
                Some(Ok(ExportItem::Conversation(c, sentiment))) => {
                    buf.extend(s.r.conversation(&c, sentiment))
                }
                Some(Ok(ExportItem::Message(m))) => buf.extend(s.r.message(&m)),
                Some(Err(e)) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
                None => {
                    buf.extend(s.r.finish());
                    s.done = true;
                    break;
                }
            }
        }
        Some((Ok(buf), s))
    })
    .boxed()
}
