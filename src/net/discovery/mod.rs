//! Discovery: UDP broadcast, known hosts, TCP sweep and the UDP 20002 probe (PROTOCOL.md §3, §8).
//!
//! # How to use it
//!
//! Build a [`DiscoveryConfig`] (usually with [`DiscoveryConfig::from_args`] from the shared
//! `--target/--host/--sweep` flags), then start the engine with [`spawn`] (one pass) or
//! [`spawn_continuous`] (a pass every `interval`, for the TUI). The engine sends
//! [`DiscoveryEvent`]s over your channel, converted with `E::from`, so the TUI can wrap them in its
//! own event enum:
//!
//! ```no_run
//! # async fn demo(args: plugfleet::cli::TargetArgs) -> anyhow::Result<()> {
//! use plugfleet::net::discovery::{self, DiscoveryConfig, DiscoveryEvent};
//! use plugfleet::fleet::registry::Registry;
//! let cfg = DiscoveryConfig::from_args(&args)?;
//! let (tx, mut rx) = tokio::sync::mpsc::channel::<DiscoveryEvent>(256);
//! let token = tokio_util::sync::CancellationToken::new();
//! let task = discovery::spawn(cfg, tx, token.clone());
//! let mut registry = Registry::new(3);
//! while let Some(ev) = rx.recv().await {
//!     for change in registry.apply(&ev) {
//!         println!("{change:?}");
//!     }
//! }
//! task.await??;
//! # Ok(()) }
//! ```
//!
//! # What one pass does
//!
//! All at once, from the moment the pass starts (`t = 0`):
//!
//! * **Broadcast** — the unframed sysinfo datagram to every `targets` address on `port`, sent
//!   `rounds` times spread over `timeout` (UDP is lossy): at once, then quadratically later
//!   (0, T/9, 4T/9 for three rounds) so a lost datagram is asked for again soon and a sleepy
//!   device still gets a late chance. Replies from any address count.
//! * **Known hosts** — the same datagram unicast to every `hosts` address each round until the
//!   host answered; a host still silent after [`DiscoveryConfig::fallback_delay`] gets the framed
//!   sysinfo over TCP (a plug that ignores UDP is still found).
//! * **Sweep** — every address of every `sweeps` range gets a TCP connect (`connect_timeout`,
//!   at most `concurrency` at a time) and, if it accepts, the framed sysinfo request.
//! * **UDP 20002 (TDP)** — when `probe_tdp` is on: the TDP probe to every broadcast target on
//!   `tdp_port` each round, and unicast (repeated each round until answered) to every sweep
//!   address whose port 9999 refused and to every known host that failed on TCP. "Refused on 9999 + a TDP answer" is how a newer-protocol (KLAP/AES) device shows
//!   up: as a [`DeviceReply::Newer`] sighting with [`FoundBy::Udp20002`].
//!
//! Every decoded reply is sent as [`DiscoveryEvent::Found`] **the moment it is decoded** (once
//! per address and provenance per pass). Anything else that arrives — garbage, a datagram over
//! [`MAX_REPLY_DATAGRAM`], JSON of the wrong shape, a device error, a reply from a port other
//! than the one probed, an unsolicited unicast reply, a bad TCP frame — is counted and reported
//! as [`DiscoveryEvent::Hostile`]; it never ends the pass.
//!
//! A pass ends when all of these hold: the broadcast window (`timeout`, only when broadcast
//! targets are set — there is no way to know that every device answered) is over; every known
//! host answered, or `timeout` is over; every sweep address is settled — answered, or refused
//! (then a short grace for its UDP 20002 answer), or timed out (`connect_timeout`, then `timeout`
//! for the reply). A sweep is therefore always complete, even when it takes longer than `timeout`
//! (cancel the token to stop it). Then [`DiscoveryEvent::RoundDone`] is sent. [`DiscoveryEvent::Finished`] is the
//! last event of a run (after the only pass, or after cancellation in continuous mode).
//!
//! Identity (merging by MAC, provenances, IP changes, liveness) is not done here: feed the events
//! to [`crate::fleet::registry::Registry`].
//!
//! Network safety: the engine sends only to the addresses in the config. The only code that
//! picks addresses by itself is [`default_broadcast_targets`], used by
//! [`DiscoveryConfig::from_args`] when no `--target/--host/--sweep` is given.

