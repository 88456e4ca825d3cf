//! The engine behind [`super::spawn`]: one pass opens its sockets, starts a receiver per socket,
//! the probe schedule, the host fallbacks and the sweep, and ends when there is nothing left to
//! wait for. Continuous mode repeats passes.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{RwLock, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::config::DiscoveryConfig;
use crate::net::client::{ClientConfig, Connection, NetError};
use crate::protocol::reply::{self, ReplyError};
use crate::protocol::sighting::{
    DeviceReply, DiscoveryEvent, FoundBy, HostileReason, MAX_REPLY_DATAGRAM, Sighting,
};
use crate::protocol::{DEFAULT_MAX_FRAME, Request, SysInfo, codec, tdp};

/// Receive buffer for one datagram: larger than any IPv4 UDP payload.
pub const RECV_BUFFER: usize = 64 * 1024 + 1;

/// Why the engine could not run at all (device failures are events, not errors).
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot open a UDP socket: {0}")]
    Socket(#[from] std::io::Error),
}

/// Kernel receive buffer asked for on discovery sockets, so a burst of hundreds of replies is not
/// dropped while the receiver is busy (the kernel may grant less).
const SOCKET_RECV_BUFFER: usize = 4 << 20;
/// A receiver gives up after this many consecutive socket errors (never seen in practice; it
/// keeps a broken socket from spinning).
const MAX_RECV_ERRORS: u32 = 1000;

/// What stays the same across passes.
struct Run<E> {
    cfg: DiscoveryConfig,
    start: Instant,
    tx: mpsc::Sender<E>,
    /// Cancelled by the caller's token or when the receiver of `tx` is gone.
    token: CancellationToken,
    hosts: HashSet<Ipv4Addr>,
}

impl<E: From<DiscoveryEvent>> Run<E> {
    fn ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn emit(&self, ev: DiscoveryEvent) {
        if self.tx.send(E::from(ev)).await.is_err() {
            self.token.cancel();
        }
    }
}

/// Counters of one pass.
#[derive(Default)]
struct PassState {
    /// (address, provenance) already reported in this pass.
    seen: HashSet<(IpAddr, FoundBy)>,
    /// Known hosts that answered a unicast 9999 probe (no more probes or fallback for them).
    resolved: HashSet<Ipv4Addr>,
    /// Addresses sent a unicast TDP probe that have not answered it, with when it was first
    /// sent (resends do not extend the grace).
    tdp_pending: HashMap<Ipv4Addr, Instant>,
    /// Addresses that answered a TDP probe.
    tdp_answered: HashSet<Ipv4Addr>,
    found: usize,
    hostile: usize,
    send_errors: Vec<String>,
}

/// One pass, shared by its tasks.
struct Pass<E> {
    run: Arc<Run<E>>,
    start: Instant,
    deadline: Instant,
    /// Cancelled when the pass ends (child of the run's token).
    token: CancellationToken,
    state: Mutex<PassState>,
    /// Bumped whenever an address is resolved or a TCP probe ends.
    changed: watch::Sender<()>,
    /// Open while the pass may still emit; closed (under the write lock) before `RoundDone`, so
    /// no `Found` of a pass can follow its `RoundDone`.
    open: RwLock<bool>,
    tdp: Option<Arc<UdpSocket>>,
}

