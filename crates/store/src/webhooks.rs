//! Webhook endpoints, the event outbox and delivery bookkeeping.
//!
//! Events are written by the conversation writes themselves (same transaction); this file is the
//! API the routes and the delivery worker use.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, Store, TenantId};

/// Event types a webhook endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "conversation.created",
    "conversation.updated",
    "conversation.completed",
    "insights.ready",
    "webhook.test",
];

/// An endpoint as stored (secrets included: only the store and the worker see this).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Id.
    pub id: Uuid,
    /// Where events are posted.
    pub url: String,
    /// Subscribed types; empty means all.
    pub event_types: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Whether events are delivered.
    pub enabled: bool,
    /// Current signing secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    /// End of the rotation grace period.
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    /// Start of the current run of failures.
    pub failing_since: Option<OffsetDateTime>,
    /// Why it was disabled automatically.
    pub disabled_reason: Option<String>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
}

impl Endpoint {
    /// The secrets a delivery claimed at `now` is signed with: the current one, and the one
    /// before the last rotation while its grace period lasts (receivers that have not switched
    /// yet still verify).
    pub(crate) fn signing_secrets(&self, now: OffsetDateTime) -> Vec<String> {
        let mut secrets = vec![self.secret.clone()];
        if let (Some(p), Some(until)) = (&self.previous_secret, self.previous_secret_expires_at)
            && until > now
        {
            secrets.push(p.clone());
        }
        secrets
    }

    /// Whether it wants events of `event_type`, given its stored list (a JSON array; empty
    /// means every type).
    pub(crate) fn wants(stored_types: &str, event_type: &str) -> bool {
        let list: Vec<String> = serde_json::from_str(stored_types).unwrap_or_default();
        list.is_empty() || list.iter().any(|t| t == event_type)
    }
}

/// What a create or update sets; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    /// URL.
    pub url: Option<String>,
    /// Subscribed types.
    pub event_types: Option<Vec<String>>,
    /// Description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Enabled flag (enabling also clears an automatic disable).
    pub enabled: Option<bool>,
}

/// A delivery claimed by a worker, with what it needs to post it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// Tenant.
    pub tenant: TenantId,
    /// Delivery id.
    pub id: Uuid,
    /// Event id (the `webhook-id` header: stable across retries).
    pub event_id: Uuid,
    /// Event type.
    pub event_type: String,
    /// JSON body to post.
    pub payload: String,
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// Endpoint URL.
    pub url: String,
    /// Secrets to sign with (current first).
    pub secrets: Vec<String>,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// How an attempt went.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    /// HTTP status, if a response came.
    pub status_code: Option<u16>,
    /// Time taken.
    pub latency_ms: i64,
    /// The start of the response body.
    pub response_snippet: Option<String>,
    /// Network or safety error.
    pub error: Option<String>,
    /// 2xx.
    pub success: bool,
}

/// Retry policy applied when an attempt fails.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Wait before attempt n+2 after attempt n+1 failed; its length is the number of retries.
    pub schedule: Vec<std::time::Duration>,
    /// Disable an endpoint that has failed continuously for this long.
    pub disable_after: std::time::Duration,
}

impl RetryPolicy {
    /// A delivery's state after its attempt number `attempt` (1-based) and when it is next due:
    /// `succeeded`; `pending` after the schedule's wait while retries are left; else `failed`.
    pub(crate) fn after_attempt(
        &self,
        attempt: i64,
        success: bool,
        now: OffsetDateTime,
    ) -> (&'static str, OffsetDateTime) {
        if success {
            return ("succeeded", now);
        }
        let wait = usize::try_from(attempt - 1)
            .ok()
            .and_then(|i| self.schedule.get(i));
        match wait {
            Some(w) => ("pending", now + *w),
            None => ("failed", now),
        }
    }

    /// An endpoint failing since this time or earlier is disabled, with the reason given.
    pub(crate) fn disable_cutoff(&self, now: OffsetDateTime) -> (OffsetDateTime, String) {
        let cutoff = now - self.disable_after;
        let reason = format!(
            "every delivery failed since {}",
            confab_core::timefmt::rfc3339(cutoff)
        );
        (cutoff, reason)
    }
}

/// One attempt, as `GET /v1/webhooks/{id}/deliveries` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// Attempt id.
    pub id: Uuid,
    /// Delivery id (retry it with this).
    pub delivery_id: Uuid,
    /// Event id.
    pub event_id: Uuid,
    /// Event type.
    pub event_type: String,
    /// 1-based attempt number.
    pub attempt: i64,
    /// HTTP status, if any.
    pub status_code: Option<i64>,
    /// Time taken.
    pub latency_ms: i64,
    /// Start of the response body.
    pub response_snippet: Option<String>,
    /// Error, if no response.
    pub error: Option<String>,
    /// The delivery's state now: pending, succeeded or failed.
    pub delivery_state: String,
    /// RFC 3339.
    pub created_at: String,
}

impl Store {
    /// Creates an endpoint with a fresh secret.
    pub async fn create_endpoint(
        &self,
        tenant: &TenantId,
        change: EndpointChange,
    ) -> Result<Endpoint> {
        dispatch!(self, b => b.create_endpoint(*tenant, change).await)
    }

    /// The tenant's endpoints, oldest first.
    pub async fn list_endpoints(&self, tenant: &TenantId) -> Result<Vec<Endpoint>> {
        dispatch!(self, b => b.list_endpoints(*tenant).await)
    }

