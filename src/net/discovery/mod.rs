//! Discovery: UDP broadcast, known hosts, TCP sweep and the UDP 20002 probe (PROTOCOL.md §3, §8).
//!
//! # How to use it
//!
//! Build a [`DiscoveryConfig`] (the commands build it from the shared `--target/--host/--sweep`
//! flags with `plugfleet::cmd::args::discovery_config`), then start the engine with [`spawn`] (one pass) or
//! [`spawn_continuous`] (a pass every `interval`, for the TUI). The engine sends
//! [`DiscoveryEvent`]s over your channel, converted with `E::from`, so the TUI can wrap them in its
//! own event enum:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use plugfleet::net::discovery::{self, DiscoveryConfig, DiscoveryEvent};
//! let cfg = DiscoveryConfig {
//!     hosts: vec![std::net::Ipv4Addr::new(127, 0, 0, 5)],
//!     ..DiscoveryConfig::default()
//! };
//! cfg.validate(false)?;
//! let (tx, mut rx) = tokio::sync::mpsc::channel::<DiscoveryEvent>(256);
//! let token = tokio_util::sync::CancellationToken::new();
//! let task = discovery::spawn(cfg, tx, token.clone());
//! while let Some(ev) = rx.recv().await {
//!     if let DiscoveryEvent::Found(s) = &ev {
//!         println!("{} at {} ({})", s.reply.model(), s.ip, s.found_by);
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
//! to the fleet model in `fleet`, which sits above this layer.
//!
//! Network safety: the engine sends only to the addresses in the config. The only code that
//! picks addresses by itself is [`default_broadcast_targets`], used by
//! the commands when no `--target/--host/--sweep` is given.

mod engine;
pub mod loopback;

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::protocol::tdp::TDP_PORT;
// The results of discovery are plain data below both `net` and `fleet`; re-exported here so
// code written before they moved still compiles (`src/` imports them from `protocol::sighting`).
pub use crate::protocol::sighting::{
    DeviceReply, DiscoveryEvent, FoundBy, HostileReason, MAX_REPLY_DATAGRAM, Sighting,
};

/// A sweep larger than this prefix (more addresses) needs `--force`.
pub const MAX_SWEEP_PREFIX_WITHOUT_FORCE: u8 = 16;
/// Default number of probe sends per pass.
pub const DEFAULT_ROUNDS: u32 = 3;
/// Default bound on concurrent TCP connections during a sweep.
pub const DEFAULT_CONCURRENCY: usize = 128;
/// Default TCP connect timeout of the sweep and the host fallback. Short: on a real LAN an
/// address where nothing listens does not refuse, it just never answers.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Receive buffer for one datagram: larger than any IPv4 UDP payload.
pub const RECV_BUFFER: usize = 64 * 1024 + 1;

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
    /// Checks what a user could get wrong. `force` allows sweeps larger than a /16.
    pub fn validate(&self, force: bool) -> Result<(), InvalidDiscoveryConfig> {
        if self.port == 0 {
            return Err(InvalidDiscoveryConfig(
                "--port 0 is not a port a plug listens on".into(),
            ));
        }
        if self.tdp_port == 0 {
            return Err(InvalidDiscoveryConfig(
                "--tdp-port 0 is not a valid port".into(),
            ));
        }
        if self.rounds == 0 {
            return Err(InvalidDiscoveryConfig(
                "at least one probe round is needed".into(),
            ));
        }
        if self.concurrency == 0 {
            return Err(InvalidDiscoveryConfig(
                "--concurrency must be at least 1".into(),
            ));
        }
        if !force {
            if let Some(net) = self
                .sweeps
                .iter()
                .find(|n| n.prefix_len() < MAX_SWEEP_PREFIX_WITHOUT_FORCE)
            {
                return Err(InvalidDiscoveryConfig(format!(
                    "--sweep {net} covers {} addresses, more than a /{MAX_SWEEP_PREFIX_WITHOUT_FORCE} \
                     ({}); narrow it or add --force",
                    sweep_len(net),
                    1u64 << (32 - MAX_SWEEP_PREFIX_WITHOUT_FORCE)
                )));
            }
            let limit = 1u64 << (32 - MAX_SWEEP_PREFIX_WITHOUT_FORCE);
            let total = self.sweep_addresses();
            if total > limit {
                return Err(InvalidDiscoveryConfig(format!(
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

/// A discovery configuration that cannot be run (port 0, no rounds, a sweep too large without
/// `force`…). The message names the flag a user would change; `cmd` reports it as a usage
/// error (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidDiscoveryConfig(pub String);

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

    #[test]
    fn default_targets_end_with_the_limited_broadcast() {
        let t = default_broadcast_targets();
        assert_eq!(t.last(), Some(&Ipv4Addr::BROADCAST));
        assert!(t.iter().all(|a| !a.is_loopback()));
    }

    #[test]
    fn large_sweeps_need_force() {
        let mut cfg = DiscoveryConfig {
            sweeps: vec!["10.0.0.0/15".parse().unwrap()],
            ..DiscoveryConfig::default()
        };
        let e = cfg.validate(false).unwrap_err();
        assert!(e.0.contains("--force"), "{e}");
        assert!(cfg.validate(true).is_ok());
        cfg.sweeps = vec!["10.0.0.0/16".parse().unwrap()];
        assert!(cfg.validate(false).is_ok());
        // Several ranges count together.
        cfg.sweeps.push("10.1.0.0/17".parse().unwrap());
        let e = cfg.validate(false).unwrap_err();
        assert!(e.0.contains("together"), "{e}");
        assert!(cfg.validate(true).is_ok());
    }

    #[test]
    fn zero_port_rounds_or_concurrency_are_refused() {
        let ok = DiscoveryConfig::default();
        assert!(ok.validate(false).is_ok());
        for bad in [
            DiscoveryConfig {
                port: 0,
                ..ok.clone()
            },
            DiscoveryConfig {
                tdp_port: 0,
                ..ok.clone()
            },
            DiscoveryConfig {
                rounds: 0,
                ..ok.clone()
            },
            DiscoveryConfig {
                concurrency: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate(true).is_err(), "{bad:?}");
        }
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
}
