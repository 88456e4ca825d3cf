#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every way out of `plugfleet update` (the real binary, against simulated plugs on loopback):
//! a signal while a plug is flashing starts no more plugs, lets the flashing one run to verified
//! with its relay restored, prints the summary and exits 130; a second signal only says what is
//! still flashing; the third abandons the wait (exit 3) and names the plug left unverified.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plugfleet::firmware::header::ImageHeader;
use plugfleet::net::{Client, ClientConfig};
use plugfleet::sim::{Fleet, FleetSpec, KnownImage};
use serde_json::Value;

const OLD_SW: &str = "1.2.6";
const NEW_SW: &str = "1.2.9 Build 220101 Rel.101010";

fn base() -> Ipv4Addr {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed) as u8;
    let pid = std::process::id() as u8;
    Ipv4Addr::new(
        127,
        66,
        pid.wrapping_mul(17).wrapping_add(n.wrapping_mul(5)),
        2,
    )
}

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "plugfleet-update-signals-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn image_bytes() -> Vec<u8> {
    ImageHeader::new("HS110", "1", "US", "1.2.9", "220101", "101010").build(&[5u8; 50_000])
}

fn image_file(dir: &Path) -> PathBuf {
    let path = dir.join("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin");
    std::fs::write(&path, image_bytes()).unwrap();
    path
}

/// `count` HS110s, 100× faster than real ones, every relay on (so restoring it is visible: the
/// simulator brings a flashed plug back with its relay off).
async fn fleet(count: usize) -> Fleet {
    let mut spec = FleetSpec::on_free_port(base(), count);
    spec.profiles = vec!["hs110-us-hw1".into()];
    spec.time_scale = 0.01;
    // The simulated plugs accept the test image (as if signed by their vendor).
    spec.images = vec![KnownImage::for_bytes(
        &image_bytes(),
        "HS110(US)",
        "1",
        NEW_SW,
    )];
    let fleet = Fleet::start(spec).await.unwrap();
    for p in fleet.plugs() {
        let c = Client::new(
            p.addr(),
            ClientConfig::with_timeout(fleet.port(), Duration::from_secs(2)),
        );
        c.set_relay(true, None).await.unwrap();
        assert_eq!(p.relays(), vec![true]);
        assert!(p.current_sw_ver().starts_with(OLD_SW));
    }
    fleet
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stream {
    Out,
    Err,
}

/// A running `plugfleet update`, its output read line by line as it comes.
struct Run {
    child: Child,
    rx: mpsc::Receiver<(Stream, String)>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Run {
    fn start(fleet: &Fleet, dir: &Path, extra: &[&str]) -> Run {
        let image = image_file(dir);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plugfleet"));
        cmd.arg("update")
            .arg("--firmware")
            .arg(&image)
            .args(["--port", &fleet.port().to_string()])
            .args(["--timeout", "0.6", "--poll-interval", "0.02"])
            .args(["--quiet-margin", "0.05", "--back-deadline", "5", "--yes"]);
        for p in fleet.plugs() {
            cmd.args(["--host", &p.ip.to_string()]);
        }
        let mut child = cmd
            .args(extra)
            .env("PLUGFLEET_LOG_DIR", dir.join("log"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for (stream, pipe) in [
            (Stream::Out, Box::new(out) as Box<dyn std::io::Read + Send>),
            (Stream::Err, Box::new(err)),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    if tx.send((stream, line)).is_err() {
                        return;
                    }
                }
            });
        }
        Run {
            child,
            rx,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    fn take(&mut self, (stream, line): (Stream, String)) -> (Stream, String) {
        match stream {
            Stream::Out => self.stdout.push(line.clone()),
            Stream::Err => self.stderr.push(line.clone()),
        }
        (stream, line)
    }

    /// Reads output until a line of `stream` satisfies `pred` (fails after 30 s); returns it.
    fn wait_line(&mut self, what: &str, stream: Stream, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(got) = self.rx.recv_timeout(left) else {
                let _ = self.child.kill();
                panic!(
                    "no {what}; stdout:\n{}\nstderr:\n{}",
                    self.stdout.join("\n"),
                    self.stderr.join("\n")
                );
            };
            let (s, line) = self.take(got);
            if s == stream && pred(&line) {
                return line;
            }
        }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{name}");
    }

    /// Waits for the exit (fails after 30 s) and reads the rest of the output.
    fn finish(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("update did not exit; stderr:\n{}", self.stderr.join("\n"));
            }
            if let Ok(got) = self.rx.recv_timeout(Duration::from_millis(50)) {
                self.take(got);
            }
        };
        // The pipes close at exit: drain them.
        while let Ok(got) = self.rx.recv_timeout(Duration::from_secs(5)) {
            self.take(got);
        }
        status
    }

    fn json(&self) -> Vec<Value> {
        self.stdout
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }
}

fn is_transition_to(line: &str, ip: IpAddr, stage: &str) -> bool {
    serde_json::from_str::<Value>(line)
        .is_ok_and(|v| v["ip"] == ip.to_string().as_str() && v["stage"] == stage)
}

