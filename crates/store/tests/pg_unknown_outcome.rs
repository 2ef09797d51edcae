//! PostgreSQL only (skipped, saying so, without `CONFAB_TEST_POSTGRES_URL`): an append whose
//! versioned write (versioned.rs) reached PostgreSQL, but whose answer never came back, is not
//! answered as written, nor as refused: PostgreSQL may have committed it (here it did), so the
//! caller hears `StoreError::Commit`, as when a locked batch's COMMIT fails. The row kept for
//! the conversation is dropped with it, so the next append reads the row again; kept, it would
//! have been stale and sent to the locked path.
//!
//! The connection is cut by a proxy between the store and PostgreSQL, on the bytes of the
//! append's text.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use confab_core::input::{AppendMessages, NewConversation, NewMessage};
use confab_core::{Role, Status};
use confab_store::{MessageQuery, Store, StoreError, StoreOptions};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "support/counts.rs"]
mod counts;
#[path = "support/testdb.rs"]
mod testdb;
use counts::Outcomes;
use testdb::{TestDb, pg_admin_or_skip};

/// What the proxy waits for in what a client sends.
const MARKER: &[u8] = b"lost-in-flight";

/// PostgreSQL's `ReadyForQuery` outside a transaction: the last message of its answer to a
/// statement that committed on its own.
const IDLE: &[u8] = &[b'Z', 0, 0, 0, 5, b'I'];

/// Passes every connection on to `upstream`, until a client sends [`MARKER`] (once): those
/// bytes go on to PostgreSQL, nothing more comes back, and once PostgreSQL has answered in
/// full (so the statement ran and committed) both sides are closed.
async fn cutting_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let armed = Arc::new(AtomicBool::new(true));
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = TcpStream::connect(upstream).await.unwrap();
            tokio::spawn(pass(client, server, armed.clone()));
        }
    });
    addr
}

async fn pass(client: TcpStream, server: TcpStream, armed: Arc<AtomicBool>) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    // Set once the marker is seen: PostgreSQL's bytes are read and dropped from then on, and
    // the client's socket stays open until the cut, so the client cannot hear anything sooner.
    let cut = Arc::new(AtomicBool::new(false));
    let (answered, ready) = tokio::sync::oneshot::channel::<()>();
    let back = tokio::spawn({
        let cut = cut.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut answered = Some(answered);
            loop {
                let n = match from_server.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if !cut.load(Ordering::SeqCst) {
                    if to_client.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                } else if buf[..n].ends_with(IDLE)
                    && let Some(a) = answered.take()
                {
                    let _ = a.send(());
                }
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous read, so a marker split between two reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut seen = std::mem::take(&mut tail);
        seen.extend_from_slice(&buf[..n]);
        let hit = seen.windows(MARKER.len()).any(|w| w == MARKER);
        if hit && armed.swap(false, Ordering::SeqCst) {
            cut.store(true, Ordering::SeqCst);
            let _ = to_server.write_all(&buf[..n]).await;
            // Answered in full: the statement ran and committed.
            let _ = tokio::time::timeout(Duration::from_secs(30), ready).await;
            back.abort(); // both sockets dropped: the client reads the end of its stream
            return;
        }
        if to_server.write_all(&buf[..n]).await.is_err() {
            break;
        }
        tail = seen[seen.len().saturating_sub(MARKER.len())..].to_vec();
    }
}

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

// One test in this binary: the counts are the whole binary's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_answer_was_lost_is_not_answered_as_written() {
    let Some(admin) = pg_admin_or_skip("the lost answer of a versioned append") else {
        return;
    };
    let appends = Outcomes::install("confab_store_appends_total");
    let db = TestDb::new_pg(&admin).await;
    let direct: PgConnectOptions = db.url.parse().unwrap();
    let upstream = tokio::net::lookup_host((direct.get_host(), direct.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = cutting_proxy(upstream).await;
    // Plain bytes, so that the proxy can read them.
    let through = direct
        .clone()
        .host(&proxy.ip().to_string())
        .port(proxy.port())
        .ssl_mode(PgSslMode::Disable);
    let url = through.to_url_lossy().to_string();
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
    let lost = store
        .append_messages(&tenant, id, said("lost-in-flight"), None)
        .await;
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
        vec![(0, "one".to_string()), (1, "lost-in-flight".to_string())]
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
            (1, "lost-in-flight".to_string()),
            (2, "three".to_string())
        ]
    );
    c.close().await.unwrap();
    store.close().await;
}
