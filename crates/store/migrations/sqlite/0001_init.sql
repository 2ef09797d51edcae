-- confab schema, SQLite flavour. Every primary key and unique index leads with tenant_id so
-- the PostgreSQL twin of this schema can be distributed by tenant (Citus) unchanged.
-- Timestamps are INTEGER microseconds since the Unix epoch, UTC. Ids are 16-byte UUID blobs.

CREATE TABLE tenants (
    id          BLOB    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX tenants_name ON tenants (name);

CREATE TABLE api_keys (
    tenant_id    BLOB    NOT NULL REFERENCES tenants (id),
    key_id       TEXT    NOT NULL,
    secret_hash  BLOB    NOT NULL,
    scopes       TEXT    NOT NULL,
    name         TEXT,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    PRIMARY KEY (tenant_id, key_id)
);
-- Authentication looks keys up by their public id; ids are 128-bit random, so not unique-indexed.
CREATE INDEX api_keys_key_id ON api_keys (key_id);

CREATE TABLE agents (
    tenant_id   BLOB    NOT NULL REFERENCES tenants (id),
    id          TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) WITHOUT ROWID;

CREATE TABLE conversations (
    tenant_id        BLOB    NOT NULL REFERENCES tenants (id),
    id               BLOB    NOT NULL,
    agent_id         TEXT,
    user_id          TEXT,
    title            TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('active', 'in_progress', 'completed', 'abandoned')),
    source           TEXT,
    model            TEXT,
    company_name     TEXT,
    added_to_memory  INTEGER NOT NULL DEFAULT 0,
    metadata         TEXT    NOT NULL DEFAULT '{}',
    message_count    INTEGER NOT NULL DEFAULT 0,
    analyze          INTEGER NOT NULL DEFAULT 1,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
);
CREATE INDEX conversations_recent ON conversations (tenant_id, created_at DESC, id DESC);
CREATE INDEX conversations_agent ON conversations (tenant_id, agent_id, created_at DESC, id DESC);
CREATE INDEX conversations_user ON conversations (tenant_id, user_id, created_at DESC, id DESC);

-- A rowid table (not WITHOUT ROWID) so a full-text index can use the rowid as its key.
CREATE TABLE messages (
    tenant_id          BLOB    NOT NULL,
    conversation_id    BLOB    NOT NULL,
    seq                INTEGER NOT NULL,
    id                 BLOB    NOT NULL,
    role               TEXT    NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content            TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    model              TEXT,
    tokens             INTEGER,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    latency_ms         INTEGER,
    tool_calls         TEXT,
    metadata           TEXT,
    source             TEXT,
    is_trigger         INTEGER NOT NULL DEFAULT 0,
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX messages_order ON messages (tenant_id, conversation_id, seq);
CREATE UNIQUE INDEX messages_id ON messages (tenant_id, id);

-- Idempotency keys: (tenant, route family, key) -> the first answer, honoured for 24 hours.
CREATE TABLE idempotency_keys (
    tenant_id        BLOB    NOT NULL,
    family           TEXT    NOT NULL,
    key              TEXT    NOT NULL,
    fingerprint      BLOB,
    conversation_id  BLOB,
    response         TEXT,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, family, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_conversation ON idempotency_keys (tenant_id, conversation_id);

-- Durable background jobs (insights). Enqueued in the transaction that causes them.
CREATE TABLE jobs (
    tenant_id        BLOB    NOT NULL,
    id               BLOB    NOT NULL,
    kind             TEXT    NOT NULL,
    conversation_id  BLOB,
    state            TEXT    NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    run_at           INTEGER NOT NULL,
    locked_until     INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX jobs_due ON jobs (state, run_at);
CREATE INDEX jobs_conversation ON jobs (tenant_id, conversation_id);

-- Insights per conversation (filled by the analyzer).
CREATE TABLE insights (
    tenant_id        BLOB    NOT NULL,
    conversation_id  BLOB    NOT NULL,
    sentiment        TEXT    NOT NULL,
    sentiment_score  REAL    NOT NULL,
    task_completed   INTEGER NOT NULL,
    topics           TEXT    NOT NULL,
    summary          TEXT    NOT NULL,
    issues           TEXT    NOT NULL,
    analyzer         TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
