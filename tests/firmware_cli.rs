#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `plugfleet update` as a user runs it, against simulated plugs on loopback.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use plugfleet::firmware::header::ImageHeader;
use plugfleet::sim::{FaultKind, Fleet, FleetSpec, KnownImage};
use serde_json::Value;

const NEW_SW: &str = "1.2.9 Build 220101 Rel.101010";

fn base() -> Ipv4Addr {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::process::id();
    Ipv4Addr::new(
        127,
        200 + (p % 50) as u8,
        (n * 11 + p / 50 % 11) as u8 % 250,
        2,
    )
}

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "plugfleet-fw-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
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

async fn fleet(count: usize, faults: Vec<(usize, FaultKind)>) -> Fleet {
    let b = base();
    let mut spec = FleetSpec::on_free_port(b, count);
    spec.profiles = vec!["hs110-us-hw1".into()];
    spec.time_scale = 0.01;
    // The simulated plugs accept the test image (as if signed by their vendor).
    spec.images = vec![KnownImage::for_bytes(
        &image_bytes(),
        "HS110(US)",
        "1",
        NEW_SW,
    )];
    spec.faults = faults
        .into_iter()
        .map(|(i, f)| (Ipv4Addr::from(u32::from(b) + i as u32), f))
        .collect();
    Fleet::start(spec).await.unwrap()
}

/// Runs `plugfleet update` with stdin closed (not a terminal) and no config file.
async fn update(args: Vec<String>) -> Output {
    // A config home that does not exist: no config file.
    let none = std::env::temp_dir().join("plugfleet-fw-cli-no-config-home");
    update_with_config_home(args, none).await
}

