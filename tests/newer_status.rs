#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `plugfleet status --json` against simulated newer-protocol plugs (KLAP v1 IOT, KLAP v2
//! SMART, AES SMART): with the account they are full rows like a legacy plug's (same fields,
//! model, versions, relay, watts, plausibility); with a wrong account they are "auth failed"
//! with a hint and exit 3; with none, "needs credentials". The transport is chosen from the
//! UDP 20002 reply alone (its `http_port` is the simulated server's).

#[path = "common/newer.rs"]
mod newer_common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};

use plugfleet::sim::klap::{self as simklap, KlapFault, KlapFleet};
use plugfleet::sim::{FaultKind, Fleet};
use serde_json::Value;

const PROFILES: [&str; 4] = [
    "hs110-eu-hw4",
    "hs100-uk-hw4-klap",
    "kp125m-us-hw1-smart",
    "p110-eu-hw1-aes",
];

/// A distinct 127.<pid-derived>.<n>.2 base per test.
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 100 + (std::process::id() % 90) as u8, 40 + n, 2)
}

async fn fleet(
    faults: Vec<(usize, FaultKind)>,
    klap: Vec<(usize, KlapFault)>,
) -> (Fleet, KlapFleet) {
    newer_common::klap_fleet(base(), &PROFILES, faults, klap).await
}

async fn status(
    fleet: &Fleet,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Output, HashMap<String, Value>) {
    let mut args = vec![
        "status".to_string(),
        "--json".into(),
        "--port".into(),
        fleet.port().to_string(),
        "--tdp-port".into(),
        fleet.tdp_port().to_string(),
        "--timeout".into(),
        "3".into(),
    ];
    for p in fleet.plugs() {
        args.extend(["--host".into(), p.ip.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .env_remove("PLUGFLEET_USERNAME")
            .env_remove("PLUGFLEET_PASSWORD")
            .env_remove("PLUGFLEET_CONFIG")
            .env("XDG_CONFIG_HOME", "/nonexistent/plugfleet-test")
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let devs = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["ip"].as_str().unwrap().to_string(), v)
        })
        .collect();
    (out, devs)
}

