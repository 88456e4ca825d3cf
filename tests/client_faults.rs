#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every simulator fault met by the real client (`net::Client`): a clear typed error (or the
//! faulty reading itself), and never a hang. Firmware faults are in `sim_firmware.rs`.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use plugfleet::net::{Client, ClientConfig, NetError, Stage};
use plugfleet::protocol::{FrameError, Request};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec, PlugHandle};
use tokio::net::UdpSocket;
use tokio::time::Instant;

fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 63, pid.wrapping_mul(17).wrapping_add(n), 2)
}

const REPLY_TIMEOUT: Duration = Duration::from_millis(400);

fn client(p: &PlugHandle) -> Client {
    Client::new(
        p.addr(),
        ClientConfig {
            port: p.port,
            connect_timeout: Duration::from_millis(300),
            reply_timeout: REPLY_TIMEOUT,
            ..ClientConfig::default()
        },
    )
}

/// One plug of `profile` with `faults`.
async fn faulty(profile: &str, faults: &[FaultKind], scale: f64) -> Fleet {
    let b = base();
    let spec = FleetSpec {
        profiles: vec![profile.into()],
        time_scale: scale,
        faults: faults.iter().map(|f| (b, *f)).collect(),
        ..FleetSpec::on_free_port(b, 1)
    };
    sim::start(spec).await.expect("fleet")
}

/// Runs a client call and checks that it returned on its own, well within a bound.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(REPLY_TIMEOUT * 3 + Duration::from_secs(1), f)
        .await
        .expect("the client call returned by itself (no hang)")
}

#[tokio::test]
async fn bogus_28kw_is_a_steady_implausible_reading() {
    let f = faulty("hs110-us-hw1", &[FaultKind::Bogus28kw], 0.01).await;
    let c = client(&f.plugs()[0]);
    for _ in 0..3 {
        let r = bounded(c.realtime(None)).await.expect("reading");
        assert!(r.power_w.unwrap() >= 28_000.0, "{:?}", r.power_w);
        let v = r.voltage_v.unwrap();
        assert!((100.0..140.0).contains(&v), "voltage stays sane: {v}");
    }
    f.shutdown().await;
}

#[tokio::test]
async fn glitch_28kw_is_intermittent() {
    let f = faulty("kp115-us-hw1", &[FaultKind::Glitch28kw], 0.01).await;
    let c = client(&f.plugs()[0]);
    c.set_relay(true, None).await.unwrap();
    let mut bogus = 0;
    for _ in 0..9 {
        let r = bounded(c.realtime(None)).await.expect("reading");
        if r.power_w.unwrap() >= 28_000.0 {
            bogus += 1;
        } else {
            assert!(r.power_w.unwrap() < 2_000.0);
        }
    }
    assert_eq!(bogus, 3, "every third reading");
    f.shutdown().await;
}

#[tokio::test]
async fn unit_scale_reports_milliwatts_as_watts() {
    let f = faulty("hs110-eu-hw1", &[FaultKind::UnitScale], 0.01).await;
    let c = client(&f.plugs()[0]);
    c.set_relay(true, None).await.unwrap();
    let r = bounded(c.realtime(None)).await.expect("reading");
    let (w, v, a) = (
        r.power_w.unwrap(),
        r.voltage_v.unwrap(),
        r.current_a.unwrap(),
    );
    assert!(a > 0.0);
    assert!(w > v * a * 100.0, "power {w} W is ~1000× V×I = {}", v * a);
    f.shutdown().await;
}

#[tokio::test]
async fn hang_is_a_reply_timeout_over_tcp_and_udp() {
    let f = faulty("hs100-us-hw2", &[FaultKind::Hang], 0.01).await;
    let c = client(&f.plugs()[0]);
    let e = bounded(c.sysinfo()).await.expect_err("hangs");
    assert!(
        matches!(
            e,
            NetError::Timeout {
                stage: Stage::Reply,
                ..
            }
        ),
        "{e:?}"
    );
    let e = bounded(c.udp_call(&Request::SysInfo))
        .await
        .expect_err("hangs");
    assert!(matches!(e, NetError::Timeout { .. }), "{e:?}");
    f.shutdown().await;
}

#[tokio::test]
async fn garbage_is_a_bad_reply() {
    let f = faulty("hs105-us-hw1", &[FaultKind::Garbage], 0.01).await;
    let c = client(&f.plugs()[0]);
    let e = bounded(c.sysinfo()).await.expect_err("garbage");
    assert!(matches!(e, NetError::Reply(_)), "{e:?}");
    assert_eq!(e.kind(), "protocol");
    let e = bounded(c.udp_call(&Request::SysInfo))
        .await
        .expect_err("garbage");
    assert!(matches!(e, NetError::Reply(_)), "{e:?}");
    f.shutdown().await;
}

