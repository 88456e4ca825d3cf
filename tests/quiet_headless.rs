#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The quiet meter faults (issue 15) found by the real binaries, headless: a `plugfleet sim`
//! process with `--fault IP=stuck-meter`, `phantom-load` and `voltage-drift:-8` among healthy
//! plugs, read by
//!
//! - a one-shot `plugfleet status --json --record`: the drifted voltage against the fleet (a
//!   rule that needs no history) with its evidence, in the JSON line and the record row;
//! - the continuous `plugfleet status --metrics … --interval 1 --record FILE`: the stuck meter
//!   and the phantom load, in `/metrics` (`plugfleet_reading_findings_total{rule}` and the
//!   per-device `plugfleet_reading_finding`) and in the record file with their evidence.
//!
//! `counter-lag` needs ≥ 10 minutes of history on the model's clock, and `status` runs on the
//! real one: it is covered through the TUI path on a fast simulated clock
//! (`tests/quiet_tui.rs`). Every wait is bounded; nothing asserts how long anything took.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plugfleet::net::{Client, ClientConfig};
use plugfleet::record::ReadingRecord;
use serde_json::Value;

/// The fleet: seven metered US plugs from 127.72.7.2 (fixed: the simulator picks each plug's
/// appliance from its address, and the first must be an aquarium, never under the frozen
/// rule's 5 W floor).
const BASE: Ipv4Addr = Ipv4Addr::new(127, 72, 7, 2);
const COUNT: usize = 7;
const STUCK: usize = 0;
const PHANTOM: usize = 1;
const DRIFT: usize = 2;

fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(BASE) + i as u32)
}

