#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Discovery against loopback responders (127.x only; broadcast to 127.255.255.255 on a port of
//! the test's own). Each test takes its own 127.A.B.0/24.

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use plugfleet::fleet::identity::valid_mac;
use plugfleet::net::discovery::loopback::{
    FakePlug, LOOPBACK_BROADCAST, LoopbackFleet, TcpMode, UdpMode, mac_of,
};
use plugfleet::net::discovery::{
    self, DeviceReply, DiscoveryConfig, DiscoveryEvent, FoundBy, HostileReason, Sighting,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[path = "common/seen.rs"]
mod seen;
use seen::{Seen, ways};

/// A /24 of 127/8 for this test: random per process, distinct per test in the process.
fn subnet() -> (u8, u8) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let v = seed.wrapping_mul(2_654_435_761).wrapping_add(k * 7919);
    // 127.64.0.0 – 127.191.255.0: away from 127.0.0.x and 127.255.x.
    (64 + (v % 128) as u8, ((v >> 8) % 256) as u8)
}

fn addr(net: (u8, u8), last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, net.0, net.1, last)
}

fn cfg(fleet: &LoopbackFleet) -> DiscoveryConfig {
    DiscoveryConfig {
        port: fleet.port(),
        tdp_port: fleet.tdp_port(),
        timeout: Duration::from_millis(600),
        ..DiscoveryConfig::default()
    }
}

#[derive(Default)]
struct Outcome {
    found: Vec<Sighting>,
    hostile: Vec<(std::net::SocketAddr, HostileReason)>,
    events: Vec<DiscoveryEvent>,
}

impl Outcome {
    fn macs(&self, by: FoundBy) -> BTreeSet<String> {
        self.found
            .iter()
            .filter(|s| s.found_by == by)
            .map(|s| s.reply.mac().to_owned())
            .collect()
    }
}

/// Runs one pass and collects every event (bounded: the pass has its own timeout).
async fn discover(cfg: DiscoveryConfig) -> Outcome {
    let (tx, mut rx) = mpsc::channel::<DiscoveryEvent>(64);
    let task = discovery::spawn(cfg, tx, CancellationToken::new());
    let mut out = Outcome::default();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("discovery ends on its own")
    {
        match &ev {
            DiscoveryEvent::Found(s) => out.found.push(s.clone()),
            DiscoveryEvent::Hostile { from, reason } => out.hostile.push((*from, reason.clone())),
            _ => {}
        }
        out.events.push(ev);
    }
    task.await.unwrap().unwrap();
    out
}

fn macs(plugs: &[FakePlug], ns: impl IntoIterator<Item = u32>) -> BTreeSet<String> {
    let _ = plugs;
    ns.into_iter().map(mac_of).collect()
}

#[tokio::test]
async fn broadcast_to_loopback_finds_every_plug_and_the_strip_outlets() {
    let net = subnet();
    let mut plugs: Vec<FakePlug> = (1..=24)
        .map(|i| FakePlug::legacy(addr(net, i as u8), i))
        .collect();
    plugs.push(FakePlug::strip(addr(net, 30), 30, 6));
    let fleet = LoopbackFleet::start(plugs.clone()).await.unwrap();
    let out = discover(DiscoveryConfig {
        targets: vec![LOOPBACK_BROADCAST],
        ..cfg(&fleet)
    })
    .await;
    let want = macs(&plugs, (1..=24).chain([30]));
    assert_eq!(out.macs(FoundBy::Broadcast), want);
    // Once per device per pass even though the probe went out three times.
    assert_eq!(out.found.len(), 25, "{:?}", out.found.len());
    let strip = out
        .found
        .iter()
        .find(|s| s.reply.mac() == mac_of(30))
        .unwrap();
    let DeviceReply::Legacy(info) = &strip.reply else {
        panic!("legacy")
    };
    assert_eq!(info.children.len(), 6);
    assert!(out.hostile.is_empty(), "{:?}", out.hostile);
    // RoundDone then Finished, in that order, last.
    let n = out.events.len();
    assert!(matches!(
        out.events[n - 2],
        DiscoveryEvent::RoundDone {
            round: 0,
            found: 25,
            hostile: 0,
            ..
        }
    ));
    assert!(matches!(
        out.events[n - 1],
        DiscoveryEvent::Finished {
            rounds: 1,
            cancelled: false,
            ..
        }
    ));
    fleet.shutdown().await;
}

