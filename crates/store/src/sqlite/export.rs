//! Export on SQLite: one read transaction (one snapshot) on a rusqlite reader of its own (one
//! that maps nothing, `fastread::Readers::streaming`; tests/export_rss.rs), on a blocking thread
//! that renders what it reads and feeds a small channel with the chunks; the consumer's pace
//! bounds memory. (Through sqlx, every row crossed threads twice; this path is several times
//! faster.)

use confab_core::Sentiment;
use confab_core::export::ExportFormat;
use futures::stream::BoxStream;
use rusqlite::Connection;

use super::raw::{Sql, blob, id as b};
use super::read::{push_filter, qualified_conversation_cols};
use super::rows::{self, MESSAGE_COLS};
use super::{SqliteStore, fastread};
use crate::error::{Result, StoreError};
use crate::export::{Chunker, EXPORT_BATCH, ExportChunk, ExportItem, chunk_channel};
use crate::types::{ConversationFilter, TenantId};

impl SqliteStore {
    /// `Store::export`: read and rendered on a blocking thread in one read transaction (the
    /// whole export sees one snapshot), handed over in chunks.
    pub fn export(
        &self,
        tenant: TenantId,
        filter: ConversationFilter,
        format: ExportFormat,
    ) -> BoxStream<'static, Result<ExportChunk>> {
        let fast = self.fast.clone();
        let (tx, chunks) = chunk_channel();
        tokio::task::spawn_blocking(move || {
            let read = |c: &Connection| {
                let mut chunker = Chunker::new(format);
                let mut sink = |item: ExportItem| match chunker.push(&item) {
                    Some(chunk) => tx.blocking_send(Ok(chunk)).is_ok(),
                    None => true,
                };
                if produce(c, tenant, &filter, format.needs_messages(), &mut sink)? {
                    let _ = tx.blocking_send(Ok(chunker.finish()));
                }
                Ok(())
            };
            // A connection of its own that maps nothing: the export reads the whole file once.
            let done = fast.streaming().and_then(|c| fastread::snapshot(&c, read));
            if let Err(e) = done {
                let _ = tx.blocking_send(Err(e));
            }
        });
        chunks
    }
}

/// Hands every item to `sink`; stops quietly when it answers `false` (the consumer has gone
/// away). Answers whether every item was taken.
fn produce(
    c: &Connection,
    tenant: TenantId,
    filter: &ConversationFilter,
    with_messages: bool,
    sink: &mut dyn FnMut(ExportItem) -> bool,
) -> Result<bool> {
    let cols = qualified_conversation_cols();
    let message_sql = format!(
        "SELECT {MESSAGE_COLS} FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2 ORDER BY seq"
    );
    let mut after: Option<(i64, uuid::Uuid)> = None;
    loop {
        let mut q = Sql::default();
        q.push(&format!(
            "SELECT {cols}, (SELECT i.sentiment FROM insights i WHERE i.tenant_id = c.tenant_id \
             AND i.conversation_id = c.id) FROM conversations c"
        ));
        push_filter(&mut q, tenant, filter);
        if let Some((at, id)) = after {
            q.push(" AND (c.created_at < ").bind(at);
            q.push(" OR (c.created_at = ").bind(at);
            q.push(" AND c.id < ").bind(blob(&id)).push("))");
        }
        q.push(" ORDER BY c.created_at DESC, c.id DESC LIMIT ")
            .bind(EXPORT_BATCH);
        let batch = q.rows(c, |r| {
            let conv = rows::conversation_raw(r)?;
            let sentiment: Option<Sentiment> = r
                .get::<_, Option<String>>(15)?
                .map(|s| s.parse().map_err(StoreError::Corrupt))
                .transpose()?;
            Ok((conv, sentiment))
        })?;
        let n = batch.len() as i64;
        for (conv, sentiment) in batch {
            after = Some((confab_core::timefmt::to_micros(conv.created_at), conv.id));
            let id = conv.id;
            if !sink(ExportItem::Conversation(Box::new(conv), sentiment)) {
                return Ok(false);
            }
            if with_messages {
                let mut st = c.prepare_cached(&message_sql)?;
                let mut rows = st.query(rusqlite::params![b(&tenant.0), b(&id)])?;
                while let Some(r) = rows.next()? {
                    if !sink(ExportItem::Message(Box::new(rows::message_raw(r)?))) {
                        return Ok(false);
                    }
                }
            }
        }
        if n < EXPORT_BATCH {
            return Ok(true);
        }
    }
}