/// Kills the child if a test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU8 = AtomicU8::new(0);
        let d = std::env::temp_dir().join(format!(
            "pf-quiet-{tag}-{}-{}",
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

/// Lines of a child's stdout, read on a thread (so every wait for one can be bounded).
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
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
    rx
}

/// The simulator process: the fleet's JSON lines (one per plug) once it serves.
fn start_sim() -> (Guard, Vec<Value>) {
    let mut args: Vec<String> = [
        "sim",
        "--base",
        &BASE.to_string(),
        "--count",
        &COUNT.to_string(),
        "--port",
        "0",
        "--tdp-port",
        "0",
        "--profile",
        "hs110-us-hw1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, kind) in [
        (STUCK, "stuck-meter"),
        (PHANTOM, "phantom-load"),
        (DRIFT, "voltage-drift:-8"),
    ] {
        args.extend(["--fault".into(), format!("{}={kind}", ip(i))]);
    }
    let mut child = Guard(
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rx = lines_of(&mut child.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let plugs = (0..COUNT)
        .map(|_| {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("a JSON line per plug in time");
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
        })
        .collect();
    (child, plugs)
}

fn port(plugs: &[Value]) -> u16 {
    plugs[0]["port"].as_u64().expect("port") as u16
}

/// Every relay on but the phantom-load plug's (its fault shows with the relay off).
async fn set_relays(plugs: &[Value]) {
    for i in 0..COUNT {
        Client::new(
            ip(i).into(),
            ClientConfig::with_timeout(port(plugs), Duration::from_secs(3)),
        )
        .set_relay(i != PHANTOM, None)
        .await
        .expect("relay");
    }
}

fn status_args(dir: &TmpDir, plugs: &[Value]) -> Vec<String> {
    let cfg = dir.0.join("config.toml");
    std::fs::write(&cfg, "").unwrap();
    let mut a: Vec<String> = vec![
        "--config".into(),
        cfg.display().to_string(),
        "status".into(),
        "--port".into(),
        port(plugs).to_string(),
        "--tdp-port".into(),
        plugs[0]["port"].to_string(),
        "--timeout".into(),
        "3".into(),
    ];
    for i in 0..COUNT {
        a.extend(["--host".into(), ip(i).to_string()]);
    }
    a
}

fn mac(plugs: &[Value], i: usize) -> String {
    plugfleet::protocol::normalise_mac(plugs[i]["mac"].as_str().expect("mac"))
}

fn records(path: &Path) -> Vec<ReadingRecord> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The record rows of plug `i`.
fn rows_of(recs: &[ReadingRecord], i: usize) -> Vec<&ReadingRecord> {
    let ip = ip(i).to_string();
    recs.iter().filter(|r| r.ip == ip).collect()
}

/// The rules of a row's findings.
fn rules(r: &ReadingRecord) -> Vec<String> {
    r.findings
        .iter()
        .map(|f| f["rule"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The first row of plug `i` with a finding of `rule`: its evidence is of `kind`, its text
/// among the row's reasons, the row suspect.
fn found<'a>(recs: &'a [ReadingRecord], i: usize, rule: &str, kind: &str) -> &'a Value {
    let rows = rows_of(recs, i);
    let row = rows
        .iter()
        .find(|r| rules(r).iter().any(|x| x == rule))
        .unwrap_or_else(|| panic!("no {rule} row for plug {i}: {rows:#?}"));
    let f = row
        .findings
        .iter()
        .find(|f| f["rule"] == rule)
        .expect("finding");
    assert_eq!(f["evidence"]["kind"], kind, "{f}");
    let text = f["text"].as_str().expect("text");
    assert!(row.reasons.iter().any(|r| r == text), "{row:?}");
    assert_eq!(
        row.verdict,
        plugfleet::fleet::plausibility::Verdict::Suspect,
        "{row:?}"
    );
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_status_finds_the_quiet_faults_with_their_evidence() {
    let (_sim, plugs) = start_sim();
    assert!(
        plugs[STUCK]["alias"]
            .as_str()
            .is_some_and(|a| a.ends_with("aquarium")),
        "{}",
        plugs[STUCK]
    );
    set_relays(&plugs).await;
    let dir = TmpDir::new("headless");
    let logs = dir.0.join("logs");

    // One shot: the voltage against the fleet needs no history.
    let once = dir.0.join("once.jsonl");
    let mut args = status_args(&dir, &plugs);
    args.extend([
        "--json".into(),
        "--record".into(),
        once.display().to_string(),
    ]);
    let out = {
        let logs = logs.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_plugfleet"))
                .args(&args)
                .env("PLUGFLEET_LOG_DIR", logs)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), COUNT, "{lines:#?}");
    for l in &lines {
        let findings = l["plausibility"]["findings"].as_array().cloned();
        let findings = findings.unwrap_or_default();
        if l["ip"] == ip(DRIFT).to_string() {
            assert_eq!(findings.len(), 1, "{l}");
            let f = &findings[0];
            assert_eq!(f["rule"], "fleet_voltage", "{l}");
            let e = &f["evidence"];
            assert_eq!(e["others"], COUNT - 1, "{l}");
            let diff = e["diff_pct"].as_f64().expect("diff");
            // Each plug's mains voltage wanders ~±1.2 % with noise, the fleet median with it:
            // 8 % low reads between about -10.5 % and -5.5 %, always past the 4 % margin.
            assert!((-11.0..-4.5).contains(&diff), "8 % low: {l}");
            let reasons = l["plausibility"]["reasons"].as_array().expect("reasons");
            assert!(reasons.iter().any(|r| *r == f["text"]), "{l}");
        } else {
            // One poll is too little history for the stuck meter and the phantom load.
            assert!(findings.is_empty(), "{l}");
        }
    }
    let recs = records(&once);
    assert_eq!(recs.len(), COUNT);
    let f = found(&recs, DRIFT, "fleet_voltage", "fleet_voltage");
    assert!(
        f["text"]
            .as_str()
            .is_some_and(|t| t.contains("vs fleet median")),
        "{f}"
    );

    // Continuous: rounds every second into one model, served and recorded.
    let cont = dir.0.join("rounds.jsonl");
    let mut args = status_args(&dir, &plugs);
    args.extend([
        "--metrics".into(),
        "127.0.0.1:0".into(),
        "--interval".into(),
        "1".into(),
        "--record".into(),
        cont.display().to_string(),
    ]);
    let (stuck_mac, phantom_mac) = (mac(&plugs, STUCK), mac(&plugs, PHANTOM));
    let body = tokio::task::spawn_blocking(move || {
        let mut child = Guard(
            Command::new(env!("CARGO_BIN_EXE_plugfleet"))
                .args(&args)
                .env("PLUGFLEET_LOG_DIR", logs)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let rx = lines_of(&mut child.0);
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the metrics URL");
        let url = line.trim().strip_prefix("metrics at http://").expect(&line);
        let addr: SocketAddr = url.strip_suffix("/metrics").unwrap().parse().unwrap();
        assert!(addr.ip().is_loopback());
        // The frozen rule needs 10 rounds: bounded by 60 s only so a broken build fails.
        let body = scrape_until(addr, |b| {
            count(b, "frozen_meter") >= 1.0 && count(b, "phantom_load") >= 1.0
        });
        let st = Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "status --metrics did not stop");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status:?}");
        body
    })
    .await
    .unwrap();
    // The device's finding gauge names its rule.
    for (mac, rule) in [(&stuck_mac, "frozen_meter"), (&phantom_mac, "phantom_load")] {
        assert!(
            body.lines()
                .any(|l| l.starts_with("plugfleet_reading_finding{")
                    && l.contains(&format!("rule=\"{rule}\""))
                    && l.contains(&format!("mac=\"{mac}\""))
                    && sample(l) == Some(1.0)),
            "{rule} of {mac}:\n{body}"
        );
    }
    // The healthy plugs raise no finding.
    for i in DRIFT + 1..COUNT {
        let m = mac(&plugs, i);
        assert!(
            !body
                .lines()
                .any(|l| l.starts_with("plugfleet_reading_finding{")
                    && l.contains(&format!("mac=\"{m}\""))
                    && sample(l) == Some(1.0)),
            "healthy plug {i}:\n{body}"
        );
    }

    // The record file: every round's readings, the findings with their evidence.
    let recs = records(&cont);
    let f = found(&recs, STUCK, "frozen_meter", "frozen");
    let polls = f["evidence"]["polls"].as_u64().expect("polls");
    assert!(polls >= 10, "{f}");
    assert!(
        f["text"]
            .as_str()
            .is_some_and(|t| t.starts_with(&format!("frozen for {polls} polls at"))),
        "{f}"
    );
    let f = found(&recs, PHANTOM, "phantom_load", "phantom");
    let w = f["evidence"]["power_w"].as_f64().expect("watts");
    assert!((3.0..5.0).contains(&w), "the fault's ~4 W: {f}");
    found(&recs, DRIFT, "fleet_voltage", "fleet_voltage");
    // Each round recorded each plug; the healthy ones never with a finding.
    assert!(rows_of(&recs, STUCK).len() >= 10);
    for i in DRIFT + 1..COUNT {
        let rows = rows_of(&recs, i);
        assert!(!rows.is_empty());
        assert!(rows.iter().all(|r| r.findings.is_empty()), "{rows:#?}");
    }
}

/// The value of one sample line.
fn sample(line: &str) -> Option<f64> {
    line.rsplit(' ').next()?.parse().ok()
}

/// `plugfleet_reading_findings_total{rule="RULE"}`, 0 when absent.
fn count(body: &str, rule: &str) -> f64 {
    let name = format!("plugfleet_reading_findings_total{{rule=\"{rule}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// GET /metrics over a raw HTTP/1.1 connection: the body.
fn metrics(addr: SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split("\r\n")
            .filter(|l| u64::from_str_radix(l.trim(), 16).is_err())
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        body.to_owned()
    }
}

/// Scrapes until `pred` holds (at most 60 s, only so a broken build fails instead of hanging).
fn scrape_until(addr: SocketAddr, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = metrics(addr);
        if pred(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "never found:\n{body}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_continuous_record_file_that_cannot_be_written_stops_status_before_any_plug_is_asked() {
    let dir = TmpDir::new("badrec");
    let cfg = dir.0.join("config.toml");
    std::fs::write(&cfg, "").unwrap();
    let bad = dir.0.join("no/such/dir/rounds.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
        .args([
            "--config",
            &cfg.display().to_string(),
            "status",
            "--host",
            "127.72.99.2",
            "--metrics",
            "127.0.0.1:0",
            "--interval",
            "1",
            "--record",
            &bad.display().to_string(),
        ])
        .env("PLUGFLEET_LOG_DIR", dir.0.join("logs"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rounds.jsonl"), "{err}");
    // Nothing was served.
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("metrics at"),
        "{out:?}"
    );
}
