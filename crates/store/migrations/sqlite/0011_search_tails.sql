-- The newest window of every common word, kept in the file (crates/store/src/sqlite/tails.rs).
--
-- A ranked search scores the newest 1,000 matches of its query. Walking them in FTS5 is most of
-- a first search of a common word; a query's window is kept in memory once walked, but only
-- for the queries searched lately. `search_tails` holds, for every one-word query whose word is
-- in at least 256 messages, the window as of a snapshot (`snapshot`, the largest rowid then) of
-- an epoch (`search_epoch.n` then): each match's rowid, length and count, encoded by tails.rs.
-- The row whose key is '' marks the build the rest belong to. Derived data: emptying the table
-- only makes first searches walk the index again.
CREATE TABLE search_tails (
    key      TEXT PRIMARY KEY NOT NULL,
    epoch    INTEGER NOT NULL,
    snapshot INTEGER NOT NULL,
    data     BLOB NOT NULL
);

-- FTS5's own list of the index's terms and how many messages hold each: the words worth a
-- tail, in the index's own tokens (no second tokenizer to drift from it).
CREATE VIRTUAL TABLE messages_fts_terms USING fts5vocab(messages_fts, row);
