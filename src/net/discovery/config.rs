//! What one discovery run probes and how ([`DiscoveryConfig`]), and the checks of what a user
//! could get wrong. Plain data: the engine reads it, `cmd` builds it from the flags.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::Ipv4Net;

use crate::protocol::tdp::TDP_PORT;

/// A sweep larger than this prefix (more addresses) needs `--force`.
pub const MAX_SWEEP_PREFIX_WITHOUT_FORCE: u8 = 16;
/// Default number of probe sends per pass.
pub const DEFAULT_ROUNDS: u32 = 3;
/// Default bound on concurrent TCP connections during a sweep.
pub const DEFAULT_CONCURRENCY: usize = 128;
/// Default TCP connect timeout of the sweep and the host fallback. Short: on a real LAN an
/// address where nothing listens does not refuse, it just never answers.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

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
    /// Counts the sweep's addresses as each is settled, for a progress bar (`discover`).
    pub sweep_progress: SweepProgress,
}

/// A shared count of the sweep addresses settled (answered, refused or timed out) in this run,
/// read by whoever shows progress. Not part of what a configuration *is*: any two compare equal.
#[derive(Debug, Clone, Default)]
pub struct SweepProgress(pub std::sync::Arc<std::sync::atomic::AtomicU64>);

impl PartialEq for SweepProgress {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl SweepProgress {
    /// Addresses settled so far.
    pub fn done(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn tick(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl DiscoveryConfig {
    /// Addresses the sweep probes in one pass (overlapping ranges counted once).
    pub fn sweep_size(&self) -> u64 {
        ipnet::Ipv4Net::aggregate(&self.sweeps)
            .iter()
            .map(|n| n.hosts().count() as u64)
            .sum()
    }

    /// The sweep settled one more address.
    pub(crate) fn sweep_tick(&self) {
        self.sweep_progress.tick();
    }
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
            sweep_progress: SweepProgress::default(),
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
