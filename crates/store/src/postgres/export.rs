//! Export on PostgreSQL: one read transaction (one snapshot) on one pooled connection, driven by a
//! task that renders what it reads and feeds a small channel with the chunks; the consumer's
//! pace bounds memory.

use confab_core::Sentiment;
use confab_core::export::ExportFormat;
use futures::StreamExt;
use futures::stream::BoxStream;
use sqlx::PgConnection;
use sqlx::{Connection, Postgres, QueryBuilder, Row};
use tokio::sync::mpsc;

use super::PgStore;
use super::read::push_filter;
use super::rows::{self, CONVERSATION_COLS, MESSAGE_COLS};
use crate::error::{Result, StoreError};
use crate::export::{Chunker, EXPORT_BATCH, ExportChunk, ExportItem, chunk_channel};
use crate::types::{ConversationFilter, TenantId};

/// Renders what the reader task reads and hands the chunks to the consumer.
struct Sink {
    chunker: Chunker,
    tx: mpsc::Sender<Result<ExportChunk>>,
}

impl Sink {
    /// Renders `item`; `false` once the consumer has gone away.
    async fn push(&mut self, item: ExportItem) -> bool {
        match self.chunker.push(&item) {
            Some(chunk) => self.tx.send(Ok(chunk)).await.is_ok(),
            None => true,
        }
    }
}

impl PgStore {
    /// `Store::export`: read and rendered by a task of its own in one read transaction (the
    /// whole export sees one snapshot), handed over in chunks.
    pub fn export(
        &self,
        tenant: TenantId,
        filter: ConversationFilter,
        format: ExportFormat,
    ) -> BoxStream<'static, Result<ExportChunk>> {
        let pool = self.pool.clone();
        let (tx, chunks) = chunk_channel();
        tokio::spawn(async move {
            let mut sink = Sink {
                chunker: Chunker::new(format),
                tx,
            };
            let run = async {
                let mut conn = pool.acquire().await?;
                let mut txn = conn.begin().await?;
                // One snapshot for the whole export (READ COMMITTED would take one per query).
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *txn)
                    .await?;
                // The same two statements run thousands of times with new ids: PostgreSQL
                // planned each execution anew (a custom plan), a third of its time in an
                // export. Their plan does not depend on the ids.
                sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
                    .execute(&mut *txn)
                    .await?;
                let with_messages = format.needs_messages();
                let r = produce(&mut txn, tenant, &filter, with_messages, &mut sink).await;
                // Read-only: ending the transaction either way releases the snapshot.
                let _ = txn.rollback().await;
                r
            };
            let last = match run.await {
                Ok(true) => Ok(sink.chunker.finish()),
                Ok(false) => return,
                Err(e) => Err(e),
            };
            let _ = sink.tx.send(last).await;
        });
        chunks
    }
}

/// `FROM … ORDER BY … LIMIT` of one batch of conversations: shared by the conversation query
/// and the message query, so that both see the same conversations in the same order (one
/// snapshot, the same statement text).
fn push_batch(
    q: &mut QueryBuilder<Postgres>,
    tenant: TenantId,
    filter: &ConversationFilter,
    after: Option<(i64, uuid::Uuid)>,
) {
    q.push(" FROM conversations c");
    push_filter(q, tenant, filter);
    if let Some((at, id)) = after {
        q.push(" AND (c.created_at < ").push_bind(at);
        q.push(" OR (c.created_at = ").push_bind(at);
        q.push(" AND c.id < ").push_bind(id).push("))");
    }
    q.push(" ORDER BY c.created_at DESC, c.id DESC LIMIT ")
        .push_bind(EXPORT_BATCH);
}

/// Hands every item to `sink`; stops quietly when the consumer has gone away. Answers whether
/// every item was handed over. Two statements per batch of
/// [`EXPORT_BATCH`] conversations: the conversations, then all their messages in the same
/// order (a lateral join walks each conversation's messages by seq), streamed and handed out
/// after their conversation. One message query per conversation cost a round trip each, with
/// both sides idle meanwhile.
async fn produce(
    c: &mut PgConnection,
    tenant: TenantId,
    filter: &ConversationFilter,
    with_messages: bool,
    sink: &mut Sink,
) -> Result<bool> {
    let cols: String = CONVERSATION_COLS
        .split(", ")
        .map(|c| format!("c.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut after: Option<(i64, uuid::Uuid)> = None;
    loop {
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {cols}, (SELECT i.sentiment FROM insights i WHERE i.tenant_id = c.tenant_id \
             AND i.conversation_id = c.id)"
        ));
        push_batch(&mut q, tenant, filter, after);
        let batch = q.build().fetch_all(&mut *c).await?;
        if batch.is_empty() {
            return Ok(true);
        }
        let mut mq = QueryBuilder::<Postgres>::new("SELECT m.* FROM (SELECT c.id, c.created_at");
        push_batch(&mut mq, tenant, filter, after);
        mq.push(format!(
            ") b CROSS JOIN LATERAL (SELECT {MESSAGE_COLS} FROM messages \
             WHERE tenant_id = "
        ))
        .push_bind(tenant.0)
        .push(
            " AND conversation_id = b.id ORDER BY seq) m \
             ORDER BY b.created_at DESC, b.id DESC, m.seq",
        );
        let mut messages = with_messages.then(|| mq.build().fetch(&mut *c));
        // A message read ahead: the first of the next conversation that has any.
        let mut ahead: Option<confab_core::Message> = None;
        for row in &batch {
            let conv = rows::conversation(row)?;
            let sentiment: Option<Sentiment> = row
                .try_get::<Option<&str>, _>(15)?
                .map(|s| s.parse().map_err(StoreError::Corrupt))
                .transpose()?;
            after = Some((confab_core::timefmt::to_micros(conv.created_at), conv.id));
            let id = conv.id;
            if !sink
                .push(ExportItem::Conversation(Box::new(conv), sentiment))
                .await
            {
                return Ok(false);
            }
            let Some(stream) = messages.as_mut() else {
                continue;
            };
            loop {
                let m = match ahead.take() {
                    Some(m) => m,
                    None => match stream.next().await {
                        Some(r) => rows::message(&r?)?,
                        None => break,
                    },
                };
                if m.conversation_id != id {
                    ahead = Some(m);
                    break;
                }
                if !sink.push(ExportItem::Message(Box::new(m))).await {
                    return Ok(false);
                }
            }
        }
        if ahead.is_some() {
            return Err(StoreError::Corrupt(
                "export: a message arrived outside its conversation's turn".into(),
            ));
        }
        if (batch.len() as i64) < EXPORT_BATCH {
            return Ok(true);
        }
    }
}