#[tokio::test]
async fn sweep_of_a_24_finds_every_plug() {
    let net = subnet();
    let plugs: Vec<FakePlug> = [3u8, 17, 64, 100, 128, 200, 254]
        .iter()
        .map(|&i| FakePlug::legacy(addr(net, i), u32::from(i)))
        .collect();
    let fleet = LoopbackFleet::start(plugs.clone()).await.unwrap();
    let out = discover(DiscoveryConfig {
        sweeps: vec![format!("127.{}.{}.0/24", net.0, net.1).parse().unwrap()],
        timeout: Duration::from_secs(5),
        ..cfg(&fleet)
    })
    .await;
    assert_eq!(
        out.macs(FoundBy::Sweep),
        macs(&plugs, [3, 17, 64, 100, 128, 200, 254])
    );
    for s in &out.found {
        assert_eq!(s.port, fleet.port());
        let IpAddr::V4(v4) = s.ip else { panic!() };
        assert_eq!(
            mac_of(u32::from(v4.octets()[3])),
            s.reply.mac(),
            "reply from its own address"
        );
    }
    // Without broadcast targets the pass ends when every address is settled, before the timeout.
    let Some(DiscoveryEvent::Finished { at, .. }) = out.events.last() else {
        panic!()
    };
    assert!(*at < 5000, "ended early, at {at} ms");
    fleet.shutdown().await;
}

