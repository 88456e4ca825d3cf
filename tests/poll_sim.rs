#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The poller against the simulator, over kept connections: one request per plug per cycle,
//! a strip read per outlet, a plug without a meter keeps its sysinfo, and a plug that closes
//! the connection after every reply (`close-after-reply`) is still read correctly every cycle.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use plugfleet::net::ClientConfig;
use plugfleet::net::poller::{Control, PollConfig, PollReport, Target, run_with_stats};
use plugfleet::net::pool::PoolStats;
use plugfleet::sim::{self, FaultKind, FleetSpec};
use tokio_util::sync::CancellationToken;

fn base() -> Ipv4Addr {
    let pid = (std::process::id() % 200) as u8;
    Ipv4Addr::new(127, 207, pid, 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plug_is_read_every_cycle_including_one_that_closes_after_each_reply() {
    let b = base();
    let closing = Ipv4Addr::from(u32::from(b) + 3);
    let spec = FleetSpec {
        profiles: vec![
            "hs110-us-hw1".into(),
            "hs100-us-hw2".into(),
            "hs300-us-hw2".into(),
            "hs110-eu-hw1".into(),
        ],
        faults: vec![(closing, FaultKind::CloseAfterReply)],
        ..FleetSpec::on_free_port(b, 4)
    };
    let fleet = sim::start(spec).await.expect("fleet starts");
    let port = fleet.port();
    let cfg = PollConfig {
        interval: Duration::from_millis(40),
        client: ClientConfig::with_timeout(port, Duration::from_secs(2)),
        strip_gap: Duration::from_millis(1),
        ..PollConfig::default()
    };
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(16);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PollReport>(64);
    let token = CancellationToken::new();
    let stats = Arc::new(PoolStats::default());
    let task = tokio::spawn(run_with_stats(
        cfg,
        ctl_rx,
        tx,
        token.clone(),
        stats.clone(),
    ));
    for p in fleet.plugs() {
        ctl_tx
            .send(Control::Track(Target {
                key: p.addr().to_string(),
                addr: SocketAddr::new(p.addr(), port),
            }))
            .await
            .unwrap();
    }
    let mut polls: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while polls.len() < 4 || polls.values().any(|n| *n < 4) {
        let rep = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("reports keep coming")
            .expect("poller alive");
        let p = rep
            .outcome
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", rep.key));
        let plug = fleet
            .plugs()
            .iter()
            .find(|h| h.addr() == rep.addr.ip())
            .unwrap();
        match p.sysinfo.model.as_str() {
            m if m.starts_with("HS300") => {
                assert_eq!(p.outlets.len(), 6, "{m}");
                assert!(p.outlets.iter().all(|(_, r)| r.is_ok()), "{:?}", p.outlets);
                assert_eq!(p.realtime, None);
            }
            m if m.starts_with("HS100") => {
                assert!(!plug.has_meter());
                assert_eq!(p.realtime, None, "no meter: no reading, sysinfo kept");
            }
            m => {
                assert!(plug.has_meter(), "{m}");
                let r = p.realtime.clone().expect("a reading").expect("read");
                assert!(r.power_w.is_some(), "{r:?}");
            }
        }
        *polls.entry(rep.key.clone()).or_default() += 1;
    }
    token.cancel();
    task.await.unwrap();
    assert_eq!(stats.open(), 0, "no socket left open");
    let n = polls[&closing.to_string()] as u64;
    let closing_stats = fleet.plug(closing).unwrap().stats();
    assert!(closing_stats.connections >= n, "{closing_stats:?}");
    assert!(stats.reconnects() >= n - 1, "{stats:?}");
    // The others kept their one connection.
    for p in fleet.plugs().iter().filter(|p| p.addr() != closing) {
        assert_eq!(p.stats().connections, 1, "{}", p.addr());
    }
    fleet.shutdown().await;
}
