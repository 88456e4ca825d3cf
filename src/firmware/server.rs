//! The embedded file server (axum) that the plugs download images from.
//!
//! - Serves only the chosen images, each under `/fw/<token>/<file>` where `<token>` is 128 random
//!   bits drawn per update; every other path is 404. The request path is compared byte for byte
//!   with the registered paths, before any decoding, so `..`, `%2e%2e`, `..%2f` and friends can
//!   never reach anything.
//! - A plug's path ([`FileServer::per_plug`]) answers only that plug's address: a request for it
//!   from any other address gets the same 404 as an unknown path and is not counted, so the bytes
//!   served under a plug's key are that plug's own fetches.
//! - Connections are bounded ([`ServeLimits`]): a client must send its request head within the
//!   header-read timeout (half-open and slow-loris connections are closed), and each client
//!   address may hold only a few connections at once (more are closed on accept), so a flood of
//!   connections cannot starve the plugs' downloads.
//! - `GET` and `HEAD`, correct `Content-Length`, a single `Range` (206 / 416), plain HTTP, no
//!   redirects.
//! - Counts bytes served per client address as the body is handed to the connection, so the
//!   runner can show them beside the plug's own ratio and tell "the plug never fetched the file"
//!   at once.
//! - Binds the local address that routes to the plugs on an ephemeral port and stops when the
//!   updates end ([`RunningServer::shutdown`], or dropping it), cutting off any download still in
//!   progress.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Body chunk size: counting granularity.
const CHUNK: usize = 16 * 1024;

/// How long a connection may stay open for a stopping server to finish a response.
const DRAIN: Duration = Duration::from_secs(1);

/// Bounds on the server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A client must send a complete request head within this, on a new connection and between
    /// requests on a kept-alive one; otherwise the connection is closed.
    pub header_read_timeout: Duration,
    /// Connections one client address may hold open at once; more are closed on accept. A plug
    /// fetches over one connection.
    pub per_client: usize,
    /// Connections open at once, all clients together.
    pub total: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            per_client: 4,
            total: 512,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("no random source for the download token: {0}")]
    Random(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no local address routes to {plug}: {source}")]
    NoRoute {
        plug: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no image to serve")]
    NoImages,
}

/// What one client address fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServedStats {
    /// Body bytes handed to the connection (GET only).
    pub bytes: u64,
    /// GET and HEAD requests for a served image.
    pub requests: u32,
    /// Full-length bodies (200 responses) sent to the end.
    pub complete: u32,
}

/// One served path.
#[derive(Clone)]
struct Entry {
    bytes: Bytes,
    key: String,
    /// The only client address the path answers (a plug's); `None` = any.
    client: Option<IpAddr>,
}

struct Inner {
    /// Secret path → entry.
    files: HashMap<String, Entry>,
    /// Key → secret path.
    names: HashMap<String, String>,
    by_client: Mutex<HashMap<IpAddr, ServedStats>>,
    by_key: Mutex<HashMap<String, ServedStats>>,
    /// Open connections per client address.
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Connections closed on accept because of [`ServeLimits`].
    refused: AtomicU64,
    /// Requests for a plug's path from another address (answered 404).
    wrong_client: AtomicU64,
    /// Cancelled when the server stops: ends bodies still being sent.
    stop: CancellationToken,
}

/// An open connection's place in the per-client count; released when dropped.
struct Slot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.inner.open);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The set of images of one update, with their secret paths and the byte counters. Cheap to
/// clone (shared).
#[derive(Clone)]
pub struct FileServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FileServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileServer")
            .field("files", &self.inner.names.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A fresh unguessable token: 128 random bits as 32 hex digits.
pub fn random_token() -> Result<String, ServerError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ServerError::Random(e.to_string()))?;
    Ok(hex::encode(b))
}

/// Keeps `[A-Za-z0-9._-]`, replaces anything else with `_` (a plug's HTTP client need not cope
/// with escapes; the name is cosmetic, the token is the secret).
fn url_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() { "image.bin".into() } else { s }
}

impl FileServer {
    /// Registers `images` (file name, bytes) under one fresh random token.
    pub fn new(images: impl IntoIterator<Item = (String, Bytes)>) -> Result<Self, ServerError> {
        Self::with_token(&random_token()?, images)
    }

    /// Like [`FileServer::new`] with a given token (tests).
    pub fn with_token(
        token: &str,
        images: impl IntoIterator<Item = (String, Bytes)>,
    ) -> Result<Self, ServerError> {
        Self::build(
            images
                .into_iter()
                .map(|(name, bytes)| (name.clone(), name, bytes, token.to_owned(), None)),
        )
    }

    /// One path per plug, each under its own fresh random token: `(plug address, file name,
    /// bytes)`. The path answers only that address (any other gets 404), and its counters
    /// ([`FileServer::key_stats`] with the address as text) hold only that plug's fetches.
    pub fn per_plug(
        entries: impl IntoIterator<Item = (IpAddr, String, Bytes)>,
    ) -> Result<Self, ServerError> {
        let mut v = Vec::new();
        for (ip, name, bytes) in entries {
            v.push((ip.to_string(), name, bytes, random_token()?, Some(ip)));
        }
        Self::build(v)
    }