#[tokio::test]
async fn known_hosts_find_plugs_that_ignore_broadcasts_or_udp() {
    let net = subnet();
    let mut quiet = FakePlug::legacy(addr(net, 1), 1);
    quiet.broadcast = false; // AP isolation: unicast only
    let mut tcp_only = FakePlug::legacy(addr(net, 2), 2);
    tcp_only.broadcast = false;
    tcp_only.udp = UdpMode::Silent; // found by the TCP fallback
    let normal = FakePlug::legacy(addr(net, 3), 3);
    let fleet = LoopbackFleet::start(vec![quiet, tcp_only, normal])
        .await
        .unwrap();
    let out = discover(DiscoveryConfig {
        targets: vec![LOOPBACK_BROADCAST],
        hosts: vec![addr(net, 1), addr(net, 2)],
        ..cfg(&fleet)
    })
    .await;
    assert_eq!(
        out.macs(FoundBy::Broadcast),
        [mac_of(3)].into_iter().collect()
    );
    assert_eq!(
        out.macs(FoundBy::Host),
        [mac_of(1), mac_of(2)].into_iter().collect()
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn duplicates_merge_into_one_device_with_every_provenance() {
    let net = subnet();
    let plugs = vec![
        FakePlug::legacy(addr(net, 5), 5),
        FakePlug::strip(addr(net, 6), 6, 3),
    ];
    let fleet = LoopbackFleet::start(plugs).await.unwrap();
    let out = discover(DiscoveryConfig {
        targets: vec![LOOPBACK_BROADCAST],
        hosts: vec![addr(net, 5)],
        sweeps: vec![format!("127.{}.{}.4/30", net.0, net.1).parse().unwrap()],
        ..cfg(&fleet)
    })
    .await;
    let mut reg = Seen::default();
    for ev in &out.events {
        reg.apply(ev);
    }
    assert_eq!(reg.len(), 2, "{:#?}", reg.devices());
    let plug = reg.by_mac(&mac_of(5)).unwrap();
    assert_eq!(
        plug.found_by,
        ways(&[FoundBy::Broadcast, FoundBy::Host, FoundBy::Sweep])
    );
    let strip = reg.by_mac(&mac_of(6)).unwrap();
    assert_eq!(strip.found_by, ways(&[FoundBy::Broadcast, FoundBy::Sweep]));
    assert_eq!(strip.outlets.len(), 3);
    fleet.shutdown().await;
}

#[tokio::test]
async fn an_ip_change_keeps_identity() {
    let net = subnet();
    let mut reg = Seen::default();
    // Pass 1: plug 1 at .1.
    let fleet = LoopbackFleet::start(vec![FakePlug::legacy(addr(net, 1), 1)])
        .await
        .unwrap();
    let sweep = vec![format!("127.{}.{}.0/29", net.0, net.1).parse().unwrap()];
    let out = discover(DiscoveryConfig {
        sweeps: sweep.clone(),
        ..cfg(&fleet)
    })
    .await;
    fleet.shutdown().await;
    for ev in &out.events {
        reg.apply(ev);
    }
    // Pass 2: DHCP moved it to .2, and another plug now has .1.
    let fleet = LoopbackFleet::start(vec![
        FakePlug::legacy(addr(net, 2), 1),
        FakePlug::legacy(addr(net, 1), 2),
    ])
    .await
    .unwrap();
    let out = discover(DiscoveryConfig {
        sweeps: sweep,
        ..cfg(&fleet)
    })
    .await;
    fleet.shutdown().await;
    for ev in &out.events {
        reg.apply(ev);
    }
    assert_eq!(reg.len(), 2);
    let d = reg.by_mac(&mac_of(1)).unwrap();
    assert_eq!(d.addr.ip(), IpAddr::V4(addr(net, 2)));
    assert_eq!(d.previous_ips, vec![IpAddr::V4(addr(net, 1))]);
    assert_eq!(
        d.previous_addr.map(|a| a.ip()),
        Some(IpAddr::V4(addr(net, 1)))
    );
    // The address it left is now another device's.
    let other = reg.by_ip(IpAddr::V4(addr(net, 1))).unwrap();
    assert_eq!(valid_mac(other.mac()), Some(mac_of(2)));
}

#[tokio::test]
async fn newer_protocol_plugs_are_listed_with_their_protocol() {
    let net = subnet();
    let fleet = LoopbackFleet::start(vec![
        FakePlug::newer(addr(net, 10), 10),
        FakePlug::newer(addr(net, 11), 11),
        FakePlug::legacy(addr(net, 12), 12),
    ])
    .await
    .unwrap();
    // By sweep: 9999 refused, then the unicast 20002 probe answers.
    let out = discover(DiscoveryConfig {
        sweeps: vec![format!("127.{}.{}.8/29", net.0, net.1).parse().unwrap()],
        ..cfg(&fleet)
    })
    .await;
    assert_eq!(
        out.macs(FoundBy::Udp20002),
        [mac_of(10), mac_of(11)].into_iter().collect()
    );
    assert_eq!(out.macs(FoundBy::Sweep), [mac_of(12)].into_iter().collect());
    let mut reg = Seen::default();
    for ev in &out.events {
        reg.apply(ev);
    }
    let d = reg.by_mac(&mac_of(10)).unwrap();
    assert_eq!(d.protocol(), "klap");
    assert_eq!(d.model(), "HS100(UK)");
    assert_eq!(reg.by_mac(&mac_of(12)).unwrap().protocol(), "legacy");

    // By broadcast: the 20002 probe goes to the broadcast target too.
    let out = discover(DiscoveryConfig {
        targets: vec![LOOPBACK_BROADCAST],
        ..cfg(&fleet)
    })
    .await;
    assert_eq!(
        out.macs(FoundBy::Udp20002),
        [mac_of(10), mac_of(11)].into_iter().collect()
    );
    assert_eq!(
        out.macs(FoundBy::Broadcast),
        [mac_of(12)].into_iter().collect()
    );

    // As a known host.
    let out = discover(DiscoveryConfig {
        hosts: vec![addr(net, 11)],
        ..cfg(&fleet)
    })
    .await;
    assert_eq!(
        out.macs(FoundBy::Udp20002),
        [mac_of(11)].into_iter().collect()
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn every_hostile_reply_kind_is_counted_and_survived() {
    let net = subnet();
    let mut plugs = Vec::new();
    let udp_modes = [
        UdpMode::Garbage,
        UdpMode::Huge,
        UdpMode::WrongShape,
        UdpMode::DeviceError,
        UdpMode::WrongPort,
    ];
    for (i, m) in udp_modes.iter().enumerate() {
        let mut p = FakePlug::legacy(addr(net, 1 + i as u8), 1 + i as u32);
        p.udp = *m;
        p.tcp = TcpMode::Refuse;
        plugs.push(p);
    }
    let tcp_modes = [
        TcpMode::Garbage,
        TcpMode::HugeFrame,
        TcpMode::WrongShape,
        TcpMode::Hang,
    ];
    for (i, m) in tcp_modes.iter().enumerate() {
        let mut p = FakePlug::legacy(addr(net, 20 + i as u8), 20 + i as u32);
        p.udp = UdpMode::Silent;
        p.tcp = *m;
        plugs.push(p);
    }
    plugs.push(FakePlug::legacy(addr(net, 40), 40));
    let fleet = LoopbackFleet::start(plugs).await.unwrap();
    let out = discover(DiscoveryConfig {
        targets: vec![LOOPBACK_BROADCAST],
        sweeps: vec![format!("127.{}.{}.16/28", net.0, net.1).parse().unwrap()],
        timeout: Duration::from_millis(800),
        ..cfg(&fleet)
    })
    .await;
    // The good plug is still found.
    assert_eq!(
        out.macs(FoundBy::Broadcast),
        [mac_of(40)].into_iter().collect()
    );
    assert!(out.macs(FoundBy::Sweep).is_empty());
    let kinds: HashSet<&str> = out
        .hostile
        .iter()
        .map(|(_, r)| match r {
            HostileReason::Oversized { .. } => "oversized",
            HostileReason::NotJson { .. } => "not-json",
            HostileReason::WrongShape { .. } => "wrong-shape",
            HostileReason::DeviceError { .. } => "device-error",
            HostileReason::WrongPort { .. } => "wrong-port",
            HostileReason::Unsolicited => "unsolicited",
            HostileReason::BadFrame { .. } => "bad-frame",
        })
        .collect();
    for k in [
        "oversized",
        "not-json",
        "wrong-shape",
        "device-error",
        "wrong-port",
        "bad-frame",
    ] {
        assert!(kinds.contains(k), "{k} missing from {:?}", out.hostile);
    }
    // Every UDP misbehaviour was seen from its plug (three rounds each).
    for i in 1..=5u8 {
        assert!(
            out.hostile
                .iter()
                .any(|(from, _)| from.ip() == IpAddr::V4(addr(net, i))),
            "nothing from .{i}"
        );
    }
    // TCP: garbage, huge frame and wrong shape each reported from their address.
    for i in 20..=22u8 {
        assert!(
            out.hostile
                .iter()
                .any(|(from, _)| *from == std::net::SocketAddr::from((addr(net, i), fleet.port()))),
            "nothing from .{i}"
        );
    }
    let Some(DiscoveryEvent::Finished { hostile, .. }) = out.events.last() else {
        panic!()
    };
    assert_eq!(*hostile, out.hostile.len());
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_unicast_reply_from_an_address_not_probed_is_hostile() {
    let net = subnet();
    let mut spoofing = FakePlug::legacy(addr(net, 1), 1);
    spoofing.udp = UdpMode::OtherAddress;
    spoofing.tcp = TcpMode::Refuse;
    let fleet = LoopbackFleet::start(vec![spoofing, FakePlug::legacy(addr(net, 2), 2)])
        .await
        .unwrap();
    let out = discover(DiscoveryConfig {
        hosts: vec![addr(net, 1), addr(net, 2)],
        ..cfg(&fleet)
    })
    .await;
    assert_eq!(out.macs(FoundBy::Host), [mac_of(2)].into_iter().collect());
    assert!(
        out.hostile.iter().any(|(from, r)| from.ip()
            == IpAddr::V4(plugfleet::net::discovery::loopback::SPOOF_ADDRESS)
            && *r == HostileReason::Unsolicited),
        "{:?}",
        out.hostile
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn sightings_stream_before_the_pass_ends() {
    let net = subnet();
    let fleet = LoopbackFleet::start(vec![FakePlug::legacy(addr(net, 1), 1)])
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::channel::<DiscoveryEvent>(16);
    let token = CancellationToken::new();
    let task = discovery::spawn(
        DiscoveryConfig {
            targets: vec![LOOPBACK_BROADCAST],
            timeout: Duration::from_secs(60),
            ..cfg(&fleet)
        },
        tx,
        token.clone(),
    );
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, DiscoveryEvent::Found(_)), "{first:?}");
    assert!(!task.is_finished(), "the pass is still listening");
    // Cancellation ends it promptly, without a RoundDone for the partial pass.
    token.cancel();
    let mut rest = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
    {
        rest.push(ev);
    }
    assert!(
        !rest
            .iter()
            .any(|e| matches!(e, DiscoveryEvent::RoundDone { .. }))
    );
    assert!(matches!(
        rest.last(),
        Some(DiscoveryEvent::Finished {
            cancelled: true,
            rounds: 0,
            ..
        })
    ));
    task.await.unwrap().unwrap();
    fleet.shutdown().await;
}

/// Wraps discovery events in a caller's own event type (as the TUI does).
#[derive(Debug)]
enum AppEvent {
    Discovery(DiscoveryEvent),
}

impl From<DiscoveryEvent> for AppEvent {
    fn from(e: DiscoveryEvent) -> Self {
        AppEvent::Discovery(e)
    }
}

#[tokio::test]
async fn continuous_mode_stops_sighting_a_vanished_plug_and_the_model_keeps_it() {
    let net = subnet();
    let stays = FakePlug::legacy(addr(net, 1), 1);
    let goes = FakePlug::legacy(addr(net, 2), 2);
    let fleet = LoopbackFleet::start(vec![stays, goes]).await.unwrap();
    let port = fleet.port();
    let tdp_port = fleet.tdp_port();
    let (tx, mut rx) = mpsc::channel::<AppEvent>(64);
    let token = CancellationToken::new();
    let task = discovery::spawn_continuous(
        DiscoveryConfig {
            hosts: vec![addr(net, 1), addr(net, 2)],
            port,
            tdp_port,
            timeout: Duration::from_millis(300),
            ..DiscoveryConfig::default()
        },
        Duration::from_millis(50),
        tx,
        token.clone(),
    );
    let mut reg = Seen::default();
    let mut this_round = BTreeSet::new();
    let mut gone_in_round = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(AppEvent::Discovery(ev)) = tokio::time::timeout_at(deadline, rx.recv())
        .await
        .expect("a round without it within the deadline")
    {
        reg.apply(&ev);
        if let DiscoveryEvent::Found(s) = &ev {
            this_round.insert(s.ip);
        }
        if let DiscoveryEvent::RoundDone { round, .. } = ev {
            let seen = std::mem::take(&mut this_round);
            if round == 0 {
                assert_eq!(reg.len(), 2);
                assert!(seen.contains(&IpAddr::V4(addr(net, 2))));
                // The second plug goes away.
                fleet.set_present(addr(net, 2), false);
            } else if !seen.contains(&IpAddr::V4(addr(net, 2))) {
                assert!(seen.contains(&IpAddr::V4(addr(net, 1))), "{seen:?}");
                gone_in_round = Some(round);
                token.cancel();
            }
        }
        if matches!(ev, DiscoveryEvent::Finished { .. }) {
            break;
        }
    }
    // Gone from round 1 on (or round 2 if the second pass began before it went away).
    assert!(matches!(gone_in_round, Some(1 | 2)), "{gone_in_round:?}");
    assert_eq!(
        reg.len(),
        2,
        "kept: liveness comes from polls, not discovery rounds"
    );
    task.await.unwrap().unwrap();
    fleet.shutdown().await;
}

#[tokio::test]
async fn overlapping_sweeps_probe_each_address_once() {
    let net = subnet();
    let fleet = LoopbackFleet::start(vec![FakePlug::legacy(addr(net, 5), 5)])
        .await
        .unwrap();
    let wide = format!("127.{}.{}.0/29", net.0, net.1);
    let narrow = format!("127.{}.{}.4/30", net.0, net.1);
    let out = discover(DiscoveryConfig {
        sweeps: vec![
            wide.parse().unwrap(),
            narrow.parse().unwrap(),
            wide.parse().unwrap(),
        ],
        ..cfg(&fleet)
    })
    .await;
    assert_eq!(out.found.len(), 1);
    assert_eq!(fleet.tcp_connections(), 1, "one connection to the plug");
    fleet.shutdown().await;
}
