//! One kept session per newer-protocol device ([`NewerLink`]): the KLAP or AES client chosen
//! from the device's UDP 20002 reply ([`Access`]; KLAP over TLS when it says HTTPS — the same
//! client on a TLS stream, [`crate::net::tls`]), one handshake per session (renewed before
//! the `TIMEOUT` cookie lapses, fresh after a 403 — the clients do that), and the two payload
//! dialects read into the same parts as a port-9999 poll ([`Polled`]):
//!
//! - `IOT.*` over KLAP: the poller's combined request (`system.get_sysinfo` +
//!   `emeter.get_realtime`), the same reply types; a strip's outlets one after another;
//! - `SMART.*` (KLAP v2 or AES): one `multipleRequest` (`get_device_info`, `get_emeter_data`,
//!   `get_energy_usage`) mapped by [`crate::protocol::smart`].
//!
//! Failures are [`NetError`]s; "no credentials" and "wrong credentials" are
//! [`NetError::Access`], so every view can say so. Never logs a password.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};

use crate::net::aes::{AesClient, AesConfig, AesNetError};
use crate::net::client::{NetError, Stage};
use crate::net::klap::{Credentials, KlapClient, KlapConfig, KlapNetError, KlapStage};
use crate::net::tls::Scheme;
use crate::protocol::access::{Access, Dialect, Refusal, Transport};
use crate::protocol::reply::method_result;
use crate::protocol::{Realtime, Request, SysInfo, smart};

/// What one poll read: the same parts as the poller's `Polled` (which converts from this, so
/// this file does not import the poller's).
#[derive(Debug, Clone, PartialEq)]
pub struct Polled {
    pub sysinfo: SysInfo,
    pub realtime: Option<Result<Realtime, NetError>>,
    pub outlets: Vec<(String, Result<Realtime, NetError>)>,
}

/// What the poller needs to read one newer-protocol device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewerSpec {
    pub access: Access,
    /// The model as the discovery reply says it (`KP125M(US)`: with the region).
    pub model: String,
    /// The TP-Link account, if one is configured.
    pub account: Option<Credentials>,
}

enum Client {
    Klap(Box<KlapClient>),
    Aes(Box<AesClient>),
    /// An access no client speaks (AES over HTTPS: `Access::from_tdp` never makes one).
    Unsupported(Refusal),
}

/// A kept session with one newer-protocol device.
pub struct NewerLink {
    spec: NewerSpec,
    client: Client,
}

impl std::fmt::Debug for NewerLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewerLink")
            .field("access", &self.spec.access.label())
            .field("handshakes", &self.handshakes())
            .finish()
    }
}

fn klap_error(e: KlapNetError) -> NetError {
    match e {
        KlapNetError::AuthFailed => NetError::Access(Refusal::AuthFailed),
        KlapNetError::NeedsCredentials => NetError::Access(Refusal::NeedsCredentials),
        KlapNetError::Timeout {
            stage: KlapStage::Connect,
            after,
        }
        | KlapNetError::TlsTimeout { after } => NetError::Timeout {
            stage: Stage::Connect,
            after,
        },
        KlapNetError::Timeout { after, .. } => NetError::Timeout {
            stage: Stage::Reply,
            after,
        },
        KlapNetError::Tls(msg) => NetError::Io(format!("KLAP over HTTPS: TLS handshake: {msg}")),
        KlapNetError::Io { msg, .. } if msg.contains("refused") => NetError::Refused,
        KlapNetError::Io { stage, msg } => NetError::Io(format!("KLAP {stage}: {msg}")),
        other => NetError::Reply(format!("KLAP: {other}")),
    }
}

fn aes_error(e: AesNetError) -> NetError {
    match e {
        AesNetError::AuthFailed => NetError::Access(Refusal::AuthFailed),
        AesNetError::NeedsCredentials => NetError::Access(Refusal::NeedsCredentials),
        AesNetError::Timeout { after, .. } => NetError::Timeout {
            stage: Stage::Reply,
            after,
        },
        AesNetError::Io { msg, .. } if msg.contains("refused") => NetError::Refused,
        AesNetError::Io { stage, msg } => NetError::Io(format!("AES {stage}: {msg}")),
        AesNetError::Device { code, .. } => NetError::Device {
            code,
            msg: "AES transport error".into(),
        },
        other => NetError::Reply(format!("AES: {other}")),
    }
}

