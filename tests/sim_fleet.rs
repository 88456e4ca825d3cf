#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The simulated fleet on loopback: every profile answers every request over TCP and UDP,
//! unicast and broadcast; strips per outlet; framing edge cases; reboot; the newer-protocol plug.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use plugfleet::net::client::Connection;
use plugfleet::net::{Client, ClientConfig, NetError};
use plugfleet::protocol::codec::{decode_datagram, encode_frame};
use plugfleet::protocol::reply::parse_stats;
use plugfleet::protocol::{Realtime, Request, SysInfo, UnitScheme, tdp};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec, PlugHandle, SimError};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

/// A distinct 127.61.N.2 base per test (and per process, mostly).
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 61, pid.wrapping_mul(17).wrapping_add(n), 2)
}

fn cfg(port: u16) -> ClientConfig {
    ClientConfig {
        port,
        connect_timeout: Duration::from_secs(1),
        reply_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    }
}

async fn fleet(count: usize, profiles: &[&str], scale: f64) -> Fleet {
    let spec = FleetSpec {
        profiles: profiles.iter().map(|s| s.to_string()).collect(),
        time_scale: scale,
        ..FleetSpec::on_free_port(base(), count)
    };
    sim::start(spec).await.expect("fleet starts")
}

fn client(p: &PlugHandle) -> Client {
    Client::new(p.addr(), cfg(p.port))
}

/// Polls `f` until it is true or the deadline passes.
async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn this_month() -> (i32, u32) {
    let days = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400) as i64;
    let (y, m, _) = sim::load::civil_from_days(days);
    (y as i32, m)
}

#[tokio::test]
async fn every_profile_answers_every_request_over_tcp() {
    let f = fleet(sim::profile::all().len(), &[], 0.01).await;
    let (year, month) = this_month();
    for p in f.plugs().iter().filter(|p| p.is_legacy()) {
        let c = client(p);
        let info = c.sysinfo().await.expect("sysinfo");
        assert_eq!(info.model, p.model);
        assert_eq!(info.hw_ver, p.hw_ver);
        assert_eq!(info.sw_ver, p.sw_ver);
        assert_eq!(info.mac, p.mac);
        assert_eq!(info.device_id, p.device_id);
        assert_eq!(info.alias, p.alias);
        assert_eq!(info.has_emeter(), p.has_meter(), "{}", p.model);
        assert_eq!(info.children.len(), p.children.len());
        for (ch, id) in info.children.iter().zip(&p.children) {
            assert_eq!(&ch.id, id);
        }

        let rt = c.realtime(None).await;
        let day = c
            .call(&Request::DayStat {
                year,
                month,
                child: None,
            })
            .await;
        let mon = c.call(&Request::MonthStat { year, child: None }).await;
        if p.has_meter() {
            let rt = rt.expect("reading");
            let expected = if p.hw_ver == "1.0" && p.model.starts_with("HS110") {
                UnitScheme::Base
            } else {
                UnitScheme::Milli
            };
            assert_eq!(rt.scheme, expected, "{}", p.model);
            let v = rt.voltage_v.expect("voltage");
            assert!((100.0..250.0).contains(&v), "{v}");
            assert!(
                !parse_stats(&day.expect("daystat"), "get_daystat")
                    .expect("days")
                    .is_empty()
            );
            assert!(
                !parse_stats(&mon.expect("monthstat"), "get_monthstat")
                    .expect("months")
                    .is_empty()
            );
        } else {
            for r in [rt.map(drop), day.map(drop), mon.map(drop)] {
                assert_eq!(
                    r.expect_err("no meter"),
                    NetError::Device {
                        code: -1,
                        msg: "module not support".into()
                    }
                );
            }
        }

        // Relay and alias.
        let child = p.children.first().map(String::as_str);
        c.set_relay(false, child).await.expect("off");
        let info = c.sysinfo().await.expect("sysinfo");
        match child {
            Some(_) => assert!(!info.children[0].relay_on),
            None => assert_eq!(info.relay_on, Some(false)),
        }
        c.set_relay(true, child).await.expect("on");
        c.set_alias("Renamed plug", None).await.expect("alias");
        assert_eq!(c.sysinfo().await.expect("sysinfo").alias, "Renamed plug");
        assert_eq!(p.current_alias(), "Renamed plug");

        // Firmware requests without a download.
        assert_eq!(
            c.download_state().await.expect_err("no download"),
            NetError::Device {
                code: -7,
                msg: "unknown error".into()
            }
        );
        let before = p.premature_flash_attempts();
        assert!(matches!(
            c.flash_firmware().await,
            Err(NetError::Device { code: -5, .. })
        ));
        assert_eq!(p.premature_flash_attempts(), before + 1);

        // Unknown method and module.
        let r = c
            .call(&Request::Raw(
                json!({"system":{"frobnicate":{}},"no.such.module":{"x":{}}}),
            ))
            .await
            .expect("raw");
        assert_eq!(r["system"]["frobnicate"]["err_code"], -2);
        assert_eq!(r["no.such.module"]["err_code"], -1);
        let r = c
            .call(&Request::Raw(json!({"time":{"get_time":{}}})))
            .await
            .expect("time");
        assert_eq!(r["time"]["get_time"]["year"], year);
    }
    f.shutdown().await;
}