    /// One path per key, each under its own fresh random token: `(key, file name, bytes)`,
    /// answering any client address (see [`FileServer::per_plug`] for paths bound to a plug).
    pub fn per_key(
        entries: impl IntoIterator<Item = (String, String, Bytes)>,
    ) -> Result<Self, ServerError> {
        let mut v = Vec::new();
        for (key, name, bytes) in entries {
            v.push((key, name, bytes, random_token()?, None));
        }
        Self::build(v)
    }

    #[allow(clippy::type_complexity)]
    fn build(
        entries: impl IntoIterator<Item = (String, String, Bytes, String, Option<IpAddr>)>,
    ) -> Result<Self, ServerError> {
        let mut files = HashMap::new();
        let mut names = HashMap::new();
        for (key, name, bytes, token, client) in entries {
            let mut safe = url_safe(&name);
            let mut n = 1;
            while files.contains_key(&format!("/fw/{token}/{safe}")) {
                n += 1;
                safe = format!("{n}-{}", url_safe(&name));
            }
            let path = format!("/fw/{token}/{safe}");
            names.insert(key.clone(), path.clone());
            files.insert(
                path,
                Entry {
                    bytes,
                    key,
                    client: client.map(|c| c.to_canonical()),
                },
            );
        }
        if files.is_empty() {
            return Err(ServerError::NoImages);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                files,
                names,
                by_client: Mutex::new(HashMap::new()),
                by_key: Mutex::new(HashMap::new()),
                open: Mutex::new(HashMap::new()),
                refused: AtomicU64::new(0),
                wrong_client: AtomicU64::new(0),
                stop: CancellationToken::new(),
            }),
        })
    }

    /// The secret path of an image registered under `key` (its file name for
    /// [`FileServer::new`]).
    pub fn path_for(&self, key: &str) -> Option<&str> {
        self.inner.names.get(key).map(String::as_str)
    }

    /// The router (use `into_make_service_with_connect_info::<SocketAddr>()` so bytes are
    /// counted per client).
    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// What `client` fetched so far (all paths).
    pub fn stats(&self, client: IpAddr) -> ServedStats {
        lock(&self.inner.by_client)
            .get(&client)
            .copied()
            .unwrap_or_default()
    }

    /// Body bytes sent to `client` so far.
    pub fn served(&self, client: IpAddr) -> u64 {
        self.stats(client).bytes
    }

    /// What was fetched from the path registered under `key` (any client).
    pub fn key_stats(&self, key: &str) -> ServedStats {
        lock(&self.inner.by_key)
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    /// Every client's counters.
    pub fn all_stats(&self) -> HashMap<IpAddr, ServedStats> {
        lock(&self.inner.by_client).clone()
    }

    /// Connections closed on accept because a client (or all together) held too many.
    pub fn refused_connections(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Requests for a plug's path from another address (answered 404, not counted as served).
    pub fn wrong_client_requests(&self) -> u64 {
        self.inner.wrong_client.load(Ordering::Relaxed)
    }

    /// Takes a connection slot for `ip`, or None when over a limit.
    fn admit(&self, ip: IpAddr, limits: &ServeLimits) -> Option<Slot> {
        let ip = ip.to_canonical();
        let mut open = lock(&self.inner.open);
        let total: usize = open.values().sum();
        let mine = open.get(&ip).copied().unwrap_or(0);
        if total >= limits.total || mine >= limits.per_client {
            return None;
        }
        open.insert(ip, mine + 1);
        Some(Slot {
            inner: self.inner.clone(),
            ip,
        })
    }

    fn count(&self, client: Option<IpAddr>, key: &str, f: impl Fn(&mut ServedStats)) {
        if let Some(ip) = client {
            f(lock(&self.inner.by_client).entry(ip).or_default());
        }
        f(lock(&self.inner.by_key).entry(key.to_owned()).or_default());
    }

    /// Listens on each of `addrs` (port 0 = ephemeral) and serves until shut down, with the
    /// default [`ServeLimits`].
    pub async fn spawn(&self, addrs: &[SocketAddr]) -> Result<RunningServer, ServerError> {
        self.spawn_with(addrs, ServeLimits::default()).await
    }

    /// Like [`FileServer::spawn`] with given limits.
    pub async fn spawn_with(
        &self,
        addrs: &[SocketAddr],
        limits: ServeLimits,
    ) -> Result<RunningServer, ServerError> {
        let token = self.inner.stop.clone();
        let mut bound = Vec::new();
        let mut tasks = Vec::new();
        for &addr in addrs {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            bound.push(local);
            tasks.push(tokio::spawn(self.clone().accept_loop(listener, limits)));
        }
        Ok(RunningServer {
            files: self.clone(),
            bound,
            token,
            tasks,
        })
    }
}

impl FileServer {
    /// Accepts until the server stops; each admitted connection is served on its own task.
    async fn accept_loop(self, listener: tokio::net::TcpListener, limits: ServeLimits) {
        let stop = self.inner.stop.clone();
        let router = self.router();
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                r = listener.accept() => r,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                // Out of descriptors or similar: do not spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let Some(slot) = self.admit(peer.ip(), &limits) else {
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "file server: too many connections, closed");
                drop(stream);
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(
                router.clone().layer(Extension(ConnectInfo(peer))),
            );
            let stop = stop.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(limits.header_read_timeout);
                let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = stop.cancelled() => {
                        // Let a response in flight end (bodies end short on stop), then close
                        // even if the client stopped reading.
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(DRAIN, conn.as_mut()).await;
                    }
                }
            });
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned counter map still holds valid numbers.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The local address a plug reaches us on: the source address the OS would use to send to it
/// (a connected UDP socket; nothing is sent). Loopback plugs get 127.0.0.1.
pub fn local_addr_for(plug: IpAddr) -> Result<IpAddr, ServerError> {
    if plug.is_loopback() {
        return Ok(match plug {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    let unspecified: SocketAddr = match plug {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let no_route = |source| ServerError::NoRoute { plug, source };
    let sock = std::net::UdpSocket::bind(unspecified).map_err(no_route)?;
    sock.connect((plug, 9)).map_err(no_route)?;
    Ok(sock.local_addr().map_err(no_route)?.ip())
}

/// A listening server; stops on [`RunningServer::shutdown`] or when dropped.
pub struct RunningServer {
    files: FileServer,
    bound: Vec<SocketAddr>,
    token: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    pub fn files(&self) -> &FileServer {
        &self.files
    }

    /// The addresses actually listened on (with their ephemeral ports).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.bound
    }

    /// The URL a plug that reaches us on `local` should fetch the image registered under `key`
    /// from.
    pub fn url_for(&self, local: IpAddr, key: &str) -> Option<String> {
        let addr = self.bound.iter().find(|a| a.ip() == local)?;
        let path = self.files.path_for(key)?;
        Some(format!("http://{addr}{path}"))
    }

    /// Stops listening; waits (briefly) for open downloads to end.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        for t in self.tasks.drain(..) {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), t)
                .await
                .is_err()
            {
                tracing::warn!("file server did not stop within 2 s; aborting it");
                abort.abort();
            }
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.token.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The result of reading a `Range` header against a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range (absent, malformed, several ranges, other unit): send everything.
    Full,
    /// Inclusive byte range.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110 §14.1.2): `a-b`, `a-`, `-n`.
pub fn parse_range(value: &str, len: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.trim().is_empty(), num(a), num(b)) {
        // `-n`: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(len.saturating_sub(n), len - 1)
            }
        }
        // `a-`
        (false, Some(start), None) if b.trim().is_empty() => {
            if start >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(start, len - 1)
            }
        }
        // `a-b`
        (false, Some(start), Some(end)) if start <= end => {
            if start >= len {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(start, end.min(len - 1))
            }
        }
        _ => RangeRequest::Full,
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn handle(State(server): State<FileServer>, req: Request) -> Response {
    let Some(entry) = server.inner.files.get(req.uri().path()).cloned() else {
        return not_found();
    };
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    if let Some(only) = entry.client {
        if client != Some(only) {
            // Indistinguishable from an unknown path; not counted as served.
            server.inner.wrong_client.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                path_of = %only,
                from = ?client,
                "file server: a plug's path requested from another address"
            );
            return not_found();
        }
    }
    let Entry {
        bytes: data, key, ..
    } = entry;
    let method = req.method().clone();
    if method != Method::GET && method != Method::HEAD {
        let mut r = StatusCode::METHOD_NOT_ALLOWED.into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    server.count(client, &key, |s| s.requests += 1);
    let len = data.len() as u64;
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len))
        .unwrap_or(RangeRequest::Full);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let (status, start, end) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, len),
        RangeRequest::Part(a, b) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, a, b + 1)
        }
        RangeRequest::Unsatisfiable => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return (StatusCode::RANGE_NOT_SATISFIABLE, headers, Body::empty()).into_response();
        }
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if method == Method::HEAD {
        return (status, headers, Body::empty()).into_response();
    }
    // usize conversion is exact: start/end are within `data`.
    let slice = data.slice(start as usize..end as usize);
    let total = slice.len();
    let full = status == StatusCode::OK;
    let chunks: Vec<Bytes> = (0..total)
        .step_by(CHUNK)
        .map(|i| slice.slice(i..(i + CHUNK).min(total)))
        .collect();
    let n_chunks = chunks.len();
    let counter = server.clone();
    let stop = server.inner.stop.clone().cancelled_owned();
    let stream =
        futures_util::stream::iter(chunks.into_iter().enumerate()).map(move |(i, chunk)| {
            let n = chunk.len() as u64;
            let last = full && i + 1 == n_chunks;
            counter.count(client, &key, |s| {
                s.bytes += n;
                if last {
                    s.complete += 1;
                }
            });
            Ok::<_, Infallible>(chunk)
        });
    // When the server stops, a body still being sent ends short: the connection closes even if
    // the client stopped reading (a stalled plug), instead of keeping the server alive.
    let stream = stream.take_until(stop);
    (status, headers, Body::from_stream(stream)).into_response()
}