mod engine;
pub mod loopback;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::{TargetArgs, UsageError};
use crate::protocol::SysInfo;
use crate::protocol::tdp::{TDP_PORT, TdpInfo};

/// A sweep larger than this prefix (more addresses) needs `--force`.
pub const MAX_SWEEP_PREFIX_WITHOUT_FORCE: u8 = 16;
/// Default number of probe sends per pass.
pub const DEFAULT_ROUNDS: u32 = 3;
/// Default bound on concurrent TCP connections during a sweep.
pub const DEFAULT_CONCURRENCY: usize = 128;
/// Default TCP connect timeout of the sweep and the host fallback. Short: on a real LAN an
/// address where nothing listens does not refuse, it just never answers.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A discovery reply datagram larger than this is hostile (a six-outlet strip's sysinfo is
/// about 1.5 KB). The receive buffer is [`RECV_BUFFER`], so the real length is always known.
pub const MAX_REPLY_DATAGRAM: usize = 16 * 1024;
/// Receive buffer for one datagram: larger than any IPv4 UDP payload.
pub const RECV_BUFFER: usize = 64 * 1024 + 1;

/// How a device was found. Serialised lowercase (`"broadcast"`, `"host"`, `"sweep"`,
/// `"udp20002"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    /// Answered the UDP 9999 broadcast.
    Broadcast,
    /// Answered a unicast probe (UDP, or the TCP fallback) to a known host.
    Host,
    /// Answered the framed sysinfo request of the TCP sweep.
    Sweep,
    /// Answered the UDP 20002 (TDP) probe of newer-protocol devices.
    Udp20002,
}

impl FoundBy {
    pub fn as_str(self) -> &'static str {
        match self {
            FoundBy::Broadcast => "broadcast",
            FoundBy::Host => "host",
            FoundBy::Sweep => "sweep",
            FoundBy::Udp20002 => "udp20002",
        }
    }
}

impl std::fmt::Display for FoundBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one discovery run probes and how.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryConfig {
    /// Broadcast addresses for the UDP 9999 (and 20002) probes.
    pub targets: Vec<Ipv4Addr>,
    /// Known plug addresses, probed by unicast UDP with a TCP fallback.
    pub hosts: Vec<Ipv4Addr>,
    /// Ranges swept over TCP.
    pub sweeps: Vec<Ipv4Net>,
    /// The legacy port (9999).
    pub port: u16,
    /// The newer devices' discovery port (20002).
    pub tdp_port: u16,
    /// Send the UDP 20002 probe at all.
    pub probe_tdp: bool,
    /// Duration of one pass (the broadcast listening window; the cap for everything else).
    pub timeout: Duration,
    /// How many times the UDP probes are sent during one pass, spread over `timeout`.
    pub rounds: u32,
    /// At most this many TCP connections at once (sweep and host fallback).
    pub concurrency: usize,
    /// TCP connect timeout of the sweep and of the host fallback.
    pub connect_timeout: Duration,
}

