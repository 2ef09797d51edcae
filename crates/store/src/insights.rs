//! Insights rows: read by the dialects, written by the analyzer.

use confab_core::Insights;
use uuid::Uuid;

use crate::{Result, Store, TenantId};

impl Store {
    /// A conversation's insights, `None` before they exist; `NotFound` when the conversation
    /// does not exist for this tenant.
    pub async fn get_insights(
        &self,
        tenant: &TenantId,
        conversation: Uuid,
    ) -> Result<Option<Insights>> {
        dispatch!(self, b => b.get_insights(*tenant, conversation).await)
    }

    /// Stores (or replaces) a conversation's insights; `NotFound` when the conversation is gone.
    pub async fn put_insights(&self, tenant: &TenantId, insights: Insights) -> Result<()> {
        dispatch!(self, b => b.put_insights(*tenant, insights).await)
    }
}
