//! Each word's postings in rowid order (migration 0009), built off the request path, so that a
//! ranked search of one word reads its newest matches without visiting their rows.
//!
//! The GIN index says which messages hold a word, not in rowid order nor how often: a window of
//! the newest 1,000 matches of a word in a few messages per thousand fetched some 1,000–1,300
//! heap rows (19 ms of CPU). Here the rowids are cut into segments of [`SEG_ROWS`], and a
//! segment holds one row per lexeme with its matches packed in rowid order, each with the count
//! of positions that ts_rank ranks by: the same window is read from a dozen rows.
//!
//! **Built, not maintained.** No append writes here. The upkeep ([`spawn_builder`]) builds a
//! segment once every rowid in it has been handed out, and the newest segment up to the newest
//! rowid, from the tokens the messages store (`fts`, sent in PostgreSQL's binary form and
//! grouped here, a third of what grouping them in SQL cost); a segment built up to a rowid in
//! it is extended from there, its new rows' postings appended ([`extend_segment`]), so the
//! newest one follows the appends every second or so. Searches read the rowids above what the
//! newest segment covers (the head) from their tokens in the statement first searches share
//! when there are few ([`HEAD_MOST`]), else, with any segment not built, through the GIN
//! index, as before.
//!
//! **Never stale.** A segment counts only while `search_segments.built` is true. Every statement
//! that inserts, deletes or updates messages sets it false for the segments it touched
//! (migration 0009's triggers), in its own transaction, so a search sees the change and the
//! mark together. A build that races such a change is refused by PostgreSQL: the builder reads
//! under REPEATABLE READ and marks its segment built at the end, and a segment row changed
//! since its snapshot is a serialization failure. A writer whose mark ran before the
//! segment's row existed is waited for (every transaction running when the row was created has
//! ended before the build's snapshot is taken), so none slips between the two.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::row_cache::RowCache;
use crate::error::{Result, StoreError};

/// Rowids per segment (migration 0009's triggers divide by it: change both together).
pub(super) const SEG_ROWS: i64 = 32_768;
// A segment is whole bands (search.rs reads the rowids between segments by their bands).
const _: () = assert!(SEG_ROWS % super::fts::BAND_ROWS == 0);
/// A packed posting: `(rowid - seg * SEG_ROWS) * TF_SPAN + tf`; tf is at most 256 (the
/// positions a tsvector keeps per lexeme).
const TF_SPAN: u32 = 512;
/// Bytes a packed posting takes in `search_postings.postings` (migration 0010), big-endian.
const POSTING_BYTES: usize = 3;
const _: () = assert!((SEG_ROWS as u64) * (TF_SPAN as u64) <= 1 << (8 * POSTING_BYTES));
/// How long a build waits for the writes in flight when its segment's row was created.
const WRITERS_WAIT: Duration = Duration::from_secs(2);
/// The advisory lock's first key: one builder per segment, whichever process.
const LOCK_KEY: i32 = 0x636f_6e66;

/// The segment of `rowid`.
pub(super) fn seg_of(rowid: i64) -> i64 {
    rowid.div_euclid(SEG_ROWS)
}

/// The first rowid of segment `seg`.
pub(super) fn seg_start(seg: i64) -> i64 {
    seg * SEG_ROWS
}

/// `ts_rank(fts, q)` for a query of one lexeme, of a message whose tokens hold it at `tf`
/// positions, all of the default weight (confab writes no weights): [`ts_rank_of`], looked up.
/// Every posting of every window is ranked, and computing it (a division for each position)
/// was most of the time a first search spent reading its postings (docs/performance.md,
/// fifty-third session).
pub(super) fn rank_of(tf: u32) -> f64 {
    RANKS
        .get(tf as usize)
        .copied()
        .unwrap_or_else(|| ts_rank_of(tf))
}

/// [`ts_rank_of`] of every `tf` a packed posting can hold.
static RANKS: [f64; TF_SPAN as usize] = {
    let mut ranks = [0.0; TF_SPAN as usize];
    let mut tf = 0;
    while tf < TF_SPAN {
        ranks[tf as usize] = ts_rank_of(tf);
        tf += 1;
    }
    ranks
};

/// PostgreSQL's `calc_rank_or` (tsrank.c) for one lexeme at `tf` positions, step for step, in
/// `float` where it computes in `float`, so the scores are the ones the index path gives, to
/// the bit.
const fn ts_rank_of(tf: u32) -> f64 {
    const D: f32 = 0.1;
    let mut resj = 0.0f32;
    let mut j = 0;
    while j < if tf > 1 { tf } else { 1 } {
        resj += D / ((j + 1) * (j + 1)) as f32;
        j += 1;
    }
    // The first position has the greatest weight (all are equal): `jm` is 0.
    let inner = D + resj - D / 1.0;
    let res = (inner as f64 / 1.644_934_066_85) as f32;
    res as f64
}

/// One segment below a search's snapshot: `None` while it is not built, or when a batch's
/// statement did not send it (the GIN index reads it then), else the word's postings in it up
/// to rowid `upto`: the newest `need` of them at least, all when the segment holds rowids
/// above the search's.
pub(super) struct Segment {
    pub seg: i64,
    pub upto: i64,
    pub postings: Option<Postings>,
}

/// A segment's postings as PostgreSQL sent them, packed, in the row that brought them: read
/// newest first and only as far as a window needs. Unpacked into a vector of their own, each
/// segment cost a 16 kB allocation and its free (glibc's large-chunk path, which first
/// consolidates its fast bins), and most of a window's segments are read only in part
/// (docs/performance.md, forty-first session).
pub(super) struct Postings {
    seg: i64,
    /// None for a segment that holds none of the word's postings.
    row: Option<PgRow>,
    at: usize,
}

impl Postings {
    /// The postings of segment `seg` in column `at` of `row`, checked to be bytes.
    fn new(seg: i64, row: Option<PgRow>, at: usize) -> Result<Postings> {
        if let Some(row) = &row {
            row.try_get::<Option<&[u8]>, _>(at)?;
        }
        Ok(Postings { seg, row, at })
    }

    /// `(rowid, tf)`, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        // Checked in `new`: the column is bytes, or NULL (a segment without the word).
        let bytes = self
            .row
            .as_ref()
            .map(|r| r.try_get::<Option<&[u8]>, _>(self.at));
        newest_first(
            self.seg,
            bytes.and_then(|b| b.ok().flatten()).unwrap_or_default(),
        )
    }
}

/// Segment `seg`'s postings packed `POSTING_BYTES` each in `bytes`, as `(rowid, tf)`, newest
/// first; a cut posting at the end (there is none: slices are whole postings) is left out.
fn newest_first(seg: i64, bytes: &[u8]) -> impl Iterator<Item = (i64, u32)> + '_ {
    let whole = &bytes[..bytes.len() - bytes.len() % POSTING_BYTES];
    whole.rchunks_exact(POSTING_BYTES).map(move |b| {
        let p = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        (seg_start(seg) + i64::from(p / TF_SPAN), p % TF_SPAN)
    })
}