impl Default for DiscoveryConfig {
    /// Nothing to probe (add targets, hosts or sweeps), default timings.
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            hosts: Vec::new(),
            sweeps: Vec::new(),
            port: crate::protocol::DEFAULT_PORT,
            tdp_port: TDP_PORT,
            probe_tdp: true,
            timeout: Duration::from_secs(3),
            rounds: DEFAULT_ROUNDS,
            concurrency: DEFAULT_CONCURRENCY,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl DiscoveryConfig {
    /// From the shared command-line flags. If any of `--target/--host/--sweep` is given only
    /// those are used; otherwise the targets are [`default_broadcast_targets`]. Bad input
    /// (IPv6 addresses, port 0, a sweep larger than a /16 without `--force`) is a [`UsageError`].
    pub fn from_args(args: &TargetArgs) -> Result<Self, UsageError> {
        let v4 = |what: &str, ip: &IpAddr| match ip {
            IpAddr::V4(v4) => Ok(*v4),
            IpAddr::V6(_) => Err(UsageError(format!(
                "{what} {ip}: only IPv4 is supported (Kasa plugs have no IPv6)"
            ))),
        };
        let targets = args
            .targets
            .iter()
            .map(|ip| v4("--target", ip))
            .collect::<Result<Vec<_>, _>>()?;
        let hosts = args
            .hosts
            .iter()
            .map(|ip| v4("--host", ip))
            .collect::<Result<Vec<_>, _>>()?;
        let mut cfg = Self {
            targets,
            hosts,
            sweeps: args.sweeps.clone(),
            port: args.port,
            timeout: args.timeout,
            ..Self::default()
        };
        if !args.is_explicit() {
            cfg.targets = default_broadcast_targets();
        }
        cfg.validate(args.force)?;
        Ok(cfg)
    }

    /// Checks what a user could get wrong. `force` allows sweeps larger than a /16.
    pub fn validate(&self, force: bool) -> Result<(), UsageError> {
        if self.port == 0 {
            return Err(UsageError(
                "--port 0 is not a port a plug listens on".into(),
            ));
        }
        if self.tdp_port == 0 {
            return Err(UsageError("--tdp-port 0 is not a valid port".into()));
        }
        if self.rounds == 0 {
            return Err(UsageError("at least one probe round is needed".into()));
        }
        if self.concurrency == 0 {
            return Err(UsageError("--concurrency must be at least 1".into()));
        }
        if !force {
            if let Some(net) = self
                .sweeps
                .iter()
                .find(|n| n.prefix_len() < MAX_SWEEP_PREFIX_WITHOUT_FORCE)
            {
                return Err(UsageError(format!(
                    "--sweep {net} covers {} addresses, more than a /{MAX_SWEEP_PREFIX_WITHOUT_FORCE} \
                     ({}); narrow it or add --force",
                    sweep_len(net),
                    1u64 << (32 - MAX_SWEEP_PREFIX_WITHOUT_FORCE)
                )));
            }
            let limit = 1u64 << (32 - MAX_SWEEP_PREFIX_WITHOUT_FORCE);
            let total = self.sweep_addresses();
            if total > limit {
                return Err(UsageError(format!(
                    "the --sweep ranges cover {total} addresses together, more than a \
                     /{MAX_SWEEP_PREFIX_WITHOUT_FORCE} ({limit}); narrow them or add --force"
                )));
            }
        }
        Ok(())
    }

    /// How long a known host may stay silent on UDP before the TCP fallback is tried.
    pub fn fallback_delay(&self) -> Duration {
        (self.timeout / self.rounds.max(1)).min(Duration::from_millis(250))
    }

    /// True when nothing would be probed.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.hosts.is_empty() && self.sweeps.is_empty()
    }

    /// Number of addresses the sweeps cover (overlaps counted once): the TCP connections of a
    /// pass.
    pub fn sweep_addresses(&self) -> u64 {
        Ipv4Net::aggregate(&self.sweeps).iter().map(sweep_len).sum()
    }
}

/// Number of addresses of `net` the sweep probes (network and broadcast addresses skipped for
/// prefixes shorter than /31, as [`Ipv4Net::hosts`] does).
pub fn sweep_len(net: &Ipv4Net) -> u64 {
    let all = 1u64 << (32 - u32::from(net.prefix_len()));
    if net.prefix_len() >= 31 { all } else { all - 2 }
}

/// Every up, broadcast-capable IPv4 interface's directed broadcast address (loopback and
/// point-to-point links skipped), plus `255.255.255.255` — the default when the user names no
/// target. Deduplicated, in interface order.
pub fn default_broadcast_targets() -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    if let Ok(ifs) = if_addrs::get_if_addrs() {
        for i in ifs {
            if i.is_loopback() || i.is_p2p() {
                continue;
            }
            let if_addrs::IfAddr::V4(a) = &i.addr else {
                continue;
            };
            match a.broadcast {
                Some(b) if !b.is_unspecified() && !out.contains(&b) => out.push(b),
                _ => {}
            }
        }
    }
    if !out.contains(&Ipv4Addr::BROADCAST) {
        out.push(Ipv4Addr::BROADCAST);
    }
    out
}

/// What a device said about itself. (Not boxed: events are few and moved whole, and the
/// agreed shape is `Legacy(SysInfo)`.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "info", rename_all = "lowercase")]
pub enum DeviceReply {
    /// A port-9999 sysinfo (legacy XOR protocol).
    Legacy(SysInfo),
    /// A UDP 20002 discovery answer (newer KLAP/AES transport).
    Newer(TdpInfo),
}

