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

/// Every JSON line of stdout.
fn all_json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// The transitions and final rows (the plan line, always the first, left out).
fn json_lines(out: &Output) -> Vec<Value> {
    let all = all_json_lines(out);
    assert!(
        all.first().is_some_and(|l| l.get("plan").is_some()),
        "the first line is the plan: {all:?}"
    );
    all.into_iter().skip(1).collect()
}

/// The `--json` plan line.
fn plan_line(out: &Output) -> Value {
    all_json_lines(out).into_iter().next().expect("a plan line")
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
    // Piped: the per-plug progress bars (indicatif) draw nothing, on either stream.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for text in [&stdout, &stderr] {
        for sign in ["\r", "\u{1b}[", "█", "waiting ·"] {
            assert!(!text.contains(sign), "{sign:?} in piped output:\n{text}");
        }
    }
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
        // Read the plan and the first transition, then close the pipe
        // (`update --json | head -2`).
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut plan = String::new();
        reader.read_line(&mut plan).unwrap();
        assert!(
            plan.starts_with("{\"images\"") || plan.contains("\"plan\""),
            "{plan}"
        );
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert!(first.contains("download-requested"), "{first}");
        drop(reader);
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

fn assets_image(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/firmware")
        .join(name)
}

/// `update --yes --json` for one plug against a folder; the plan line and stderr.
async fn run_json(fleet: &Fleet, folder: &Path, extra: &[&str]) -> (Output, Value, String) {
    let mut a = vec!["--yes", "--json", "--no-journal"];
    a.extend_from_slice(extra);
    let out = update(args(fleet, folder, &a)).await;
    let plan = plan_line(&out);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, plan, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_named_like_an_image_is_refused_and_never_downloaded() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("hs110v1_us_9.9.9_Build_240101_Rel.000001.bin"),
        "hello\n",
    )
    .unwrap();
    let fleet = fleet(1, vec![]).await;
    for force in [false, true] {
        let extra: &[&str] = if force { &["--force"] } else { &[] };
        let (out, plan, stderr) = run_json(&fleet, &dir, extra).await;
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let e = &plan["plan"][0];
        assert_eq!(e["assessment"]["verdict"], "size-out-of-bounds", "{e}");
        assert_eq!(e["will_update"], false);
        let ch = &e["assessment"]["checks"];
        assert_eq!(ch["size"], 6);
        assert_eq!(ch["size_ok"], false);
        assert_eq!(ch["structure"]["kind"], "unrecognised");
        assert_eq!(ch["file"], "regular file");
        assert!(stderr.contains("unrecognised content"), "{stderr}");
        assert!(stderr.contains("size-out-of-bounds"), "{stderr}");
        assert_eq!(json_lines(&out)[0]["result"], "skipped");
    }
    assert_eq!(fleet.plugs()[0].downloads_started(), 0);
    assert_eq!(fleet.plugs()[0].flashes(), 0);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_leaving_the_folder_is_refused_and_shown_with_its_target() {
    let dir = temp_dir();
    let outside = temp_dir();
    // Stands in for /etc/passwd: even a valid image is refused when reached through a link
    // that leaves the folder.
    let secret = outside.join("passwd");
    std::fs::copy(image_file(&outside), &secret).unwrap();
    std::os::unix::fs::symlink(
        &secret,
        dir.join("hs110v1_us_9.9.9_Build_240101_Rel.000001.bin"),
    )
    .unwrap();
    let fleet = fleet(1, vec![]).await;
    let (out, plan, stderr) = run_json(&fleet, &dir, &["--force"]).await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let target = std::fs::canonicalize(&secret)
        .unwrap()
        .display()
        .to_string();
    let e = &plan["plan"][0];
    assert_eq!(e["assessment"]["verdict"], "refused", "{e}");
    let reason = e["assessment"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&target) && reason.contains("outside"),
        "{reason}"
    );
    assert!(
        plan["images"][0]["refused"]
            .as_str()
            .unwrap()
            .contains(&target)
    );
    assert!(stderr.contains("REFUSED"), "{stderr}");
    assert!(stderr.contains(&target), "{stderr}");
    assert_eq!(fleet.plugs()[0].downloads_started(), 0);
    assert_eq!(fleet.plugs()[0].bytes_downloaded(), 0);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(outside);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_demo_image_in_the_folder_is_still_checked_and_flashed() {
    let dir = temp_dir();
    image_file(&dir);
    std::fs::write(
        dir.join("hs110v1_us_9.9.9_Build_240101_Rel.000001.bin"),
        "hello\n",
    )
    .unwrap();
    let fleet = fleet(1, vec![]).await;
    let (out, plan, stderr) = run_json(&fleet, &dir, &[]).await;
    assert!(out.status.success(), "{stderr}");
    let e = &plan["plan"][0];
    assert_eq!(e["image"], "hs110v1_us_1.2.9_Build_220101_Rel.101010.bin");
    assert_eq!(e["assessment"]["verdict"], "compatible");
    assert_eq!(e["will_update"], true);
    let ch = &e["assessment"]["checks"];
    assert_eq!(ch["structure"]["kind"], "plugfleet-demo");
    assert_eq!(ch["size_ok"], true);
    assert_eq!(ch["known"], Value::Null);
    assert_eq!(plan["images"].as_array().unwrap().len(), 2);
    assert!(stderr.contains("checked: regular file"), "{stderr}");
    assert_eq!(fleet.plugs()[0].current_sw_ver(), NEW_SW);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_lets_unrecognised_content_through_and_the_plan_says_so() {
    let dir = temp_dir();
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(
        dir.join("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin"),
        noise,
    )
    .unwrap();
    let fleet = fleet(1, vec![]).await;
    // Without --force: held back, nothing sent.
    let (out, plan, stderr) = run_json(&fleet, &dir, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        plan["plan"][0]["assessment"]["verdict"],
        "unrecognised-content"
    );
    assert_eq!(plan["plan"][0]["will_update"], false);
    assert_eq!(fleet.plugs()[0].downloads_started(), 0);
    // With --force: offered to the plug (which, being a careful device, refuses it).
    let (_, plan, stderr) = run_json(&fleet, &dir, &["--force"]).await;
    assert_eq!(
        plan["plan"][0]["assessment"]["verdict"],
        "unrecognised-content"
    );
    assert_eq!(plan["plan"][0]["will_update"], true);
    assert!(
        stderr.contains("OVERRIDE (--force): unrecognised content"),
        "{stderr}"
    );
    assert!(fleet.plugs()[0].downloads_started() >= 1);
    assert_eq!(fleet.plugs()[0].premature_flash_attempts(), 0);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgrade_needs_allow_downgrade_not_just_yes_or_force() {
    let dir = temp_dir();
    let name = "hs110v1_us_1.2.3_Build_171016_Rel.100427.bin";
    std::fs::copy(assets_image(name), dir.join(name)).unwrap();
    let fleet = fleet(1, vec![]).await;
    let before = fleet.plugs()[0].current_sw_ver();
    for extra in [&[][..], &["--force"][..]] {
        let (out, plan, stderr) = run_json(&fleet, &dir, extra).await;
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {stderr}");
        let e = &plan["plan"][0];
        assert_eq!(e["assessment"]["verdict"], "downgrade");
        assert_eq!(e["assessment"]["downgrade"], true);
        assert_eq!(e["allow_downgrade"], false);
        assert_eq!(e["will_update"], false);
        assert!(stderr.contains("--allow-downgrade"), "{stderr}");
        assert_eq!(fleet.plugs()[0].downloads_started(), 0, "{extra:?}");
        assert_eq!(fleet.plugs()[0].current_sw_ver(), before);
    }
    let (out, plan, stderr) = run_json(&fleet, &dir, &["--allow-downgrade"]).await;
    assert!(out.status.success(), "{stderr}");
    assert_eq!(plan["plan"][0]["allow_downgrade"], true);
    assert_eq!(plan["plan"][0]["will_update"], true);
    assert!(stderr.contains("DOWNGRADE ALLOWED"), "{stderr}");
    assert_eq!(
        fleet.plugs()[0].current_sw_ver(),
        "1.2.3 Build 171016 Rel.100427"
    );
    assert_eq!(json_lines(&out).last().unwrap()["result"], "updated");
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_allowlist_marks_an_image_known_and_bad_keys_are_usage_errors() {
    use sha2::Digest;
    let dir = temp_dir();
    let image = image_file(&dir);
    let sha = hex::encode(sha2::Sha256::digest(std::fs::read(&image).unwrap()));
    let fleet = fleet(1, vec![]).await;
    let home = temp_dir();
    std::fs::create_dir_all(home.join("plugfleet")).unwrap();
    let cfg = home.join("plugfleet").join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[firmware.known]]\nmodel = \"HS110(US)\"\nhw = \"1\"\nsha256 = \"{sha}\"\n\
             note = \"test build\"\n"
        ),
    )
    .unwrap();
    let out = update_with_config_home(
        args(&fleet, &image, &["--yes", "--json", "--no-journal"]),
        home.clone(),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = plan_line(&out);
    assert_eq!(
        plan["plan"][0]["assessment"]["checks"]["known"],
        "test build"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("KNOWN (test build)"));
    // (The plug runs the image now.) Bounds the image does not meet: blocked, even when the
    // version would be the same; impossible bounds: a usage error naming the key.
    std::fs::write(
        &cfg,
        "[firmware.size_limits.\"HS110\"]\nmin_bytes = 1\nmax_bytes = 1000\n",
    )
    .unwrap();
    let out = update_with_config_home(
        args(&fleet, &image, &["--yes", "--json", "--no-journal"]),
        home.clone(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let plan = plan_line(&out);
    assert_eq!(
        plan["plan"][0]["assessment"]["verdict"],
        "size-out-of-bounds"
    );
    std::fs::write(
        &cfg,
        "[firmware.size_limits.\"HS110\"]\nmin_bytes = 10\nmax_bytes = 1\n",
    )
    .unwrap();
    let out = update_with_config_home(args(&fleet, &image, &["--yes"]), home.clone()).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("firmware.size_limits"), "{stderr}");
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(home);
}