impl<E: From<DiscoveryEvent> + Send + 'static> Pass<E> {
    fn state(&self) -> MutexGuard<'_, PassState> {
        // A poisoned lock only means a task panicked while counting; the counters stay usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn emit(&self, ev: DiscoveryEvent) {
        let open = self.open.read().await;
        if *open {
            self.run.emit(ev).await;
        }
    }

    async fn found(&self, from: SocketAddr, found_by: FoundBy, reply: DeviceReply) {
        {
            let mut st = self.state();
            if !st.seen.insert((from.ip(), found_by)) {
                return;
            }
            st.found += 1;
            if let IpAddr::V4(v4) = from.ip() {
                match found_by {
                    FoundBy::Host => {
                        st.resolved.insert(v4);
                    }
                    FoundBy::Udp20002 => {
                        st.tdp_pending.remove(&v4);
                        st.tdp_answered.insert(v4);
                    }
                    FoundBy::Broadcast | FoundBy::Sweep => {}
                }
            }
        }
        self.changed.send_replace(());
        let ev = DiscoveryEvent::Found(Sighting {
            ip: from.ip(),
            port: from.port(),
            found_by,
            at: self.run.ms(),
            reply,
        });
        self.emit(ev).await;
    }

    async fn hostile(&self, from: SocketAddr, reason: HostileReason) {
        self.state().hostile += 1;
        tracing::debug!(%from, %reason, "hostile discovery reply");
        self.emit(DiscoveryEvent::Hostile { from, reason }).await;
    }

    fn send_error(&self, to: SocketAddr, e: &std::io::Error) {
        let msg = format!("{to}: {e}");
        let mut st = self.state();
        if !st.send_errors.contains(&msg) {
            st.send_errors.push(msg);
        }
    }

    fn is_resolved(&self, ip: Ipv4Addr) -> bool {
        self.state().resolved.contains(&ip)
    }

    /// Unicast TDP probe to `ip` (its port 9999 refused or timed out), remembered for resends.
    async fn send_tdp(&self, ip: Ipv4Addr) {
        let Some(sock) = &self.tdp else { return };
        {
            let mut st = self.state();
            st.tdp_pending.entry(ip).or_insert_with(Instant::now);
        }
        let to = SocketAddr::from((ip, self.run.cfg.tdp_port));
        if let Err(e) = sock.send_to(&tdp::probe(), to).await {
            self.send_error(to, &e);
        }
    }

    fn is_host(&self, ip: IpAddr) -> bool {
        matches!(ip, IpAddr::V4(v4) if self.run.hosts.contains(&v4))
    }

    fn in_unicast_scope(&self, ip: IpAddr) -> bool {
        let IpAddr::V4(v4) = ip else { return false };
        self.run.hosts.contains(&v4) || self.run.cfg.sweeps.iter().any(|n| n.contains(&v4))
    }

    /// A datagram on a UDP 9999 socket.
    async fn on_legacy(&self, data: &[u8], from: SocketAddr, found_by: FoundBy) {
        let cfg = &self.run.cfg;
        if from.port() != cfg.port {
            return self
                .hostile(
                    from,
                    HostileReason::WrongPort {
                        expected: cfg.port,
                        got: from.port(),
                    },
                )
                .await;
        }
        if data.len() > MAX_REPLY_DATAGRAM {
            return self
                .hostile(from, HostileReason::Oversized { len: data.len() })
                .await;
        }
        if found_by == FoundBy::Host && !self.is_host(from.ip()) {
            return self.hostile(from, HostileReason::Unsolicited).await;
        }
        let plain = codec::decode_datagram(data);
        match reply::parse_json(&plain).and_then(|root| SysInfo::from_reply(&root)) {
            Ok(info) => self.found(from, found_by, DeviceReply::Legacy(info)).await,
            Err(e) => self.hostile(from, reason_of(e)).await,
        }
    }

    /// A datagram on the UDP 20002 socket.
    async fn on_tdp(&self, data: &[u8], from: SocketAddr) {
        let cfg = &self.run.cfg;
        if from.port() != cfg.tdp_port {
            return self
                .hostile(
                    from,
                    HostileReason::WrongPort {
                        expected: cfg.tdp_port,
                        got: from.port(),
                    },
                )
                .await;
        }
        if data.len() > MAX_REPLY_DATAGRAM {
            return self
                .hostile(from, HostileReason::Oversized { len: data.len() })
                .await;
        }
        if cfg.targets.is_empty() && !self.in_unicast_scope(from.ip()) {
            return self.hostile(from, HostileReason::Unsolicited).await;
        }
        match tdp::decode_reply(data) {
            Ok(info) => {
                self.found(from, FoundBy::Udp20002, DeviceReply::Newer(info))
                    .await
            }
            Err(e) => self.hostile(from, reason_of(e)).await,
        }
    }

    /// TCP connect + framed sysinfo to one address (sweep or host fallback). A refusal or a
    /// timeout leads to the TDP probe; a bad answer is hostile.
    async fn tcp_probe(&self, ip: Ipv4Addr, found_by: FoundBy) {
        let cfg = &self.run.cfg;
        // A sweep cannot wait long on each of hundreds of silent addresses; a known host is
        // worth the patience of a normal request (a lost SYN is retried after 1 s).
        let connect_timeout = match found_by {
            FoundBy::Host => cfg
                .connect_timeout
                .max((cfg.timeout / 2).min(Duration::from_secs(2))),
            _ => cfg.connect_timeout,
        };
        let ccfg = ClientConfig {
            port: cfg.port,
            connect_timeout,
            reply_timeout: cfg.timeout,
            max_frame: DEFAULT_MAX_FRAME,
        };
        let from = SocketAddr::from((ip, cfg.port));
        let exchange = async {
            let mut conn = Connection::connect(IpAddr::V4(ip), &ccfg).await?;
            conn.call_raw(&Request::SysInfo).await
        };
        let result = tokio::select! {
            _ = self.token.cancelled() => return,
            r = exchange => r,
        };
        match result {
            Ok(root) => match SysInfo::from_reply(&root) {
                Ok(info) => self.found(from, found_by, DeviceReply::Legacy(info)).await,
                Err(e) => self.hostile(from, reason_of(e)).await,
            },
            Err(NetError::Frame(f)) => {
                self.hostile(
                    from,
                    HostileReason::BadFrame {
                        detail: crate::net::client::frame_reason(&f),
                    },
                )
                .await
            }
            Err(NetError::Reply(detail)) => {
                let reason = if detail.starts_with("reply is not valid JSON") {
                    HostileReason::NotJson { detail }
                } else {
                    HostileReason::WrongShape { detail }
                };
                self.hostile(from, reason).await
            }
            Err(NetError::Device { code, msg }) => {
                self.hostile(from, HostileReason::DeviceError { code, msg })
                    .await
            }
            // "Refused on 9999" is the sweep-time signature of a newer-protocol device
            // (PROTOCOL.md §8.2); a known host is worth the probe whatever happened.
            Err(NetError::Refused) => self.send_tdp(ip).await,
            Err(
                NetError::Timeout { .. } | NetError::Reset | NetError::Io(_) | NetError::Access(_),
            ) => {
                if found_by == FoundBy::Host {
                    self.send_tdp(ip).await;
                }
            }
        }
        self.changed.send_replace(());
    }
}

