//! Sockets: each plug's supervisor task (TCP listener, unicast UDP socket, TDP socket; offline
//! periods), its connections, and the fleet-wide broadcast listeners.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::error::SimError;
use super::fault::FaultKind;
use super::load;
use super::plug::{Cause, Counters, Outage, PlugShared};
use crate::protocol::codec::{HEADER_LEN, decode_datagram, encode_datagram, encode_frame};
use crate::protocol::reply::parse_json;
use crate::protocol::tdp::TDP_HEADER_LEN;
use crate::protocol::{DEFAULT_MAX_FRAME, FrameCodec};

/// An idle connection is closed after this long (real time).
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The loopback broadcast address.
pub const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

/// A plug's sockets while it is online.
pub(crate) struct Sockets {
    pub tcp: Option<TcpListener>,
    pub udp: Option<Arc<UdpSocket>>,
    pub tdp: Option<Arc<UdpSocket>>,
}

fn in_use(addr: SocketAddr, proto: &'static str, e: io::Error) -> SimError {
    if e.kind() == io::ErrorKind::AddrInUse {
        SimError::AddrInUse { addr, proto }
    } else if e.kind() == io::ErrorKind::AddrNotAvailable {
        SimError::AddrNotAvailable { addr }
    } else {
        SimError::Io {
            addr,
            proto,
            msg: e.to_string(),
        }
    }
}

/// A TCP listener with SO_REUSEADDR (so a rebooted plug can rebind while old connections sit in
/// TIME_WAIT; Linux still refuses a second listener on the same address).
pub(crate) fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, SimError> {
    let mk = || -> io::Result<TcpListener> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        s.listen(128)?;
        TcpListener::from_std(s.into())
    };
    mk().map_err(|e| in_use(addr, "tcp", e))
}

/// A unicast UDP socket (no address sharing: a clash is reported).
pub(crate) fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, SimError> {
    let mk = || -> io::Result<UdpSocket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        UdpSocket::from_std(s.into())
    };
    mk().map_err(|e| in_use(addr, "udp", e))
}

/// The shared broadcast listener: 127.255.255.255:PORT with SO_REUSEADDR, so several fleets (or
/// a fleet and a test) can listen to the same broadcast port.
pub(crate) fn bind_broadcast(port: u16) -> Result<UdpSocket, SimError> {
    let addr = SocketAddr::from((LOOPBACK_BROADCAST, port));
    let mk = || -> io::Result<UdpSocket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        UdpSocket::from_std(s.into())
    };
    mk().map_err(|e| in_use(addr, "udp", e))
}

/// Binds the sockets a plug has while online.
pub(crate) fn bind_plug(plug: &PlugShared) -> Result<Sockets, SimError> {
    let id = &plug.id;
    let mut s = Sockets {
        tcp: None,
        udp: None,
        tdp: None,
    };
    if id.profile.is_legacy() {
        let addr = SocketAddr::from((id.ip, id.port));
        if !id.has(FaultKind::Refuse) {
            s.tcp = Some(bind_tcp(addr)?);
        }
        s.udp = Some(Arc::new(bind_udp(addr)?));
    } else {
        s.tdp = Some(Arc::new(bind_udp(SocketAddr::from((id.ip, id.tdp_port)))?));
    }
    Ok(s)
}

/// Rebinds after an outage, retrying briefly (the kernel may need a moment).
async fn rebind(plug: &PlugShared) -> Option<Sockets> {
    for attempt in 0..50u32 {
        match bind_plug(plug) {
            Ok(s) => return Some(s),
            Err(e) if attempt == 49 => {
                tracing::error!(ip = %plug.id.ip, error = %e, "simulated plug cannot come back");
            }
            Err(_) => {
                tokio::select! {
                    () = sleep(Duration::from_millis(50)) => {}
                    () = plug.token.cancelled() => return None,
                }
            }
        }
    }
    None
}

