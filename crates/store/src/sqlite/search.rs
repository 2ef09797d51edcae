//! Search on SQLite: FTS5 over pre-tokenized text (see migrations/sqlite/0002_search.sql).

use std::fmt::Write as _;
use std::sync::Arc;

use confab_core::cursor::SearchCursor;
use confab_core::search::{Query, Term, snippet, tenant_tag};
use confab_core::timefmt::{from_micros, to_micros};
use rusqlite::Connection;

use super::doclen::DocLengths;
use super::driven::{self, Drive};
use super::raw::{self, Sql, blob};
use super::windows::{Window, Windows};
use super::{SqliteStore, fastread};
use super::{rank, tails};
use crate::error::{Result, StoreError};
use crate::search::*;
use crate::types::TenantId;

/// `FROM … WHERE …` of the candidate rows: matches of the tenant, filtered, rowid-bounded,
/// found as `drive` says (driven.rs).
///
/// Without filters the candidates are the index's alone: every token carries the tenant's tag,
/// and no two tenants share a tag (migration 0010's unique index), so a match is the tenant's.
/// Not looking each one up in `messages` is a third of a ranked search's cost; the hits of the
/// page are looked up anyway, and [`hit`] checks their tenant again.
pub(super) fn push_candidates(q: &mut Sql, tenant: TenantId, req: &SearchRequest, drive: Drive) {
    let f = &req.filter;
    match drive {
        // CROSS JOIN fixes the loop order (SQLite's documented hint) in both: here the
        // filtered conversations outside, their messages by `messages_order`, and each asked of
        // the index by rowid inside.
        Drive::Conversations => {
            q.push(
                " FROM conversations c CROSS JOIN messages m ON m.tenant_id = c.tenant_id \
                 AND m.conversation_id = c.id CROSS JOIN messages_fts ON messages_fts.rowid = m.rowid",
            );
        }
        Drive::Index => {
            q.push(" FROM messages_fts");
            if !f.is_empty() {
                // The full-text index outside, rows looked up by rowid inside. Left to itself,
                // SQLite 3.51 chose to walk every message of the tenant and probe the index
                // for each, which took 1 s for a word found 3 times and 5.5 s for a common
                // one on 20,000 messages; in this order they take 0.3 ms and 3 ms.
                q.push(" CROSS JOIN messages m ON m.rowid = messages_fts.rowid");
            }
            if f.needs_conversation() {
                q.push(
                    " CROSS JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id",
                );
            }
        }
    }
    let fts = req.query.to_fts5(&tenant_tag(tenant.0.as_bytes()));
    q.push(" WHERE messages_fts MATCH ").bind(fts);
    if drive == Drive::Conversations {
        q.push(" AND c.tenant_id = ").bind(blob(&tenant.0));
    }
    if !f.is_empty() {
        // The row is at hand: the belt to the tag's braces.
        q.push(" AND m.tenant_id = ").bind(blob(&tenant.0));
    }
    let rowid = drive.rowid();
    match req.cursor {
        Some(SearchCursor::Ranked { snapshot, .. }) => {
            q.push(" AND ").push(rowid).push(" <= ").bind(snapshot);
        }
        Some(SearchCursor::Recent { before }) => {
            q.push(" AND ").push(rowid).push(" < ").bind(before);
        }
        None => {}
    }
    match drive {
        // The conversation's id on the conversation row, so that its primary key finds it.
        Drive::Conversations => driven::push_conversation_filters(q, f),
        Drive::Index => {
            let mut on_conversation = f.clone();
            if let Some(v) = on_conversation.conversation_id.take() {
                q.push(" AND m.conversation_id = ").bind(blob(&v));
            }
            driven::push_conversation_filters(q, &on_conversation);
        }
    }
    if let Some(v) = f.role {
        q.push(" AND m.role = ").bind(v.as_str().to_owned());
    }
    if let Some(v) = f.created_after {
        q.push(" AND m.created_at >= ").bind(to_micros(v));
    }
    if let Some(v) = f.created_before {
        q.push(" AND m.created_at < ").bind(to_micros(v));
    }
}

