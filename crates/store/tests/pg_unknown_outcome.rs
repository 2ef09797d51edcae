//! PostgreSQL only (skipped, saying so, without `CONFAB_TEST_POSTGRES_URL`): an append whose
//! versioned write (versioned.rs) reached PostgreSQL, but whose answer never came back, is not
//! answered as written, nor as refused: PostgreSQL may have committed it (here it did), so the
//! caller hears `StoreError::Commit`, as when a locked batch's COMMIT fails. The row kept for
//! the conversation is dropped with it, so the next append reads the row again; kept, it would
//! have been stale and sent to the locked path.
//!
//! The connection is cut by a proxy between the store and PostgreSQL, on the bytes of the
//! append's text.

use confab_core::Status;
use confab_core::input::NewConversation;
use confab_store::{MessageQuery, Store, StoreError, StoreOptions};
use sqlx::Connection;
use sqlx::postgres::PgConnectOptions;

#[path = "support/appends.rs"]
mod appends;
#[path = "support/counts.rs"]
mod counts;
#[path = "support/cutter.rs"]
mod cutter;
#[path = "support/testdb.rs"]
mod testdb;
use appends::said;
use counts::Outcomes;
use cutter::MARKER;
use testdb::{TestDb, pg_admin_or_skip};

// One test in this binary: the counts are the whole binary's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_answer_was_lost_is_not_answered_as_written() {
    let Some(admin) = pg_admin_or_skip("the lost answer of a versioned append") else {
        return;
    };
    let appends = Outcomes::install("confab_store_appends_total");
    let db = TestDb::new_pg(&admin).await;
    let direct: PgConnectOptions = db.url.parse().unwrap();
    let url = cutter::cut_url(&db.url).await;
    let store = Store::open(&url, StoreOptions::default()).await.unwrap();
    let tenant = store.ensure_tenant("acme").await.unwrap();
    let id = store
        .create_conversation(&tenant, NewConversation::new(Status::Active), None)
        .await
        .unwrap()
        .conversation()
        .id;
    let paths = || {
        (
            appends.count("read"),
            appends.count("kept"),
            appends.count("locked"),
        )
    };

    store
        .append_messages(&tenant, id, said("one"), None)
        .await
        .unwrap();
    assert_eq!(paths(), (1, 0, 0), "read, written, and its row kept");

    // Written from the kept row in one statement, whose answer the proxy drops.
    let lost = store.append_messages(&tenant, id, said(MARKER), None).await;
    match lost {
        Err(StoreError::Commit(_)) => {}
        other => panic!("a write of unknown outcome answered {other:?}"),
    }
    assert_eq!(paths(), (1, 0, 0), "nothing counted as written");

    // PostgreSQL did commit it: the answer could not have said "nothing stored".
    let mut c = sqlx::PgConnection::connect_with(&direct).await.unwrap();
    let stored: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, content FROM messages WHERE conversation_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(
        stored,
        vec![(0, "one".to_string()), (1, MARKER.to_string())]
    );

    // The next append reads the row again (what was kept is dropped) and follows what was
    // committed.
    let written = store
        .append_messages(&tenant, id, said("three"), None)
        .await
        .unwrap();
    assert_eq!(written.conversation().message_count, 3);
    assert_eq!(
        paths(),
        (2, 0, 0),
        "the row read again, not sent to the locked path"
    );
    let rows = store
        .list_messages(&tenant, id, &MessageQuery::default())
        .await
        .unwrap();
    let texts: Vec<(i64, String)> = rows.into_iter().map(|m| (m.seq, m.content)).collect();
    assert_eq!(
        texts,
        vec![
            (0, "one".to_string()),
            (1, MARKER.to_string()),
            (2, "three".to_string())
        ]
    );
    c.close().await.unwrap();
    store.close().await;
}
