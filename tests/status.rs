#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `plugfleet status` end to end: the real binary against hand-made loopback plugs that answer
//! framed replies shaped like the real fixtures (PROTOCOL.md §5), including an HS110 claiming
//! 28 kW, a plug with the milliwatt unit bug and an HS300 strip with per-outlet meters.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use plugfleet::protocol::cipher;
use plugfleet::protocol::codec::encode_frame;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A loopback range of our own: 127.<pid-derived>.<counter>.0/24.
fn range() -> [u8; 3] {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    [127, 100 + (std::process::id() % 90) as u8, 200 + n]
}

fn ip(r: [u8; 3], host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(r[0], r[1], r[2], host))
}

/// What one fake plug answers.
#[derive(Clone)]
struct Plug {
    sysinfo: Value,
    /// `get_realtime` objects by child id (`None` = the plug itself).
    realtime: HashMap<Option<String>, Value>,
}

fn sysinfo(model: &str, hw: &str, mac_tail: u8, alias: &str, extra: Value) -> Value {
    let mut v = json!({
        "model": model, "hw_ver": hw, "sw_ver": "1.2.6 Build 200727 Rel.121701",
        "mac": format!("50:C7:BF:00:00:{mac_tail:02X}"),
        "deviceId": format!("80060000000000000000000000000000000000{mac_tail:02X}"),
        "hwId": "044A516EE63C875F9458DA25C2CCC5A0", "fwId": "00000000000000000000000000000000",
        "oemId": "37589AA1F5CADE7B3A8A1F6C8C0E6EA1", "alias": alias,
        "dev_name": "Wi-Fi Smart Plug With Energy Monitoring", "type": "IOT.SMARTPLUGSWITCH",
        "feature": "TIM:ENE", "relay_state": 1, "rssi": -38, "on_time": 100, "updating": 0,
        "led_off": 0, "latitude": 0, "longitude": 0, "err_code": 0,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn answer(plug: &Plug, req: &Value) -> Value {
    if req.pointer("/system/get_sysinfo").is_some() {
        return json!({"system": {"get_sysinfo": plug.sysinfo}});
    }
    if req.pointer("/emeter/get_realtime").is_some() {
        let child = req
            .pointer("/context/child_ids/0")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return match plug.realtime.get(&child) {
            Some(rt) => json!({"emeter": {"get_realtime": rt}}),
            None if plug.realtime.is_empty() => {
                json!({"emeter": {"err_code": -1, "err_msg": "module not support"}})
            }
            None => {
                json!({"emeter": {"get_realtime": {"err_code": -14, "err_msg": "entry not exist"}}})
            }
        };
    }
    json!({"system": {"err_code": -1, "err_msg": "module not support"}})
}

async fn serve_conn(mut s: TcpStream, plug: Arc<Plug>) {
    loop {
        let mut hdr = [0u8; 4];
        if s.read_exact(&mut hdr).await.is_err() {
            return;
        }
        let mut body = vec![0u8; u32::from_be_bytes(hdr) as usize];
        if s.read_exact(&mut body).await.is_err() {
            return;
        }
        let req: Value = match serde_json::from_slice(&cipher::decrypt(&body)) {
            Ok(v) => v,
            Err(_) => return,
        };
        let reply = serde_json::to_vec(&answer(&plug, &req)).unwrap();
        if s.write_all(&encode_frame(&reply)).await.is_err() {
            return;
        }
    }
}

/// Starts the plugs on `r.1`, `r.2`, … sharing one free port; returns the port.
async fn start(r: [u8; 3], plugs: Vec<Plug>) -> u16 {
    let first = TcpListener::bind(SocketAddr::new(ip(r, 1), 0))
        .await
        .unwrap();
    let port = first.local_addr().unwrap().port();
    let mut listeners = vec![first];
    for k in 1..plugs.len() {
        listeners.push(
            TcpListener::bind(SocketAddr::new(ip(r, k as u8 + 1), port))
                .await
                .unwrap(),
        );
    }
    for (l, p) in listeners.into_iter().zip(plugs) {
        let p = Arc::new(p);
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serve_conn(s, p.clone()));
            }
        });
    }
    port
}

