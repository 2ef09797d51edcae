//! A TCP proxy between a store and PostgreSQL that loses one answer: once a client sends
//! [`MARKER`], those bytes reach PostgreSQL, its answer never comes back, and the connection is
//! closed after PostgreSQL has answered in full (so a statement that commits on its own has
//! committed). What a client sees is a connection lost with its write's outcome unknown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy waits for in what a client sends (put it in an appended message's text).
pub const MARKER: &str = "lost-in-flight";

/// PostgreSQL's `ReadyForQuery` outside a transaction: the last message of its answer to a
/// statement that committed on its own.
const IDLE: &[u8] = &[b'Z', 0, 0, 0, 5, b'I'];

/// The URL of database `url` through a new proxy that loses the answer to the first bytes
/// holding [`MARKER`], in plain text so that the proxy can read them.
pub async fn cut_url(url: &str) -> String {
    let direct: PgConnectOptions = url.parse().unwrap();
    let upstream = tokio::net::lookup_host((direct.get_host(), direct.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = cutting_proxy(upstream).await;
    direct
        .host(&proxy.ip().to_string())
        .port(proxy.port())
        .ssl_mode(PgSslMode::Disable)
        .to_url_lossy()
        .to_string()
}

/// Passes every connection on to `upstream`, until a client sends [`MARKER`] (once).
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
        let hit = seen.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
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