/// The most segments one statement of [`segments`] asks for.
pub(super) const MOST_SEGMENTS: i64 = 64;

/// How many segments a statement of [`segments`] asks for when `n` are wanted: `n` rounded up
/// to a power of two, at most [`MOST_SEGMENTS`].
///
/// The count is written into the statement rather than bound: with `LIMIT $n` PostgreSQL's
/// generic plan guesses a tenth of the table's rows and looks four times costlier than the
/// plan for the value at hand (38.65 against 9.81 on the benchmark's store), so it planned
/// every execution anew, 0.4 ms each time. With a literal, each of the seven statements is
/// planned once per connection.
pub(super) fn segments_limit(n: i64) -> i64 {
    (asked(n) as u64).next_power_of_two() as i64
}

/// The segments at or below rowid `hi`'s that have a row, newest first, at most `limit`
/// (rounded by [`segments_limit`]), each with `lexeme`'s newest `need` postings when built. A
/// segment with no row has never been built.
///
/// A segment that holds rowids above `hi` (a page bounded by an older cursor's snapshot, under
/// the newest segment's build) is read whole, since its newest postings may all lie above;
/// the others only as far as `need` reaches from their end (migration 0010 says why).
pub(super) async fn segments(
    conn: &mut PgConnection,
    tenant: Uuid,
    lexeme: &str,
    hi: i64,
    limit: i64,
    need: i64,
) -> Result<Vec<Segment>> {
    static SQL: LazyLock<Vec<String>> = LazyLock::new(|| by_limit(|n| segments_sql("$4", n)));
    let rows = sqlx::query(sqlx::AssertSqlSafe(statement(&SQL, limit)))
        .bind(tenant)
        .bind(lexeme)
        .bind(tail_bytes(need))
        .bind(hi)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.extend(segment(r, 0)?);
    }
    Ok(out)
}

/// [`segments`] up to the newest rowid, read in one statement with it and the statement's
/// snapshot (`kept::snapshot`'s `max` and `seen`): a first page's window without a statement
/// of its own for them.
pub(super) async fn newest_segments(
    conn: &mut PgConnection,
    tenant: Uuid,
    lexeme: &str,
    limit: i64,
    need: i64,
) -> Result<(i64, String, Vec<Segment>)> {
    static SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
        by_limit(|n| {
            format!(
                "SELECT x.max, x.seen, s.seg, s.built, s.postings, s.upto FROM {now} x \
                 LEFT JOIN LATERAL ({segments}) s ON true",
                now = super::kept::NOW,
                segments = segments_sql("x.max", n),
            )
        })
    });
    let rows = sqlx::query(sqlx::AssertSqlSafe(statement(&SQL, limit)))
        .bind(tenant)
        .bind(lexeme)
        .bind(tail_bytes(need))
        .fetch_all(&mut *conn)
        .await?;
    let first = rows
        .first()
        .ok_or_else(|| StoreError::Corrupt("no row for the newest rowid".into()))?;
    let (max, seen) = (first.try_get(0)?, first.try_get(1)?);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.extend(segment(r, 2)?);
    }
    Ok((max, seen, out))
}

/// What [`newest_segments_of`] reads for a first page: the newest rowid, the statement's
/// snapshot and the newest segments with their postings, `asked` of them asked for (fewer
/// came: there are no more); and the word's matches in the head, when it was read.
pub(super) struct Newest {
    pub max: i64,
    pub seen: String,
    pub segments: Vec<Segment>,
    pub asked: i64,
    pub head: Option<HeadMatches>,
    /// The generation of the tenant's rows kept in row_cache.rs, as the statement's check left
    /// it: rows read after it are kept in it.
    pub rows_gen: u64,
}

/// A word's matches among the rows above what the newest built segment covers (the head,
/// rows appended since its last build or extension), read from their tokens in the same
/// statement as the segments: every match in rowids `lo + 1..=max`, newest first, at most
/// [`RANK_WINDOW`](crate::search::RANK_WINDOW), as `(rowid, tf)`.
pub(super) struct HeadMatches {
    pub lo: i64,
    pub matches: Vec<(i64, u32)>,
}

/// The most rowids a head may span for [`newest_segments_of`] to read it: its rows' tokens
/// (a few hundred bytes each) are read once for the whole statement and matched here against
/// every word of the batch, so the statement's cost grows with the head. A larger head (writes
/// faster than the builder's extensions follow, or a newest segment not built) is read as
/// before, through the GIN index, on a connection of the search's own.
pub(super) const HEAD_MOST: i64 = 2_048;

