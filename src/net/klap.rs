//! A KLAP client over HTTP/1.1 on a [`Stream`] (plain TCP, or TLS when the device asks for
//! HTTPS: [`super::tls`]; one kept-alive connection per device, replaced when the device closes
//! it; sizes capped, every call under a timeout). The crypto is [`crate::protocol::klap`]; this
//! file only moves bytes and keeps the session.
//!
//! - handshake1 / handshake2, trying the credentials in python-kasa's order (the account, the
//!   publicly known default setup credentials, blank) by comparing handshake1's proof;
//! - the `TP_SESSIONID` cookie (the `TIMEOUT` cookie is read for the session lifetime and never
//!   sent back); the session is renewed before it lapses;
//! - a 403 on a request drops the session and does one fresh handshake and one retry.
//!
//! Never logs a password or an auth hash.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout};

use super::tls::{self, ConnectError, Scheme, Stream};

use crate::protocol::klap::{
    self, AuthVersion, CredentialSource, KlapError, SEED_LEN, SESSION_COOKIE, Session,
    TIMEOUT_COOKIE,
};

/// Largest response head (status line and headers) read.
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body read.
pub const MAX_BODY: usize = 1024 * 1024;

/// The owner's TP-Link account. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"…")
            .finish()
    }
}

/// Which step of the exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlapStage {
    /// Opening the connection: TCP, and the TLS handshake on HTTPS.
    Connect,
    Handshake1,
    Handshake2,
    Request,
}

impl std::fmt::Display for KlapStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KlapStage::Connect => "connect",
            KlapStage::Handshake1 => "handshake1",
            KlapStage::Handshake2 => "handshake2",
            KlapStage::Request => "request",
        })
    }
}

/// A KLAP failure, typed so a caller can show "auth failed" or "needs credentials".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KlapNetError {
    /// The device holds other credentials than the account given (and than the defaults/blank).
    #[error("authentication failed: the device does not accept the account's credentials")]
    AuthFailed,
    /// No account was given and the device accepts neither the default nor blank credentials.
    #[error("the device needs the TP-Link account's credentials")]
    NeedsCredentials,
    /// A request was refused with 403 even on a fresh session.
    #[error("session expired (HTTP 403) and a fresh handshake did not help")]
    SessionExpired,
    /// The reply body does not verify or decrypt.
    #[error("reply does not decrypt: {0}")]
    BadCiphertext(KlapError),
    #[error("{stage} timed out after {after:?}")]
    Timeout { stage: KlapStage, after: Duration },
    /// HTTPS: the device accepted TCP and did not complete the TLS handshake in time.
    #[error("TLS handshake timed out after {after:?}")]
    TlsTimeout { after: Duration },
    /// HTTPS: the TLS handshake failed (no common version or cipher suite, not TLS, …).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("{stage}: HTTP {status}")]
    Http { stage: KlapStage, status: u16 },
    #[error("{stage}: {msg}")]
    Io { stage: KlapStage, msg: String },
    #[error("{stage}: bad reply: {msg}")]
    BadReply { stage: KlapStage, msg: String },
}

/// How to reach one device.
#[derive(Debug, Clone)]
pub struct KlapConfig {
    pub addr: SocketAddr,
    pub version: AuthVersion,
    pub account: Option<Credentials>,
    /// HTTP, or HTTPS when the discovery reply says `is_support_https`.
    pub scheme: Scheme,
    /// Bound on each HTTP exchange (send, read) and on opening a connection (TCP, then TLS).
    pub timeout: Duration,
    /// On a 403, handshake again and retry once (else report [`KlapNetError::SessionExpired`]).
    pub renew_on_403: bool,
}

impl KlapConfig {
    pub fn new(addr: SocketAddr, version: AuthVersion, account: Option<Credentials>) -> Self {
        KlapConfig {
            addr,
            version,
            account,
            scheme: Scheme::Http,
            timeout: Duration::from_secs(5),
            renew_on_403: true,
        }
    }
}

struct Live {
    session: Session,
    cookie: Option<String>,
    renew_at: Instant,
}

/// A KLAP client for one device; keeps one session and reuses it across requests.
pub struct KlapClient {
    cfg: KlapConfig,
    /// The kept HTTP connection (taken out while a request is on it, so a request cut short
    /// by its timeout never leaves a late reply to be read as the next one's).
    conn: Option<Stream>,
    live: Option<Live>,
    source: Option<CredentialSource>,
    handshakes: u64,
}

impl std::fmt::Debug for KlapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KlapClient")
            .field("addr", &self.cfg.addr)
            .field("version", &self.cfg.version)
            .field("scheme", &self.cfg.scheme)
            .field("session", &self.live.is_some())
            .field("handshakes", &self.handshakes)
            .finish()
    }
}

