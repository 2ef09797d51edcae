//! SQLite's page cache behind confab's wrapper (sqlite/pcache.rs), which skips the truncations
//! that can find no page: writes that split pages all over an index (so page numbers are
//! swapped through the lock page's number), deletes that free pages for reuse, transactions that
//! grow the file and are rolled back, and savepoints rolled back, all checked against a model of
//! the rows and SQLite's own integrity check, with the wrapper shown to be in place and skipping.
//!
//! That a skipped truncation never hides a page is pinned where it is decided, by the model
//! test of `pcache::Keys`: in WAL mode SQLite also drops a rolled-back transaction's pages one
//! by one, so a wrapper that skipped every truncation would still pass this file.
//!
//! Its own file, so its own process: the store is opened before any other connection, and the
//! wrapper is installed before SQLite starts.

use std::collections::BTreeMap;

use confab_store::{Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::params;

fn value(rng: &mut StdRng) -> Vec<u8> {
    // Random index keys of 40-400 bytes: splits anywhere in the index, a few rows per page.
    let len = rng.random_range(40..400);
    (0..len).map(|_| rng.random::<u8>()).collect()
}

/// Inserts `n` rows with keys from `first` and random values; the values, by key.
fn insert(c: &rusqlite::Connection, rng: &mut StdRng, first: i64, n: i64) -> Vec<(i64, Vec<u8>)> {
    let mut st = c.prepare("INSERT INTO t (k, v) VALUES (?1, ?2)").unwrap();
    (first..first + n)
        .map(|k| {
            let v = value(rng);
            st.execute(params![k, v]).unwrap();
            (k, v)
        })
        .collect()
}

fn check(db: &rusqlite::Connection, model: &BTreeMap<i64, Vec<u8>>) {
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let mut st = db.prepare("SELECT k, v FROM t ORDER BY k").unwrap();
    let rows: BTreeMap<i64, Vec<u8>> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(rows.len(), model.len());
    assert!(rows == *model, "the table differs from the model");
    // Through the index too: every value found by it.
    let mut by_v = db.prepare("SELECT k FROM t WHERE v = ?1").unwrap();
    for (k, v) in model.iter().step_by(17) {
        let found: i64 = by_v.query_row(params![v], |r| r.get(0)).unwrap();
        assert_eq!(found, *k);
    }
}

#[tokio::test]
async fn skipped_truncations_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let _store = Store::open(
        &format!("sqlite://{}", dir.path().join("store.db").display()),
        StoreOptions::default(),
    )
    .await
    .unwrap();
    let skipped_before = confab_store::sqlite_page_cache_truncations_skipped();

    let db = rusqlite::Connection::open(dir.path().join("pages.db")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -4000;
         CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL);
         CREATE INDEX t_v ON t (v);",
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let mut model: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    let mut next_key = 1i64;
    for round in 0..120 {
        let tx = db.unchecked_transaction().unwrap();
        // Inserts with random index keys; deletes that free pages for later reuse.
        model.extend(insert(&tx, &mut rng, next_key, 150));
        next_key += 150;
        for _ in 0..60 {
            if model.is_empty() {
                break;
            }
            let at = rng.random_range(0..model.len());
            let k = *model.keys().nth(at).unwrap();
            tx.execute("DELETE FROM t WHERE k = ?1", params![k])
                .unwrap();
            model.remove(&k);
        }
        if round % 3 == 0 {
            // A savepoint that writes and is rolled back: none of it may stay.
            tx.execute_batch("SAVEPOINT s").unwrap();
            insert(&tx, &mut rng, 10_000_000, 200);
            tx.execute_batch("ROLLBACK TO s; RELEASE s").unwrap();
        }
        tx.commit().unwrap();
        if round % 5 == 0 {
            // A transaction that grows the file well past its end, then is rolled back: none of
            // the pages above the file's former size may be read as if they were still there.
            let tx = db.unchecked_transaction().unwrap();
            insert(&tx, &mut rng, 20_000_000, 800);
            tx.rollback().unwrap();
        }
        if round % 20 == 19 {
            check(&db, &model);
        }
    }
    check(&db, &model);
    // Reopened, without any cache: the same rows.
    drop(db);
    let db = rusqlite::Connection::open(dir.path().join("pages.db")).unwrap();
    check(&db, &model);
    assert!(
        confab_store::sqlite_page_cache_truncations_skipped() > skipped_before,
        "the wrapper skipped no truncation: is it installed?"
    );
}
