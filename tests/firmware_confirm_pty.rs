#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `plugfleet update` without `--yes` on a terminal: it shows the plan and asks; only a typed
//! `yes` goes on (a bare Enter or anything else cancels and changes nothing).

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use plugfleet::firmware::header::ImageHeader;
use plugfleet::sim::{Fleet, FleetSpec, KnownImage};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const NEW_SW: &str = "1.2.9 Build 220101 Rel.101010";

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "plugfleet-fw-pty-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn image_bytes() -> Vec<u8> {
    ImageHeader::new("HS110", "1", "US", "1.2.9", "220101", "101010").build(&[1u8; 20_000])
}

fn image_file(dir: &Path) -> PathBuf {
    let path = dir.join("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin");
    std::fs::write(&path, image_bytes()).unwrap();
    path
}

async fn fleet() -> Fleet {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::process::id();
    let base = Ipv4Addr::new(127, 100 + (p % 40) as u8, (n * 13 + p / 40 % 13) as u8, 2);
    let mut spec = FleetSpec::on_free_port(base, 1);
    spec.profiles = vec!["hs110-us-hw1".into()];
    spec.time_scale = 0.01;
    // The simulated plug accepts the test image (as if signed by its vendor).
    spec.images = vec![KnownImage::for_bytes(
        &image_bytes(),
        "HS110(US)",
        "1",
        NEW_SW,
    )];
    Fleet::start(spec).await.unwrap()
}

/// Runs `plugfleet update` (no `--yes`) in a pseudo-terminal, answers the prompt with `answer`,
/// returns (all output, exit success).
fn run_in_pty(args: Vec<String>, answer: &'static str) -> (String, bool) {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 40,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_plugfleet"));
    cmd.arg("update");
    cmd.args(&args);
    cmd.env(
        "XDG_CONFIG_HOME",
        std::env::temp_dir().join("plugfleet-fw-pty-no-config-home"),
    );
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut writer = pair.master.take_writer().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut out = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !out.contains("Type `yes`") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no prompt; output:\n{out}");
        if let Ok(b) = rx.recv_timeout(left.min(Duration::from_millis(200))) {
            out.push_str(&String::from_utf8_lossy(&b));
        }
    }
    writer.write_all(answer.as_bytes()).unwrap();
    writer.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        while let Ok(b) = rx.try_recv() {
            out.push_str(&String::from_utf8_lossy(&b));
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit; output:\n{out}");
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok(b) = rx.recv_timeout(Duration::from_millis(300)) {
        out.push_str(&String::from_utf8_lossy(&b));
    }
    (out, status.success())
}

fn args(fleet: &Fleet, image: &Path) -> Vec<String> {
    [
        "--firmware",
        &image.display().to_string(),
        "--host",
        &fleet.plugs()[0].ip.to_string(),
        "--port",
        &fleet.port().to_string(),
        "--timeout",
        "0.6",
        "--poll-interval",
        "0.02",
        "--quiet-margin",
        "0.05",
        "--no-journal",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_or_anything_but_yes_cancels() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet().await;
    for answer in ["\r", "y\r", "YES please\r"] {
        let a = args(&fleet, &image);
        let (out, ok) = tokio::task::spawn_blocking(move || run_in_pty(a, answer))
            .await
            .unwrap();
        assert!(!ok, "{answer:?}: {out}");
        assert!(out.contains("compatible"), "the plan was shown: {out}");
        assert!(out.contains("nothing was changed"), "{answer:?}: {out}");
        assert_eq!(fleet.plugs()[0].downloads_started(), 0, "{answer:?}");
    }
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_yes_updates() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet().await;
    let a = args(&fleet, &image);
    let (out, ok) = tokio::task::spawn_blocking(move || run_in_pty(a, "yes\r"))
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("1 of 1 plug(s) updated and verified."),
        "{out}"
    );
    assert_eq!(fleet.plugs()[0].current_sw_ver(), NEW_SW);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