/// A plug's life: serve while online; go offline when asked (or, if flaky, now and then).
pub(crate) async fn run_plug(
    plug: Arc<PlugShared>,
    first: Sockets,
    mut ctl: mpsc::UnboundedReceiver<Outage>,
) {
    let token = plug.token.clone();
    let mut sockets = Some(first);
    let mut flaky_round = 0u64;
    while let Some(s) = sockets.take() {
        *plug.udp.lock().unwrap_or_else(|e| e.into_inner()) =
            s.udp.clone().or_else(|| s.tdp.clone());
        plug.online.store(true, Ordering::SeqCst);
        let flaky = plug.id.has(FaultKind::Flaky).then(|| {
            flaky_round += 1;
            let up = 20.0 + load::unit(plug.id.seed ^ 0xF1, flaky_round) * 20.0;
            let down = 4.0 + load::unit(plug.id.seed ^ 0xF2, flaky_round) * 4.0;
            Outage {
                after: plug.id.scaled(Duration::from_secs_f64(up)),
                down: plug.id.scaled(Duration::from_secs_f64(down)),
                cause: Cause::Flaky,
            }
        });
        let Some(outage) = serve(&plug, s, &mut ctl, flaky).await else {
            break;
        };
        // Offline: listeners closed (connections refused), open connections dropped.
        plug.online.store(false, Ordering::SeqCst);
        *plug.udp.lock().unwrap_or_else(|e| e.into_inner()) = None;
        plug.epoch.send_modify(|e| *e += 1);
        plug.counters.outages.fetch_add(1, Ordering::Relaxed);
        plug.went_offline(plug.now());
        tracing::debug!(ip = %plug.id.ip, cause = ?outage.cause, down = ?outage.down, "plug offline");
        let never_back =
            matches!(outage.cause, Cause::Flash { .. }) && plug.id.has(FaultKind::NeverBack);
        if never_back {
            token.cancelled().await;
            break;
        }
        tokio::select! {
            () = sleep(outage.down) => {}
            () = token.cancelled() => break,
        }
        // Requests queued while down are void.
        while ctl.try_recv().is_ok() {}
        plug.came_back(&outage.cause, plug.now());
        sockets = rebind(&plug).await;
    }
    plug.online.store(false, Ordering::SeqCst);
    *plug.udp.lock().unwrap_or_else(|e| e.into_inner()) = None;
    plug.epoch.send_modify(|e| *e += 1);
}

/// Serves until an outage is due (returned) or the fleet stops (None).
async fn serve(
    plug: &Arc<PlugShared>,
    s: Sockets,
    ctl: &mut mpsc::UnboundedReceiver<Outage>,
    mut pending: Option<Outage>,
) -> Option<Outage> {
    let token = plug.token.clone();
    let mut due = pending.as_ref().map(|o| Instant::now() + o.after);
    // Requests are small; a datagram larger than this is cut and then not valid JSON.
    let mut buf = vec![0u8; 16 * 1024];
    let mut tbuf = vec![0u8; 2048];
    loop {
        tokio::select! {
            () = token.cancelled() => return None,
            Some(o) = ctl.recv() => {
                due = Some(Instant::now() + o.after);
                pending = Some(o);
            }
            () = async { if let Some(d) = due { sleep_until(d).await } else { std::future::pending().await } } => {
                return pending;
            }
            r = async { match &s.tcp { Some(l) => l.accept().await, None => std::future::pending().await } } => {
                match r {
                    Ok((stream, _)) => {
                        Counters::bump(&plug.counters.connections);
                        tokio::spawn(serve_connection(plug.clone(), stream));
                    }
                    // Out of descriptors or similar: do not spin.
                    Err(_) => sleep(Duration::from_millis(20)).await,
                }
            }
            r = async { match &s.udp { Some(u) => u.recv_from(&mut buf).await, None => std::future::pending().await } } => {
                if let (Ok((n, from)), Some(u)) = (r, &s.udp) {
                    answer_udp(plug, u, &buf[..n], from);
                }
            }
            r = async { match &s.tdp { Some(u) => u.recv_from(&mut tbuf).await, None => std::future::pending().await } } => {
                if let (Ok((n, from)), Some(u)) = (r, &s.tdp) {
                    if let Some(reply) = tdp_answer(plug, &tbuf[..n]) {
                        let _ = u.send_to(&reply, from).await;
                    }
                }
            }
        }
    }
}

/// The reply to a TDP probe, if `packet` is one.
fn tdp_answer(plug: &PlugShared, packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < TDP_HEADER_LEN || packet[0] != 2 {
        return None;
    }
    let serial = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
    plug.tdp_reply(serial)
}

/// Answers one datagram (unicast or broadcast) from `sock`, the plug's own unicast socket.
pub(crate) fn answer_udp(
    plug: &Arc<PlugShared>,
    sock: &Arc<UdpSocket>,
    data: &[u8],
    to: SocketAddr,
) {
    Counters::bump(&plug.counters.datagrams);
    if plug.is_hanging() {
        return;
    }
    let Ok(req) = parse_json(&decode_datagram(data)) else {
        return;
    };
    if plug.hangs_on(&req) {
        return;
    }
    let reply = plug.respond(&req, plug.now());
    let plain = serde_json::to_vec(&reply).unwrap_or_default();
    let mut out = encode_datagram(&plain);
    if plug.id.has(FaultKind::Garbage) {
        out = garbage(plain.len().max(16));
    } else if plug.id.has(FaultKind::Truncated) {
        out.truncate(out.len() / 2);
    }
    let delay = plug.id.slow_delay();
    let sock = sock.clone();
    match delay {
        None => {
            // Non-blocking fast path; if the buffer is full, fall back to a task.
            match sock.try_send_to(&out, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::spawn(async move {
                        let _ = sock.send_to(&out, to).await;
                    });
                }
                _ => {}
            }
        }
        Some(d) => {
            let token = plug.token.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = sleep(d) => { let _ = sock.send_to(&out, to).await; }
                    () = token.cancelled() => {}
                }
            });
        }
    }
}

