//! A fresh database per test, on SQLite or PostgreSQL. With `CONFAB_TEST_POSTGRES_URL` set (an
//! admin URL such as `postgres://127.0.0.1:5432/postgres`), each `TestDb` is a new PostgreSQL
//! database `confab_t_<uuid>` on that server, dropped (`WITH (FORCE)`) when the `TestDb` is
//! dropped; without it, a SQLite file at the path given. Shared by the store, server and CLI
//! test suites (included by path), so every suite picks the backend the same way.
#![allow(dead_code)]

use std::path::Path;

use sqlx::{ConnectOptions, Connection};

/// The variable that switches the test suites to PostgreSQL.
pub const PG_ENV: &str = "CONFAB_TEST_POSTGRES_URL";

/// The PostgreSQL admin URL, when the suites run on PostgreSQL.
pub fn pg_admin_url() -> Option<String> {
    std::env::var(PG_ENV).ok().filter(|s| !s.trim().is_empty())
}

/// The PostgreSQL admin URL; without one, says on stderr that `what` (a test that needs
/// PostgreSQL) is skipped, and answers `None`.
pub fn pg_admin_or_skip(what: &str) -> Option<String> {
    let url = pg_admin_url();
    if url.is_none() {
        eprintln!("skipped: set {PG_ENV} to run {what}");
    }
    url
}

/// True when the suites run on PostgreSQL.
pub fn on_postgres() -> bool {
    pg_admin_url().is_some()
}

/// A database that exists for as long as this value.
pub struct TestDb {
    /// URL to open it with.
    pub url: String,
    /// `(admin URL, database name)` on PostgreSQL.
    pg: Option<(String, String)>,
}

fn with_database(admin: &str, name: &str) -> String {
    let opts: sqlx::postgres::PgConnectOptions = admin.parse().expect("CONFAB_TEST_POSTGRES_URL");
    opts.database(name).to_url_lossy().to_string()
}

impl TestDb {
    /// A new database: PostgreSQL when the variable is set, else a SQLite file at `sqlite_path`.
    pub async fn new(sqlite_path: &Path) -> TestDb {
        match pg_admin_url() {
            Some(admin) => Self::new_pg(&admin).await,
            None => TestDb {
                url: format!("sqlite://{}", sqlite_path.display()),
                pg: None,
            },
        }
    }

    /// A new, empty PostgreSQL database on the server of `admin`.
    pub async fn new_pg(admin: &str) -> TestDb {
        let name = format!("confab_t_{}", uuid::Uuid::now_v7().simple());
        let mut c = sqlx::PgConnection::connect(admin)
            .await
            .unwrap_or_else(|e| panic!("{PG_ENV}: cannot connect to PostgreSQL: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .expect("create test database");
        let _ = c.close().await;
        TestDb {
            url: with_database(admin, &name),
            pg: Some((admin.to_owned(), name)),
        }
    }

    /// The PostgreSQL database's name.
    pub fn pg_name(&self) -> Option<&str> {
        self.pg.as_ref().map(|(_, n)| n.as_str())
    }

    /// True on PostgreSQL.
    pub fn is_pg(&self) -> bool {
        self.pg.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own
        // with a runtime of its own drops the database (FORCE ends the pool's connections).
        let r = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut c = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut c)
                .await?;
                c.close().await
            })
        })
        .join();
        if !matches!(r, Ok(Ok(()))) {
            eprintln!("warning: could not drop a test database: {r:?}");
        }
    }
}

/// PostgreSQL: moves the rowid identity of `messages` so that the next message takes rowid
/// `next` (tests of what lies on either side of a search segment's bounds).
pub async fn next_rowid(c: &mut sqlx::PgConnection, next: i64) {
    sqlx::query("SELECT setval(pg_get_serial_sequence('messages', 'rowid'), $1)")
        .bind(next - 1)
        .execute(c)
        .await
        .unwrap();
}

/// PostgreSQL: the statements of `c`'s database waiting for a lock.
pub async fn waiting_on_locks(c: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(c)
    .await
    .unwrap()
}
