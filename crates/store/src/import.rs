//! Import of confab's own NDJSON (what `export?format=ndjson` writes): idempotent (a
//! conversation whose id the tenant already has is skipped, whatever it holds), committed in
//! batches, ids and timestamps kept, so export → import → export is byte-identical.

use confab_core::ValidationError;
use confab_core::export::ExportRecord;

use crate::{Result, Store, TenantId};

/// Conversations committed together.
pub const IMPORT_BATCH: usize = 200;
/// Longest accepted NDJSON line (one conversation with its messages).
pub const MAX_IMPORT_LINE: usize = 64 * 1024 * 1024;

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportOutcome {
    /// Conversations written.
    pub imported: u64,
    /// Conversations skipped because the tenant already had them.
    pub skipped: u64,
    /// Messages written.
    pub messages: u64,
}

impl ImportOutcome {
    fn add(&mut self, o: ImportOutcome) {
        self.imported += o.imported;
        self.skipped += o.skipped;
        self.messages += o.messages;
    }
}

impl Store {
    /// Writes records in one transaction, skipping conversations that already exist.
    pub async fn import_records(
        &self,
        tenant: &TenantId,
        records: Vec<ExportRecord>,
    ) -> Result<ImportOutcome> {
        for (i, r) in records.iter().enumerate() {
            r.validate()
                .map_err(|e| e.prefixed(&format!("records[{i}]")))?;
        }
        dispatch!(self, b => b.import_records(*tenant, records).await)
    }

    /// The tenant called `name`, if it exists.
    pub async fn find_tenant(&self, name: &str) -> Result<Option<TenantId>> {
        dispatch!(self, b => b.find_tenant(name).await)
    }

    /// The tenant called `name`, created if missing.
    pub async fn ensure_tenant(&self, name: &str) -> Result<TenantId> {
        dispatch!(self, b => b.ensure_tenant(name).await)
    }
}

/// Feeds NDJSON lines into batched imports; errors name the line (`line 12`, or
/// `line 12: messages[3].seq`).
pub struct Importer {
    store: Store,
    tenant: TenantId,
    batch: Vec<ExportRecord>,
    line: u64,
    outcome: ImportOutcome,
}

impl Importer {
    /// An importer into `tenant`.
    pub fn new(store: Store, tenant: TenantId) -> Self {
        Importer {
            store,
            tenant,
            batch: Vec::with_capacity(IMPORT_BATCH),
            line: 0,
            outcome: ImportOutcome::default(),
        }
    }

    /// Lines read so far.
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// What has been committed so far.
    pub fn committed(&self) -> ImportOutcome {
        self.outcome
    }

    /// One line (without its newline); blank lines are ignored.
    pub async fn line(&mut self, bytes: &[u8]) -> Result<()> {
        self.line += 1;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let field = format!("line {}", self.line);
        let rec: ExportRecord = serde_json::from_slice(bytes).map_err(|e| {
            ValidationError::field(&field, format!("not a confab NDJSON record: {e}"))
        })?;
        rec.validate().map_err(|e| e.prefixed(&field))?;
        self.batch.push(rec);
        if self.batch.len() >= IMPORT_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Commits what is pending.
    pub async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let o = self.store.import_records(&self.tenant, batch).await?;
        self.outcome.add(o);
        Ok(())
    }

    /// Commits the rest and answers the totals.
    pub async fn finish(mut self) -> Result<ImportOutcome> {
        self.flush().await?;
        Ok(self.outcome)
    }
}
