//! Simulated KLAP and AES devices: an HTTP server (axum) on `PLUG_IP:KLAP_PORT` for every
//! newer-protocol plug of a [`Fleet`], answering from the plug's own simulated state. The
//! transport follows the profile's discovery template (`mgt_encrypt_schm.encrypt_type`).
//!
//! - AES profiles (P110 older firmware): `POST /app` `handshake` (RSA PKCS#1 v1.5 key exchange),
//!   `securePassthrough` with `login_device` (v1 or, with `lv: 2`, v2 params; anything else is
//!   -1501), then requests on `/app?token=…`; an expired session answers `error_code` 9999.
//!
//! - `IOT.*` profiles (HS100(UK) hw 4.1): KLAP v1 (v2 when the discovery template says `lv >= 2`
//!   or `new_klap: 1`), the same JSON as port 9999 inside (`system.get_sysinfo`,
//!   `emeter.get_realtime`, `system.set_relay_state`, …) answered by the plug's dispatcher.
//! - `SMART.*` profiles (KP125M): KLAP v2 with JSON-RPC inside: `get_device_info` (nickname and
//!   ssid base64), `get_energy_usage` (mW, Wh), `get_current_power` (W), `get_emeter_data`
//!   (mV/mA/mW/Wh), `set_device_info {device_on}`, `multipleRequest`, and the `component_nego`
//!   (device, energy_monitoring), `get_connect_cloud_state` and `get_emeter_vgain_igain` that
//!   python-kasa asks for; the readings come from the plug's meter (`emeter.get_realtime`,
//!   `get_daystat`, `get_monthstat`). A SMART strip (P304M, P300) answers
//!   `get_child_device_list`, `get_child_device_component_list` and `control_child` from its
//!   outlets (`sim::smart_children`); its parent has no relay and no meter of its own.
//!
//! The device holds one account (`--username`/`--password`, defaults [`DEFAULT_USERNAME`] /
//! [`DEFAULT_PASSWORD`]). Sessions: `TP_SESSIONID` + `TIMEOUT=86400` cookies set by handshake1;
//! at most [`MAX_SESSIONS`] kept (the oldest is dropped, as a real device ends a session when
//! another client handshakes); an unknown or dropped session gets 403.
//!
//! Faults (`--klap-fault IP=KIND`, [`KlapFault`]): `wrong-credentials` (the device is bound to
//! another account, so no proof matches), `session-expiry` (every session ends with a 403 after
//! [`EXPIRY_REQUESTS`] requests), `handshake-hang` (handshake1 is read and never answered),
//! `garbage-ciphertext` (requests are answered 200 with bytes that neither verify nor decrypt),
//! for HTTPS plugs `tls-hang` (TCP is accepted, the TLS handshake never answered), and for
//! SMART strips a hostile `get_child_device_list` (`sim::smart_children`):
//! `children-endless` (every page holds the first child again and announces 16),
//! `children-10000` (one page of 10,000 children), `children-garbled` (children without
//! `device_on`, with `device_on: "on"`, with a numeric `device_id`).
//!
//! HTTPS: a profile whose discovery template says `is_support_https: true` is served over TLS
//! ([`super::tls`], the test-only certificate in `assets/tls/`); everything above, faults
//! included, runs unchanged inside it.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::SimError;
use super::load::{self, now_unix};
use super::plug::PlugShared;
use super::{Fleet, server};
use crate::protocol::aes_passthrough::{self as aes, AesSession};
use crate::protocol::klap::{
    self, AuthHash, AuthVersion, SEED_LEN, SESSION_COOKIE, Session, TIMEOUT_COOKIE,
};

/// The simulated devices' account unless `--username` is given.
pub const DEFAULT_USERNAME: &str = "sim@plugfleet.invalid";
/// The simulated devices' password unless `--password` is given.
pub const DEFAULT_PASSWORD: &str = "plugfleet-sim";
/// Sessions a device keeps at once.
pub const MAX_SESSIONS: usize = 4;
/// Requests a session serves under `session-expiry` before the 403.
pub const EXPIRY_REQUESTS: u32 = 2;
/// Session lifetime announced in the `TIMEOUT` cookie by default.
pub const SESSION_SECS: u64 = 86_400;
/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// A KLAP misbehaviour of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KlapFault {
    WrongCredentials,
    SessionExpiry,
    HandshakeHang,
    GarbageCiphertext,
    /// HTTPS plugs only: TCP is accepted and the TLS handshake never completes.
    TlsHang,
    /// A strip's child list pages on without end (the first child again and again).
    ChildrenEndless,
    /// A strip's child list holds 10,000 children.
    Children10000,
    /// A strip's children miss fields or have the wrong types.
    ChildrenGarbled,
}

