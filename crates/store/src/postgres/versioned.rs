//! Appends written against the version of the rows they read, without locks.
//!
//! A batch under locks (append_batch.rs) takes four round trips: BEGIN, lock the rows, write,
//! COMMIT. Here it takes two, and locks nothing until it writes: read the batch's conversation
//! rows with their version, then one statement, which commits on its own, that writes back only
//! the rows still at the version read and inserts the messages of those conversations only
//! (`columns::VERSIONED_WRITE`). A row's version is its `xmin`, the transaction that wrote it
//! last: every UPDATE of the row makes a new one, whoever runs it (another batch, another
//! process, a PATCH, a status change), and a row deleted meanwhile is not there to write. So a
//! conversation either has all its appends of the batch written on the state they were worked
//! out from (the same rules: `append_batch::plan`), or none, and then its requests go on to the
//! locked path. PostgreSQL's row lock, taken by the UPDATE, orders this against every other
//! writer; one that waited for the lock checks the version again on the row as it is now.
//!
//! Conversations of tenants with an enabled webhook endpoint go to the locked path too: their
//! events must be written in the same transaction as the appends. The read says which tenants
//! have one; the write checks again, for an endpoint created between the two.
//!
//! The statements run outside a transaction, where `SET LOCAL` cannot ask for generic plans (as
//! the locked path's BEGIN does): the workers' connections ask for them for their whole session
//! (mod.rs, the `appending` pool), used only for append batches.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use confab_core::Conversation;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::append_batch::{self, Planned, Request};
use super::columns;
use super::rows::{self, CONVERSATION_COLS};
use crate::Clock;
use crate::error::{Result, StoreError};
use crate::types::*;

/// The batch's conversation rows (`$1` tenants, `$2` ids), each with its version and whether
/// its tenant has an enabled webhook endpoint.
pub(super) static READ: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CONVERSATION_COLS}, tenant_id, xmin::text AS version, \
         EXISTS (SELECT FROM webhook_endpoints e \
         WHERE e.tenant_id = conversations.tenant_id AND e.enabled) AS hooked \
         FROM conversations \
         WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))"
    )
});

/// Whether this path can take the batch: its messages fit the one insert of its write.
pub(super) fn fits(batch: &[&Request]) -> bool {
    batch.iter().map(|r| r.input.messages.len()).sum::<usize>() <= columns::CHUNK
}

/// Writes what it can of `batch`: each request's answer, or `None` for one left to the locked
/// path (its conversation written meanwhile, or its tenant's events to write). `Err` when
/// nothing of the batch was stored. A write whose outcome is unknown (the connection lost
/// while PostgreSQL may have committed it) answers each of its requests `StoreError::Commit`,
/// as the locked path does when its COMMIT fails.
pub(super) async fn write(
    conn: &mut PgConnection,
    batch: &[&Request],
    clock: &Clock,
) -> Result<Vec<Option<Result<Written>>>> {
    let (tenants, ids) = append_batch::keys(batch);
    let read = sqlx::query(READ.as_str())
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
    // Read after the rows: a batch that read another's writes is stamped after them, and a
    // write in between makes this one's versions stale.
    let now = confab_core::timefmt::normalize(clock());
    let mut convs: HashMap<(Uuid, Uuid), Conversation> = HashMap::with_capacity(read.len());
    let mut versions: HashMap<(Uuid, Uuid), String> = HashMap::with_capacity(read.len());
    let mut hooked: HashSet<(Uuid, Uuid)> = HashSet::new();
    for row in &read {
        let conv = rows::conversation(row)?;
        let key = (row.try_get("tenant_id")?, conv.id);
        if row.try_get("hooked")? {
            hooked.insert(key);
        } else {
            versions.insert(key, row.try_get("version")?);
            convs.insert(key, conv);
        }
    }
    // Those of hooked tenants are left out; a request whose row is missing is `NotFound`.
    let mine: Vec<(usize, &Request)> = batch
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, r)| !hooked.contains(&(r.tenant.0, r.id)))
        .collect();
    let mut answers: Vec<Option<Result<Written>>> = (0..batch.len()).map(|_| None).collect();
    let reqs: Vec<&Request> = mine.iter().map(|(_, r)| *r).collect();
    let planned = append_batch::plan(&reqs, &mut convs, now);
    let Planned {
        results,
        messages,
        touched,
        ..
    } = planned.with_sources(&convs);
    let written: HashSet<(Uuid, Uuid)> = if touched.is_empty() {
        HashSet::new()
    } else {
        let rows: Vec<(TenantId, &Conversation)> =
            touched.iter().map(|k| (TenantId(k.0), &convs[k])).collect();
        let stamps: Vec<&str> = touched.iter().map(|k| versions[k].as_str()).collect();
        match columns::versioned_write(conn, &messages, &rows, &stamps, now).await {
            Ok(keys) => keys.into_iter().collect(),
            // PostgreSQL refused the statement: it rolled back whole.
            Err(e @ sqlx::Error::Database(_)) => return Err(e.into()),
            Err(e) => {
                let e = e.to_string();
                for ((i, _), result) in mine.iter().zip(results) {
                    answers[*i] = Some(match result {
                        Ok(_) => Err(StoreError::Commit(e.clone())),
                        missing => missing,
                    });
                }
                return Ok(answers);
            }
        }
    };
    for ((i, r), result) in mine.iter().zip(results) {
        answers[*i] = match result {
            Ok(w) if written.contains(&(r.tenant.0, r.id)) => Some(Ok(w)),
            // Written meanwhile by someone else: the locked path reads it again.
            Ok(_) => None,
            missing => Some(missing),
        };
    }
    Ok(answers)
}
