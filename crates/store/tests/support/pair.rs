//! A SQLite store and a PostgreSQL one side by side, for the tests that compare the two
//! backends (they run only in the PostgreSQL pass). Needs `testdb` included beside it.
#![allow(dead_code)]

use confab_store::{Store, StoreOptions};

use crate::testdb::{TestDb, pg_admin_or_skip};

/// Both stores, fresh; the PostgreSQL database is dropped with the pair.
pub struct Pair {
    pub sqlite: Store,
    pub pg: Store,
    /// The PostgreSQL database, for statements the store has no call for (`ANALYZE`).
    pub pg_db: TestDb,
    _dir: tempfile::TempDir,
}

impl Pair {
    /// Both stores; `None`, saying on stderr that `what` is skipped, without PostgreSQL.
    pub async fn open(what: &str) -> Option<Pair> {
        let admin = pg_admin_or_skip(what)?;
        let dir = tempfile::tempdir().unwrap();
        let sqlite_url = format!("sqlite://{}", dir.path().join("pair.db").display());
        let sqlite = Store::open(&sqlite_url, StoreOptions::default())
            .await
            .unwrap();
        let pg_db = TestDb::new_pg(&admin).await;
        let pg = Store::open(&pg_db.url, StoreOptions::default())
            .await
            .unwrap();
        Some(Pair {
            sqlite,
            pg,
            pg_db,
            _dir: dir,
        })
    }

    pub async fn close(self) {
        self.sqlite.close().await;
        self.pg.close().await;
    }
}
