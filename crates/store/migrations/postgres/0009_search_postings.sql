-- Each word's postings in rowid order, so that a ranked search reads the newest matches of a
-- word without visiting their rows (postgres/postings.rs). The GIN index (0004) answers which
-- messages hold a word but not in rowid order, nor how often each holds it: a first search of
-- a word in a few messages per thousand fetched some 1,000–1,300 heap rows for its window,
-- about 19 ms of the machine's CPU (docs/performance.md, thirty-third and thirty-fourth
-- sessions). Here the same window is a dozen rows of this table.
--
-- The rowids are cut into segments of 32,768. A segment's postings are built off the
-- request path (postings.rs) once every rowid in it has been handed out, from the tokens the
-- messages already store (`fts`), and are never written by an append: the newest rowids, above
-- the built segments, are read through the GIN index as before.

-- A row per segment being built or built. `built` is true while the segment's postings are
-- exactly its messages' tokens; any statement that inserts, deletes or updates a message of the
-- segment sets it false (the triggers below), and the builder builds it again. The update also
-- tells a builder that raced the change (its snapshot did not see it) to give up: it marks its
-- work built at REPEATABLE READ, where a row changed since its snapshot is a serialization
-- failure.
CREATE TABLE search_segments (
    seg    bigint   PRIMARY KEY,
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
-- the segments it touched. An append's rows are above every built segment (rowids come from
-- the identity, and a segment is built only once all its rowids are handed out), so its
-- update finds no row: one probe of a table of a few dozen rows.
CREATE FUNCTION search_segments_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_segments SET built = false
     WHERE seg IN (SELECT DISTINCT rowid / 32768 FROM new_rows);
    RETURN NULL;
END $$;

CREATE FUNCTION search_segments_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_segments SET built = false
     WHERE seg IN (SELECT DISTINCT rowid / 32768 FROM old_rows);
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