fn reason_of(e: ReplyError) -> HostileReason {
    match e {
        ReplyError::NotJson(detail) => HostileReason::NotJson { detail },
        ReplyError::Shape(detail) => HostileReason::WrongShape { detail },
        ReplyError::Device { code, msg, .. } => HostileReason::DeviceError { code, msg },
    }
}

/// A UDP socket on an ephemeral port of every interface, broadcast allowed, large receive buffer.
fn udp_socket() -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_broadcast(true)?;
    let _ = s.set_recv_buffer_size(SOCKET_RECV_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
    UdpSocket::from_std(s.into())
}

/// Reads datagrams until the pass ends; `found_by` says which socket this is (`Udp20002` selects
/// the TDP decoder).
async fn receive<E>(pass: Arc<Pass<E>>, sock: Arc<UdpSocket>, found_by: FoundBy)
where
    E: From<DiscoveryEvent> + Send + 'static,
{
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut errors = 0u32;
    loop {
        let (n, from) = tokio::select! {
            _ = pass.token.cancelled() => return,
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors surface here on some systems; they are not replies.
                    errors += 1;
                    if errors > MAX_RECV_ERRORS {
                        tracing::warn!(error = %e, "discovery receiver gives up");
                        return;
                    }
                    continue;
                }
            },
        };
        errors = 0;
        let data = &buf[..n];
        if found_by == FoundBy::Udp20002 {
            pass.on_tdp(data, from).await;
        } else {
            pass.on_legacy(data, from, found_by).await;
        }
    }
}

/// When round `r` of `rounds` is sent: spread quadratically over the timeout (0, T/9, 4T/9 for
/// three rounds), so a datagram lost in a burst is asked for again soon, and a sleepy device
/// still gets a late chance.
pub(super) fn round_offset(timeout: Duration, r: u32, rounds: u32) -> Duration {
    let x = f64::from(r) / f64::from(rounds.max(1));
    timeout.mul_f64(x * x)
}

