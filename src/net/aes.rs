//! An AES "securePassthrough" client (older SMART firmware, `encrypt_type: AES`) over the same
//! bounded, kept-alive HTTP/1.1 as [`super::klap`] ([`super::http`]); the crypto is
//! [`crate::protocol::aes_passthrough`].
//!
//! One RSA-1024 key for the whole process ([`client_key`]): made once, on the first handshake,
//! on a blocking thread (it takes tens of ms of CPU), and then offered to every device —
//! python-kasa too keeps one key per transport and reuses it (`aes_keys` in its config).
//!
//! `handshake` (RSA key exchange, `TP_SESSIONID` and `TIMEOUT` cookies) → `login_device`
//! (the account, or blank when none is given; then the publicly known default TAPO setup
//! credentials, after a fresh handshake, as python-kasa does) → `securePassthrough` requests
//! on `/app?token=…`. A session the device calls expired (HTTP 403, `error_code` 9999 or
//! -40401) gets one fresh handshake and login and one retry. Never logs a password.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::time::{Instant, timeout};

use super::http::{HttpConn, HttpReply};
use super::klap::Credentials;
use crate::protocol::aes_passthrough::{self as aes, AesError, AesSession, KeyPair};
use crate::protocol::klap::{self as klap_proto, DEFAULT_CREDENTIALS, SESSION_COOKIE};

/// Error codes that mean "session gone" (python-kasa `SESSION_TIMEOUT_ERROR`, `SESSION_EXPIRED`).
const SESSION_CODES: [i64; 2] = [9999, -40401];

/// Which step of the exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AesStage {
    Handshake,
    Login,
    Request,
}

impl std::fmt::Display for AesStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AesStage::Handshake => "handshake",
            AesStage::Login => "login",
            AesStage::Request => "request",
        })
    }
}

/// An AES-transport failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AesNetError {
    #[error("authentication failed: the device does not accept the account's credentials")]
    AuthFailed,
    #[error("the device needs the TP-Link account's credentials")]
    NeedsCredentials,
    #[error("session expired and a fresh handshake did not help")]
    SessionExpired,
    #[error("reply does not decrypt: {0}")]
    BadCiphertext(AesError),
    #[error("{stage} timed out after {after:?}")]
    Timeout { stage: AesStage, after: Duration },
    #[error("{stage}: HTTP {status}")]
    Http { stage: AesStage, status: u16 },
    #[error("{stage}: {msg}")]
    Io { stage: AesStage, msg: String },
    #[error("{stage}: device error_code {code}")]
    Device { stage: AesStage, code: i64 },
    #[error("{stage}: bad reply: {msg}")]
    BadReply { stage: AesStage, msg: String },
}

/// How to reach one device.
#[derive(Debug, Clone)]
pub struct AesConfig {
    pub addr: SocketAddr,
    pub account: Option<Credentials>,
    /// Login version 2 (`password2`), from the discovery reply's `lv`.
    pub login_v2: bool,
    pub timeout: Duration,
}

impl AesConfig {
    pub fn new(addr: SocketAddr, account: Option<Credentials>, login_v2: bool) -> Self {
        AesConfig {
            addr,
            account,
            login_v2,
            timeout: Duration::from_secs(5),
        }
    }
}

struct Live {
    session: AesSession,
    cookie: Option<String>,
    /// `/app?token=…`.
    path: String,
    renew_at: Instant,
}

/// The process's RSA key and the `handshake` body offering it.
pub struct ClientKey {
    pair: KeyPair,
    pem: String,
    body: Vec<u8>,
}

impl ClientKey {
    /// The public key as sent (SPKI PEM).
    pub fn public_pem(&self) -> &str {
        &self.pem
    }
}

static KEY: tokio::sync::OnceCell<ClientKey> = tokio::sync::OnceCell::const_new();

/// The process's RSA key, made on the first call on a blocking thread (never on the async
/// executor: RSA key generation takes tens of ms); callers meanwhile wait for that one key.
/// A failure is returned and the next call tries again.
pub async fn client_key() -> Result<&'static ClientKey, AesError> {
    KEY.get_or_try_init(|| async {
        let pair = tokio::task::spawn_blocking(KeyPair::generate)
            .await
            .map_err(|e| AesError::KeyGen(format!("key task: {e}")))??;
        let pem = pair.public_pem()?;
        Ok(ClientKey {
            body: aes::handshake_body(&pem),
            pem,
            pair,
        })
    })
    .await
}

/// An AES client for one device; keeps one session (and the connection it runs on).
pub struct AesClient {
    cfg: AesConfig,
    http: HttpConn,
    live: Option<Live>,
    handshakes: u64,
}

impl std::fmt::Debug for AesClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesClient")
            .field("addr", &self.cfg.addr)
            .field("session", &self.live.is_some())
            .field("handshakes", &self.handshakes)
            .finish()
    }
}

