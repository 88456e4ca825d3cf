//! The bounded HTTP/1.1 client of the newer-protocol transports ([`super::klap`],
//! [`super::aes`]): `POST` only, one kept-alive connection per device ([`HttpConn`]), replaced
//! when the device closes it; head and body sizes capped; `Content-Length` bodies only (a
//! chunked reply is refused). Not timed here: each caller bounds a whole exchange.
//!
//! Hand-written rather than hyper's client because it is a handful of headers each way and the
//! hot path of every newer-protocol poll: the request is written in one buffer and one write,
//! the reply read into one growing buffer whose tail becomes the body (no copy).

use std::io::Write as _;
use std::net::SocketAddr;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tls::{self, ConnectError, Scheme, Stream};
use crate::protocol::klap::SESSION_COOKIE;

/// Largest response head (status line and headers) read.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest response body read.
pub const MAX_BODY: usize = 1024 * 1024;

/// One HTTP response.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub body: Vec<u8>,
    /// The device closes the connection after this reply (`Connection: close`, HTTP/1.0).
    pub close: bool,
}

/// One device's HTTP connection, kept alive between requests.
pub struct HttpConn {
    addr: SocketAddr,
    /// Plain TCP, or TLS over it ([`super::tls`]).
    scheme: Scheme,
    /// `Host:` header value, formatted once.
    host: String,
    /// The kept connection: taken out while a request is on it, so a request cut short by its
    /// caller's timeout never leaves a late reply to be read as the next one's.
    conn: Option<Stream>,
    /// The request buffer, reused.
    out: Vec<u8>,
    connects: u64,
}

impl std::fmt::Debug for HttpConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConn")
            .field("addr", &self.addr)
            .field("open", &self.conn.is_some())
            .field("connects", &self.connects)
            .finish()
    }
}

