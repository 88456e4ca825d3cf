//! A KLAP client over [`super::http`]'s HTTP/1.1 (one kept-alive connection per device,
//! replaced when the device closes it; sizes capped, every call under a timeout). The crypto is
//! [`crate::protocol::klap`]; this file only moves bytes and keeps the session.
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
use tokio::time::{Instant, timeout};

use super::http::{HttpConn, HttpReply};
use super::tls::{ConnectError, Scheme};
use crate::protocol::klap::{
    self, AuthVersion, CredentialSource, KlapError, SEED_LEN, SESSION_COOKIE, Session,
    TIMEOUT_COOKIE,
};

pub use super::http::MAX_BODY;

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
    /// The kept HTTP connection.
    http: HttpConn,
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

impl KlapClient {
    pub fn new(cfg: KlapConfig) -> Self {
        KlapClient {
            http: HttpConn::new(cfg.addr, cfg.scheme),
            cfg,
            live: None,
            source: None,
            handshakes: 0,
        }
    }

    /// Completed handshakes so far (a kept session means this stays at 1).
    pub fn handshakes(&self) -> u64 {
        self.handshakes
    }

    /// TCP connections opened so far (1 while the device keeps the connection alive).
    pub fn connects(&self) -> u64 {
        self.http.connects()
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
        let r = post(
            &mut self.http,
            self.cfg.timeout,
            KlapStage::Request,
            &klap::request_path(seq),
            live.cookie.as_deref(),
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
        live.session
            .open_owned(seq, r.body)
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
        post(&mut self.http, self.cfg.timeout, stage, path, cookie, body).await
    }
}

/// One POST over `http` under `after`.
async fn post(
    http: &mut HttpConn,
    after: Duration,
    stage: KlapStage,
    path: &str,
    cookie: Option<&str>,
    body: &[u8],
) -> Result<HttpReply, KlapNetError> {
    http.open(after).await.map_err(connect_error)?;
    timeout(after, http.post(path, OCTETS, cookie, body))
        .await
        .map_err(|_| KlapNetError::Timeout { stage, after })?
        .map_err(|msg| KlapNetError::Io { stage, msg })
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

const OCTETS: &str = "application/octet-stream";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials::new("me@example.com", "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