#[tokio::test]
async fn every_profile_answers_unicast_udp() {
    let f = fleet(sim::profile::all().len(), &[], 0.01).await;
    for p in f.plugs().iter().filter(|p| p.is_legacy()) {
        let c = client(p);
        let root = c.udp_call(&Request::SysInfo).await.expect("udp sysinfo");
        let info = SysInfo::from_reply(&root).expect("sysinfo");
        assert_eq!(
            (info.model.as_str(), info.mac.as_str()),
            (p.model.as_str(), p.mac.as_str())
        );
        let rt = c.udp_call(&Request::realtime(None)).await;
        if p.has_meter() {
            Realtime::from_reply(&rt.expect("udp realtime")).expect("reading");
        } else {
            assert!(matches!(rt, Err(NetError::Device { code: -1, .. })));
        }
        let (year, month) = this_month();
        let meter = |r: Result<serde_json::Value, NetError>| match (p.has_meter(), r) {
            (true, r) => assert!(r.is_ok(), "{}: {r:?}", p.model),
            (false, r) => assert!(matches!(r, Err(NetError::Device { code: -1, .. }))),
        };
        meter(
            c.udp_call(&Request::DayStat {
                year,
                month,
                child: None,
            })
            .await,
        );
        meter(c.udp_call(&Request::MonthStat { year, child: None }).await);
        c.udp_call(&Request::set_relay(false, None))
            .await
            .expect("relay over udp");
        assert!(p.relays().iter().all(|on| !on));
        c.udp_call(&Request::SetAlias {
            alias: "Over UDP".into(),
            child: None,
        })
        .await
        .expect("alias over udp");
        assert_eq!(p.current_alias(), "Over UDP");
        assert!(matches!(
            c.udp_call(&Request::GetDownloadState).await,
            Err(NetError::Device { code: -7, .. })
        ));
        assert!(matches!(
            c.udp_call(&Request::FlashFirmware).await,
            Err(NetError::Device { code: -5, .. })
        ));
        assert_eq!(p.premature_flash_attempts(), 1);
    }
    f.shutdown().await;
}

/// Sends `payload` to 127.255.255.255:`port` and collects replies by source until `want` sources
/// (among `want`) answered (or 3 s), then drains briefly to catch duplicates. Other fleets that
/// happen to share the port may answer too; callers look only at their own addresses.
async fn broadcast(
    port: u16,
    payload: &[u8],
    want: &[SocketAddr],
) -> HashMap<SocketAddr, Vec<Vec<u8>>> {
    let sock = UdpSocket::bind("0.0.0.0:0").await.expect("bind");
    sock.set_broadcast(true).expect("broadcast");
    sock.send_to(payload, (sim::LOOPBACK_BROADCAST, port))
        .await
        .expect("send");
    let mut got: HashMap<SocketAddr, Vec<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(3);
    while want.iter().any(|a| !got.contains_key(a)) {
        match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => got.entry(from).or_default().push(buf[..n].to_vec()),
            _ => break,
        }
    }
    while let Ok(Ok((n, from))) =
        tokio::time::timeout(Duration::from_millis(150), sock.recv_from(&mut buf)).await
    {
        got.entry(from).or_default().push(buf[..n].to_vec());
    }
    got
}

