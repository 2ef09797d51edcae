-- A TRUNCATE of messages logged in `search_changes` as a change of every tenant's messages
-- (migration 0005): without it, a window kept (postgres/kept.rs) or a row kept for first
-- pages (postgres/row_cache.rs) found nothing changed after the table was emptied, and rows
-- written again under the same rowids (an identity restarted) would have been shown as they
-- were. A TRUNCATE trigger sees no rows, so every tenant is logged, with no `lo`: an update
-- or delete anywhere.
CREATE FUNCTION search_changes_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_changes (tenant_id) SELECT id FROM tenants;
    RETURN NULL;
END $$;

CREATE TRIGGER search_changes_truncate AFTER TRUNCATE ON messages
    FOR EACH STATEMENT EXECUTE FUNCTION search_changes_truncated();
