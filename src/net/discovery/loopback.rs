//! Minimal loopback responders for discovery tests and the discovery benchmark: each fake plug
//! answers the UDP 9999 probe (unicast and the 127.255.255.255 broadcast), the framed TCP
//! sysinfo, and optionally the UDP 20002 probe — or misbehaves in one chosen way. They know
//! nothing but discovery (the full plug simulator is `crate::sim`); they exist so discovery can
//! be tested in isolation, including hostile replies, with a few hundred plugs per process.
//!
//! Loopback only: every socket binds a 127.x address and answers only whoever asked (the one
//! exception, [`LoopbackFleet::start_with`], serves the root-only test that builds its own
//! private network namespaces).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::protocol::{cipher, codec, tdp};

/// The loopback broadcast address the fleets listen on.
pub const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

/// How a fake plug answers the UDP 9999 probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpMode {
    Answer,
    Silent,
    /// Random-looking bytes.
    Garbage,
    /// A 20 000-byte datagram.
    Huge,
    /// Valid JSON that is not a sysinfo reply.
    WrongShape,
    /// `err_code -1, module not support`.
    DeviceError,
    /// A correct reply, but sent from another port than the one probed.
    WrongPort,
    /// A correct reply on the right port, but from another address ([`SPOOF_ADDRESS`]).
    OtherAddress,
}

/// Where [`UdpMode::OtherAddress`] replies come from.
pub const SPOOF_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 254);

/// How a fake plug answers TCP 9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpMode {
    Answer,
    /// Nothing listens (connection refused on loopback).
    Refuse,
    Garbage,
    /// A frame header announcing 4 GiB.
    HugeFrame,
    WrongShape,
    /// Accepts, reads, never answers.
    Hang,
}

/// One fake plug.
#[derive(Debug, Clone)]
pub struct FakePlug {
    pub ip: Ipv4Addr,
    /// The `system.get_sysinfo` object it reports.
    pub sysinfo: Value,
    pub udp: UdpMode,
    /// Answers the broadcast (false = only unicast, like a plug behind AP isolation).
    pub broadcast: bool,
    pub tcp: TcpMode,
    /// The TDP `result` object, if it answers UDP 20002.
    pub tdp: Option<Value>,
}

/// A MAC derived from `n` (`50:C7:BF:nn:nn:nn`).
pub fn mac_of(n: u32) -> String {
    let b = n.to_be_bytes();
    format!("50:C7:BF:{:02X}:{:02X}:{:02X}", b[1], b[2], b[3])
}

/// A 40-hex-digit deviceId derived from `n`.
pub fn device_id_of(n: u32) -> String {
    format!("80060000000000000000000000000000{n:08X}")
}

impl FakePlug {
    /// A metered single plug (HS110(EU) hw 4.0 shape) numbered `n` (MAC and deviceId from `n`).
    pub fn legacy(ip: Ipv4Addr, n: u32) -> Self {
        Self {
            ip,
            sysinfo: json!({
                "sw_ver": "1.0.4 Build 191111 Rel.143500",
                "hw_ver": "4.0",
                "model": "HS110(EU)",
                "deviceId": device_id_of(n),
                "oemId": "1998A14DAA86E4E001FD7CAF42868B5E",
                "hwId": "2448AB56FB7E126DE5CF876F84D8ADD2",
                "fwId": "00000000000000000000000000000000",
                "rssi": -60,
                "alias": format!("plug {n}"),
                "dev_name": "Smart Wi-Fi Plug With Energy Monitoring",
                "mic_type": "IOT.SMARTPLUGSWITCH",
                "feature": "TIM:ENE",
                "mac": mac_of(n),
                "updating": 0,
                "led_off": 0,
                "relay_state": 1,
                "on_time": 1234,
                "latitude_i": 0,
                "longitude_i": 0,
                "status": "new",
                "err_code": 0
            }),
            udp: UdpMode::Answer,
            broadcast: true,
            tcp: TcpMode::Answer,
            tdp: None,
        }
    }