impl DeviceReply {
    /// Normalised MAC (`AA:BB:CC:DD:EE:FF`).
    pub fn mac(&self) -> &str {
        match self {
            DeviceReply::Legacy(s) => &s.mac,
            DeviceReply::Newer(t) => &t.mac,
        }
    }

    /// The device id (`deviceId` of sysinfo or `device_id` of TDP — different formats).
    pub fn device_id(&self) -> Option<&str> {
        match self {
            DeviceReply::Legacy(s) => Some(&s.device_id),
            DeviceReply::Newer(t) => t.device_id.as_deref(),
        }
    }

    pub fn model(&self) -> &str {
        match self {
            DeviceReply::Legacy(s) => &s.model,
            DeviceReply::Newer(t) => &t.model,
        }
    }

    /// `legacy`, or the newer transport's label (`klap`, `klap-v2`, `aes`, `tdp`).
    pub fn protocol(&self) -> &'static str {
        match self {
            DeviceReply::Legacy(_) => "legacy",
            DeviceReply::Newer(t) => t.protocol_label(),
        }
    }
}

/// One decoded answer of one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sighting {
    /// The address the reply came from.
    pub ip: IpAddr,
    /// The port the reply came from (the probed port: `port` or `tdp_port`).
    pub port: u16,
    pub found_by: FoundBy,
    /// Milliseconds since the run started ([`spawn`]/[`spawn_continuous`] was called).
    pub at: u64,
    pub reply: DeviceReply,
}

/// Why an incoming reply was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HostileReason {
    #[error("datagram of {len} bytes is larger than {MAX_REPLY_DATAGRAM}")]
    Oversized { len: usize },
    #[error("not JSON after decoding: {detail}")]
    NotJson { detail: String },
    #[error("JSON of the wrong shape: {detail}")]
    WrongShape { detail: String },
    #[error("device error {code}: {msg}")]
    DeviceError { code: i64, msg: String },
    #[error("reply from port {got}, probed port {expected}")]
    WrongPort { expected: u16, got: u16 },
    #[error("unsolicited reply from an address that was not probed")]
    Unsolicited,
    #[error("bad reply: {detail}")]
    BadFrame { detail: String },
}

/// What the engine reports. See the module documentation for the order of events.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum DiscoveryEvent {
    /// A device answered (sent as soon as the reply is decoded).
    Found(Sighting),
    /// A reply that was counted and ignored.
    Hostile {
        from: SocketAddr,
        reason: HostileReason,
    },
    /// One pass is over: every device that was going to answer in it has been reported. This is
    /// the unit of liveness (`Registry` marks devices missing N rounds in a row offline).
    RoundDone {
        /// 0 for the first pass, then 1, 2, …
        round: u64,
        /// Distinct (address, provenance) sightings in this pass.
        found: usize,
        /// Hostile replies in this pass.
        hostile: usize,
        /// Sends that failed (e.g. "255.255.255.255:9999: network unreachable").
        send_errors: Vec<String>,
        /// Milliseconds since the run started.
        at: u64,
    },
    /// The run is over (the last event).
    Finished {
        /// Number of passes completed.
        rounds: u64,
        /// `Found` events sent, over all passes.
        found: usize,
        /// `Hostile` replies, over all passes.
        hostile: usize,
        /// True when it ended because the token was cancelled.
        cancelled: bool,
        /// Why the engine could not go on (it could not open a socket); the task returns the
        /// same error.
        error: Option<String>,
        at: u64,
    },
}

/// Why the engine could not run at all (device failures are events, not errors).
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot open a UDP socket: {0}")]
    Socket(#[from] std::io::Error),
}

/// Runs one discovery pass in a task: events over `tx`, then `RoundDone` and `Finished`. The
/// task ends early (with `Finished { cancelled: true }`) when `token` is cancelled or the
/// receiver is dropped. `Finished` is always the last event, also when the engine fails
/// (`Finished { error: Some(..) }`).
pub fn spawn<E>(
    cfg: DiscoveryConfig,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
) -> JoinHandle<Result<(), DiscoveryError>>
where
    E: From<DiscoveryEvent> + Send + 'static,
{
    tokio::spawn(run(cfg, None, tx, token))
}

