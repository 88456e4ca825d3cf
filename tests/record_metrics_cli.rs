#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recording and metrics through the real binary, against simulated plugs on loopback:
//! `status --record` (JSON lines and CSV) parsed back and checked against the simulator's plugs,
//! local names from the config file included; `status --metrics` served over HTTP and scraped
//! with a raw request; and `demo --record --metrics` in a pseudo-terminal: the status bar shows
//! both, the endpoint serves the TUI's readings, the log pane opens, and the file holds the
//! readings after quitting.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use plugfleet::fleet::plausibility::Verdict;
use plugfleet::record::{CSV_HEADER, ReadingRecord};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec};

#[path = "common/pty.rs"]
mod pty;

use pty::Tui;

/// A distinct 127.204.N.2 base per test (and per process, mostly).
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 204, pid.wrapping_mul(13).wrapping_add(n * 3), 2)
}

const PROFILES: [&str; 4] = [
    "hs110-us-hw1",
    "hs110-eu-hw4",
    "hs300-us-hw2",
    "hs100-us-hw2",
];

async fn fleet() -> Fleet {
    let b = base();
    let spec = FleetSpec {
        profiles: PROFILES.iter().map(|s| s.to_string()).collect(),
        faults: vec![(b, FaultKind::Bogus28kw)],
        ..FleetSpec::on_free_port(b, PROFILES.len())
    };
    sim::start(spec).await.expect("fleet starts")
}

struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU8 = AtomicU8::new(0);
        let d = std::env::temp_dir().join(format!(
            "pf-recmet-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config file naming the first plug (the 28 kW one) "Garage heater".
fn config(dir: &TmpDir, fleet: &Fleet) -> PathBuf {
    let p = dir.0.join("config.toml");
    let mac = &fleet.plugs()[0].mac;
    std::fs::write(&p, format!("[names]\n\"{mac}\" = \"Garage heater\"\n")).unwrap();
    p
}

fn status_args(fleet: &Fleet, cfg: &std::path::Path) -> Vec<String> {
    let mut a = vec![
        "--config".to_string(),
        cfg.display().to_string(),
        "status".into(),
        "--port".into(),
        fleet.port().to_string(),
        "--tdp-port".into(),
        fleet.tdp_port().to_string(),
        "--timeout".into(),
        "3".into(),
    ];
    for p in fleet.plugs() {
        a.extend(["--host".into(), p.ip.to_string()]);
    }
    a
}

async fn run(args: Vec<String>, logs: PathBuf) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .env("PLUGFLEET_LOG_DIR", logs)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Checks records of one `status` round against the simulated fleet.
fn check_records(fleet: &Fleet, recs: &[ReadingRecord]) {
    let plugs = fleet.plugs();
    // The 28 kW plug, the EU plug, the strip's own row and six outlets; the HS100 has no
    // meter.
    assert_eq!(recs.len(), 9, "{recs:#?}");
    for r in recs {
        let p = plugs.iter().find(|p| p.ip.to_string() == r.ip).unwrap();
        assert_eq!(r.mac, plugfleet::protocol::normalise_mac(&p.mac));
        assert_eq!(r.device_id, p.device_id);
        assert_eq!(r.model, p.model);
        assert_eq!(r.alias, p.alias);
        assert!(p.has_meter(), "{} has no meter but was recorded", p.model);
        assert!(r.unix_ms > 1_600_000_000_000);
        assert!(r.voltage_v.is_some() && r.total_kwh.is_some_and(|t| t >= 0.0));
    }
    let heater = recs
        .iter()
        .find(|r| r.ip == plugs[0].ip.to_string())
        .unwrap();
    assert_eq!(
        heater.name.as_deref(),
        Some("Garage heater"),
        "local name from the config"
    );
    assert_eq!(heater.verdict, Verdict::Bogus);
    assert!(heater.power_w.is_some_and(|w| w > 20_000.0), "{heater:?}");
    assert!(!heater.reasons.is_empty());
    let eu = recs
        .iter()
        .find(|r| r.ip == plugs[1].ip.to_string())
        .unwrap();
    assert_eq!(eu.name, None);
    assert!(
        eu.voltage_v.is_some_and(|v| (200.0..260.0).contains(&v)),
        "{eu:?}"
    );
    let strip = &plugs[2];
    let outlets: BTreeSet<String> = recs
        .iter()
        .filter(|r| r.ip == strip.ip.to_string())
        .filter_map(|r| r.outlet_id.clone())
        .collect();
    assert_eq!(outlets.len(), 6);
    assert!(outlets.iter().all(|id| id.starts_with(&strip.device_id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_record_writes_json_lines_and_csv_that_parse_back() {
    let fleet = fleet().await;
    let dir = TmpDir::new("status");
    let cfg = config(&dir, &fleet);

    let jsonl = dir.0.join("day.jsonl");
    let mut args = status_args(&fleet, &cfg);
    args.extend(["--record".into(), jsonl.display().to_string()]);
    let out = run(args.clone(), dir.0.join("logs")).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let recs: Vec<ReadingRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    check_records(&fleet, &recs);
    // A second run appends.
    let out = run(args, dir.0.join("logs")).await;
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&jsonl).unwrap().lines().count(), 18);

    // CSV, by the explicit format (the name says nothing).
    let csv_path = dir.0.join("day.txt");
    let mut args = status_args(&fleet, &cfg);
    args.extend([
        "--record".into(),
        csv_path.display().to_string(),
        "--record-format".into(),
        "csv".into(),
    ]);
    let out = run(args, dir.0.join("logs")).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rd = csv::Reader::from_path(&csv_path).unwrap();
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, CSV_HEADER);
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    let recs: Vec<ReadingRecord> = rows
        .iter()
        .map(|row| ReadingRecord::from_csv_fields(&row.iter().collect::<Vec<_>>()).unwrap())
        .collect();
    check_records(&fleet, &recs);

    // A file that cannot be written stops `status` before any plug is asked.
    let mut args = status_args(&fleet, &cfg);
    args.extend([
        "--record".into(),
        dir.0.join("no/such/dir/x.jsonl").display().to_string(),
    ]);
    let before: u64 = fleet.plugs().iter().map(|p| p.requests()).sum();
    let out = run(args, dir.0.join("logs")).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("x.jsonl"));
    let after: u64 = fleet.plugs().iter().map(|p| p.requests()).sum();
    assert_eq!(before, after);
    fleet.shutdown().await;
}

/// GET `path` over a raw HTTP/1.1 connection: (status code, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    // Bodies without a length come chunked; the text format has no lines that look like sizes
    // on their own, so chunk-size lines are dropped.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split("\r\n")
            .filter(|l| u64::from_str_radix(l.trim(), 16).is_err())
            .collect::<Vec<_>>()
            .join("")
    } else {
        body.to_owned()
    };
    (code, body)
}

