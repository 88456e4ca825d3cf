#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The quiet rules (issue 15) wired into the fleet model, over the wire: simulated plugs on
//! loopback with each quiet fault, read by headless `status` rounds into one model, are found
//! with their evidence — and every view (`status --json`, `--record` rows, `/metrics`) gives
//! the same reasons. (`counter-lag` needs ≥ 10 min of history on the model's clock; it is
//! covered with a synthetic clock in `fleet::watch`'s tests, and over the wire on the
//! simulator's fast clock in `tests/quiet_tui.rs`.)

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use plugfleet::cmd::args::TargetArgs;
use plugfleet::cmd::status;
use plugfleet::fleet::identity::Names;
use plugfleet::fleet::model::{Device, Fleet as Model};
use plugfleet::net::{Client, ClientConfig};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec};

fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 68, pid.wrapping_mul(7).wrapping_add(n), 2)
}

/// Five metered EU plugs; the first has `fault`; every relay is set to `relay`.
async fn five(fault: FaultKind, relay: bool) -> Fleet {
    let b = base();
    let spec = FleetSpec {
        profiles: vec!["hs110-eu-hw1".into()],
        faults: vec![(b, fault)],
        ..FleetSpec::on_free_port(b, 5)
    };
    let f = sim::start(spec).await.expect("fleet");
    for p in f.plugs() {
        Client::new(
            p.addr(),
            ClientConfig::with_timeout(p.port, Duration::from_secs(3)),
        )
        .set_relay(relay, None)
        .await
        .expect("relay");
    }
    f
}

/// One headless `status` round into `model`.
async fn round(fleet: &Fleet, model: &mut Model) {
    let net = TargetArgs {
        hosts: fleet.plugs().iter().map(|p| p.addr()).collect(),
        port: fleet.port(),
        timeout: Duration::from_secs(3),
        ..TargetArgs::default()
    };
    let cfg = plugfleet::cmd::args::discovery_config(&net).unwrap();
    let client = ClientConfig::with_timeout(net.port, net.timeout);
    status::round(model, cfg, client, &Default::default(), &Names::default())
        .await
        .unwrap();
    assert_eq!(model.len(), 5, "every plug answered");
}

fn at<'a>(model: &'a Model, fleet: &Fleet, i: usize) -> &'a Device {
    let ip = std::net::IpAddr::V4(fleet.plugs()[i].ip);
    model
        .devices
        .values()
        .find(|d| d.addr.ip() == ip)
        .expect("device")
}

/// The rule names of the `findings` of a `status --json` line.
fn json_rules(v: &serde_json::Value) -> Vec<String> {
    v["plausibility"]["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["rule"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The device's finding of `rule` is in every view with the same text: `status --json`
/// (reasons + evidence), its `--record` row, and `/metrics` (finding gauge and counter).
fn in_every_view(model: &Model, d: &Device, rule: &str, kind: &str) -> String {
    let v = status::json_line(d, model);
    assert_eq!(json_rules(&v), vec![rule.to_owned()], "{v}");
    let f = &v["plausibility"]["findings"][0];
    assert_eq!(f["evidence"]["kind"], kind, "{f}");
    let text = f["text"].as_str().expect("text").to_owned();
    assert_eq!(v["plausibility"]["verdict"], "suspect", "{v}");
    let reasons: Vec<String> =
        serde_json::from_value(v["plausibility"]["reasons"].clone()).unwrap();
    assert!(reasons.contains(&text), "{reasons:?} vs {text}");
    let rows = plugfleet::record::rows_of(d, 0);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].reasons.contains(&text), "{:?}", rows[0]);
    assert_eq!(rows[0].findings.len(), 1);
    assert_eq!(rows[0].findings[0]["rule"], rule);
    let text_metrics = plugfleet::metrics::render(&plugfleet::metrics::view::snapshot(
        model,
        std::time::Instant::now(),
    ));
    assert!(
        text_metrics
            .lines()
            .any(|l| l.starts_with("plugfleet_reading_finding{")
                && l.contains(&format!("rule=\"{rule}\""))
                && l.contains(&fleet_mac(d))),
        "{text_metrics}"
    );
    let counter = text_metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "plugfleet_reading_findings_total{{rule=\"{rule}\"}}"
            ))
        })
        .expect("counter");
    assert_ne!(counter.rsplit(' ').next(), Some("0"), "{counter}");
    text
}

fn fleet_mac(d: &Device) -> String {
    plugfleet::protocol::normalise_mac(d.mac())
}

/// The other plugs raise nothing.
fn others_quiet(model: &Model, fleet: &Fleet) {
    for i in 1..5 {
        let v = status::json_line(at(model, fleet, i), model);
        assert!(json_rules(&v).is_empty(), "{v}");
    }
}

#[tokio::test]
async fn a_one_shot_status_finds_a_drifted_voltage_against_the_fleet() {
    let f = five("voltage-drift:-8".parse().expect("fault"), true).await;
    let mut model = Model::new(std::time::Instant::now());
    round(&f, &mut model).await;
    let text = in_every_view(&model, at(&model, &f, 0), "fleet_voltage", "fleet_voltage");
    assert!(text.contains("vs fleet median"), "{text}");
    others_quiet(&model, &f);
    f.shutdown().await;
}

#[tokio::test]
async fn headless_rounds_find_a_stuck_meter_and_a_phantom_load() {
    for (fault, relay, rule, kind, rounds) in [
        (FaultKind::StuckMeter, true, "frozen_meter", "frozen", 11),
        (FaultKind::PhantomLoad, false, "phantom_load", "phantom", 3),
    ] {
        let f = five(fault, relay).await;
        let mut model = Model::new(std::time::Instant::now());
        // The simulated idle loads are small (under a watt): tune the frozen rule's load floor
        // as `[plausibility.frozen] min_w` would.
        model.rules.frozen.min_w = 0.1;
        for _ in 0..rounds {
            round(&f, &mut model).await;
            // The simulated meters' noise changes every half second: a healthy meter jitters
            // between rounds.
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        in_every_view(&model, at(&model, &f, 0), rule, kind);
        others_quiet(&model, &f);
        f.shutdown().await;
    }
}