/// The stages the journal recorded for `ip`, in order.
fn journal_stages(journal: &Path, ip: IpAddr) -> Vec<String> {
    std::fs::read_to_string(journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["ip"] == ip.to_string().as_str())
        .map(|v| v["stage"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_flashing_verifies_the_plug_restores_its_relay_and_exits_130() {
    let dir = temp_dir();
    let fleet = fleet(2).await;
    let journal = dir.join("journal.jsonl");
    // One plug at a time: the second waits its turn while the first flashes.
    let mut run = Run::start(
        &fleet,
        &dir,
        &[
            "--json",
            "--concurrency",
            "1",
            "--journal",
            journal.to_str().unwrap(),
        ],
    );
    let line = run.wait_line("a plug flashing", Stream::Out, |l| {
        fleet
            .plugs()
            .iter()
            .any(|p| is_transition_to(l, p.addr(), "flashing"))
    });
    run.signal("TERM");
    // The batch runs in the order of discovery: whichever flashes first is "first".
    let v: Value = serde_json::from_str(&line).unwrap();
    let (first, second) = if v["ip"] == fleet.plugs()[0].ip.to_string().as_str() {
        (&fleet.plugs()[0], &fleet.plugs()[1])
    } else {
        (&fleet.plugs()[1], &fleet.plugs()[0])
    };
    let status = run.finish();
    let stderr = run.stderr.join("\n");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("SIGTERM: stopping"), "{stderr}");
    assert!(
        stderr.contains(&format!("{} (flashing)", first.ip)),
        "{stderr}"
    );
    assert!(
        stderr.contains("interrupted: 1 updated, 1 cancelled or not started"),
        "{stderr}\n{}\nmatched: {line}",
        run.stdout.join("\n")
    );

    // The summary: the flashing plug updated and verified, the other never started.
    let lines = run.json();
    let fin = |ip: IpAddr| {
        lines
            .iter()
            .find(|l| l["ip"] == ip.to_string().as_str() && l.get("result").is_some())
            .cloned()
            .unwrap_or_else(|| panic!("no summary line for {ip}: {lines:?}"))
    };
    assert_eq!(fin(first.addr())["result"], "updated");
    assert_eq!(fin(first.addr())["now"], NEW_SW);
    assert_eq!(fin(second.addr())["result"], "skipped");
    assert_eq!(
        fin(second.addr())["error"],
        "not started: the batch was cancelled"
    );

    // The plugs themselves: the first on the new version with its relay back on, the second
    // untouched.
    assert_eq!(first.current_sw_ver(), NEW_SW);
    assert_eq!(first.relays(), vec![true], "relay restored");
    assert!(first.current_sw_ver() != second.current_sw_ver());
    assert!(second.current_sw_ver().starts_with(OLD_SW));
    assert_eq!(second.downloads_started(), 0);
    assert_eq!(first.premature_flash_attempts(), 0);

    // The journal ends verified and restored, not at `flashing`.
    let stages = journal_stages(&journal, first.addr());
    assert_eq!(
        stages.last().map(String::as_str),
        Some("done"),
        "{stages:?}"
    );
    for s in ["flashing", "rebooting", "verifying", "restoring"] {
        assert!(stages.iter().any(|x| x == s), "{s} in {stages:?}");
    }
    assert!(journal_stages(&journal, second.addr()).is_empty());
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_then_sigint_keeps_waiting_for_the_flash_and_prints_the_summary() {
    let dir = temp_dir();
    let fleet = fleet(1).await;
    let plug = &fleet.plugs()[0];
    let mut run = Run::start(&fleet, &dir, &["--no-journal"]);
    run.wait_line("the plug flashing", Stream::Out, |l| {
        l.contains("→ flashing")
    });
    run.signal("HUP");
    run.wait_line("the first signal handled", Stream::Err, |l| {
        l.contains("SIGHUP: stopping")
    });
    run.signal("INT");
    run.wait_line("the second signal answered", Stream::Err, |l| {
        l.contains("SIGINT: still waiting for 1 plug(s)")
    });
    let status = run.finish();
    let stdout = run.stdout.join("\n");
    let stderr = run.stderr.join("\n");
    assert_eq!(status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("1 more to stop waiting"), "{stderr}");
    assert!(stdout.contains("Summary:"), "{stdout}");
    assert!(
        stdout.contains("1 of 1 plug(s) updated and verified."),
        "{stdout}"
    );
    assert!(stdout.contains("→ done"), "{stdout}");
    assert_eq!(plug.current_sw_ver(), NEW_SW);
    assert_eq!(plug.relays(), vec![true]);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_third_signal_abandons_the_wait_names_the_plug_and_exits_3() {
    let dir = temp_dir();
    let fleet = fleet(1).await;
    let plug = &fleet.plugs()[0];
    let journal = dir.join("journal.jsonl");
    let mut run = Run::start(
        &fleet,
        &dir,
        &["--json", "--journal", journal.to_str().unwrap()],
    );
    run.wait_line("the plug flashing", Stream::Out, |l| {
        is_transition_to(l, plug.addr(), "flashing")
    });
    run.signal("QUIT");
    run.wait_line("the first signal handled", Stream::Err, |l| {
        l.contains("SIGQUIT: stopping")
    });
    run.signal("INT");
    run.wait_line("the second", Stream::Err, |l| {
        l.contains("SIGINT: still waiting")
    });
    run.signal("TERM");
    let status = run.finish();
    let stderr = run.stderr.join("\n");
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("SIGTERM: abandoned 1 plug(s) mid-update"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("plugfleet status --host {}", plug.ip)),
        "{stderr}"
    );
    // No summary claims anything about the plug.
    assert!(run.json().iter().all(|l| l.get("result").is_none()));
    let stages = journal_stages(&journal, plug.addr());
    assert!(stages.last().is_some_and(|s| s != "done"), "{stages:?}");
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
