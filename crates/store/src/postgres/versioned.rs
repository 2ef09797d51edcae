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
//! locked path. The statement first locks the rows still at their version, skipping any that
//! another transaction holds (`FOR NO KEY UPDATE SKIP LOCKED`): a row locked or written since
//! the read goes to the locked path too. It never waits for a conversation row, so it cannot
//! close a cycle of waits: an UPDATE that waited met the rows in whatever order its plan
//! walked them, and deadlocked with the locked path's transactions (which lock theirs in key
//! order) in CI, 4 runs in 15 of `pg_versioned_appends.rs` here; none in 30 since.
//!
//! The rows a batch wrote are kept in memory with their new version ([`Versions`]), so the next
//! batch of the same conversations skips the read: a conversation appended turn by turn is one
//! round trip an append. What is kept needs no invalidation: a stale entry is a version the
//! write no longer finds, and the request goes on to the locked path like any other written
//! meanwhile (the entry dropped).
//!
//! Conversations of tenants with an enabled webhook endpoint go to the locked path too: their
//! events must be written in the same transaction as the appends. The read says which tenants
//! have one; the write checks again, for an endpoint created between the two.
//!
//! The statements run outside a transaction, where `SET LOCAL` cannot ask for generic plans (as
//! the locked path's BEGIN does): the workers' connections ask for them for their whole session
//! (mod.rs, the `appending` pool), used only for append batches.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use confab_core::Conversation;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::append_batch::{self, Planned, Request};
use super::columns;
use super::rows::{self, CONVERSATION_COLS};
use super::webhooks;
use crate::Clock;
use crate::error::{Result, StoreError};
use crate::types::*;

/// The batch's conversation rows (`$1` tenants, `$2` ids), each with its version and whether
/// its tenant has an enabled webhook endpoint.
pub(super) static READ: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CONVERSATION_COLS}, tenant_id, xmin::text AS version, {} AS hooked \
         FROM conversations \
         WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))",
        webhooks::hooked_sql("conversations.tenant_id")
    )
});

/// Conversations kept at most ([`Versions`]): about 0.5 KiB each, a few MiB in all.
const KEPT: usize = 8192;

/// How long a kept row serves. A version is a 32-bit transaction id, which PostgreSQL reuses
/// after about four billion transactions: a row kept that long could in theory meet a later
/// write's version equal to the one kept. Ten minutes is far inside that on any machine.
const KEPT_FOR: Duration = Duration::from_secs(600);

/// The conversations this process's versioned writes wrote last, as written, with their
/// version and when: what the next batch of them would read.
#[derive(Default)]
pub(super) struct Versions(Mutex<HashMap<(Uuid, Uuid), Kept>>);

struct Kept {
    conv: Conversation,
    version: String,
    at: Instant,
}

impl Versions {
    /// The rows kept of `keys`, those younger than [`KEPT_FOR`] at `now`.
    fn take(
        &self,
        keys: &[(Uuid, Uuid)],
        now: Instant,
    ) -> Vec<((Uuid, Uuid), Conversation, String)> {
        let mut kept = self.0.lock().expect("versions lock");
        let mut found = Vec::new();
        for k in keys {
            match kept.get(k) {
                Some(e) if now.saturating_duration_since(e.at) < KEPT_FOR => {
                    found.push((*k, e.conv.clone(), e.version.clone()))
                }
                Some(_) => {
                    kept.remove(k);
                }
                None => {}
            }
        }
        found
    }

    /// Keeps the rows just `written`, and drops those found `stale`.
    fn keep(&self, written: Vec<((Uuid, Uuid), Conversation, String)>, stale: &[(Uuid, Uuid)]) {
        let mut kept = self.0.lock().expect("versions lock");
        for k in stale {
            kept.remove(k);
        }
        let at = Instant::now();
        for (k, conv, version) in written {
            if kept.len() >= KEPT && !kept.contains_key(&k) {
                // Whichever comes first: an entry is only ever a round trip saved.
                if let Some(old) = kept.keys().next().copied() {
                    kept.remove(&old);
                }
            }
            kept.insert(k, Kept { conv, version, at });
        }
    }
}

/// Whether this path can take the batch: its messages fit the one insert of its write.
pub(super) fn fits(batch: &[&Request]) -> bool {
    batch.iter().map(|r| r.input.messages.len()).sum::<usize>() <= columns::CHUNK
}