    /// One endpoint.
    pub async fn get_endpoint(&self, tenant: &TenantId, id: Uuid) -> Result<Endpoint> {
        dispatch!(self, b => b.get_endpoint(*tenant, id).await)
    }

    /// Changes an endpoint.
    pub async fn update_endpoint(
        &self,
        tenant: &TenantId,
        id: Uuid,
        change: EndpointChange,
    ) -> Result<Endpoint> {
        dispatch!(self, b => b.update_endpoint(*tenant, id, change).await)
    }

    /// Deletes an endpoint and its deliveries and attempts.
    pub async fn delete_endpoint(&self, tenant: &TenantId, id: Uuid) -> Result<()> {
        dispatch!(self, b => b.delete_endpoint(*tenant, id).await)
    }

    /// Replaces the secret; the old one keeps signing for `grace`.
    pub async fn rotate_endpoint_secret(
        &self,
        tenant: &TenantId,
        id: Uuid,
        grace: time::Duration,
    ) -> Result<Endpoint> {
        dispatch!(self, b => b.rotate_endpoint_secret(*tenant, id, grace).await)
    }

    /// Queues a `webhook.test` event for one endpoint; answers the event id.
    pub async fn enqueue_test_event(&self, tenant: &TenantId, id: Uuid) -> Result<Uuid> {
        dispatch!(self, b => b.enqueue_test_event(*tenant, id).await)
    }

    /// Claims up to `n` due deliveries for `lease`, respecting per-conversation order.
    pub async fn claim_deliveries(
        &self,
        n: i64,
        lease: std::time::Duration,
    ) -> Result<Vec<ClaimedDelivery>> {
        dispatch!(self, b => b.claim_deliveries(n, lease).await)
    }

    /// Records an attempt and schedules the next one (or ends the delivery).
    pub async fn record_attempt(
        &self,
        d: &ClaimedDelivery,
        outcome: AttemptOutcome,
        policy: &RetryPolicy,
    ) -> Result<()> {
        dispatch!(self, b => b.record_attempt(d.clone(), outcome, policy.clone()).await)
    }

    /// The endpoint's recent attempts, newest first.
    pub async fn list_attempts(
        &self,
        tenant: &TenantId,
        endpoint: Uuid,
        limit: i64,
    ) -> Result<Vec<AttemptRecord>> {
        dispatch!(self, b => b.list_attempts(*tenant, endpoint, limit).await)
    }

    /// Puts a failed delivery back in the queue, due now.
    pub async fn retry_delivery(
        &self,
        tenant: &TenantId,
        endpoint: Uuid,
        delivery: Uuid,
    ) -> Result<()> {
        dispatch!(self, b => b.retry_delivery(*tenant, endpoint, delivery).await)
    }
}

/// The JSON body of an event (Standard Webhooks: `type`, `timestamp`, `data`).
pub fn event_body(event_type: &str, at: OffsetDateTime, data: Value) -> String {
    serde_json::json!({
        "type": event_type,
        "timestamp": confab_core::timefmt::rfc3339(at),
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![Duration::from_secs(5), Duration::from_secs(60)],
            disable_after: Duration::from_secs(3600),
        }
    }

    #[test]
    fn an_attempt_succeeds_waits_for_the_next_retry_or_fails_for_good() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let p = policy();
        assert_eq!(p.after_attempt(1, true, now), ("succeeded", now));
        assert_eq!(
            p.after_attempt(1, false, now),
            ("pending", now + Duration::from_secs(5))
        );
        assert_eq!(
            p.after_attempt(2, false, now),
            ("pending", now + Duration::from_secs(60))
        );
        assert_eq!(p.after_attempt(3, false, now), ("failed", now));
        assert_eq!(p.after_attempt(3, true, now), ("succeeded", now));
        // No schedule: the first failure is the last.
        let none = RetryPolicy {
            schedule: Vec::new(),
            ..policy()
        };
        assert_eq!(none.after_attempt(1, false, now), ("failed", now));
    }

    #[test]
    fn an_endpoint_is_disabled_after_failing_for_the_policy_s_time() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let (cutoff, reason) = policy().disable_cutoff(now);
        assert_eq!(cutoff, datetime!(2026-12-01 11:00 UTC));
        assert_eq!(
            reason,
            "every delivery failed since 2026-12-01T11:00:00.000000Z"
        );
    }

    #[test]
    fn the_previous_secret_signs_until_its_grace_period_ends() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let mut e = Endpoint {
            id: Uuid::nil(),
            url: "https://hooks.example/x".into(),
            event_types: Vec::new(),
            description: None,
            enabled: true,
            secret: "whsec_new".into(),
            previous_secret: Some("whsec_old".into()),
            previous_secret_expires_at: Some(now + Duration::from_secs(1)),
            failing_since: None,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        };
        assert_eq!(e.signing_secrets(now), ["whsec_new", "whsec_old"]);
        e.previous_secret_expires_at = Some(now);
        assert_eq!(e.signing_secrets(now), ["whsec_new"]);
        e.previous_secret_expires_at = None;
        assert_eq!(e.signing_secrets(now), ["whsec_new"]);
    }

    #[test]
    fn an_endpoint_without_types_wants_every_event() {
        assert!(Endpoint::wants("[]", "conversation.updated"));
        assert!(Endpoint::wants(
            r#"["conversation.created","conversation.updated"]"#,
            "conversation.updated"
        ));
        assert!(!Endpoint::wants(
            r#"["conversation.created"]"#,
            "conversation.updated"
        ));
    }
}