/// One POST under `after`; a 403 is an expired session, any other status but 200 an error.
async fn post(
    http: &mut HttpConn,
    after: Duration,
    stage: AesStage,
    path: &str,
    cookie: Option<&str>,
    body: &[u8],
) -> Result<HttpReply, AesNetError> {
    http.open(after).await.map_err(|e| AesNetError::Io {
        stage,
        msg: e.to_string(),
    })?;
    let r = timeout(after, http.post(path, "application/json", cookie, body))
        .await
        .map_err(|_| AesNetError::Timeout { stage, after })?
        .map_err(|msg| AesNetError::Io { stage, msg })?;
    match r.status {
        200 => Ok(r),
        403 => Err(AesNetError::SessionExpired),
        status => Err(AesNetError::Http { stage, status }),
    }
}

fn json_of(stage: AesStage, r: &HttpReply) -> Result<Value, AesNetError> {
    serde_json::from_slice(&r.body).map_err(|e| AesNetError::BadReply {
        stage,
        msg: format!("not JSON: {e}"),
    })
}

impl AesClient {
    pub fn new(cfg: AesConfig) -> Self {
        AesClient {
            http: HttpConn::new(cfg.addr, super::tls::Scheme::Http),
            cfg,
            live: None,
            handshakes: 0,
        }
    }

    /// RSA handshakes so far.
    pub fn handshakes(&self) -> u64 {
        self.handshakes
    }

    /// TCP connections opened so far (1 while the device keeps the connection alive).
    pub fn connects(&self) -> u64 {
        self.http.connects()
    }

    /// The RSA key exchange; returns the session and its cookie.
    async fn key_exchange(&mut self) -> Result<(AesSession, Option<String>, u64), AesNetError> {
        let stage = AesStage::Handshake;
        let kp = client_key().await.map_err(|e| AesNetError::Io {
            stage,
            msg: e.to_string(),
        })?;
        let r = post(
            &mut self.http,
            self.cfg.timeout,
            stage,
            "/app",
            None,
            &kp.body,
        )
        .await?;
        let reply = json_of(stage, &r)?;
        let key = aes::handshake_key(&reply).map_err(|e| match e {
            AesError::Device(code) => AesNetError::Device { stage, code },
            other => AesNetError::BadReply {
                stage,
                msg: other.to_string(),
            },
        })?;
        let session = kp
            .pair
            .open_handshake_key(key)
            .map_err(AesNetError::BadCiphertext)?;
        let cookies = klap_proto::parse_set_cookies(r.set_cookies.iter().map(String::as_str));
        let cookie = cookies
            .iter()
            .find(|(n, _)| n == SESSION_COOKIE || n == "SESSIONID")
            .map(|(_, v)| v.clone());
        let lifetime = klap_proto::session_secs(
            cookies
                .iter()
                .find(|(n, _)| n == klap_proto::TIMEOUT_COOKIE)
                .map(|(_, v)| v.as_str()),
        );
        self.handshakes += 1;
        Ok((session, cookie, lifetime))
    }

    async fn try_login(
        &mut self,
        session: &AesSession,
        cookie: Option<&str>,
        user: &str,
        pw: &str,
    ) -> Result<Result<String, i64>, AesNetError> {
        let stage = AesStage::Login;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let req = aes::login_request(self.cfg.login_v2, user, pw, now_ms);
        let body = session.wrap_body(req.to_string().as_bytes());
        let r = post(
            &mut self.http,
            self.cfg.timeout,
            stage,
            "/app",
            cookie,
            &body,
        )
        .await?;
        let reply = json_of(stage, &r)?;
        // A refusal may come as the outer error_code or inside the encrypted reply.
        let inner = match session.unwrap_reply(&reply) {
            Ok(v) => v,
            Err(AesError::Device(code)) => return Ok(Err(code)),
            Err(e @ AesError::BadCiphertext) => return Err(AesNetError::BadCiphertext(e)),
            Err(other) => {
                return Err(AesNetError::BadReply {
                    stage,
                    msg: other.to_string(),
                });
            }
        };
        match aes::login_token(&inner) {
            Ok(t) => Ok(Ok(t.to_owned())),
            Err(AesError::Device(code)) => Ok(Err(code)),
            Err(e) => Err(AesNetError::BadReply {
                stage,
                msg: e.to_string(),
            }),
        }
    }

    /// Handshake and login; keeps the session.
    pub async fn connect(&mut self) -> Result<(), AesNetError> {
        self.live = None;
        let (user, pw) = self
            .cfg
            .account
            .as_ref()
            .map_or((String::new(), String::new()), |c| {
                (c.username.clone(), c.password.clone())
            });
        let mut tries = vec![(user, pw)];
        if let Some((_, u, p)) = DEFAULT_CREDENTIALS.iter().find(|(n, _, _)| *n == "TAPO") {
            tries.push(((*u).to_owned(), (*p).to_owned()));
        }
        for (i, (u, p)) in tries.iter().enumerate() {
            // After a refused login the device wants a fresh handshake.
            let (session, cookie, lifetime) = self.key_exchange().await?;
            match self.try_login(&session, cookie.as_deref(), u, p).await? {
                Ok(token) => {
                    tracing::debug!(addr = %self.cfg.addr, attempt = i, "AES session established");
                    self.live = Some(Live {
                        session,
                        cookie,
                        path: format!("/app?token={token}"),
                        renew_at: Instant::now()
                            + Duration::from_secs(klap_proto::usable_secs(lifetime)),
                    });
                    return Ok(());
                }
                Err(aes::LOGIN_ERROR) => continue,
                Err(code) => {
                    return Err(AesNetError::Device {
                        stage: AesStage::Login,
                        code,
                    });
                }
            }
        }
        Err(if self.cfg.account.is_some() {
            AesNetError::AuthFailed
        } else {
            AesNetError::NeedsCredentials
        })
    }