impl NewerLink {
    /// A link to the device at `ip` (its HTTP port is the access's); nothing is sent yet.
    /// `timeout` bounds every HTTP exchange.
    pub fn new(ip: IpAddr, spec: NewerSpec, timeout: Duration) -> Self {
        let addr = SocketAddr::new(ip, spec.access.http_port);
        let client = match spec.access.transport {
            Transport::Klap => {
                let mut c = KlapConfig::new(addr, spec.access.version, spec.account.clone());
                c.timeout = timeout;
                if spec.access.https {
                    c.scheme = Scheme::Https;
                }
                Client::Klap(Box::new(KlapClient::new(c)))
            }
            Transport::Aes if spec.access.https => Client::Unsupported(Refusal::Unsupported(
                "AES over HTTPS (the SSL-AES login) is not spoken".into(),
            )),
            Transport::Aes => {
                let mut c = AesConfig::new(addr, spec.account.clone(), spec.access.login_v2);
                c.timeout = timeout;
                Client::Aes(Box::new(AesClient::new(c)))
            }
        };
        NewerLink { spec, client }
    }

    pub fn spec(&self) -> &NewerSpec {
        &self.spec
    }

    /// Handshakes (KLAP) or RSA key exchanges (AES) so far: 1 while a session is kept.
    pub fn handshakes(&self) -> u64 {
        match &self.client {
            Client::Klap(c) => c.handshakes(),
            Client::Aes(c) => c.handshakes(),
            Client::Unsupported(_) => 0,
        }
    }

    /// One JSON request over the kept session (handshaking when there is none).
    pub async fn query(&mut self, request: &Value) -> Result<Value, NetError> {
        match &mut self.client {
            Client::Klap(c) => c.query(request).await.map_err(klap_error),
            Client::Aes(c) => c.query(request).await.map_err(aes_error),
            Client::Unsupported(r) => Err(NetError::Access(r.clone())),
        }
    }

    /// One poll: sysinfo and the meter, the same parts as a port-9999 poll.
    pub async fn poll(&mut self) -> Result<Polled, NetError> {
        match self.spec.access.dialect {
            Dialect::Iot => self.poll_iot().await,
            Dialect::Smart => self.poll_smart().await,
        }
    }

    async fn poll_iot(&mut self) -> Result<Polled, NetError> {
        let combined = json!({"system": {"get_sysinfo": {}}, "emeter": {"get_realtime": {}}});
        let root = self.query(&combined).await?;
        let sysinfo = SysInfo::from_reply(&root)?;
        let mut polled = Polled {
            realtime: None,
            outlets: Vec::new(),
            sysinfo,
        };
        if !polled.sysinfo.has_emeter() {
            return Ok(polled);
        }
        if polled.sysinfo.children.is_empty() {
            polled.realtime = Some(if root.get("emeter").is_some() {
                Realtime::from_reply(&root).map_err(NetError::from)
            } else {
                let r = self.query(&Request::realtime(None).to_value()).await;
                r.and_then(|v| Ok(Realtime::from_reply(&v)?))
            });
            return Ok(polled);
        }
        let ids: Vec<String> = polled
            .sysinfo
            .children
            .iter()
            .map(|c| c.id.clone())
            .collect();
        for id in ids {
            let r = self.query(&Request::realtime(Some(&id)).to_value()).await;
            polled
                .outlets
                .push((id, r.and_then(|v| Ok(Realtime::from_reply(&v)?))));
        }
        Ok(polled)
    }

    async fn poll_smart(&mut self) -> Result<Polled, NetError> {
        let reply = self.query(&smart::poll_request()).await?;
        let (sysinfo, realtime) = smart::poll_reply(&reply, Some(&self.spec.model))?;
        Ok(Polled {
            sysinfo,
            realtime: realtime.map(|r| r.map_err(NetError::from)),
            outlets: Vec::new(),
        })
    }

    /// Switches the relay through the device's dialect (`system.set_relay_state` or
    /// `set_device_info {device_on}`).
    pub async fn set_relay(&mut self, on: bool, child: Option<&str>) -> Result<(), NetError> {
        match self.spec.access.dialect {
            Dialect::Iot => {
                let root = self
                    .query(&Request::set_relay(on, child).to_value())
                    .await?;
                method_result(&root, "system", "set_relay_state")?;
                Ok(())
            }
            Dialect::Smart if child.is_some() => Err(NetError::Access(Refusal::Unsupported(
                "switching one outlet of a SMART strip is not supported yet".into(),
            ))),
            Dialect::Smart => {
                let reply = self.query(&smart::set_relay_request(on)).await?;
                smart::result_of(&reply, "set_device_info")?;
                Ok(())
            }
        }
    }
}

/// Polls one newer-protocol device once on a fresh session (what `plugfleet status` does).
pub async fn poll_once(ip: IpAddr, spec: NewerSpec, timeout: Duration) -> Result<Polled, NetError> {
    NewerLink::new(ip, spec, timeout).poll().await
}