/// FTS5 reports syntax and tokenizer problems as SQLITE_ERROR with an "fts5:" message; the
/// core's query renderer should make them impossible, but if one slips through it is the
/// query's fault, not the server's.
pub(super) fn fts_error(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(_, Some(m)) if m.contains("fts5") => {
            confab_core::ValidationError::field("q", format!("the search engine refused it: {m}"))
                .into()
        }
        _ => e.into(),
    }
}

/// [`fts_error`] for a statement run through `raw`.
pub(super) fn fts_errors(e: StoreError) -> StoreError {
    match e {
        StoreError::Sqlite(e) => fts_error(e),
        e => e,
    }
}

/// Rows and total tokens of the index, from FTS5's averages record (id 1 of the `_data`
/// table: SQLite varints, the row count, then the token count of the one column).
pub(super) fn index_totals(c: &Connection) -> Result<(f64, f64)> {
    let block = raw::one(
        c,
        "SELECT block FROM messages_fts_data WHERE id = 1",
        [],
        |r| Ok(r.get::<_, Vec<u8>>(0)?),
    )?
    .unwrap_or_default();
    let (rows, n) = varint(&block);
    let (tokens, _) = varint(block.get(n..).unwrap_or_default());
    Ok((rows as f64, tokens as f64))
}

/// A SQLite varint (big-endian groups of 7 bits, the ninth byte whole) and its length; 0 on
/// an empty or cut input.
pub(super) fn varint(b: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(9) {
        if i == 8 {
            return ((v << 8) | u64::from(byte), 9);
        }
        v = (v << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    (0, b.len())
}

/// Documents containing a term, from the newest `RANK_WINDOW` of its matches up to
/// `snapshot`: the exact count when there are fewer, otherwise the count the window's density
/// implies (`n` matches among the rowids `lowest..=snapshot`). Bounded work whatever the
/// term's frequency; BM25 needs the magnitude, not the last digit.
fn df_from_window(n: i64, lowest: Option<i64>, snapshot: i64, rows: f64) -> f64 {
    match lowest {
        Some(lo) if n >= RANK_WINDOW => {
            let span = (snapshot - lo + 1).max(1) as f64;
            (n as f64 * snapshot.max(1) as f64 / span).min(rows.max(n as f64))
        }
        _ => n as f64,
    }
}

/// What a ranked search may keep and reuse: the lengths and windows kept in memory, as of the
/// epoch its snapshot reads (doclen.rs, windows.rs).
#[derive(Clone, Copy)]
struct Kept<'a> {
    lengths: &'a DocLengths,
    windows: &'a Windows,
    epoch: i64,
    /// The largest rowid in the search's read transaction. A window is kept as of its
    /// snapshot or this, whichever is lower (see [`kept_window`]).
    newest: i64,
}

fn term_df(
    c: &Connection,
    tenant: TenantId,
    term: &Term,
    snapshot: i64,
    rows: f64,
    kept: Option<Kept>,
) -> Result<f64> {
    let query = Query {
        groups: vec![vec![term.clone()]],
        excluded: Vec::new(),
    };
    let fts = query.to_fts5(&tenant_tag(tenant.0.as_bytes()));
    // In a ranked search the term's own window is its newest matches up to the snapshot: the
    // one a search of the term alone keeps, so the frequency comes from it, kept or walked once
    // and kept for the next search.
    if let Some(kept) = kept {
        let alone = SearchRequest {
            query,
            filter: SearchFilter::default(),
            sort: SearchSort::Relevance,
            limit: 0,
            cursor: Some(SearchCursor::Ranked {
                snapshot,
                offset: 0,
            }),
        };
        let w = kept_window(c, kept, tenant, &alone, &fts, snapshot)?;
        return Ok(df_from_window(
            w.rows.len() as i64,
            w.rows.last().map(|r| r.0),
            snapshot,
            rows,
        ));
    }
    let (n, lowest) = raw::one(
        c,
        "SELECT count(*), min(r) FROM (SELECT rowid AS r FROM messages_fts \
         WHERE messages_fts MATCH ?1 AND rowid <= ?2 ORDER BY rowid DESC LIMIT ?3)",
        rusqlite::params![fts, snapshot, RANK_WINDOW],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)),
    )
    .map_err(fts_errors)?
    .unwrap_or((0, None));
    Ok(df_from_window(n, lowest, snapshot, rows))
}

