-- A block-range summary (BRIN) of each message's band, `rowid / 4096` (postgres/fts.rs,
-- `BAND_OF_ROW`, must match it word for word, or searches never use it), for the ranked
-- search's widest steps (postgres/search.rs). A word in a few messages per thousand has its
-- newest 1,000 matches spread over more than 64 bands: too many band lexemes to OR into one GIN
-- query, and too many rows for the rowid index to list cheaply (a bitmap of 290,000 entries,
-- 14-19 ms), so such a word had every match fetched. The summary names the heap pages of a
-- band range in about a millisecond, and PostgreSQL intersects them with the word's GIN
-- postings, so only the matches in the range are fetched: 1,250 of the 4,298 of a word in
-- 0.43 % of a million messages, 27 -> 15 ms (docs/performance.md, thirty-third session).
-- On the band rather than the rowid so that only the statements that write `rowid / 4096` use
-- it: asked for a narrower range, of a word in 1 % of messages, PostgreSQL put the summary
-- first in the intersection, whose pages were then lossy, and tested every row of every page
-- holding a match again (35 ms, against 18 ms for the rowid index).
-- Messages are appended in rowid order, so each range of 16 pages spans few bands. 16 and
-- not more: the summary then costs PostgreSQL's planner enough that it reads the word's postings
-- first; at 64 it put the summary first for words in 0.44-0.52 % of messages (lossy pages,
-- 22-31 ms against 11), and 32 saved only a few tenths of a millisecond.
-- Ranges filled since are summarized by the upkeep (pending.rs) and by VACUUM. Not
-- `autosummarize`: where autovacuum is off, PostgreSQL then logs every range that fills as a
-- request not recorded. The planner weighs a BRIN index by the correlation in its expression's
-- statistics, and uses it only once ANALYZE has gathered them.
CREATE INDEX messages_band_summary ON messages
    USING brin ((rowid / 4096)) WITH (pages_per_range = 16);
ANALYZE messages;
