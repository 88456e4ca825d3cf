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

mod config;
mod engine;
pub mod loopback;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{
    DEFAULT_CONCURRENCY, DEFAULT_CONNECT_TIMEOUT, DEFAULT_ROUNDS, DiscoveryConfig,
    InvalidDiscoveryConfig, MAX_SWEEP_PREFIX_WITHOUT_FORCE, default_broadcast_targets, sweep_len,
};
pub use engine::{DiscoveryError, RECV_BUFFER};
// The results of discovery are plain data below both `net` and `fleet`; re-exported here so
// code written before they moved still compiles (`src/` imports them from `protocol::sighting`).
pub use crate::protocol::sighting::{
    DeviceReply, DiscoveryEvent, FoundBy, HostileReason, MAX_REPLY_DATAGRAM, Sighting,
};

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