#[tokio::test]
async fn loopback_broadcast_gets_one_reply_per_plug_from_its_own_address() {
    let f = fleet(12, &[], 0.01).await;
    let legacy: Vec<&PlugHandle> = f.plugs().iter().filter(|p| p.is_legacy()).collect();
    let want: Vec<SocketAddr> = legacy
        .iter()
        .map(|p| SocketAddr::from((p.ip, f.port())))
        .collect();
    let got = broadcast(f.port(), &Request::SysInfo.encode_udp(), &want).await;
    for p in &legacy {
        let from = SocketAddr::from((p.ip, f.port()));
        let replies = got
            .get(&from)
            .unwrap_or_else(|| panic!("no reply from {from}"));
        assert_eq!(replies.len(), 1, "exactly one reply from {from}");
        let root = plugfleet::protocol::reply::parse_json(&decode_datagram(&replies[0])).unwrap();
        let info = SysInfo::from_reply(&root).expect("sysinfo");
        assert_eq!(info.mac, p.mac);
        assert_eq!(info.model, p.model);
    }
    let ours: Vec<SocketAddr> = f
        .plugs()
        .iter()
        .map(|p| SocketAddr::from((p.ip, f.port())))
        .collect();
    let in_range = got.keys().filter(|a| ours.contains(a)).count();
    assert_eq!(
        in_range,
        legacy.len(),
        "the newer-protocol plug stays silent on 9999"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn newer_protocol_plug_refuses_tcp_and_answers_tdp() {
    let f = fleet(2, &["hs100-uk-hw4-klap", "hs110-eu-hw1"], 0.01).await;
    let klap = &f.plugs()[0];
    assert_eq!(klap.protocol, "klap");
    assert_eq!(klap.tdp_port, Some(f.tdp_port()));
    assert_eq!(
        client(klap).sysinfo().await.expect_err("no 9999"),
        NetError::Refused
    );

    // Unicast probe.
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    sock.send_to(&tdp::probe(), (klap.ip, f.tdp_port()))
        .await
        .expect("send");
    let mut buf = vec![0u8; 4096];
    let (n, from) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .expect("tdp reply")
        .expect("recv");
    assert_eq!(from, SocketAddr::from((klap.ip, f.tdp_port())));
    let info = tdp::decode_reply(&buf[..n]).expect("tdp");
    assert_eq!(info.model, "HS100(UK)");
    assert_eq!(info.hw_ver.as_deref(), Some("4.1"));
    assert_eq!(info.mac, klap.mac);
    assert_eq!(info.ip.as_deref(), Some(klap.ip.to_string().as_str()));
    assert_eq!(info.protocol_label(), "klap");

    // Broadcast probe on the TDP port.
    let got = broadcast(
        f.tdp_port(),
        &tdp::probe(),
        &[SocketAddr::from((klap.ip, f.tdp_port()))],
    )
    .await;
    let r = got
        .get(&SocketAddr::from((klap.ip, f.tdp_port())))
        .expect("tdp broadcast reply from the plug's address");
    assert_eq!(r.len(), 1);
    assert_eq!(tdp::decode_reply(&r[0]).expect("tdp").mac, klap.mac);
    f.shutdown().await;
}

#[tokio::test]
async fn strips_answer_per_outlet() {
    let f = fleet(1, &["hs300-us-hw2"], 0.01).await;
    let p = &f.plugs()[0];
    assert_eq!(p.children.len(), 6);
    let c = client(p);
    for (i, id) in p.children.iter().enumerate() {
        c.set_relay(i % 2 == 0, Some(id)).await.expect("relay");
    }
    let info = c.sysinfo().await.expect("sysinfo");
    for (i, ch) in info.children.iter().enumerate() {
        assert_eq!(ch.relay_on, i % 2 == 0, "outlet {i}");
    }
    assert_eq!(p.relays(), vec![true, false, true, false, true, false]);
    for (i, id) in p.children.iter().enumerate() {
        let rt = c.realtime(Some(id)).await.expect("outlet reading");
        assert_eq!(rt.slot_id, Some(i as i64));
        if i % 2 == 1 {
            assert_eq!(rt.power_w, Some(0.0), "outlet {i} is off");
        }
        assert!(rt.voltage_v.unwrap() > 100.0);
    }
    c.set_alias("Printer!", Some(&p.children[3]))
        .await
        .expect("alias");
    let info = c.sysinfo().await.expect("sysinfo");
    assert_eq!(info.children[3].alias, "Printer!");
    let bad = format!("{}99", p.device_id);
    assert_eq!(
        c.realtime(Some(&bad)).await.expect_err("bad child"),
        NetError::Device {
            code: -14,
            msg: "entry not exist".into()
        }
    );
    assert!(matches!(
        c.set_relay(true, Some(&bad)).await,
        Err(NetError::Device { code: -14, .. })
    ));
    // Over UDP too.
    let root = c
        .udp_call(&Request::realtime(Some(&p.children[2])))
        .await
        .expect("udp");
    assert_eq!(Realtime::from_reply(&root).unwrap().slot_id, Some(2));
    f.shutdown().await;
}

#[tokio::test]
async fn header_and_body_in_separate_segments_and_several_requests_per_connection() {
    let f = fleet(1, &["hs110-eu-hw4"], 0.01).await;
    let p = &f.plugs()[0];
    let mut s = TcpStream::connect((p.ip, p.port)).await.expect("connect");
    s.set_nodelay(true).unwrap();
    let frame = Request::SysInfo.encode_tcp();
    for _ in 0..2 {
        s.write_all(&frame[..4]).await.unwrap();
        s.flush().await.unwrap();
        // Not synchronisation: forces the header and body into separate segments.
        tokio::time::sleep(Duration::from_millis(30)).await;
        s.write_all(&frame[4..7]).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        s.write_all(&frame[7..]).await.unwrap();
        let mut hdr = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut hdr))
            .await
            .expect("reply in time")
            .expect("header");
        let mut body = vec![0u8; u32::from_be_bytes(hdr) as usize];
        s.read_exact(&mut body).await.expect("body");
        let root =
            plugfleet::protocol::reply::parse_json(&plugfleet::protocol::cipher::decrypt(&body))
                .unwrap();
        assert_eq!(SysInfo::from_reply(&root).unwrap().mac, p.mac);
    }
    drop(s);

    // Several requests over one client connection.
    let mut conn = Connection::connect(p.addr(), &cfg(p.port))
        .await
        .expect("connect");
    for _ in 0..5 {
        let root = conn.call(&Request::realtime(None)).await.expect("reading");
        Realtime::from_reply(&root).expect("realtime");
    }
    f.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_get_replies_in_order_and_the_plug_closes_cleanly() {
    let f = fleet(1, &["kp115-us-hw1"], 0.01).await;
    let p = &f.plugs()[0];
    let mut s = TcpStream::connect((p.ip, p.port)).await.expect("connect");
    let mut two = Request::SysInfo.encode_tcp();
    two.extend(encode_frame(br#"{"emeter":{"get_realtime":{}}}"#));
    s.write_all(&two).await.unwrap();
    s.shutdown().await.unwrap(); // half-close: the plug answers, then closes
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut all))
        .await
        .expect("plug closes")
        .expect("read");
    let mut rest = &all[..];
    let mut modules = Vec::new();
    while rest.len() >= 4 {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = plugfleet::protocol::cipher::decrypt(&rest[4..4 + n]);
        let v = plugfleet::protocol::reply::parse_json(&body).unwrap();
        modules.push(v.as_object().unwrap().keys().next().unwrap().clone());
        rest = &rest[4 + n..];
    }
    assert_eq!(modules, vec!["system", "emeter"]);
    assert!(rest.is_empty());
    f.shutdown().await;
}

#[tokio::test]
async fn reboot_takes_the_plug_offline_then_back_with_total_reset() {
    // reboot_time 10 s × 0.2 = 2 s offline.
    let f = fleet(1, &["hs110-eu-hw1"], 0.2).await;
    let p = &f.plugs()[0];
    let c = client(p);
    c.set_relay(true, None).await.unwrap();
    let before = c.realtime(None).await.unwrap().total_kwh.unwrap();
    assert!(before > 0.0, "a plug that has been up for days has a total");
    c.reboot(0).await.expect("reboot accepted");
    wait_until("offline", Duration::from_secs(3), || !p.is_online()).await;
    assert_eq!(c.sysinfo().await.expect_err("down"), NetError::Refused);
    wait_until("back online", Duration::from_secs(8), || p.is_online()).await;
    let after = c.realtime(None).await.unwrap().total_kwh.unwrap();
    assert!(after < before && after < 0.01, "{before} → {after}");
    assert_eq!(p.outages(), 1);
    assert_eq!(
        c.sysinfo().await.unwrap().relay_on,
        Some(true),
        "relay kept"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn readings_move_over_time() {
    let f = fleet(1, &["hs110-eu-hw4"], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    c.set_relay(true, None).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.len() < 3 && Instant::now() < deadline {
        let r = c.realtime(None).await.unwrap();
        seen.insert(r.raw.to_value()["voltage_mv"].as_i64().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.len() >= 3, "voltage never moved: {seen:?}");
    f.shutdown().await;
}

#[tokio::test]
async fn invalid_specs_are_clear_errors() {
    let bad_base = FleetSpec {
        base: Ipv4Addr::new(192, 168, 1, 2),
        ..FleetSpec::on_free_port(base(), 1)
    };
    assert!(
        matches!(sim::start(bad_base).await, Err(SimError::Invalid(m)) if m.contains("loopback"))
    );
    let bad_profile = FleetSpec {
        profiles: vec!["toaster".into()],
        ..FleetSpec::on_free_port(base(), 1)
    };
    assert!(
        matches!(sim::start(bad_profile).await, Err(SimError::Invalid(m)) if m.contains("toaster"))
    );
    let b = base();
    let foreign_fault = FleetSpec {
        faults: vec![(Ipv4Addr::new(127, 1, 1, 1), FaultKind::Hang)],
        ..FleetSpec::on_free_port(b, 1)
    };
    assert!(matches!(
        sim::start(foreign_fault).await,
        Err(SimError::Invalid(_))
    ));
    let too_many = FleetSpec::on_free_port(Ipv4Addr::new(127, 255, 255, 250), 10);
    assert!(matches!(
        sim::start(too_many).await,
        Err(SimError::Invalid(_))
    ));
    let bad_scale = FleetSpec {
        time_scale: 0.0,
        ..FleetSpec::on_free_port(base(), 1)
    };
    assert!(matches!(
        sim::start(bad_scale).await,
        Err(SimError::Invalid(_))
    ));
}

#[tokio::test]
async fn an_address_in_use_is_reported() {
    let f = fleet(2, &["hs100-us-hw2"], 0.01).await;
    let again = FleetSpec {
        base: f.plugs()[0].ip,
        port: f.port(),
        profiles: vec!["hs100-us-hw2".into()],
        ..FleetSpec::on_free_port(base(), 1)
    };
    match sim::start(again).await {
        Err(e @ SimError::AddrInUse { .. }) => {
            assert!(e.to_string().contains("already in use"), "{e}");
        }
        other => panic!("expected AddrInUse, got {other:?}"),
    }
    f.shutdown().await;
}

#[tokio::test]
async fn plug_handles_describe_the_fleet() {
    let f = fleet(9, &[], 1.0).await;
    let ips: Vec<IpAddr> = f.plugs().iter().map(PlugHandle::addr).collect();
    let mut uniq = ips.clone();
    uniq.dedup();
    assert_eq!(ips.len(), uniq.len());
    let macs: std::collections::HashSet<&str> = f.plugs().iter().map(|p| p.mac.as_str()).collect();
    assert_eq!(macs.len(), 9);
    for w in f.plugs().windows(2) {
        assert_eq!(u32::from(w[1].ip), u32::from(w[0].ip) + 1, "consecutive");
        assert_eq!(w[0].port, w[1].port, "one port");
    }
    let line = serde_json::to_value(&f.plugs()[0]).unwrap();
    for k in [
        "ip",
        "port",
        "model",
        "hw_ver",
        "sw_ver",
        "mac",
        "device_id",
        "alias",
        "protocol",
        "faults",
    ] {
        assert!(line.get(k).is_some(), "{k}");
    }
    f.shutdown().await;
}
