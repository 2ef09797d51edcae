//! PostgreSQL only (skipped, saying so, without `CONFAB_TEST_POSTGRES_URL`): plain appends are
//! written without locks against the version of the row they read (versioned.rs), and a
//! conversation written by anyone between that read and the write is not written over: its
//! appends go through the locked path, on the row as it is now. Two stores on one database (two
//! processes) appending and patching the same conversations lose nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_core::input::{AppendMessages, ConversationPatch, NewConversation, NewMessage};
use confab_core::{Role, Status};
use confab_store::{MessageQuery, Store, StoreOptions, TenantId};
use serde_json::json;
use sqlx::Connection;
use uuid::Uuid;

#[path = "support/counts.rs"]
mod counts;
#[path = "support/testdb.rs"]
mod testdb;
use counts::Outcomes;
use testdb::{TestDb, pg_admin_or_skip};

fn said(text: &str) -> AppendMessages {
    AppendMessages {
        messages: vec![NewMessage {
            role: Some(Role::User),
            content: text.into(),
            ..NewMessage::default()
        }],
        status: None,
        metadata: None,
    }
}

async fn texts(store: &Store, tenant: &TenantId, id: Uuid) -> Vec<String> {
    let rows = store
        .list_messages(
            tenant,
            id,
            &MessageQuery {
                limit: Some(1000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let seqs: Vec<i64> = rows.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (0..rows.len() as i64).collect::<Vec<_>>(), "gapless");
    rows.into_iter().map(|m| m.content).collect()
}

/// Waits until a statement of this database waits for a lock.
async fn until_one_waits(c: &mut sqlx::PgConnection) {
    let start = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *c)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the append never waited for the row"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// One test in this binary: the counts are the whole binary's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_row_changed_after_its_read_is_written_under_lock() {
    let Some(admin) = pg_admin_or_skip("the versioned appends check") else {
        return;
    };
    let appends = Outcomes::install("confab_store_appends_total");
    let db = TestDb::new_pg(&admin).await;
    let store = Arc::new(Store::open(&db.url, StoreOptions::default()).await.unwrap());
    let tenant = store.ensure_tenant("acme").await.unwrap();
    let id = store
        .create_conversation(&tenant, NewConversation::new(Status::Active), None)
        .await
        .unwrap()
        .conversation()
        .id;

    store
        .append_messages(&tenant, id, said("one"), None)
        .await
        .unwrap();
    assert_eq!(
        (appends.count("versioned"), appends.count("locked")),
        (1, 0)
    );

    // Another writer holds the row: the next append reads it, and its write waits.
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("SELECT FROM conversations WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let appending = {
        let store = store.clone();
        tokio::spawn(async move { store.append_messages(&tenant, id, said("two"), None).await })
    };
    let mut watch = sqlx::PgConnection::connect(&db.url).await.unwrap();
    until_one_waits(&mut watch).await;
    // What it read is stale once this commits.
    sqlx::query(
        "UPDATE conversations SET metadata = metadata || '{\"meanwhile\": true}' WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let written = appending.await.unwrap().unwrap();
    assert_eq!(written.conversation().message_count, 2);
    assert_eq!(written.conversation().metadata["meanwhile"], json!(true));
    let conv = store.get_conversation(&tenant, id).await.unwrap();
    assert_eq!(conv.metadata["meanwhile"], json!(true), "not written over");
    assert_eq!(conv.message_count, 2);
    assert_eq!(texts(&store, &tenant, id).await, ["one", "two"]);
    assert_eq!(
        (appends.count("versioned"), appends.count("locked")),
        (1, 1)
    );

    // Two stores on one database, as two processes: appends and patches of the same
    // conversations, all at once.
    let second = Arc::new(Store::open(&db.url, StoreOptions::default()).await.unwrap());
    let mut ids = vec![id];
    for _ in 0..2 {
        let c = store
            .create_conversation(&tenant, NewConversation::new(Status::Active), None)
            .await
            .unwrap();
        ids.push(c.conversation().id);
    }
    let mut tasks = Vec::new();
    for i in 0..300usize {
        let s = if i % 2 == 0 { &store } else { &second }.clone();
        let id = ids[i % ids.len()];
        tasks.push(tokio::spawn(async move {
            if i % 10 == 9 {
                let patch = ConversationPatch {
                    metadata: Some(json!({ format!("p{i}"): i }).as_object().unwrap().clone()),
                    ..ConversationPatch::default()
                };
                s.patch_conversation(&tenant, id, patch).await.map(|_| ())
            } else {
                s.append_messages(&tenant, id, said(&format!("m{i}")), None)
                    .await
                    .map(|_| ())
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for (k, id) in ids.iter().enumerate() {
        let conv = second.get_conversation(&tenant, *id).await.unwrap();
        let got = texts(&second, &tenant, *id).await;
        assert_eq!(conv.message_count, got.len() as i64);
        let mut want: BTreeSet<String> = (0..300)
            .filter(|i| i % 3 == k && i % 10 != 9)
            .map(|i| format!("m{i}"))
            .collect();
        if k == 0 {
            want.extend(["one".to_owned(), "two".to_owned()]);
        }
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
        assert_eq!(got.len(), want.len(), "each append once");
        for i in (0..300).filter(|i| i % 3 == k && i % 10 == 9) {
            assert_eq!(conv.metadata[&format!("p{i}")], json!(i), "patch p{i} kept");
        }
    }
    // Every append was answered by one path or the other, once.
    eprintln!(
        "versioned {}, locked {}",
        appends.count("versioned"),
        appends.count("locked")
    );
    assert_eq!(
        appends.count("versioned") + appends.count("locked"),
        2 + 270
    );
    second.close().await;
    store.close().await;
}
