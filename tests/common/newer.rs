//! What the newer-protocol tests share: a simulated fleet with its KLAP/AES servers, and the
//! real poller run over the commands discovery produced. Used as
//! `#[path = "common/newer.rs"] mod newer_common;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use plugfleet::app::event::Command;
use plugfleet::net::ClientConfig;
use plugfleet::net::poller::{self, Control, PollConfig, PollReport, Target};
use plugfleet::sim::klap::{self as simklap, KlapFault, KlapFleet, KlapSpec};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// `profiles` on `base`, `base + 1`, …, with legacy `faults` and `klap` faults by index, and
/// the newer-protocol plugs' KLAP/AES servers.
pub async fn klap_fleet(
    base: Ipv4Addr,
    profiles: &[&str],
    faults: Vec<(usize, FaultKind)>,
    klap: Vec<(usize, KlapFault)>,
) -> (Fleet, KlapFleet) {
    let ip = |i: usize| Ipv4Addr::from(u32::from(base) + i as u32);
    let spec = FleetSpec {
        profiles: profiles.iter().map(|s| s.to_string()).collect(),
        faults: faults.into_iter().map(|(i, f)| (ip(i), f)).collect(),
        ..FleetSpec::on_free_port(base, profiles.len())
    };
    let fleet = sim::start(spec).await.expect("fleet starts");
    let k = simklap::serve(
        &fleet,
        &KlapSpec {
            faults: klap.into_iter().map(|(i, f)| (ip(i), f)).collect(),
            ..KlapSpec::default()
        },
    )
    .await
    .expect("KLAP servers start");
    (fleet, k)
}

/// Runs the real poller (30 ms interval) over the `Track`/`TrackNewer` commands in `cmds` until
/// every tracked device was reported `n` times (at most 60 s, else the test fails).
pub async fn poll_rounds(cmds: &[Command], n: usize) -> HashMap<String, Vec<PollReport>> {
    let cfg = PollConfig {
        interval: Duration::from_millis(30),
        max_backoff: Duration::from_millis(60),
        client: ClientConfig::with_timeout(9999, Duration::from_secs(2)),
        ..PollConfig::default()
    };
    let (ctl_tx, ctl_rx) = mpsc::channel(64);
    let (tx, mut rx) = mpsc::channel::<PollReport>(64);
    let token = CancellationToken::new();
    let task = tokio::spawn(poller::run(cfg, ctl_rx, tx, token.clone()));
    let mut keys = Vec::new();
    for c in cmds {
        let ctl = match c.clone() {
            Command::Track { key, addr } => Control::Track(Target { key, addr }),
            Command::TrackNewer { key, addr, spec } => {
                Control::TrackNewer(Target { key, addr }, spec)
            }
            _ => continue,
        };
        if let Control::Track(t) | Control::TrackNewer(t, _) = &ctl {
            keys.push(t.key.clone());
        }
        ctl_tx.send(ctl).await.unwrap();
    }
    let mut got: HashMap<String, Vec<PollReport>> = HashMap::new();
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        while keys.iter().any(|k| got.get(k).is_none_or(|v| v.len() < n)) {
            let r = rx.recv().await.expect("poller runs");
            got.entry(r.key.clone()).or_default().push(r);
        }
    })
    .await;
    token.cancel();
    let _ = task.await;
    assert!(all.is_ok(), "every device polled {n} times: {got:?}");
    got
}
