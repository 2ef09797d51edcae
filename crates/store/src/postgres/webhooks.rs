//! Webhooks on PostgreSQL: endpoints, the outbox (written by `emit` inside conversation writes),
//! claims with `FOR UPDATE SKIP LOCKED`, and the attempt log.

use std::sync::LazyLock;

use base64::Engine;
use confab_core::ids::new_id;
use confab_core::timefmt::{from_micros, rfc3339, to_micros};
use rand::RngCore;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use super::PgStore;
use crate::error::{Result, StoreError};
use crate::types::TenantId;
use crate::webhooks::*;

const ENDPOINT_COLS: &str = "id, url, event_types::text, description, enabled, secret, previous_secret, \
     previous_secret_expires_at, failing_since, disabled_reason, created_at, updated_at";

fn new_secret() -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b)
    )
}

fn endpoint(r: &PgRow) -> Result<Endpoint> {
    Ok(Endpoint {
        id: r.try_get(0)?,
        url: r.try_get(1)?,
        event_types: serde_json::from_str(r.try_get(2)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        description: r.try_get(3)?,
        enabled: r.try_get(4)?,
        secret: r.try_get(5)?,
        previous_secret: r.try_get(6)?,
        previous_secret_expires_at: r.try_get::<Option<i64>, _>(7)?.map(from_micros),
        failing_since: r.try_get::<Option<i64>, _>(8)?.map(from_micros),
        disabled_reason: r.try_get(9)?,
        created_at: from_micros(r.try_get(10)?),
        updated_at: from_micros(r.try_get(11)?),
    })
}

async fn select_endpoint(c: &mut PgConnection, tenant: TenantId, id: Uuid) -> Result<Endpoint> {
    let sql =
        format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.0)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref()
        .map(endpoint)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

/// The query of [`enabled_endpoints`], its array of tenants bound as `$param` (an append
/// batch asks it inside its write statement, columns.rs).
pub(super) fn enabled_endpoints_sql(param: usize) -> String {
    format!(
        "SELECT tenant_id, id, event_types::text FROM webhook_endpoints \
         WHERE tenant_id = ANY(${param}) AND enabled"
    )
}

/// Whether the tenant in column `tenant` has an enabled endpoint, as an SQL condition: the
/// appends that must write events under lock (versioned.rs).
pub(super) fn hooked_sql(tenant: &str) -> String {
    format!("EXISTS (SELECT FROM webhook_endpoints e WHERE e.tenant_id = {tenant} AND e.enabled)")
}

/// The rows of [`enabled_endpoints_sql`], decoded.
pub(super) fn endpoint_rows(rows: &[PgRow]) -> Result<Vec<(Uuid, Uuid, String)>> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

static ENABLED_ENDPOINTS: LazyLock<String> = LazyLock::new(|| enabled_endpoints_sql(1));

/// The enabled endpoints of `tenants`: (tenant, endpoint, its event-type filter as JSON text).
pub(super) async fn enabled_endpoints(
    c: &mut PgConnection,
    tenants: &[Uuid],
) -> Result<Vec<(Uuid, Uuid, String)>> {
    let rows = sqlx::query(ENABLED_ENDPOINTS.as_str())
        .bind(tenants)
        .fetch_all(&mut *c)
        .await?;
    endpoint_rows(&rows)
}

/// The endpoints, among `endpoints` of `tenant`, that an event of `event_type` goes to.
pub(super) fn targets(
    endpoints: &[(Uuid, Uuid, String)],
    tenant: TenantId,
    event_type: &str,
    only_endpoint: Option<Uuid>,
) -> Vec<Uuid> {
    endpoints
        .iter()
        .filter(|(t, id, types)| {
            *t == tenant.0
                && match only_endpoint {
                    Some(only) => only == *id,
                    None => Endpoint::wants(types, event_type),
                }
        })
        .map(|(_, id, _)| *id)
        .collect()
}

/// Writes an event to the outbox and one delivery per enabled endpoint that wants it, inside the
/// caller's transaction. Nothing is written when no endpoint wants it.
pub(super) async fn emit(
    c: &mut PgConnection,
    tenant: TenantId,
    event_type: &str,
    conversation: Option<Uuid>,
    data: Value,
    now: OffsetDateTime,
    only_endpoint: Option<Uuid>,
) -> Result<Option<Uuid>> {
    let endpoints = enabled_endpoints(c, &[tenant.0]).await?;
    let targets = targets(&endpoints, tenant, event_type, only_endpoint);
    if targets.is_empty() {
        return Ok(None);
    }
    emit_to(c, tenant, event_type, conversation, data, now, &targets)
        .await
        .map(Some)
}

/// Writes an event and its deliveries to `targets` (not empty), inside the caller's transaction.
pub(super) async fn emit_to(
    c: &mut PgConnection,
    tenant: TenantId,
    event_type: &str,
    conversation: Option<Uuid>,
    data: Value,
    now: OffsetDateTime,
    targets: &[Uuid],
) -> Result<Uuid> {
    let event_id = new_id();
    sqlx::query(
        "INSERT INTO webhook_events (tenant_id, id, event_type, conversation_id, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.0)
    .bind(event_id)
    .bind(event_type)
    .bind(conversation)
    .bind(event_body(event_type, now, data))
    .bind(to_micros(now))
    .execute(&mut *c)
    .await?;
    for endpoint in targets {
        sqlx::query(
            "INSERT INTO webhook_deliveries (tenant_id, id, event_id, endpoint_id, conversation_id, state, attempts, \
             next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7, $8)",
        )
        .bind(tenant.0)
        .bind(new_id())
        .bind(event_id)
        .bind(endpoint)
        .bind(conversation)
        .bind(to_micros(now))
        .bind(to_micros(now))
        .bind(to_micros(now))
        .execute(&mut *c)
        .await?;
    }
    Ok(event_id)
}

impl PgStore {
    pub async fn create_endpoint(&self, tenant: TenantId, ch: EndpointChange) -> Result<Endpoint> {
        self.exec(move |c, now| {
                Box::pin(async move {
                    let id = new_id();
                    sqlx::query(
                        "INSERT INTO webhook_endpoints (tenant_id, id, url, event_types, description, enabled, secret, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)",
                    )
                    .bind(tenant.0)
                    .bind(id)
                    .bind(ch.url.unwrap_or_default())
                    .bind(serde_json::to_string(&ch.event_types.unwrap_or_default()).unwrap_or_else(|_| "[]".into()))
                    .bind(ch.description.flatten())
                    .bind(ch.enabled.unwrap_or(true))
                    .bind(new_secret())
                    .bind(to_micros(now))
                    .bind(to_micros(now))
                    .execute(&mut *c)
                    .await?;
                    select_endpoint(c, tenant, id).await
                })
            })
            .await
    }

    pub async fn list_endpoints(&self, tenant: TenantId) -> Result<Vec<Endpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(endpoint).collect()
    }

    pub async fn get_endpoint(&self, tenant: TenantId, id: Uuid) -> Result<Endpoint> {
        let sql = format!(
            "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.0)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(endpoint)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    pub async fn update_endpoint(
        &self,
        tenant: TenantId,
        id: Uuid,
        ch: EndpointChange,
    ) -> Result<Endpoint> {
        self.exec(move |c, now| {
                Box::pin(async move {
                    let mut e = select_endpoint(c, tenant, id).await?;
                    if let Some(u) = ch.url {
                        e.url = u;
                    }
                    if let Some(t) = ch.event_types {
                        e.event_types = t;
                    }
                    if let Some(d) = ch.description {
                        e.description = d;
                    }
                    if let Some(en) = ch.enabled {
                        if en {
                            e.failing_since = None;
                            e.disabled_reason = None;
                        }
                        e.enabled = en;
                    }
                    sqlx::query(
                        "UPDATE webhook_endpoints SET url = $1, event_types = $2::jsonb, description = $3, enabled = $4, \
                         failing_since = $5, disabled_reason = $6, updated_at = $7 WHERE tenant_id = $8 AND id = $9",
                    )
                    .bind(&e.url)
                    .bind(serde_json::to_string(&e.event_types).unwrap_or_else(|_| "[]".into()))
                    .bind(&e.description)
                    .bind(e.enabled)
                    .bind(e.failing_since.map(to_micros))
                    .bind(&e.disabled_reason)
                    .bind(to_micros(now))
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
                    select_endpoint(c, tenant, id).await
                })
            })
            .await
    }

    pub async fn delete_endpoint(&self, tenant: TenantId, id: Uuid) -> Result<()> {
        self.exec(move |c, _now| {
                Box::pin(async move {
                    let gone = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.0)
                        .bind(id)
                        .execute(&mut *c)
                        .await?
                        .rows_affected();
                    if gone == 0 {
                        return Err(StoreError::NotFound);
                    }
                    for sql in [
                        "DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2",
                        "DELETE FROM webhook_attempts WHERE tenant_id = $1 AND endpoint_id = $2",
                    ] {
                        sqlx::query(sql).bind(tenant.0).bind(id).execute(&mut *c).await?;
                    }
                    // Events no delivery refers to any more are of no use.
                    sqlx::query(
                        "DELETE FROM webhook_events WHERE tenant_id = $1 AND NOT EXISTS \
                         (SELECT 1 FROM webhook_deliveries d WHERE d.tenant_id = webhook_events.tenant_id \
                          AND d.event_id = webhook_events.id)",
                    )
                    .bind(tenant.0)
                    .execute(&mut *c)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn rotate_endpoint_secret(
        &self,
        tenant: TenantId,
        id: Uuid,
        grace: time::Duration,
    ) -> Result<Endpoint> {
        self.exec(move |c, now| {
                Box::pin(async move {
                    let e = select_endpoint(c, tenant, id).await?;
                    sqlx::query(
                        "UPDATE webhook_endpoints SET previous_secret = $1, previous_secret_expires_at = $2, secret = $3, \
                         updated_at = $4 WHERE tenant_id = $5 AND id = $6",
                    )
                    .bind(e.secret)
                    .bind(to_micros(now + grace))
                    .bind(new_secret())
                    .bind(to_micros(now))
                    .bind(tenant.0)
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
                    select_endpoint(c, tenant, id).await
                })
            })
            .await
    }

    pub async fn enqueue_test_event(&self, tenant: TenantId, id: Uuid) -> Result<Uuid> {
        self.exec(move |c, now| {
            Box::pin(async move {
                let e = select_endpoint(c, tenant, id).await?;
                if !e.enabled {
                    return Err(confab_core::ValidationError::field(
                        "enabled",
                        "the endpoint is disabled",
                    )
                    .into());
                }
                let data =
                    serde_json::json!({"endpoint_id": id, "message": "test event from confab"});
                emit(c, tenant, "webhook.test", None, data, now, Some(id))
                    .await?
                    .ok_or(StoreError::NotFound)
            })
        })
        .await
    }

    pub async fn claim_deliveries(
        &self,
        n: i64,
        lease: std::time::Duration,
    ) -> Result<Vec<ClaimedDelivery>> {
        let lease_us = lease.as_micros() as i64;
        self.exec(move |c, now| {
                Box::pin(async move {
                    let now_us = to_micros(now);
                    // A delivery waits while an earlier one of the same endpoint and conversation
                    // is still pending: events of a conversation arrive in the order they happened.
                    let rows = sqlx::query(
                        "UPDATE webhook_deliveries SET locked_until = $1 WHERE (tenant_id, id) IN ( \
                           SELECT d.tenant_id, d.id FROM webhook_deliveries d \
                           JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id AND e.enabled \
                           WHERE d.state = 'pending' AND d.next_attempt_at <= $2 \
                             AND (d.locked_until IS NULL OR d.locked_until <= $2) \
                             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.tenant_id = d.tenant_id \
                               AND p.endpoint_id = d.endpoint_id AND p.conversation_id IS NOT DISTINCT FROM d.conversation_id \
                               AND p.state = 'pending' AND p.rowid < d.rowid) \
                           ORDER BY d.next_attempt_at, d.rowid LIMIT $3 FOR UPDATE OF d SKIP LOCKED) \
                         RETURNING tenant_id, id, event_id, endpoint_id, attempts",
                    )
                    .bind(now_us + lease_us)
                    .bind(now_us)
                    .bind(n)
                    .fetch_all(&mut *c)
                    .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in rows {
                        let tenant = TenantId(r.try_get(0)?);
                        let endpoint_id: Uuid = r.try_get(3)?;
                        let event_id: Uuid = r.try_get(2)?;
                        let ev = sqlx::query("SELECT event_type, payload FROM webhook_events WHERE tenant_id = $1 AND id = $2")
                            .bind(tenant.0)
                            .bind(event_id)
                            .fetch_one(&mut *c)
                            .await?;
                        let e = select_endpoint(c, tenant, endpoint_id).await?;
                        let secrets = e.signing_secrets(now);
                        out.push(ClaimedDelivery {
                            tenant,
                            id: r.try_get(1)?,
                            event_id,
                            event_type: ev.try_get(0)?,
                            payload: ev.try_get(1)?,
                            endpoint_id,
                            url: e.url,
                            secrets,
                            attempts: r.try_get(4)?,
                        });
                    }
                    Ok(out)
                })
            })
            .await
    }

    pub async fn record_attempt(
        &self,
        d: ClaimedDelivery,
        o: AttemptOutcome,
        policy: RetryPolicy,
    ) -> Result<()> {
        self.exec(move |c, now| {
                Box::pin(async move {
                    let attempt = d.attempts + 1;
                    sqlx::query(
                        "INSERT INTO webhook_attempts (tenant_id, id, delivery_id, endpoint_id, event_id, attempt, status_code, \
                         latency_ms, response_snippet, error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(d.tenant.0)
                    .bind(new_id())
                    .bind(d.id)
                    .bind(d.endpoint_id)
                    .bind(d.event_id)
                    .bind(attempt)
                    .bind(o.status_code.map(i64::from))
                    .bind(o.latency_ms)
                    .bind(&o.response_snippet)
                    .bind(&o.error)
                    .bind(to_micros(now))
                    .execute(&mut *c)
                    .await?;
                    let (state, next) = policy.after_attempt(attempt, o.success, now);
                    sqlx::query(
                        "UPDATE webhook_deliveries SET state = $1, attempts = $2, next_attempt_at = $3, locked_until = NULL, \
                         updated_at = $4 WHERE tenant_id = $5 AND id = $6",
                    )
                    .bind(state)
                    .bind(attempt)
                    .bind(to_micros(next))
                    .bind(to_micros(now))
                    .bind(d.tenant.0)
                    .bind(d.id)
                    .execute(&mut *c)
                    .await?;
                    // Track how long the endpoint has been failing; disable it past the limit.
                    if o.success {
                        sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE tenant_id = $1 AND id = $2")
                            .bind(d.tenant.0)
                            .bind(d.endpoint_id)
                            .execute(&mut *c)
                            .await?;
                    } else {
                        sqlx::query(
                            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $1) WHERE tenant_id = $2 AND id = $3",
                        )
                        .bind(to_micros(now))
                        .bind(d.tenant.0)
                        .bind(d.endpoint_id)
                        .execute(&mut *c)
                        .await?;
                        let (cutoff, reason) = policy.disable_cutoff(now);
                        sqlx::query(
                            "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $1, updated_at = $2 \
                             WHERE tenant_id = $3 AND id = $4 AND enabled AND failing_since <= $5",
                        )
                        .bind(reason)
                        .bind(to_micros(now))
                        .bind(d.tenant.0)
                        .bind(d.endpoint_id)
                        .bind(to_micros(cutoff))
                        .execute(&mut *c)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    pub async fn list_attempts(
        &self,
        tenant: TenantId,
        endpoint: Uuid,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>> {
        self.get_endpoint(tenant, endpoint).await?;
        let rows = sqlx::query(
            "SELECT a.id, a.delivery_id, a.event_id, e.event_type, a.attempt, a.status_code, a.latency_ms, \
             a.response_snippet, a.error, d.state, a.created_at FROM webhook_attempts a \
             JOIN webhook_events e ON e.tenant_id = a.tenant_id AND e.id = a.event_id \
             JOIN webhook_deliveries d ON d.tenant_id = a.tenant_id AND d.id = a.delivery_id \
             WHERE a.tenant_id = $1 AND a.endpoint_id = $2 ORDER BY a.created_at DESC, a.id DESC LIMIT $3",
        )
        .bind(tenant.0)
        .bind(endpoint)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptRecord {
                    id: r.try_get(0)?,
                    delivery_id: r.try_get(1)?,
                    event_id: r.try_get(2)?,
                    event_type: r.try_get(3)?,
                    attempt: r.try_get(4)?,
                    status_code: r.try_get(5)?,
                    latency_ms: r.try_get(6)?,
                    response_snippet: r.try_get(7)?,
                    error: r.try_get(8)?,
                    delivery_state: r.try_get(9)?,
                    created_at: rfc3339(from_micros(r.try_get(10)?)),
                })
            })
            .collect()
    }

    pub async fn retry_delivery(
        &self,
        tenant: TenantId,
        endpoint: Uuid,
        delivery: Uuid,
    ) -> Result<()> {
        self.exec(move |c, now| {
                Box::pin(async move {
                    let n = sqlx::query(
                        "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, locked_until = NULL, \
                         updated_at = $2 WHERE tenant_id = $3 AND endpoint_id = $4 AND id = $5 AND state = 'failed'",
                    )
                    .bind(to_micros(now))
                    .bind(to_micros(now))
                    .bind(tenant.0)
                    .bind(endpoint)
                    .bind(delivery)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                })
            })
            .await
    }
}
