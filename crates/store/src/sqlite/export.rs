//! Export on SQLite: one read transaction (one snapshot) on a rusqlite reader, on a blocking
//! thread that feeds a small channel with batches of items; the consumer's pace bounds memory.
//! (Through sqlx, every row crossed threads twice; this path is several times faster.)

use confab_core::Sentiment;
use futures::StreamExt;
use futures::stream::BoxStream;
use rusqlite::Connection;
use tokio::sync::mpsc;

use super::raw::{Sql, blob, id as b};
use super::read::{push_filter, qualified_conversation_cols};
use super::rows::{self, MESSAGE_COLS};
use super::{SqliteStore, fastread};
use crate::error::{Result, StoreError};
use crate::export::{EXPORT_BATCH, ExportItem};
use crate::types::{ConversationFilter, TenantId};

/// Batches buffered between the reader thread and the consumer.
const CHANNEL: usize = 4;
/// Items per batch.
const BATCH: usize = 128;

type Batch = Result<Vec<ExportItem>>;

impl SqliteStore {
    pub fn export(
        &self,
        tenant: TenantId,
        filter: ConversationFilter,
        with_messages: bool,
    ) -> BoxStream<'static, Result<ExportItem>> {
        let fast = self.fast.clone();
        let (tx, rx) = mpsc::channel::<Batch>(CHANNEL);
        tokio::task::spawn_blocking(move || {
            // One read transaction: the whole export sees one snapshot.
            let r = fast.with(|c| {
                fastread::snapshot(c, |c| produce(c, tenant, &filter, with_messages, &tx))
            });
            if let Err(e) = r {
                let _ = tx.blocking_send(Err(e));
            }
        });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) })
            .flat_map(|batch: Batch| match batch {
                Ok(items) => futures::stream::iter(items.into_iter().map(Ok)).boxed(),
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }
}

/// Collects items into batches; `false` once the consumer has gone away.
struct Out<'a> {
    tx: &'a mpsc::Sender<Batch>,
    buf: Vec<ExportItem>,
}

impl Out<'_> {
    fn push(&mut self, item: ExportItem) -> bool {
        self.buf.push(item);
        self.buf.len() < BATCH || self.flush()
    }
    fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let items = std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH));
        self.tx.blocking_send(Ok(items)).is_ok()
    }
}

/// Sends every item; stops quietly when the consumer has gone away.
fn produce(
    c: &Connection,
    tenant: TenantId,
    filter: &ConversationFilter,
    with_messages: bool,
    tx: &mpsc::Sender<Batch>,
) -> Result<()> {
    let mut out = Out {
        tx,
        buf: Vec::with_capacity(BATCH),
    };
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
            if !out.push(ExportItem::Conversation(Box::new(conv), sentiment)) {
                return Ok(());
            }
            if with_messages {
                let mut st = c.prepare_cached(&message_sql)?;
                let mut rows = st.query(rusqlite::params![b(&tenant.0), b(&id)])?;
                while let Some(r) = rows.next()? {
                    if !out.push(ExportItem::Message(Box::new(rows::message_raw(r)?))) {
                        return Ok(());
                    }
                }
            }
        }
        if n < EXPORT_BATCH {
            out.flush();
            return Ok(());
        }
    }
}
