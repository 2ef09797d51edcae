//! Search on PostgreSQL: a GIN index over the `fts` tsvector that holds the same tokens as the
//! SQLite index (see fts.rs), and each message's band (migration 0004); ranked with ts_rank
//! over a bounded window like the SQLite twin.
//!
//! The window is the newest [`RANK_WINDOW`] matches. How to find them cheaply depends on how
//! common the query is, which PostgreSQL's own statistics say (`pg_stats` of `messages.fts`: the
//! thousand most common lexemes and their frequencies, kept by ANALYZE; [`Frequencies`]; a
//! query of several words is as common as its rarest required part, see [`plan`]):
//! - a common word fills the window within a few thousand rows: one statement walks rowids
//!   backwards, testing each row's stored tokens, at most twice the rows its share says
//!   ([`walk_rows`]); one rarer lately than when ANALYZE counted it reads on as a word in
//!   between does, from the density the walk found;
//! - a rare word (not among the most common) has few postings: one statement reads them all
//!   through the index;
//! - a word in between (in a few per cent of messages) is where both are slow, 35,000 rows
//!   walked or every match fetched: the newest [`PROBE_ROWS`] rows are walked (a word in fashion
//!   lately fills the window there), then the query asks for the word AND the bands that
//!   should hold the rest of the window by the density found, so GIN reads only those bands'
//!   postings of it; if they held fewer matches than expected, the next bands are asked for,
//!   a few times, then GIN reads the rest. Wider steps ask for their rows by range instead:
//!   the rowid index's, or beyond 64 bands the bands' block-range summary (migration 0007),
//!   whose pages PostgreSQL intersects with the word's postings, so that a word in a few
//!   messages per thousand has only the matches in its range fetched, not all of them.
//!
//! - one word (no phrase, prefix, exclusion or filter), however common: its postings in rowid
//!   order, segment by segment (postings.rs), and the steps above only for the rowids no built
//!   segment holds.
//!
//! Each step reads below the previous one and keeps its newest matches, so the window is
//! exactly the newest matches up to the snapshot, whichever way it was read; a plan chosen on
//! stale or missing statistics is slower, never wrong.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_core::Role;
use confab_core::cursor::SearchCursor;
use confab_core::search::{Term, snippet, tenant_tag};
use confab_core::timefmt::{from_micros, to_micros};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::PgStore;
use super::driven;
use super::flights::Flight;
use super::fts::{BAND_OF_ROW, BAND_ROWS, SEARCH_VECTOR, band, in_bands, tsquery};
use super::kept::{self, Since, Window};
use super::postings::{self, SEG_ROWS, seg_start};
use crate::error::{Result, StoreError};
use crate::search::*;
use crate::types::TenantId;

/// Rows a banded search walks first (module docs).
const PROBE_ROWS: i64 = 1024;
/// Matches per message from which the window is read by walking rowids (a word this common
/// fills it within a few thousand rows).
const DENSE: f64 = 0.25;
/// Most rows a step asks for by the rowid index ([`on_bitmaps`]): its bitmap lists every row of
/// the range, 14–19 ms for 290,000. A wider step asks the bands' block-range summary instead
/// (migration 0007), which names their pages in about a millisecond whatever the width.
const MAX_BAND_ROWS: i64 = 64 * BAND_ROWS;
/// Most share of messages a word may hold for a step wider than [`MAX_BAND_ROWS`] to ask the
/// summary: it names whole pages, so every row of a page that holds a match is tested again by
/// the index's expression (its tokens joined to its band's, about 1.7 µs a row), where the
/// rowid index lists the range at about 0.1 µs a row. A page holds about ten messages: above
/// half a per cent of messages a word is on most pages, and the rowid index costs less however
/// wide the step. Unfiltered steps that wide come from rarer words; filtered ones from the
/// filter's share of the word: `lopo` (3 %) within one agent's conversations (an eighth) read
/// 311,000 rows in one step, 190–220 ms by the summary, 65–77 by the rowid index
/// (docs/performance.md, forty-ninth session).
const SUMMARY_SHARE: f64 = 0.005;
/// Band queries before GIN is left to read the rest.
const BAND_STEPS: usize = 4;
/// Most bands a step asks for by their lexemes; a wider step asks for its rowid range, held to
/// bitmap scans ([`on_bitmaps`]). GIN's cost grows faster than the lexemes OR'd into one
/// query (33 bands: 32–57 ms, against 18–25 ms for the range's `BitmapAnd`), while at 14–18
/// bands the two cost the same (docs/performance.md, thirty-second session).
const LEXEME_BANDS: i64 = 16;
/// How long the statistics are used before they are read again (ANALYZE runs far less often).
const STATS_TTL: Duration = Duration::from_secs(60);

/// How long each statement of a search with filters or sorted newest first may run before
/// the search counts as long and waits for a long read's turn (`PgStore::search`). The searches
/// such filters leave short take 3–12 ms one at a time on the benchmark's million messages, a
/// few times that under load; a long one (`ka` within role `tool`: 0.9 s) loses this much.
const LONG_SEARCH_BUDGET: Duration = Duration::from_millis(50);

/// The most common lexemes of `messages.fts` and the share of messages holding each, as
/// PostgreSQL's planner knows them, read at most once a [`STATS_TTL`].
#[derive(Default)]
pub(super) struct Frequencies(Mutex<Option<(Instant, Shares)>>);

/// Lexeme → share of messages holding it.
type Shares = Arc<HashMap<String, f64>>;

impl Frequencies {
    /// The shares if read less than a [`STATS_TTL`] ago.
    fn cached(&self) -> Option<Shares> {
        match &*self.0.lock().expect("frequencies lock") {
            Some((at, map)) if at.elapsed() < STATS_TTL => Some(map.clone()),
            _ => None,
        }
    }

    /// The shares; none when they cannot be read, which only makes searches choose the index.
    async fn get(&self, conn: &mut PgConnection) -> Shares {
        if let Some(map) = self.cached() {
            return map;
        }
        // `most_common_elem_freqs` ends with three summary numbers after the lexemes' own.
        let rows: std::result::Result<Vec<(String, f32)>, _> = sqlx::query_as(
            "SELECT e, f FROM pg_stats s, unnest(s.most_common_elems::text::text[], \
             s.most_common_elem_freqs) AS u(e, f) \
             WHERE s.schemaname = current_schema() AND s.tablename = 'messages' \
             AND s.attname = 'fts' AND e IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await;
        let rows = rows.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the search tokens' statistics; searches use the index");
            Vec::new()
        });
        let map: Shares = Arc::new(rows.into_iter().map(|(e, f)| (e, f64::from(f))).collect());
        *self.0.lock().expect("frequencies lock") = Some((Instant::now(), map.clone()));
        map
    }
}

/// How a ranked search reads its window (module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    /// Rows walked backwards, each tested, at this share of messages.
    Walk(f64),
    /// The index, for every match.
    Index,
    /// The index, band by band, starting from this share of messages matching.
    Bands(f64),
    /// One word's postings in rowid order (postings.rs), at this share of messages (0 when not
    /// among the most common); the index for the rowids no built segment holds.
    Postings(f64),
    /// The filtered conversations' messages, each tested (driven.rs).
    Conversations,
}

impl Plan {
    /// The share of messages holding the query, as far as the plan knows (0: not known).
    fn share(self) -> f64 {
        match self {
            Plan::Walk(share) | Plan::Bands(share) | Plan::Postings(share) => share,
            Plan::Index | Plan::Conversations => 0.0,
        }
    }

    /// The plan for a ranked search of one word without filters when the search postings are
    /// kept (postings.rs): every plan reads them. A word common enough to walk too: its newest
    /// thousand postings are a few kilobytes from a segment's tail, where the walk reads and
    /// tests a row for each of 1,300–4,000 rows (3–6 ms of PostgreSQL's time on the
    /// benchmark's store), and postings stay bounded when the word has grown rarer since
    /// ANALYZE (docs/performance.md, forty-fifth session).
    fn posted(self, req: &SearchRequest) -> Plan {
        let q = &req.query;
        let one_word = q.excluded.is_empty()
            && q.groups.len() == 1
            && q.groups[0].len() == 1
            && q.groups[0][0].tokens.len() == 1
            && !q.groups[0][0].prefix;
        if !one_word || !req.filter.is_empty() || req.sort != SearchSort::Relevance {
            return self;
        }
        match self {
            Plan::Walk(share) | Plan::Bands(share) => Plan::Postings(share),
            Plan::Index => Plan::Postings(0.0),
            p => p,
        }
    }

