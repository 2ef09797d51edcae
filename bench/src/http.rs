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

    /// Reads a response head and consumes it: status, Content-Length, whether the body is
    /// chunked, whether the server closes the connection. Parsed in the buffer, without a
    /// string per line (which made no difference one could measure: the client's 12–14 µs of
    /// CPU per `GET /healthz` on 2026-11-30 are mostly the kernel's loopback TCP, paid by the
    /// side that sends).
    async fn head(&mut self) -> anyhow::Result<(u16, Option<u64>, bool, bool)> {
        let end = loop {
            if let Some(i) = self.avail().windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let head = &self.buf[self.pos..self.pos + end];
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(|&b| b == b' ')
            .nth(1)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse().ok())
            .with_context(|| {
                format!("bad status line {:?}", String::from_utf8_lossy(status_line))
            })?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        for h in lines {
            let Some(colon) = h.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&h[..colon], h[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                let v = std::str::from_utf8(value).context("content-length")?;
                length = Some(v.parse::<u64>().context("content-length")?);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = value.eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                close = value.eq_ignore_ascii_case(b"close");
            }
        }
        self.pos += end + 4;
        Ok((status, length, chunked, close))
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
        let (status, length, chunked, close) = self.head().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers each request on one connection with the next canned response.
    async fn canned(responses: Vec<&'static [u8]>) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for r in responses {
                let _ = s.read(&mut buf).await.unwrap();
                // In two pieces, the head cut mid-line: the parser must wait for the rest.
                let (a, b) = r.split_at(r.len() / 3);
                s.write_all(a).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                s.write_all(b).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn responses_are_read_whole_whatever_their_framing() {
        let addr = canned(vec![
            b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH:  5\r\nX-Other: a:b\r\n\r\nhello",
            b"HTTP/1.1 201 Created\r\ntransfer-encoding: Chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ])
        .await;
        let mut c = Conn::connect(addr).await.unwrap();
        let h = head("GET", "/", "", None);
        let r = c.send(&h, &[], true).await.unwrap();
        assert_eq!(
            (r.status, r.len, r.body.as_slice()),
            (200, 5, &b"hello"[..])
        );
        let r = c.send(&h, &[], false).await.unwrap();
        assert_eq!((r.status, r.len, r.body.len()), (201, 5, 0));
        // Not 2xx: the body is kept even when not asked for, for the error message.
        let r = c.send(&h, &[], false).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"nope"[..]));
        let r = c.send(&h, &[], false).await.unwrap();
        assert_eq!((r.status, r.len), (204, 0));
    }

    #[tokio::test]
    async fn a_server_that_closes_the_connection_is_an_error() {
        let addr = canned(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ])
        .await;
        let mut c = Conn::connect(addr).await.unwrap();
        let Err(err) = c.send(&head("GET", "/", "", None), &[], false).await else {
            panic!("a closed connection was taken for a good one");
        };
        assert!(err.to_string().contains("closed"), "{err:#}");
    }
}
