-- Each word's postings in rowid order, so that a ranked search reads the newest matches of a
-- word without visiting their rows (postgres/postings.rs). The GIN index (0004) answers which
-- messages hold a word but not in rowid order, nor how often each holds it: a first search of
-- a word in a few messages per thousand fetched some 1,000–1,300 heap rows for its window,
-- about 19 ms of the machine's CPU (docs/performance.md, thirty-third and thirty-fourth
-- sessions). Here the same window is a dozen rows of this table.
--
-- The rowids are cut into segments of 32,768. A segment's postings are built off the
-- request path (postings.rs) once every rowid in it has been handed out, and the newest
-- segment's up to its newest rowid when the writes pause, from the tokens the messages already
-- store (`fts`); an append never writes here. Rowids above what is built are read through the
-- GIN index as before.

-- A row per segment being built or built. `built` is true while the segment's postings are
-- exactly the tokens of its messages up to rowid `upto` (its last rowid, or the newest one when
-- the segment was built); any statement that inserts, deletes or updates a message of the
-- segment at or below `upto` sets it false (the triggers below), and the builder builds it
-- again. An append's rows are above `upto` and touch nothing. The update also tells a builder
-- that raced the change (its snapshot did not see it) to give up: it marks its work built at
-- REPEATABLE READ, where a row changed since its snapshot is a serialization failure.
CREATE TABLE search_segments (
    seg    bigint   PRIMARY KEY,
    upto   bigint   NOT NULL,
    built  boolean  NOT NULL DEFAULT false
);

-- A segment's matches of one lexeme (the tenant's tag and the word, as in `fts`), each packed
-- as (rowid - seg * 32768) * 512 + the number of positions the message's tokens hold for it
-- (1–256, what ts_rank counts), in ascending rowid order.
CREATE TABLE search_postings (
    tenant_id  uuid     NOT NULL,
    lexeme     text     NOT NULL,
    seg        bigint   NOT NULL,
    postings   integer[] NOT NULL,
    PRIMARY KEY (tenant_id, lexeme, seg)
);
-- A segment built again replaces its postings: found by this.
CREATE INDEX search_postings_seg ON search_postings (seg);

-- As 0008 for the tokens: lz4 where the server has it, for the long arrays of common words.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        ALTER TABLE search_postings ALTER COLUMN postings SET COMPRESSION lz4;
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this server is built without lz4: the search postings are compressed by pglz';
END $$;

-- Statement triggers with transition tables, as 0005's: every path that writes messages marks
-- the segments whose built part it touched. A statement's lowest rowid stands for all of its
-- rows: a segment is marked if the statement has a row in it and any row at or below its
-- `upto`, which marks no less than each row's own test would (and sometimes more, harmlessly).
-- An append's rows are above every `upto` (rowids come from the identity in order): its update
-- probes a table of a few dozen rows and changes none.
CREATE FUNCTION search_segments_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_segments SET built = false
     WHERE seg IN (SELECT DISTINCT rowid / 32768 FROM new_rows)
       AND upto >= (SELECT min(rowid) FROM new_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION search_segments_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_segments SET built = false
     WHERE seg IN (SELECT DISTINCT rowid / 32768 FROM old_rows)
       AND upto >= (SELECT min(rowid) FROM old_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION search_segments_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM search_segments;
    DELETE FROM search_postings;
    RETURN NULL;
END $$;

CREATE TRIGGER search_segments_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_segments_new();
CREATE TRIGGER search_segments_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_segments_old();
-- Any update: a trigger with transition tables cannot name columns. Only a rebuilt index
-- (`confab reindex`) updates messages.
CREATE TRIGGER search_segments_update AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_segments_old();
CREATE TRIGGER search_segments_truncate AFTER TRUNCATE ON messages
    FOR EACH STATEMENT EXECUTE FUNCTION search_segments_truncate();
