-- Conversation and message counts per (tenant, status, source, agent), so the analytics
-- summary reads a few rows instead of aggregating every conversation of the tenant (a
-- `GROUP BY` over 10,000 conversations held the summary at p50 102 ms under 64 connections).
--
-- Unlike SQLite's table of the same name, a row here is a *delta*, not the counter itself:
-- every statement that writes `conversations` inserts one row per group it changed, and the
-- summary adds a group's rows up. Insert-only, because a counter row updated in place would be
-- a hot row: every append to the same group would lock it until its commit, serializing the
-- append batch workers and every other writer (SQLite has one writer, so it can update in
-- place). `compact_groups()` in postgres/stats.rs folds a group's rows into one now and then, and drops
-- a group whose last conversation has left, so deleting a conversation still leaves nothing of
-- it behind.
--
-- Statement triggers with transition tables, not code in each write path: every path that
-- writes a conversation (API, append batches, import, restore) keeps the counts without
-- knowing about them, and a batch of 200 appends costs one insert of a few rows, not 200.
CREATE TABLE conversation_groups (
    tenant_id      uuid    NOT NULL,
    status         text    NOT NULL,
    source         text,
    agent_id       text,
    conversations  bigint  NOT NULL,
    messages       bigint  NOT NULL,
    -- True until compaction has folded the row into its group's single row.
    pending        boolean NOT NULL DEFAULT true
);
-- A group's rows, found by equality even where source or agent is unset (NULL never equals
-- NULL; the fold matches on these expressions, then on IS NOT DISTINCT FROM to tell an unset
-- source from an empty one), so a fold costs the rows it folds, not the tenant's group count.
CREATE INDEX conversation_groups_key ON conversation_groups
    (tenant_id, status, (COALESCE(source, '')), (COALESCE(agent_id, '')));
CREATE INDEX conversation_groups_pending ON conversation_groups (tenant_id) WHERE pending;

-- Conversations created per hour (microseconds / 3,600,000,000, rounded toward zero), the same
-- kind of deltas: the summary's "last 24 hours" and "last 7 days" add up the whole hours of
-- their window here and count only the partial hour at its start from `conversations`, instead
-- of visiting every conversation created in the last week (1,300 of the benchmark's 10,000,
-- most of the summary's time). Buckets older than a week are never read; they stay, one row
-- per tenant and hour that saw a conversation created.
CREATE TABLE conversation_hours (
    tenant_id      uuid    NOT NULL,
    hour           bigint  NOT NULL,
    conversations  bigint  NOT NULL,
    pending        boolean NOT NULL DEFAULT true
);
CREATE INDEX conversation_hours_key ON conversation_hours (tenant_id, hour);
CREATE INDEX conversation_hours_pending ON conversation_hours (tenant_id) WHERE pending;

INSERT INTO conversation_hours (tenant_id, hour, conversations, pending)
SELECT tenant_id, created_at / 3600000000, COUNT(*), false FROM conversations GROUP BY 1, 2;

INSERT INTO conversation_groups (tenant_id, status, source, agent_id, conversations, messages, pending)
SELECT tenant_id, status, source, agent_id, COUNT(*), SUM(message_count)::bigint, false
FROM conversations GROUP BY 1, 2, 3, 4;

CREATE FUNCTION conversation_groups_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversation_groups (tenant_id, status, source, agent_id, conversations, messages)
    SELECT tenant_id, status, source, agent_id, COUNT(*), SUM(message_count)::bigint
    FROM new_rows GROUP BY 1, 2, 3, 4;
    INSERT INTO conversation_hours (tenant_id, hour, conversations)
    SELECT tenant_id, created_at / 3600000000, COUNT(*) FROM new_rows GROUP BY 1, 2;
    RETURN NULL;
END $$;

CREATE FUNCTION conversation_groups_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversation_groups (tenant_id, status, source, agent_id, conversations, messages)
    SELECT tenant_id, status, source, agent_id, -COUNT(*), -SUM(message_count)::bigint
    FROM old_rows GROUP BY 1, 2, 3, 4;
    INSERT INTO conversation_hours (tenant_id, hour, conversations)
    SELECT tenant_id, created_at / 3600000000, -COUNT(*) FROM old_rows GROUP BY 1, 2;
    RETURN NULL;
END $$;

-- An append (more messages, same group), a status change (out of one group, into another) and
-- a patch that changes neither (no row) are all the same difference of new and old.
CREATE FUNCTION conversation_groups_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversation_groups (tenant_id, status, source, agent_id, conversations, messages)
    SELECT tenant_id, status, source, agent_id, SUM(c)::bigint, SUM(m)::bigint
    FROM (
        SELECT tenant_id, status, source, agent_id, 1 AS c, message_count AS m FROM new_rows
        UNION ALL
        SELECT tenant_id, status, source, agent_id, -1, -message_count FROM old_rows
    ) d
    GROUP BY 1, 2, 3, 4
    HAVING SUM(c) <> 0 OR SUM(m) <> 0;
    -- No conversation path changes a creation time; this keeps the hours right if one does.
    INSERT INTO conversation_hours (tenant_id, hour, conversations)
    SELECT tenant_id, hour, SUM(c)::bigint
    FROM (
        SELECT tenant_id, created_at / 3600000000 AS hour, 1 AS c FROM new_rows
        UNION ALL
        SELECT tenant_id, created_at / 3600000000, -1 FROM old_rows
    ) d
    GROUP BY 1, 2
    HAVING SUM(c) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER conversation_groups_insert AFTER INSERT ON conversations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversation_groups_insert();
CREATE TRIGGER conversation_groups_delete AFTER DELETE ON conversations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversation_groups_delete();
CREATE TRIGGER conversation_groups_update AFTER UPDATE ON conversations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversation_groups_update();
