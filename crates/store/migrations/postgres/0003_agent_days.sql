-- Conversations created per agent and UTC day (microseconds / 86,400,000,000, toward zero),
-- kept by the same statement triggers as migration 0002's counts and as the same kind of
-- insert-only deltas, folded by the same compaction (postgres/stats.rs). The Sensay 30-day
-- historical reads a replica's day rows (at most one per day it had conversations created, once
-- folded) instead of counting its conversations by day: 1,250 index entries per request for
-- each of the benchmark's replicas, which held that route at p50 14.8 ms under 64 connections.
--
-- Only conversations with an agent are counted; the historical is per agent. A creation time
-- before 1970 lands in day 0 or below, before any window, which is all the route asks of it.
CREATE TABLE conversation_agent_days (
    tenant_id      uuid    NOT NULL,
    agent_id       text    NOT NULL,
    day            bigint  NOT NULL,
    conversations  bigint  NOT NULL,
    pending        boolean NOT NULL DEFAULT true
);
CREATE INDEX conversation_agent_days_key ON conversation_agent_days (tenant_id, agent_id, day)
    INCLUDE (conversations);
CREATE INDEX conversation_agent_days_pending ON conversation_agent_days (tenant_id) WHERE pending;

INSERT INTO conversation_agent_days (tenant_id, agent_id, day, conversations, pending)
SELECT tenant_id, agent_id, created_at / 86400000000, COUNT(*), false FROM conversations
WHERE agent_id IS NOT NULL GROUP BY 1, 2, 3;

-- The trigger functions of 0002, each with the agent days added; the triggers call them by
-- name, so replacing them is enough.
CREATE OR REPLACE FUNCTION conversation_groups_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversation_groups (tenant_id, status, source, agent_id, conversations, messages)
    SELECT tenant_id, status, source, agent_id, COUNT(*), SUM(message_count)::bigint
    FROM new_rows GROUP BY 1, 2, 3, 4;
    INSERT INTO conversation_hours (tenant_id, hour, conversations)
    SELECT tenant_id, created_at / 3600000000, COUNT(*) FROM new_rows GROUP BY 1, 2;
    INSERT INTO conversation_agent_days (tenant_id, agent_id, day, conversations)
    SELECT tenant_id, agent_id, created_at / 86400000000, COUNT(*) FROM new_rows
    WHERE agent_id IS NOT NULL GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION conversation_groups_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversation_groups (tenant_id, status, source, agent_id, conversations, messages)
    SELECT tenant_id, status, source, agent_id, -COUNT(*), -SUM(message_count)::bigint
    FROM old_rows GROUP BY 1, 2, 3, 4;
    INSERT INTO conversation_hours (tenant_id, hour, conversations)
    SELECT tenant_id, created_at / 3600000000, -COUNT(*) FROM old_rows GROUP BY 1, 2;
    INSERT INTO conversation_agent_days (tenant_id, agent_id, day, conversations)
    SELECT tenant_id, agent_id, created_at / 86400000000, -COUNT(*) FROM old_rows
    WHERE agent_id IS NOT NULL GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION conversation_groups_update() RETURNS trigger LANGUAGE plpgsql AS $$
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
    -- No conversation path changes a creation time or an agent; this keeps the hours and the
    -- agent days right if one does, in one pass over the transition tables for both.
    WITH d AS (
        SELECT tenant_id, agent_id, created_at, 1 AS c FROM new_rows
        UNION ALL
        SELECT tenant_id, agent_id, created_at, -1 FROM old_rows
    ), hours AS (
        INSERT INTO conversation_hours (tenant_id, hour, conversations)
        SELECT tenant_id, created_at / 3600000000, SUM(c)::bigint FROM d
        GROUP BY 1, 2
        HAVING SUM(c) <> 0
    )
    INSERT INTO conversation_agent_days (tenant_id, agent_id, day, conversations)
    SELECT tenant_id, agent_id, created_at / 86400000000, SUM(c)::bigint FROM d
    WHERE agent_id IS NOT NULL
    GROUP BY 1, 2, 3
    HAVING SUM(c) <> 0;
    RETURN NULL;
END $$;
