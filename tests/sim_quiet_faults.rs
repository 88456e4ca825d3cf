#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The quiet meter faults (issue 15) over the wire: a simulated plug on loopback, read by the
//! real client, shows each fault in its replies (`counter-lag` needs hours of energy and is
//! covered with simulated time in `sim::dispatch`'s tests and `tests/quiet_rules.rs`, and over
//! the wire on the simulator's fast clock, `FleetSpec::clock_rate`, in `tests/quiet_tui.rs`).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use plugfleet::net::{Client, ClientConfig};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec, PlugHandle};

fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 67, pid.wrapping_mul(13).wrapping_add(n), 2)
}

fn client(p: &PlugHandle) -> Client {
    Client::new(
        p.addr(),
        ClientConfig {
            port: p.port,
            connect_timeout: Duration::from_millis(500),
            reply_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        },
    )
}

/// Two plugs of `profile`; the first has `fault`.
async fn pair(profile: &str, fault: FaultKind) -> Fleet {
    let b = base();
    let spec = FleetSpec {
        profiles: vec![profile.into()],
        time_scale: 0.01,
        faults: vec![(b, fault)],
        ..FleetSpec::on_free_port(b, 2)
    };
    sim::start(spec).await.expect("fleet")
}

type Pvi = (Option<f64>, Option<f64>, Option<f64>);

async fn readings(c: &Client, n: usize) -> Vec<Pvi> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = c.realtime(None).await.expect("reading");
        out.push((r.power_w, r.voltage_v, r.current_a));
        // The simulated meter's noise changes every half second.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    out
}

#[tokio::test]
async fn stuck_meter_repeats_to_the_last_digit() {
    let f = pair("hs110-eu-hw1", FaultKind::StuckMeter).await;
    let (bad, good) = (client(&f.plugs()[0]), client(&f.plugs()[1]));
    for c in [&bad, &good] {
        c.set_relay(true, None).await.expect("relay on");
    }
    let stuck = readings(&bad, 4).await;
    assert!(stuck.iter().all(|r| *r == stuck[0]), "{stuck:?}");
    let live = readings(&good, 4).await;
    assert!(
        live.iter().any(|r| *r != live[0]),
        "a healthy meter jitters: {live:?}"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn voltage_drift_reads_off_by_its_percentage() {
    let f = pair("hs110-eu-hw4", "voltage-drift:-40".parse().expect("fault")).await;
    let (bad, good) = (client(&f.plugs()[0]), client(&f.plugs()[1]));
    let b = bad
        .realtime(None)
        .await
        .expect("reading")
        .voltage_v
        .expect("v");
    let g = good
        .realtime(None)
        .await
        .expect("reading")
        .voltage_v
        .expect("v");
    // EU mains 230 V ± 1.5 %: 40 % low is about 138 V.
    assert!((130.0..145.0).contains(&b), "{b}");
    assert!((220.0..240.0).contains(&g), "{g}");
    f.shutdown().await;
}

#[tokio::test]
async fn phantom_load_flows_with_the_relay_off() {
    let f = pair("hs110-us-hw1", FaultKind::PhantomLoad).await;
    let (bad, good) = (client(&f.plugs()[0]), client(&f.plugs()[1]));
    for c in [&bad, &good] {
        c.set_relay(false, None).await.expect("relay off");
    }
    let info = bad.sysinfo().await.expect("sysinfo");
    assert_eq!(info.relay_on, Some(false));
    let r = bad.realtime(None).await.expect("reading");
    assert!((3.0..5.0).contains(&r.power_w.expect("w")), "{r:?}");
    assert!(r.current_a.expect("a") > 0.02, "{r:?}");
    let r = good.realtime(None).await.expect("reading");
    assert_eq!(r.power_w, Some(0.0));
    f.shutdown().await;
}