fn account() -> [&'static str; 4] {
    [
        "--username",
        simklap::DEFAULT_USERNAME,
        "--password",
        simklap::DEFAULT_PASSWORD,
    ]
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_account_every_newer_plug_is_a_full_row_like_a_legacy_one() {
    let (fleet, k) = fleet(vec![(2, FaultKind::Bogus28kw)], vec![]).await;
    let (out, devs) = status(&fleet, &account(), &[]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(!err.contains(simklap::DEFAULT_PASSWORD), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(simklap::DEFAULT_PASSWORD));
    assert_eq!(devs.len(), PROFILES.len(), "{devs:?}");
    let p = fleet.plugs();
    let row = |i: usize| &devs[&p[i].ip.to_string()];
    let legacy = row(0);
    assert_eq!(legacy["protocol"], "legacy");
    for (i, protocol, dialect, model) in [
        (1, "klap", "iot", "HS100(UK)"),
        (2, "klap", "smart", "KP125M(US)"),
        (3, "aes", "smart", "P110(EU)"),
    ] {
        let d = row(i);
        assert_eq!(keys(d), keys(legacy), "same fields for every protocol: {d}");
        assert_eq!(d["protocol"], protocol, "{d}");
        assert_eq!(d["dialect"], dialect, "{d}");
        assert_eq!(d["model"], model, "{d}");
        assert_eq!(d["refusal"], Value::Null, "{d}");
        assert_eq!(d["online"], true, "{d}");
        assert_eq!(d["sw_ver"], p[i].sw_ver.as_str(), "{d}");
        assert_eq!(d["hw_ver"], p[i].hw_ver.as_str(), "{d}");
        assert_eq!(
            d["alias"],
            p[i].alias.as_str(),
            "nickname base64-decoded: {d}"
        );
        assert_eq!(
            d["mac"].as_str().unwrap().replace('-', ":"),
            p[i].mac.replace('-', ":"),
            "{d}"
        );
        assert!(d["relay_state"].is_u64(), "{d}");
        assert!(d["rssi"].is_i64(), "{d}");
        assert!(d["hw_id"].is_string() && d["oem_id"].is_string(), "{d}");
    }
    // The HS100(UK) has no meter; the SMART plugs report watts in W (mW on the wire).
    assert_eq!(row(1)["has_emeter"], false);
    for i in [2, 3] {
        assert_eq!(row(i)["has_emeter"], true, "{}", row(i));
        assert!(row(i)["emeter"]["power_w"].is_number(), "{}", row(i));
    }
    // The 28 kW glitch of a SMART plug is flagged exactly like a legacy plug's.
    let glitch = row(2);
    assert!(
        glitch["emeter"]["power_w"].as_f64().unwrap() >= 28_000.0,
        "{glitch}"
    );
    assert_eq!(glitch["plausibility"]["verdict"], "bogus", "{glitch}");
    assert_eq!(row(3)["plausibility"]["verdict"], "ok", "{}", row(3));
    // One session per device: one handshake each.
    for plug in &p[1..=3] {
        assert_eq!(
            k.device(plug.ip).unwrap().handshakes(),
            1,
            "{}",
            plug.profile
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_account_is_auth_failed_with_a_hint_and_exit_3() {
    let (fleet, _k) = fleet(vec![], vec![]).await;
    let (out, devs) = status(
        &fleet,
        &["--username", "someone@example.com"],
        &[("PLUGFLEET_PASSWORD", "not-the-password")],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("not-the-password")
            && !String::from_utf8_lossy(&out.stderr).contains("not-the-password")
    );
    let p = fleet.plugs();
    assert_eq!(devs[&p[0].ip.to_string()]["refusal"], Value::Null);
    for i in 1..=3 {
        let d = &devs[&p[i].ip.to_string()];
        assert_eq!(d["refusal"], "auth-failed", "{d}");
        assert_eq!(d["error"], "auth failed", "{d}");
        assert!(d["hint"].as_str().unwrap().contains("password"), "{d}");
        assert_eq!(d["online"], true, "it answered: {d}");
        assert!(d["model"].is_string(), "from discovery: {d}");
    }
    // The table says it too.
    let args: Vec<String> = [
        "status",
        "--port",
        &fleet.port().to_string(),
        "--tdp-port",
        &fleet.tdp_port().to_string(),
        "--host",
        &p[2].ip.to_string(),
        "--username",
        "someone@example.com",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .env_remove("PLUGFLEET_CONFIG")
            .env("XDG_CONFIG_HOME", "/nonexistent/plugfleet-test")
            .env_remove("PLUGFLEET_PASSWORD")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("auth failed"), "{text}");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_account_they_need_credentials_and_the_env_gives_them() {
    let (fleet, _k) = fleet(vec![], vec![(3, KlapFault::WrongCredentials)]).await;
    let (out, devs) = status(&fleet, &[], &[]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let p = fleet.plugs();
    for i in 1..=3 {
        let d = &devs[&p[i].ip.to_string()];
        assert_eq!(d["refusal"], "needs-credentials", "{d}");
        assert!(d["hint"].as_str().unwrap().contains("--username"), "{d}");
    }
    let (out, devs) = status(
        &fleet,
        &[],
        &[
            ("PLUGFLEET_USERNAME", simklap::DEFAULT_USERNAME),
            ("PLUGFLEET_PASSWORD", simklap::DEFAULT_PASSWORD),
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "the AES plug is bound elsewhere: {out:?}"
    );
    for i in 1..=2 {
        let d = &devs[&p[i].ip.to_string()];
        assert_eq!(d["refusal"], Value::Null, "{d}");
        assert!(d["sw_ver"].is_string(), "{d}");
    }
    assert_eq!(devs[&p[3].ip.to_string()]["refusal"], "auth-failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_gives_the_account_and_warns_when_others_can_read_it() {
    let (fleet, _k) = fleet(vec![], vec![]).await;
    let dir = std::env::temp_dir().join(format!("plugfleet-newer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[credentials]\nusername = \"{}\"\npassword = \"{}\"\n",
            simklap::DEFAULT_USERNAME,
            simklap::DEFAULT_PASSWORD
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let cfg = path.to_string_lossy().into_owned();
    let (out, devs) = status(&fleet, &["--config", &cfg], &[]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    #[cfg(unix)]
    assert!(err.contains("readable by others"), "{err}");
    assert!(!err.contains(simklap::DEFAULT_PASSWORD), "{err}");
    let p = fleet.plugs();
    for i in 1..=3 {
        assert_eq!(devs[&p[i].ip.to_string()]["refusal"], Value::Null);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_names_the_transport_and_that_the_account_is_needed() {
    let (fleet, _k) = fleet(vec![], vec![]).await;
    let mut args: Vec<String> = [
        "discover",
        "--json",
        "--port",
        &fleet.port().to_string(),
        "--tdp-port",
        &fleet.tdp_port().to_string(),
        "--timeout",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in fleet.plugs() {
        args.extend(["--host".into(), p.ip.to_string()]);
    }
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .env_remove("PLUGFLEET_CONFIG")
            .env("XDG_CONFIG_HOME", "/nonexistent/plugfleet-test")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut by_ip: HashMap<String, Value> = HashMap::new();
    for l in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        if let Some(ip) = v["ip"].as_str() {
            by_ip.insert(ip.to_owned(), v);
        }
    }
    let p = fleet.plugs();
    let want = [
        ("legacy", Value::Null),
        ("klap-iot", "required".into()),
        ("klap-smart", "required".into()),
        ("aes-smart", "required".into()),
    ];
    for (plug, (transport, creds)) in p.iter().zip(want) {
        let d = &by_ip[&plug.ip.to_string()];
        assert_eq!(d["transport"], transport, "{d}");
        assert_eq!(d["credentials"], creds, "{d}");
    }
}

/// `--record` rows say what was read and how, with the same words as `status --json`
/// (`type`, `protocol`, `dialect`), in JSON lines and in CSV alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_rows_carry_type_protocol_and_dialect_like_the_json() {
    let (fleet, _k) = fleet(vec![], vec![]).await;
    let dir = std::env::temp_dir().join(format!("pf-newer-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("rows.jsonl");
    let csv = dir.join("rows.csv");
    for f in [&jsonl, &csv] {
        let _ = std::fs::remove_file(f);
    }
    let mut args: Vec<&str> = account().to_vec();
    let jsonl_s = jsonl.to_str().unwrap().to_owned();
    let csv_s = csv.to_str().unwrap().to_owned();
    args.extend(["--record", &jsonl_s]);
    let (out, devs) = status(&fleet, &args, &[]).await;
    assert!(out.status.success(), "{out:?}");
    let mut args: Vec<&str> = account().to_vec();
    args.extend(["--record", &csv_s]);
    let (out, _) = status(&fleet, &args, &[]).await;
    assert!(out.status.success(), "{out:?}");

    let rows: Vec<Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let csv_rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    // The metered plugs give rows (the HS100(UK) has no meter, so no row): a legacy one, a
    // KLAP-SMART one and an AES-SMART one.
    let mut seen = Vec::new();
    for r in &rows {
        let d = &devs[r["ip"].as_str().unwrap()];
        for field in ["type", "protocol", "dialect"] {
            assert_eq!(r[field], d[field], "{field}: {r} vs {d}");
        }
        let c = csv_rows
            .iter()
            .find(|c| c[col("ip")] == r["ip"].as_str().unwrap())
            .expect("the same meter in the CSV file");
        for field in ["type", "protocol", "dialect"] {
            assert_eq!(c[col(field)], r[field].as_str().unwrap(), "{field} in CSV");
        }
        seen.push(format!("{}/{}", r["protocol"], r["dialect"]).replace('"', ""));
    }
    seen.sort();
    assert_eq!(seen, ["aes/smart", "klap/smart", "legacy/iot"], "{rows:?}");
    assert!(rows.iter().all(|r| r["type"] == "plug"), "{rows:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
