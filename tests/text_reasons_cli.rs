#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A bad reply is not "no answer" (issue 13): a named host that answers with an impossible
//! length header is reported with the typed reason by `discover --json` (field `error`) and by
//! `status`, with the real binary on loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Output};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const REASON: &str = "bad reply: length 2147483648 over the 64 KiB cap";

/// A loopback address of our own.
fn addr(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        10 + (std::process::id() % 80) as u8,
        213,
        last,
    ))
}

/// A "plug" at `ip` that answers every request with a 2 GiB length header and a few bytes.
async fn hostile_plug(ip: IpAddr) -> u16 {
    let l = TcpListener::bind(SocketAddr::new(ip, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        // Bounded: a handful of connections is all a test makes.
        for _ in 0..16 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let mut out = 0x8000_0000u32.to_be_bytes().to_vec();
                out.extend_from_slice(b"{\"sys");
                let _ = s.write_all(&out).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn plugfleet(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .env("PLUGFLEET_LOG_DIR", std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(cmd: &str, ip: IpAddr, port: u16, json: bool) -> Vec<String> {
    let mut a: Vec<String> = [
        cmd,
        "--host",
        &ip.to_string(),
        "--port",
        &port.to_string(),
        "--timeout",
        "2",
        "--tdp-port",
        &free_udp_port().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if json {
        a.push("--json".into());
    }
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_json_carries_the_reason_of_a_bad_reply() {
    let ip = addr(1);
    let port = hostile_plug(ip).await;
    let out = plugfleet(args("discover", ip, port, true)).await;
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let line = lines
        .iter()
        .find(|v| v["ip"] == ip.to_string())
        .unwrap_or_else(|| panic!("no line for {ip}: {stdout}"));
    assert_eq!(line["online"], false, "{line}");
    assert_eq!(line["error"], REASON, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_why_a_named_host_was_unusable() {
    let ip = addr(2);
    let port = hostile_plug(ip).await;
    let out = plugfleet(args("status", ip, port, false)).await;
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(&format!("{ip}: {REASON}")), "{stderr}");
    assert!(!stderr.contains("no answer"), "{stderr}");
}

/// A UDP "plug" at `ip:port` that answers every datagram with bytes that are not the protocol.
async fn garbage_udp(ip: IpAddr, port: u16) {
    let s = tokio::net::UdpSocket::bind(SocketAddr::new(ip, port))
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        // Bounded: a handful of probes is all one discovery pass sends.
        for _ in 0..32 {
            let Ok((_, from)) = s.recv_from(&mut buf).await else {
                return;
            };
            let _ = s.send_to(b"\x00\x01garbage\xff", from).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_says_each_reason_of_a_named_host_once() {
    // Found by QA: a plug that answers garbage on UDP and TCP was reported four times, the same
    // line repeated for each probe and retry.
    let ip = addr(3);
    let port = hostile_plug(ip).await;
    garbage_udp(ip, port).await;
    for json in [false, true] {
        let out = plugfleet(args("discover", ip, port, json)).await;
        // The named host's line: a JSON line, or an offline row in the table (stdout), plus
        // whatever stderr says about it.
        let text = format!(
            "{}{}",
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap()
        );
        let mine: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&ip.to_string()))
            .collect();
        assert!(!mine.is_empty(), "no reason for {ip}: {text}");
        let distinct: std::collections::HashSet<&&str> = mine.iter().collect();
        assert_eq!(distinct.len(), mine.len(), "a reason repeated: {text}");
    }
}
