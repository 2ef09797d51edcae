//! Streaming export: every conversation that matches a filter, each followed by its messages,
//! read from one snapshot and rendered as it is read, so memory stays flat however large the
//! export is and no conversation is seen half-written.
//!
//! The rows are rendered on the thread (SQLite) or task (PostgreSQL) that reads them, and only
//! chunks of bytes cross to the consumer. Handing each message over as a value instead had the
//! consumer free what the reader allocated: with glibc every such free takes the lock of the
//! reader's arena, and the two threads spent a third of an export's time waking each other
//! (docs/performance.md, 2026-12-02).

use confab_core::export::{ExportFormat, ExportRenderer};
use confab_core::{Conversation, Message, Sentiment};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::{ConversationFilter, Result, Store, TenantId};

/// One item of an export, in order: a conversation, then its messages by seq.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportItem {
    /// A conversation and the sentiment of its insights, if any.
    Conversation(Box<Conversation>, Option<Sentiment>),
    /// A message of the last conversation.
    Message(Box<Message>),
}

/// Conversations read per query while exporting (the reader holds at most this many).
pub const EXPORT_BATCH: i64 = 100;

/// Chunks buffered between the reader and the consumer.
const EXPORT_CHUNKS: usize = 4;

/// A piece of an export's bytes.
#[derive(Debug)]
pub struct ExportChunk {
    pub bytes: Vec<u8>,
    /// Conversations begun in this chunk (for progress).
    pub conversations: u64,
}

impl Store {
    /// The tenant's conversations matching `filter`, newest first, each followed by its
    /// messages when the format has them, rendered in `format` as chunks of about
    /// [`RENDER_CHUNK`] bytes. Ends after an error.
    pub fn export(
        &self,
        tenant: &TenantId,
        filter: ConversationFilter,
        format: ExportFormat,
    ) -> BoxStream<'static, Result<ExportChunk>> {
        dispatch!(self, b => b.export(*tenant, filter, format))
    }
}

/// The channel a backend's export reader hands its chunks through, and the consumer's end of
/// it as a stream.
pub(crate) fn chunk_channel() -> (
    mpsc::Sender<Result<ExportChunk>>,
    BoxStream<'static, Result<ExportChunk>>,
) {
    let (tx, rx) = mpsc::channel(EXPORT_CHUNKS);
    let chunks =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (tx, chunks.boxed())
}

/// Bytes per chunk of an export (about; one row may exceed it).
pub const RENDER_CHUNK: usize = 64 * 1024;

/// Renders items in one format into chunks of about [`RENDER_CHUNK`] bytes: the one place an
/// export becomes bytes, used by each backend's reader and by [`render`].
pub struct Chunker {
    r: ExportRenderer,
    chunk: ExportChunk,
}

fn fresh() -> ExportChunk {
    ExportChunk {
        bytes: Vec::with_capacity(RENDER_CHUNK + RENDER_CHUNK / 4),
        conversations: 0,
    }
}

impl Chunker {
    /// A chunker for `format`, its first chunk begun with what the format puts first.
    pub fn new(format: ExportFormat) -> Chunker {
        let mut r = ExportRenderer::new(format);
        let mut chunk = fresh();
        r.begin(&mut chunk.bytes);
        Chunker { r, chunk }
    }

    /// Renders `item`; answers a chunk once one is full.
    pub fn push(&mut self, item: &ExportItem) -> Option<ExportChunk> {
        let out = &mut self.chunk.bytes;
        match item {
            ExportItem::Conversation(c, sentiment) => {
                self.r.conversation(out, c, *sentiment);
                self.chunk.conversations += 1;
            }
            ExportItem::Message(m) => self.r.message(out, m),
        }
        (out.len() >= RENDER_CHUNK).then(|| std::mem::replace(&mut self.chunk, fresh()))
    }

    /// The last chunk, with what the format puts last.
    pub fn finish(mut self) -> ExportChunk {
        self.r.finish(&mut self.chunk.bytes);
        self.chunk
    }
}

/// Renders items already in memory (the dashboard's one-conversation download) whole.
pub fn render(items: &[ExportItem], format: ExportFormat) -> Vec<u8> {
    let mut chunker = Chunker::new(format);
    let mut out = Vec::new();
    for item in items {
        if let Some(c) = chunker.push(item) {
            out.extend(c.bytes);
        }
    }
    out.extend(chunker.finish().bytes);
    out
}
