-- Webhooks: endpoints, an outbox of events written in the same transaction as the change that
-- caused them, one delivery per (event, endpoint), and a log of every attempt.

CREATE TABLE webhook_endpoints (
    tenant_id                   BLOB    NOT NULL REFERENCES tenants (id),
    id                          BLOB    NOT NULL,
    url                         TEXT    NOT NULL,
    event_types                 TEXT    NOT NULL DEFAULT '[]',  -- JSON array; empty = every type
    description                 TEXT,
    enabled                     INTEGER NOT NULL DEFAULT 1,
    secret                      TEXT    NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_at  INTEGER,
    failing_since               INTEGER,
    disabled_reason             TEXT,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE webhook_events (
    tenant_id        BLOB    NOT NULL,
    id               BLOB    NOT NULL,
    event_type       TEXT    NOT NULL,
    conversation_id  BLOB,
    payload          TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_events_conversation ON webhook_events (tenant_id, conversation_id);

-- A rowid table: the rowid is the global order in which deliveries were created, which is what
-- "events of one conversation are delivered in the order they happened" is checked against.
CREATE TABLE webhook_deliveries (
    tenant_id        BLOB    NOT NULL,
    id               BLOB    NOT NULL,
    event_id         BLOB    NOT NULL,
    endpoint_id      BLOB    NOT NULL,
    conversation_id  BLOB,
    state            TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    locked_until     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_id ON webhook_deliveries (tenant_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (tenant_id, endpoint_id, conversation_id, state);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (tenant_id, event_id);

CREATE TABLE webhook_attempts (
    tenant_id         BLOB    NOT NULL,
    id                BLOB    NOT NULL,
    delivery_id       BLOB    NOT NULL,
    endpoint_id       BLOB    NOT NULL,
    event_id          BLOB    NOT NULL,
    attempt           INTEGER NOT NULL,
    status_code       INTEGER,
    latency_ms        INTEGER NOT NULL,
    response_snippet  TEXT,
    error             TEXT,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (tenant_id, endpoint_id, created_at DESC);