fn fleet() -> Vec<Plug> {
    let one = |rt: Value| HashMap::from([(None, rt)]);
    let strip_id = "80060000000000000000000000000000000000";
    vec![
        // 1: HS110(US) hw 1.0 (float scheme) claiming 28 kW.
        Plug {
            sysinfo: sysinfo("HS110(US)", "1.0", 1, "Garage", json!({})),
            realtime: one(
                json!({"current": 0.128037, "voltage": 118.917389, "power": 28000.0,
                                 "total": 30.404, "err_code": 0}),
            ),
        },
        // 2: HS110(EU) hw 4.0 (milli scheme), a normal reading from the fixture.
        Plug {
            sysinfo: sysinfo(
                "HS110(EU)",
                "4.0",
                2,
                "Desk",
                json!({"mic_type": "IOT.SMARTPLUGSWITCH"}),
            ),
            realtime: one(
                json!({"current_ma": 451, "voltage_mv": 230837, "power_mw": 61753,
                                 "total_wh": 16323, "err_code": 0}),
            ),
        },
        // 3: KP115(US) with milliwatts in the watts field (61.75 W load reported as 61753 W).
        Plug {
            sysinfo: sysinfo("KP115(US)", "1.0", 3, "Fridge", json!({})),
            realtime: one(json!({"current": 0.52, "voltage": 120.6, "power": 61753.0,
                                 "total": 12.5, "err_code": 0})),
        },
        // 4: HS300(US) strip, three outlets, the second one bogus.
        Plug {
            sysinfo: sysinfo(
                "HS300(US)",
                "2.0",
                4,
                "Rack",
                json!({
                "relay_state": null, "child_num": 3,
                "children": [
                    {"id": format!("{strip_id}0400"), "alias": "Router", "state": 1, "on_time": 5},
                    {"id": format!("{strip_id}0401"), "alias": "Heater", "state": 1, "on_time": 5},
                    {"id": format!("{strip_id}0402"), "alias": "Spare", "state": 0, "on_time": 0},
                ]}),
            ),
            realtime: HashMap::from([
                (
                    Some(format!("{strip_id}0400")),
                    json!({"current_ma": 90, "voltage_mv": 120110,
                    "power_mw": 9800, "total_wh": 62, "slot_id": 0, "err_code": 0}),
                ),
                (
                    Some(format!("{strip_id}0401")),
                    json!({"current_ma": 100, "voltage_mv": 120110,
                    "power_mw": -5000, "total_wh": 10, "slot_id": 1, "err_code": 0}),
                ),
                (
                    Some(format!("{strip_id}0402")),
                    json!({"current_ma": 0, "voltage_mv": 120300,
                    "power_mw": 0, "total_wh": 0, "slot_id": 2, "err_code": 0}),
                ),
            ]),
        },
        // 5: HS100(US): no meter.
        Plug {
            sysinfo: sysinfo("HS100(US)", "2.0", 5, "Lamp", json!({"feature": "TIM"})),
            realtime: HashMap::new(),
        },
    ]
}

async fn plugfleet(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn host_args(r: [u8; 3], hosts: std::ops::RangeInclusive<u8>, port: u16) -> Vec<String> {
    let mut a = vec!["status".to_string()];
    for h in hosts {
        a.push("--host".into());
        a.push(ip(r, h).to_string());
    }
    a.extend(common_args(port));
    a
}

/// A UDP port nobody listens on, for the UDP 20002 probe the discovery engine sends to
/// addresses whose TCP port refused (never the real 20002 in tests).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn common_args(port: u16) -> Vec<String> {
    vec![
        "--port".into(),
        port.to_string(),
        "--timeout".into(),
        "3".into(),
        "--tdp-port".into(),
        free_udp_port().to_string(),
    ]
}