/// The statement of [`newest_segments_of`]: `$1` the tenants, `$2` the lexemes, `$3` the
/// most segments of each; `$4` and `$5` the tenants and snapshots of the row cache's checks
/// (row_cache.rs). Its rows, in this order:
///
/// - `i` -2: the newest segments (`seg`, `built`, `upto`), as many as a word of the batch asks
///   for at most, with the statement's newest rowid and snapshot, newest first, or one row
///   without a segment when there is none. Every word's segments are the first of these, as
///   many as it asks for.
/// - `i` -1: each check's answer (in the fifth column) and tenant.
/// - `i` 0: the head's rows of the batch's tenants, newest first, each with its tokens
///   (`tsvectorsend`), its tenant and the head's `lo`, or a single row without a rowid when the
///   head holds none of theirs, and none when the head is over [`HEAD_MOST`] (or no segment
///   is built).
/// - `i` from 1: the word's postings rows among its segments, newest first: each segment's
///   newest [`RANK_WINDOW`] postings (all of them in a segment that holds rowids above the
///   snapshot), and only while the rows before it in that order hold fewer than those (by
///   their whole lengths), so a word never sends more segments than its window can use.
///
/// All parts are one statement, so they share its snapshot, and its newest rowid is read once
/// (`x`).
///
/// [`RANK_WINDOW`]: crate::search::RANK_WINDOW
pub(super) static NEWEST_OF: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH x AS MATERIALIZED {now}, \
         g AS MATERIALIZED (SELECT s.seg, s.built, s.upto FROM x CROSS JOIN LATERAL (\
           SELECT seg, built, upto FROM search_segments WHERE seg <= x.max / {SEG_ROWS} \
           ORDER BY seg DESC LIMIT (SELECT max(n) FROM unnest((SELECT $3::int8[])) AS u(n))) s), \
         b AS MATERIALIZED (SELECT coalesce(array_agg(g.seg ORDER BY g.seg DESC), '{{}}') AS segs, \
           max(g.upto) FILTER (WHERE g.seg = x.max / {SEG_ROWS}) AS top FROM x LEFT JOIN g ON true) \
         SELECT -2, x.max, x.seen, g.seg, g.built, NULL::bytea, g.upto, NULL::uuid \
         FROM x LEFT JOIN g ON true \
         UNION ALL \
         SELECT q.i, NULL, NULL, p.seg, NULL, CASE WHEN p.seg < x.max / {SEG_ROWS} OR b.top <= x.max \
           THEN substring(p.postings FROM greatest(1, octet_length(p.postings) - {bytes} + 1) \
           FOR {bytes}) ELSE p.postings END, NULL, NULL \
         FROM x CROSS JOIN b \
         CROSS JOIN unnest((SELECT $1::uuid[]), (SELECT $2::text[]), (SELECT $3::int8[])) \
         WITH ORDINALITY AS q(t, l, n, i) JOIN LATERAL (\
           SELECT z.seg, z.postings, sum(octet_length(z.postings)) OVER (ORDER BY z.seg DESC) AS sent \
           FROM search_postings z WHERE z.tenant_id = q.t AND z.lexeme = q.l \
           AND z.seg BETWEEN b.segs[least(q.n, cardinality(b.segs))] AND x.max / {SEG_ROWS}\
         ) p ON p.sent - octet_length(p.postings) < {bytes} OR b.top > x.max \
         UNION ALL \
         SELECT 0, NULL, NULL, m.rowid, NULL, tsvectorsend(m.fts), h.upto, m.tenant_id \
         FROM x CROSS JOIN LATERAL (\
           SELECT upto FROM search_segments WHERE built AND seg <= x.max / {SEG_ROWS} \
           ORDER BY seg DESC LIMIT 1) h \
         LEFT JOIN LATERAL (\
           SELECT rowid, fts, tenant_id FROM messages WHERE rowid > h.upto AND rowid <= x.max \
           AND tenant_id = ANY((SELECT $1::uuid[])::uuid[]) ORDER BY rowid DESC LIMIT {HEAD_MOST}\
         ) m ON true \
         WHERE x.max - h.upto <= {HEAD_MOST} \
         UNION ALL \
         SELECT -1, NULL, NULL, NULL, {updated}, NULL, NULL, v.t \
         FROM unnest((SELECT $4::uuid[]), (SELECT $5::text[])::txid_snapshot[]) AS v(t, s) \
         ORDER BY 1, 4 DESC",
        now = super::kept::NOW,
        updated = super::kept::UPDATED_UNSEEN,
        bytes = tail_bytes(crate::search::RANK_WINDOW),
    )
});

/// [`newest_segments`] for many first pages in one statement (first_batch.rs): for each
/// `(tenant, lexeme, limit)`, in order, its segments, each with the newest [`RANK_WINDOW`]
/// postings, all under one snapshot (every answer's `max` and `seen` are the statement's);
/// and each word's matches in the head when it holds at most [`HEAD_MOST`] rows, its rows'
/// tokens read once for all.
///
/// Its arrays are read through subqueries (kept.rs's `FORWARD_NEAR` says why), and a word's
/// limit is its own row's, so the statement is planned once per connection whatever the batch.
/// The segments are read once for the batch, and each word's postings are one range of the
/// primary key, from the lowest segment it asks for to the newest: the segments joined to
/// each word's postings in the statement (by hash, before the fifty-third session) cost two
/// scans of `search_segments` and a hash table a word, and every segment's row of the
/// range (8.3 kB a word on the benchmark's store, of which a window uses 3.5): with both
/// gone, the statement runs at 1.2–1.4 times the rate (docs/performance.md, fifty-third
/// session). Without the lower bound the generic plan, costed for a tenth of the segments,
/// read the word's rows in every segment.
///
/// Without the head's matches a first search whose window reached above the newest segment's
/// build left the batch for statements of its own (the GIN index's bands, the page's rows), at
/// about four times the cost (docs/performance.md, fiftieth and fifty-first sessions).
///
/// [`RANK_WINDOW`]: crate::search::RANK_WINDOW
pub(super) async fn newest_segments_of(
    pool: &PgPool,
    keys: &[(Uuid, String, i64)],
    cache: &RowCache,
) -> Result<Vec<Newest>> {
    let mut tenants = Vec::with_capacity(keys.len());
    let mut lexemes = Vec::with_capacity(keys.len());
    let mut limits = Vec::with_capacity(keys.len());
    for (t, l, n) in keys {
        tenants.push(*t);
        lexemes.push(l.as_str());
        limits.push(asked(*n));
    }
    let asks = cache.asks(tenants.iter().copied());
    let (asked_of, asked_seen): (Vec<Uuid>, Vec<&str>) =
        asks.iter().map(|a| (a.tenant, a.seen.as_str())).unzip();
    // Before the statement: a snapshot kept is never younger than its age says.
    let made = Instant::now();
    let rows = sqlx::query(sqlx::AssertSqlSafe(NEWEST_OF.as_str()))
        .bind(&tenants)
        .bind(lexemes)
        .bind(limits)
        .bind(asked_of)
        .bind(asked_seen)
        .fetch_all(pool)
        .await?;
    // The batch's segments, newest first, with the statement's newest rowid and snapshot.
    let mut listed: Vec<(i64, bool, i64)> = Vec::new();
    let mut snapshot: Option<(i64, String)> = None;
    let mut postings: Vec<Vec<(i64, PgRow)>> = (0..keys.len()).map(|_| Vec::new()).collect();
    let mut head = HeadRows::new(keys);
    // Unanswered, a check counts as a change.
    let mut changed = vec![true; asks.len()];
    for r in rows {
        match r.try_get::<i64, _>(0)? {
            -2 => {
                snapshot = Some((r.try_get(1)?, r.try_get(2)?));
                if let Some(seg) = r.try_get::<Option<i64>, _>(3)? {
                    listed.push((seg, r.try_get(4)?, r.try_get(6)?));
                }
            }
            -1 => {
                let t: Uuid = r.try_get(7)?;
                if let Some(at) = asks.iter().position(|a| a.tenant == t) {
                    changed[at] = r.try_get(4)?;
                }
            }
            0 => head.row(&r)?,
            i => {
                let seg = r.try_get(3)?;
                super::queue::slot(&mut postings, i, "first search")?.push((seg, r));
            }
        }
    }
    let (max, seen) =
        snapshot.ok_or_else(|| StoreError::Corrupt("no snapshot for first searches".into()))?;
    let mut heads = head.matches();
    let mut out: Vec<Newest> = postings
        .into_iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (rows, k))| {
            let asked = asked(k.2);
            Ok(Newest {
                max,
                seen: seen.clone(),
                segments: word_segments(&listed, asked, rows)?,
                asked,
                head: heads.as_mut().map(|(lo, m)| HeadMatches {
                    lo: *lo,
                    matches: std::mem::take(&mut m[i]),
                }),
                rows_gen: 0,
            })
        })
        .collect::<Result<_>>()?;
    let gens = cache.checked(tenants.iter().copied(), &asks, &changed, &seen, made);
    for (n, t) in out.iter_mut().zip(&tenants) {
        n.rows_gen = gens[t];
    }
    Ok(out)
}

