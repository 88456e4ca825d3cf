#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `plugfleet discover` as a user runs it — always with explicit loopback targets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use plugfleet::net::discovery::loopback::{FakePlug, LoopbackFleet, mac_of};
use serde_json::Value;

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

fn addr(net: (u8, u8), last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, net.0, net.1, last)
}

/// Runs the binary off the async runtime (the fleet keeps answering meanwhile).
async fn plugfleet(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .output()
            .expect("run plugfleet")
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_streams_one_object_per_device_and_repeats_it_when_found_another_way() {
    let net = subnet();
    let plugs = vec![
        FakePlug::legacy(addr(net, 1), 1),
        FakePlug::strip(addr(net, 2), 2, 6),
        FakePlug::newer(addr(net, 3), 3),
    ];
    let fleet = LoopbackFleet::start(plugs).await.unwrap();
    let out = plugfleet(args(&[
        "discover",
        "--json",
        "--target",
        "127.255.255.255",
        "--sweep",
        &format!("127.{}.{}.0/30", net.0, net.1),
        "--port",
        &fleet.port().to_string(),
        "--tdp-port",
        &fleet.tdp_port().to_string(),
        "--timeout",
        "0.6",
    ]))
    .await;
    fleet.shutdown().await;
    assert!(out.status.success(), "{out:?}");
    let objs = lines(&out);
    for o in &objs {
        for k in [
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
        ] {
            assert!(o.get(k).is_some(), "{k} missing in {o}");
        }
    }
    // The last line per MAC has the full provenance list.
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    for o in &objs {
        last.insert(o["mac"].as_str().unwrap().to_owned(), o);
    }
    assert_eq!(
        last.keys().cloned().collect::<BTreeSet<_>>(),
        [mac_of(1), mac_of(2), mac_of(3)].into_iter().collect()
    );
    let plug = last[&mac_of(1)];
    assert_eq!(plug["found_by"], serde_json::json!(["broadcast", "sweep"]));
    assert_eq!(plug["protocol"], "legacy");
    assert_eq!(plug["children"], 0);
    assert_eq!(plug["has_emeter"], true);
    assert_eq!(plug["model"], "HS110(EU)");
    assert_eq!(plug["ip"], addr(net, 1).to_string());
    let strip = last[&mac_of(2)];
    assert_eq!(strip["children"], 6);
    assert_eq!(strip["found_by"], serde_json::json!(["broadcast", "sweep"]));
    let newer = last[&mac_of(3)];
    assert_eq!(newer["protocol"], "klap");
    assert_eq!(newer["found_by"], serde_json::json!(["udp20002"]));
    // One line when first known, one more per new provenance: the plug and the strip twice.
    assert_eq!(
        objs.iter()
            .filter(|o| o["mac"] == mac_of(1).as_str())
            .count(),
        2
    );
    // The first line of a device has a single provenance and the same t_ms as the last.
    let first = objs
        .iter()
        .find(|o| o["mac"] == mac_of(1).as_str())
        .unwrap();
    assert_eq!(first["found_by"].as_array().unwrap().len(), 1);
    assert_eq!(first["t_ms"], plug["t_ms"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_output_is_an_aligned_table() {
    let net = subnet();
    let mut named = FakePlug::legacy(addr(net, 1), 1);
    named.sysinfo["alias"] = "kettle\u{1b}[2J".into();
    let fleet = LoopbackFleet::start(vec![named, FakePlug::strip(addr(net, 2), 2, 3)])
        .await
        .unwrap();
    let out = plugfleet(args(&[
        "discover",
        "--host",
        &addr(net, 1).to_string(),
        "--host",
        &addr(net, 2).to_string(),
        "--port",
        &fleet.port().to_string(),
        "--tdp-port",
        &fleet.tdp_port().to_string(),
        "--timeout",
        "2",
    ]))
    .await;
    fleet.shutdown().await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(rows[0].starts_with("IP "));
    let col = rows[0].find("ALIAS").unwrap();
    assert!(rows.iter().skip(1).all(|r| r.len() > col), "{text}");
    // The whole escape sequence is one replacement character (text::sanitize).
    assert!(
        text.contains("kettle\u{FFFD}") && !text.contains("[2J"),
        "escape sequence removed: {text}"
    );
    assert!(!text.contains('\u{1b}'));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("2 devices"), "{stderr}");
    assert!(stderr.contains("2 by host"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_found_exits_1() {
    let net = subnet();
    let out = plugfleet(args(&[
        "discover",
        "--json",
        "--sweep",
        &format!("127.{}.{}.0/30", net.0, net.1),
        "--port",
        "9",
        "--tdp-port",
        "9",
        "--timeout",
        "0.5",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
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
                if let Ok(mut out) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_host_that_does_not_answer_is_a_line_a_row_and_exit_1() {
    let net = subnet();
    let fleet = LoopbackFleet::start(vec![FakePlug::legacy(addr(net, 1), 1)])
        .await
        .unwrap();
    // Nothing listens on .9.
    let silent = addr(net, 9).to_string();
    let base = |json: bool| {
        let mut a = args(&[
            "discover",
            "--host",
            &addr(net, 1).to_string(),
            "--host",
            &silent,
            "--port",
            &fleet.port().to_string(),
            "--tdp-port",
            &fleet.tdp_port().to_string(),
            "--timeout",
            "1",
        ]);
        if json {
            a.push("--json".into());
        }
        a
    };
    let out = plugfleet(base(true)).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let objs = lines(&out);
    assert_eq!(objs.len(), 2, "{objs:?}");
    let gone = objs.iter().find(|o| o["ip"] == silent.as_str()).unwrap();
    assert_eq!(gone["online"], false);
    assert!(
        gone["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{gone}"
    );
    let found = objs
        .iter()
        .find(|o| o["ip"] == addr(net, 1).to_string().as_str())
        .unwrap();
    assert_eq!(found["online"], true);

    let out = plugfleet(base(false)).await;
    fleet.shutdown().await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let row = text
        .lines()
        .find(|l| l.starts_with(&silent))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("offline: no answer"), "{row}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("1 named host did not answer"), "{stderr}");
    assert!(
        !stderr.contains("try --host"),
        "no hint when --host was given: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_silent_named_hosts_exit_1_with_a_line_each() {
    let net = subnet();
    let out = plugfleet(args(&[
        "discover",
        "--json",
        "--host",
        &addr(net, 7).to_string(),
        "--host",
        &addr(net, 8).to_string(),
        "--port",
        "9",
        "--tdp-port",
        "9",
        "--timeout",
        "0.5",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let objs = lines(&out);
    let ips: BTreeSet<&str> = objs.iter().map(|o| o["ip"].as_str().unwrap()).collect();
    assert_eq!(
        ips,
        [addr(net, 7).to_string(), addr(net, 8).to_string()]
            .iter()
            .map(String::as_str)
            .collect()
    );
    assert!(
        objs.iter()
            .all(|o| o["online"] == false && o["error"].is_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_plug_at_a_second_named_address_is_the_same_device_not_unreachable() {
    let net = subnet();
    let fleet = LoopbackFleet::start(vec![FakePlug::legacy(addr(net, 1), 1)])
        .await
        .unwrap();
    let port = fleet.port();
    let second = std::net::SocketAddr::new(addr(net, 5).into(), port);
    let relay = relay(second, std::net::SocketAddr::new(addr(net, 1).into(), port)).await;
    let run = |json: bool| {
        let mut a = args(&[
            "discover",
            "--host",
            &addr(net, 1).to_string(),
            "--host",
            &addr(net, 5).to_string(),
            "--port",
            &port.to_string(),
            "--tdp-port",
            &fleet.tdp_port().to_string(),
            "--timeout",
            "2",
        ]);
        if json {
            a.push("--json".into());
        }
        plugfleet(a)
    };
    let out = run(true).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let objs = lines(&out);
    let listed: Vec<&Value> = objs
        .iter()
        .filter(|o| o.get("same_device_as").is_none())
        .collect();
    let main_ip = listed.last().unwrap()["ip"].as_str().unwrap().to_owned();
    let other = if main_ip == addr(net, 1).to_string() {
        addr(net, 5)
    } else {
        addr(net, 1)
    };
    let same = objs
        .iter()
        .find(|o| o["ip"] == other.to_string().as_str() && o.get("same_device_as").is_some())
        .unwrap_or_else(|| panic!("{objs:?}"));
    assert_eq!(same["same_device_as"], main_ip.as_str());
    assert_eq!(same["online"], true);
    assert_eq!(same["mac"], mac_of(1).as_str());
    assert!(objs.iter().all(|o| o["online"] == true), "{objs:?}");

    let out = run(false).await;
    relay.abort();
    fleet.shutdown().await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("same device as"), "{text}");
    assert!(
        !text.contains("unreachable") && !text.contains("offline"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_exit_2_with_a_clear_message() {
    // None of these sends anything: they are rejected before discovery starts.
    for (bad, expect) in [
        (vec!["--sweep", "10.0.0.0/8"], "--force"),
        (vec!["--sweep", "127.0.0.0/33"], "--sweep"),
        (vec!["--sweep", "not-a-cidr"], "--sweep"),
        (vec!["--host", "::1"], "IPv4"),
        (vec!["--target", "127.0.0.300"], "--target"),
        (vec!["--host", "127.0.0.1", "--timeout", "0"], "--timeout"),
        (vec!["--host", "127.0.0.1", "--port", "0"], "--port"),
        (
            vec!["--host", "127.0.0.1", "--concurrency", "0"],
            "--concurrency",
        ),
    ] {
        let mut a = vec!["discover"];
        a.extend(bad.iter().copied());
        let out = plugfleet(args(&a)).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(expect), "{bad:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_arrive_while_the_command_is_still_listening() {
    use std::io::BufRead;
    let net = subnet();
    let fleet = LoopbackFleet::start(vec![FakePlug::legacy(addr(net, 1), 1)])
        .await
        .unwrap();
    let (port, tdp_port) = (fleet.port().to_string(), fleet.tdp_port().to_string());
    let (line, still_running) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args([
                "discover",
                "--json",
                "--target",
                "127.255.255.255",
                "--port",
                &port,
                "--tdp-port",
                &tdp_port,
                "--timeout",
                "60",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        (first, running)
    })
    .await
    .unwrap();
    fleet.shutdown().await;
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["mac"], mac_of(1).as_str());
    assert!(
        still_running,
        "the line came before the 60 s listening window ended"
    );
}
