#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The config file as a user meets it: every later start uses it, flags override it, and a bad
//! file stops the program before anything is sent.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use plugfleet::sim::{self, FleetSpec};
use serde_json::Value;

fn base() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let v = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(k * 7919);
    Ipv4Addr::new(127, 210 + (v % 20) as u8, ((v >> 8) % 256) as u8, 2)
}

fn temp_config(text: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "plugfleet-config-cli-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn plugfleet(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .env(
                "PLUGFLEET_LOG_DIR",
                std::env::temp_dir().join("plugfleet-test-logs"),
            )
            .output()
            .expect("run plugfleet")
    })
    .await
    .unwrap()
}

fn ips(out: &Output) -> Vec<String> {
    let mut ips: Vec<String> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["ip"].as_str().unwrap().to_owned()
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_hosts_and_port_are_used_and_flags_override_them() {
    let b = base();
    let fleet = sim::start(FleetSpec {
        profiles: vec!["hs110-eu-hw4".into(), "kp115-us-hw1".into()],
        ..FleetSpec::on_free_port(b, 2)
    })
    .await
    .unwrap();
    let [first, second] = [&fleet.plugs()[0], &fleet.plugs()[1]];
    let cfg = temp_config(&format!(
        "[discovery]\nhosts = [\"{}\"]\nport = {}\ntimeout = 2.0\n",
        first.ip,
        fleet.port()
    ));
    let cfg_arg = cfg.to_string_lossy().into_owned();

    // No flags: the file's host and port are used (and nothing else is probed).
    let out = plugfleet(vec![
        "--config".into(),
        cfg_arg.clone(),
        "discover".into(),
        "--json".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ips(&out), vec![first.ip.to_string()]);

    // An explicit --host replaces the file's list; the file's port still applies.
    let out = plugfleet(vec![
        "--config".into(),
        cfg_arg.clone(),
        "status".into(),
        "--json".into(),
        "--host".into(),
        second.ip.to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ips(&out), vec![second.ip.to_string()]);

    // An explicit --port wins over the file's: nothing answers on port 1.
    let out = plugfleet(vec![
        "--config".into(),
        cfg_arg,
        "discover".into(),
        "--json".into(),
        "--port".into(),
        "1".into(),
        "--timeout".into(),
        "0.5".into(),
    ])
    .await;
    // The file's hosts are named hosts: each is a line, offline, on port 1; exit 1.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty(), "{out:?}");
    assert!(
        lines.iter().all(|o| o["online"] == false && o["port"] == 1),
        "port 1 was used, not the file's: {lines:?}"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_stops_everything_with_file_line_and_key() {
    let cfg = temp_config("[discovery]\nhosts = [\"127.0.0.9\"]\n[poll]\nintervall = 2\n");
    for cmd in [vec!["discover"], vec!["status"], vec![]] {
        let mut args = vec!["--config".to_owned(), cfg.to_string_lossy().into_owned()];
        args.extend(cmd.iter().map(|s| (*s).to_owned()));
        let out = plugfleet(args).await;
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("config.toml"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("intervall"), "{err}");
        assert!(out.stdout.is_empty(), "nothing ran: {cmd:?}");
    }
    // A file named explicitly must exist.
    let out = plugfleet(vec![
        "--config".into(),
        "/nonexistent/plugfleet.toml".into(),
        "discover".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/plugfleet.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rating_overrides_from_the_file_reach_the_verdicts() {
    // A simulated plug's appliance depends on its address and some draw 0 W on standby: try a
    // few addresses (bounded) until one draws power, since only then does a rating matter.
    for _ in 0..8 {
        if let Some(done) = try_rating_override().await {
            return done;
        }
    }
    panic!("no simulated KP115 drew any power in 8 tries");
}

async fn try_rating_override() -> Option<()> {
    let fleet = sim::start(FleetSpec {
        profiles: vec!["kp115-us-hw1".into()],
        ..FleetSpec::on_free_port(base(), 1)
    })
    .await
    .unwrap();
    let p = &fleet.plugs()[0];
    plugfleet::net::Client::new(
        p.addr(),
        plugfleet::net::ClientConfig::with_timeout(fleet.port(), std::time::Duration::from_secs(3)),
    )
    .set_relay(true, None)
    .await
    .unwrap();
    let status = |cfg: PathBuf| {
        plugfleet(vec![
            "--config".into(),
            cfg.to_string_lossy().into_owned(),
            "status".into(),
            "--json".into(),
            "--host".into(),
            p.ip.to_string(),
            "--port".into(),
            fleet.port().to_string(),
        ])
    };
    let line = |out: &Output| -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    };
    let plain = line(&status(temp_config("")).await);
    if plain["emeter"]["power_w"].as_f64().unwrap() < 0.01 {
        fleet.shutdown().await;
        return None;
    }
    assert_eq!(plain["plausibility"]["verdict"], "ok", "{plain}");
    // Rated a thousandth of a watt: any real load is far above 1.25 × the rating.
    let strict = temp_config("[ratings.\"KP115(US)\"]\nwatts = 0.001\n");
    let flagged = line(&status(strict).await);
    assert_eq!(flagged["plausibility"]["verdict"], "bogus", "{flagged}");
    let reasons = flagged["plausibility"]["reasons"].to_string();
    assert!(reasons.contains("config override"), "{reasons}");
    fleet.shutdown().await;
    Some(())
}
