-- Which transactions changed a tenant's messages, so a ranked search can keep its window of
-- candidates between searches and still know, at its next search, whether the window may have
-- changed (postgres/kept.rs).
--
-- SQLite's rule (a new row takes a rowid above every row there is, so only deletes and
-- rewrites touch a window below its snapshot) does not hold here: rowids come from a sequence
-- when a row is inserted, and concurrent transactions commit in any order, so a row below a
-- search's largest rowid can become visible after the search. What does hold is PostgreSQL's
-- own snapshot: each changing transaction leaves its id here, and a kept window is still right
-- exactly when no row of its tenant here is invisible to the snapshot the window was read
-- under (`txid_visible_in_snapshot`). The txid_* functions, not their PostgreSQL 13 successors,
-- because confab supports 12.
--
-- Insert-only, one row per statement and tenant, for the reason 0002 gives: a counter updated
-- in place would be a hot row that serializes every writer. Statement triggers with transition
-- tables, so every path that writes messages (API, append batches, import, restore, a rebuilt
-- index, a conversation's deletion cascading) leaves its mark without knowing about it.
-- Rows older than any window can be are deleted by kept.rs's pruning.
CREATE TABLE search_changes (
    tenant_id  uuid    NOT NULL,
    xid        bigint  NOT NULL DEFAULT txid_current()
);
CREATE INDEX search_changes_key ON search_changes (tenant_id, xid);

CREATE FUNCTION search_changes_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_changes (tenant_id) SELECT DISTINCT tenant_id FROM new_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION search_changes_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_changes (tenant_id) SELECT DISTINCT tenant_id FROM old_rows;
    RETURN NULL;
END $$;

CREATE TRIGGER search_changes_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_changes_new();
CREATE TRIGGER search_changes_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_changes_old();
-- A row never changes tenant; its old tenant is its new one.
CREATE TRIGGER search_changes_update AFTER UPDATE ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_changes_new();
