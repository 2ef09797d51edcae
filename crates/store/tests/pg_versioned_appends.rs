//! PostgreSQL only (skipped, saying so, without `CONFAB_TEST_POSTGRES_URL`): plain appends are
//! written without locks against the version of the row they read (versioned.rs), and a
//! conversation written by anyone between that read and the write is not written over: its
//! appends go through the locked path, on the row as it is now. Two stores on one database (two
//! processes) appending and patching the same conversations lose nothing, and no request fails:
//! before the versioned write skipped rows other transactions held, its waits deadlocked with
//! the locked path's here in 4 runs of 15.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_core::Status;
use confab_core::input::{ConversationPatch, NewConversation};
use confab_store::webhooks::EndpointChange;
use confab_store::{MessageQuery, Store, StoreOptions, TenantId};
use serde_json::json;
use sqlx::Connection;
use uuid::Uuid;

#[path = "support/appends.rs"]
mod appends;
#[path = "support/counts.rs"]
mod counts;
#[path = "support/testdb.rs"]
mod testdb;
use appends::said;
use counts::Outcomes;
use testdb::{TestDb, pg_admin_or_skip};

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

    // Three numbers: appends written after a read of their row, written from the row as the
    // last write left it (no read), and written under lock.
    let paths = || {
        (
            appends.count("read"),
            appends.count("kept"),
            appends.count("locked"),
        )
    };
    let append = |text: &'static str| {
        let store = store.clone();
        async move {
            store
                .append_messages(&tenant, id, said(text), None)
                .await
                .unwrap()
        }
    };
    append("one").await;
    assert_eq!(paths(), (1, 0, 0));
    append("two").await;
    assert_eq!(
        paths(),
        (1, 1, 0),
        "the row as written last, not read again"
    );

    // A patch in between: what was kept is stale, and the next append is written under lock,
    // over the patched row.
    let patch = ConversationPatch {
        metadata: Some(json!({"patched": true}).as_object().unwrap().clone()),
        ..ConversationPatch::default()
    };
    store.patch_conversation(&tenant, id, patch).await.unwrap();
    let written = append("three").await;
    assert_eq!(paths(), (1, 1, 1));
    assert_eq!(written.conversation().message_count, 3);
    assert_eq!(written.conversation().metadata["patched"], json!(true));
    // The next eight batches go straight to the locked path; then a read again.
    for text in ["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7"] {
        append(text).await;
    }
    assert_eq!(paths(), (1, 1, 9));
    append("after").await;
    assert_eq!(paths(), (2, 1, 9));

    // Another writer holds the row: the next append's versioned write skips it, and the locked
    // path waits for it.
    let mut other = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("SELECT FROM conversations WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let appending = {
        let store = store.clone();
        tokio::spawn(async move { store.append_messages(&tenant, id, said("four"), None).await })
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
    assert_eq!(written.conversation().message_count, 13);
    assert_eq!(written.conversation().metadata["meanwhile"], json!(true));
    let conv = store.get_conversation(&tenant, id).await.unwrap();
    assert_eq!(conv.metadata["meanwhile"], json!(true), "not written over");
    assert_eq!(conv.metadata["patched"], json!(true), "not written over");
    assert_eq!(conv.message_count, 13);
    let order = [
        "one", "two", "three", "b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "after", "four",
    ];
    assert_eq!(texts(&store, &tenant, id).await, order);
    assert_eq!(paths(), (2, 1, 10), "found stale, written under lock");

    // Two stores on one database, as two processes: appends and patches of the same
    // conversations, all at once.
    let second = Arc::new(Store::open(&db.url, StoreOptions::default()).await.unwrap());
    let mut ids = vec![id];
    for _ in 0..11 {
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
            // Spread over 40 ms: batches of a few appends each, some meeting the other
            // store's.
            tokio::time::sleep(Duration::from_millis((i * 7 % 40) as u64)).await;
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
    let n = ids.len();
    for (k, id) in ids.iter().enumerate() {
        let conv = second.get_conversation(&tenant, *id).await.unwrap();
        let got = texts(&second, &tenant, *id).await;
        assert_eq!(conv.message_count, got.len() as i64);
        let mut want: BTreeSet<String> = (0..300)
            .filter(|i| i % n == k && i % 10 != 9)
            .map(|i| format!("m{i}"))
            .collect();
        if k == 0 {
            want.extend(order.iter().map(|t| t.to_string()));
        }
        assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
        assert_eq!(got.len(), want.len(), "each append once");
        for i in (0..300).filter(|i| i % n == k && i % 10 == 9) {
            assert_eq!(conv.metadata[&format!("p{i}")], json!(i), "patch p{i} kept");
        }
    }
    // Every append was answered by one path, once (the second store's count in the same
    // recorder).
    let (read, kept, locked) = paths();
    eprintln!("read {read}, kept {kept}, locked {locked}");
    assert_eq!(read + kept + locked, 13 + 270);
    second.close().await;
    store.close().await;

    // A webhook endpoint created after a conversation's row was kept: the next append is not
    // written from what was kept but under lock, with its event.
    let third = Store::open(&db.url, StoreOptions::default()).await.unwrap();
    let y = third
        .create_conversation(&tenant, NewConversation::new(Status::Active), None)
        .await
        .unwrap()
        .conversation()
        .id;
    third
        .append_messages(&tenant, y, said("y1"), None)
        .await
        .unwrap();
    let (read, kept, locked) = paths();
    third
        .create_endpoint(
            &tenant,
            EndpointChange {
                url: Some("https://hooks.example/a".into()),
                event_types: Some(vec!["conversation.updated".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    third
        .append_messages(&tenant, y, said("y2"), None)
        .await
        .unwrap();
    assert_eq!(paths(), (read, kept, locked + 1));
    let events: Vec<i64> = third
        .claim_deliveries(100, Duration::from_secs(60))
        .await
        .unwrap()
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(&d.payload).unwrap())
        .filter(|body| body["type"] == "conversation.updated")
        .map(|body| {
            body["data"]["conversation"]["message_count"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(events, [2], "the append after the endpoint, and only it");
    third.close().await;
}