async fn update_with_config_home(args: Vec<String>, config_home: PathBuf) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .arg("update")
            .args(args)
            .stdin(Stdio::null())
            .env(
                "XDG_DATA_HOME",
                std::env::temp_dir().join("plugfleet-fw-cli-data"),
            )
            .env("XDG_CONFIG_HOME", &config_home)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(fleet: &Fleet, image: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "--firmware".to_owned(),
        image.display().to_string(),
        "--port".into(),
        fleet.port().to_string(),
        "--timeout".into(),
        "0.6".into(),
        "--poll-interval".into(),
        "0.02".into(),
        "--quiet-margin".into(),
        "0.05".into(),
        "--back-deadline".into(),
        "3".into(),
    ];
    for p in fleet.plugs() {
        a.push("--host".into());
        a.push(p.ip.to_string());
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_run_updates_every_plug_and_exits_0() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(3, vec![]).await;
    let journal = dir.join("j.jsonl");
    let out = update(args(
        &fleet,
        &image,
        &["--yes", "--json", "--journal", journal.to_str().unwrap()],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&out);
    for p in fleet.plugs() {
        let ip = p.ip.to_string();
        let transitions: Vec<&Value> = lines
            .iter()
            .filter(|l| {
                l["ip"] == ip.as_str() && l.get("stage").is_some() && l.get("result").is_none()
            })
            .collect();
        assert!(transitions.len() >= 8, "{ip}: {transitions:?}");
        assert!(transitions.iter().any(|t| t["stage"] == "downloading"));
        assert!(
            transitions
                .iter()
                .all(|t| t.get("ratio").is_some() && t.get("served_bytes").is_some())
        );
        let fin: Vec<&Value> = lines
            .iter()
            .filter(|l| l["ip"] == ip.as_str() && l.get("result").is_some())
            .collect();
        assert_eq!(fin.len(), 1, "{ip}");
        assert_eq!(fin[0]["result"], "updated");
        assert_eq!(fin[0]["to"], "1.2.9");
        assert_eq!(fin[0]["error"], Value::Null);
        assert_eq!(p.current_sw_ver(), NEW_SW);
        assert_eq!(p.premature_flash_attempts(), 0);
    }
    // The plan went to stderr, not into the JSON stream.
    assert!(stderr.contains("compatible"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap().lines().count(),
        lines.len() - 3
    );
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failure_gives_exit_1_and_a_clear_error() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(2, vec![(1, FaultKind::OldVersion)]).await;
    let out = update(args(&fleet, &image, &["--yes", "--json", "--no-journal"])).await;
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    let fin = |i: usize| {
        let ip = fleet.plugs()[i].ip.to_string();
        lines
            .iter()
            .find(|l| l["ip"] == ip.as_str() && l.get("result").is_some())
            .cloned()
            .unwrap()
    };
    assert_eq!(fin(0)["result"], "updated");
    assert_eq!(fin(1)["result"], "failed");
    assert!(fin(1)["error"].as_str().unwrap().contains("old firmware"));
    assert_eq!(fin(1)["stage"], "verifying");
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_output_has_a_plan_and_a_summary() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(1, vec![]).await;
    let out = update(args(&fleet, &image, &["--yes", "--no-journal"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("Plan:"), "{stdout}");
    assert!(stdout.contains("1.2.6 → 1.2.9"), "{stdout}");
    assert!(stdout.contains("downloading → downloaded"), "{stdout}");
    assert!(
        stdout.contains("1 of 1 plug(s) updated and verified."),
        "{stdout}"
    );
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_yes_and_without_a_terminal_it_refuses() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(1, vec![]).await;
    let out = update(args(&fleet, &image, &["--no-journal"])).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to update without confirmation"),
        "{stderr}"
    );
    // The plan was shown; nothing was touched.
    assert!(String::from_utf8_lossy(&out.stdout).contains("compatible"));
    assert_eq!(fleet.plugs()[0].downloads_started(), 0);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let img = image.display().to_string();
    for a in [
        vec!["--firmware", img.as_str()],
        vec!["--firmware", "/nonexistent/x.bin", "--host", "127.0.0.1"],
        // Larger than a /16 without --force: refused before anything is sent.
        vec!["--firmware", img.as_str(), "--sweep", "127.0.0.0/8"],
        vec!["--firmware", img.as_str(), "--host", "::1"],
        vec![
            "--firmware",
            img.as_str(),
            "--host",
            "127.0.0.1",
            "--concurrency",
            "0",
        ],
    ] {
        let out = update(a.iter().map(|s| s.to_string()).collect()).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{a:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plug_that_does_not_answer_is_reported_failed() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(1, vec![]).await;
    let mut a = args(&fleet, &image, &["--yes", "--json", "--no-journal"]);
    // A loopback address with nothing listening on the fleet's port.
    a.push("--host".into());
    a.push("127.254.254.254".into());
    let out = update(a).await;
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    let dead = lines
        .iter()
        .find(|l| l["ip"] == "127.254.254.254" && l.get("result").is_some())
        .unwrap();
    assert_eq!(dead["result"], "failed");
    assert!(dead["error"].as_str().unwrap().contains("unreachable"));
    assert_eq!(
        fleet.plugs()[0].current_sw_ver(),
        NEW_SW,
        "the others still update"
    );
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_ceiling_is_respected() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(1, vec![]).await;
    let home = temp_dir();
    std::fs::create_dir_all(home.join("plugfleet")).unwrap();
    std::fs::write(
        home.join("plugfleet").join("config.toml"),
        "[firmware.max_version]\n\"HS110(US)\" = \"1.2.8\"\n",
    )
    .unwrap();
    let out = update_with_config_home(
        args(&fleet, &image, &["--yes", "--json", "--no-journal"]),
        home.clone(),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("above-ceiling"), "{stderr}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["result"], "skipped");
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("ceiling 1.2.8")
    );
    assert_eq!(fleet.plugs()[0].downloads_started(), 0);
    // The same file named with the global --config (no config home).
    let mut a = vec![
        "--config".to_owned(),
        home.join("plugfleet")
            .join("config.toml")
            .display()
            .to_string(),
    ];
    a.extend(args(&fleet, &image, &["--yes", "--json", "--no-journal"]));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&a[..2])
            .arg("update")
            .args(&a[2..])
            .stdin(Stdio::null())
            .env(
                "XDG_CONFIG_HOME",
                std::env::temp_dir().join("plugfleet-fw-cli-no-config-home"),
            )
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_lines(&out)[0]["result"], "skipped");
    assert_eq!(fleet.plugs()[0].downloads_started(), 0);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(home);
}

/// `args` without the `--host` flags.
fn args_without_hosts(fleet: &Fleet, image: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = args(fleet, image, extra);
    let mut out = Vec::new();
    let mut i = 0;
    while i < a.len() {
        if a[i] == "--host" {
            i += 2;
        } else {
            out.push(std::mem::take(&mut a[i]));
            i += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugs_found_by_sweep_and_by_loopback_broadcast_are_updated() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(2, vec![]).await;
    let ip = fleet.plugs()[0].ip.octets();
    let sweep = format!("{}.{}.{}.0/29", ip[0], ip[1], ip[2]);
    let out = update(args_without_hosts(
        &fleet,
        &image,
        &["--yes", "--json", "--no-journal", "--sweep", &sweep],
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    let updated = lines.iter().filter(|l| l["result"] == "updated").count();
    assert_eq!(updated, 2, "{lines:?}");
    for p in fleet.plugs() {
        assert_eq!(p.current_sw_ver(), NEW_SW);
    }
    fleet.shutdown().await;

    // Broadcast on loopback reaches the simulator's broadcast listener on the fleet's port.
    // Another test's fleet could share the port number on other addresses and hear it too, so
    // this one only plans (no --yes, no terminal: refused) and changes nothing.
    let fleet = self::fleet(2, vec![]).await;
    let out = update(args_without_hosts(
        &fleet,
        &image,
        &["--no-journal", "--target", "127.255.255.255"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2));
    let plan = String::from_utf8_lossy(&out.stdout);
    for p in fleet.plugs() {
        assert!(plan.contains(&p.ip.to_string()), "{plan}");
        assert_eq!(p.downloads_started(), 0);
    }
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_does_not_stop_the_update() {
    use std::io::BufRead;
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(1, vec![]).await;
    let a = args(&fleet, &image, &["--yes", "--json", "--no-journal"]);
    let status = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .arg("update")
            .args(a)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env(
                "XDG_CONFIG_HOME",
                std::env::temp_dir().join("plugfleet-fw-cli-no-config-home"),
            )
            .spawn()
            .unwrap();
        // Read the first transition, then close the pipe (`update --json | head -1`).
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.contains("download-requested"), "{first}");
        child.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(fleet.plugs()[0].current_sw_ver(), NEW_SW);
    assert_eq!(fleet.plugs()[0].premature_flash_attempts(), 0);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
