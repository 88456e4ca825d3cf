#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Discovery against the plug simulator (`plugfleet::sim`) on loopback: every profile, faults,
//! and the `discover` binary.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use plugfleet::fleet::identity::valid_mac;
use plugfleet::net::discovery::loopback::LOOPBACK_BROADCAST;
use plugfleet::net::discovery::{self, DiscoveryConfig, DiscoveryEvent, FoundBy, HostileReason};
use plugfleet::protocol::normalise_mac;
use plugfleet::sim::{FaultKind, Fleet, FleetSpec, profile};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[path = "common/seen.rs"]
mod seen;
use seen::{Seen, ways};

/// A 127.A.B.0/24 for this test (random per process, distinct per test).
fn subnet() -> (u8, u8) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let v = seed.wrapping_mul(2_654_435_761).wrapping_add(k * 7919);
    (64 + (v % 128) as u8, ((v >> 8) % 256) as u8)
}

async fn fleet(
    net: (u8, u8),
    count: usize,
    profiles: &[&str],
    faults: Vec<(u8, FaultKind)>,
) -> Fleet {
    Fleet::start(FleetSpec {
        profiles: profiles.iter().map(|s| (*s).to_owned()).collect(),
        faults: faults
            .into_iter()
            .map(|(last, f)| (Ipv4Addr::new(127, net.0, net.1, last), f))
            .collect(),
        ..FleetSpec::on_free_port(Ipv4Addr::new(127, net.0, net.1, 1), count)
    })
    .await
    .unwrap()
}

fn cfg(f: &Fleet) -> DiscoveryConfig {
    DiscoveryConfig {
        port: f.port(),
        tdp_port: f.tdp_port(),
        timeout: Duration::from_millis(700),
        ..DiscoveryConfig::default()
    }
}

fn sweep24(net: (u8, u8)) -> ipnet::Ipv4Net {
    format!("127.{}.{}.0/24", net.0, net.1).parse().unwrap()
}

async fn run(cfg: DiscoveryConfig) -> (Seen, Vec<DiscoveryEvent>) {
    let (tx, mut rx) = mpsc::channel::<DiscoveryEvent>(256);
    let task = discovery::spawn(cfg, tx, CancellationToken::new());
    let mut reg = Seen::default();
    let mut events = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("discovery ends on its own")
    {
        reg.apply(&ev);
        events.push(ev);
    }
    task.await.unwrap().unwrap();
    (reg, events)
}

/// Every plug of the fleet is in the registry with the simulator's identity and protocol.
fn assert_every_plug_known(f: &Fleet, reg: &Seen) {
    assert_eq!(reg.len(), f.plugs().len(), "{:#?}", reg.devices());
    for p in f.plugs() {
        let d = reg
            .by_mac(&p.mac)
            .unwrap_or_else(|| panic!("{} ({}) not found", p.ip, p.model));
        assert_eq!(d.addr.ip(), IpAddr::V4(p.ip));
        assert_eq!(valid_mac(d.mac()), Some(normalise_mac(&p.mac)));
        assert_eq!(d.model(), p.model.as_str());
        assert_eq!(d.protocol(), p.protocol, "{}", p.model);
        if p.protocol == "legacy" {
            assert_eq!(d.device_id(), Some(p.device_id.as_str()));
            let sys = d.sysinfo.as_ref().expect("sysinfo");
            assert_eq!(sys.sw_ver, p.sw_ver);
            assert_eq!(sys.children.len(), p.children.len());
        }
    }
}