/// Looks up a page's hits by rowid, all of them in one statement run: the rowids in page order
/// (`json_each`), each row found by its rowid on one cursor, which keeps the B-tree's root
/// between lookups (a statement run per hit opened its cursor at the root again, and set up
/// every mapped page of the descent anew). `CROSS JOIN` keeps the rowids outside: without it
/// SQLite walked the tenant's messages by `messages_id` and tested each.
struct HitLookup<'c>(rusqlite::CachedStatement<'c>);

/// [`HitLookup`]'s statement: `?1` the rowids as a JSON array, `?2` the tenant.
const HIT_ROWS: &str = "SELECT m.rowid, m.conversation_id, m.id, m.seq, m.role, m.content, \
     m.created_at FROM json_each(?1) AS j CROSS JOIN messages m ON m.rowid = j.value \
     WHERE m.tenant_id = ?2";

impl<'c> HitLookup<'c> {
    fn new(c: &'c Connection) -> Result<HitLookup<'c>> {
        Ok(HitLookup(c.prepare_cached(HIT_ROWS)?))
    }

    /// The rows of `rowids` that are the tenant's, in their order; `score` is given each
    /// one's position in `rowids` and its content.
    fn hits(
        &mut self,
        tenant: TenantId,
        rowids: &[i64],
        q: &Query,
        mut score: impl FnMut(usize, &str) -> f64,
    ) -> Result<Vec<SearchHit>> {
        let mut list = String::with_capacity(rowids.len() * 8 + 2);
        list.push('[');
        for (i, r) in rowids.iter().enumerate() {
            if i > 0 {
                list.push(',');
            }
            let _ = write!(list, "{r}");
        }
        list.push(']');
        let mut rows = self.0.query(rusqlite::params![list, blob(&tenant.0)])?;
        let mut hits = Vec::with_capacity(rowids.len());
        // Rows come in the list's order (the list is the outer loop): each one's place is
        // found from where the last one was.
        let mut at = 0;
        while let Some(r) = rows.next()? {
            let rowid: i64 = r.get(0)?;
            at += rowids[at..]
                .iter()
                .position(|x| *x == rowid)
                .ok_or_else(|| StoreError::Corrupt(format!("hit {rowid} was not asked for")))?;
            let role: String = r.get(4)?;
            let content = r
                .get_ref(5)?
                .as_str()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            hits.push(SearchHit {
                conversation_id: raw::uuid(r, 1)?,
                message_id: raw::uuid(r, 2)?,
                seq: r.get(3)?,
                role: role.parse().map_err(StoreError::Corrupt)?,
                snippet: snippet(content, q),
                score: (score(at, content) * 1e6).round() / 1e6,
                created_at: from_micros(r.get(6)?),
            });
        }
        Ok(hits)
    }
}

/// The newest `window` matches of `req` (whose cursor, if any, bounds them from above), above
/// rowid `above` if given, each with its length and `k` phrase counts, newest first.
#[allow(clippy::too_many_arguments)]
fn gather(
    c: &Connection,
    lengths: &DocLengths,
    epoch: i64,
    tenant: TenantId,
    req: &SearchRequest,
    k: usize,
    window: usize,
    above: Option<i64>,
    drive: Drive,
) -> Result<rank::Candidates> {
    // The candidates are gathered by `confab_counts` itself (rank.rs) as the statement visits
    // them, newest first. Without filters the index alone gives them, and the function is a
    // `WHERE` term: false until the window is full, so the one row `LIMIT 1` waits for is the
    // window's last candidate and the walk stops there. With filters the joined rows must pass
    // them first, and a term on the index alone could be tested before them; there the
    // function is a column of a subquery limited to the window, computed only for rows that
    // pass, and `count(x)` makes SQLite compute the column it would otherwise drop.
    let mut q = Sql::default();
    if req.filter.is_empty() {
        q.push("SELECT 1");
        push_candidates(&mut q, tenant, req, Drive::Index);
        if let Some(above) = above {
            q.push(" AND messages_fts.rowid > ").bind(above);
        }
        q.push(" AND confab_counts(messages_fts, ")
            .bind(epoch)
            .push(") ORDER BY messages_fts.rowid DESC LIMIT 1");
    } else {
        q.push("SELECT count(x) FROM (SELECT confab_counts(messages_fts, ")
            .bind(epoch)
            .push(") AS x");
        push_candidates(&mut q, tenant, req, drive);
        if let Some(above) = above {
            q.push(" AND ").push(drive.rowid()).push(" > ").bind(above);
        }
        q.push(" ORDER BY ")
            .push(drive.rowid())
            .push(" DESC LIMIT ")
            .bind(RANK_WINDOW)
            .push(")");
    }
    let mut st = c.prepare_cached(&q.text).map_err(fts_error)?;
    let ((), found) = rank::gather(k, window, || {
        let mut rows = st
            .query(rusqlite::params_from_iter(q.args))
            .map_err(fts_error)?;
        while rows.next().map_err(fts_error)?.is_some() {}
        Ok(())
    })?;
    let mut found = found.newest(window);
    found.resolve(lengths, epoch, |rowid| {
        rank::indexed_length(c, rank::LENGTH_SQL, rowid)
    })?;
    lengths.store(epoch, &found.learned);
    Ok(found)
}

/// The window of the one-word `query` of `tenant` in a read transaction of `epoch` whose
/// largest rowid is `snapshot`, walked as a first search of it walks it: what tails.rs stores.
pub(super) fn walk_word(
    c: &Connection,
    lengths: &DocLengths,
    tenant: TenantId,
    query: Query,
    epoch: i64,
    snapshot: i64,
) -> Result<Window> {
    let req = SearchRequest {
        query,
        filter: SearchFilter::default(),
        sort: SearchSort::Relevance,
        limit: 0,
        cursor: None,
    };
    let window = usize::try_from(RANK_WINDOW).unwrap_or(usize::MAX);
    let found = gather(
        c,
        lengths,
        epoch,
        tenant,
        &req,
        1,
        window,
        None,
        Drive::Index,
    )?;
    Ok(walked(epoch, snapshot, found))
}

/// A window walked in full.
fn walked(epoch: i64, snapshot: i64, found: rank::Candidates) -> Window {
    Window {
        epoch,
        snapshot,
        rows: found.rows,
        counts: found.counts,
    }
}

/// The window of `req` (which has no filters, and whose cursor if any bounds it at `snapshot`)
/// under `key` (its FTS5 query): the one kept at this snapshot; else the kept one of an older
/// snapshot, or failing that the one stored for a common word (tails.rs), brought forward past
/// the matches above it; else walked in full. Kept for the next search either way.
fn kept_window(
    c: &Connection,
    kept: Kept,
    tenant: TenantId,
    req: &SearchRequest,
    key: &str,
    snapshot: i64,
) -> Result<Arc<Window>> {
    let k = req.query.scored_terms().count();
    let window = usize::try_from(RANK_WINDOW).unwrap_or(usize::MAX);
    let epoch = kept.epoch;
    // A cursor's snapshot may lie above every rowid there now is: the newest messages deleted
    // since its first page (a new epoch). The window walked to that snapshot is the window to
    // the largest rowid, and must be kept as of that one: the next inserts of this epoch take
    // the rowids above it, at or below the cursor's snapshot, and a window kept as of the
    // snapshot would be brought forward past them, never seeing them (the concurrent test in
    // search_kept.rs found messages appended after a delete missing from every ranked search
    // until the next epoch).
    let snapshot = snapshot.min(kept.newest);
    let found = kept.windows.get(key, epoch, snapshot);
    // Not in memory: a one-word query's window may be stored in the file (tails.rs), under
    // the same rule as one kept here.
    let stored = match found {
        None if k == 1 && req.query.excluded.is_empty() => {
            tails::get(c, key, epoch, snapshot)?.map(Arc::new)
        }
        _ => None,
    };
    let outcome = match (&found, &stored) {
        (Some(w), _) if w.snapshot == snapshot => "kept",
        (Some(_), _) => "forward",
        (None, Some(_)) => "stored",
        (None, None) => "walked",
    };
    metrics::counter!("confab_store_search_windows_total", "outcome" => outcome).increment(1);
    let in_memory = found.is_some();
    Ok(match found.or(stored) {
        Some(w) if w.snapshot == snapshot => {
            if !in_memory {
                kept.windows.put(key, w.clone());
            }
            w
        }
        found => {
            let above = found.as_ref().map(|w| w.snapshot);
            let newer = gather(
                c,
                kept.lengths,
                epoch,
                tenant,
                req,
                k,
                window,
                above,
                Drive::Index,
            )?;
            let w = Arc::new(match found {
                Some(w) => w.forward(snapshot, newer.rows, newer.counts, k, window),
                None => walked(epoch, snapshot, newer),
            });
            kept.windows.put(key, w.clone());
            w
        }
    })
}

/// Relevance: the newest `RANK_WINDOW` candidates (FTS5 walks its index backwards and stops),
/// each scored with BM25 from its length and term counts as the index holds them (rank.rs),
/// then ordered by score.
fn ranked(
    c: &Connection,
    lengths: &DocLengths,
    windows: &Windows,
    tenant: TenantId,
    req: &SearchRequest,
    snapshot: i64,
    offset: i64,
) -> Result<Vec<(i64, f64)>> {
    let epoch = search_epoch(c)?;
    lengths.observe(epoch);
    // A first page's snapshot is the largest rowid, read in this transaction (`search`).
    let newest = match req.cursor {
        None => snapshot,
        Some(_) => max_rowid(c)?,
    };
    // A first page takes its snapshot, MAX(rowid), in this same read transaction: no match
    // lies beyond it, and leaving the bound out spares the statement re-checking it on every
    // candidate (FTS5 seeks to it but leaves SQLite to test it again: two of the six steps
    // per candidate: 8–10 % of a common or mid-frequency word's search, docs/performance.md).
    let windowed = SearchRequest {
        cursor: req
            .cursor
            .is_some()
            .then_some(SearchCursor::Ranked { snapshot, offset }),
        ..req.clone()
    };
    let k = req.query.scored_terms().count();
    let kept = Kept {
        lengths,
        windows,
        epoch,
        newest,
    };
    // Without filters the window may be kept from an earlier search of the same query
    // (windows.rs says why the result is the same).
    let found = if req.filter.is_empty() {
        let key = req.query.to_fts5(&tenant_tag(tenant.0.as_bytes()));
        kept_window(c, kept, tenant, &windowed, &key, snapshot)?
    } else {
        metrics::counter!("confab_store_search_windows_total", "outcome" => "walked").increment(1);
        let window = usize::try_from(RANK_WINDOW).unwrap_or(usize::MAX);
        let drive = driven::choose(c, tenant, &windowed)?;
        let w = gather(c, lengths, epoch, tenant, &windowed, k, window, None, drive)?;
        Arc::new(walked(epoch, snapshot, w))
    };
    let (cands, counts) = (&found.rows, &found.counts);
    // One term and nothing else narrowing the search: the window is that term's own newest
    // matches, so its document frequency comes for free.
    let bm25 = if k == 1 && req.query.excluded.is_empty() && req.filter.is_empty() {
        let (rows, tokens) = index_totals(c)?;
        let n = cands.len() as i64;
        let df = df_from_window(n, cands.last().map(|c| c.0), snapshot, rows);
        Bm25::new(rows, tokens, &[df])
    } else {
        scorer(c, tenant, req, snapshot, Some(kept))?
    };
    let mut scored: Vec<(i64, f64)> = cands
        .iter()
        .enumerate()
        .map(|(i, &(rowid, len))| (rowid, bm25.score(&counts[i * k..(i + 1) * k], len)))
        .collect();
    // Best first; among equal scores, newest first. Only the page and those before it need
    // their order: the rest are only counted.
    let order = |a: &(i64, f64), b: &(i64, f64)| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0));
    let needed = usize::try_from(offset.saturating_add(req.limit)).unwrap_or(usize::MAX);
    if needed < scored.len() {
        scored.select_nth_unstable_by(needed, order);
        scored[..needed].sort_unstable_by(order);
    } else {
        scored.sort_unstable_by(order);
    }
    Ok(scored)
}