/// Writes what it can of `batch`: each request's answer, or `None` for one left to the locked
/// path (its conversation written meanwhile, or its tenant's events to write). `Err` when
/// nothing of the batch was stored. A write whose outcome is unknown (the connection lost
/// while PostgreSQL may have committed it) answers each of its requests `StoreError::Commit`,
/// as the locked path does when its COMMIT fails. Counts the requests it answers by whether
/// their conversation was `kept` or `read` (`confab_store_appends_total{path}`).
pub(super) async fn write(
    conn: &mut PgConnection,
    versions: &Versions,
    batch: &[&Request],
    clock: &Clock,
) -> Result<Vec<Option<Result<Written>>>> {
    let wanted = append_batch::keys(batch);
    let mut convs: HashMap<(Uuid, Uuid), Conversation> = HashMap::with_capacity(wanted.len());
    let mut stamps: HashMap<(Uuid, Uuid), String> = HashMap::with_capacity(wanted.len());
    for (k, conv, version) in versions.take(&wanted, Instant::now()) {
        convs.insert(k, conv);
        stamps.insert(k, version);
    }
    let kept: HashSet<(Uuid, Uuid)> = convs.keys().copied().collect();
    let mut hooked: HashSet<(Uuid, Uuid)> = HashSet::new();
    if kept.len() < wanted.len() {
        let (tenants, ids): (Vec<Uuid>, Vec<Uuid>) =
            wanted.iter().filter(|k| !kept.contains(k)).copied().unzip();
        let read = sqlx::query(READ.as_str())
            .bind(&tenants)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
        for row in &read {
            let conv = rows::conversation(row)?;
            let key = (row.try_get("tenant_id")?, conv.id);
            if row.try_get("hooked")? {
                hooked.insert(key);
            } else {
                stamps.insert(key, row.try_get("version")?);
                convs.insert(key, conv);
            }
        }
    }
    // Read after the rows: a batch that read another's writes is stamped after them, and a
    // write in between makes this one's versions stale.
    let now = confab_core::timefmt::normalize(clock());
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
    let written: HashMap<(Uuid, Uuid), String> = if touched.is_empty() {
        HashMap::new()
    } else {
        let rows: Vec<(TenantId, &Conversation)> =
            touched.iter().map(|k| (TenantId(k.0), &convs[k])).collect();
        let at: Vec<&str> = touched.iter().map(|k| stamps[k].as_str()).collect();
        match columns::versioned_write(conn, &messages, &rows, &at, now).await {
            Ok(keys) => keys.into_iter().collect(),
            // PostgreSQL refused the statement: it rolled back whole.
            Err(e @ sqlx::Error::Database(_)) => return Err(e.into()),
            Err(e) => {
                let e = e.to_string();
                versions.keep(Vec::new(), &touched);
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
    let stale: Vec<(Uuid, Uuid)> = touched
        .iter()
        .filter(|k| !written.contains_key(k))
        .copied()
        .collect();
    let fresh = written
        .into_iter()
        .map(|(k, version)| (k, convs[&k].clone(), version))
        .collect::<Vec<_>>();
    let wrote: HashSet<(Uuid, Uuid)> = fresh.iter().map(|(k, _, _)| *k).collect();
    versions.keep(fresh, &stale);
    let (mut from_kept, mut from_read) = (0, 0);
    for ((i, r), result) in mine.iter().zip(results) {
        let key = (r.tenant.0, r.id);
        answers[*i] = match result {
            Ok(w) if wrote.contains(&key) => {
                if kept.contains(&key) {
                    from_kept += 1;
                } else {
                    from_read += 1;
                }
                Some(Ok(w))
            }
            // Written meanwhile by someone else: the locked path reads it again.
            Ok(_) => None,
            missing => {
                from_read += 1;
                Some(missing)
            }
        };
    }
    append_batch::counted("kept", from_kept);
    append_batch::counted("read", from_read);
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use confab_core::Status;
    use time::OffsetDateTime;

    use super::*;

    fn conv(id: Uuid) -> Conversation {
        Conversation {
            id,
            agent_id: None,
            user_id: None,
            title: None,
            status: Status::Active,
            source: None,
            model: None,
            company_name: None,
            added_to_memory: false,
            metadata: Default::default(),
            message_count: 0,
            analyze: true,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            completed_at: None,
        }
    }

    fn written(k: (Uuid, Uuid), version: &str) -> ((Uuid, Uuid), Conversation, String) {
        (k, conv(k.1), version.into())
    }

    fn key(n: u128) -> (Uuid, Uuid) {
        (Uuid::from_u128(1), Uuid::from_u128(n))
    }

    /// A row kept is found with the version its write left, until a batch finds it stale.
    #[test]
    fn a_kept_row_serves_until_found_stale() {
        let v = Versions::default();
        v.keep(vec![written(key(1), "7"), written(key(2), "8")], &[]);
        let found = v.take(&[key(1), key(3)], Instant::now());
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0, found[0].2.as_str()), (key(1), "7"));
        // Written again: the newer version replaces the older.
        v.keep(vec![written(key(1), "9")], &[]);
        assert_eq!(v.take(&[key(1)], Instant::now())[0].2, "9");
        // Found stale by a batch: gone, and the next batch reads it.
        v.keep(Vec::new(), &[key(1)]);
        assert!(v.take(&[key(1)], Instant::now()).is_empty());
        assert_eq!(v.take(&[key(2)], Instant::now()).len(), 1);
    }

    /// No more than `KEPT` rows are kept, whatever is written, and the newest write is kept.
    #[test]
    fn no_more_than_the_cap_are_kept() {
        let v = Versions::default();
        let all: Vec<_> = (0..KEPT as u128 + 100)
            .map(|n| written(key(n), "1"))
            .collect();
        v.keep(all, &[]);
        assert_eq!(v.0.lock().unwrap().len(), KEPT);
        let last = key(KEPT as u128 + 99);
        assert_eq!(v.take(&[last], Instant::now()).len(), 1);
        // One more: still the cap.
        v.keep(vec![written(key(u128::MAX), "2")], &[]);
        assert_eq!(v.0.lock().unwrap().len(), KEPT);
        assert_eq!(v.take(&[key(u128::MAX)], Instant::now()).len(), 1);
    }

    /// A row kept longer than `KEPT_FOR` serves no more and is dropped when asked for.
    #[test]
    fn a_row_kept_too_long_is_read_again() {
        let v = Versions::default();
        v.keep(vec![written(key(1), "7"), written(key(2), "8")], &[]);
        let later = Instant::now() + KEPT_FOR + Duration::from_secs(1);
        assert_eq!(v.take(&[key(1)], Instant::now()).len(), 1, "still young");
        assert!(v.take(&[key(1)], later).is_empty());
        assert!(!v.0.lock().unwrap().contains_key(&key(1)));
        assert_eq!(v.take(&[key(2)], Instant::now()).len(), 1);
    }
}