    /// One JSON-RPC request through `securePassthrough`; the inner reply.
    pub async fn query(&mut self, request: &Value) -> Result<Value, AesNetError> {
        let reply = self.request(request.to_string().as_bytes()).await?;
        serde_json::from_slice(&reply).map_err(|_| AesNetError::BadReply {
            stage: AesStage::Request,
            msg: "passthrough payload is not JSON".into(),
        })
    }

    /// One request (JSON text) through `securePassthrough`; the decrypted inner reply. Makes
    /// the session first when there is none or it is due for renewal; a session the device
    /// calls expired gets one fresh handshake and login and one retry.
    pub async fn request(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, AesNetError> {
        let due = self
            .live
            .as_ref()
            .is_none_or(|l| Instant::now() >= l.renew_at);
        if due {
            self.connect().await?;
        }
        match self.request_once(plaintext).await {
            Err(AesNetError::SessionExpired) => {
                self.connect().await?;
                self.request_once(plaintext).await
            }
            other => other,
        }
    }

    /// One `securePassthrough` of `plaintext`; the decrypted inner reply.
    async fn request_once(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, AesNetError> {
        let stage = AesStage::Request;
        let Some(live) = self.live.as_ref() else {
            return Err(AesNetError::SessionExpired);
        };
        let wire = live.session.wrap_body(plaintext);
        let res = post(
            &mut self.http,
            self.cfg.timeout,
            stage,
            &live.path,
            live.cookie.as_deref(),
            &wire,
        )
        .await;
        let r = match res {
            Err(AesNetError::SessionExpired) => {
                self.live = None;
                return Err(AesNetError::SessionExpired);
            }
            other => other?,
        };
        let live = self.live.as_ref().ok_or(AesNetError::SessionExpired)?;
        match live.session.open_body(&r.body) {
            Ok(pt) => Ok(pt),
            Err(AesError::Device(code)) if SESSION_CODES.contains(&code) => {
                self.live = None;
                Err(AesNetError::SessionExpired)
            }
            Err(AesError::Device(code)) => Err(AesNetError::Device { stage, code }),
            Err(e @ AesError::BadCiphertext) => Err(AesNetError::BadCiphertext(e)),
            Err(other) => Err(AesNetError::BadReply {
                stage,
                msg: other.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A device that records the `key` of each handshake it is offered and refuses it
    /// (`error_code` -1010): what a client sends, nothing more.
    async fn recording_device() -> (SocketAddr, tokio::sync::mpsc::Receiver<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Head, then as many body bytes as it declares (bounded by the chunk reads).
            for _ in 0..64 {
                let Ok(n) = s.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() < len {
                    continue;
                }
                let v: Value = serde_json::from_str(body).expect("JSON handshake");
                let key = v["params"]["key"].as_str().expect("a key").to_owned();
                let _ = tx.send(key).await;
                let reply = r#"{"error_code":-1010}"#;
                let r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = s.write_all(r.as_bytes()).await;
                return;
            }
        });
        (addr, rx)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_device_is_offered_the_processs_one_rsa_key() {
        let mut keys = Vec::new();
        for _ in 0..2 {
            let (addr, mut rx) = recording_device().await;
            let mut c = AesClient::new(AesConfig {
                timeout: Duration::from_secs(10),
                ..AesConfig::new(addr, None, false)
            });
            let e = c.connect().await.expect_err("refused");
            assert_eq!(
                e,
                AesNetError::Device {
                    stage: AesStage::Handshake,
                    code: -1010
                }
            );
            keys.push(rx.recv().await.expect("a handshake was sent"));
        }
        assert_eq!(keys[0], keys[1], "one key for both devices");
        let want = client_key().await.expect("key").public_pem().to_owned();
        assert_eq!(keys[0], want);
        // An RSA-1024 public key in python-kasa's PEM form (the base64 on one line).
        use rsa::pkcs8::DecodePublicKey;
        use rsa::traits::PublicKeyParts;
        let lines: Vec<&str> = want.lines().collect();
        assert_eq!(lines.len(), 3, "{want}");
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, lines[1])
            .expect("base64");
        let public = rsa::RsaPublicKey::from_public_key_der(&der).expect("SPKI");
        assert_eq!(public.n().bits(), aes::RSA_BITS);
        assert_eq!(public.e(), &rsa::BigUint::from(65_537u32));
    }
}