pub(super) fn search(
    c: &Connection,
    lengths: &DocLengths,
    windows: &Windows,
    tenant: TenantId,
    req: &SearchRequest,
) -> Result<SearchPage> {
    let limit = req.limit;
    match req.sort {
        SearchSort::Relevance => {
            let (snapshot, offset) = match req.cursor {
                Some(SearchCursor::Ranked { snapshot, offset }) => (snapshot, offset),
                _ => (max_rowid(c)?, 0),
            };
            let scored = ranked(c, lengths, windows, tenant, req, snapshot, offset)?;
            let from = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(scored.len());
            let page = &scored[from..];
            let more = page.len() as i64 > limit;
            let page = &page[..page.len().min(usize::try_from(limit).unwrap_or(0))];
            let rowids: Vec<i64> = page.iter().map(|p| p.0).collect();
            let hits = HitLookup::new(c)?.hits(tenant, &rowids, &req.query, |i, _| page[i].1)?;
            let next_cursor = more.then_some(SearchCursor::Ranked {
                snapshot,
                offset: offset + limit,
            });
            Ok(SearchPage { hits, next_cursor })
        }
        SearchSort::Recent => recent(c, tenant, req),
    }
}

/// The search epoch of the transaction's snapshot (migration 0010; windows.rs says what it
/// vouches for).
pub(super) fn search_epoch(c: &Connection) -> Result<i64> {
    Ok(c.prepare_cached("SELECT n FROM search_epoch WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
}

/// The largest message rowid (0 when there are none).
pub(super) fn max_rowid(c: &Connection) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT COALESCE(MAX(rowid), 0) FROM messages")?
            .query_row([], |r| r.get(0))?,
    )
}