/// Samples of `name` whose labels contain every `want` pair.
fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            want.iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes until `pred` holds, within 30 s.
fn scrape_until(addr: SocketAddr, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = http_get(addr, "/metrics");
        assert_eq!(code, 200);
        if pred(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "metrics never ready:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_metrics_serves_the_fleet_until_interrupted() {
    let fleet = fleet().await;
    let dir = TmpDir::new("metrics");
    let cfg = config(&dir, &fleet);
    let mut args = status_args(&fleet, &cfg);
    args.extend([
        "--metrics".into(),
        "127.0.0.1:0".into(),
        "--interval".into(),
        "1".into(),
    ]);
    let plugs: Vec<_> = fleet.plugs().to_vec();
    let logs = dir.0.join("logs");
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .env("PLUGFLEET_LOG_DIR", logs)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().strip_prefix("metrics at http://").expect(&line);
        let addr: SocketAddr = url.strip_suffix("/metrics").unwrap().parse().unwrap();
        assert!(addr.ip().is_loopback());
        let heater = plugfleet::protocol::normalise_mac(&plugs[0].mac);
        let body = scrape_until(addr, |b| {
            value(b, "plugfleet_power_watts", &[("mac", &heater)]).is_some()
                && value(b, "plugfleet_devices", &[]) == Some(4.0)
        });
        let w = value(&body, "plugfleet_power_watts", &[("mac", &heater)]).unwrap();
        assert!(w > 20_000.0, "{w}");
        assert_eq!(
            value(
                &body,
                "plugfleet_reading_verdict",
                &[("mac", &heater), ("verdict", "bogus")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &body,
                "plugfleet_device_info",
                &[("mac", &heater), ("name", "Garage heater")]
            ),
            Some(1.0)
        );
        for p in &plugs {
            let mac = plugfleet::protocol::normalise_mac(&p.mac);
            assert_eq!(
                value(&body, "plugfleet_device_up", &[("mac", &mac)]),
                Some(1.0)
            );
            assert_eq!(
                value(
                    &body,
                    "plugfleet_device_info",
                    &[("mac", &mac), ("sw_ver", &p.sw_ver)]
                ),
                Some(1.0),
                "{}",
                p.model
            );
        }
        assert_eq!(http_get(addr, "/").0, 404);
        // Rounds go on: the reading count grows.
        let first = value(&body, "plugfleet_readings_total", &[("mac", &heater)]).unwrap();
        scrape_until(addr, |b| {
            value(b, "plugfleet_readings_total", &[("mac", &heater)]).is_some_and(|n| n > first)
        });
        // SIGTERM ends it cleanly.
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "status --metrics did not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status:?}");
    })
    .await
    .unwrap();
    fleet.shutdown().await;
}

