//! Insights presence for a page of conversations, on PostgreSQL.

use std::collections::HashSet;

use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::PgStore;
use crate::error::Result;
use crate::types::TenantId;

impl PgStore {
    pub async fn with_insights(
        &self,
        tenant: TenantId,
        conversations: &[Uuid],
    ) -> Result<HashSet<Uuid>> {
        let mut out = HashSet::new();
        // Pages are at most 100 ids; chunking keeps any caller far under the bind limit.
        for chunk in conversations.chunks(500) {
            let mut q = QueryBuilder::<Postgres>::new(
                "SELECT conversation_id FROM insights WHERE tenant_id = ",
            );
            q.push_bind(tenant.0).push(" AND conversation_id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            q.push(")");
            let ids: Vec<Uuid> = q.build_query_scalar().fetch_all(&self.pool).await?;
            out.extend(ids);
        }
        Ok(out)
    }
}