/// Sends the UDP probes `rounds` times over the timeout (see [`round_offset`]).
async fn probe_rounds<E>(
    pass: Arc<Pass<E>>,
    bcast: Option<Arc<UdpSocket>>,
    uni: Option<Arc<UdpSocket>>,
) where
    E: From<DiscoveryEvent> + Send + 'static,
{
    let cfg = &pass.run.cfg;
    let probe = Request::SysInfo.encode_udp();
    let tdp_probe = tdp::probe();
    let rounds = cfg.rounds.max(1);
    for r in 0..rounds {
        let at = pass.start + round_offset(cfg.timeout, r, rounds);
        tokio::select! {
            _ = pass.token.cancelled() => return,
            _ = sleep_until(at) => {}
        }
        if let Some(sock) = &bcast {
            for t in &cfg.targets {
                let to = SocketAddr::from((*t, cfg.port));
                if let Err(e) = sock.send_to(&probe, to).await {
                    pass.send_error(to, &e);
                }
                if let Some(tsock) = &pass.tdp {
                    let to = SocketAddr::from((*t, cfg.tdp_port));
                    if let Err(e) = tsock.send_to(&tdp_probe, to).await {
                        pass.send_error(to, &e);
                    }
                }
            }
        }
        if let Some(sock) = &uni {
            for h in &cfg.hosts {
                if pass.is_resolved(*h) {
                    continue;
                }
                let to = SocketAddr::from((*h, cfg.port));
                if let Err(e) = sock.send_to(&probe, to).await {
                    pass.send_error(to, &e);
                }
            }
        }
        if r > 0 {
            let pending: Vec<Ipv4Addr> = pass.state().tdp_pending.keys().copied().collect();
            for ip in pending {
                pass.send_tdp(ip).await;
            }
        }
    }
}