    /// The plan for a window up to rowid `snapshot`: bands whose first step would be too wide
    /// ([`too_wide`]) give way to the index here, before [`banded_window`] walks its probe.
    fn up_to(self, snapshot: i64) -> Plan {
        match self {
            Plan::Bands(share) if too_wide(step_rows(RANK_WINDOW, share), snapshot) => Plan::Index,
            p => p,
        }
    }
}

/// Rows a band step asks for to find `need` matches at `density`: a quarter more than the
/// density says, so that one step usually suffices.
fn step_rows(need: i64, density: f64) -> i64 {
    (need as f64 / density * 1.25).ceil() as i64
}

/// Whether a band step of `rows` rows, of a query the statistics give `share` of messages,
/// asks the bands' block-range summary for its pages rather than the rowid index for its rows
/// ([`MAX_BAND_ROWS`], [`SUMMARY_SHARE`]).
fn by_summary(rows: i64, share: f64) -> bool {
    rows > MAX_BAND_ROWS && share < SUMMARY_SHARE
}

/// Whether a step of `rows` below rowid `hi` saves too little to be asked: beyond the rowid
/// index's reach, a range over most of what is left saves less than what the step costs on
/// top (the summary, three round trips); the index reads the rest.
fn too_wide(rows: i64, hi: i64) -> bool {
    rows > MAX_BAND_ROWS && rows > hi / 2
}

/// The share of messages holding `t`, as far as the statistics say: a word's own, at most
/// the rarest word's for a phrase, the sum of the lexemes it starts for a prefix; 0 for words
/// not among the most common.
fn term_share(t: &Term, tag: &str, freq: &HashMap<String, f64>) -> f64 {
    let word = |tok: &str| freq.get(&format!("{tag}{tok}")).copied().unwrap_or(0.0);
    let prefix = |tok: &str| {
        let p = format!("{tag}{tok}");
        freq.iter()
            .filter(|(k, _)| k.starts_with(&p))
            .map(|(_, f)| f)
            .sum::<f64>()
            .min(1.0)
    };
    let last = t.tokens.len().saturating_sub(1);
    t.tokens
        .iter()
        .enumerate()
        .map(|(i, tok)| {
            if t.prefix && i == last {
                prefix(tok)
            } else {
                word(tok)
            }
        })
        .fold(1.0, f64::min)
}

/// The plan for `req`, by the share of messages its query can match at most (every group must
/// match: the least common group's; a group matches with any of its terms: their sum). The
/// planner reads the same statistics, so where this says rare it uses the index too.
fn plan(req: &SearchRequest, tag: &str, freq: &HashMap<String, f64>) -> Plan {
    let share = req
        .query
        .groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|t| term_share(t, tag, freq))
                .sum::<f64>()
                .min(1.0)
        })
        .fold(1.0, f64::min);
    if req.query.groups.is_empty() || share <= 0.0 {
        Plan::Index
    } else if share >= DENSE {
        Plan::Walk(share)
    } else {
        // However rare: a step whose range would reach most of the table gives way to the
        // index ([`banded_window`]).
        Plan::Bands(share)
    }
}

/// Which rows a candidate query reads, on top of the request's own conditions.
#[derive(Clone, Copy)]
struct Range {
    /// `rowid <= hi`.
    hi: Option<i64>,
    /// `rowid > lo`.
    lo: Option<i64>,
    /// `rowid / 4096 >= b`, written as the bands' block-range summary holds it (migration
    /// 0007) so that PostgreSQL can ask the summary for those bands' pages.
    from_band: Option<i64>,
    /// Only these bands (`lo..=hi`), through the index.
    bands: Option<(i64, i64)>,
    /// Read by walking rowids backwards, never through the search index: a common word's
    /// matches, or a range narrow enough to test row by row.
    walk: bool,
    /// The filtered conversations' messages, each tested by its stored tokens (driven.rs);
    /// with `walk`.
    conversations: bool,
}

impl Range {
    /// Every row up to rowid `hi`, read as PostgreSQL plans it (the index, for a query it
    /// takes for rare).
    fn to(hi: i64) -> Range {
        Range {
            hi: Some(hi),
            lo: None,
            from_band: None,
            bands: None,
            walk: false,
            conversations: false,
        }
    }
}

/// `FROM … WHERE …` of the candidate rows: matches of the tenant, filtered, within `range`.
fn push_candidates(
    q: &mut QueryBuilder<Postgres>,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    range: Range,
) {
    let f = &req.filter;
    if range.conversations {
        // The conversations outside, each one's messages by `messages_order` inside: the
        // lateral subquery's reference to `c` holds the loop in that order, and `OFFSET 0`
        // keeps PostgreSQL from flattening it into a join it could turn around (a walk of
        // every row by rowid, testing each against the conversations).
        q.push(" FROM (SELECT c.tenant_id, c.id FROM conversations c WHERE c.tenant_id = ")
            .push_bind(tenant.0);
        driven::push_conversation_filters(q, f);
        q.push(
            " OFFSET 0) c CROSS JOIN LATERAL (SELECT * FROM messages m \
             WHERE m.tenant_id = c.tenant_id AND m.conversation_id = c.id OFFSET 0) m",
        );
    } else {
        q.push(" FROM messages m");
        if f.needs_conversation() {
            q.push(
                " JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id",
            );
        }
    }
    // The index's expression where the index is to be used; the stored tokens alone where
    // rows are walked by rowid, since the expression, tested on a row, builds a new tsvector.
    match (range.bands, range.walk) {
        (Some((lo, hi)), _) => q
            .push(" WHERE ")
            .push(SEARCH_VECTOR)
            .push(" @@ ")
            .push_bind(in_bands(tsq, lo, hi)),
        // Both: the index for PostgreSQL to use, and the stored tokens, tested first on each
        // row should it walk rows after all (it orders the tests by cost).
        (None, false) => q
            .push(" WHERE m.fts @@ ")
            .push_bind(tsq.to_owned())
            .push("::tsquery AND ")
            .push(SEARCH_VECTOR)
            .push(" @@ ")
            .push_bind(tsq.to_owned()),
        (None, true) => q.push(" WHERE m.fts @@ ").push_bind(tsq.to_owned()),
    };
    q.push("::tsquery");
    // The tag already confines the match to the tenant; this is the belt to its braces.
    q.push(" AND m.tenant_id = ").push_bind(tenant.0);
    if let Some(hi) = range.hi {
        q.push(" AND m.rowid <= ").push_bind(hi);
    }
    if let Some(lo) = range.lo {
        q.push(" AND m.rowid > ").push_bind(lo);
    }
    if let Some(b) = range.from_band {
        q.push(" AND ").push(BAND_OF_ROW).push(" >= ").push_bind(b);
    }
    if let Some(SearchCursor::Recent { before }) = req.cursor {
        q.push(" AND m.rowid < ").push_bind(before);
    }
    // From the conversations' side they were applied to them.
    if !range.conversations {
        let mut on_conversation = f.clone();
        if let Some(v) = on_conversation.conversation_id.take() {
            q.push(" AND m.conversation_id = ").push_bind(v);
        }
        driven::push_conversation_filters(q, &on_conversation);
    }
    if let Some(v) = f.role {
        q.push(" AND m.role = ").push_bind(v.as_str());
    }
    if let Some(v) = f.created_after {
        q.push(" AND m.created_at >= ").push_bind(to_micros(v));
    }
    if let Some(v) = f.created_before {
        q.push(" AND m.created_at < ").push_bind(to_micros(v));
    }
}

/// The newest `n` candidates in `range`, newest first, with their ts_rank.
async fn candidates(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    range: Range,
    n: i64,
) -> Result<Vec<(i64, f64)>> {
    // Ranked after the limit: where the index hands over every match (a word rarer than the
    // bands pay for), PostgreSQL would otherwise compute ts_rank for each of them before
    // sorting, three times the window for a word in 0.3 % of messages, and each call reads
    // the row's tsvector again. A word of 2,998 matches: 28–37 ms → 20 ms alone, all in
    // `shared_buffers` (docs/performance.md, thirty-second session). The subquery's order
    // carries through, so the outer `ORDER BY` costs no second sort.
    let mut q = QueryBuilder::<Postgres>::new("SELECT s.rowid, ts_rank(s.fts, ");
    q.push_bind(tsq.to_owned())
        .push("::tsquery)::float8 FROM (SELECT m.rowid, m.fts");
    push_candidates(&mut q, tenant, req, tsq, range);
    q.push(" ORDER BY m.rowid DESC LIMIT ")
        .push_bind(n)
        .push(") s ORDER BY s.rowid DESC");
    // Not a named prepared statement: an unnamed one is planned with the actual tsquery and
    // bounds, so PostgreSQL can walk the rowid index backwards for a common word and use the
    // GIN index for a rare one (a generic plan cannot tell them apart).
    let rows = q.build().persistent(false).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// [`candidates`] with PostgreSQL held to bitmap scans, for a band step asked by its rowid
/// range: it then intersects the range's rows with the word's (`BitmapAnd`), where left to
/// itself it walked the rowid index testing every row for ranges under about 100,000 rows,
/// 3–6 × slower than the bands' lexemes (docs/performance.md, thirty-second session). The
/// setting is `LOCAL` to a transaction of the step's own (a savepoint when the search runs in
/// one), rolled back after: the step only reads, and the setting goes with it.
async fn on_bitmaps(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    range: Range,
    n: i64,
) -> Result<Vec<(i64, f64)>> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SET LOCAL enable_indexscan = off")
        .execute(&mut *tx)
        .await?;
    // On an error the dropped transaction is rolled back before the connection's next use.
    let found = candidates(&mut tx, tenant, req, tsq, range, n).await?;
    tx.rollback().await?;
    Ok(found)
}

