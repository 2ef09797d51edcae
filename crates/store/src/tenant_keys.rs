//! One tenant's view of its API keys (the dashboard's key page): `list_keys` and `revoke_key`
//! serve the operator's CLI across tenants, these never leave the caller's tenant.

use crate::{KeyInfo, Result, Store, StoreError, TenantId};

impl Store {
    /// The tenant's name (what `create_key` takes).
    pub async fn tenant_name(&self, tenant: &TenantId) -> Result<String> {
        dispatch!(self, b => b.tenant_name(*tenant).await)
    }

    /// The tenant's keys, newest first, without secrets.
    pub async fn list_tenant_keys(&self, tenant: &TenantId) -> Result<Vec<KeyInfo>> {
        dispatch!(self, b => b.list_tenant_keys(*tenant).await)
    }

    /// Revokes one of the tenant's keys; `NotFound` for another tenant's or an unknown key.
    pub async fn revoke_tenant_key(&self, tenant: &TenantId, key_id: &str) -> Result<()> {
        // Key ids never move between tenants, so checking first and revoking by id is exact.
        let keys = self.list_tenant_keys(tenant).await?;
        if !keys.iter().any(|k| k.key_id == key_id) {
            return Err(StoreError::NotFound);
        }
        self.revoke_key(key_id).await
    }
}