#[test]
fn demo_records_serves_metrics_and_shows_its_log() {
    let dir = TmpDir::new("demo");
    let file = dir.0.join("demo.csv");
    let logs = dir.0.join("logs");
    let data = dir.0.join("data");
    let file_s = file.display().to_string();
    let mut tui = Tui::start_sized(
        &[
            "demo",
            "--interval",
            "1",
            "--record",
            &file_s,
            "--metrics",
            "127.0.0.1:0",
        ],
        30,
        140,
        &[("PLUGFLEET_LOG_DIR", &logs), ("XDG_DATA_HOME", &data)],
    );
    tui.wait_for("recording, metrics and a bogus plug", |s| {
        s.contains("● REC") && s.contains("/metrics") && s.contains("BOGUS")
    });
    let screen = tui.screen();
    let at = screen.find("http://127.0.0.1:").unwrap() + "http://".len();
    let addr: SocketAddr = screen[at..]
        .split("/metrics")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The endpoint serves what the TUI reads: the demo's sixteen devices, bogus readings flagged.
    let body = scrape_until(addr, |b| {
        value(b, "plugfleet_devices", &[]) == Some(16.0)
            && b.lines().any(|l| {
                l.starts_with("plugfleet_reading_verdict{")
                    && l.contains("verdict=\"bogus\"")
                    && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(1.0)
            })
    });
    // The device judged bogus has its reading exported beside the verdict.
    let bogus_mac = body
        .lines()
        .find(|l| {
            l.starts_with("plugfleet_reading_verdict{")
                && l.contains("verdict=\"bogus\"")
                && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(1.0)
        })
        .and_then(|l| l.split("mac=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    assert!(value(&body, "plugfleet_power_watts", &[("mac", &bogus_mac)]).is_some());
    assert!(
        body.contains("protocol=\"klap\""),
        "the newer-protocol plug is listed"
    );

    // The log pane shows what was logged, recording included.
    tui.send("L");
    tui.wait_for("the log pane", |s| {
        s.contains("Recent log") && s.contains("recording readings to")
    });
    tui.send("\x1b");
    tui.wait_for("the log pane closed", |s| !s.contains("Recent log"));

    // Stop recording with the key: the writer says how many it wrote.
    tui.send("w");
    tui.wait_for("recording stopped", |s| {
        s.contains("recording to") && s.contains("stopped") && !s.contains("● REC")
    });
    tui.send("q");
    assert!(tui.wait_exit().success());

    let mut rd = csv::Reader::from_path(&file).unwrap();
    let col = |name: &str| CSV_HEADER.iter().position(|h| *h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert!(!rows.is_empty());
    let bogus: Vec<&csv::StringRecord> = rows
        .iter()
        .filter(|r| &r[col("verdict")] == "bogus")
        .collect();
    assert!(!bogus.is_empty());
    assert!(bogus.iter().all(|r| !r[col("reasons")].is_empty()));
    assert!(
        bogus
            .iter()
            .all(|r| r[col("power_w")].parse::<f64>().is_ok())
    );
    for r in &rows {
        let ip: Ipv4Addr = r[col("ip")].parse().unwrap();
        assert!(ip.is_loopback());
        let mac = &r[col("mac")];
        assert!(
            body.contains(&format!("mac=\"{mac}\"")),
            "{mac} not in the metrics"
        );
    }
    // Nothing went to the default data folder.
    assert!(!data.exists());
}