#[tokio::test]
async fn broadcast_finds_a_fleet_of_every_profile() {
    let net = subnet();
    let names = profile::names();
    // Two plugs of every profile.
    let f = fleet(net, names.len() * 2, &[], vec![]).await;
    let (reg, _) = run(DiscoveryConfig {
        targets: vec![LOOPBACK_BROADCAST],
        ..cfg(&f)
    })
    .await;
    assert_every_plug_known(&f, &reg);
    for d in reg.devices() {
        let want = if d.protocol() == "legacy" {
            FoundBy::Broadcast
        } else {
            FoundBy::Udp20002
        };
        assert_eq!(d.found_by, ways(&[want]), "{}", d.mac());
    }
    assert!(
        reg.devices().into_iter().any(|d| d.protocol() == "klap"),
        "the default mix has a newer-protocol plug"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn sweep_finds_a_fleet_of_every_profile_and_merges_with_broadcast() {
    let net = subnet();
    let f = fleet(net, profile::names().len(), &[], vec![]).await;
    let (reg, _) = run(DiscoveryConfig {
        sweeps: vec![sweep24(net)],
        ..cfg(&f)
    })
    .await;
    assert_every_plug_known(&f, &reg);
    for d in reg.devices() {
        let want = if d.protocol() == "legacy" {
            FoundBy::Sweep
        } else {
            // Refused on 9999, answered the UDP 20002 probe.
            FoundBy::Udp20002
        };
        assert_eq!(d.found_by, ways(&[want]), "{}", d.mac());
    }
    // Both at once: still one device per plug, two provenances for the legacy ones.
    let (reg, _) = run(DiscoveryConfig {
        targets: vec![LOOPBACK_BROADCAST],
        sweeps: vec![sweep24(net)],
        ..cfg(&f)
    })
    .await;
    assert_every_plug_known(&f, &reg);
    for d in reg
        .devices()
        .into_iter()
        .filter(|d| d.protocol() == "legacy")
    {
        assert_eq!(d.found_by, ways(&[FoundBy::Broadcast, FoundBy::Sweep]));
    }
    f.shutdown().await;
}

#[tokio::test]
async fn known_host_finds_a_plug_that_ignores_broadcasts() {
    let net = subnet();
    let f = fleet(
        net,
        3,
        &["hs110-eu-hw4"],
        vec![(2, FaultKind::IgnoreBroadcast)],
    )
    .await;
    let quiet = Ipv4Addr::new(127, net.0, net.1, 2);
    let (reg, _) = run(DiscoveryConfig {
        targets: vec![LOOPBACK_BROADCAST],
        ..cfg(&f)
    })
    .await;
    assert_eq!(reg.len(), 2, "broadcast alone misses it");
    assert!(reg.by_ip(IpAddr::V4(quiet)).is_none());
    let (reg, _) = run(DiscoveryConfig {
        targets: vec![LOOPBACK_BROADCAST],
        hosts: vec![quiet],
        ..cfg(&f)
    })
    .await;
    assert_every_plug_known(&f, &reg);
    let d = reg.by_ip(IpAddr::V4(quiet)).unwrap();
    assert_eq!(d.found_by, ways(&[FoundBy::Host]));
    f.shutdown().await;
}

#[tokio::test]
async fn faulty_plugs_are_survived_and_the_rest_found() {
    let net = subnet();
    let faults = vec![
        (1, FaultKind::Garbage),
        (2, FaultKind::Truncated),
        (3, FaultKind::Oversized),
        (4, FaultKind::Hang),
        (5, FaultKind::Slow { nominal_ms: 60_000 }),
        (6, FaultKind::Refuse),
    ];
    let f = fleet(net, 8, &["hs110-eu-hw4"], faults).await;
    let (reg, events) = run(DiscoveryConfig {
        targets: vec![LOOPBACK_BROADCAST],
        sweeps: vec![sweep24(net)],
        ..cfg(&f)
    })
    .await;
    let ip = |last: u8| IpAddr::V4(Ipv4Addr::new(127, net.0, net.1, last));
    let hostile: Vec<(IpAddr, &HostileReason)> = events
        .iter()
        .filter_map(|e| match e {
            DiscoveryEvent::Hostile { from, reason } => Some((from.ip(), reason)),
            _ => None,
        })
        .collect();
    // Garbage by UDP and TCP, a truncated datagram and frame: hostile, never found.
    for last in [1, 2] {
        assert!(reg.by_ip(ip(last)).is_none(), ".{last}");
        assert!(hostile.iter().any(|(f, _)| *f == ip(last)), ".{last}");
    }
    // Oversized frame: hostile on TCP; its UDP answer is fine, so it is found by broadcast.
    assert!(
        hostile
            .iter()
            .any(|(f, r)| *f == ip(3) && matches!(r, HostileReason::BadFrame { .. }))
    );
    let d = reg.by_ip(ip(3)).unwrap();
    assert_eq!(d.found_by, ways(&[FoundBy::Broadcast]));
    // Hang and (very) slow: silent, not found.
    assert!(reg.by_ip(ip(4)).is_none());
    // Refuse: TCP refused, UDP broadcast still answers.
    let d = reg.by_ip(ip(6)).unwrap();
    assert_eq!(d.found_by, ways(&[FoundBy::Broadcast]));
    // The healthy ones are found both ways.
    for last in [7, 8] {
        let d = reg.by_ip(ip(last)).unwrap();
        assert_eq!(d.found_by, ways(&[FoundBy::Broadcast, FoundBy::Sweep]));
    }
    assert!(matches!(
        events.last(),
        Some(DiscoveryEvent::Finished {
            cancelled: false,
            error: None,
            ..
        })
    ));
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_json_against_a_simulated_fleet() {
    let net = subnet();
    let f = fleet(net, profile::names().len(), &[], vec![]).await;
    let args: Vec<String> = [
        "discover",
        "--json",
        "--target",
        "127.255.255.255",
        "--sweep",
        &sweep24(net).to_string(),
        "--port",
        &f.port().to_string(),
        "--tdp-port",
        &f.tdp_port().to_string(),
        "--timeout",
        "0.7",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut last: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        last.insert(v["mac"].as_str().unwrap().to_owned(), v);
    }
    let want: BTreeSet<String> = f.plugs().iter().map(|p| normalise_mac(&p.mac)).collect();
    assert_eq!(last.keys().cloned().collect::<BTreeSet<_>>(), want);
    for p in f.plugs() {
        let v = &last[&normalise_mac(&p.mac)];
        assert_eq!(v["ip"], p.ip.to_string());
        assert_eq!(v["model"], p.model.as_str());
        assert_eq!(v["protocol"], p.protocol.as_str());
        if p.protocol == "legacy" {
            assert_eq!(v["found_by"], serde_json::json!(["broadcast", "sweep"]));
            assert_eq!(v["device_id"], p.device_id.as_str());
            assert_eq!(v["children"], p.children.len());
            assert_eq!(v["port"], f.port());
        } else {
            assert_eq!(v["found_by"], serde_json::json!(["udp20002"]));
        }
    }
    f.shutdown().await;
}