impl KlapFault {
    pub const ALL: [KlapFault; 8] = [
        KlapFault::WrongCredentials,
        KlapFault::SessionExpiry,
        KlapFault::HandshakeHang,
        KlapFault::GarbageCiphertext,
        KlapFault::TlsHang,
        KlapFault::ChildrenEndless,
        KlapFault::Children10000,
        KlapFault::ChildrenGarbled,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            KlapFault::WrongCredentials => "wrong-credentials",
            KlapFault::SessionExpiry => "session-expiry",
            KlapFault::HandshakeHang => "handshake-hang",
            KlapFault::GarbageCiphertext => "garbage-ciphertext",
            KlapFault::TlsHang => "tls-hang",
            KlapFault::ChildrenEndless => "children-endless",
            KlapFault::Children10000 => "children-10000",
            KlapFault::ChildrenGarbled => "children-garbled",
        }
    }
}

impl std::fmt::Display for KlapFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for KlapFault {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for KlapFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        KlapFault::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown KLAP fault `{}` (known: {})",
                    s.chars().take(40).collect::<String>(),
                    KlapFault::ALL.map(|f| f.name()).join(", ")
                )
            })
    }
}

/// What the KLAP side of a fleet does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlapSpec {
    /// HTTP port of every newer-protocol plug (0 = one free port for all).
    pub port: u16,
    pub username: String,
    pub password: String,
    pub faults: Vec<(Ipv4Addr, KlapFault)>,
    /// Session lifetime announced in the `TIMEOUT` cookie (seconds).
    pub session_secs: u64,
}

impl Default for KlapSpec {
    fn default() -> Self {
        KlapSpec {
            port: 0,
            username: DEFAULT_USERNAME.into(),
            password: DEFAULT_PASSWORD.into(),
            faults: Vec::new(),
            session_secs: SESSION_SECS,
        }
    }
}

/// The payload dialect inside KLAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Port-9999 JSON.
    Iot,
    /// JSON-RPC (`{"method":…}`).
    Smart,
}

/// One simulated KLAP device as seen from outside.
#[derive(Debug, Clone, Serialize)]
pub struct KlapDeviceInfo {
    pub ip: Ipv4Addr,
    pub http_port: u16,
    pub transport: Transport,
    /// Served over TLS (the discovery template's `is_support_https`).
    pub https: bool,
    /// AES transport: `login_device` takes `password2` (discovery `lv: 2`).
    pub login_v2: bool,
    pub dialect: Dialect,
    /// KLAP auth-hash version, 1 or 2.
    pub klap_version: u8,
    pub faults: Vec<KlapFault>,
    #[serde(skip)]
    dev: Arc<Device>,
}

impl KlapDeviceInfo {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.http_port))
    }

    pub fn version(&self) -> AuthVersion {
        self.dev.version
    }

    /// Completed handshakes (handshake2 accepted).
    pub fn handshakes(&self) -> u64 {
        self.dev.handshakes.load(Ordering::Relaxed)
    }

    /// Requests answered with a reply.
    pub fn requests(&self) -> u64 {
        self.dev.requests.load(Ordering::Relaxed)
    }

    /// HTTPS plugs: TLS handshakes completed (one per connection; 0 over plain HTTP).
    pub fn tls_handshakes(&self) -> u64 {
        self.dev.tls_handshakes.load(Ordering::Relaxed)
    }
}