/// The newest `want` candidates up to `snapshot`, newest first, read band by band from an
/// expected `density` of matches (module docs).
async fn banded_window(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    snapshot: i64,
    mut density: f64,
    want: i64,
) -> Result<Vec<(i64, f64)>> {
    // The statistics' share of the word, before the rows read say how many pass the filters.
    let share = density;
    // The newest rows first, walked: a word more common lately than overall fills the window
    // here, and the density found there sizes the bands better than the overall share.
    let probe = Range {
        hi: Some(snapshot),
        lo: Some(snapshot - PROBE_ROWS),
        from_band: None,
        bands: None,
        walk: true,
        conversations: false,
    };
    let mut found = candidates(conn, tenant, req, tsq, probe, want).await?;
    // The highest rowid not read yet, and the rows read so far.
    let (mut hi, mut read) = (snapshot - PROBE_ROWS, PROBE_ROWS);
    for _ in 0..BAND_STEPS {
        let need = want - found.len() as i64;
        if need <= 0 || hi < 1 {
            return Ok(found);
        }
        // None found yet: the overall share is all there is to go by.
        if !found.is_empty() {
            density = found.len() as f64 / read as f64;
        }
        let rows = step_rows(need, density);
        if density <= 0.0 || too_wide(rows, hi) {
            break;
        }
        let lo_band = band((hi - rows + 1).max(0));
        if band(hi) - lo_band < LEXEME_BANDS {
            let bands = Range {
                hi: Some(hi),
                lo: None,
                from_band: None,
                bands: Some((lo_band, band(hi))),
                walk: false,
                conversations: false,
            };
            found.extend(candidates(conn, tenant, req, tsq, bands, need).await?);
        } else {
            // The same rows, `rowid >= lo_band * BAND_ROWS`: by the rowid index, or wider than
            // it lists cheaply, by the bands' block-range summary where that costs less.
            let (lo, from_band) = if by_summary(rows, share) {
                (None, Some(lo_band))
            } else {
                (Some(lo_band * BAND_ROWS - 1), None)
            };
            let range = Range {
                hi: Some(hi),
                lo,
                from_band,
                bands: None,
                walk: false,
                conversations: false,
            };
            found.extend(on_bitmaps(conn, tenant, req, tsq, range, need).await?);
        }
        let next = lo_band * BAND_ROWS - 1;
        read += hi - next;
        hi = next;
    }
    let need = want - found.len() as i64;
    if need > 0 && hi >= 1 {
        let rest = Range::to(hi);
        found.extend(candidates(conn, tenant, req, tsq, rest, need).await?);
    }
    Ok(found)
}

/// The page's rows, in `page`'s order: looked up by rowid, in one statement.
async fn hit_rows(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: &[(i64, f64)],
) -> Result<Vec<(i64, Arc<HitRow>)>> {
    let rowids: Vec<i64> = page.iter().map(|p| p.0).collect();
    let rows = sqlx::query(
        "SELECT rowid, conversation_id, id, seq, role, content, created_at FROM messages \
         WHERE rowid = ANY($1) AND tenant_id = $2",
    )
    .bind(&rowids)
    .bind(tenant.0)
    .fetch_all(&mut *conn)
    .await?;
    in_order(&rows, page)
}

/// The page's hits, in `page`'s order.
async fn hits(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    page: &[(i64, f64)],
) -> Result<Vec<SearchHit>> {
    let rows = hit_rows(conn, tenant, page).await?;
    Ok(shown(&rows, page, req))
}

/// The hits of `page` whose rows are in `rows` (a row deleted since the window was read is
/// missing: the page is one hit shorter).
fn shown(rows: &[(i64, Arc<HitRow>)], page: &[(i64, f64)], req: &SearchRequest) -> Vec<SearchHit> {
    page.iter()
        .filter_map(|&(rowid, rank)| {
            let (_, row) = rows.iter().find(|r| r.0 == rowid)?;
            Some(row.hit(rank, req))
        })
        .collect()
}

/// What changed of the tenant unseen by a kept window's snapshot (`seen`), and, when nothing
/// did, the page's rows in `page`'s order and the statement's own snapshot; one statement
/// (kept.rs).
async fn checked_rows(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: &[(i64, f64)],
    seen: &str,
) -> Result<(Since, Vec<(i64, Arc<HitRow>)>, String)> {
    let rowids: Vec<i64> = page.iter().map(|p| p.0).collect();
    let rows = sqlx::query(kept::CHECKED_ROWS)
        .bind(&rowids)
        .bind(tenant.0)
        .bind(seen)
        .fetch_all(&mut *conn)
        .await?;
    let since = match rows.first() {
        Some(r) => Since::read(r, 7)?,
        None => Since::Anything,
    };
    Ok(match (since, rows.first()) {
        (Since::Nothing, Some(r)) => (since, in_order(&rows, page)?, r.try_get(10)?),
        _ => (since, Vec::new(), String::new()),
    })
}