/// A word's segments in a [`NEWEST_OF`] statement: the first `asked` of the batch's `listed`
/// (`(seg, built, upto)`, newest first), each with the word's postings `rows` (`(seg, row)`,
/// newest first). A built segment without a row of the word holds none of its postings, unless
/// the rows before it held a window already: the statement sent no more, so it is not read
/// (`None`, as a segment not built is), and a window that reaches it reads it on a connection.
/// The rows sent are counted here as the statement counted them: a row's bytes as sent are its
/// whole length or a window's, and their sum reaches a window's exactly when the whole
/// lengths' sum does.
fn word_segments(
    listed: &[(i64, bool, i64)],
    asked: i64,
    rows: Vec<(i64, PgRow)>,
) -> Result<Vec<Segment>> {
    let window = tail_bytes(crate::search::RANK_WINDOW) as usize;
    let mut rows = rows.into_iter().peekable();
    // The bytes of the rows sent before the segment at hand.
    let mut sent = 0;
    let len = |r: &PgRow| -> Result<usize> {
        Ok(r.try_get::<Option<&[u8]>, _>(5)?.map_or(0, <[u8]>::len))
    };
    let mut out = Vec::with_capacity(asked as usize);
    for &(seg, built, upto) in listed.iter().take(asked as usize) {
        // Rows of segments not listed (none but in a race with a build) count as sent.
        while let Some((_, r)) = rows.next_if(|(s, _)| *s > seg) {
            sent += len(&r)?;
        }
        let row = rows.next_if(|(s, _)| *s == seg).map(|(_, r)| r);
        let postings = match row {
            Some(r) => {
                sent += len(&r)?;
                built.then(|| Postings::new(seg, Some(r), 5)).transpose()?
            }
            None if !built || sent >= window => None,
            None => Some(Postings::new(seg, None, 5)?),
        };
        out.push(Segment {
            seg,
            upto,
            postings,
        });
    }
    Ok(out)
}

/// A word's matches in the head, newest first, as `(rowid, tf)`.
type Matches = Vec<(i64, u32)>;

/// The head's rows of a [`newest_segments_of`] statement, matched against its words as they
/// come: each row's tokens walked once, each token looked up among the batch's words.
struct HeadRows<'k> {
    /// `(tenant, lexeme)` → the positions of the words asking for it.
    wanted: HashMap<(Uuid, &'k str), Vec<usize>>,
    /// The head's `lo`, once a row said it.
    lo: Option<i64>,
    /// Each word's matches.
    matches: Vec<Matches>,
}

