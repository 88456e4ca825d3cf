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
async fn nothing_found_is_still_success() {
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
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
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
