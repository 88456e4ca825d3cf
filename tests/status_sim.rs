#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `plugfleet status --json` against the simulator: the `bogus-28kw` and `unit-scale` faults are
//! flagged and named, and healthy simulated plugs pass.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};

use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec};
use serde_json::Value;

/// A distinct 127.<pid-derived>.<150+n>.2 base per test.
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 100 + (std::process::id() % 90) as u8, 150 + n, 2)
}

async fn fleet(profiles: &[&str], faults: impl Fn(usize) -> Option<FaultKind>) -> Fleet {
    let b = base();
    let spec = FleetSpec {
        profiles: profiles.iter().map(|s| s.to_string()).collect(),
        faults: (0..profiles.len())
            .filter_map(|i| {
                let ip = Ipv4Addr::from(u32::from(b) + i as u32);
                faults(i).map(|f| (ip, f))
            })
            .collect(),
        ..FleetSpec::on_free_port(b, profiles.len())
    };
    sim::start(spec).await.expect("fleet starts")
}

async fn status_json(fleet: &Fleet) -> (Output, HashMap<String, Value>) {
    let mut args = vec![];
    for p in fleet.plugs() {
        args.extend(["--host".into(), p.ip.to_string()]);
    }
    args.extend(["--timeout".into(), "3".into()]);
    run_status(fleet, args).await
}

async fn run_status(fleet: &Fleet, extra: Vec<String>) -> (Output, HashMap<String, Value>) {
    let mut args = vec![
        "status".to_string(),
        "--json".into(),
        "--port".into(),
        fleet.port().to_string(),
        "--tdp-port".into(),
        fleet.tdp_port().to_string(),
    ];
    args.extend(extra);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
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

fn reasons(v: &Value) -> Vec<String> {
    v["plausibility"]["reasons"]
        .as_array()
        .map(|a| a.iter().map(|r| r.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_28kw_is_flagged_and_healthy_plugs_pass() {
    let profiles = [
        "hs110-us-hw1",
        "hs110-eu-hw4",
        "kp115-us-hw1",
        "hs110-eu-hw1",
        "hs300-us-hw2",
        "hs100-us-hw2",
    ];
    let fleet = fleet(&profiles, |i| (i == 0).then_some(FaultKind::Bogus28kw)).await;
    let (out, devs) = status_json(&fleet).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(devs.len(), profiles.len(), "{devs:?}");
    let plugs = fleet.plugs();

    let bogus = &devs[&plugs[0].ip.to_string()];
    assert_eq!(bogus["model"], "HS110(US)");
    assert!(bogus["emeter"]["power_w"].as_f64().unwrap() >= 28_000.0);
    assert_eq!(bogus["plausibility"]["verdict"], "bogus", "{bogus}");
    assert!(
        reasons(bogus)
            .iter()
            .any(|r| r.contains("is above 1.25 × 1800 W rated (HS110 US)")),
        "{bogus}"
    );
    assert_eq!(
        bogus["plausibility"]["flagged"],
        serde_json::json!(["power"])
    );

    // Healthy simulated plugs with a meter are believed.
    for p in &plugs[1..4] {
        let d = &devs[&p.ip.to_string()];
        assert_eq!(d["plausibility"]["verdict"], "ok", "{d}");
    }
    let strip = &devs[&plugs[4].ip.to_string()];
    let outlets = strip["children"].as_array().unwrap();
    assert_eq!(outlets.len(), 6);
    for o in outlets {
        assert!(o["emeter"].is_object(), "{o}");
        assert_eq!(o["plausibility"]["verdict"], "ok", "{o}");
    }
    let plain = &devs[&plugs[5].ip.to_string()];
    assert!(
        plain["emeter"].is_null() && plain["plausibility"].is_null(),
        "{plain}"
    );

    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unit_scale_fault_is_named() {
    // Float and milli meters alike; each plug's appliance (and so its load) is chosen by the
    // simulator from its address.
    let profiles = [
        "hs110-us-hw1",
        "hs110-eu-hw4",
        "kp115-us-hw1",
        "hs110-eu-hw1",
        "hs110-us-hw1",
        "hs110-eu-hw4",
        "kp115-us-hw1",
        "hs110-eu-hw1",
    ];
    let fleet = fleet(&profiles, |_| Some(FaultKind::UnitScale)).await;
    // Relays on (a simulated plug starts on or off depending on its address): an open relay
    // reads 0 W, which hides the bug.
    for p in fleet.plugs() {
        plugfleet::net::Client::new(
            p.addr(),
            plugfleet::net::ClientConfig::with_timeout(
                fleet.port(),
                std::time::Duration::from_secs(3),
            ),
        )
        .set_relay(true, None)
        .await
        .unwrap();
    }
    let (out, devs) = status_json(&fleet).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(devs.len(), profiles.len());
    let mut named = 0;
    for d in devs.values() {
        let p = d["emeter"]["power_w"].as_f64().unwrap();
        if p < 1000.0 {
            // Under 1 W of real load (or the appliance is off): milliwatts of nothing look
            // like watts of a small load; nothing to tell.
            continue;
        }
        assert_eq!(d["plausibility"]["verdict"], "bogus", "{d}");
        let r = reasons(d);
        assert!(
            r[0].starts_with("unit-scale bug: looks like milliwatts in the watts field"),
            "{d}"
        );
        named += 1;
    }
    assert!(named > 0, "no plug had a load to show the bug: {devs:?}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_finds_the_fleet_and_a_newer_plug_is_listed_unread() {
    let profiles = [
        "hs110-us-hw1",
        "hs300-us-hw2",
        "hs100-uk-hw4-klap",
        "kp115-us-hw1",
    ];
    let fleet = fleet(&profiles, |i| (i == 3).then_some(FaultKind::UnitScale)).await;
    let (out, devs) = run_status(
        &fleet,
        vec![
            "--target".into(),
            "127.255.255.255".into(),
            "--timeout".into(),
            "1".into(),
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let plugs = fleet.plugs();
    for p in plugs {
        assert!(
            devs.contains_key(&p.ip.to_string()),
            "{} missing: {devs:?}",
            p.ip
        );
    }
    // Only this fleet answers on its port (other tests' fleets use other ports).
    assert_eq!(devs.len(), plugs.len(), "{devs:?}");
    let hs110 = &devs[&plugs[0].ip.to_string()];
    assert!(
        hs110["found_by"]
            .as_array()
            .unwrap()
            .contains(&Value::from("broadcast")),
        "{hs110}"
    );
    assert_eq!(hs110["plausibility"]["verdict"], "ok", "{hs110}");
    let strip = &devs[&plugs[1].ip.to_string()];
    assert_eq!(strip["children"].as_array().unwrap().len(), 6);
    let klap = &devs[&plugs[2].ip.to_string()];
    assert_ne!(klap["protocol"], "legacy", "{klap}");
    assert!(
        klap["emeter"].is_null() && klap["plausibility"].is_null(),
        "{klap}"
    );
    let kp = &devs[&plugs[3].ip.to_string()];
    if kp["emeter"]["power_w"].as_f64().unwrap() >= 1000.0 {
        assert!(reasons(kp)[0].starts_with("unit-scale bug"), "{kp}");
    }
    fleet.shutdown().await;
}