#[tokio::test]
async fn truncated_is_a_truncated_frame() {
    let f = faulty("hs110-eu-hw4", &[FaultKind::Truncated], 0.01).await;
    let c = client(&f.plugs()[0]);
    let e = bounded(c.sysinfo()).await.expect_err("truncated");
    assert!(
        matches!(e, NetError::Frame(FrameError::Truncated { .. })),
        "{e:?}"
    );
    let e = bounded(c.udp_call(&Request::SysInfo))
        .await
        .expect_err("half a datagram");
    assert!(matches!(e, NetError::Reply(_)), "{e:?}");
    f.shutdown().await;
}

#[tokio::test]
async fn oversized_is_refused_before_allocating() {
    let f = faulty("hs300-us-hw2", &[FaultKind::Oversized], 0.01).await;
    let c = client(&f.plugs()[0]);
    let e = bounded(c.sysinfo()).await.expect_err("oversized");
    match e {
        NetError::Frame(FrameError::TooLarge { len, .. }) => assert!(len > 2_000_000_000),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    f.shutdown().await;
}

#[tokio::test]
async fn slow_times_out_a_short_budget_and_answers_a_long_one() {
    // slow:1000 at time scale 0.5 = 500 ms.
    let f = faulty("kp115-us-hw1", &[FaultKind::Slow { nominal_ms: 1000 }], 0.5).await;
    let p = &f.plugs()[0];
    let short = client(p);
    let e = bounded(short.sysinfo())
        .await
        .expect_err("too slow for 400 ms");
    assert!(
        matches!(
            e,
            NetError::Timeout {
                stage: Stage::Reply,
                ..
            }
        ),
        "{e:?}"
    );
    let patient = Client::new(
        p.addr(),
        ClientConfig::with_timeout(p.port, Duration::from_secs(3)),
    );
    let started = Instant::now();
    let info = patient.sysinfo().await.expect("answers eventually");
    assert_eq!(info.mac, p.mac);
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "the reply was delayed"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn refuse_is_connection_refused_but_udp_answers() {
    let f = faulty("hs110-eu-hw1", &[FaultKind::Refuse], 0.01).await;
    let c = client(&f.plugs()[0]);
    assert_eq!(
        bounded(c.sysinfo()).await.expect_err("refused"),
        NetError::Refused
    );
    let root = bounded(c.udp_call(&Request::SysInfo))
        .await
        .expect("udp still answers");
    assert!(root["system"]["get_sysinfo"]["model"].is_string());
    f.shutdown().await;
}

#[tokio::test]
async fn ignore_broadcast_answers_unicast_only() {
    let b = base();
    let quiet = Ipv4Addr::from(u32::from(b) + 1);
    let spec = FleetSpec {
        profiles: vec!["hs100-us-hw2".into()],
        time_scale: 0.01,
        faults: vec![(quiet, FaultKind::IgnoreBroadcast)],
        ..FleetSpec::on_free_port(b, 3)
    };
    let f = sim::start(spec).await.expect("fleet");
    let sock = UdpSocket::bind("0.0.0.0:0").await.unwrap();
    sock.set_broadcast(true).unwrap();
    sock.send_to(
        &Request::SysInfo.encode_udp(),
        (sim::LOOPBACK_BROADCAST, f.port()),
    )
    .await
    .unwrap();
    let mut from = HashSet::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Ok(Ok((_, a))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
        from.insert(a);
        if from.len() >= 2 {
            // Give the quiet plug a fair chance to (wrongly) answer as well.
            while let Ok(Ok((_, a))) =
                tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await
            {
                from.insert(a);
            }
            break;
        }
    }
    let port = f.port();
    assert!(from.contains(&SocketAddr::from((b, port))));
    assert!(from.contains(&SocketAddr::from((Ipv4Addr::from(u32::from(b) + 2), port))));
    assert!(
        !from.contains(&SocketAddr::from((quiet, port))),
        "ignored the broadcast"
    );
    let c = client(f.plug(quiet).unwrap());
    bounded(c.udp_call(&Request::SysInfo))
        .await
        .expect("unicast UDP answered");
    bounded(c.sysinfo()).await.expect("TCP answered");
    f.shutdown().await;
}

#[tokio::test]
async fn flaky_goes_offline_now_and_then_and_comes_back() {
    // Up 20–40 s and down 4–8 s, × 0.05 = up 1–2 s, down 0.2–0.4 s.
    let f = faulty("hs110-eu-hw4", &[FaultKind::Flaky], 0.05).await;
    let p = &f.plugs()[0];
    let c = client(p);
    let deadline = Instant::now() + Duration::from_secs(8);
    let (mut ok_before, mut failed, mut ok_after) = (false, None, false);
    while Instant::now() < deadline && !ok_after {
        match bounded(c.sysinfo()).await {
            Ok(_) if failed.is_none() => ok_before = true,
            Ok(_) => ok_after = true,
            Err(e) if ok_before => failed = Some(e),
            Err(e) => panic!("unexpected error before the first outage: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        ok_before && ok_after,
        "answered, then went away, then came back"
    );
    let e = failed.expect("an outage was seen");
    assert!(
        matches!(
            e,
            NetError::Refused | NetError::Reset | NetError::Timeout { .. }
        ),
        "{e:?}"
    );
    assert!(p.outages() >= 1);
    f.shutdown().await;
}