fn by_ip(out: &Output) -> HashMap<String, Value> {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (v["ip"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_gives_a_verdict_per_device_and_per_outlet() {
    let r = range();
    let port = start(r, fleet()).await;
    let mut args = host_args(r, 1..=5, port);
    args.push("--json".into());
    let out = plugfleet(args).await;
    assert!(out.status.success(), "{out:?}");
    let devs = by_ip(&out);
    assert_eq!(devs.len(), 5, "{devs:?}");

    let hs110 = &devs[&ip(r, 1).to_string()];
    for key in [
        "ip",
        "port",
        "mac",
        "device_id",
        "alias",
        "model",
        "hw_ver",
        "sw_ver",
        "hw_id",
        "fw_id",
        "oem_id",
        "has_emeter",
        "children",
        "protocol",
        "found_by",
        "t_ms",
        "relay_state",
        "rssi",
        "emeter",
        "plausibility",
        "online",
        "previous_ips",
    ] {
        assert!(hs110.get(key).is_some(), "missing {key}: {hs110}");
    }
    assert_eq!(hs110["port"], port);
    assert_eq!(hs110["model"], "HS110(US)");
    assert_eq!(hs110["found_by"], json!(["host"]));
    assert_eq!(hs110["protocol"], "legacy");
    assert_eq!(hs110["relay_state"], 1);
    assert_eq!(hs110["rssi"], -38);
    assert_eq!(hs110["emeter"]["power_w"], 28000.0);
    assert_eq!(hs110["plausibility"]["verdict"], "bogus");
    assert_eq!(
        hs110["plausibility"]["reasons"][0],
        "28000 W is above 1.25 × 1800 W rated (HS110 US)"
    );

    let eu = &devs[&ip(r, 2).to_string()];
    assert_eq!(eu["emeter"]["power_w"], 61.753);
    assert_eq!(eu["emeter"]["voltage_v"], 230.837);
    assert_eq!(eu["emeter"]["total_kwh"], 16.323);
    assert_eq!(eu["plausibility"]["verdict"], "ok");
    assert_eq!(eu["plausibility"]["reasons"], json!([]));
    assert!(eu["plausibility"].get("raw").is_none());

    let kp = &devs[&ip(r, 3).to_string()];
    assert_eq!(kp["plausibility"]["verdict"], "bogus");
    let reason = kp["plausibility"]["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("unit-scale bug: looks like milliwatts in the watts field"),
        "{reason}"
    );

    let strip = &devs[&ip(r, 4).to_string()];
    assert!(strip["relay_state"].is_null());
    let children = strip["children"].as_array().unwrap();
    assert_eq!(children.len(), 3);
    assert_eq!(children[0]["alias"], "Router");
    assert_eq!(children[0]["relay_state"], 1);
    assert_eq!(children[0]["emeter"]["power_w"], 9.8);
    assert_eq!(children[0]["plausibility"]["verdict"], "ok");
    assert_eq!(children[1]["plausibility"]["verdict"], "bogus");
    assert_eq!(
        children[1]["plausibility"]["reasons"][0],
        "negative power: -5.00 W"
    );
    assert_eq!(children[1]["plausibility"]["raw"]["power_mw"], -5000);
    assert_eq!(children[2]["relay_state"], 0);
    assert_eq!(strip["plausibility"]["verdict"], "bogus");
    // The strip's own reading is the sum of its outlets.
    assert_eq!(strip["emeter"]["total_kwh"], 0.072);

    let plain = &devs[&ip(r, 5).to_string()];
    assert_eq!(plain["has_emeter"], false);
    assert!(plain["emeter"].is_null());
    assert!(plain["plausibility"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_marks_flagged_values_and_lists_reasons() {
    let r = range();
    let port = start(r, fleet()).await;
    let out = plugfleet(host_args(r, 1..=5, port)).await;
    assert!(out.status.success(), "{out:?}");
    let t = String::from_utf8(out.stdout).unwrap();
    println!("{t}");
    let row = |host: u8| {
        t.lines()
            .find(|l| l.starts_with(&format!("{}:{port} ", ip(r, host))))
            .unwrap_or_else(|| panic!("no row for .{host}:\n{t}"))
            .to_string()
    };
    assert!(row(1).contains("28000‼"), "{t}");
    assert!(row(1).contains("bogus‼"), "{t}");
    assert!(row(2).contains(" ok"), "{t}");
    assert!(row(3).contains("61753‼"), "{t}");
    assert!(row(5).contains("no meter"), "{t}");
    let outlet1 = t.lines().find(|l| l.starts_with(" ├ outlet 1 ")).unwrap();
    assert!(
        outlet1.contains("Router") && outlet1.ends_with(" ok"),
        "{t}"
    );
    // The strip row carries its outlet's mark.
    assert!(row(4).contains("‼") && row(4).ends_with("bogus‼"), "{t}");
    assert!(t.contains("-5.00‼"), "{t}");
    assert!(t.contains("5 devices, 3 flagged"), "{t}");
    assert!(
        t.contains("‼ 28000 W is above 1.25 × 1800 W rated (HS110 US)"),
        "{t}"
    );
    assert!(
        t.contains("outlet 2 Heater: ‼ negative power: -5.00 W"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_finds_the_plugs_and_a_silent_host_is_reported() {
    let r = range();
    let port = start(r, fleet().into_iter().take(2).collect()).await;
    let mut args = vec![
        "status".into(),
        "--sweep".into(),
        format!("{}/29", ip(r, 0)),
        "--host".into(),
        ip(r, 7).to_string(),
        "--json".into(),
    ];
    args.extend(common_args(port));
    let out = plugfleet(args.clone()).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "a named host did not answer: {out:?}"
    );
    let devs = by_ip(&out);
    assert_eq!(devs.len(), 3, "{devs:?}");
    assert_eq!(devs[&ip(r, 1).to_string()]["found_by"], json!(["sweep"]));
    assert_eq!(devs[&ip(r, 2).to_string()]["plausibility"]["verdict"], "ok");
    let silent = &devs[&ip(r, 7).to_string()];
    assert_eq!(silent["online"], false, "{silent}");
    assert_eq!(silent["error"], "no answer", "{silent}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("{}: no answer", ip(r, 7))), "{err}");

    // The text table has a row for it too.
    args.retain(|a| a != "--json");
    let out = plugfleet(args).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let t = String::from_utf8(out.stdout).unwrap();
    let row = t
        .lines()
        .find(|l| l.starts_with(&format!("{}:{port} ", ip(r, 7))))
        .unwrap_or_else(|| panic!("no row for .7:\n{t}"));
    assert!(row.ends_with("offline"), "{row}");
    assert!(
        t.contains(&format!("{}:{port}: offline: no answer", ip(r, 7))),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_named_host_answering_exits_0_and_none_answering_exits_1() {
    let r = range();
    let port = start(r, fleet().into_iter().take(2).collect()).await;
    let out = plugfleet(host_args(r, 1..=2, port)).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Nothing listens on .8 and .9.
    let mut args = host_args(r, 8..=9, port);
    args.push("--json".into());
    let out = plugfleet(args).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let devs = by_ip(&out);
    assert_eq!(devs.len(), 2, "{devs:?}");
    assert!(
        devs.values()
            .all(|d| d["online"] == false && d["error"].is_string()),
        "{devs:?}"
    );
}

/// Forwards every TCP connection on `listen` to `to` (the same plug at a second address).
async fn relay(
    listen: std::net::SocketAddr,
    to: std::net::SocketAddr,
) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut out) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_plug_at_a_second_named_address_is_the_same_device_not_unreachable() {
    let r = range();
    let port = start(r, fleet().into_iter().take(1).collect()).await;
    let relay = relay(
        std::net::SocketAddr::new(ip(r, 6), port),
        std::net::SocketAddr::new(ip(r, 1), port),
    )
    .await;
    let mut args = vec![
        "status".to_string(),
        "--host".into(),
        ip(r, 1).to_string(),
        "--host".into(),
        ip(r, 6).to_string(),
    ];
    args.extend(common_args(port));
    let mut json_args = args.clone();
    json_args.push("--json".into());
    let out = plugfleet(json_args).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let devs = by_ip(&out);
    assert_eq!(devs.len(), 2, "{devs:?}");
    let (listed, other) = match devs.values().find(|d| d.get("same_device_as").is_some()) {
        Some(same) => (
            same["same_device_as"].as_str().unwrap().to_owned(),
            same["ip"].as_str().unwrap().to_owned(),
        ),
        None => panic!("no same-device line: {devs:?}"),
    };
    assert_ne!(listed, other);
    assert_eq!(devs[&listed]["online"], true);
    assert_eq!(devs[&other]["online"], true);
    assert!(devs.values().all(|d| d.get("error").is_none()), "{devs:?}");

    let out = plugfleet(args).await;
    relay.abort();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let t = String::from_utf8(out.stdout).unwrap();
    // Which address ends up listed depends on which answered last.
    assert!(
        t.contains(&format!("{other}: same device as {listed} "))
            || t.contains(&format!("{listed}: same device as {other} ")),
        "{t}"
    );
    assert!(!t.contains("unreachable") && !t.contains("offline"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_exit_2() {
    for args in [
        // (Never `status` without targets here: that is a broadcast on the real network.)
        vec!["status", "--host", "::1"],
        vec!["status", "--host", "127.0.0.1", "--port", "0"],
        vec!["status", "--sweep", "127.0.0.0/8"],
        vec!["status", "--host", "127.0.0.1", "--timeout", "0"],
        vec!["status", "--host", "not-an-ip"],
    ] {
        let out = plugfleet(args.iter().map(|s| s.to_string()).collect()).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_errors_are_reported_per_meter_and_do_not_stop_the_rest() {
    let r = range();
    let strip_id = "80060000000000000000000000000000000000";
    let plugs = vec![
        // A meter that answers "module not support" although the feature list says ENE.
        Plug {
            sysinfo: sysinfo("KP115(US)", "1.0", 0x21, "Odd", json!({})),
            realtime: HashMap::new(),
        },
        // A strip that knows only its first outlet's meter (-14 "entry not exist" for others).
        Plug {
            sysinfo: sysinfo(
                "HS300(US)",
                "2.0",
                0x22,
                "Half",
                json!({"relay_state": null, "children": [
                    {"id": format!("{strip_id}2200"), "alias": "A", "state": 1},
                    {"id": format!("{strip_id}2201"), "alias": "B", "state": 1},
                ]}),
            ),
            realtime: HashMap::from([(
                Some(format!("{strip_id}2200")),
                json!({"current_ma": 90, "voltage_mv": 120110, "power_mw": 9800,
                       "total_wh": 62, "err_code": 0}),
            )]),
        },
    ];
    let port = start(r, plugs).await;
    let mut args = host_args(r, 1..=2, port);
    args.push("--json".into());
    let out = plugfleet(args.clone()).await;
    assert!(out.status.success(), "{out:?}");
    let devs = by_ip(&out);
    let odd = &devs[&ip(r, 1).to_string()];
    assert!(
        odd["emeter"].is_null() && odd["plausibility"].is_null(),
        "{odd}"
    );
    assert!(
        odd["emeter_error"].as_str().unwrap().contains("-1"),
        "{odd}"
    );
    let half = &devs[&ip(r, 2).to_string()];
    let outlets = half["children"].as_array().unwrap();
    assert_eq!(outlets[0]["emeter"]["power_w"], 9.8);
    assert!(outlets[1]["emeter"].is_null());
    assert!(
        outlets[1]["emeter_error"].as_str().unwrap().contains("-14"),
        "{half}"
    );
    assert_eq!(half["plausibility"]["verdict"], "ok");

    args.pop();
    let out = plugfleet(args).await;
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(t.contains("no reading"), "{t}");
    assert!(t.contains("meter not read: device error -1"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_that_finds_nothing_exits_1() {
    let r = range();
    // Nothing listens on this /30 at this port.
    let port = start(r, Vec::new()).await;
    let mut args = vec![
        "status".to_string(),
        "--sweep".into(),
        format!("{}/30", ip(r, 8)),
        "--json".into(),
    ];
    args.extend(common_args(port));
    let out = plugfleet(args).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}