/// Hosts silent on UDP after the fallback delay get the TCP sysinfo.
async fn host_fallbacks<E>(pass: Arc<Pass<E>>, sem: Arc<Semaphore>)
where
    E: From<DiscoveryEvent> + Send + 'static,
{
    let cfg = &pass.run.cfg;
    if cfg.hosts.is_empty() {
        return;
    }
    let at = pass.start + cfg.fallback_delay();
    let mut changed = pass.changed.subscribe();
    loop {
        if cfg.hosts.iter().all(|h| pass.is_resolved(*h)) {
            return;
        }
        tokio::select! {
            _ = pass.token.cancelled() => return,
            _ = sleep_until(at) => break,
            _ = changed.changed() => {}
        }
    }
    let mut set = JoinSet::new();
    for h in cfg.hosts.clone() {
        if pass.is_resolved(h) {
            continue;
        }
        let permit = tokio::select! {
            _ = pass.token.cancelled() => return,
            p = sem.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { return };
        let p = pass.clone();
        set.spawn(async move {
            p.tcp_probe(h, FoundBy::Host).await;
            drop(permit);
        });
    }
    while set.join_next().await.is_some() {}
}

/// The TCP sweep: every address of every range, at most `concurrency` at a time. Addresses are
/// produced lazily, so a large (forced) sweep does not allocate a task per address up front.
async fn sweep<E>(pass: Arc<Pass<E>>, sem: Arc<Semaphore>)
where
    E: From<DiscoveryEvent> + Send + 'static,
{
    let mut set = JoinSet::new();
    // Overlapping or repeated ranges: merged first, so each address is probed once without
    // remembering every address (a forced sweep can be millions).
    for net in ipnet::Ipv4Net::aggregate(&pass.run.cfg.sweeps) {
        for ip in net.hosts() {
            let permit = tokio::select! {
                _ = pass.token.cancelled() => return,
                p = sem.clone().acquire_owned() => p,
            };
            let Ok(permit) = permit else { return };
            let p = pass.clone();
            set.spawn(async move {
                p.tcp_probe(ip, FoundBy::Sweep).await;
                p.run.cfg.sweep_tick();
                drop(permit);
            });
            while set.try_join_next().is_some() {}
        }
    }
    while set.join_next().await.is_some() {}
}

/// Resolves when every sweep address is settled (answered, refused, or timed out; refusals
/// then get the TDP grace) and every known host answered — or the pass timeout is over, since a
/// host that keeps silent costs exactly the timeout.
async fn unicast_settled<E>(pass: Arc<Pass<E>>)
where
    E: From<DiscoveryEvent> + Send + 'static,
{
    let cfg = &pass.run.cfg;
    let sem = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    tokio::join!(
        host_fallbacks(pass.clone(), sem.clone()),
        sweep(pass.clone(), sem)
    );
    let grace = cfg.connect_timeout.min(cfg.timeout);
    let mut changed = pass.changed.subscribe();
    loop {
        let now = Instant::now();
        let (hosts_left, tdp_until) = {
            let st = pass.state();
            let hosts_left = cfg
                .hosts
                .iter()
                .any(|h| !st.resolved.contains(h) && !st.tdp_answered.contains(h));
            let tdp_until = st.tdp_pending.values().max().map(|first| *first + grace);
            (hosts_left, tdp_until)
        };
        let wake = [hosts_left.then_some(pass.deadline), tdp_until]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min();
        let Some(wake) = wake else { return };
        tokio::select! {
            _ = sleep_until(wake) => {}
            _ = changed.changed() => {}
        }
    }
}

struct PassTotals {
    found: usize,
    hostile: usize,
    send_errors: Vec<String>,
}

async fn run_pass<E>(run: &Arc<Run<E>>) -> Result<PassTotals, DiscoveryError>
where
    E: From<DiscoveryEvent> + Send + 'static,
{
    let cfg = &run.cfg;
    let start = Instant::now();
    let bcast = match cfg.targets.is_empty() {
        true => None,
        false => Some(Arc::new(udp_socket()?)),
    };
    let uni = match cfg.hosts.is_empty() {
        true => None,
        false => Some(Arc::new(udp_socket()?)),
    };
    let tdp = match cfg.probe_tdp && !cfg.is_empty() {
        true => Some(Arc::new(udp_socket()?)),
        false => None,
    };
    let pass = Arc::new(Pass {
        run: run.clone(),
        start,
        deadline: start + cfg.timeout,
        token: run.token.child_token(),
        state: Mutex::new(PassState::default()),
        changed: watch::Sender::new(()),
        open: RwLock::new(true),
        tdp: tdp.clone(),
    });
    let mut aux = JoinSet::new();
    if let Some(s) = &bcast {
        aux.spawn(receive(pass.clone(), s.clone(), FoundBy::Broadcast));
    }
    if let Some(s) = &uni {
        aux.spawn(receive(pass.clone(), s.clone(), FoundBy::Host));
    }
    if let Some(s) = &tdp {
        aux.spawn(receive(pass.clone(), s.clone(), FoundBy::Udp20002));
    }
    aux.spawn(probe_rounds(pass.clone(), bcast, uni));

    // Broadcast replies can come at any time until the timeout; the sweep and the hosts end
    // when they are settled (a long sweep outlasts the timeout: it is always complete).
    let has_broadcast = !cfg.targets.is_empty();
    let broadcast_window = async {
        if has_broadcast {
            sleep_until(pass.deadline).await;
        }
    };
    tokio::select! {
        _ = pass.token.cancelled() => {}
        _ = async { tokio::join!(broadcast_window, unicast_settled(pass.clone())) } => {}
    }
    pass.token.cancel();
    *pass.open.write().await = false;
    aux.shutdown().await;
    let mut st = pass.state();
    Ok(PassTotals {
        found: st.found,
        hostile: st.hostile,
        send_errors: std::mem::take(&mut st.send_errors),
    })
}

pub(super) async fn run<E>(
    cfg: DiscoveryConfig,
    interval: Option<Duration>,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
) -> Result<(), DiscoveryError>
where
    E: From<DiscoveryEvent> + Send + 'static,
{
    let hosts = cfg.hosts.iter().copied().collect();
    let run = Arc::new(Run {
        cfg,
        start: Instant::now(),
        tx,
        token: token.child_token(),
        hosts,
    });
    let (mut rounds, mut found, mut hostile) = (0u64, 0usize, 0usize);
    let mut failure = None;
    loop {
        let pass_start = Instant::now();
        let t = match run_pass(&run).await {
            Ok(t) => t,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        found += t.found;
        hostile += t.hostile;
        if run.token.is_cancelled() {
            // A partial pass says nothing about who is missing: no RoundDone.
            break;
        }
        run.emit(DiscoveryEvent::RoundDone {
            round: rounds,
            found: t.found,
            hostile: t.hostile,
            send_errors: t.send_errors,
            at: run.ms(),
        })
        .await;
        rounds += 1;
        let Some(interval) = interval else { break };
        tokio::select! {
            _ = run.token.cancelled() => break,
            _ = sleep_until(pass_start + interval) => {}
        }
    }
    run.emit(DiscoveryEvent::Finished {
        rounds,
        found,
        hostile,
        cancelled: run.token.is_cancelled(),
        error: failure.as_ref().map(ToString::to_string),
        at: run.ms(),
    })
    .await;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_start_at_once_and_spread_over_the_timeout() {
        let t = Duration::from_millis(900);
        let at: Vec<u128> = (0..3).map(|r| round_offset(t, r, 3).as_millis()).collect();
        assert_eq!(at, vec![0, 100, 400]);
        assert_eq!(round_offset(t, 0, 1), Duration::ZERO);
        assert!(round_offset(t, 9, 10) < t);
    }
}
