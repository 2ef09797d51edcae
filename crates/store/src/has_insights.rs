//! Which conversations of a page already have insights (list routes show a `hasInsights` flag
//! per item; one query per page instead of one per item).

use std::collections::HashSet;

use uuid::Uuid;

use crate::{Result, Store, TenantId};

impl Store {
    /// The subset of `conversations` that have insights for this tenant (ids of other tenants
    /// or unknown ids are simply absent).
    pub async fn with_insights(
        &self,
        tenant: &TenantId,
        conversations: &[Uuid],
    ) -> Result<HashSet<Uuid>> {
        if conversations.is_empty() {
            return Ok(HashSet::new());
        }
        dispatch!(self, b => b.with_insights(*tenant, conversations).await)
    }
}
