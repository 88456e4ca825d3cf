//! One kept session per newer-protocol device ([`NewerLink`]): the KLAP or AES client chosen
//! from the device's UDP 20002 reply ([`Access`]; KLAP over TLS when it says HTTPS — the same
//! client on a TLS stream, [`crate::net::tls`]), one handshake per session (renewed before
//! the `TIMEOUT` cookie lapses, fresh after a 403 — the clients do that), and the two payload
//! dialects read into the same parts as a port-9999 poll ([`Polled`]):
//!
//! - `IOT.*` over KLAP: the poller's combined request (`system.get_sysinfo` +
//!   `emeter.get_realtime`), the same reply types; a strip's outlets one after another;
//! - `SMART.*` (KLAP v2 or AES): one `multipleRequest` (`get_device_info`, `get_emeter_data`,
//!   `get_energy_usage`, `get_child_device_list`) mapped by [`crate::protocol::smart`]. A strip
//!   (P300, P304M, KP303 hw 2 on new firmware) also reads the rest of its paged child list
//!   (bounded: [`smart::MAX_CHILD_PAGES`] pages, [`smart::MAX_CHILDREN`] children) and each
//!   outlet's meter through `control_child`; the children become the same outlets as a
//!   port-9999 strip's (`SysInfo::children`, `Polled::outlets` by child id), and one outlet
//!   is switched with `control_child` + `set_device_info {device_on}`.
//!
//! Failures are [`NetError`]s; "no credentials" and "wrong credentials" are
//! [`NetError::Access`], so every view can say so. Never logs a password.
//!
//! [`Sessions`] keeps those links by device key, shared by everything that talks to the
//! devices in one process — the poller, the TUI's relay writes, `status --metrics`' rounds —
//! so a device sees one session, not one per caller (a second handshake can end the first:
//! python-kasa #784).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::net::aes::{AesClient, AesConfig, AesNetError};
use crate::net::client::{NetError, Stage};
use crate::net::klap::{Credentials, KlapClient, KlapConfig, KlapNetError, KlapStage};
use crate::net::tls::Scheme;
use crate::protocol::access::{Access, Dialect, Refusal, Transport};
use crate::protocol::reply::{ReplyError, method_result};
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
    ip: IpAddr,
    spec: NewerSpec,
    client: Client,
    /// The poll's request as sent, serialised once for the link's life.
    poll_body: Vec<u8>,
    /// The device answered `get_child_device_list` "unknown method" when asked on its own:
    /// a plug, not a strip. Later polls whose `multipleRequest` stopped before the child list
    /// (real firmware stops at the first method it lacks) do not ask it again.
    no_children: bool,
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

/// The IOT poll: sysinfo and the meter in one request, as the port-9999 poller asks.
const IOT_POLL: &str = r#"{"system":{"get_sysinfo":{}},"emeter":{"get_realtime":{}}}"#;