    /// A strip (HS300(US) shape) with `outlets` children.
    pub fn strip(ip: Ipv4Addr, n: u32, outlets: u32) -> Self {
        let mut p = Self::legacy(ip, n);
        let id = device_id_of(n);
        let children: Vec<Value> = (0..outlets)
            .map(|i| json!({"id": format!("{id}{i:02}"), "state": 1, "alias": format!("outlet {i}"), "on_time": 10, "next_action": {"type": -1}}))
            .collect();
        if let Some(o) = p.sysinfo.as_object_mut() {
            o.insert("model".into(), json!("HS300(US)"));
            o.insert("hw_ver".into(), json!("1.0"));
            o.insert("sw_ver".into(), json!("1.0.21 Build 210524 Rel.161309"));
            o.insert("child_num".into(), json!(outlets));
            o.insert("children".into(), Value::Array(children));
            o.remove("relay_state");
        }
        p
    }

    /// A plug that no longer speaks port 9999 (HS100(UK) hw 4.1 fw 1.1.0): TCP refused, UDP
    /// silent, answers UDP 20002 with a KLAP discovery result.
    pub fn newer(ip: Ipv4Addr, n: u32) -> Self {
        Self {
            ip,
            sysinfo: Value::Null,
            udp: UdpMode::Silent,
            broadcast: false,
            tcp: TcpMode::Refuse,
            tdp: Some(json!({
                "device_id": format!("{n:032X}"),
                "device_model": "HS100(UK)",
                "device_type": "IOT.SMARTPLUGSWITCH",
                "factory_default": false,
                "hw_ver": "4.1",
                "ip": ip.to_string(),
                "mac": mac_of(n).replace(':', "-"),
                "mgt_encrypt_schm": {"encrypt_type": "KLAP", "http_port": 80, "is_support_https": false},
                "owner": "00000000000000000000000000000000"
            })),
        }
    }

    fn sysinfo_reply(&self) -> Vec<u8> {
        json!({"system": {"get_sysinfo": self.sysinfo}})
            .to_string()
            .into_bytes()
    }

    /// The plain (or, for garbage, raw) payload for `mode`, and whether to obfuscate it.
    fn udp_payload(&self) -> Option<Vec<u8>> {
        let plain = match self.udp {
            UdpMode::Silent => return None,
            UdpMode::Garbage => return Some(garbage(300)),
            UdpMode::Answer | UdpMode::WrongPort | UdpMode::OtherAddress => self.sysinfo_reply(),
            UdpMode::Huge => {
                let mut v = self.sysinfo.clone();
                if let Some(o) = v.as_object_mut() {
                    o.insert("alias".into(), json!("x".repeat(20_000)));
                }
                json!({"system": {"get_sysinfo": v}})
                    .to_string()
                    .into_bytes()
            }
            UdpMode::WrongShape => br#"{"system":{"get_sysinfo":"nope"}}"#.to_vec(),
            UdpMode::DeviceError => {
                br#"{"system":{"get_sysinfo":{"err_code":-1,"err_msg":"module not support"}}}"#
                    .to_vec()
            }
        };
        Some(codec::encode_datagram(&plain))
    }
}

fn garbage(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(11))
        .collect()
}

struct Bound {
    plug: FakePlug,
    /// False: the plug has "gone away" and answers nothing.
    present: Arc<AtomicBool>,
    udp: Option<Arc<UdpSocket>>,
    /// Sends `WrongPort` and `OtherAddress` replies.
    other: Option<Arc<UdpSocket>>,
    tdp: Option<Arc<UdpSocket>>,
}

/// A set of fake plugs sharing one legacy port and one TDP port.
pub struct LoopbackFleet {
    port: u16,
    tdp_port: u16,
    token: CancellationToken,
    tasks: JoinSet<()>,
    ips: Vec<Ipv4Addr>,
    bound: Arc<[Arc<Bound>]>,
    connections: Arc<AtomicUsize>,
}

fn reuse_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    let _ = s.set_recv_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