impl HttpConn {
    /// A connection to `addr` over `scheme`, opened on the first request.
    pub fn new(addr: SocketAddr, scheme: Scheme) -> Self {
        HttpConn {
            addr,
            scheme,
            host: addr.to_string(),
            conn: None,
            out: Vec::new(),
            connects: 0,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections opened so far (1 while the device keeps the connection).
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Opens the connection when none is kept (TCP within `after`, then on HTTPS the TLS
    /// handshake within another `after`), so that a device that accepts TCP and stalls its TLS
    /// handshake gets a typed error of its own, before any byte of a request is written.
    pub async fn open(&mut self, after: Duration) -> Result<(), ConnectError> {
        if self.conn.is_none() {
            self.conn = Some(tls::connect(self.scheme, self.addr, after).await?);
            self.connects += 1;
        }
        Ok(())
    }

    /// Closes the kept connection (the next request opens a fresh one).
    pub fn close(&mut self) {
        self.conn = None;
    }

    /// One `POST path` with `body`, sending `cookie` as the `TP_SESSIONID` cookie, over the
    /// kept connection (when the device has not closed it since) or a fresh one. A kept
    /// connection that fails before any byte of a reply came is replaced once (nothing was
    /// answered, so nothing is sent twice that was acted on). Errors are one line of text.
    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        cookie: Option<&str>,
        body: &[u8],
    ) -> Result<HttpReply, String> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        write_request(&mut out, &self.host, path, content_type, cookie, body);
        let kept = self.conn.take();
        let r = self.send(kept, &out).await;
        self.out = out;
        let (reply, conn) = r?;
        self.conn = conn;
        Ok(reply)
    }

    async fn send(
        &mut self,
        kept: Option<Stream>,
        request: &[u8],
    ) -> Result<(HttpReply, Option<Stream>), String> {
        if let Some(mut s) = kept {
            match exchange(&mut s, request).await {
                Ok(r) => {
                    let keep = !r.close;
                    return Ok((r, keep.then_some(s)));
                }
                Err(Exchange::Unanswered(_)) => {}
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
        // Under the caller's bound on the whole exchange.
        let mut s = tls::connect(self.scheme, self.addr, Duration::MAX)
            .await
            .map_err(|e| e.to_string())?;
        self.connects += 1;
        match exchange(&mut s, request).await {
            Ok(r) => {
                let keep = !r.close;
                Ok((r, keep.then_some(s)))
            }
            Err(Exchange::Unanswered(e) | Exchange::Failed(e)) => Err(e),
        }
    }
}

/// The request head and body, appended to `out`.
fn write_request(
    out: &mut Vec<u8>,
    host: &str,
    path: &str,
    content_type: &str,
    cookie: Option<&str>,
    body: &[u8],
) {
    out.reserve(160 + path.len() + body.len());
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n\
         Accept: */*\r\nContent-Length: {}\r\nConnection: keep-alive\r\n",
        body.len()
    );
    if let Some(c) = cookie {
        let _ = write!(out, "Cookie: {SESSION_COOKIE}={c}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Why an exchange failed: before any reply byte (safe to retry on a fresh connection) or
/// after.
enum Exchange {
    Unanswered(String),
    Failed(String),
}

async fn exchange(s: &mut Stream, request: &[u8]) -> Result<HttpReply, Exchange> {
    s.write_all(request)
        .await
        .map_err(|e| Exchange::Unanswered(format!("send: {e}")))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    // The head, once it is complete (parsed once, not again for every piece of the body).
    let mut head: Option<Head> = None;
    loop {
        if head.is_none() {
            head = parse_head(&buf).map_err(Exchange::Failed)?;
        }
        let complete = matches!(&head, Some(h)
            if h.content_length.is_some_and(|n| buf.len() >= h.body_at + n));
        if complete && let Some(h) = head.take() {
            let n = h.content_length;
            return Ok(into_reply(h, buf, n));
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(buf.capacity().max(4096));
        }
        let n = match s.read_buf(&mut buf).await {
            Ok(n) => n,
            Err(e) if buf.is_empty() => return Err(Exchange::Unanswered(format!("read: {e}"))),
            Err(e) => return Err(Exchange::Failed(format!("read: {e}"))),
        };
        if n == 0 {
            if buf.is_empty() {
                return Err(Exchange::Unanswered("closed before a reply".into()));
            }
            return parse_at_eof(buf)
                .map(|mut r| {
                    r.close = true;
                    r
                })
                .map_err(Exchange::Failed);
        }
        if buf.len() > MAX_HEAD + MAX_BODY {
            return Err(Exchange::Failed(format!(
                "reply larger than {} bytes",
                MAX_HEAD + MAX_BODY
            )));
        }
    }
}

struct Head {
    status: u16,
    close: bool,
    set_cookies: Vec<String>,
    content_length: Option<usize>,
    body_at: usize,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(format!("reply head larger than {MAX_HEAD} bytes"));
        }
        return Ok(None);
    };
    if end > MAX_HEAD {
        return Err(format!("reply head larger than {MAX_HEAD} bytes"));
    }
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "reply head is not text".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let (Some(proto), Some(code)) = (parts.next(), parts.next()) else {
        return Err("no status line".into());
    };
    if !proto.starts_with("HTTP/1.") {
        return Err("not an HTTP/1.x reply".into());
    }
    let status: u16 = code.parse().map_err(|_| "bad status code".to_owned())?;
    let mut close = proto == "HTTP/1.0";
    let mut set_cookies = Vec::new();
    let mut content_length = None;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("set-cookie") {
            set_cookies.push(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value.parse().map_err(|_| "bad Content-Length".to_owned())?;
            if n > MAX_BODY {
                return Err(format!("Content-Length {n} over the {MAX_BODY} cap"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            return Err("chunked replies are not supported".into());
        }
    }
    Ok(Some(Head {
        status,
        close,
        set_cookies,
        content_length,
        body_at: end + 4,
    }))
}

/// The reply of `h` whose body is `buf` after the head (cut at `len` when given): the buffer
/// itself becomes the body.
fn into_reply(h: Head, mut buf: Vec<u8>, len: Option<usize>) -> HttpReply {
    if let Some(n) = len {
        buf.truncate(h.body_at + n);
    }
    buf.drain(..h.body_at);
    HttpReply {
        status: h.status,
        close: h.close,
        set_cookies: h.set_cookies,
        body: buf,
    }
}

/// A complete reply, once the head and `Content-Length` bytes are in (tests).
#[cfg(test)]
fn parse_reply(buf: &[u8]) -> Result<Option<HttpReply>, String> {
    let Some(h) = parse_head(buf)? else {
        return Ok(None);
    };
    match h.content_length {
        Some(n) if buf.len() >= h.body_at + n => Ok(Some(into_reply(h, buf.to_vec(), Some(n)))),
        _ => Ok(None),
    }
}

/// The reply in `buf` when the device closed the connection after it.
fn parse_at_eof(buf: Vec<u8>) -> Result<HttpReply, String> {
    let Some(h) = parse_head(&buf)? else {
        return Err("connection closed before a reply".into());
    };
    let got = buf.len() - h.body_at;
    if let Some(n) = h.content_length
        && got < n
    {
        return Err(format!("reply cut short: {got} of {n} bytes"));
    }
    let n = h.content_length;
    Ok(into_reply(h, buf, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_in_pieces() {
        let full = b"HTTP/1.1 200 OK\r\nSet-Cookie: TP_SESSIONID=AB;TIMEOUT=86400\r\ncontent-length: 3\r\n\r\nxyz";
        for cut in 0..full.len() {
            assert!(
                parse_reply(&full[..cut]).expect("no error").is_none(),
                "{cut}"
            );
        }
        let r = parse_reply(full).expect("ok").expect("complete");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"xyz");
        assert_eq!(
            r.set_cookies,
            vec!["TP_SESSIONID=AB;TIMEOUT=86400".to_owned()]
        );
        // Bytes after the declared length are not part of the body.
        let mut more = full.to_vec();
        more.extend_from_slice(b"HTTP/1.1");
        assert_eq!(
            parse_reply(&more).expect("ok").expect("complete").body,
            b"xyz"
        );
    }

    #[test]
    fn bad_replies_are_errors() {
        assert!(parse_reply(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_reply(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n").is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_reply(&vec![b'a'; MAX_HEAD + 1]).is_err());
        assert!(parse_at_eof(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab".to_vec()).is_err());
        assert!(parse_at_eof(Vec::new()).is_err());
        let r = parse_at_eof(b"HTTP/1.1 403 Forbidden\r\n\r\n".to_vec()).expect("ok");
        assert_eq!(r.status, 403);
        let r = parse_at_eof(b"HTTP/1.0 200 OK\r\n\r\nuntil the end".to_vec()).expect("ok");
        assert_eq!((r.body.as_slice(), r.close), (&b"until the end"[..], true));
    }

    #[test]
    fn the_request_is_one_buffer_with_the_session_cookie_only() {
        let mut out = Vec::new();
        write_request(
            &mut out,
            "127.0.0.2:80",
            "/app/request?seq=-5",
            "application/octet-stream",
            Some("AB12"),
            b"\x00\x01body",
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("POST /app/request?seq=-5 HTTP/1.1\r\nHost: 127.0.0.2:80\r\n"));
        assert!(text.contains("\r\nContent-Length: 6\r\n"), "{text}");
        assert!(text.contains("\r\nCookie: TP_SESSIONID=AB12\r\n"), "{text}");
        assert!(!text.contains("TIMEOUT"), "{text}");
        assert!(out.ends_with(b"\r\n\r\n\x00\x01body"));
    }

    /// A server answering every request on a connection until the client closes it (or, with
    /// `close`, after one reply): counts the connections it accepted.
    async fn server(close: bool) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU32>) {
        use std::sync::atomic::{AtomicU32, Ordering};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let accepted = std::sync::Arc::new(AtomicU32::new(0));
        let n = accepted.clone();
        tokio::spawn(async move {
            for _ in 0..8 {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                n.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    for _ in 0..8 {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let hdr = if close { "Connection: close\r\n" } else { "" };
                        let r = format!("HTTP/1.1 200 OK\r\n{hdr}Content-Length: 2\r\n\r\nok");
                        if s.write_all(r.as_bytes()).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    #[tokio::test]
    async fn the_connection_is_kept_unless_the_device_closes_it() {
        use std::sync::atomic::Ordering;
        let (addr, accepted) = server(false).await;
        let mut c = HttpConn::new(addr, Scheme::Http);
        for _ in 0..3 {
            let r = c
                .post("/app/request", "application/octet-stream", None, b"x")
                .await
                .expect("reply");
            assert_eq!(
                (r.status, r.body.as_slice(), r.close),
                (200, &b"ok"[..], false)
            );
        }
        assert_eq!(
            (accepted.load(Ordering::Relaxed), c.connects()),
            (1, 1),
            "three requests, one connection"
        );
        let (addr, accepted) = server(true).await;
        let mut c = HttpConn::new(addr, Scheme::Http);
        for _ in 0..3 {
            let r = c
                .post("/app/request", "application/octet-stream", None, b"x")
                .await
                .expect("reply");
            assert!(r.close);
        }
        assert_eq!(
            (accepted.load(Ordering::Relaxed), c.connects()),
            (3, 3),
            "closed each time: reconnected"
        );
    }

    proptest::proptest! {
        #[test]
        fn hostile_replies_never_panic(data: Vec<u8>) {
            let _ = parse_reply(&data);
            let _ = parse_at_eof(data);
        }
    }
}