/// Continuous mode (TUI): a pass every `interval` (start to start; immediately again if a pass
/// took longer), each followed by `RoundDone`, until `token` is cancelled; then `Finished`.
pub fn spawn_continuous<E>(
    cfg: DiscoveryConfig,
    interval: Duration,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
) -> JoinHandle<Result<(), DiscoveryError>>
where
    E: From<DiscoveryEvent> + Send + 'static,
{
    tokio::spawn(run(cfg, Some(interval), tx, token))
}

/// The engine itself, for callers that want to await it in place: one pass (`interval` None) or
/// continuous passes.
pub async fn run<E>(
    cfg: DiscoveryConfig,
    interval: Option<Duration>,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
) -> Result<(), DiscoveryError>
where
    E: From<DiscoveryEvent> + Send + 'static,
{
    engine::run(cfg, interval, tx, token).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> TargetArgs {
        TargetArgs {
            port: 9999,
            timeout: Duration::from_secs(1),
            ..TargetArgs::default()
        }
    }

    #[test]
    fn explicit_args_replace_the_default_broadcast() {
        let mut a = args();
        a.hosts.push("127.0.0.5".parse().unwrap());
        let cfg = DiscoveryConfig::from_args(&a).unwrap();
        assert!(cfg.targets.is_empty());
        assert_eq!(cfg.hosts, vec![Ipv4Addr::new(127, 0, 0, 5)]);
    }

    #[test]
    fn default_targets_end_with_the_limited_broadcast() {
        let t = default_broadcast_targets();
        assert_eq!(t.last(), Some(&Ipv4Addr::BROADCAST));
        assert!(t.iter().all(|a| !a.is_loopback()));
    }

    #[test]
    fn large_sweeps_need_force() {
        let mut a = args();
        a.sweeps.push("10.0.0.0/15".parse().unwrap());
        let e = DiscoveryConfig::from_args(&a).unwrap_err();
        assert!(e.0.contains("--force"), "{e}");
        a.force = true;
        assert!(DiscoveryConfig::from_args(&a).is_ok());
        a.force = false;
        a.sweeps = vec!["10.0.0.0/16".parse().unwrap()];
        assert!(DiscoveryConfig::from_args(&a).is_ok());
        // Several ranges count together.
        a.sweeps.push("10.1.0.0/17".parse().unwrap());
        let e = DiscoveryConfig::from_args(&a).unwrap_err();
        assert!(e.0.contains("together"), "{e}");
        a.force = true;
        assert!(DiscoveryConfig::from_args(&a).is_ok());
    }

    #[test]
    fn ipv6_and_port_zero_are_usage_errors() {
        let mut a = args();
        a.hosts.push("::1".parse().unwrap());
        assert!(
            DiscoveryConfig::from_args(&a)
                .unwrap_err()
                .0
                .contains("IPv4")
        );
        let mut a = args();
        a.targets.push("127.255.255.255".parse().unwrap());
        a.port = 0;
        assert!(DiscoveryConfig::from_args(&a).is_err());
    }

    #[test]
    fn sweep_sizes() {
        assert_eq!(sweep_len(&"127.1.2.0/24".parse().unwrap()), 254);
        assert_eq!(sweep_len(&"127.1.2.4/31".parse().unwrap()), 2);
        assert_eq!(sweep_len(&"127.1.2.4/32".parse().unwrap()), 1);
        let cfg = DiscoveryConfig {
            sweeps: vec!["127.0.0.0/16".parse().unwrap()],
            ..DiscoveryConfig::default()
        };
        assert_eq!(cfg.sweep_addresses(), 65534);
        let cfg = DiscoveryConfig {
            sweeps: vec![
                "127.1.2.0/24".parse().unwrap(),
                "127.1.2.0/25".parse().unwrap(),
                "127.1.2.0/24".parse().unwrap(),
            ],
            ..DiscoveryConfig::default()
        };
        assert_eq!(cfg.sweep_addresses(), 254, "overlaps once");
    }

    #[test]
    fn found_by_serialises_lowercase() {
        assert_eq!(
            serde_json::to_string(&[FoundBy::Broadcast, FoundBy::Udp20002]).unwrap(),
            r#"["broadcast","udp20002"]"#
        );
    }
}
