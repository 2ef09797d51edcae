//! Databases for tests that name SQLite files: on SQLite the paths are used as they are; with
//! `CONFAB_TEST_POSTGRES_URL` set each path stands for a PostgreSQL database of its own, created
//! on first use and dropped with the test's [`TestDir`].
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

#[path = "../../../store/tests/support/testdb.rs"]
pub mod testdb;

/// On PostgreSQL (`CONFAB_TEST_POSTGRES_URL`), the database standing for each SQLite path a
/// test names; dropped with the test's [`TestDir`].
pub static PG_DBS: LazyLock<Mutex<HashMap<PathBuf, testdb::TestDb>>> =
    LazyLock::new(Mutex::default);

/// The database URL for the SQLite path `db`: that file, or on PostgreSQL a database of its own.
pub fn db_url(db: &Path) -> String {
    let Some(admin) = testdb::pg_admin_url() else {
        return format!("sqlite://{}", db.display());
    };
    let mut dbs = PG_DBS.lock().unwrap();
    if let Some(d) = dbs.get(db) {
        return d.url.clone();
    }
    let d = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(testdb::TestDb::new_pg(&admin))
    })
    .join()
    .unwrap();
    let url = d.url.clone();
    dbs.insert(db.to_path_buf(), d);
    url
}

/// A test's scratch directory; dropping it drops the PostgreSQL databases of its paths.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let mut dbs = PG_DBS.lock().unwrap_or_else(|e| e.into_inner());
        let mine: Vec<PathBuf> = dbs
            .keys()
            .filter(|p| p.starts_with(self.0.path()))
            .cloned()
            .collect();
        let gone: Vec<testdb::TestDb> = mine.iter().filter_map(|p| dbs.remove(p)).collect();
        drop(dbs);
        drop(gone);
    }
}

pub fn test_dir() -> TestDir {
    TestDir(tempfile::tempdir().unwrap())
}
