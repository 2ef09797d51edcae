-- The newest segment's postings extended by the rows appended since its build, rather than
-- built again from its first row (postgres/postings.rs, `extend_segment`).
--
-- An extension adds to a built segment's postings the tokens of its rows from `upto` up to a
-- newer rowid, and moves `upto` there, in one transaction, so a search sees the postings and
-- what they cover together and the segment stays built throughout. Before it reads those rows
-- it writes that newer rowid here (`claim`) and waits for every writer then running: a delete
-- or an update of a row up to the claim (not only up to `upto`) marks the segment, so none of
-- those rows can change under the extension unseen. Inserts need no such mark: the rowids up
-- to the claim were handed out before it was written, and their writers are waited for.
ALTER TABLE search_segments ADD COLUMN claim bigint;

CREATE OR REPLACE FUNCTION search_segments_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE search_segments SET built = false
     WHERE seg IN (SELECT DISTINCT rowid / 32768 FROM old_rows)
       AND greatest(upto, claim) >= (SELECT min(rowid) FROM old_rows);
    RETURN NULL;
END $$;
