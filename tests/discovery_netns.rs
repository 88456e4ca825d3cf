#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A real multi-host broadcast: plugs in their own network namespaces, on two bridged subnets,
//! and `plugfleet discover` in a client namespace with an interface on each. Runs only as root
//! with `ip` available (skipped otherwise, with a note). Every address is private and lives only
//! inside the namespaces this test creates (no interface is added to the host's namespace); the
//! namespaces are deleted afterwards, also when the test fails.
//!
//! The plugs are served by this same test binary, re-run inside each plug namespace in helper
//! mode (`netns_plug_helper`, driven by an environment variable).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use plugfleet::net::discovery::loopback::{FakePlug, LoopbackFleet, mac_of};

const HELPER_ENV: &str = "PLUGFLEET_NETNS_PLUG";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes the namespaces (and with them every veth and bridge) when dropped.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Kills a helper process when dropped.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One plug: (namespace suffix, subnet 0/1, last octet).
const PLUGS: [(u8, u8); 4] = [(0, 11), (0, 12), (1, 21), (1, 22)];

fn plug_ip(subnet: u8, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 199, subnet, last)
}

fn build(prefix: &str) -> Result<Namespaces, String> {
    let hub = format!("{prefix}h");
    let client = format!("{prefix}c");
    let mut all = vec![hub.clone(), client.clone()];
    all.extend((0..PLUGS.len()).map(|i| format!("{prefix}p{i}")));
    let guard = Namespaces(Vec::new());
    let mut guard = guard;
    for ns in &all {
        ip(&["netns", "add", ns])?;
        guard.0.push(ns.clone());
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    for br in ["br0", "br1"] {
        ip(&["-n", &hub, "link", "add", br, "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", br, "up"])?;
    }
    // The client has a leg on each subnet (a multi-homed host).
    for subnet in 0..2u8 {
        let (hub_end, dev) = (format!("c{subnet}"), format!("eth{subnet}"));
        ip(&[
            "-n", &hub, "link", "add", &hub_end, "type", "veth", "peer", "name", &dev, "netns",
            &client,
        ])?;
        ip(&[
            "-n",
            &hub,
            "link",
            "set",
            &hub_end,
            "master",
            &format!("br{subnet}"),
            "up",
        ])?;
        let a = format!("10.199.{subnet}.1/24");
        ip(&["-n", &client, "addr", "add", &a, "brd", "+", "dev", &dev])?;
        ip(&["-n", &client, "link", "set", &dev, "up"])?;
    }
    for (i, (subnet, last)) in PLUGS.iter().enumerate() {
        let ns = format!("{prefix}p{i}");
        let hub_end = format!("p{i}");
        ip(&[
            "-n", &hub, "link", "add", &hub_end, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ])?;
        ip(&[
            "-n",
            &hub,
            "link",
            "set",
            &hub_end,
            "master",
            &format!("br{subnet}"),
            "up",
        ])?;
        let a = format!("{}/24", plug_ip(*subnet, *last));
        ip(&["-n", &ns, "addr", "add", &a, "brd", "+", "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    }
    Ok(guard)
}

/// Starts this binary in helper mode inside `ns` and waits for its ready line.
fn start_plug(ns: &str, subnet: u8, last: u8) -> Helper {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args(["netns_plug_helper", "--exact", "--ignored", "--nocapture"])
        .env(HELPER_ENV, format!("{subnet},{last}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let helper = Helper(child);
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.trim() == "PLUG-READY");
    assert!(ready, "helper in {ns} did not start");
    helper
}

/// Helper mode: one fake plug on this namespace's address, port 9999, broadcast listener on
/// the subnet's broadcast address; serves until stdin closes (at most 60 s).
#[tokio::test]
#[ignore = "helper for the namespace test; does nothing unless started by it"]
async fn netns_plug_helper() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (subnet, last) = spec.split_once(',').unwrap();
    let (subnet, last): (u8, u8) = (subnet.parse().unwrap(), last.parse().unwrap());
    let plug = FakePlug::legacy(plug_ip(subnet, last), u32::from(last));
    let fleet =
        LoopbackFleet::start_with(vec![plug], Ipv4Addr::new(10, 199, subnet, 255), 9999, 20002)
            .await
            .unwrap();
    println!("PLUG-READY");
    std::io::stdout().flush().unwrap();
    let wait_stdin = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
    });
    let _ = tokio::time::timeout(Duration::from_secs(60), wait_stdin).await;
    fleet.shutdown().await;
}

fn discover_in(ns: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            env!("CARGO_BIN_EXE_plugfleet"),
            "discover",
            "--json",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn by_mac(lines: Vec<serde_json::Value>) -> BTreeMap<String, serde_json::Value> {
    lines
        .into_iter()
        .map(|v| (v["mac"].as_str().unwrap().to_owned(), v))
        .collect()
}

#[test]
fn multi_host_broadcast_and_sweep_in_network_namespaces() {
    if !is_root() || Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let prefix = format!("pfd{}", std::process::id() % 100_000);
    let spaces = match build(&prefix) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: cannot build network namespaces ({e})");
            return;
        }
    };
    let client = format!("{prefix}c");
    let _plugs: Vec<Helper> = PLUGS
        .iter()
        .enumerate()
        .map(|(i, (subnet, last))| start_plug(&format!("{prefix}p{i}"), *subnet, *last))
        .collect();

    // Directed broadcast on both of the client's subnets finds every plug on both.
    let found = by_mac(discover_in(
        &client,
        &[
            "--target",
            "10.199.0.255",
            "--target",
            "10.199.1.255",
            "--timeout",
            "1",
        ],
    ));
    assert_eq!(found.len(), PLUGS.len(), "{found:#?}");
    for (subnet, last) in PLUGS {
        let v = &found[&mac_of(u32::from(last))];
        assert_eq!(v["ip"], plug_ip(subnet, last).to_string());
        assert_eq!(v["found_by"], serde_json::json!(["broadcast"]));
    }

    // One subnet's broadcast reaches only that subnet: what a single-target tool misses.
    let found = by_mac(discover_in(
        &client,
        &["--target", "10.199.0.255", "--timeout", "1"],
    ));
    assert_eq!(found.len(), 2, "{found:#?}");

    // The sweep finds the other subnet's plugs over TCP, on a network where silent addresses
    // time out instead of refusing.
    let found = by_mac(discover_in(
        &client,
        &["--sweep", "10.199.1.0/27", "--timeout", "1"],
    ));
    assert_eq!(found.len(), 2, "{found:#?}");
    for (_, v) in found {
        assert_eq!(v["found_by"], serde_json::json!(["sweep"]));
    }
    drop(_plugs);
    drop(spaces);
    // Cleaned up.
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&prefix));
}