/// The KLAP servers of a fleet; dropping it stops them.
#[derive(Debug)]
pub struct KlapFleet {
    devices: Vec<KlapDeviceInfo>,
    port: u16,
    token: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl KlapFleet {
    pub fn devices(&self) -> &[KlapDeviceInfo] {
        &self.devices
    }

    pub fn device(&self, ip: Ipv4Addr) -> Option<&KlapDeviceInfo> {
        self.devices.iter().find(|d| d.ip == ip)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the servers and waits for them (a few seconds at most).
    pub async fn shutdown(mut self) {
        self.token.cancel();
        let tasks = std::mem::take(&mut self.tasks);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    }
}

impl Drop for KlapFleet {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

enum SessState {
    /// handshake1 answered; waiting for handshake2.
    Pending {
        local: [u8; SEED_LEN],
        remote: [u8; SEED_LEN],
    },
    Live {
        session: Session,
        requests: u32,
    },
    /// AES transport: key exchanged; `token` once logged in.
    Aes {
        session: AesSession,
        token: Option<String>,
        requests: u32,
    },
}

struct Device {
    plug: Arc<PlugShared>,
    dialect: Dialect,
    version: AuthVersion,
    auth: AuthHash,
    /// The `login_device` params the device accepts (AES transport).
    aes_login: Value,
    faults: Vec<KlapFault>,
    session_secs: u64,
    /// Cookie → (age stamp, state).
    sessions: Mutex<HashMap<String, (u64, SessState)>>,
    stamp: AtomicU64,
    handshakes: AtomicU64,
    requests: AtomicU64,
    tls_handshakes: Arc<AtomicU64>,
    token: CancellationToken,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("ip", &self.plug.id.ip)
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl Device {
    fn has(&self, f: KlapFault) -> bool {
        self.faults.contains(&f)
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, SessState)>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The transport of a newer-protocol profile, from its discovery template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Klap,
    Aes,
}

fn transport_of(plug: &PlugShared) -> (Transport, bool) {
    let schm = plug
        .id
        .profile
        .discovery
        .as_ref()
        .and_then(|d| d.get("mgt_encrypt_schm"));
    let ty = schm
        .and_then(|s| s.get("encrypt_type"))
        .and_then(Value::as_str)
        .unwrap_or("KLAP");
    let lv2 = schm.and_then(|s| s.get("lv")).and_then(Value::as_i64) == Some(2);
    if ty.eq_ignore_ascii_case("AES") {
        (Transport::Aes, lv2)
    } else {
        (Transport::Klap, lv2)
    }
}

/// The discovery template says `is_support_https: true`.
fn https_of(plug: &PlugShared) -> bool {
    plug.id
        .profile
        .discovery
        .as_ref()
        .and_then(|d| d.get("mgt_encrypt_schm"))
        .and_then(|s| s.get("is_support_https"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The dialect and auth version of a newer-protocol profile, from its discovery template.
fn dialect_of(plug: &PlugShared) -> (Dialect, AuthVersion) {
    let d = plug.id.profile.discovery.as_ref();
    let ty = d
        .and_then(|d| d.get("device_type"))
        .and_then(Value::as_str)
        .unwrap_or("IOT.SMARTPLUGSWITCH");
    let schm = d.and_then(|d| d.get("mgt_encrypt_schm"));
    let lv = schm.and_then(|s| s.get("lv")).and_then(Value::as_i64);
    let nk = schm.and_then(|s| s.get("new_klap")).and_then(Value::as_i64);
    let dialect = if ty.starts_with("SMART.") {
        Dialect::Smart
    } else {
        Dialect::Iot
    };
    (dialect, AuthVersion::from_discovery(ty, lv, nk))
}

/// Starts a KLAP server for every newer-protocol plug of `fleet`. Must run inside a runtime.
pub async fn serve(fleet: &Fleet, spec: &KlapSpec) -> Result<KlapFleet, SimError> {
    let token = fleet.token().child_token();
    // A discovery-only device (a camera) serves no KLAP/AES.
    let newer: Vec<_> = fleet
        .plugs()
        .iter()
        .filter(|p| !p.is_legacy() && !p.shared.id.profile.is_discovery_only())
        .collect();
    for (ip, f) in &spec.faults {
        let Some(p) = newer.iter().find(|p| p.ip == *ip) else {
            return Err(SimError::Invalid(format!(
                "KLAP fault {f} is for {ip}, which is not a newer-protocol plug of the fleet"
            )));
        };
        if *f == KlapFault::TlsHang && !https_of(&p.shared) {
            return Err(SimError::Invalid(format!(
                "KLAP fault {f} is for {ip}, which is not an HTTPS plug"
            )));
        }
    }
    let acceptor = if newer.iter().any(|p| https_of(&p.shared)) {
        Some(super::tls::acceptor()?)
    } else {
        None
    };
    let mut port = spec.port;
    let mut listeners = Vec::with_capacity(newer.len());
    for p in &newer {
        let addr = SocketAddr::from((p.ip, port));
        let l = server::bind_tcp(addr)?;
        if port == 0 {
            port = l
                .local_addr()
                .map_err(|e| SimError::Io {
                    addr,
                    proto: "tcp",
                    msg: e.to_string(),
                })?
                .port();
        }
        listeners.push(l);
    }
    let mut devices = Vec::with_capacity(newer.len());
    let mut tasks = Vec::with_capacity(newer.len());
    for (p, listener) in newer.into_iter().zip(listeners) {
        let plug = p.shared.clone();
        // The discovery reply now names the port this server listens on.
        plug.http_port.store(port, Ordering::Relaxed);
        let (dialect, version) = dialect_of(&plug);
        let mut faults: Vec<KlapFault> = spec
            .faults
            .iter()
            .filter(|(a, _)| *a == p.ip)
            .map(|(_, f)| *f)
            .collect();
        faults.sort();
        faults.dedup();
        let (user, pw) = if faults.contains(&KlapFault::WrongCredentials) {
            ("someone-else@plugfleet.invalid", "not-yours")
        } else {
            (spec.username.as_str(), spec.password.as_str())
        };
        let auth = AuthHash::new(version, user, pw);
        let (transport, login_v2) = transport_of(&plug);
        let aes_login = aes::login_params(login_v2, user, pw);
        let dev = Arc::new(Device {
            plug,
            dialect,
            version,
            auth,
            aes_login,
            faults: faults.clone(),
            session_secs: spec.session_secs,
            sessions: Mutex::new(HashMap::new()),
            stamp: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            tls_handshakes: Arc::new(AtomicU64::new(0)),
            token: token.clone(),
        });
        let app = match transport {
            Transport::Klap => Router::new()
                .route("/app/handshake1", post(handshake1))
                .route("/app/handshake2", post(handshake2))
                .route("/app/request", post(request)),
            Transport::Aes => Router::new().route("/app", post(aes_app)),
        }
        .with_state(dev.clone());
        let stop = token.clone();
        let https = https_of(&dev.plug);
        let tls = match (&acceptor, faults.contains(&KlapFault::TlsHang)) {
            (_, true) => Some(super::tls::Mode::Hang),
            (Some(a), false) if https => Some(super::tls::Mode::Tls(a.clone())),
            _ => None,
        };
        let tls_handshakes = dev.tls_handshakes.clone();
        tasks.push(tokio::spawn(async move {
            if let Some(mode) = tls {
                super::tls::serve(listener, app, mode, tls_handshakes, stop).await;
                return;
            }
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!("simulated KLAP server ended: {e}");
            }
        }));
        devices.push(KlapDeviceInfo {
            ip: p.ip,
            http_port: port,
            transport,
            https,
            login_v2,
            dialect,
            klap_version: match version {
                AuthVersion::V1 => 1,
                AuthVersion::V2 => 2,
            },
            faults,
            dev,
        });
    }
    Ok(KlapFleet {
        devices,
        port,
        token,
        tasks,
    })
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        // No entropy source: still distinct per call, which is all the simulator needs.
        let t = now_unix().to_bits();
        for (i, x) in b.iter_mut().enumerate() {
            *x = (load::mix(t ^ i as u64) & 0xFF) as u8;
        }
    }
    b
}

/// The session cookie of a request. A request that echoes the `TIMEOUT` cookie has none (real
/// devices misbehave on it, so the simulated one refuses it).
fn cookie_of(headers: &HeaderMap) -> Option<String> {
    let pairs: Vec<(String, String)> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            let (n, v) = kv.split_once('=')?;
            Some((n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    if pairs.iter().any(|(n, _)| n == TIMEOUT_COOKIE) {
        return None;
    }
    pairs
        .into_iter()
        .find_map(|(n, v)| (n == SESSION_COOKIE).then_some(v))
}

fn status(code: StatusCode) -> Response {
    code.into_response()
}

async fn handshake1(State(dev): State<Arc<Device>>, body: Bytes) -> Response {
    if dev.has(KlapFault::HandshakeHang) || dev.plug.hanging.load(Ordering::Relaxed) {
        dev.token.cancelled().await;
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    let Ok(local) = <[u8; SEED_LEN]>::try_from(body.as_ref()) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let remote: [u8; SEED_LEN] = random();
    let cookie = hex::encode_upper(random::<16>());
    let proof = klap::handshake1_proof(dev.version, &local, &remote, &dev.auth);
    {
        let mut s = dev.sessions();
        while s.len() >= MAX_SESSIONS {
            let oldest = s
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => s.remove(&k),
                None => break,
            };
        }
        let t = dev.stamp.fetch_add(1, Ordering::Relaxed);
        s.insert(cookie.clone(), (t, SessState::Pending { local, remote }));
    }
    let mut out = remote.to_vec();
    out.extend_from_slice(&proof);
    (
        [(
            header::SET_COOKIE,
            format!(
                "{SESSION_COOKIE}={cookie};{TIMEOUT_COOKIE}={}",
                dev.session_secs
            ),
        )],
        out,
    )
        .into_response()
}

async fn handshake2(State(dev): State<Arc<Device>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(cookie) = cookie_of(&headers) else {
        return status(StatusCode::FORBIDDEN);
    };
    let mut s = dev.sessions();
    let Some((_, SessState::Pending { local, remote })) = s.get(&cookie) else {
        return status(StatusCode::FORBIDDEN);
    };
    let (local, remote) = (*local, *remote);
    if body.as_ref() != klap::handshake2_proof(dev.version, &local, &remote, &dev.auth) {
        s.remove(&cookie);
        return status(StatusCode::FORBIDDEN);
    }
    let t = dev.stamp.fetch_add(1, Ordering::Relaxed);
    s.insert(
        cookie,
        (
            t,
            SessState::Live {
                session: Session::new(&local, &remote, &dev.auth),
                requests: 0,
            },
        ),
    );
    dev.handshakes.fetch_add(1, Ordering::Relaxed);
    status(StatusCode::OK)
}

async fn request(
    State(dev): State<Arc<Device>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > MAX_BODY {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let Some(seq) = query.as_deref().and_then(klap::parse_seq) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let Some(cookie) = cookie_of(&headers) else {
        return status(StatusCode::FORBIDDEN);
    };
    let session = {
        let mut s = dev.sessions();
        let Some((_, SessState::Live { session, requests })) = s.get_mut(&cookie) else {
            return status(StatusCode::FORBIDDEN);
        };
        if dev.has(KlapFault::SessionExpiry) && *requests >= EXPIRY_REQUESTS {
            s.remove(&cookie);
            return status(StatusCode::FORBIDDEN);
        }
        *requests += 1;
        session.clone()
    };
    let Ok(plain) = session.open(seq, &body) else {
        return status(StatusCode::BAD_REQUEST);
    };
    if dev.plug.hanging.load(Ordering::Relaxed) {
        dev.token.cancelled().await;
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    if dev.has(KlapFault::GarbageCiphertext) {
        return (StatusCode::OK, random::<80>().to_vec()).into_response();
    }
    let reply = match serde_json::from_slice::<Value>(&plain) {
        Err(_) => match dev.dialect {
            Dialect::Iot => json!({"err_code": -1, "err_msg": "module not support"}),
            Dialect::Smart => json!({"error_code": -1003}),
        },
        Ok(req) => {
            let now = dev.plug.now();
            match dev.dialect {
                Dialect::Iot => dev.plug.respond(&req, now),
                Dialect::Smart => smart_reply(&dev.plug, &dev.faults, &req, now),
            }
        }
    };
    dev.requests.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::OK,
        session.seal(seq, reply.to_string().as_bytes()),
    )
        .into_response()
}

fn aes_err(code: i64) -> Response {
    (StatusCode::OK, json!({"error_code": code}).to_string()).into_response()
}

/// The AES transport's one endpoint: `handshake`, then `securePassthrough` carrying
/// `login_device` and, with `?token=`, the JSON-RPC requests.
async fn aes_app(
    State(dev): State<Arc<Device>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > MAX_BODY {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return aes_err(-1003);
    };
    match req.get("method").and_then(Value::as_str) {
        Some("handshake") => aes_handshake(&dev, &req).await,
        Some("securePassthrough") => {
            let token = query
                .as_deref()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
                .map(str::to_owned);
            aes_passthrough(&dev, &headers, token, &req).await
        }
        _ => aes_err(-1002),
    }
}

async fn aes_handshake(dev: &Arc<Device>, req: &Value) -> Response {
    use rsa::pkcs8::DecodePublicKey;
    if dev.has(KlapFault::HandshakeHang) || dev.plug.hanging.load(Ordering::Relaxed) {
        dev.token.cancelled().await;
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    let Some(pem) = req.pointer("/params/key").and_then(Value::as_str) else {
        return aes_err(-1008);
    };
    // Lenient PEM: python-kasa sends the base64 on one line, which strict RFC 7468 parsers
    // refuse; real devices take it.
    let der: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    let Some(public) = B64
        .decode(der)
        .ok()
        .and_then(|d| rsa::RsaPublicKey::from_public_key_der(&d).ok())
    else {
        return aes_err(-1010);
    };
    let key: [u8; 16] = random();
    let iv: [u8; 16] = random();
    let mut both = key.to_vec();
    both.extend_from_slice(&iv);
    let Ok(ct) = public.encrypt(&mut rsa::rand_core::OsRng, rsa::Pkcs1v15Encrypt, &both) else {
        return aes_err(-1010);
    };
    let cookie = hex::encode_upper(random::<16>());
    {
        let mut s = dev.sessions();
        while s.len() >= MAX_SESSIONS {
            let oldest = s
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => s.remove(&k),
                None => break,
            };
        }
        let t = dev.stamp.fetch_add(1, Ordering::Relaxed);
        let state = SessState::Aes {
            session: AesSession::new(key, iv),
            token: None,
            requests: 0,
        };
        s.insert(cookie.clone(), (t, state));
    }
    let reply = json!({"error_code": 0, "result": {"key": B64.encode(ct)}});
    (
        [(
            header::SET_COOKIE,
            format!(
                "{SESSION_COOKIE}={cookie};{TIMEOUT_COOKIE}={}",
                dev.session_secs
            ),
        )],
        reply.to_string(),
    )
        .into_response()
}

async fn aes_passthrough(
    dev: &Arc<Device>,
    headers: &HeaderMap,
    token: Option<String>,
    req: &Value,
) -> Response {
    let Some(cookie) = cookie_of(headers) else {
        return status(StatusCode::FORBIDDEN);
    };
    let Some(inner) = req.pointer("/params/request").and_then(Value::as_str) else {
        return aes_err(-1008);
    };
    let (session, logged_in) = {
        let mut s = dev.sessions();
        let Some((
            _,
            SessState::Aes {
                session,
                token: held,
                requests,
            },
        )) = s.get_mut(&cookie)
        else {
            return status(StatusCode::FORBIDDEN);
        };
        let logged_in = match (&token, held.as_ref()) {
            (Some(t), Some(h)) if t == h => true,
            (Some(_), _) => return aes_err(9999),
            (None, _) => false,
        };
        if logged_in {
            if dev.has(KlapFault::SessionExpiry) && *requests >= EXPIRY_REQUESTS {
                s.remove(&cookie);
                return aes_err(9999);
            }
            *requests += 1;
        }
        (session.clone(), logged_in)
    };
    let Ok(plain) = session.decrypt(inner) else {
        return aes_err(-1005);
    };
    let Ok(inner_req) = serde_json::from_slice::<Value>(&plain) else {
        return aes_err(-1003);
    };
    let reply = if logged_in {
        if dev.has(KlapFault::GarbageCiphertext) {
            // Not even base64: fails to decrypt every time.
            let junk = format!("%%{}%%", hex::encode(random::<24>()));
            return (
                StatusCode::OK,
                json!({"error_code": 0, "result": {"response": junk}}).to_string(),
            )
                .into_response();
        }
        dev.requests.fetch_add(1, Ordering::Relaxed);
        smart_reply(&dev.plug, &dev.faults, &inner_req, dev.plug.now())
    } else if inner_req.get("method").and_then(Value::as_str) == Some("login_device") {
        let given = inner_req.get("params").cloned().unwrap_or(Value::Null);
        if given == dev.aes_login {
            let t = hex::encode_upper(random::<16>());
            if let Some((_, SessState::Aes { token, .. })) = dev.sessions().get_mut(&cookie) {
                *token = Some(t.clone());
            }
            dev.handshakes.fetch_add(1, Ordering::Relaxed);
            json!({"error_code": 0, "result": {"token": t}})
        } else {
            json!({"error_code": aes::LOGIN_ERROR})
        }
    } else {
        json!({"error_code": 9999})
    };
    let wire = session.encrypt(reply.to_string().as_bytes());
    (
        StatusCode::OK,
        json!({"error_code": 0, "result": {"response": wire}}).to_string(),
    )
        .into_response()
}

/// SMART error codes used here (python-kasa `SmartErrorCode`).
const UNKNOWN_METHOD: i64 = -1002;
const PARAMS_ERROR: i64 = -1008;

/// One JSON-RPC request (possibly `multipleRequest`) answered from the plug's state.
fn smart_reply(plug: &Arc<PlugShared>, faults: &[KlapFault], req: &Value, now: f64) -> Value {
    let method = req.get("method").and_then(Value::as_str).unwrap_or("");
    let params = req.get("params").cloned().unwrap_or(Value::Null);
    if method == "multipleRequest" {
        let Some(list) = params.get("requests").and_then(Value::as_array) else {
            return json!({"error_code": PARAMS_ERROR});
        };
        // Real firmware stops after the first method it fails (python-kasa's smartprotocol.py
        // asks the unanswered ones one by one for that reason, and its fake device does the
        // same): so does this one, the failed method's error being the last response.
        let mut responses: Vec<Value> = Vec::new();
        for r in list.iter().take(32) {
            let m = r.get("method").and_then(Value::as_str).unwrap_or("");
            let p = r.get("params").cloned().unwrap_or(Value::Null);
            let mut one = smart_method(plug, faults, m, &p, now);
            let failed = one.get("error_code").and_then(Value::as_i64) != Some(0);
            if let Some(o) = one.as_object_mut() {
                o.insert("method".into(), json!(m));
            }
            responses.push(one);
            if failed {
                break;
            }
        }
        return json!({"error_code": 0, "result": {"responses": responses}});
    }
    smart_method(plug, faults, method, &params, now)
}

fn iot(plug: &Arc<PlugShared>, module: &str, method: &str, args: Value, now: f64) -> Value {
    let r = plug.respond(&json!({ module: { method: args } }), now);
    r.get(module)
        .and_then(|m| m.get(method))
        .cloned()
        .unwrap_or(Value::Null)
}

fn ok(result: Value) -> Value {
    json!({"error_code": 0, "result": result})
}

fn smart_method(
    plug: &Arc<PlugShared>,
    faults: &[KlapFault],
    method: &str,
    params: &Value,
    now: f64,
) -> Value {
    let strip = plug.id.profile.is_strip();
    match method {
        "get_device_info" => ok(device_info(plug, now)),
        // What the simulated device has: python-kasa asks for this first and then only
        // queries these modules.
        "component_nego" if strip => ok(json!({"component_list": [
            {"id": "device", "ver_code": 2},
            {"id": "control_child", "ver_code": 2},
            {"id": "child_device", "ver_code": 2},
        ]})),
        "component_nego" => ok(json!({"component_list": [
            {"id": "device", "ver_code": 1},
            {"id": "energy_monitoring", "ver_code": 2},
        ]})),
        // A strip: its children, and each child's own methods; the parent has no meter.
        "get_child_device_list" if strip => {
            use super::smart_children::{Hostile, child_list};
            let hostile = faults.iter().find_map(|f| match f {
                KlapFault::ChildrenEndless => Some(Hostile::Endless),
                KlapFault::Children10000 => Some(Hostile::Huge),
                KlapFault::ChildrenGarbled => Some(Hostile::Garbled),
                _ => None,
            });
            child_list(plug, params, hostile, now)
        }
        "control_child" if strip => super::smart_children::control_child(plug, params, now),
        "get_child_device_component_list" if strip => super::smart_children::child_components(plug),
        "get_energy_usage" | "get_current_power" | "get_emeter_data" | "set_device_info"
            if strip =>
        {
            json!({"error_code": UNKNOWN_METHOD})
        }
        "get_connect_cloud_state" => ok(json!({"status": 0})),
        "get_emeter_vgain_igain" => ok(json!({"igain": 10861, "vgain": 118657})),
        "get_energy_usage" => {
            let rt = iot(plug, "emeter", "get_realtime", json!({}), now);
            let day = (now / 86_400.0).floor() as i64;
            let (y, m, d) = load::civil_from_days(day);
            let days = iot(
                plug,
                "emeter",
                "get_daystat",
                json!({"year": y, "month": m}),
                now,
            );
            let months = iot(plug, "emeter", "get_monthstat", json!({"year": y}), now);
            let pick = |list: &Value, key: &str, want: u32| {
                list.get(key)
                    .and_then(Value::as_array)
                    .and_then(|l| {
                        l.iter().find(|e| {
                            e.get(if key == "day_list" { "day" } else { "month" })
                                .and_then(Value::as_u64)
                                == Some(u64::from(want))
                        })
                    })
                    .and_then(|e| e.get("energy_wh"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            };
            let secs_today = now.rem_euclid(86_400.0) as u64;
            let s = secs_today % 86_400;
            ok(json!({
                "current_power": rt.get("power_mw").and_then(Value::as_i64).unwrap_or(0),
                "today_energy": pick(&days, "day_list", d),
                "month_energy": pick(&months, "month_list", m),
                "today_runtime": s / 60,
                "month_runtime": (u64::from(d) - 1) * 1440 + s / 60,
                "local_time": format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
                    s / 3600, (s / 60) % 60, s % 60),
                "electricity_charge": [0, 0, 0],
            }))
        }
        "get_current_power" => {
            let rt = iot(plug, "emeter", "get_realtime", json!({}), now);
            let mw = rt.get("power_mw").and_then(Value::as_i64).unwrap_or(0);
            ok(json!({"current_power": (mw as f64 / 1000.0).round() as i64}))
        }
        "get_emeter_data" => {
            let rt = iot(plug, "emeter", "get_realtime", json!({}), now);
            let g = |k: &str| rt.get(k).and_then(Value::as_i64).unwrap_or(0);
            ok(
                json!({"power_mw": g("power_mw"), "voltage_mv": g("voltage_mv"),
                "current_ma": g("current_ma"), "energy_wh": g("total_wh")}),
            )
        }
        "set_device_info" => match params.get("device_on").and_then(Value::as_bool) {
            Some(on) => {
                iot(
                    plug,
                    "system",
                    "set_relay_state",
                    json!({"state": u8::from(on)}),
                    now,
                );
                ok(json!({}))
            }
            None => json!({"error_code": PARAMS_ERROR}),
        },
        _ => json!({"error_code": UNKNOWN_METHOD}),
    }
}

/// `get_device_info`, shaped on python-kasa's `KP125M(US)_1.0_1.1.3.json` fixture.
fn device_info(plug: &Arc<PlugShared>, now: f64) -> Value {
    let si = iot(plug, "system", "get_sysinfo", json!({}), now);
    let g = |k: &str| si.get(k).cloned().unwrap_or(Value::Null);
    let s = |k: &str| si.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let model = s("model");
    let base = model.split('(').next().unwrap_or("").to_owned();
    let rssi = si.get("rssi").and_then(Value::as_i64).unwrap_or(-60);
    let level = match rssi {
        r if r >= -50 => 3,
        r if r >= -70 => 2,
        _ => 1,
    };
    let mut m = Map::new();
    m.insert("device_id".into(), g("deviceId"));
    m.insert("fw_ver".into(), g("sw_ver"));
    m.insert("hw_ver".into(), g("hw_ver"));
    let ty = plug
        .id
        .profile
        .discovery
        .as_ref()
        .and_then(|d| d.get("device_type"))
        .cloned()
        .unwrap_or_else(|| json!("SMART.KASAPLUG"));
    m.insert("type".into(), ty);
    m.insert("model".into(), json!(base));
    m.insert("mac".into(), json!(s("mac").replace(':', "-")));
    m.insert("hw_id".into(), g("hwId"));
    m.insert("fw_id".into(), json!("00000000000000000000000000000000"));
    m.insert("oem_id".into(), g("oemId"));
    m.insert("ip".into(), json!(plug.id.ip.to_string()));
    m.insert("nickname".into(), json!(B64.encode(s("alias"))));
    m.insert("ssid".into(), json!(B64.encode("plugfleet-sim")));
    // A strip's parent (P304M, P300) has no relay of its own: its outlets have.
    if !plug.id.profile.is_strip() {
        m.insert(
            "device_on".into(),
            json!(si.get("relay_state").and_then(Value::as_i64) == Some(1)),
        );
        m.insert("on_time".into(), g("on_time"));
    }
    m.insert("rssi".into(), json!(rssi));
    m.insert("signal_level".into(), json!(level));
    m.insert("overheated".into(), json!(false));
    m.insert("power_protection_status".into(), json!("normal"));
    m.insert("region".into(), json!("America/Chicago"));
    m.insert("time_diff".into(), json!(-360));
    m.insert("lang".into(), json!("en_US"));
    m.insert("has_set_location_info".into(), json!(true));
    m.insert(
        "latitude".into(),
        json!((plug.id.latitude * 10_000.0) as i64),
    );
    m.insert(
        "longitude".into(),
        json!((plug.id.longitude * 10_000.0) as i64),
    );
    m.insert("specs".into(), json!(""));
    m.insert("auto_off_status".into(), json!("off"));
    m.insert("auto_off_remain_time".into(), json!(0));
    m.insert(
        "default_states".into(),
        json!({"state": {}, "type": "last_states"}),
    );
    Value::Object(m)
}
