#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `plugfleet sim` binary: JSON lines when ready, answers on loopback, clean exit on SIGTERM,
//! exit status 2 for usage errors, a clear error for an address in use.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plugfleet::net::{Client, ClientConfig};
use serde_json::Value;

fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 64, pid.wrapping_mul(17).wrapping_add(n), 2)
}

fn plugfleet(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_plugfleet"));
    c.arg("sim").args(args);
    c
}

/// Kills the child if a test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `n` JSON lines from the child's stdout within a deadline.
fn read_lines(child: &mut Child, n: usize) -> Vec<Value> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    (0..n)
        .map(|_| {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("a JSON line per plug in time");
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
        })
        .collect()
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "the simulator did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_prints_one_json_line_per_plug_and_serves_until_sigterm() {
    let b = base();
    let hang = Ipv4Addr::from(u32::from(b) + 1);
    let args: Vec<String> = [
        "--base",
        &b.to_string(),
        "--port",
        "0",
        "--tdp-port",
        "0",
        "--count",
        "10",
        "--time-scale",
        "0.01",
        "--fault",
        &format!("{hang}=hang"),
        "--fault",
        &format!("{hang}=slow:250"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut child = Guard(
        plugfleet(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = read_lines(&mut child.0, 10);
    let port = lines[0]["port"].as_u64().unwrap();
    assert!(port > 0);
    let mut models = std::collections::HashSet::new();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["ip"], Ipv4Addr::from(u32::from(b) + i as u32).to_string());
        assert_eq!(l["port"].as_u64(), Some(port), "one port for the fleet");
        for k in [
            "model",
            "hw_ver",
            "sw_ver",
            "mac",
            "device_id",
            "alias",
            "protocol",
        ] {
            assert!(l[k].as_str().is_some_and(|s| !s.is_empty()), "{k} in {l}");
        }
        assert!(l["faults"].is_array());
        models.insert(l["model"].as_str().unwrap().to_owned());
    }
    assert!(models.len() >= 7, "a mixed fleet by default: {models:?}");
    assert_eq!(lines[1]["faults"], serde_json::json!(["hang", "slow:250"]));
    assert_eq!(lines[0]["faults"], serde_json::json!([]));
    assert!(lines.iter().any(|l| l["protocol"] == "legacy"));
    assert!(lines.iter().any(|l| l["protocol"] == "klap"));

    // The first plug answers like a plug.
    let c = Client::new(
        b.into(),
        ClientConfig::with_timeout(port as u16, Duration::from_secs(3)),
    );
    let info = c.sysinfo().await.expect("sysinfo from the sim process");
    assert_eq!(info.mac, lines[0]["mac"].as_str().unwrap());
    assert_eq!(info.model, lines[0]["model"].as_str().unwrap());

    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child.0, Duration::from_secs(10));
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

fn usage_error(args: &[&str]) -> String {
    let out = plugfleet(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error for {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let err = usage_error(&["--base", "192.168.1.2", "--port", "0"]);
    assert!(err.contains("loopback"), "{err}");
    let b = base().to_string();
    let err = usage_error(&["--base", &b, "--port", "0", "--profile", "toaster"]);
    assert!(
        err.contains("unknown profile") && err.contains("hs110-eu-hw1"),
        "{err}"
    );
    let err = usage_error(&["--base", &b, "--port", "0", "--fault", "hang"]);
    assert!(err.contains("IP=KIND"), "{err}");
    let err = usage_error(&["--base", &b, "--port", "0", "--fault", &format!("{b}=melt")]);
    assert!(err.contains("unknown fault"), "{err}");
    let err = usage_error(&["--base", &b, "--port", "0", "--fault", "127.200.0.1=hang"]);
    assert!(err.contains("not one of the fleet"), "{err}");
    let err = usage_error(&["--base", &b, "--port", "0", "--time-scale=0"]);
    assert!(err.contains("time scale"), "{err}");
    let err = usage_error(&["--base", &b, "--port", "0", "--accept-images", "/"]);
    assert!(err.contains("not a regular file"), "{err}");
    let list = std::env::temp_dir().join(format!("plugfleet-sim-list-{}.json", std::process::id()));
    std::fs::write(
        &list,
        r#"{"images":[{"sha256":"00","model":"HS110(US)","hw":"1","sw_ver":"1"}]}"#,
    )
    .unwrap();
    let err = usage_error(&[
        "--base",
        &b,
        "--port",
        "0",
        "--accept-images",
        list.to_str().unwrap(),
    ]);
    assert!(err.contains("64 hex"), "{err}");
    let _ = std::fs::remove_file(&list);
}

#[tokio::test]
async fn an_address_in_use_is_a_clear_error() {
    let b = base();
    let fleet = plugfleet::sim::start(plugfleet::sim::FleetSpec {
        profiles: vec!["hs100-us-hw2".into()],
        ..plugfleet::sim::FleetSpec::on_free_port(b, 1)
    })
    .await
    .unwrap();
    let out = plugfleet(&[
        "--base".into(),
        b.to_string(),
        "--port".into(),
        fleet.port().to_string(),
        "--profile".into(),
        "hs100-us-hw2".into(),
        "--count".into(),
        "1".into(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use"), "{err}");
    fleet.shutdown().await;
}

/// The child's stdout as a stream of JSON lines.
fn json_lines(child: &mut Child) -> mpsc::Receiver<Value> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next `{"stats":…}` line (plug lines are skipped).
fn next_stats(rx: &mpsc::Receiver<Value>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = rx.recv_timeout(left).expect("a stats line in time");
        if let Some(s) = v.get("stats") {
            return s.clone();
        }
    }
}

/// Polls the download state until `done` says so.
async fn wait_download(
    c: &Client,
    done: fn(&Result<plugfleet::protocol::DownloadState, plugfleet::net::NetError>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = c.download_state().await;
        if done(&s) {
            return;
        }
        assert!(Instant::now() < deadline, "download state stuck at {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The simulator counts what happened and prints it as a `{"stats":…}` line: on a `stats` line
/// on stdin, on SIGUSR1, and on exit (SIGTERM), with one entry per plug.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_reports_premature_flashes_downloads_and_rejections_as_stats() {
    use std::io::Write;

    use bytes::Bytes;
    use plugfleet::firmware::server::FileServer;
    use plugfleet::protocol::DownloadState;

    let good = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/firmware/hs110v1_us_1.2.7_Build_210310_Rel.113052.bin"),
    )
    .unwrap();
    let mut forged = good.clone();
    forged[100] ^= 0x20;
    let files = FileServer::with_token(
        "0123456789abcdef0123456789abcdef",
        [
            ("good.bin".to_owned(), Bytes::from(good.clone())),
            ("forged.bin".to_owned(), Bytes::from(forged)),
        ],
    )
    .unwrap();
    let running = files
        .spawn(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let url = |name: &str| {
        running
            .url_for(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), name)
            .unwrap()
    };

    let b = base();
    let args: Vec<String> = [
        "--base",
        &b.to_string(),
        "--port",
        "0",
        "--count",
        "2",
        "--profile",
        "hs110-us-hw1",
        "--time-scale",
        "0.01",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut child = Guard(
        plugfleet(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rx = json_lines(&mut child.0);
    let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let _second = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let port = first["port"].as_u64().unwrap() as u16;
    let c = Client::new(
        b.into(),
        ClientConfig::with_timeout(port, Duration::from_secs(3)),
    );
    // Two flashes before any download: refused and counted.
    for _ in 0..2 {
        assert!(c.flash_firmware().await.is_err());
    }
    // A tampered image: downloaded in full, then rejected; flashing it is premature too.
    c.download_firmware(&url("forged.bin")).await.unwrap();
    wait_download(&c, |s| s.is_err()).await;
    assert!(c.flash_firmware().await.is_err());
    // The real image: downloaded, accepted, flashed.
    c.download_firmware(&url("good.bin")).await.unwrap();
    wait_download(&c, |s| s.as_ref().is_ok_and(DownloadState::is_complete)).await;
    c.flash_firmware().await.expect("flash accepted");

    let mut stdin = child.0.stdin.take().unwrap();
    writeln!(stdin, "stats").unwrap();
    stdin.flush().unwrap();
    let s = next_stats(&rx);
    assert_eq!(s["premature_flash_attempts"], 3, "{s}");
    assert_eq!(s["downloads_started"], 2, "{s}");
    assert_eq!(s["downloads_completed"], 1, "{s}");
    assert_eq!(s["images_rejected"], 1, "{s}");
    assert_eq!(s["downloads_failed"], 0, "{s}");
    assert_eq!(s["flashes"], 1, "{s}");
    assert_eq!(
        s["bytes_downloaded"].as_u64(),
        Some(2 * good.len() as u64),
        "{s}"
    );
    assert!(s["connections"].as_u64().unwrap() >= 1, "{s}");
    let plugs = s["plugs"].as_array().unwrap();
    assert_eq!(plugs.len(), 2);
    assert_eq!(plugs[0]["ip"], b.to_string());
    assert_eq!(plugs[0]["premature_flash_attempts"], 3);
    assert_eq!(plugs[1]["premature_flash_attempts"], 0);
    assert_eq!(plugs[1]["downloads_started"], 0);

    // SIGUSR1 asks too; one more premature flash on the second plug shows up.
    let c2 = Client::new(
        Ipv4Addr::from(u32::from(b) + 1).into(),
        ClientConfig::with_timeout(port, Duration::from_secs(3)),
    );
    assert!(c2.flash_firmware().await.is_err());
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-USR1", &pid])
            .status()
            .unwrap()
            .success()
    );
    let s = next_stats(&rx);
    assert_eq!(s["premature_flash_attempts"], 4, "{s}");
    assert_eq!(s["plugs"][1]["premature_flash_attempts"], 1, "{s}");

    // An unknown command on stdin is not fatal.
    writeln!(stdin, "frobnicate").unwrap();
    stdin.flush().unwrap();

    // On exit: the final count.
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let s = next_stats(&rx);
    assert_eq!(s["premature_flash_attempts"], 4, "{s}");
    assert_eq!(s["flashes"], 1, "{s}");
    let status = wait_exit(&mut child.0, Duration::from_secs(10));
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    running.shutdown().await;
}

/// `--accept-images FILE` adds images the simulated plugs accept: an image built for the test
/// is downloaded, accepted and flashed, and the plug reports the listed `sw_ver`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_accepts_the_images_listed_with_accept_images() {
    use bytes::Bytes;
    use plugfleet::firmware::header::ImageHeader;
    use plugfleet::firmware::server::FileServer;
    use plugfleet::protocol::DownloadState;
    use plugfleet::sim::images::sha256_hex;

    let img = ImageHeader::new("HS110", "1", "US", "1.2.9", "220101", "101010").build(&[4u8; 8192]);
    let list =
        std::env::temp_dir().join(format!("plugfleet-sim-accept-{}.json", std::process::id()));
    std::fs::write(
        &list,
        serde_json::json!({"images": [{"sha256": sha256_hex(&img), "model": "HS110(US)",
            "hw": "1", "sw_ver": "1.2.9 Build 220101 Rel.101010"}]})
        .to_string(),
    )
    .unwrap();
    let files = FileServer::with_token(
        "0123456789abcdef0123456789abcdef",
        [("img.bin".to_owned(), Bytes::from(img))],
    )
    .unwrap();
    let running = files
        .spawn(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let url = running
        .url_for(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), "img.bin")
        .unwrap();

    let b = base();
    let args: Vec<String> = [
        "--base",
        &b.to_string(),
        "--port",
        "0",
        "--count",
        "1",
        "--profile",
        "hs110-us-hw1",
        "--time-scale",
        "0.01",
        "--accept-images",
        list.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut child = Guard(
        plugfleet(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rx = json_lines(&mut child.0);
    let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    let port = first["port"].as_u64().unwrap() as u16;
    let c = Client::new(
        b.into(),
        ClientConfig::with_timeout(port, Duration::from_secs(3)),
    );
    c.download_firmware(&url).await.unwrap();
    wait_download(&c, |s| s.as_ref().is_ok_and(DownloadState::is_complete)).await;
    c.flash_firmware().await.expect("flash accepted");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(info) = c.sysinfo().await {
            if info.sw_ver == "1.2.9 Build 220101 Rel.101010" {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the plug came back on the listed version"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let s = next_stats(&rx);
    assert_eq!(
        (s["downloads_completed"].as_u64(), s["flashes"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(s["images_rejected"], 0, "{s}");
    wait_exit(&mut child.0, Duration::from_secs(10));
    running.shutdown().await;
    let _ = std::fs::remove_file(&list);
}

#[test]
fn a_reader_gone_before_the_exit_stats_is_not_an_error() {
    // Found by QA: `plugfleet sim | head -1`, then Ctrl-C, ended with "plugfleet: error: Broken
    // pipe" and exit status 1: the broken pipe of the (large) exit stats line, written through
    // serde_json, was not recognised as the reader going away.
    let count = 40;
    let child = plugfleet(&[
        "--base".into(),
        base().to_string(),
        "--port".into(),
        "0".into(),
        "--tdp-port".into(),
        "0".into(),
        "--count".into(),
        count.to_string(),
    ])
    .env("PLUGFLEET_LOG_DIR", std::env::temp_dir())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut g = Guard(child);
    let mut lines = BufReader::new(g.0.stdout.take().unwrap()).lines();
    for _ in 0..count {
        let line = lines.next().expect("a JSON line per plug").unwrap();
        assert!(line.starts_with('{'), "{line}");
    }
    // The reader goes away, then the simulator is asked to stop (and prints its stats).
    drop(lines);
    let pid = g.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut g.0, Duration::from_secs(30));
    let mut stderr = String::new();
    std::io::Read::read_to_string(g.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(status.success(), "{status:?}: {stderr}");
}