/// One HTTP response.
#[derive(Debug)]
pub(crate) struct HttpReply {
    pub status: u16,
    pub set_cookies: Vec<String>,
    pub body: Vec<u8>,
    /// The device closes the connection after this reply (`Connection: close`, HTTP/1.0).
    pub close: bool,
}

impl KlapClient {
    pub fn new(cfg: KlapConfig) -> Self {
        KlapClient {
            cfg,
            conn: None,
            live: None,
            source: None,
            handshakes: 0,
        }
    }

    /// Completed handshakes so far (a kept session means this stays at 1).
    pub fn handshakes(&self) -> u64 {
        self.handshakes
    }

    /// Which credentials the device accepted in the last handshake.
    pub fn credential_source(&self) -> Option<CredentialSource> {
        self.source
    }

    /// Drops the session (the next request handshakes).
    pub fn reset(&mut self) {
        self.live = None;
    }

    /// handshake1 + handshake2; keeps the session.
    pub async fn handshake(&mut self) -> Result<CredentialSource, KlapNetError> {
        self.live = None;
        let v = self.cfg.version;
        let mut local = [0u8; SEED_LEN];
        getrandom::fill(&mut local).map_err(|e| KlapNetError::Io {
            stage: KlapStage::Handshake1,
            msg: format!("no random seed: {e}"),
        })?;
        let r1 = self
            .post(KlapStage::Handshake1, "/app/handshake1", None, &local)
            .await?;
        if r1.status != 200 {
            return Err(KlapNetError::Http {
                stage: KlapStage::Handshake1,
                status: r1.status,
            });
        }
        let (remote, proof) =
            klap::parse_handshake1_reply(&r1.body).map_err(|e| KlapNetError::BadReply {
                stage: KlapStage::Handshake1,
                msg: e.to_string(),
            })?;
        let cookies = klap::parse_set_cookies(r1.set_cookies.iter().map(String::as_str));
        let cookie = cookies
            .iter()
            .find(|(n, _)| n == SESSION_COOKIE)
            .map(|(_, v)| v.clone());
        let lifetime = klap::session_secs(
            cookies
                .iter()
                .find(|(n, _)| n == TIMEOUT_COOKIE)
                .map(|(_, v)| v.as_str()),
        );
        let account = self
            .cfg
            .account
            .as_ref()
            .map(|c| (c.username.as_str(), c.password.as_str()));
        let candidates = klap::candidates(v, account);
        let Some((source, auth)) =
            klap::find_credentials(v, &candidates, &local, &remote, &proof).cloned()
        else {
            return Err(if self.cfg.account.is_some() {
                KlapNetError::AuthFailed
            } else {
                KlapNetError::NeedsCredentials
            });
        };
        let h2 = klap::handshake2_proof(v, &local, &remote, &auth);
        let r2 = self
            .post(
                KlapStage::Handshake2,
                "/app/handshake2",
                cookie.as_deref(),
                &h2,
            )
            .await?;
        match r2.status {
            200 => {}
            401 | 403 => return Err(KlapNetError::AuthFailed),
            status => {
                return Err(KlapNetError::Http {
                    stage: KlapStage::Handshake2,
                    status,
                });
            }
        }
        self.handshakes += 1;
        self.source = Some(source);
        tracing::debug!(addr = %self.cfg.addr, ?source, lifetime, "KLAP session established");
        self.live = Some(Live {
            session: Session::new(&local, &remote, &auth),
            cookie,
            renew_at: Instant::now() + Duration::from_secs(klap::usable_secs(lifetime)),
        });
        Ok(source)
    }

