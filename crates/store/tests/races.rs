//! Races that SQLite's single writer serialises and PostgreSQL resolves at unique indexes: the
//! first keys of a new tenant created at once, and one file imported twice at once, end as if
//! they had run one after the other. Runs on both backends.

use confab_core::Scopes;
use confab_core::export::ExportRecord;
use confab_store::{Store, StoreOptions};

#[path = "support/testdb.rs"]
mod testdb;
use testdb::TestDb;

const FIXTURE: &str = include_str!("../../server/tests/golden/fixture.ndjson");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_keys_and_imports_behave_as_if_serial() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(&dir.path().join("races.db")).await;
    let store = Store::open(&db.url, StoreOptions::default()).await.unwrap();

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let k = s
                .create_key("brand-new", Scopes::DEFAULT, None)
                .await
                .unwrap();
            s.authenticate(&k.key_id, &k.key_secret)
                .await
                .unwrap()
                .unwrap()
                .tenant
        }));
    }
    let mut tenants = Vec::new();
    for t in tasks {
        tenants.push(t.await.unwrap());
    }
    assert!(tenants.windows(2).all(|w| w[0] == w[1]), "one tenant");
    assert_eq!(store.list_keys().await.unwrap().len(), 8);

    let records: Vec<ExportRecord> = FIXTURE
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut imports = Vec::new();
    for _ in 0..4 {
        let (s, r) = (store.clone(), records.clone());
        imports.push(tokio::spawn(async move {
            let t = s.ensure_tenant("importer").await.unwrap();
            s.import_records(&t, r).await.unwrap()
        }));
    }
    let (mut imported, mut skipped) = (0, 0);
    for i in imports {
        let o = i.await.unwrap();
        imported += o.imported;
        skipped += o.skipped;
    }
    assert_eq!(
        imported,
        records.len() as u64,
        "each conversation imported once"
    );
    assert_eq!(skipped, 3 * records.len() as u64);
    store.close().await;
}