/// One request (JSON text) over `client`'s session; the reply as JSON.
async fn send(client: &mut Client, request: &[u8]) -> Result<Value, NetError> {
    let reply = match client {
        Client::Klap(c) => c.request(request).await.map_err(klap_error)?,
        Client::Aes(c) => c.request(request).await.map_err(aes_error)?,
        Client::Unsupported(r) => return Err(NetError::Access(r.clone())),
    };
    serde_json::from_slice(&reply).map_err(|e| {
        let msg = format!("not JSON: {e}");
        match client {
            Client::Klap(_) => klap_error(KlapNetError::BadReply {
                stage: crate::net::klap::KlapStage::Request,
                msg,
            }),
            _ => aes_error(AesNetError::BadReply {
                stage: crate::net::aes::AesStage::Request,
                msg,
            }),
        }
    })
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
        let poll_body = match spec.access.dialect {
            Dialect::Iot => IOT_POLL.as_bytes().to_vec(),
            Dialect::Smart => smart::poll_request().to_string().into_bytes(),
        };
        NewerLink {
            ip,
            spec,
            client,
            poll_body,
            no_children: false,
        }
    }

    pub fn spec(&self) -> &NewerSpec {
        &self.spec
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
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
        send(&mut self.client, request.to_string().as_bytes()).await
    }

    /// One poll: sysinfo and the meter, the same parts as a port-9999 poll.
    pub async fn poll(&mut self) -> Result<Polled, NetError> {
        match self.spec.access.dialect {
            Dialect::Iot => self.poll_iot().await,
            Dialect::Smart => self.poll_smart().await,
        }
    }

    async fn poll_iot(&mut self) -> Result<Polled, NetError> {
        let root = send(&mut self.client, &self.poll_body).await?;
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
        let reply = send(&mut self.client, &self.poll_body).await?;
        let parts = smart::poll_parts(&reply, Some(&self.spec.model))?;
        let first = match parts.children {
            smart::ChildList::None => None,
            smart::ChildList::Page(p) => Some(p),
            smart::ChildList::Unanswered if self.no_children => None,
            smart::ChildList::Unanswered => {
                let page = self.child_page(0).await?;
                self.no_children = page.is_none();
                page
            }
        };
        // An empty list (`sum` 0) is a device without children: read as a plug.
        let first = first.filter(|p| p.sum > 0 || !p.children.is_empty());
        let Some(first) = first else {
            return Ok(Polled {
                sysinfo: parts.sysinfo,
                realtime: parts.reading.map(|r| r.map_err(NetError::from)),
                outlets: Vec::new(),
            });
        };
        let children = self.rest_of_children(first).await?;
        self.poll_strip(&parts.info, children).await
    }

    /// One page of a strip's children; `None` when the device has no child list (a plug).
    async fn child_page(&mut self, start: usize) -> Result<Option<smart::ChildPage>, NetError> {
        let reply = self.query(&smart::child_list_request(start)).await?;
        match smart::result_of(&reply, smart::CHILD_LIST) {
            Ok(r) => Ok(Some(smart::child_page(r)?)),
            Err(ReplyError::Device { .. }) if start == 0 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every child, reading the pages after `first` until `sum` is reached: at most
    /// [`smart::MAX_CHILD_PAGES`] pages, an empty page ends the list short (an error, as does
    /// one more page than allowed).
    async fn rest_of_children(
        &mut self,
        first: smart::ChildPage,
    ) -> Result<Vec<smart::SmartChild>, NetError> {
        let sum = first.sum;
        let mut raw = first.children;
        let mut pages = 1;
        while raw.len() < sum {
            if pages >= smart::MAX_CHILD_PAGES {
                return Err(NetError::Reply(format!(
                    "{} still short of its {sum} children after {pages} pages",
                    smart::CHILD_LIST
                )));
            }
            let page = self
                .child_page(raw.len())
                .await?
                .ok_or_else(|| NetError::Reply("the child list ended with an error".into()))?;
            pages += 1;
            if page.children.is_empty() {
                return Err(NetError::Reply(format!(
                    "{} gave an empty page at {} of {sum} children",
                    smart::CHILD_LIST,
                    raw.len()
                )));
            }
            raw.extend(page.children);
            if raw.len() > smart::MAX_CHILDREN {
                break;
            }
        }
        Ok(smart::smart_children(&raw)?)
    }

    /// A strip's poll: its info with the children as outlets, and each metered child's
    /// reading through `control_child`. The first child tells whether the outlets are metered
    /// (a strip's outlets are all alike): a P300's are not, and its others are not asked.
    async fn poll_strip(
        &mut self,
        info: &Value,
        children: Vec<smart::SmartChild>,
    ) -> Result<Polled, NetError> {
        let mut outlets = Vec::with_capacity(children.len());
        let mut metered = true;
        for (i, c) in children.iter().enumerate() {
            let r = self.query(&smart::child_poll_request(&c.device_id)).await;
            let r = r.and_then(|v| Ok(smart::child_reading(&v)?));
            match r {
                Ok(None) if i == 0 => {
                    metered = false;
                    break;
                }
                Ok(None) => outlets.push((
                    c.device_id.clone(),
                    Err(NetError::Reply(
                        "the outlet's meter answered no reading".into(),
                    )),
                )),
                Ok(Some(rt)) => outlets.push((c.device_id.clone(), Ok(rt))),
                // A session-level failure ends the poll like any other request's.
                Err(e @ (NetError::Access(_) | NetError::Timeout { .. })) => return Err(e),
                Err(e) => outlets.push((c.device_id.clone(), Err(e))),
            }
        }
        let sysinfo = smart::strip_sysinfo(info, Some(&self.spec.model), metered, &children)?;
        Ok(Polled {
            sysinfo,
            realtime: None,
            outlets,
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
            Dialect::Smart => match child {
                // One outlet of a strip: `set_device_info` inside `control_child`.
                Some(id) => {
                    let reply = self.query(&smart::child_relay_request(id, on)).await?;
                    let inner = smart::child_response(&reply)?;
                    smart::result_of(inner, "set_device_info")?;
                    Ok(())
                }
                None => {
                    let reply = self.query(&smart::set_relay_request(on)).await?;
                    smart::result_of(&reply, "set_device_info")?;
                    Ok(())
                }
            },
        }
    }
}

/// One device's kept link, locked while a request is on it (a poll and a write to the same
/// device take turns on its one session: KLAP's sequence numbers must not interleave).
pub type SharedLink = Arc<tokio::sync::Mutex<NewerLink>>;

/// The kept sessions of one process, by device key: what the poller, relay writes and
/// `status --metrics`' rounds all use, so each device has one session (one handshake per
/// session lifetime) whoever talks to it. Cloning shares the store.
///
/// A link is made (nothing sent) the first time a key is asked for, and made again when the
/// device's address or [`NewerSpec`] changed (a new account typed at the `c` prompt: the old
/// session was the old credentials'). Handshakes of every link are counted in
/// [`Sessions::handshakes`].
#[derive(Clone, Default)]
pub struct Sessions {
    links: Arc<Mutex<HashMap<String, Kept>>>,
    handshakes: Arc<AtomicU64>,
}

/// A link and what it was made for.
struct Kept {
    ip: IpAddr,
    spec: NewerSpec,
    link: SharedLink,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("links", &self.len())
            .field("handshakes", &self.handshakes())
            .finish()
    }
}

impl Sessions {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        // Held only to look up, insert or remove (never across an await): a panic elsewhere
        // cannot leave the map half-changed, so a poisoned lock is still usable.
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The link of `key`: the kept one, or a new one (nothing sent yet) when there is none or
    /// it was made for another address or spec. `timeout` bounds each HTTP exchange of a new
    /// link.
    pub fn link(&self, key: &str, ip: IpAddr, spec: &NewerSpec, timeout: Duration) -> SharedLink {
        let mut map = self.map();
        if let Some(k) = map.get(key)
            && k.ip == ip
            && k.spec == *spec
        {
            return k.link.clone();
        }
        let link: SharedLink = Arc::new(tokio::sync::Mutex::new(NewerLink::new(
            ip,
            spec.clone(),
            timeout,
        )));
        map.insert(
            key.to_owned(),
            Kept {
                ip,
                spec: spec.clone(),
                link: link.clone(),
            },
        );
        link
    }

    /// Forgets `key`'s session (an untracked device); a request on it finishes first.
    pub fn remove(&self, key: &str) {
        self.map().remove(key);
    }

    /// Links kept.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Handshakes (KLAP) and RSA key exchanges (AES) of every link so far.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// Runs `f` on `key`'s kept session (see [`Sessions::link`]); returns its result and the
    /// handshakes it made (0 while the session is kept).
    async fn with<T>(
        &self,
        key: &str,
        ip: IpAddr,
        spec: &NewerSpec,
        timeout: Duration,
        f: impl AsyncFnOnce(&mut NewerLink) -> T,
    ) -> (T, u64) {
        let link = self.link(key, ip, spec, timeout);
        let mut g = link.lock().await;
        let before = g.handshakes();
        let r = f(&mut g).await;
        let made = g.handshakes().saturating_sub(before);
        self.handshakes.fetch_add(made, Ordering::Relaxed);
        (r, made)
    }

    /// One poll of `key` over its kept session; with the handshakes it made.
    pub async fn poll(
        &self,
        key: &str,
        ip: IpAddr,
        spec: &NewerSpec,
        timeout: Duration,
    ) -> (Result<Polled, NetError>, u64) {
        self.with(key, ip, spec, timeout, async |l| l.poll().await)
            .await
    }

    /// Switches `key`'s relay over its kept session (the poller's, when it polls the device).
    pub async fn set_relay(
        &self,
        key: &str,
        ip: IpAddr,
        spec: &NewerSpec,
        timeout: Duration,
        on: bool,
        child: Option<&str>,
    ) -> Result<(), NetError> {
        self.with(key, ip, spec, timeout, async |l| {
            l.set_relay(on, child).await
        })
        .await
        .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::klap::AuthVersion;

    fn spec(account: Option<Credentials>) -> NewerSpec {
        NewerSpec {
            access: Access {
                transport: Transport::Klap,
                dialect: Dialect::Smart,
                version: AuthVersion::V2,
                login_v2: false,
                http_port: 80,
                https: false,
            },
            model: "KP125M(US)".into(),
            account,
        }
    }

    #[test]
    fn one_link_per_key_until_the_address_or_spec_changes() {
        let s = Sessions::new();
        let ip: IpAddr = [127, 0, 0, 2].into();
        let t = Duration::from_secs(1);
        let a = s.link("k", ip, &spec(None), t);
        assert!(Arc::ptr_eq(&a, &s.link("k", ip, &spec(None), t)));
        // A clone shares the store.
        assert!(Arc::ptr_eq(&a, &s.clone().link("k", ip, &spec(None), t)));
        let other = s.link("other", ip, &spec(None), t);
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(s.len(), 2);
        // A new account (the `c` prompt) or address: a new session, replacing the old one.
        let acct = Some(Credentials::new("me@example.com", "pw"));
        let b = s.link("k", ip, &spec(acct.clone()), t);
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&b, &s.link("k", ip, &spec(acct.clone()), t)));
        let c = s.link("k", [127, 0, 0, 3].into(), &spec(acct.clone()), t);
        assert!(!Arc::ptr_eq(&b, &c));
        assert_eq!(s.len(), 2);
        s.remove("k");
        assert_eq!(s.len(), 1);
        let d = s.link("k", [127, 0, 0, 3].into(), &spec(acct), t);
        assert!(!Arc::ptr_eq(&c, &d), "made again after remove");
        assert_eq!(s.handshakes(), 0, "nothing sent");
    }
}
