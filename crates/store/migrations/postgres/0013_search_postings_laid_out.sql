-- Whether a built segment's postings have been laid out word by word (postgres/layout.rs).
--
-- A segment's postings are written when it is built, one row per word, after those of every
-- segment built before it: a word's rows, one per segment, end up on as many heap pages, and
-- a first search that reads six of them (the benchmark's cold words, on average) visits six
-- pages where one would do. Now and then the builder writes every row again in the order of
-- the primary key, so each word's rows sit together; this marks the segments whose rows it
-- has so placed. A segment built again is not, until the next layout.
ALTER TABLE search_segments ADD COLUMN laid_out boolean NOT NULL DEFAULT false;
