//! Whole-database copy between the backends, table by table, every row and id as it is: what
//! makes a backup portable. A backup is always a SQLite database file (what `VACUUM INTO`
//! writes on SQLite); on PostgreSQL `backup` copies one snapshot into such a file and
//! `restore` copies such a file into an empty PostgreSQL database. So SQLite → PostgreSQL is
//! `confab backup` on the one and `confab restore` on the other, and back again.

use futures::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::error::Result;

/// A column's type, as both schemas store it.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Uuid,
    Int,
    Float,
    Text,
    Bytes,
    Bool,
    /// TEXT on SQLite, jsonb on PostgreSQL.
    Json,
}

use Kind::*;

enum Val {
    Uuid(Option<Uuid>),
    Int(Option<i64>),
    Float(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Bool(Option<bool>),
}

struct Table {
    name: &'static str,
    cols: &'static [(&'static str, Kind)],
    /// Rows are copied in this order (insertion order where it carries meaning).
    order: &'static str,
}

/// Every table, parents before children.
const TABLES: &[Table] = &[
    Table {
        name: "tenants",
        cols: &[("id", Uuid), ("name", Text), ("created_at", Int)],
        order: "id",
    },
    Table {
        name: "api_keys",
        cols: &[
            ("tenant_id", Uuid),
            ("key_id", Text),
            ("secret_hash", Bytes),
            ("scopes", Text),
            ("name", Text),
            ("created_at", Int),
            ("revoked_at", Int),
        ],
        order: "tenant_id, key_id",
    },
    Table {
        name: "agents",
        cols: &[("tenant_id", Uuid), ("id", Text), ("created_at", Int)],
        order: "tenant_id, id",
    },
    Table {
        name: "conversations",
        cols: &[
            ("tenant_id", Uuid),
            ("id", Uuid),
            ("agent_id", Text),
            ("user_id", Text),
            ("title", Text),
            ("status", Text),
            ("source", Text),
            ("model", Text),
            ("company_name", Text),
            ("added_to_memory", Bool),
            ("metadata", Json),
            ("message_count", Int),
            ("\"analyze\"", Bool),
            ("created_at", Int),
            ("updated_at", Int),
            ("completed_at", Int),
        ],
        order: "tenant_id, id",
    },
    Table {
        name: "messages",
        cols: &[
            ("tenant_id", Uuid),
            ("conversation_id", Uuid),
            ("seq", Int),
            ("id", Uuid),
            ("role", Text),
            ("content", Text),
            ("created_at", Int),
            ("model", Text),
            ("tokens", Int),
            ("prompt_tokens", Int),
            ("completion_tokens", Int),
            ("latency_ms", Int),
            ("tool_calls", Json),
            ("metadata", Json),
            ("source", Text),
            ("is_trigger", Bool),
        ],
        order: "rowid",
    },
    Table {
        name: "idempotency_keys",
        cols: &[
            ("tenant_id", Uuid),
            ("family", Text),
            ("key", Text),
            ("fingerprint", Bytes),
            ("conversation_id", Uuid),
            ("response", Json),
            ("created_at", Int),
        ],
        order: "tenant_id, family, key",
    },
    Table {
        name: "jobs",
        cols: &[
            ("tenant_id", Uuid),
            ("id", Uuid),
            ("kind", Text),
            ("conversation_id", Uuid),
            ("state", Text),
            ("attempts", Int),
            ("run_at", Int),
            ("locked_until", Int),
            ("last_error", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order: "rowid",
    },
    Table {
        name: "insights",
        cols: &[
            ("tenant_id", Uuid),
            ("conversation_id", Uuid),
            ("sentiment", Text),
            ("sentiment_score", Float),
            ("task_completed", Bool),
            ("topics", Json),
            ("summary", Text),
            ("issues", Json),
            ("analyzer", Text),
            ("created_at", Int),
        ],
        order: "tenant_id, conversation_id",
    },
    Table {
        name: "webhook_endpoints",
        cols: &[
            ("tenant_id", Uuid),
            ("id", Uuid),
            ("url", Text),
            ("event_types", Json),
            ("description", Text),
            ("enabled", Bool),
            ("secret", Text),
            ("previous_secret", Text),
            ("previous_secret_expires_at", Int),
            ("failing_since", Int),
            ("disabled_reason", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order: "tenant_id, id",
    },
    Table {
        name: "webhook_events",
        cols: &[
            ("tenant_id", Uuid),
            ("id", Uuid),
            ("event_type", Text),
            ("conversation_id", Uuid),
            ("payload", Text),
            ("created_at", Int),
        ],
        order: "tenant_id, id",
    },
    Table {
        name: "webhook_deliveries",
        cols: &[
            ("tenant_id", Uuid),
            ("id", Uuid),
            ("event_id", Uuid),
            ("endpoint_id", Uuid),
            ("conversation_id", Uuid),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("locked_until", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order: "rowid",
    },
    Table {
        name: "webhook_attempts",
        cols: &[
            ("tenant_id", Uuid),
            ("id", Uuid),
            ("delivery_id", Uuid),
            ("endpoint_id", Uuid),
            ("event_id", Uuid),
            ("attempt", Int),
            ("status_code", Int),
            ("latency_ms", Int),
            ("response_snippet", Text),
            ("error", Text),
            ("created_at", Int),
        ],
        order: "tenant_id, id",
    },
];

/// Rows per INSERT (at most 17 values each: under both engines' bind limits).
const BATCH: usize = 1000;

fn select(t: &Table, pg: bool) -> String {
    let cols: Vec<String> = t
        .cols
        .iter()
        .map(|(c, k)| {
            if pg && *k == Json {
                format!("{c}::text")
            } else {
                (*c).to_owned()
            }
        })
        .collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        t.name,
        t.order
    )
}

fn insert_head(t: &Table, pg: bool) -> String {
    let mut cols: Vec<&str> = t.cols.iter().map(|(c, _)| *c).collect();
    if pg && t.name == "messages" {
        cols.push("fts");
    }
    format!("INSERT INTO {} ({}) ", t.name, cols.join(", "))
}

macro_rules! read_row {
    ($r:expr, $t:expr) => {{
        let mut out = Vec::with_capacity($t.cols.len());
        for (i, (_, k)) in $t.cols.iter().enumerate() {
            out.push(match k {
                Uuid => Val::Uuid($r.try_get(i)?),
                Int => Val::Int($r.try_get(i)?),
                Float => Val::Float($r.try_get(i)?),
                Text | Json => Val::Text($r.try_get(i)?),
                Bytes => Val::Bytes($r.try_get(i)?),
                Bool => Val::Bool($r.try_get(i)?),
            });
        }
        out
    }};
}

fn read_sqlite(r: &SqliteRow, t: &Table) -> Result<Vec<Val>> {
    Ok(read_row!(r, t))
}

fn read_pg(r: &PgRow, t: &Table) -> Result<Vec<Val>> {
    Ok(read_row!(r, t))
}

async fn write_pg(c: &mut PgConnection, t: &Table, rows: Vec<Vec<Val>>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<Postgres>::new(insert_head(t, true));
    q.push_values(rows, |mut b, row| {
        let fts = (t.name == "messages").then(|| match (&row[0], &row[5]) {
            (Val::Uuid(Some(tenant)), Val::Text(Some(content))) => {
                crate::postgres::tsvector(*tenant, content)
            }
            _ => String::new(),
        });
        for (v, (_, k)) in row.into_iter().zip(t.cols) {
            match v {
                Val::Uuid(v) => b.push_bind(v),
                Val::Int(v) => b.push_bind(v),
                Val::Float(v) => b.push_bind(v),
                Val::Text(v) => b.push_bind(v),
                Val::Bytes(v) => b.push_bind(v),
                Val::Bool(v) => b.push_bind(v),
            };
            if *k == Json {
                b.push_unseparated("::jsonb");
            }
        }
        if let Some(f) = fts {
            b.push("");
            b.push_bind_unseparated(f);
            b.push_unseparated("::tsvector");
        }
    });
    q.build().execute(&mut *c).await?;
    Ok(())
}

async fn write_sqlite(c: &mut SqliteConnection, t: &Table, rows: Vec<Vec<Val>>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<Sqlite>::new(insert_head(t, false));
    q.push_values(rows, |mut b, row| {
        for v in row {
            match v {
                Val::Uuid(v) => b.push_bind(v),
                Val::Int(v) => b.push_bind(v),
                Val::Float(v) => b.push_bind(v),
                Val::Text(v) => b.push_bind(v),
                Val::Bytes(v) => b.push_bind(v),
                Val::Bool(v) => b.push_bind(v),
            };
        }
    });
    q.build().execute(&mut *c).await?;
    Ok(())
}

/// Copies every row of every table from a SQLite connection into a PostgreSQL transaction.
pub async fn sqlite_to_pg(from: &mut SqliteConnection, to: &mut PgConnection) -> Result<()> {
    for t in TABLES {
        let sql = select(t, false);
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *from);
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(r) = rows.try_next().await? {
            batch.push(read_sqlite(&r, t)?);
            if batch.len() == BATCH {
                write_pg(to, t, std::mem::take(&mut batch)).await?;
            }
        }
        write_pg(to, t, batch).await?;
    }
    Ok(())
}

/// Copies every row of every table from a PostgreSQL snapshot into a SQLite transaction.
pub async fn pg_to_sqlite(from: &mut PgConnection, to: &mut SqliteConnection) -> Result<()> {
    for t in TABLES {
        let sql = select(t, true);
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *from);
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(r) = rows.try_next().await? {
            batch.push(read_pg(&r, t)?);
            if batch.len() == BATCH {
                write_sqlite(to, t, std::mem::take(&mut batch)).await?;
            }
        }
        write_sqlite(to, t, batch).await?;
    }
    Ok(())
}
