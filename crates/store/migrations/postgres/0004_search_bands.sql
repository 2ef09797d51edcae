-- The search index also files every message under its band: a lexeme '~b<rowid / 4096>' added to
-- its tokens in the indexed expression (postgres/fts.rs, `SEARCH_VECTOR`, must match it word for
-- word, or searches stop using the index). GIN keeps no order among a word's postings, so the
-- newest 1,000 matches of a word found in a few per cent of messages could only be had by walking
-- messages backwards and testing each (35,000 rows for the benchmark's mid-frequency word, about
-- 30 ms) or by fetching every match (about 100 ms); a query for the word AND the newest few bands
-- lets GIN skip to those bands' postings and reads only their matches (about 6 ms).
-- postgres/search.rs decides when to ask for bands. The band lexeme carries no tenant tag and
-- cannot collide with a token (every token starts with its tenant's tag, 't…').
DROP INDEX messages_fts;
CREATE INDEX messages_fts ON messages
    USING gin ((fts || array_to_tsvector(ARRAY['~b' || (rowid / 4096)::text])));