/// The scorer for `req`, every term's document frequency probed (bounded, see
/// [`df_from_window`]).
fn scorer(
    c: &Connection,
    tenant: TenantId,
    req: &SearchRequest,
    snapshot: i64,
    kept: Option<Kept>,
) -> Result<Bm25> {
    let (rows, tokens) = index_totals(c)?;
    let df: Vec<f64> = req
        .query
        .scored_terms()
        .map(|t| term_df(c, tenant, t, snapshot, rows, kept))
        .collect::<Result<_>>()?;
    Ok(Bm25::new(rows, tokens, &df))
}

/// Newest first over every match; each hit still carries its BM25 score.
fn recent(c: &Connection, tenant: TenantId, req: &SearchRequest) -> Result<SearchPage> {
    let limit = req.limit;
    let mut q = Sql::default();
    let drive = driven::choose(c, tenant, req)?;
    q.push("SELECT messages_fts.rowid");
    push_candidates(&mut q, tenant, req, drive);
    q.push(" ORDER BY ")
        .push(drive.rowid())
        .push(" DESC LIMIT ")
        .bind(limit + 1);
    let mut st = c.prepare_cached(&q.text).map_err(fts_error)?;
    let rowids: Vec<i64> = st
        .query_map(rusqlite::params_from_iter(q.args), |r| r.get(0))
        .map_err(fts_error)?
        .collect::<rusqlite::Result<_>>()
        .map_err(fts_error)?;
    let more = rowids.len() as i64 > limit;
    let bm25 = scorer(c, tenant, req, rowids.first().copied().unwrap_or(0), None)?;
    let mut tf = Vec::new();
    let shown = &rowids[..rowids.len().min(usize::try_from(limit).unwrap_or(0))];
    let last_rowid = shown.last().copied().unwrap_or(0);
    let hits = HitLookup::new(c)?.hits(tenant, shown, &req.query, |_, content| {
        let len = req.query.term_frequencies(content, &mut tf);
        bm25.score(&tf, len)
    })?;
    let next_cursor = more.then_some(SearchCursor::Recent { before: last_rowid });
    Ok(SearchPage { hits, next_cursor })
}

