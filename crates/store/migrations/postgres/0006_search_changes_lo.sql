-- An insert's change now says where its rows start, so a kept window can be brought forward
-- past inserts instead of read again (postgres/kept.rs): the window plus the matches from the
-- lowest rowid any unseen insert wrote is the window a search would read now. `lo` is the
-- smallest rowid the statement inserted for the tenant; NULL (an update, a delete, or a change
-- logged before this migration) means rows anywhere may have changed, and the window is read
-- again, as before.
ALTER TABLE search_changes ADD COLUMN lo bigint;

CREATE FUNCTION search_changes_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_changes (tenant_id, lo)
        SELECT tenant_id, min(rowid) FROM new_rows GROUP BY tenant_id;
    RETURN NULL;
END $$;

DROP TRIGGER search_changes_insert ON messages;
CREATE TRIGGER search_changes_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION search_changes_inserted();
