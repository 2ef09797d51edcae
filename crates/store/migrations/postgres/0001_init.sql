-- confab schema, PostgreSQL flavour: the SQLite schema table for table and column for column
-- (same names, so the row mapping and cursors stay parallel). Timestamps are bigint
-- microseconds since the Unix epoch, UTC, as on SQLite; ids are uuid; JSON is jsonb.
--
-- Distribution-ready (Citus): every primary key and unique index leads with tenant_id and every
-- foreign key includes it, so each table can be distributed by tenant_id and co-located.
-- `tenants` is the tenant registry itself (its `id` is the tenant id); on Citus it is a
-- reference table. A test (crates/store/tests/pg_catalog.rs) reads the catalog and enforces this.
--
-- `rowid` columns (identity) give the tables whose order SQLite takes from its rowid the same
-- global insertion order here: messages (search recency), jobs (claim order), deliveries
-- (per-conversation delivery order). They are not keys.

CREATE TABLE tenants (
    id          uuid    NOT NULL PRIMARY KEY,
    name        text    NOT NULL,
    created_at  bigint  NOT NULL
);
CREATE UNIQUE INDEX tenants_name ON tenants (name);

CREATE TABLE api_keys (
    tenant_id    uuid    NOT NULL REFERENCES tenants (id),
    key_id       text    NOT NULL,
    secret_hash  bytea   NOT NULL,
    scopes       text    NOT NULL,
    name         text,
    created_at   bigint  NOT NULL,
    revoked_at   bigint,
    PRIMARY KEY (tenant_id, key_id)
);
CREATE INDEX api_keys_key_id ON api_keys (key_id);

CREATE TABLE agents (
    tenant_id   uuid    NOT NULL REFERENCES tenants (id),
    id          text    NOT NULL,
    created_at  bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE conversations (
    tenant_id        uuid     NOT NULL REFERENCES tenants (id),
    id               uuid     NOT NULL,
    agent_id         text,
    user_id          text,
    title            text,
    status           text     NOT NULL CHECK (status IN ('active', 'in_progress', 'completed', 'abandoned')),
    source           text,
    model            text,
    company_name     text,
    added_to_memory  boolean  NOT NULL DEFAULT false,
    metadata         jsonb    NOT NULL DEFAULT '{}',
    message_count    bigint   NOT NULL DEFAULT 0,
    "analyze"        boolean  NOT NULL DEFAULT true,
    created_at       bigint   NOT NULL,
    updated_at       bigint   NOT NULL,
    completed_at     bigint,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
);
CREATE INDEX conversations_recent ON conversations (tenant_id, created_at DESC, id DESC);
CREATE INDEX conversations_agent ON conversations (tenant_id, agent_id, created_at DESC, id DESC);
CREATE INDEX conversations_user ON conversations (tenant_id, user_id, created_at DESC, id DESC);

-- `fts` holds the message's search tokens as computed in Rust by confab_core::search (folding,
-- CJK per character, tenant tag), written as a tsvector with positions: the same tokens the
-- SQLite index holds, so both backends find exactly the same messages.
CREATE TABLE messages (
    tenant_id          uuid     NOT NULL,
    conversation_id    uuid     NOT NULL,
    seq                bigint   NOT NULL,
    id                 uuid     NOT NULL,
    role               text     NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content            text     NOT NULL,
    created_at         bigint   NOT NULL,
    model              text,
    tokens             bigint,
    prompt_tokens      bigint,
    completion_tokens  bigint,
    latency_ms         bigint,
    tool_calls         jsonb,
    metadata           jsonb,
    source             text,
    is_trigger         boolean  NOT NULL DEFAULT false,
    rowid              bigint   GENERATED ALWAYS AS IDENTITY,
    fts                tsvector NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, seq),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX messages_id ON messages (tenant_id, id);
CREATE INDEX messages_fts ON messages USING gin (fts);
CREATE INDEX messages_rowid ON messages (rowid);

CREATE TABLE idempotency_keys (
    tenant_id        uuid    NOT NULL,
    family           text    NOT NULL,
    key              text    NOT NULL,
    fingerprint      bytea,
    conversation_id  uuid,
    response         jsonb,
    created_at       bigint  NOT NULL,
    PRIMARY KEY (tenant_id, family, key)
);
CREATE INDEX idempotency_keys_conversation ON idempotency_keys (tenant_id, conversation_id);

CREATE TABLE jobs (
    tenant_id        uuid    NOT NULL,
    id               uuid    NOT NULL,
    kind             text    NOT NULL,
    conversation_id  uuid,
    state            text    NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts         bigint  NOT NULL DEFAULT 0,
    run_at           bigint  NOT NULL,
    locked_until     bigint,
    last_error       text,
    created_at       bigint  NOT NULL,
    updated_at       bigint  NOT NULL,
    rowid            bigint  GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX jobs_due ON jobs (state, run_at);
CREATE INDEX jobs_conversation ON jobs (tenant_id, conversation_id);

CREATE TABLE insights (
    tenant_id        uuid     NOT NULL,
    conversation_id  uuid     NOT NULL,
    sentiment        text     NOT NULL,
    sentiment_score  float8   NOT NULL,
    task_completed   boolean  NOT NULL,
    topics           jsonb    NOT NULL,
    summary          text     NOT NULL,
    issues           jsonb    NOT NULL,
    analyzer         text     NOT NULL,
    created_at       bigint   NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE webhook_endpoints (
    tenant_id                   uuid     NOT NULL REFERENCES tenants (id),
    id                          uuid     NOT NULL,
    url                         text     NOT NULL,
    event_types                 jsonb    NOT NULL DEFAULT '[]',
    description                 text,
    enabled                     boolean  NOT NULL DEFAULT true,
    secret                      text     NOT NULL,
    previous_secret             text,
    previous_secret_expires_at  bigint,
    failing_since               bigint,
    disabled_reason             text,
    created_at                  bigint   NOT NULL,
    updated_at                  bigint   NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- payload is text, not jsonb: it is the exact body that is signed and delivered.
CREATE TABLE webhook_events (
    tenant_id        uuid    NOT NULL,
    id               uuid    NOT NULL,
    event_type       text    NOT NULL,
    conversation_id  uuid,
    payload          text    NOT NULL,
    created_at       bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_events_conversation ON webhook_events (tenant_id, conversation_id);

CREATE TABLE webhook_deliveries (
    tenant_id        uuid    NOT NULL,
    id               uuid    NOT NULL,
    event_id         uuid    NOT NULL,
    endpoint_id      uuid    NOT NULL,
    conversation_id  uuid,
    state            text    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded', 'failed')),
    attempts         bigint  NOT NULL DEFAULT 0,
    next_attempt_at  bigint  NOT NULL,
    locked_until     bigint,
    created_at       bigint  NOT NULL,
    updated_at       bigint  NOT NULL,
    rowid            bigint  GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (tenant_id, endpoint_id, conversation_id, state);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (tenant_id, event_id);

CREATE TABLE webhook_attempts (
    tenant_id         uuid    NOT NULL,
    id                uuid    NOT NULL,
    delivery_id       uuid    NOT NULL,
    endpoint_id       uuid    NOT NULL,
    event_id          uuid    NOT NULL,
    attempt           bigint  NOT NULL,
    status_code       bigint,
    latency_ms        bigint  NOT NULL,
    response_snippet  text,
    error             text,
    created_at        bigint  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (tenant_id, endpoint_id, created_at DESC);