/// `w` brought forward past inserts from rowid `lo` on: their matches read by one statement
/// that also asks again what changed unseen by `w` and takes the new snapshot (kept.rs);
/// [`kept::FORWARD_NEAR`]'s, planned once, while the inserts seen lie `near` `lo`.
/// `None` when more changed than inserts from `lo` on (a delete), or, twice running, an insert
/// below `lo` committed between the check and the statement (rowids do not order commits):
/// then the window is read again.
async fn forward(
    conn: &mut PgConnection,
    tenant: TenantId,
    tsq: &str,
    w: &Window,
    mut lo: i64,
    mut near: bool,
) -> Result<Option<Window>> {
    for _ in 0..2 {
        // Before the snapshot is taken, as for a window read afresh.
        let made = Instant::now();
        let rows = forward_rows(conn, tenant, tsq, &w.seen, lo, near).await?;
        // A retry reads from a lower rowid, as far from the newest as may be.
        near = false;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let since = Since::read(first, 0)?;
        // Nothing unseen any more can only mean pruned, which a window this young never sees;
        // taken like inserts all above `lo`.
        let lowest = match since {
            Since::Nothing => Some(lo),
            s => s.forwardable(),
        };
        match lowest {
            Some(lowest) if lowest >= lo => {
                let mut newer = Vec::with_capacity(rows.len());
                for r in &rows {
                    if let (Some(rowid), Some(score)) = (r.try_get(4)?, r.try_get(5)?) {
                        newer.push((rowid, score));
                    }
                }
                let (max, seen) = (first.try_get(2)?, first.try_get(3)?);
                return Ok(Some(w.forwarded(max, seen, made, newer)));
            }
            Some(lower) => lo = lower,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// The rows of [`kept::FORWARD`] for a window of snapshot `seen` from rowid `lo` on: by
/// [`kept::FORWARD_NEAR`] if `near` and every row since lies in its range, else by
/// [`kept::FORWARD`] itself.
async fn forward_rows(
    conn: &mut PgConnection,
    tenant: TenantId,
    tsq: &str,
    seen: &str,
    lo: i64,
    near: bool,
) -> Result<Vec<sqlx::postgres::PgRow>> {
    if near {
        let rows = sqlx::query(sqlx::AssertSqlSafe(kept::FORWARD_NEAR.as_str()))
            .bind(tsq)
            .bind(tenant.0)
            .bind(seen)
            .bind(lo)
            .fetch_all(&mut *conn)
            .await?;
        // The newest rowid in the statement's snapshot: every row it can see from `lo` on lies
        // in the range read when this is below the range's end.
        match rows.first() {
            Some(first) if kept::within_near(lo, first.try_get(2)?) => return Ok(rows),
            _ => {}
        }
    }
    Ok(sqlx::query(sqlx::AssertSqlSafe(kept::FORWARD.as_str()))
        .bind(tsq)
        .bind(tenant.0)
        .bind(seen)
        .bind(lo)
        .bind(RANK_WINDOW)
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?)
}

/// The rows of `page` found in `rows` (`rowid, conversation_id, id, seq, role, content,
/// created_at` first), in `page`'s order.
fn in_order(
    rows: &[sqlx::postgres::PgRow],
    page: &[(i64, f64)],
) -> Result<Vec<(i64, Arc<HitRow>)>> {
    let mut out = Vec::with_capacity(page.len());
    for &(rowid, _) in page {
        if let Some(r) = rows
            .iter()
            .find(|r| r.try_get::<i64, _>(0).is_ok_and(|v| v == rowid))
        {
            out.push((rowid, Arc::new(HitRow::read(r)?)));
        }
    }
    Ok(out)
}

/// What a hit shows of its message, read from a row of `rowid, conversation_id, id, seq, role,
/// content, created_at`; kept with a kept window (kept.rs) while the window is.
pub(super) struct HitRow {
    conversation_id: Uuid,
    message_id: Uuid,
    seq: i64,
    role: Role,
    content: String,
    created_at: i64,
}

impl HitRow {
    pub(super) fn read(r: &sqlx::postgres::PgRow) -> Result<HitRow> {
        Ok(HitRow {
            conversation_id: r.try_get(1)?,
            message_id: r.try_get(2)?,
            seq: r.try_get(3)?,
            role: r
                .try_get::<&str, _>(4)?
                .parse()
                .map_err(StoreError::Corrupt)?,
            content: r.try_get(5)?,
            created_at: r.try_get(6)?,
        })
    }

    /// A row of `text`, the rest made up.
    #[cfg(test)]
    pub(super) fn with_text(text: &str) -> HitRow {
        HitRow {
            conversation_id: Uuid::nil(),
            message_id: Uuid::nil(),
            seq: 0,
            role: Role::User,
            content: text.to_owned(),
            created_at: 0,
        }
    }

    /// The bytes of its text, what keeping it costs.
    pub(super) fn text_len(&self) -> usize {
        self.content.len()
    }

    pub(super) fn hit(&self, rank: f64, req: &SearchRequest) -> SearchHit {
        SearchHit {
            conversation_id: self.conversation_id,
            message_id: self.message_id,
            seq: self.seq,
            role: self.role,
            snippet: snippet(&self.content, &req.query),
            // ts_rank is already "higher is better".
            score: (rank * 1e6).round() / 1e6,
            created_at: from_micros(self.created_at),
        }
    }
}

/// A hit from a row as [`HitRow::read`] reads it.
fn hit(r: &sqlx::postgres::PgRow, rank: f64, req: &SearchRequest) -> Result<SearchHit> {
    Ok(HitRow::read(r)?.hit(rank, req))
}

/// A page of the window in one statement: the newest [`RANK_WINDOW`] candidates up to
/// `snapshot`, walked by rowid (`walk`) or read through the index, ranked, the page cut from
/// them. Answers the hits and whether more follow.
async fn ranked_page(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    range: Range,
    offset: i64,
) -> Result<(Vec<SearchHit>, bool)> {
    // Every column taken in the window's own pass: joining back to `messages` made the
    // planner scan the table. Ranked outside the window's limit, as in [`candidates`].
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT r, conversation_id, id, seq, role, content, created_at, ts_rank(f, ",
    );
    q.push_bind(tsq.to_owned()).push(
        "::tsquery)::float8 AS s FROM (SELECT m.rowid AS r, m.conversation_id, m.id, m.seq, \
         m.role, m.content, m.created_at, m.fts AS f",
    );
    push_candidates(&mut q, tenant, req, tsq, range);
    q.push(" ORDER BY m.rowid DESC LIMIT ")
        .push_bind(RANK_WINDOW);
    q.push(") w ORDER BY s DESC, r DESC LIMIT ");
    q.push_bind(req.limit + 1)
        .push(" OFFSET ")
        .push_bind(offset);
    let rows = q.build().persistent(false).fetch_all(&mut *conn).await?;
    let more = rows.len() as i64 > req.limit;
    let hits = rows
        .iter()
        .take(usize::try_from(req.limit).unwrap_or(0))
        .map(|r| hit(r, r.try_get(7)?, req))
        .collect::<Result<_>>()?;
    Ok((hits, more))
}

/// A relevance cursor's `(snapshot, offset)`.
fn ranked_cursor(req: &SearchRequest) -> Option<(i64, i64)> {
    match req.cursor {
        Some(SearchCursor::Ranked { snapshot, offset }) => Some((snapshot, offset)),
        _ => None,
    }
}

/// A window's order: higher score first; among equal scores, newer first.
fn best_order(a: &(i64, f64), b: &(i64, f64)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(b.0.cmp(&a.0))
}

/// Sorts `scored` in [`best_order`].
///
/// Windows are nearly always read newest first, and a one-word window's scores take a few
/// values (one per count of positions): a stable sort by score alone then gives the same order
/// in a fifth of the time of a sort that compares rowids too (1,000 candidates: about 3 µs
/// against 15, a twentieth of a first search's CPU in confab).
pub(super) fn best_first(scored: &mut [(i64, f64)]) {
    if scored.is_sorted_by(|a, b| a.0 > b.0) {
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    } else {
        scored.sort_unstable_by(best_order);
    }
}

/// The best `limit` of `scored` (any order, each rowid once) in [`best_order`], and
/// whether more follow: a first page without sorting the whole window. One pass keeps the best
/// so far; a candidate no better than the last of them, nearly every one past the first
/// page's worth, costs one comparison.
pub(super) fn best_of(scored: &[(i64, f64)], limit: i64) -> (Vec<(i64, f64)>, bool) {
    let k = usize::try_from(limit).unwrap_or(0);
    let before = |a: &(i64, f64), b: &(i64, f64)| best_order(a, b).is_lt();
    let mut best: Vec<(i64, f64)> = Vec::with_capacity(k + 1);
    for s in scored {
        if best.len() == k && best.last().is_none_or(|last| !before(s, last)) {
            continue;
        }
        let at = best.partition_point(|b| before(b, s));
        best.insert(at, *s);
        best.truncate(k);
    }
    (best, scored.len() > k)
}

/// The page at `offset` of a sorted window, and whether more follow it.
fn page_of(scored: &[(i64, f64)], offset: i64, limit: i64) -> (&[(i64, f64)], bool) {
    let from = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(scored.len());
    let rest = &scored[from..];
    let page = &rest[..rest.len().min(usize::try_from(limit).unwrap_or(0))];
    (page, rest.len() as i64 > limit)
}

/// The window of `req` up to `snapshot`, read the way `plan` says, best first.
/// `first`: the segments a one-word plan reads first, if read already
/// ([`postings::newest_segments`]), and how many were asked for.
async fn window(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    plan: Plan,
    snapshot: i64,
    first: Option<(Vec<postings::Segment>, i64)>,
) -> Result<Vec<(i64, f64)>> {
    let mut scored = match plan {
        Plan::Postings(share) => {
            posted_window(conn, tenant, req, tsq, snapshot, share, first).await?
        }
        p => indexed_window(conn, tenant, req, tsq, p, snapshot, RANK_WINDOW).await?,
    };
    best_first(&mut scored);
    Ok(scored)
}

/// The newest `want` candidates up to `snapshot`, newest first, read through the index or by
/// walking rowids as `plan` says.
async fn indexed_window(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    plan: Plan,
    snapshot: i64,
    want: i64,
) -> Result<Vec<(i64, f64)>> {
    match plan.up_to(snapshot) {
        Plan::Bands(density) => {
            banded_window(conn, tenant, req, tsq, snapshot, density, want).await
        }
        Plan::Walk(share) => walked_window(conn, tenant, req, tsq, snapshot, share, want).await,
        _ => {
            let all = Range::to(snapshot);
            candidates(conn, tenant, req, tsq, all, want).await
        }
    }
}

/// Most rows a walk reads for `want` matches of a query in `share` of messages: twice what
/// that share says. A query that common lately fills its window well within them; one that
/// has grown rarer since ANALYZE (a word of last year's messages, few of this month's) would
/// otherwise have the walk read back to its old matches: the whole table, for a word no
/// longer written.
fn walk_rows(want: i64, share: f64) -> i64 {
    2 * step_rows(want, share)
}

/// The newest `want` candidates up to `snapshot` of a query in `share` of messages: the newest
/// [`walk_rows`] rows walked, then, if they held too few, the rest read as a banded query's
/// from the density they held.
async fn walked_window(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    snapshot: i64,
    share: f64,
    want: i64,
) -> Result<Vec<(i64, f64)>> {
    let rows = walk_rows(want, share);
    let lo = snapshot - rows;
    let walk = Range {
        hi: Some(snapshot),
        lo: (lo > 0).then_some(lo),
        from_band: None,
        bands: None,
        walk: true,
        conversations: false,
    };
    let found = candidates(conn, tenant, req, tsq, walk, want).await?;
    let need = want - found.len() as i64;
    if need <= 0 || lo < 1 {
        metrics::counter!("confab_store_search_walks_total", "outcome" => "filled").increment(1);
        return Ok(found);
    }
    metrics::counter!("confab_store_search_walks_total", "outcome" => "cut").increment(1);
    // The density found, or with none found the share, as a banded plan starts from: its
    // steps ask GIN for the query in a few bands at a time, where PostgreSQL, planning a plain
    // statement by the same stale share, would walk again.
    let density = match found.len() {
        0 => share,
        n => n as f64 / rows as f64,
    };
    let rest = match Plan::Bands(density).up_to(lo) {
        Plan::Bands(density) => banded_window(conn, tenant, req, tsq, lo, density, need).await?,
        _ => {
            let below = Range::to(lo);
            candidates(conn, tenant, req, tsq, below, need).await?
        }
    };
    Ok(extended(found, rest))
}

/// A page newest first of a query common enough to walk, without filters: its newest matches
/// read as a ranked window's are ([`walked_window`]), so that a query rarer lately than its
/// share says stops walking where a window of the page's size should have been found. With
/// filters the walk is one statement, stopped by the request's time limit
/// ([`PgStore::search`]): there the matches' share says too little of how far it goes.
async fn recent_walked(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    share: f64,
) -> Result<SearchPage> {
    let top = match req.cursor {
        Some(SearchCursor::Recent { before }) => before - 1,
        _ => postings::newest_rowid(&mut *conn).await?,
    };
    let found = walked_window(conn, tenant, req, tsq, top, share, req.limit + 1).await?;
    let (page, more) = page_of(&found, 0, req.limit);
    let hits = hits(conn, tenant, req, page).await?;
    let next_cursor = match (more, page.last()) {
        (true, Some(last)) => Some(SearchCursor::Recent { before: last.0 }),
        _ => None,
    };
    Ok(SearchPage { hits, next_cursor })
}

/// A search's error, canceled by the time limit it ran under ([`PgStore::limited`]) made the
/// read's timeout.
fn timed_out(e: StoreError) -> StoreError {
    if super::canceled(&e) {
        StoreError::read_timed_out()
    } else {
        e
    }
}

/// `found` and then `more`.
fn extended(mut found: Vec<(i64, f64)>, more: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    found.extend(more);
    found
}

/// Segments a statement of [`posted_window`] asks for when the word's share is not known.
const RARE_SEGMENTS: i64 = postings::MOST_SEGMENTS;

/// Segments a first page of a word wants, `share` of messages holding it (0 when not known):
/// enough for the window, and two more (postings.rs caps what a statement asks for). The
/// batched statement asks for that many (first_batch.rs: a limit bound per word, planned
/// once); rounded up to a power of two, a window of 7 segments read 16 (docs/performance.md,
/// forty-first session).
fn segments_wanted(share: f64) -> i64 {
    if share > 0.0 {
        step_rows(RANK_WINDOW, share) / SEG_ROWS + 2
    } else {
        RARE_SEGMENTS
    }
}

/// Segments a statement of [`posted_window`] on a connection asks for: [`segments_wanted`]
/// rounded up to a power of two ([`postings::segments_limit`] says why).
fn segments_per(share: f64) -> i64 {
    postings::segments_limit(segments_wanted(share))
}

/// The lexeme a one-word plan ([`Plan::Postings`]) reads the postings of.
fn posted_lexeme(tenant: TenantId, req: &SearchRequest) -> String {
    let tag = tenant_tag(tenant.0.as_bytes());
    format!("{tag}{}", req.query.groups[0][0].tokens[0])
}

/// The newest [`RANK_WINDOW`] matches up to `snapshot` of a one-word query (`share` of messages
/// hold it, 0 when not known), newest first: from the word's postings in each built segment
/// (postings.rs), through the index for the rowids above them and any segment not built.
/// `first`: the segments below `snapshot` its first statement would ask for, if read already,
/// and how many were asked for.
async fn posted_window(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    snapshot: i64,
    share: f64,
    mut first: Option<(Vec<postings::Segment>, i64)>,
) -> Result<Vec<(i64, f64)>> {
    let lexeme = posted_lexeme(tenant, req);
    let per = segments_per(share);
    let mut found: Vec<(i64, f64)> = Vec::with_capacity(RANK_WINDOW as usize);
    // The highest rowid not read yet.
    let mut hi = snapshot;
    let need = |found: &Vec<(i64, f64)>| RANK_WINDOW - found.len() as i64;
    while need(&found) > 0 && hi >= 1 {
        let (segments, asked) = match first.take() {
            Some(read) => read,
            None => (
                postings::segments(conn, tenant.0, &lexeme, hi, per, need(&found)).await?,
                per,
            ),
        };
        // Fewer than asked for: none is left below.
        let exhausted = (segments.len() as i64) < asked;
        for s in segments {
            let start = seg_start(s.seg);
            if hi >= seg_start(s.seg + 1) {
                // Rowids above the segment that no segment holds yet (the newest, mostly).
                let lo = start + SEG_ROWS - 1;
                match gap(conn, tenant, req, tsq, share, lo, hi, need(&found)).await? {
                    Gap::Between(more) => found.extend(more),
                    Gap::Rest(rest) => return Ok(extended(found, rest)),
                }
                hi = start + SEG_ROWS - 1;
            }
            let n = need(&found);
            if n <= 0 {
                return Ok(found);
            }
            match s.postings {
                Some(list) => {
                    // The segment's rowids above what its postings cover (the newest segment,
                    // built at a pause, with appends since).
                    if hi > s.upto {
                        match gap(conn, tenant, req, tsq, share, s.upto, hi, n).await? {
                            Gap::Between(more) => found.extend(more),
                            Gap::Rest(rest) => return Ok(extended(found, rest)),
                        }
                        hi = s.upto;
                    }
                    let n = need(&found);
                    found.extend(newest_postings(&list, hi, n));
                }
                None => match gap(conn, tenant, req, tsq, share, start - 1, hi, n).await? {
                    Gap::Between(more) => found.extend(more),
                    Gap::Rest(rest) => return Ok(extended(found, rest)),
                },
            }
            hi = start - 1;
        }
        // Below every segment built or being built: never built (all of a table smaller than
        // a segment). And a word the statistics do not know after a statement's worth of
        // segments: a rare word in a large table, whose every segment would be asked for, a
        // probe each, where the GIN index hands over its few matches at once.
        if exhausted || share <= 0.0 {
            let n = need(&found);
            if n > 0 && hi >= 1 {
                let plan = unposted(share);
                found.extend(indexed_window(conn, tenant, req, tsq, plan, hi, n).await?);
            }
            return Ok(found);
        }
    }
    Ok(found)
}

/// The newest `n` of a segment's postings at or below rowid `hi`, newest first, with their
/// ts_rank: what a window takes from each segment it reads.
fn newest_postings(
    list: &postings::Postings,
    hi: i64,
    n: i64,
) -> impl Iterator<Item = (i64, f64)> + '_ {
    list.newest_first()
        .filter(move |p| p.0 <= hi)
        .take(n.max(0) as usize)
        .map(|(rowid, tf)| (rowid, postings::rank_of(tf)))
}

/// The newest `need` matches in rowids `lo + 1..=hi`, which no built segment holds, through the
/// index: by the bands' lexemes when there are few, as the banded plan's narrow steps do. A
/// wider gap (segments not built yet after an import, or a build that fell behind) is read
/// the way the plan without postings reads a window, from `hi` down, and that read is the
/// whole rest of the window.
#[allow(clippy::too_many_arguments)]
async fn gap(
    conn: &mut PgConnection,
    tenant: TenantId,
    req: &SearchRequest,
    tsq: &str,
    share: f64,
    lo: i64,
    hi: i64,
    need: i64,
) -> Result<Gap> {
    if band(hi) - band(lo + 1) < LEXEME_BANDS {
        // No `rowid > lo` in the statement: with both bounds PostgreSQL walked the rowid index
        // through the range testing every row (13,800 rows: 38–42 ms, against 2 through GIN).
        // The bands' rows below `lo` are dropped here instead; they come after every row above
        // it, newest first, so the limit never cut one of those.
        let bands = Range {
            hi: Some(hi),
            lo: None,
            from_band: None,
            bands: Some((band(lo + 1), band(hi))),
            walk: false,
            conversations: false,
        };
        let mut found = candidates(conn, tenant, req, tsq, bands, need).await?;
        found.retain(|c| c.0 > lo);
        return Ok(Gap::Between(found));
    }
    let rest = indexed_window(conn, tenant, req, tsq, unposted(share), hi, need).await?;
    Ok(Gap::Rest(rest))
}

/// The plan [`Plan::posted`] made `Plan::Postings(share)` of.
fn unposted(share: f64) -> Plan {
    if share > 0.0 {
        Plan::Bands(share)
    } else {
        Plan::Index
    }
}

/// What [`gap`] read.
enum Gap {
    /// The matches of the gap; the segments below it follow.
    Between(Vec<(i64, f64)>),
    /// The rest of the window, from the gap down.
    Rest(Vec<(i64, f64)>),
}

/// The window [`posted_window`] reads from `segments`, the newest ones up to `snapshot` as its
/// first statement reads them, and from the word's matches in the head above them (`head`,
/// when that statement read it), when it would ask PostgreSQL for nothing more: every rowid
/// down to the window's last match lies in the head or in a built segment, at or below what it
/// covers, until the window is full or no rowid is left below. `None` where it would (rows
/// above a segment's build or between segments that the head does not hold, a segment not
/// built, or more segments to read).
fn posted_from(
    segments: &[postings::Segment],
    head: Option<&postings::HeadMatches>,
    snapshot: i64,
) -> Option<Vec<(i64, f64)>> {
    let mut found: Vec<(i64, f64)> = Vec::with_capacity(RANK_WINDOW as usize);
    // The highest rowid not read yet.
    let mut hi = snapshot;
    if let Some(head) = head.filter(|h| h.lo < hi) {
        let newest = head.matches.iter().take(RANK_WINDOW as usize);
        found.extend(newest.map(|&(rowid, tf)| (rowid, postings::rank_of(tf))));
        hi = head.lo;
    }
    for s in segments {
        let need = RANK_WINDOW - found.len() as i64;
        if need <= 0 {
            return Some(found);
        }
        if seg_start(s.seg) > hi {
            // Wholly in the head, read above.
            continue;
        }
        let list = s.postings.as_ref()?;
        if hi >= seg_start(s.seg + 1) || hi > s.upto {
            return None;
        }
        found.extend(newest_postings(list, hi, need));
        hi = seg_start(s.seg) - 1;
    }
    (found.len() as i64 >= RANK_WINDOW || hi < 1).then_some(found)
}

impl PgStore {
    /// A ranked search without filters answered from a kept window whose rows for the page
    /// are kept too: only the check that nothing changed goes to PostgreSQL, batched with the
    /// other searches' checks (kept.rs), and no connection is held meanwhile. `None` when the
    /// window or some of its rows are not kept, or it changed.
    async fn page_from_kept_rows(
        &self,
        tenant: TenantId,
        req: &SearchRequest,
        tsq: &str,
        cursor: Option<(i64, i64)>,
    ) -> Result<Option<SearchPage>> {
        let Some(w) = self.windows.get(tsq, cursor.map(|c| c.0)) else {
            return Ok(None);
        };
        let (limit, offset) = (req.limit, cursor.map_or(0, |c| c.1));
        let (page, more) = page_of(w.scored(), offset, limit);
        let Some(rows) = w.kept_rows(page) else {
            return Ok(None);
        };
        let made = Instant::now();
        let check = self.checks.changed(tenant, w.seen.clone()).await?;
        // Changed: left for `kept_search` to bring forward or forget.
        if check.changed {
            return Ok(None);
        }
        self.windows.renew(tsq, &w, check.now, made);
        metrics::counter!("confab_store_search_windows_total", "outcome" => "kept").increment(1);
        let hits = page
            .iter()
            .zip(rows)
            .map(|(&(_, rank), row)| row.hit(rank, req))
            .collect();
        let snapshot = cursor.map_or(w.snapshot, |c| c.0);
        Ok(Some(SearchPage {
            hits,
            next_cursor: more.then_some(SearchCursor::Ranked {
                snapshot,
                offset: offset + limit,
            }),
        }))
    }

    /// A first page of a one-word query (`share` of messages hold it, 0 when not known) whose
    /// window is not kept, through the batched statements (first_batch.rs): its newest segments
    /// with the snapshot, then the page's rows. A window that needs more than the segments
    /// read (rows above what is built, say) is read on a connection from those segments on, as
    /// [`PgStore::kept_search`] reads any first page. The window is kept, as there.
    async fn first_posted(
        &self,
        tenant: TenantId,
        req: &SearchRequest,
        tsq: &str,
        share: f64,
    ) -> Result<SearchPage> {
        // Before the snapshot is taken: a window is never older than its age says.
        let made = Instant::now();
        let lexeme = posted_lexeme(tenant, req);
        let newest = self
            .firsts
            .newest(tenant.0, lexeme, segments_wanted(share))
            .await?;
        let Some(scored) = posted_from(&newest.segments, newest.head.as_ref(), newest.max) else {
            metrics::counter!("confab_store_search_first_pages_total", "path" => "alone")
                .increment(1);
            let mut conn = self.searching.acquire().await?;
            let plan = Plan::Postings(share);
            let read = Some((newest, made));
            return self
                .kept_search(&mut conn, tenant, req, tsq, plan, None, read)
                .await;
        };
        metrics::counter!("confab_store_search_first_pages_total", "path" => "batched")
            .increment(1);
        metrics::counter!("confab_store_search_windows_total", "outcome" => "walked").increment(1);
        let (page, more) = best_of(&scored, req.limit);
        let rows = self
            .firsts
            .rows(
                tenant.0,
                page.iter().map(|p| p.0).collect(),
                newest.rows_gen,
            )
            .await?;
        let hits = shown(&rows, &page, req);
        let snapshot = newest.max;
        let w = Window::unsorted(snapshot, newest.seen, made, scored);
        w.keep_rows(&rows);
        self.windows.put(tsq, w);
        Ok(SearchPage {
            hits,
            next_cursor: more.then_some(SearchCursor::Ranked {
                snapshot,
                offset: req.limit,
            }),
        })
    }

    /// A ranked search without filters, `cursor` its `(snapshot, offset)` if not a first page:
    /// from the window kept for its query while the tenant's messages stay as they were, else
    /// from a window read now and kept (kept.rs). `read`: a first page's newest segments, read
    /// already in a batch with the time before it (first_batch.rs), the window read from them.
    #[allow(clippy::too_many_arguments)]
    async fn kept_search(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        req: &SearchRequest,
        tsq: &str,
        plan: Plan,
        cursor: Option<(i64, i64)>,
        read: Option<(postings::Newest, Instant)>,
    ) -> Result<SearchPage> {
        let (limit, offset) = (req.limit, cursor.map_or(0, |c| c.1));
        let answer = |hits, more: bool, snapshot| SearchPage {
            hits,
            next_cursor: more.then_some(SearchCursor::Ranked {
                snapshot,
                offset: offset + limit,
            }),
        };
        if read.is_none()
            && let Some(w) = self.windows.get(tsq, cursor.map(|c| c.0))
        {
            let (page, more) = page_of(w.scored(), offset, limit);
            let made = Instant::now();
            let (since, rows, now) = checked_rows(conn, tenant, page, &w.seen).await?;
            if since == Since::Nothing {
                metrics::counter!("confab_store_search_windows_total", "outcome" => "kept")
                    .increment(1);
                w.keep_rows(&rows);
                self.windows.renew(tsq, &w, now, made);
                let hits = shown(&rows, page, req);
                return Ok(answer(hits, more, cursor.map_or(w.snapshot, |c| c.0)));
            }
            // Only a first page is brought forward: a cursor's page stays bounded at its own
            // snapshot, below the new matches.
            if cursor.is_none()
                && let Some(lo) = since.forwardable()
                && let Some(w) = forward(conn, tenant, tsq, &w, lo, since.near()).await?
            {
                metrics::counter!("confab_store_search_windows_total", "outcome" => "forward")
                    .increment(1);
                let (page, more) = page_of(w.scored(), 0, limit);
                let rows = match w.kept_rows(page) {
                    Some(kept) => page.iter().map(|p| p.0).zip(kept).collect(),
                    None => hit_rows(conn, tenant, page).await?,
                };
                w.keep_rows(&rows);
                let hits = shown(&rows, page, req);
                let snapshot = w.snapshot;
                self.windows.put(tsq, w);
                return Ok(answer(hits, more, snapshot));
            }
            self.windows.forget(tsq);
        }
        metrics::counter!("confab_store_search_windows_total", "outcome" => "walked").increment(1);
        // Before the snapshot is taken: a window is never older than its age says.
        let mut made = std::time::Instant::now();
        // A first page of one word: its newest segments read with the snapshot, one
        // statement less (or read already, in a batch: first_batch.rs).
        let (max, seen, first) = match (read, plan) {
            (Some((newest, at)), _) => {
                made = at;
                (
                    newest.max,
                    newest.seen,
                    Some((newest.segments, newest.asked)),
                )
            }
            (None, Plan::Postings(share)) if cursor.is_none() => {
                let lexeme = posted_lexeme(tenant, req);
                let per = segments_per(share);
                let (max, seen, segments) =
                    postings::newest_segments(conn, tenant.0, &lexeme, per, RANK_WINDOW).await?;
                (max, seen, Some((segments, per)))
            }
            (None, _) => {
                let (max, seen) = kept::snapshot(conn).await?;
                (max, seen, None)
            }
        };
        let snapshot = cursor.map_or(max, |c| c.0);
        let scored = window(conn, tenant, req, tsq, plan, snapshot, first).await?;
        let (page, more) = page_of(&scored, offset, limit);
        let rows = hit_rows(conn, tenant, page).await?;
        let hits = shown(&rows, page, req);
        // A window bounded below the largest rowid (an old cursor's) lacks the newer matches
        // a first page needs: not kept.
        if snapshot >= max {
            let w = Window::new(max, seen, made, scored);
            w.keep_rows(&rows);
            self.windows.put(tsq, w);
        }
        Ok(answer(hits, more, snapshot))
    }

    pub async fn search(&self, tenant: TenantId, req: &SearchRequest) -> Result<SearchPage> {
        let tsq = tsquery(tenant.0, &req.query);
        let keeps = self.keeps_windows && req.filter.is_empty();
        if keeps
            && req.sort == SearchSort::Relevance
            && let Some(page) = self
                .page_from_kept_rows(tenant, req, &tsq, ranked_cursor(req))
                .await?
        {
            return Ok(page);
        }
        // A first page of a query no window is kept for: read once for all the searches of it
        // that come meanwhile; they wait here, holding no connection (flights.rs).
        let leader = if keeps
            && req.sort == SearchSort::Relevance
            && req.cursor.is_none()
            && self.windows.get(&tsq, None).is_none()
        {
            match self.flights.join(&tsq).await {
                Flight::Lead(leader) => Some(leader),
                Flight::Followed => {
                    if let Some(page) = self.page_from_kept_rows(tenant, req, &tsq, None).await? {
                        return Ok(page);
                    }
                    None
                }
            }
        } else {
            None
        };
        let tag = tenant_tag(tenant.0.as_bytes());
        // A first page of one word whose window is not kept (the flight's leader: a kept one is
        // brought forward below), its postings kept: its statements shared with the other
        // first searches waiting (first_batch.rs), on no connection of its own.
        if leader.is_some()
            && self.postings
            && let Some(shares) = self.frequencies.cached()
            && let Plan::Postings(share) = plan(req, &tag, &shares).posted(req)
        {
            return self.first_posted(tenant, req, &tsq, share).await;
        }
        // On a connection of the searches' own pool (mod.rs, `open`, says why); the others
        // wait for one here, holding nothing.
        let mut conn = self.searching.acquire().await?;
        let shares = self.frequencies.get(&mut conn).await;
        let mut plan = plan(req, &tag, &shares);
        if self.postings {
            plan = plan.posted(req);
        }
        if req.filter.names_conversations() && !matches!(plan, Plan::Walk(_)) {
            if driven::from_conversations(&mut conn, tenant, req, plan.share()).await? {
                plan = Plan::Conversations;
            }
        } else if !req.filter.is_empty() {
            metrics::counter!("confab_store_search_filtered_total", "from" => "index").increment(1);
        }
        // Only a ranked search without filters is bounded whatever the data: every plan reads
        // one window of matches. With filters, a search reads matches until enough pass them;
        // newest first, a word planned for the index has every match read and sorted (all of
        // a word in 3 % of a hundred million messages).
        let bounded = req.filter.is_empty() && req.sort == SearchSort::Relevance;
        if bounded {
            return self
                .reading(&mut conn, tenant, req, &tsq, plan, keeps)
                .await;
        }
        // Past the request's time limit its answer is thrown away, but a statement that has
        // started runs on in PostgreSQL, holding a core there and this connection here,
        // whatever happens to the request: so PostgreSQL stops it there itself. `SET LOCAL` in
        // a transaction of the search's own, so that the limit ends with it even when the
        // request is dropped midway (sqlx rolls a dropped transaction back before the
        // connection is used again), and so that it holds behind PgBouncer's transaction
        // pooling too, where a connection's session settings would reach other clients. A
        // limit on each statement rather than on the search: a search is a few statements,
        // and what matters is that none runs on long after the request is gone. One round
        // trip more: `BEGIN` and the `SET` go as one.
        //
        // Long ones take turns. Two searches that walk a common word's matches hold a core of
        // PostgreSQL each, and on a small machine beside its server that is every core: the
        // short requests beside them ran at 0.12 × the HTTP floor. A statement cannot be
        // paused, so each search first runs with a budget as its limit; past it, PostgreSQL
        // stops it, and it runs again from the start once a turn is free, for what is left of
        // its time. As on SQLite (`sqlite/handoff.rs`), as many at once as there are turns
        // (`StoreOptions::long_searches`). A search that finds a turn free takes it and runs
        // with no budget: alone, none loses it.
        let started = Instant::now();
        let limit = self.read_timeout;
        if let Ok(_turn) = self.long_searches.try_acquire() {
            return self
                .limited(&mut conn, tenant, req, &tsq, plan, keeps, limit)
                .await
                .map_err(timed_out);
        }
        let budget = limit.map_or(LONG_SEARCH_BUDGET, |l| l.min(LONG_SEARCH_BUDGET));
        let out = self
            .limited(&mut conn, tenant, req, &tsq, plan, keeps, Some(budget))
            .await;
        if limit == Some(budget) || !matches!(&out, Err(e) if super::canceled(e)) {
            return out.map_err(timed_out);
        }
        drop(conn);
        metrics::counter!("confab_store_reads_handed_over_total").increment(1);
        // Never closed.
        let _turn = self.long_searches.acquire().await;
        let left = limit.map(|l| l.saturating_sub(started.elapsed()));
        if left.is_some_and(|l| l < Duration::from_millis(1)) {
            return Err(StoreError::read_timed_out());
        }
        let mut conn = self.searching.acquire().await?;
        self.limited(&mut conn, tenant, req, &tsq, plan, keeps, left)
            .await
            .map_err(timed_out)
    }

    /// [`Self::reading`] in a transaction of its own whose statements PostgreSQL stops past
    /// `limit` ([`PgStore::search`] says why); as it is without one.
    #[allow(clippy::too_many_arguments)]
    async fn limited(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        req: &SearchRequest,
        tsq: &str,
        plan: Plan,
        keeps: bool,
        limit: Option<Duration>,
    ) -> Result<SearchPage> {
        let Some(limit) = limit else {
            return self.reading(conn, tenant, req, tsq, plan, keeps).await;
        };
        let ms = limit.as_millis().clamp(1, i32::MAX as u128);
        let mut tx = sqlx::Connection::begin_with(
            &mut *conn,
            sqlx::AssertSqlSafe(format!("BEGIN; SET LOCAL statement_timeout = {ms}")),
        )
        .await?;
        let out = self.reading(&mut tx, tenant, req, tsq, plan, keeps).await;
        // Dropped, not rolled back here: sqlx queues the `ROLLBACK`, and sends it with the
        // ping it makes of every connection given back to the pool, off this request's path.
        drop(tx);
        out
    }

    /// A search that reads rows, on `conn` (one of the searches' own, see [`PgStore::search`]).
    async fn reading(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        req: &SearchRequest,
        tsq: &str,
        plan: Plan,
        keeps: bool,
    ) -> Result<SearchPage> {
        let limit = req.limit;
        match req.sort {
            SearchSort::Relevance => {
                let cursor = ranked_cursor(req);
                if keeps {
                    return self
                        .kept_search(conn, tenant, req, tsq, plan, cursor, None)
                        .await;
                }
                metrics::counter!("confab_store_search_windows_total", "outcome" => "walked")
                    .increment(1);
                let (snapshot, offset) = match cursor {
                    Some(c) => c,
                    None => (postings::newest_rowid(&mut *conn).await?, 0),
                };
                // A walk with filters is one statement, bounded by the request's time limit
                // ([`PgStore::search`]); without, it is bounded by [`walk_rows`].
                let (hits, more) = match plan.up_to(snapshot) {
                    Plan::Index => {
                        let range = Range::to(snapshot);
                        ranked_page(conn, tenant, req, tsq, range, offset).await?
                    }
                    Plan::Walk(_) if !req.filter.is_empty() => {
                        let range = Range {
                            walk: true,
                            ..Range::to(snapshot)
                        };
                        ranked_page(conn, tenant, req, tsq, range, offset).await?
                    }
                    Plan::Conversations => {
                        let range = Range {
                            walk: true,
                            conversations: true,
                            ..Range::to(snapshot)
                        };
                        ranked_page(conn, tenant, req, tsq, range, offset).await?
                    }
                    _ => {
                        let scored = window(conn, tenant, req, tsq, plan, snapshot, None).await?;
                        let (page, more) = page_of(&scored, offset, limit);
                        (hits(conn, tenant, req, page).await?, more)
                    }
                };
                let next_cursor = more.then_some(SearchCursor::Ranked {
                    snapshot,
                    offset: offset + limit,
                });
                Ok(SearchPage { hits, next_cursor })
            }
            SearchSort::Recent => {
                if let Plan::Walk(share) = plan
                    && req.filter.is_empty()
                {
                    return recent_walked(conn, tenant, req, tsq, share).await;
                }
                let mut q = QueryBuilder::<Postgres>::new(
                    "SELECT m.rowid, m.conversation_id, m.id, m.seq, m.role, m.content, m.created_at, ts_rank(m.fts, ",
                );
                q.push_bind(tsq.to_owned()).push("::tsquery)::float8");
                let all = Range {
                    hi: None,
                    lo: None,
                    from_band: None,
                    bands: None,
                    walk: matches!(plan, Plan::Walk(_) | Plan::Conversations),
                    conversations: matches!(plan, Plan::Conversations),
                };
                push_candidates(&mut q, tenant, req, tsq, all);
                q.push(" ORDER BY m.rowid DESC LIMIT ").push_bind(limit + 1);
                let rows = q.build().persistent(false).fetch_all(&mut *conn).await?;
                let more = rows.len() as i64 > limit;
                let mut hits = Vec::with_capacity(rows.len().min(limit as usize));
                let mut last_rowid = 0;
                for r in rows.iter().take(limit as usize) {
                    last_rowid = r.try_get::<i64, _>(0)?;
                    hits.push(hit(r, r.try_get(7)?, req)?);
                }
                let next_cursor = more.then_some(SearchCursor::Recent { before: last_rowid });
                Ok(SearchPage { hits, next_cursor })
            }
        }
    }

    /// Builds the search postings of every segment not built, the newest one up to its newest
    /// rowid (postings.rs); none where migration 0009's triggers are missing.
    pub async fn build_search_postings(&self) -> Result<usize> {
        if !self.postings {
            return Ok(0);
        }
        // Asked for: everything written so far, the newest segment as far as it goes.
        Ok(postings::build(&self.pool, postings::Head::All)
            .await?
            .segments)
    }

    /// Lays out the search postings word by word if it is due (layout.rs).
    pub async fn lay_out_search_postings(&self) -> Result<bool> {
        if !self.postings {
            return Ok(false);
        }
        super::layout::lay_out(&self.pool).await
    }

    /// Recomputes every message's tokens (after a change to the tokenizer rules), in batches
    /// so no single statement holds the whole table.
    pub async fn rebuild_search_index(&self) -> Result<()> {
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(
                "SELECT rowid, tenant_id, content FROM messages WHERE rowid > $1 ORDER BY rowid LIMIT 500",
            )
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = last.try_get(0)?;
            let mut ids = Vec::with_capacity(rows.len());
            let mut vectors = Vec::with_capacity(rows.len());
            for r in &rows {
                ids.push(r.try_get::<i64, _>(0)?);
                vectors.push(super::fts::tsvector(r.try_get(1)?, r.try_get(2)?));
            }
            sqlx::query(
                "UPDATE messages m SET fts = v.fts::tsvector FROM unnest($1::bigint[], $2::text[]) AS v(r, fts) \
                 WHERE m.rowid = v.r",
            )
            .bind(ids)
            .bind(vectors)
            .execute(&self.pool)
            .await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::search::parse_query;

    /// A tripwire: `tests/search_window.rs` lays its words out around the rows walked first
    /// (its `NEWEST`), so that each word takes the path it names; with another probe it would
    /// still pass, without proving those paths. Change both together.
    #[test]
    fn the_probe_is_the_one_search_window_lays_its_words_around() {
        assert_eq!(PROBE_ROWS, 1024);
    }

    proptest::proptest! {
        /// Newest first or oldest first, with scores that tie often, a window comes out best
        /// first and newest first among equals, and a first page taken from it as read
        /// (`best_of`) is that order's first hits.
        #[test]
        fn best_first_orders_by_score_then_newest(
            tfs in proptest::collection::vec(1u32..5, 0..300),
            newest_first in proptest::bool::ANY,
        ) {
            let mut scored: Vec<(i64, f64)> = tfs
                .iter()
                .enumerate()
                .map(|(i, &tf)| (i as i64 * 7 % 1009, postings::rank_of(tf)))
                .collect();
            scored.sort_unstable_by_key(|s| s.0);
            scored.dedup_by_key(|s| s.0);
            if newest_first {
                scored.reverse();
            }
            let mut want = scored.clone();
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
            for limit in [0, 1, 20, 40, 400] {
                let (page, more) = best_of(&scored, limit);
                let n = (limit as usize).min(want.len());
                proptest::prop_assert_eq!(&page[..], &want[..n]);
                proptest::prop_assert_eq!(more, want.len() > limit as usize);
            }
            best_first(&mut scored);
            proptest::prop_assert_eq!(scored, want);
        }
    }

    fn req(q: &str) -> SearchRequest {
        SearchRequest {
            query: parse_query(q).unwrap(),
            filter: SearchFilter::default(),
            sort: SearchSort::Relevance,
            limit: 20,
            cursor: None,
        }
    }

    /// A walk at `share` (a sum of shares is not exact).
    fn walks(p: Plan, share: f64) -> bool {
        matches!(p, Plan::Walk(s) if (s - share).abs() < 1e-9)
    }

    #[test]
    fn the_plan_follows_the_words_frequency() {
        let freq: HashMap<String, f64> = [
            ("tka", 0.8),
            ("tkala", 0.01),
            ("tlopo", 0.03),
            ("tpida", 0.3),
            ("tsome", 0.001),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let plan = |q| plan(&req(q), "t", &freq);
        assert_eq!(plan("ka"), Plan::Walk(0.8));
        // Every plan of one word reads its postings where they are kept, a walk's too.
        assert_eq!(plan("ka").posted(&req("ka")), Plan::Postings(0.8));
        assert_eq!(plan("lopo").posted(&req("lopo")), Plan::Postings(0.03));
        assert_eq!(plan("sinika").posted(&req("sinika")), Plan::Postings(0.0));
        assert!(walks(plan("ka*").posted(&req("ka*")), 0.81));
        assert_eq!(plan("lopo"), Plan::Bands(0.03));
        // However rare, if known, unless its first step would reach over most of the rows.
        assert_eq!(plan("some"), Plan::Bands(0.001));
        assert_eq!(plan("some").up_to(1_000_000), Plan::Index);
        assert_eq!(plan("some").up_to(3_000_000), Plan::Bands(0.001));
        assert_eq!(plan("lopo").up_to(1_000), Plan::Bands(0.03));
        // Not among the most common: rare.
        assert_eq!(plan("sinika"), Plan::Index);
        // Every group must match: as common as the rarest; any term of a group: their sum.
        assert_eq!(plan("lopo ka"), Plan::Bands(0.03));
        assert_eq!(plan("ka sinika"), Plan::Index);
        assert!(walks(plan("lopo OR pida"), 0.33));
        assert!(walks(plan("\"pida ka\""), 0.3));
        assert_eq!(plan("\"lopo ka\""), Plan::Bands(0.03));
        // A prefix: the lexemes it starts, together.
        assert_eq!(plan("kal*"), Plan::Bands(0.01));
        assert!(walks(plan("ka*"), 0.81));
        // Exclusions narrow it, never widen it: the bound stays the groups'.
        assert_eq!(plan("lopo -ka"), Plan::Bands(0.03));
    }

    #[test]
    fn a_wide_step_asks_the_summary_only_for_a_sparse_word() {
        // Narrow: the rowid index, however sparse.
        assert!(!by_summary(MAX_BAND_ROWS, 0.0001));
        // Wide and sparse (an unfiltered step of a rare word): the summary.
        assert!(by_summary(MAX_BAND_ROWS + 1, 0.001));
        // Wide because a filter keeps few of a word on most pages: the rowid index.
        assert!(!by_summary(311_000, 0.03));
        assert!(!by_summary(10 * MAX_BAND_ROWS, SUMMARY_SHARE));
    }

    #[test]
    fn band_queries_name_each_band_once() {
        assert_eq!(in_bands("'tx'", 3, 5), "('tx') & ('~b5' | '~b4' | '~b3')");
        assert_eq!(band(4095), 0);
        assert_eq!(band(4096), 1);
    }
}