impl<'k> HeadRows<'k> {
    fn new(keys: &'k [(Uuid, String, i64)]) -> HeadRows<'k> {
        let mut wanted: HashMap<(Uuid, &str), Vec<usize>> = HashMap::new();
        for (i, (t, l, _)) in keys.iter().enumerate() {
            wanted.entry((*t, l.as_str())).or_default().push(i);
        }
        HeadRows {
            wanted,
            lo: None,
            matches: vec![Vec::new(); keys.len()],
        }
    }

    /// A row of the head's part: its `lo`, and a row of the head if it has a rowid.
    fn row(&mut self, r: &PgRow) -> Result<()> {
        self.lo = Some(r.try_get(6)?);
        let Some(rowid) = r.try_get::<Option<i64>, _>(3)? else {
            return Ok(());
        };
        let tenant: Uuid = r.try_get(7)?;
        let tokens: &[u8] = r.try_get(5)?;
        let (wanted, matches) = (&self.wanted, &mut self.matches);
        lexemes(tokens, |word, tf| {
            if let Some(at) = wanted.get(&(tenant, word)) {
                for &i in at {
                    if (matches[i].len() as i64) < crate::search::RANK_WINDOW {
                        matches[i].push((rowid, tf.min(TF_SPAN - 1)));
                    }
                }
            }
        })
    }

    /// The head's `lo` and each word's matches, if the statement read the head.
    fn matches(self) -> Option<(i64, Vec<Matches>)> {
        Some((self.lo?, self.matches))
    }
}

/// The segments a statement asks for when `n` are wanted: at least one and at most
/// [`MOST_SEGMENTS`]. [`newest_segments_of`] asks for that many (a limit bound per word is
/// planned once, so it need not be rounded); [`segments_limit`] rounds it up.
fn asked(n: i64) -> i64 {
    n.clamp(1, MOST_SEGMENTS)
}

/// A statement for each [`segments_limit`], the limit `2^i` at `i`.
fn by_limit(sql: impl Fn(i64) -> String) -> Vec<String> {
    (0..=MOST_SEGMENTS.trailing_zeros())
        .map(|i| sql(1 << i))
        .collect()
}

/// The statement of `by_limit`'s for `limit` segments (rounded by [`segments_limit`]).
fn statement(by_limit: &[String], limit: i64) -> &str {
    &by_limit[segments_limit(limit).trailing_zeros() as usize]
}

/// The statement of [`segments`] below rowid `hi` (an SQL expression) for `limit` segments:
/// `$1` the tenant, `$2` the lexeme, `$3` the bytes of the postings' tail to read.
fn segments_sql(hi: &str, limit: i64) -> String {
    format!(
        "SELECT g.seg, g.built, CASE WHEN g.upto <= {hi} \
           THEN substring(p.postings FROM greatest(1, octet_length(p.postings) - $3 + 1) FOR $3) \
           ELSE p.postings END AS postings, g.upto \
         FROM search_segments g LEFT JOIN search_postings p ON g.built AND p.tenant_id = $1 \
         AND p.lexeme = $2 AND p.seg = g.seg \
         WHERE g.seg <= {hi} / {SEG_ROWS} ORDER BY g.seg DESC LIMIT {limit}"
    )
}

/// The bytes of `need` postings.
fn tail_bytes(need: i64) -> i32 {
    i32::try_from(need.max(1).saturating_mul(POSTING_BYTES as i64)).unwrap_or(i32::MAX)
}

/// The segment in a row of [`segments_sql`]'s columns from column `at` on; `None` for the row
/// of NULLs a LEFT JOIN gives when there is none.
fn segment(r: PgRow, at: usize) -> Result<Option<Segment>> {
    let Some(seg) = r.try_get::<Option<i64>, _>(at)? else {
        return Ok(None);
    };
    let built: bool = r.try_get(at + 1)?;
    let upto = r.try_get(at + 3)?;
    let postings = if built {
        Some(Postings::new(seg, Some(r), at + 2)?)
    } else {
        None
    };
    Ok(Some(Segment {
        seg,
        upto,
        postings,
    }))
}

/// `list`'s postings, ascending, packed `POSTING_BYTES` each.
fn pack(list: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(list.len() * POSTING_BYTES);
    for p in list {
        out.extend_from_slice(&p.to_be_bytes()[4 - POSTING_BYTES..]);
    }
    out
}

/// The lexemes of a tsvector in PostgreSQL's binary form (`tsvectorsend`), each with its count
/// of positions (at least 1: a lexeme without positions ranks as one).
fn lexemes(bytes: &[u8], mut each: impl FnMut(&str, u32)) -> Result<()> {
    let corrupt = || StoreError::Corrupt("a tsvector PostgreSQL sent cannot be read".into());
    let mut at = 4usize;
    let count = u32::from_be_bytes(bytes.get(..4).ok_or_else(corrupt)?.try_into().unwrap());
    for _ in 0..count {
        let rest = bytes.get(at..).ok_or_else(corrupt)?;
        let end = rest.iter().position(|&b| b == 0).ok_or_else(corrupt)?;
        let word = std::str::from_utf8(&rest[..end]).map_err(|_| corrupt())?;
        let npos = rest.get(end + 1..end + 3).ok_or_else(corrupt)?;
        let npos = u16::from_be_bytes([npos[0], npos[1]]);
        each(word, u32::from(npos).max(1));
        at += end + 3 + 2 * usize::from(npos);
    }
    if at != bytes.len() {
        return Err(corrupt());
    }
    Ok(())
}

/// Tenant → lexeme → packed postings.
type Grouped = HashMap<Uuid, HashMap<String, Vec<u32>>>;

/// Writes the postings of segment `seg`'s rows `lo..=hi`: a row per tenant and lexeme, or,
/// when `appended` (an extension: every rowid above those already there), added to the end of
/// the row a lexeme has.
async fn write_postings(
    tx: &mut PgConnection,
    seg: i64,
    lo: i64,
    hi: i64,
    appended: bool,
) -> Result<()> {
    let mut grouped = Grouped::new();
    // Streamed, grouped row by row: the segment's tokens (19 MB for 32,768 of the benchmark's
    // messages) are never held whole, only the postings grouped from them.
    let mut rows = sqlx::query(
        "SELECT tenant_id, rowid, tsvectorsend(fts) FROM messages \
         WHERE rowid >= $1 AND rowid <= $2",
    )
    .bind(lo)
    .bind(hi)
    .fetch(&mut *tx);
    while let Some(r) = rows.try_next().await? {
        let tenant: Uuid = r.try_get(0)?;
        let rowid: i64 = r.try_get(1)?;
        let offset = (rowid - seg_start(seg)) as u32 * TF_SPAN;
        let words = grouped.entry(tenant).or_default();
        lexemes(r.try_get::<&[u8], _>(2)?, |word, tf| {
            let p = offset + tf.min(TF_SPAN - 1);
            match words.get_mut(word) {
                Some(v) => v.push(p),
                None => {
                    words.insert(word.to_owned(), vec![p]);
                }
            }
        })?;
    }
    drop(rows);
    let (mut tenants, mut words, mut lists) = (Vec::new(), Vec::new(), Vec::new());
    for (tenant, by_word) in grouped {
        for (word, mut list) in by_word {
            list.sort_unstable();
            tenants.push(tenant);
            words.push(word);
            lists.push(pack(&list));
        }
    }
    let on_conflict = if appended {
        " ON CONFLICT (tenant_id, lexeme, seg) \
         DO UPDATE SET postings = search_postings.postings || EXCLUDED.postings"
    } else {
        ""
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO search_postings (tenant_id, lexeme, seg, postings) \
         SELECT t, w, $4, p FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS u(t, w, p)\
         {on_conflict}"
    )))
    .bind(&tenants)
    .bind(&words)
    .bind(&lists)
    .bind(seg)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Builds segment `seg` up to rowid `upto` (its last, or the newest one); false when it was
