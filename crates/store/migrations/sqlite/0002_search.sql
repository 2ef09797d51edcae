-- Full-text search over message content. The index is contentless (the text lives once, in
-- `messages`) and keyed by the messages rowid; `contentless_delete` lets a deleted message be
-- removed by rowid alone. Each row holds the output of confab_fts(): folded tokens, CJK split
-- per character, every token prefixed with the tenant's tag (see crates/core/src/search.rs), so
-- the tokenizer here only has to split on spaces. Triggers keep the index in the same
-- transaction as the insert or delete (deleting a conversation cascades to its messages and so
-- to the index).
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    tokenize = 'unicode61 remove_diacritics 0',
    content = '',
    contentless_delete = 1
);

INSERT INTO messages_fts (rowid, body) SELECT rowid, confab_fts(tenant_id, content) FROM messages;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.rowid, confab_fts(new.tenant_id, new.content));
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = old.rowid;
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, tenant_id ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = old.rowid;
    INSERT INTO messages_fts (rowid, body) VALUES (new.rowid, confab_fts(new.tenant_id, new.content));
END;
