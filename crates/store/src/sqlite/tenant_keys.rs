//! One tenant's keys, on SQLite.

use super::SqliteStore;
use crate::error::{Result, StoreError};
use crate::types::{KeyInfo, TenantId};

impl SqliteStore {
    pub async fn tenant_name(&self, tenant: TenantId) -> Result<String> {
        sqlx::query_scalar("SELECT name FROM tenants WHERE id = ?")
            .bind(tenant.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub async fn list_tenant_keys(&self, tenant: TenantId) -> Result<Vec<KeyInfo>> {
        let rows = sqlx::query(
            "SELECT t.name, k.key_id, k.scopes, k.name, k.created_at, k.revoked_at \
             FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.tenant_id = ? ORDER BY k.created_at DESC, k.key_id",
        )
        .bind(tenant.0)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(super::read::key_info).collect()
    }
}