impl LoopbackFleet {
    /// Binds every plug's sockets (a fresh shared port pair, retried on a collision) and starts
    /// answering. The broadcast listeners are on `127.255.255.255`.
    pub async fn start(plugs: Vec<FakePlug>) -> io::Result<Self> {
        let mut last = None;
        for _ in 0..20 {
            match Self::try_start(plugs.clone(), LOOPBACK_BROADCAST, 0, 0).await {
                Ok(f) => return Ok(f),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free port")))
    }

    /// Like [`LoopbackFleet::start`] but with the broadcast listeners on `broadcast` and fixed
    /// ports — for the root-only test that runs plugs inside private network namespaces.
    pub async fn start_with(
        plugs: Vec<FakePlug>,
        broadcast: Ipv4Addr,
        port: u16,
        tdp_port: u16,
    ) -> io::Result<Self> {
        Self::try_start(plugs, broadcast, port, tdp_port).await
    }

    async fn try_start(
        plugs: Vec<FakePlug>,
        broadcast: Ipv4Addr,
        port: u16,
        tdp_port: u16,
    ) -> io::Result<Self> {
        let bcast = reuse_udp(SocketAddr::from((broadcast, port)))?;
        let port = bcast.local_addr()?.port();
        let tdp_bcast = reuse_udp(SocketAddr::from((broadcast, tdp_port)))?;
        let tdp_port = tdp_bcast.local_addr()?.port();
        let token = CancellationToken::new();
        let connections = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let mut bound = Vec::with_capacity(plugs.len());
        let ips = plugs.iter().map(|p| p.ip).collect();
        for plug in plugs {
            let speaks_udp = plug.udp != UdpMode::Silent;
            let udp = match speaks_udp {
                true => Some(Arc::new(reuse_udp(SocketAddr::from((plug.ip, port)))?)),
                false => None,
            };
            let other = match plug.udp {
                UdpMode::WrongPort => Some(SocketAddr::from((plug.ip, 0))),
                UdpMode::OtherAddress => Some(SocketAddr::from((SPOOF_ADDRESS, port))),
                _ => None,
            };
            let other = match other {
                Some(a) => Some(Arc::new(reuse_udp(a)?)),
                None => None,
            };
            let tdp_sock = match plug.tdp.is_some() {
                true => Some(Arc::new(reuse_udp(SocketAddr::from((plug.ip, tdp_port)))?)),
                false => None,
            };
            let present = Arc::new(AtomicBool::new(true));
            if plug.tcp != TcpMode::Refuse {
                let l = TcpListener::bind(SocketAddr::from((plug.ip, port))).await?;
                tasks.spawn(serve_tcp(
                    l,
                    plug.clone(),
                    present.clone(),
                    connections.clone(),
                    token.clone(),
                ));
            }
            bound.push(Arc::new(Bound {
                plug,
                present,
                udp,
                other,
                tdp: tdp_sock,
            }));
        }
        for b in &bound {
            if b.udp.is_some() {
                tasks.spawn(serve_udp_unicast(b.clone(), token.clone()));
            }
            if b.tdp.is_some() {
                tasks.spawn(serve_tdp_unicast(b.clone(), token.clone()));
            }
        }
        let bound: Arc<[Arc<Bound>]> = bound.into();
        tasks.spawn(serve_broadcast(bcast, bound.clone(), false, token.clone()));
        tasks.spawn(serve_broadcast(
            tdp_bcast,
            bound.clone(),
            true,
            token.clone(),
        ));
        Ok(Self {
            port,
            tdp_port,
            token,
            tasks,
            ips,
            bound,
            connections,
        })
    }

    /// The legacy port every plug listens on (UDP and TCP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port every TDP-speaking plug listens on.
    pub fn tdp_port(&self) -> u16 {
        self.tdp_port
    }

    pub fn ips(&self) -> &[Ipv4Addr] {
        &self.ips
    }

    /// TCP connections accepted so far, over all plugs.
    pub fn tcp_connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Makes the plug at `ip` go away (answer nothing, drop TCP connections) or come back.
    pub fn set_present(&self, ip: Ipv4Addr, present: bool) {
        for b in self.bound.iter().filter(|b| b.plug.ip == ip) {
            b.present.store(present, Ordering::SeqCst);
        }
    }

    /// Stops every responder and waits for them.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for LoopbackFleet {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn udp_answer(b: &Bound, to: SocketAddr) {
    if !b.present.load(Ordering::SeqCst) {
        return;
    }
    let Some(payload) = b.plug.udp_payload() else {
        return;
    };
    let sock = match b.plug.udp {
        UdpMode::WrongPort | UdpMode::OtherAddress => b.other.as_ref(),
        _ => b.udp.as_ref(),
    };
    if let Some(s) = sock {
        let _ = s.send_to(&payload, to).await;
    }
}

fn tdp_answer(b: &Bound) -> Option<Vec<u8>> {
    if !b.present.load(Ordering::SeqCst) {
        return None;
    }
    let result = b.plug.tdp.as_ref()?;
    let body = json!({"error_code": 0, "result": result}).to_string();
    Some(tdp::encode_packet(body.as_bytes(), 0, 0))
}

async fn serve_broadcast(
    sock: UdpSocket,
    plugs: Arc<[Arc<Bound>]>,
    is_tdp: bool,
    token: CancellationToken,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let from = tokio::select! {
            _ = token.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r { Ok((_, from)) => from, Err(_) => continue },
        };
        for b in plugs.iter() {
            if is_tdp {
                if let (Some(s), Some(p)) = (&b.tdp, tdp_answer(b)) {
                    let _ = s.send_to(&p, from).await;
                }
            } else if b.plug.broadcast {
                udp_answer(b, from).await;
            }
        }
    }
}

async fn serve_udp_unicast(b: Arc<Bound>, token: CancellationToken) {
    let Some(sock) = b.udp.clone() else { return };
    let mut buf = vec![0u8; 2048];
    loop {
        let from = tokio::select! {
            _ = token.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r { Ok((_, from)) => from, Err(_) => continue },
        };
        udp_answer(&b, from).await;
    }
}

async fn serve_tdp_unicast(b: Arc<Bound>, token: CancellationToken) {
    let Some(sock) = b.tdp.clone() else { return };
    let mut buf = vec![0u8; 2048];
    loop {
        let from = tokio::select! {
            _ = token.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r { Ok((_, from)) => from, Err(_) => continue },
        };
        if let Some(p) = tdp_answer(&b) {
            let _ = sock.send_to(&p, from).await;
        }
    }
}

async fn serve_tcp(
    l: TcpListener,
    plug: FakePlug,
    present: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    token: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            r = l.accept() => if let Ok((s, _)) = r {
                accepted.fetch_add(1, Ordering::SeqCst);
                if !present.load(Ordering::SeqCst) {
                    drop(s);
                    continue;
                }
                conns.spawn(serve_conn(s, plug.clone(), token.clone()));
            },
        }
        while conns.try_join_next().is_some() {}
    }
}

async fn serve_conn(mut s: TcpStream, plug: FakePlug, token: CancellationToken) {
    let work = async {
        loop {
            let mut hdr = [0u8; 4];
            s.read_exact(&mut hdr).await?;
            let len = u32::from_be_bytes(hdr) as usize;
            if len > 4096 {
                return Ok(());
            }
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await?;
            let _request = cipher::decrypt(&body);
            let out = match plug.tcp {
                TcpMode::Answer => codec::encode_frame(&plug.sysinfo_reply()),
                TcpMode::Garbage => {
                    let g = garbage(200);
                    let mut f = (g.len() as u32).to_be_bytes().to_vec();
                    f.extend_from_slice(&g);
                    f
                }
                TcpMode::HugeFrame => vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
                TcpMode::WrongShape => codec::encode_frame(br#"[1,2,3]"#),
                TcpMode::Hang | TcpMode::Refuse => {
                    std::future::pending::<()>().await;
                    return Ok(());
                }
            };
            s.write_all(&out).await?;
        }
    };
    tokio::select! {
        _ = token.cancelled() => {}
        _ = async { let _: io::Result<()> = work.await; } => {}
    }
}
