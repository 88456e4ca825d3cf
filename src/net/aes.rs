//! An AES "securePassthrough" client (older SMART firmware, `encrypt_type: AES`) over the same
//! bounded HTTP/1.1 as [`super::klap`]; the crypto is [`crate::protocol::aes_passthrough`].
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

use super::klap::{Credentials, post};
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
    token: String,
    renew_at: Instant,
}

/// An AES client for one device; keeps its RSA key and one session.
pub struct AesClient {
    cfg: AesConfig,
    key: Option<KeyPair>,
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

impl AesClient {
    pub fn new(cfg: AesConfig) -> Self {
        AesClient {
            cfg,
            key: None,
            live: None,
            handshakes: 0,
        }
    }

    /// RSA handshakes so far.
    pub fn handshakes(&self) -> u64 {
        self.handshakes
    }

    async fn http(
        &self,
        stage: AesStage,
        path: &str,
        cookie: Option<&str>,
        body: &Value,
    ) -> Result<(Value, Vec<String>), AesNetError> {
        let after = self.cfg.timeout;
        let bytes = body.to_string().into_bytes();
        let r = timeout(
            after,
            post(self.cfg.addr, path, "application/json", cookie, &bytes),
        )
        .await
        .map_err(|_| AesNetError::Timeout { stage, after })?
        .map_err(|msg| AesNetError::Io { stage, msg })?;
        match r.status {
            200 => {}
            403 => return Err(AesNetError::SessionExpired),
            status => return Err(AesNetError::Http { stage, status }),
        }
        let v = serde_json::from_slice(&r.body).map_err(|e| AesNetError::BadReply {
            stage,
            msg: format!("not JSON: {e}"),
        })?;
        Ok((v, r.set_cookies))
    }

    /// The RSA key exchange; returns the session and its cookie.
    async fn key_exchange(&mut self) -> Result<(AesSession, Option<String>, u64), AesNetError> {
        let stage = AesStage::Handshake;
        if self.key.is_none() {
            self.key = Some(KeyPair::generate().map_err(|e| AesNetError::Io {
                stage,
                msg: e.to_string(),
            })?);
        }
        let Some(kp) = self.key.as_ref() else {
            return Err(AesNetError::Io {
                stage,
                msg: "no RSA key".into(),
            });
        };
        let pem = kp.public_pem().map_err(|e| AesNetError::Io {
            stage,
            msg: e.to_string(),
        })?;
        let (reply, set_cookies) = self
            .http(stage, "/app", None, &aes::handshake_request(&pem))
            .await?;
        let key = aes::handshake_key(&reply).map_err(|e| match e {
            AesError::Device(code) => AesNetError::Device { stage, code },
            other => AesNetError::BadReply {
                stage,
                msg: other.to_string(),
            },
        })?;
        let kp = self.key.as_ref().ok_or(AesNetError::SessionExpired)?;
        let session = kp
            .open_handshake_key(key)
            .map_err(AesNetError::BadCiphertext)?;
        let cookies = klap_proto::parse_set_cookies(set_cookies.iter().map(String::as_str));
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
        &self,
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
        let (reply, _) = self
            .http(stage, "/app", cookie, &session.wrap(&req))
            .await?;
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
                        token,
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
        let due = self
            .live
            .as_ref()
            .is_none_or(|l| Instant::now() >= l.renew_at);
        if due {
            self.connect().await?;
        }
        match self.query_once(request).await {
            Err(AesNetError::SessionExpired) => {
                self.connect().await?;
                self.query_once(request).await
            }
            other => other,
        }
    }

    async fn query_once(&mut self, request: &Value) -> Result<Value, AesNetError> {
        let stage = AesStage::Request;
        let Some(live) = self.live.as_ref() else {
            return Err(AesNetError::SessionExpired);
        };
        let path = format!("/app?token={}", live.token);
        let wire = live.session.wrap(request);
        let cookie = live.cookie.clone();
        let res = self.http(stage, &path, cookie.as_deref(), &wire).await;
        let reply = match res {
            Err(AesNetError::SessionExpired) => {
                self.live = None;
                return Err(AesNetError::SessionExpired);
            }
            other => other?.0,
        };
        if let Some(code) = reply.get("error_code").and_then(Value::as_i64)
            && SESSION_CODES.contains(&code)
        {
            self.live = None;
            return Err(AesNetError::SessionExpired);
        }
        let live = self.live.as_ref().ok_or(AesNetError::SessionExpired)?;
        live.session.unwrap_reply(&reply).map_err(|e| match e {
            AesError::Device(code) => AesNetError::Device { stage, code },
            AesError::BadCiphertext => AesNetError::BadCiphertext(e),
            other => AesNetError::BadReply {
                stage,
                msg: other.to_string(),
            },
        })
    }
}