    /// Sends one plaintext payload, returns the decrypted reply. Handshakes first when there is
    /// no session or it is due for renewal; after a 403, one fresh handshake and one retry.
    pub async fn request(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, KlapNetError> {
        let due = self
            .live
            .as_ref()
            .is_none_or(|l| Instant::now() >= l.renew_at);
        if due {
            self.handshake().await?;
        }
        match self.request_once(plaintext).await {
            Err(KlapNetError::SessionExpired) if self.cfg.renew_on_403 => {
                self.handshake().await?;
                self.request_once(plaintext).await
            }
            other => other,
        }
    }

    async fn request_once(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, KlapNetError> {
        let Some(live) = self.live.as_mut() else {
            return Err(KlapNetError::SessionExpired);
        };
        let (body, seq) = live.session.encrypt_request(plaintext);
        let cookie = live.cookie.clone();
        let r = self
            .post(
                KlapStage::Request,
                &klap::request_path(seq),
                cookie.as_deref(),
                &body,
            )
            .await?;
        match r.status {
            200 => {}
            403 => {
                self.live = None;
                return Err(KlapNetError::SessionExpired);
            }
            status => {
                return Err(KlapNetError::Http {
                    stage: KlapStage::Request,
                    status,
                });
            }
        }
        let live = self.live.as_ref().ok_or(KlapNetError::SessionExpired)?;
        live.session
            .open(seq, &r.body)
            .map_err(KlapNetError::BadCiphertext)
    }

    /// Sends a JSON request (IOT: `{"system":{"get_sysinfo":{}}}`; SMART: `{"method":…}`).
    pub async fn query(&mut self, request: &Value) -> Result<Value, KlapNetError> {
        let reply = self.request(request.to_string().as_bytes()).await?;
        serde_json::from_slice(&reply).map_err(|e| KlapNetError::BadReply {
            stage: KlapStage::Request,
            msg: format!("not JSON: {e}"),
        })
    }

    async fn post(
        &mut self,
        stage: KlapStage,
        path: &str,
        cookie: Option<&str>,
        body: &[u8],
    ) -> Result<HttpReply, KlapNetError> {
        let after = self.cfg.timeout;
        // A new connection is opened (and on HTTPS its TLS handshake completed) before any
        // byte of the request is written, under its own timeout, so a device that accepts TCP
        // and stalls the TLS handshake gets a typed error of its own.
        let (conn, fresh) = match self.conn.take() {
            Some(c) => (c, false),
            None => (
                tls::connect(self.cfg.scheme, self.cfg.addr, after)
                    .await
                    .map_err(connect_error)?,
                true,
            ),
        };
        let (r, conn) = timeout(
            after,
            post_kept(
                conn,
                fresh,
                self.cfg.scheme,
                self.cfg.addr,
                path,
                cookie,
                body,
            ),
        )
        .await
        .map_err(|_| KlapNetError::Timeout { stage, after })?
        .map_err(|msg| KlapNetError::Io { stage, msg })?;
        self.conn = conn;
        Ok(r)
    }
}

fn connect_error(e: ConnectError) -> KlapNetError {
    let stage = KlapStage::Connect;
    match e {
        ConnectError::Tcp { .. } => KlapNetError::Io {
            stage,
            msg: e.to_string(),
        },
        ConnectError::TcpTimeout { after, .. } => KlapNetError::Timeout { stage, after },
        ConnectError::Tls { msg, .. } => KlapNetError::Tls(msg),
        ConnectError::TlsTimeout { after, .. } => KlapNetError::TlsTimeout { after },
    }
}

/// One POST over `conn` (`fresh`, or kept since an earlier request), with `Connection:
/// keep-alive`; returns the connection to keep, if the device keeps it. A kept connection that
/// fails before any byte of a reply came is replaced once by a fresh one of the same `scheme`
/// (nothing was answered, so nothing is sent twice that was acted on); the caller's timeout
/// bounds the whole.
async fn post_kept(
    mut conn: Stream,
    fresh: bool,
    scheme: Scheme,
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    body: &[u8],
) -> Result<(HttpReply, Option<Stream>), String> {
    match exchange(&mut conn, addr, path, OCTETS, cookie, body, true).await {
        Ok(r) => {
            let keep = !r.close;
            return Ok((r, keep.then_some(conn)));
        }
        Err(Exchange::Unanswered(_)) if !fresh => {}
        Err(Exchange::Unanswered(e) | Exchange::Failed(e)) => return Err(e),
    }
    // No per-step bound here: the caller's timeout covers this reconnect too.
    let mut s = tls::connect(scheme, addr, Duration::MAX)
        .await
        .map_err(|e| e.to_string())?;
    match exchange(&mut s, addr, path, OCTETS, cookie, body, true).await {
        Ok(r) => {
            let keep = !r.close;
            Ok((r, keep.then_some(s)))
        }
        Err(Exchange::Unanswered(e) | Exchange::Failed(e)) => Err(e),
    }
}

/// Why an exchange failed: before any reply byte (safe to retry on a fresh connection) or
/// after.
enum Exchange {
    Unanswered(String),
    Failed(String),
}

async fn exchange(
    s: &mut Stream,
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    cookie: Option<&str>,
    body: &[u8],
    keep_alive: bool,
) -> Result<HttpReply, Exchange> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Accept: */*\r\nContent-Length: {}\r\nConnection: {}\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if let Some(c) = cookie {
        head.push_str(&format!("Cookie: {SESSION_COOKIE}={c}\r\n"));
    }
    head.push_str("\r\n");
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req)
        .await
        .map_err(|e| Exchange::Unanswered(format!("send: {e}")))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(r) = parse_reply(&buf).map_err(Exchange::Failed)? {
            return Ok(r);
        }
        let n = match s.read(&mut chunk).await {
            Ok(n) => n,
            Err(e) if buf.is_empty() => return Err(Exchange::Unanswered(format!("read: {e}"))),
            Err(e) => return Err(Exchange::Failed(format!("read: {e}"))),
        };
        if n == 0 {
            if buf.is_empty() {
                return Err(Exchange::Unanswered("closed before a reply".into()));
            }
            return parse_at_eof(&buf)
                .map(|mut r| {
                    r.close = true;
                    r
                })
                .map_err(Exchange::Failed);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_HEAD + MAX_BODY {
            return Err(Exchange::Failed(format!(
                "reply larger than {} bytes",
                MAX_HEAD + MAX_BODY
            )));
        }
    }
}

const OCTETS: &str = "application/octet-stream";

/// One HTTP/1.1 POST on a fresh plain-HTTP connection (shared with `net::aes`: AES over HTTPS
/// is the cameras' different SSL-AES login, which `protocol::access` refuses); not timed here.
pub(crate) async fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    cookie: Option<&str>,
    body: &[u8],
) -> Result<HttpReply, String> {
    let mut s = tls::connect(Scheme::Http, addr, Duration::MAX)
        .await
        .map_err(|e| e.to_string())?;
    exchange(&mut s, addr, path, content_type, cookie, body, false)
        .await
        .map_err(|(Exchange::Unanswered(e) | Exchange::Failed(e))| e)
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

/// A complete reply, once the head and `Content-Length` bytes are in.
fn parse_reply(buf: &[u8]) -> Result<Option<HttpReply>, String> {
    let Some(h) = parse_head(buf)? else {
        return Ok(None);
    };
    match h.content_length {
        Some(n) if buf.len() >= h.body_at + n => Ok(Some(HttpReply {
            status: h.status,
            close: h.close,
            set_cookies: h.set_cookies,
            body: buf[h.body_at..h.body_at + n].to_vec(),
        })),
        _ => Ok(None),
    }
}

fn parse_at_eof(buf: &[u8]) -> Result<HttpReply, String> {
    let Some(h) = parse_head(buf)? else {
        return Err("connection closed before a reply".into());
    };
    let body = &buf[h.body_at..];
    if let Some(n) = h.content_length
        && body.len() < n
    {
        return Err(format!("reply cut short: {} of {n} bytes", body.len()));
    }
    Ok(HttpReply {
        status: h.status,
        close: h.close,
        set_cookies: h.set_cookies,
        body: body.to_vec(),
    })
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
    }

    #[test]
    fn bad_replies_are_errors() {
        assert!(parse_reply(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_reply(b"HTTP/1.1 abc\r\n\r\n").is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n").is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_reply(&vec![b'a'; MAX_HEAD + 1]).is_err());
        assert!(parse_at_eof(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").is_err());
        assert!(parse_at_eof(b"").is_err());
        let r = parse_at_eof(b"HTTP/1.1 403 Forbidden\r\n\r\n").expect("ok");
        assert_eq!(r.status, 403);
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

    /// One request the way [`KlapClient::post`] sends it: over `conn`, else a fresh connection.
    async fn post_once(conn: Option<Stream>, addr: SocketAddr) -> (HttpReply, Option<Stream>) {
        let (conn, fresh) = match conn {
            Some(c) => (c, false),
            None => (
                tls::connect(Scheme::Http, addr, Duration::from_secs(5))
                    .await
                    .expect("connect"),
                true,
            ),
        };
        post_kept(conn, fresh, Scheme::Http, addr, "/app/request", None, b"x")
            .await
            .expect("reply")
    }

    #[tokio::test]
    async fn the_connection_is_kept_unless_the_device_closes_it() {
        use std::sync::atomic::Ordering;
        let (addr, accepted) = server(false).await;
        let mut conn = None;
        for _ in 0..3 {
            let (r, kept) = post_once(conn.take(), addr).await;
            assert_eq!(
                (r.status, r.body.as_slice(), r.close),
                (200, &b"ok"[..], false)
            );
            conn = kept;
            assert!(conn.is_some());
        }
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            1,
            "three requests, one connection"
        );
        let (addr, accepted) = server(true).await;
        let mut conn = None;
        for _ in 0..3 {
            let (r, kept) = post_once(conn.take(), addr).await;
            assert!(r.close && kept.is_none());
            conn = kept;
        }
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            3,
            "closed each time: reconnected"
        );
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials::new("me@example.com", "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    proptest::proptest! {
        #[test]
        fn hostile_replies_never_panic(data: Vec<u8>) {
            let _ = parse_reply(&data);
            let _ = parse_at_eof(&data);
        }
    }
}