/// Bytes that de-obfuscate to something that is not JSON.
fn garbage(len: usize) -> Vec<u8> {
    let mut plain: Vec<u8> = (0..len)
        .map(|i| (load::mix(i as u64) & 0xff) as u8)
        .collect();
    if let Some(b) = plain.first_mut() {
        *b = 0;
    }
    encode_datagram(&plain)
}

/// One TCP connection: framed requests in, framed replies out, until the client closes, the plug
/// goes offline or the fleet stops.
async fn serve_connection(plug: Arc<PlugShared>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut epoch = plug.epoch.subscribe();
    let token = plug.token.clone();
    let mut framed = Framed::new(stream, FrameCodec::new(DEFAULT_MAX_FRAME));
    loop {
        let frame = tokio::select! {
            f = framed.next() => f,
            _ = epoch.changed() => return,
            () = token.cancelled() => return,
            // A client that went quiet: free the connection.
            () = sleep(IDLE_TIMEOUT) => return,
        };
        // EOF, a bad frame or not JSON: the plug closes the connection.
        let Some(Ok(bytes)) = frame else { return };
        let Ok(req) = parse_json(&bytes) else { return };
        if plug.is_hanging() || plug.hangs_on(&req) {
            // Read and ignore everything until the client gives up.
            continue;
        }
        let reply = plug.respond(&req, plug.now());
        let plain = serde_json::to_vec(&reply).unwrap_or_default();
        if let Some(d) = plug.id.slow_delay() {
            tokio::select! {
                () = sleep(d) => {}
                _ = epoch.changed() => return,
                () = token.cancelled() => return,
            }
        }
        let id = &plug.id;
        if id.has(FaultKind::Garbage) {
            let g = garbage(plain.len().max(16));
            let mut out = (g.len() as u32).to_be_bytes().to_vec();
            out.extend(g);
            let _ = framed.get_mut().write_all(&out).await;
            continue;
        }
        if id.has(FaultKind::Truncated) {
            let mut out = encode_frame(&plain);
            out.truncate(HEADER_LEN + plain.len() / 2);
            let s = framed.get_mut();
            let _ = s.write_all(&out).await;
            let _ = s.shutdown().await;
            return;
        }
        if id.has(FaultKind::Oversized) {
            let mut out = 0x7FFF_FFF0u32.to_be_bytes().to_vec();
            out.extend(encode_datagram(&plain[..plain.len().min(64)]));
            let s = framed.get_mut();
            let _ = s.write_all(&out).await;
            let _ = s.shutdown().await;
            return;
        }
        if framed.send(&plain[..]).await.is_err() {
            return;
        }
        if id.has(FaultKind::CloseAfterReply) {
            let _ = framed.get_mut().shutdown().await;
            return;
        }
    }
}

/// The fleet's broadcast listener on 127.255.255.255:PORT: every datagram is handed to every
/// online legacy plug, which answers from its own unicast socket.
pub(crate) async fn run_broadcast(
    sock: UdpSocket,
    plugs: Vec<Arc<PlugShared>>,
    token: CancellationToken,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, from) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
            () = token.cancelled() => return,
        };
        for p in &plugs {
            if !p.id.profile.is_legacy() || p.id.has(FaultKind::IgnoreBroadcast) {
                continue;
            }
            let udp = p.udp.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(u) = udp {
                answer_udp(p, &u, &buf[..n], from);
            }
        }
    }
}

/// The TDP broadcast listener on 127.255.255.255:TDP_PORT for newer-protocol plugs; each answers
/// through its own TDP socket (PLUG_IP:TDP_PORT), so the reply comes from the plug's address.
pub(crate) async fn run_tdp_broadcast(
    sock: UdpSocket,
    plugs: Vec<Arc<PlugShared>>,
    token: CancellationToken,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
            () = token.cancelled() => return,
        };
        for p in &plugs {
            if p.id.profile.is_legacy() || p.id.has(FaultKind::IgnoreBroadcast) {
                continue;
            }
            let udp = p.udp.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let (Some(u), Some(reply)) = (udp, tdp_answer(p, &buf[..n])) else {
                continue;
            };
            if let Err(e) = u.try_send_to(&reply, from) {
                if e.kind() == io::ErrorKind::WouldBlock {
                    tokio::spawn(async move {
                        let _ = u.send_to(&reply, from).await;
                    });
                }
            }
        }
    }
}
