-- Ranked search scores its candidates from the full-text index alone, without reading each
-- one's row in `messages` (crates/store/src/sqlite/search.rs, rank.rs, doclen.rs). Two things
-- make that sound.

-- 1. No two tenants share a search tag. Every token in the index is prefixed with its tenant's
-- tag (`confab_core::search::tenant_tag`: "t" and the hex of the last 6 bytes of the tenant
-- id), so a match is the tenant's only while tags are unique. New tenant ids are drawn again on
-- the (1 in 2^48) chance of a clash (`ops::tenant_named`); this index holds every writer to it.
CREATE UNIQUE INDEX tenants_search_tag ON tenants (substr(id, 11, 6));

-- 2. A counter that moves whenever a message's length in the index can change for the same
-- rowid: its row deleted (the rowid may be reused) or its content rewritten. Searches keep
-- lengths in memory per epoch of this counter (doclen.rs). Inserts leave it alone: a new
-- rowid has no length kept yet.
CREATE TABLE search_epoch (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO search_epoch (id, n) VALUES (1, 0);

CREATE TRIGGER messages_epoch_delete AFTER DELETE ON messages BEGIN
    UPDATE search_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER messages_epoch_update AFTER UPDATE OF content, tenant_id ON messages BEGIN
    UPDATE search_epoch SET n = n + 1 WHERE id = 1;
END;
