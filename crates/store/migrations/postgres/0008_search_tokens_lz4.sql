-- The search tokens (`fts`) are compressed with lz4 rather than pglz, where the server can
-- (PostgreSQL 14 and later, built with lz4 as the common packages are). PostgreSQL compresses a
-- row's values once the row passes 2 kB: one row in eleven of the benchmark's, but those are
-- the long messages, which hold the most words and so are the ones searches match most. A
-- search reads each candidate's tokens up to three times (the index condition tested again,
-- the stored tokens' test, ts_rank), and each read decompressed them: pglz was a tenth of
-- PostgreSQL's CPU under the benchmark's 1,024 first searches. lz4 decompresses several times
-- faster and compressed the table as small (823 -> 825 MB); storing the rows uncompressed
-- (`toast_tuple_target`) saved as much CPU but made the table an eighth larger
-- (docs/performance.md, thirty-third session). Only values written from now on; those written
-- before stay pglz until rewritten.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        ALTER TABLE messages ALTER COLUMN fts SET COMPRESSION lz4;
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this server is built without lz4: the search tokens stay compressed by pglz';
END $$;