impl SqliteStore {
    pub async fn search(&self, tenant: TenantId, req: &SearchRequest) -> Result<SearchPage> {
        // On a rusqlite reader, like the other hot reads (fastread.rs), in one read
        // transaction: its twenty-odd statements (the window, the index's totals, each hit)
        // read one snapshot, and take SQLite's shared lock once instead of once each (a lock
        // and an unlock are two fcntl calls and a fstat, 4 % of a search's CPU).
        self.fast.with_expected(
            |c| {
                fastread::snapshot(c, |c| {
                    search(c, &self.fast.lengths, &self.fast.windows, tenant, req)
                })
            },
            req.query.has_prefix(),
        )
    }

    /// Stores the window of every common word now (tails.rs), even if the stored ones are
    /// current; answers how many.
    pub async fn build_search_postings(&self) -> Result<usize> {
        let writer = self.writer.handle().ok_or(StoreError::Closed)?;
        let fast = self.fast.clone();
        // A read of seconds: off the runtime's workers.
        tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Handle::current();
            super::tails::build(&fast.own()?, &fast, &writer, &rt, true)
        })
        .await
        .map_err(|e| StoreError::Config(format!("the search windows' build stopped: {e}")))?
        .map(Option::unwrap_or_default)
    }

    pub async fn rebuild_search_index(&self) -> Result<()> {
        self.writer
            .exec(|c, _| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')")
                        .execute(&mut *c)
                        .await?;
                    sqlx::query(
                        "INSERT INTO messages_fts (rowid, body) \
                         SELECT rowid, confab_fts(tenant_id, content) FROM messages",
                    )
                    .execute(&mut *c)
                    .await?;
                    // Lengths and windows kept in memory (doclen.rs, windows.rs) were read
                    // from the old index: a new epoch sets them aside, in this process and any
                    // other reading the file.
                    sqlx::query("UPDATE search_epoch SET n = n + 1 WHERE id = 1")
                        .execute(&mut *c)
                        .await?;
                    Ok(())
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page's hits are found by rowid, the list outside (docs on [`HitLookup`]): never by
    /// walking the tenant's messages.
    #[tokio::test]
    async fn hits_are_looked_up_by_rowid() {
        let (_dir, store) = crate::sqlite::tests::temp_store().await;
        let plan = store
            .fast
            .with(|c| {
                let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {HIT_ROWS}"))?;
                let rows = st.query_map(rusqlite::params!["[]", [0u8; 16]], |r| {
                    r.get::<_, String>(3)
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?.join("\n"))
            })
            .unwrap();
        let lines: Vec<&str> = plan.lines().collect();
        assert_eq!(lines.len(), 2, "{plan}");
        assert!(lines[0].starts_with("SCAN j"), "{plan}");
        assert!(
            lines[1].starts_with("SEARCH m USING INTEGER PRIMARY KEY (rowid=?)"),
            "{plan}"
        );
        store.close().await;
    }

    #[test]
    fn varints_decode_as_sqlite_writes_them() {
        assert_eq!(varint(&[0x05]), (5, 1));
        assert_eq!(varint(&[0x81, 0x00]), (128, 2));
        assert_eq!(varint(&[0xbc, 0xea, 0x1c, 0x00]), (996_636, 3));
        assert_eq!(varint(&[0xff; 9]), (u64::MAX, 9));
        assert_eq!(varint(&[]), (0, 0));
        assert_eq!(varint(&[0x81]), (0, 1));
    }

    #[test]
    fn document_frequency_is_exact_below_the_window_and_estimated_above() {
        assert_eq!(df_from_window(228, Some(10), 1_000_000, 1_000_000.0), 228.0);
        // 1,000 matches among the newest 1,250 rowids: about 80 % of all rows.
        let est = df_from_window(RANK_WINDOW, Some(1_000_000 - 1_249), 1_000_000, 1_000_000.0);
        assert!((est - 800_000.0).abs() < 1.0, "{est}");
        // Never more than the rows there are.
        assert!(df_from_window(RANK_WINDOW, Some(999_990), 1_000_000, 1_000_000.0) <= 1_000_000.0);
    }
}