/// left for a later round (writers still in flight, another builder on it, or a change raced
/// it).
async fn build_segment(pool: &PgPool, seg: i64, upto: i64) -> Result<bool> {
    // Not built while it is built again: what its postings cover changes. Left as it is when
    // another server has just built it so.
    sqlx::query(
        "INSERT INTO search_segments (seg, upto) VALUES ($1, $2) \
         ON CONFLICT (seg) DO UPDATE SET built = false, upto = EXCLUDED.upto, claim = NULL, \
         laid_out = false \
         WHERE NOT (search_segments.built AND search_segments.upto = EXCLUDED.upto)",
    )
    .bind(seg)
    .bind(upto)
    .execute(pool)
    .await?;
    if !writers_done(pool).await? {
        return Ok(false);
    }
    let mut conn = pool.acquire().await?;
    let mut tx =
        sqlx::Connection::begin_with(&mut *conn, "BEGIN ISOLATION LEVEL REPEATABLE READ").await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
        .bind(LOCK_KEY)
        .bind(seg as i32)
        .fetch_one(&mut *tx)
        .await?;
    // As this builder left it: another one may have built it since, or asked for more rows
    // (whose writers this one has not waited for).
    let row: Option<(bool, i64)> =
        sqlx::query_as("SELECT built, upto FROM search_segments WHERE seg = $1")
            .bind(seg)
            .fetch_optional(&mut *tx)
            .await?;
    if !locked || row != Some((false, upto)) {
        return Ok(false);
    }
    let marked = async {
        sqlx::query("DELETE FROM search_postings WHERE seg = $1")
            .bind(seg)
            .execute(&mut *tx)
            .await?;
        write_postings(&mut tx, seg, seg_start(seg), upto, false).await?;
        let marked =
            sqlx::query("UPDATE search_segments SET built = true WHERE seg = $1 AND upto = $2")
                .bind(seg)
                .bind(upto)
                .execute(&mut *tx)
                .await?;
        Ok::<bool, StoreError>(marked.rows_affected() == 1)
    }
    .await;
    match marked {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        // serialization_failure: a message of the segment changed since the snapshot, or a
        // layout (layout.rs) wrote its postings again while this waited for it.
        Err(StoreError::Database(e)) if super::pending::sqlstate(&e, "40001") => {
            tracing::debug!(
                seg,
                "a message or its postings changed while its search segment was built"
            );
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    match tx.commit().await {
        Ok(()) => Ok(true),
        Err(e) if super::pending::sqlstate(&e, "40001") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Extends built segment `seg`, whose postings cover its rows up to `covered`, up to rowid
/// `upto`: the rows between are read and their postings appended to the segment's (every one
/// of them is above those already there, so the bytes stay in rowid order), and `upto` moved,
/// in one transaction; the segment stays built and read by searches throughout. False when
/// it was left for a later round (changed meanwhile, writers still in flight, another builder
/// on it): the next round builds it whole or extends it again.
///
/// A build reads the segment from its first row: 0.1–0.7 s for a newest segment of 10,000–
/// 32,000 rows, so it could run only now and then beside the writes ([`BUSY_PACE`]), and the
/// rows appended since were read by every first search through the GIN index
/// (docs/performance.md, fifty-first session). This reads only the new rows.
async fn extend_segment(pool: &PgPool, seg: i64, covered: i64, upto: i64) -> Result<bool> {
    // Claimed: from now on a delete or an update of a row up to `upto` marks the segment
    // (migration 0011); the writers that hold rowids up to it are waited for below.
    let claimed =
        sqlx::query("UPDATE search_segments SET claim = $3 WHERE seg = $1 AND built AND upto = $2")
            .bind(seg)
            .bind(covered)
            .bind(upto)
            .execute(pool)
            .await?;
    if claimed.rows_affected() != 1 || !writers_done(pool).await? {
        return Ok(false);
    }
    let mut conn = pool.acquire().await?;
    let mut tx =
        sqlx::Connection::begin_with(&mut *conn, "BEGIN ISOLATION LEVEL REPEATABLE READ").await?;
    let extended = async {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
            .bind(LOCK_KEY)
            .bind(seg as i32)
            .fetch_one(&mut *tx)
            .await?;
        // As this builder left it: built as far as it was, claimed as far as this goes, and
        // nothing it covers or claims deleted or rewritten since (that would have marked it).
        let row: Option<(bool, i64, Option<i64>)> =
            sqlx::query_as("SELECT built, upto, claim FROM search_segments WHERE seg = $1")
                .bind(seg)
                .fetch_optional(&mut *tx)
                .await?;
        if !locked || row != Some((true, covered, Some(upto))) {
            return Ok(false);
        }
        write_postings(&mut tx, seg, covered + 1, upto, true).await?;
        let moved = sqlx::query(
            "UPDATE search_segments SET upto = $3, claim = NULL \
             WHERE seg = $1 AND built AND upto = $2",
        )
        .bind(seg)
        .bind(covered)
        .bind(upto)
        .execute(&mut *tx)
        .await?;
        Ok::<bool, StoreError>(moved.rows_affected() == 1)
    }
    .await;
    match extended {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        // serialization_failure: a row it covers or claims changed since the snapshot, or a
        // layout (layout.rs) wrote the postings again while this waited for it.
        Err(StoreError::Database(e)) if super::pending::sqlstate(&e, "40001") => {
            tracing::debug!(
                seg,
                "a message changed while its search segment was extended"
            );
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    match tx.commit().await {
        Ok(()) => Ok(true),
        Err(e) if super::pending::sqlstate(&e, "40001") => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Waits until every transaction with an id now running has ended; false after
/// [`WRITERS_WAIT`]. A writer whose trigger ran before a segment's row was committed holds an
/// id by then (its rows are written), so after this its rows, or their deletion, are in any
/// snapshot taken.
///
/// "Now" is a transaction id taken for it, not a snapshot's `xmax`: that is one past the newest
/// transaction *ended*, so a writer given a newer id and still running is in no snapshot's
/// list, and a wait for the snapshot's `xmin` to pass its `xmax` did not wait for it. A delete
/// whose trigger ran just before a claim was committed, its transaction's id the newest, then
/// left its rows' postings in the extension that followed (`extensions_racing_deletes_never_
/// leave_the_newest_segment_stale`, two runs in ten on a busy machine). Every id handed out
/// before this one is lower, so once the oldest transaction running is at least this one,
/// all of them have ended.
async fn writers_done(pool: &PgPool) -> Result<bool> {
    let now: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(pool)
        .await?;
    let started = Instant::now();
    loop {
        let done: bool =
            sqlx::query_scalar("SELECT txid_snapshot_xmin(txid_current_snapshot()) >= $1")
                .bind(now)
                .fetch_one(pool)
                .await?;
        if done {
            return Ok(true);
        }
        if started.elapsed() > WRITERS_WAIT {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether [`build`] builds the newest segment, which is not complete.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Head {
    /// No: writes go on, and a build beside them is not in its pace ([`Pace`]).
    Skip,
    /// Up to the newest rowid, if any of its rows is not built: extended when it is built
    /// already ([`extend_segment`]), else built.
    All,
}

impl Head {
    /// What the builder's round does with the newest segment, given the newest rowid at the
    /// round before (`last`) and at this one (`now`; `None` when it could not be read), and
    /// whether a build while the writes go on is in its pace now (`paced`, [`Pace`]): built
    /// once the writes have paused for a round, or while they go on when paced, else left for
    /// the index to read.
    fn after(last: Option<i64>, now: Option<i64>, paced: bool) -> Head {
        if now.is_some() && (now == last || paced) {
            Head::All
        } else {
            Head::Skip
        }
    }
}

/// How often the newest segment may be built while the writes go on: a build that took `d`
/// (its wait for the writes in flight included) is followed by none for `BUSY_PACE · d`, so
/// that such builds take at most about a fiftieth of the time of the builder's connection.
///
/// Built only at a pause, a server whose writes never pause for a second (a steady trickle of
/// appends) never built it: every first search read all of its rows through the GIN index,
/// up to a whole segment's (2.1 ms of PostgreSQL's CPU for 13,800 rows, the thirty-fourth
/// session). A build reads the segment from its start (0.1–0.7 s here), and the appends it
/// runs beside share the machine with it: paced, it costs them a few per cent at most.
const BUSY_PACE: u32 = 50;

/// [`BUSY_PACE`] once the newest segment is built, so that what comes next is an extension
/// ([`extend_segment`]): it reads only the rows appended since, so it costs in proportion to
/// the appends and can follow them closely; taken at most a tenth of the time, and every
/// round ([`BUILD_EVERY`]) while each takes under a tenth of a second. After a build from the
/// segment's start too: at fifty times that build's time the head would wait tens of seconds,
/// past what first searches read in their shared statement (`HEAD_MOST`).
const EXTEND_PACE: u32 = 10;

/// When the newest segment may next be built while the writes go on ([`BUSY_PACE`]).
#[derive(Debug, Clone, Copy)]
struct Pace {
    next: Instant,
}

impl Pace {
    fn new(now: Instant) -> Pace {
        Pace { next: now }
    }

    /// Whether a build while the writes go on may start at `now`.
    fn allows(self, now: Instant) -> bool {
        now >= self.next
    }

    /// The newest segment's build or extension started at `at` took `took` (a tenth of a
    /// second at least: one that found nothing to do still read the segment's row), and left
    /// it built (`built`: the next is an extension) or not (the next may read it whole).
    fn built(&mut self, at: Instant, took: Duration, built: bool) {
        let pace = if built { EXTEND_PACE } else { BUSY_PACE };
        self.next = at + took.max(Duration::from_millis(100)) * pace;
    }
}

/// What a round of [`build`] did.
pub(crate) struct Built {
    /// Segments built or extended.
    pub segments: usize,
    /// How long the newest segment's build or extension took, if it was tried, and whether
    /// it left the segment built.
    pub head: Option<(Duration, bool)>,
}

/// A segment for [`build`]: built up to `upto`, or extended there from `covered`.
struct Todo {
    seg: i64,
    upto: i64,
    covered: Option<i64>,
}

/// Builds the search postings of the newest segment as `head` says, then of the segments whose
/// rowids have all been handed out, newest first: a segment built already up to a rowid in it
/// is extended from there, any other built from its start. Answers how many it built.
pub(crate) async fn build(pool: &PgPool, head: Head) -> Result<Built> {
    let max = newest_rowid(pool).await?;
    // Rowids come from the identity in order: every rowid up to the largest committed one has
    // been handed out. A segment is complete once its last rowid is among them.
    let top = (max + 1).div_euclid(SEG_ROWS) - 1;
    let mut todo: Vec<Todo> = Vec::new();
    // Whether the newest segment is `todo`'s first.
    let mut head_due = false;
    let newest = seg_of(max);
    if head == Head::All && max > 0 && newest > top {
        let covered: Option<i64> =
            sqlx::query_scalar("SELECT upto FROM search_segments WHERE seg = $1 AND built")
                .bind(newest)
                .fetch_optional(pool)
                .await?;
        if covered.is_none_or(|c| c < max) {
            todo.push(Todo {
                seg: newest,
                upto: max,
                covered,
            });
            head_due = true;
        }
    }
    if top >= 0 {
        let complete: Vec<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT s, g.upto FROM generate_series($1::bigint, 0, -1) AS s \
             LEFT JOIN search_segments g ON g.seg = s AND g.built \
             WHERE g.upto IS NULL OR g.upto < (s + 1) * $2 - 1 ORDER BY s DESC",
        )
        .bind(top)
        .bind(SEG_ROWS)
        .fetch_all(pool)
        .await?;
        todo.extend(complete.into_iter().map(|(seg, covered)| Todo {
            seg,
            upto: seg_start(seg + 1) - 1,
            covered,
        }));
    }
    let mut built = Built {
        segments: 0,
        head: None,
    };
    for (i, t) in todo.into_iter().enumerate() {
        if pool.is_closed() {
            break;
        }
        let started = Instant::now();
        // Extended only from a rowid in the segment (a built segment covers one at least).
        let extended = t.covered.filter(|&c| c >= seg_start(t.seg) && c < t.upto);
        let done = match extended {
            Some(covered) => extend_segment(pool, t.seg, covered, t.upto).await?,
            None => build_segment(pool, t.seg, t.upto).await?,
        };
        if head_due && i == 0 {
            built.head = Some((started.elapsed(), done));
        }
        if done {
            built.segments += 1;
            tracing::debug!(
                seg = t.seg,
                upto = t.upto,
                extended = extended.is_some(),
                ms = started.elapsed().as_millis() as u64,
                "built a search segment"
            );
        }
    }
    Ok(built)
}

/// The newest rowid (0 in an empty table), on a pool or a connection.
pub(super) async fn newest_rowid<'c>(on: impl sqlx::PgExecutor<'c>) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM messages")
            .fetch_one(on)
            .await?,
    )
}

/// True when migration 0009's triggers mark the segments messages are written to. They can be
/// dropped (as 0005's and 0002's, for Citus, which does not run statement triggers with
/// transition tables on distributed tables): then no segment is ever built or read.
pub(crate) async fn kept(c: &mut PgConnection) -> Result<bool> {
    super::triggers_present(
        c,
        "messages",
        &[
            "search_segments_insert",
            "search_segments_delete",
            "search_segments_update",
            "search_segments_truncate",
        ],
    )
    .await
}

/// How often the builder looks for segments to build.
const BUILD_EVERY: Duration = Duration::from_secs(1);

/// Builds the segments every [`BUILD_EVERY`] until the pool is closed: each as soon as it is
/// complete, the newest one as far as it goes once the writes have paused for a round, or while
/// they go on at the pace [`Pace`] allows (an extension every round, while each is quick). A failed
/// round is logged and the next one tries again: searches read what is not built through the
/// index.
pub(crate) fn spawn_builder(pool: PgPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(BUILD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The newest rowid at the last round: the same at this one, the writes have paused,
        // and the newest segment is built as far as it goes.
        let mut last = None;
        let mut pace = Pace::new(Instant::now());
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            let now = newest_rowid(&pool).await.ok();
            let started = Instant::now();
            let head = Head::after(last, now, pace.allows(started));
            let paused = now.is_some() && now == last;
            last = now;
            match build(&pool, head).await {
                Ok(built) => {
                    if let Some((took, done)) = built.head.filter(|_| !paused) {
                        pace.built(started, took, done);
                    }
                    if built.segments > 0 {
                        metrics::counter!("confab_store_search_segments_built_total")
                            .increment(built.segments as u64);
                    }
                    // Writes paused and nothing left to build or lay out: what operators (and
                    // the benchmark) wait for after a bulk load. 0 while writes go on.
                    let settled = paused && built.segments == 0 && lay_out(&pool).await;
                    metrics::gauge!("confab_store_search_postings_settled")
                        .set(f64::from(u8::from(settled)));
                }
                Err(e) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "building search postings failed; retrying");
                }
            }
        }
    });
}

/// Lays out the postings word by word if enough segments were built since the last time
/// (layout.rs): at a pause in the writes, as it holds up builds and extensions while it runs.
/// Answers whether none is due now.
async fn lay_out(pool: &PgPool) -> bool {
    match super::layout::due(pool).await {
        Ok(false) => return true,
        Ok(true) => {}
        Err(_) => return false,
    }
    let started = Instant::now();
    match super::layout::lay_out(pool).await {
        Ok(done) => {
            if done {
                metrics::counter!("confab_store_search_layouts_total").increment(1);
                tracing::info!(
                    ms = started.elapsed().as_millis() as u64,
                    "laid out the search postings word by word"
                );
            }
            true
        }
        // lock_not_available: a build or a TRUNCATE held a lock longer than a layout waits.
        Err(StoreError::Database(e)) if super::pending::sqlstate(&e, "55P03") => {
            tracing::debug!("a search postings layout gave way to a lock; at the next pause");
            false
        }
        Err(e) => {
            if !pool.is_closed() {
                tracing::warn!(error = %e, "laying out the search postings failed; retrying");
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    #[test]
    fn a_tsvector_s_binary_form_is_read_lexeme_by_lexeme() {
        // 'ab':1,3 'c' (no positions)
        let mut b = vec![0, 0, 0, 2];
        b.extend_from_slice(b"ab\0");
        b.extend_from_slice(&[0, 2, 0, 1, 0, 3]);
        b.extend_from_slice(b"c\0");
        b.extend_from_slice(&[0, 0]);
        let mut seen = Vec::new();
        lexemes(&b, |w, tf| seen.push((w.to_owned(), tf))).unwrap();
        assert_eq!(seen, vec![("ab".to_owned(), 2), ("c".to_owned(), 1)]);
        assert!(lexemes(&b[..b.len() - 1], |_, _| {}).is_err());
        assert!(lexemes(&[0, 0], |_, _| {}).is_err());
    }

    #[test]
    fn ranks_grow_with_the_positions_and_stay_below_a_tenth() {
        assert!(rank_of(1) > 0.06 && rank_of(1) < 0.0608);
        assert!(rank_of(2) > rank_of(1));
        assert!(rank_of(256) < 0.1);
        assert_eq!(rank_of(0), rank_of(1));
        // Past the table (no posting holds such a count), computed.
        assert_eq!(rank_of(TF_SPAN + 3), ts_rank_of(TF_SPAN + 3));
    }

    #[test]
    fn the_newest_segment_is_built_at_a_pause_or_in_its_pace() {
        assert!(
            Head::after(Some(7), Some(7), false) == Head::All,
            "paused for a round"
        );
        assert!(
            Head::after(Some(7), Some(9), false) == Head::Skip,
            "written meanwhile"
        );
        assert!(
            Head::after(Some(7), Some(9), true) == Head::All,
            "written meanwhile, in its pace"
        );
        assert!(
            Head::after(None, Some(7), false) == Head::Skip,
            "the first round"
        );
        assert!(Head::after(None, Some(7), true) == Head::All);
        assert!(
            Head::after(None, None, true) == Head::Skip,
            "the rowid not read"
        );
    }

    #[test]
    fn a_build_beside_the_writes_waits_fifty_times_what_it_took_ten_once_the_segment_is_built() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        assert!(pace.allows(t0));
        pace.built(t0, Duration::from_millis(400), false);
        assert!(!pace.allows(t0 + Duration::from_millis(19_999)));
        assert!(pace.allows(t0 + Duration::from_secs(20)));
        // A build that found nothing to do still waits five seconds.
        pace.built(t0, Duration::ZERO, false);
        assert!(!pace.allows(t0 + Duration::from_millis(4_999)));
        assert!(pace.allows(t0 + Duration::from_secs(5)));
        // Once built, the next (an extension) ten times what it took, a second at least:
        // every round while quick.
        pace.built(t0, Duration::from_millis(400), true);
        assert!(!pace.allows(t0 + Duration::from_millis(3_999)));
        assert!(pace.allows(t0 + Duration::from_secs(4)));
        pace.built(t0, Duration::from_millis(30), true);
        assert!(!pace.allows(t0 + Duration::from_millis(999)));
        assert!(pace.allows(t0 + BUILD_EVERY));
    }

    /// `rank_of` is ts_rank to the bit for every count of positions a tsvector can hold
    /// (1–256), as PostgreSQL computes it and the index path returns it (`::float8`).
    #[tokio::test]
    async fn ranks_are_ts_rank_s_for_every_count_of_positions() {
        let Some(url) = super::super::test_url("compare ranks with ts_rank") else {
            return;
        };
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        let ranks: Vec<(i32, f64)> = sqlx::query_as(
            "SELECT n, ts_rank(('w:' || string_agg(i::text, ',' ORDER BY i))::tsvector, \
             'w'::tsquery)::float8 FROM generate_series(1, 256) n, generate_series(1, n) i \
             GROUP BY n ORDER BY n",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        assert_eq!(ranks.len(), 256);
        for (n, rank) in ranks {
            assert_eq!(rank_of(n as u32).to_bits(), rank.to_bits(), "{n} positions");
        }
    }

    /// A writer holding the newest transaction id, still running, while none has ended since
    /// it took it: the wait for writers waits for it (a snapshot's `xmax` left it out).
    #[tokio::test]
    async fn the_wait_for_writers_waits_for_the_one_holding_the_newest_id() {
        let Some(url) = super::super::test_url("wait for the writers in flight") else {
            return;
        };
        let _turn = super::super::HORIZON_TESTS.lock().await;
        let pool = PgPool::connect(&url).await.unwrap();
        let mut writer = sqlx::PgConnection::connect(&url).await.unwrap();
        let mut tx = writer.begin().await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT txid_current()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let waiting = pool.clone();
        let wait = tokio::spawn(async move { writers_done(&waiting).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!wait.is_finished(), "not waited for");
        tx.commit().await.unwrap();
        assert!(wait.await.unwrap(), "waited for, then done");
        pool.close().await;
    }

    #[test]
    fn each_count_of_segments_asked_for_has_its_statement_and_none_asks_for_fewer() {
        let written = by_limit(|n| format!("LIMIT {n}"));
        assert_eq!(written.len(), 7);
        for n in 1..=80 {
            let limit = segments_limit(n);
            assert!(
                limit >= n.min(MOST_SEGMENTS) && limit <= MOST_SEGMENTS,
                "{n}"
            );
            assert_eq!(statement(&written, n), format!("LIMIT {limit}"));
        }
        assert_eq!(
            (segments_limit(0), segments_limit(3), segments_limit(64)),
            (1, 4, 64)
        );
        // The batched statement's limits are not rounded, only kept in range.
        assert_eq!((asked(0), asked(7), asked(1_000)), (1, 7, MOST_SEGMENTS));
        assert!(segments_sql("$4", 16).ends_with("LIMIT 16"));
    }

    #[test]
    fn a_segment_is_a_power_of_two_that_the_packing_holds() {
        assert_eq!(seg_of(SEG_ROWS - 1), 0);
        assert_eq!(seg_of(SEG_ROWS), 1);
        // The segment's first and last rowids, with a tsvector's fewest and most positions.
        let list = [1, 256 + TF_SPAN, (SEG_ROWS as u32 - 1) * TF_SPAN + 256];
        let packed = pack(&list);
        assert_eq!(packed.len(), 3 * POSTING_BYTES);
        let seg = 7;
        let newest = vec![
            (seg_start(seg + 1) - 1, 256),
            (seg_start(seg) + 1, 256),
            (seg_start(seg), 1),
        ];
        assert_eq!(newest_first(seg, &packed).collect::<Vec<_>>(), newest);
        // A cut posting at the end is left out, and only it.
        let cut = [&packed[..], &packed[..2]].concat();
        assert_eq!(newest_first(seg, &cut).collect::<Vec<_>>(), newest);
        let migration = include_str!("../../migrations/postgres/0009_search_postings.sql");
        assert!(migration.contains(&format!("rowid / {SEG_ROWS}")));
    }
}
