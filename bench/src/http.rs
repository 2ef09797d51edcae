//! A minimal HTTP/1.1 keep-alive client for the load generator.
//!
//! Why not reqwest: the load generator shares two cores with the server, so every microsecond
//! it spends is one the server does not get. A general client (header maps, URL parsing, a
//! connection pool with its own tasks, body streams) cost about as much CPU per request as
//! the server's cheapest route. This one writes a pre-rendered request head, reads the
//! response head, and counts the body (Content-Length or chunked) without keeping it, the way
//! wrk and similar tools do. It speaks only to the benchmark's own server.

use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection with its read buffer.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
}

/// What a response carried.
pub struct Response {
    pub status: u16,
    /// Body bytes received.
    pub len: u64,
    /// The body, only when asked for (or when the status is not 2xx, for the error).
    pub body: Vec<u8>,
}

impl Conn {
    /// Connects with Nagle off (requests are written in one call).
    pub async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
        })
    }

    /// Reads more bytes into the buffer; fails at end of stream.
    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 32 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + 64 * 1024, 0);
        let n = self.stream.read(&mut self.buf[len..]).await;
        self.buf.truncate(len + *n.as_ref().unwrap_or(&0));
        if n? == 0 {
            bail!("connection closed by the server");
        }
        Ok(())
    }

    /// Bytes available and not yet consumed.
    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// One line ending in CRLF, without it.
    async fn line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(i) = self.avail().windows(2).position(|w| w == b"\r\n") {
                let s = String::from_utf8_lossy(&self.avail()[..i]).into_owned();
                self.pos += i + 2;
                return Ok(s);
            }
            self.fill().await?;
        }
    }

    /// Consumes `n` body bytes, keeping them in `out` when it is given.
    async fn take(&mut self, mut n: u64, mut out: Option<&mut Vec<u8>>) -> anyhow::Result<()> {
        while n > 0 {
            if self.avail().is_empty() {
                self.fill().await?;
            }
            let k = (self.avail().len() as u64).min(n) as usize;
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&self.avail()[..k]);
            }
            self.pos += k;
            n -= k as u64;
        }
        Ok(())
    }

    /// Sends `head` (request line and headers, ending in a blank line) and `body`, then reads
    /// the whole response.
    pub async fn send(&mut self, head: &[u8], body: &[u8], keep: bool) -> anyhow::Result<Response> {
        if body.is_empty() {
            self.stream.write_all(head).await?;
        } else {
            // One write for small requests (no second segment waiting on the first's ACK).
            if body.len() < 16 * 1024 {
                let mut all = Vec::with_capacity(head.len() + body.len());
                all.extend_from_slice(head);
                all.extend_from_slice(body);
                self.stream.write_all(&all).await?;
            } else {
                self.stream.write_all(head).await?;
                self.stream.write_all(body).await?;
            }
        }
        let status_line = self.line().await?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            let h = self.line().await?;
            if h.is_empty() {
                break;
            }
            let Some((name, value)) = h.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<u64>().context("content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let keep = keep || !(200..300).contains(&status);
        let mut body = Vec::new();
        let mut len = 0u64;
        if chunked {
            loop {
                let size_line = self.line().await?;
                let size =
                    u64::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .with_context(|| format!("bad chunk size {size_line:?}"))?;
                if size == 0 {
                    // Trailers, then the blank line.
                    while !self.line().await?.is_empty() {}
                    break;
                }
                self.take(size, keep.then_some(&mut body)).await?;
                len += size;
                if !self.line().await?.is_empty() {
                    bail!("chunk not followed by CRLF");
                }
            }
        } else if let Some(n) = length {
            self.take(n, keep.then_some(&mut body)).await?;
            len = n;
        }
        if close {
            bail!("the server closed the connection (status {status})");
        }
        Ok(Response { status, len, body })
    }
}

/// Connections to one server, shared by the load tasks: a task takes one, uses it for one
/// request, and puts it back, so at most `concurrency` are ever open.
#[derive(Clone)]
pub struct Pool {
    addr: std::net::SocketAddr,
    idle: Arc<Mutex<Vec<Conn>>>,
}

impl Pool {
    pub fn new(addr: std::net::SocketAddr) -> Pool {
        Pool {
            addr,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// One request on a pooled connection; a connection that failed is dropped, not returned.
    pub async fn send(&self, head: &[u8], body: &[u8], keep: bool) -> anyhow::Result<Response> {
        let conn = self.idle.lock().expect("not poisoned").pop();
        let mut conn = match conn {
            Some(c) => c,
            None => Conn::connect(self.addr).await?,
        };
        let res = conn.send(head, body, keep).await?;
        self.idle.lock().expect("not poisoned").push(conn);
        Ok(res)
    }
}

/// The request head: request line, Host, the given header lines, Content-Length when there is
/// a body, and the blank line.
pub fn head(method: &str, path: &str, headers: &str, body_len: Option<usize>) -> Vec<u8> {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n{headers}");
    if let Some(n) = body_len {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}
