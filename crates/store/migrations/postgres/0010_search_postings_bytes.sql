-- A segment's postings (0009) as bytes, kept out of line and uncompressed, so that a search
-- reads only the newest of them (postgres/postings.rs).
--
-- A search needs a word's newest 1,000 matches, but an integer[] is read whole: the most common
-- word's postings in one segment are 100 kB of TOAST (some fifty chunks) for 4 kB wanted, and
-- sending an array costs PostgreSQL a call per element. Bytes stored uncompressed (`EXTERNAL`)
-- are read by `substring` a slice at a time: the two or three TOAST chunks that hold the tail.
--
-- Each posting is three bytes, big-endian: (rowid - seg * 32768) * 512 + its count of
-- positions (1–256), which fits 24 bits; in ascending rowid order.
--
-- The postings are derived data: the table is emptied and every segment forgotten, so that
-- the builder builds them all again in the new form (about 11 s a million messages); searches
-- read those segments through the GIN index meanwhile, as before 0009. A server of the code
-- before this migration must not run beside one after it.
DROP TABLE search_postings;
DELETE FROM search_segments;

CREATE TABLE search_postings (
    tenant_id  uuid    NOT NULL,
    lexeme     text    NOT NULL,
    seg        bigint  NOT NULL,
    postings   bytea   NOT NULL,
    PRIMARY KEY (tenant_id, lexeme, seg)
);
ALTER TABLE search_postings ALTER COLUMN postings SET STORAGE EXTERNAL;
CREATE INDEX search_postings_seg ON search_postings (seg);
