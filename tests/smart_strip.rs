#![allow(clippy::unwrap_used, clippy::expect_used)]
//! SMART strips over loopback against the simulator: a P304M (KLAP v2, a meter per outlet,
//! read through `control_child`), a P300 (no meters) and an EP25 (SMART plug with energy)
//! beside a legacy HS300. Their children are the same outlets as the HS300's in
//! `status --json`, the poller's reports and the TUI; a glitching child is flagged bogus
//! with the reason; one outlet switches alone; a hostile `get_child_device_list` (endless
//! pages, 10,000 children, garbled entries) is a typed error while the rest of the fleet reads.

#[path = "common/newer.rs"]
mod newer_common;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use plugfleet::app::event::{Command as AppCommand, Event};
use plugfleet::app::settings::Settings;
use plugfleet::app::state::{App, RowId};
use plugfleet::app::update;
use plugfleet::fleet::plausibility::Verdict;
use plugfleet::net::client::NetError;
use plugfleet::net::discovery::{self, DiscoveryConfig};
use plugfleet::net::klap::Credentials;
use plugfleet::net::newer::{NewerLink, NewerSpec};
use plugfleet::net::poller::PollReport;
use plugfleet::protocol::sighting::DiscoveryEvent;
use plugfleet::sim::klap::{self as simklap, KlapFault, KlapFleet, KlapSpec};
use plugfleet::sim::{self, FaultKind, Fleet};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const HS300: usize = 0;
const P304M: usize = 1;
const P300: usize = 2;
const EP25: usize = 3;
const PROFILES: [&str; 4] = [
    "hs300-us-hw2",
    "p304m-uk-hw1-smart",
    "p300-eu-hw1-smart",
    "ep25-us-hw2-smart",
];
/// The P304M's glitching outlet (1-based).
const GLITCH_OUTLET: u8 = 2;

/// A distinct 127.<pid-derived>.<n>.2 base per test.
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 100 + (std::process::id() % 90) as u8, 120 + n, 2)
}

async fn fleet(
    profiles: &[&str],
    faults: Vec<(usize, FaultKind)>,
    klap: Vec<(usize, KlapFault)>,
) -> (Fleet, KlapFleet) {
    newer_common::klap_fleet(base(), profiles, faults, klap).await
}

fn account() -> Credentials {
    Credentials::new(simklap::DEFAULT_USERNAME, simklap::DEFAULT_PASSWORD)
}

/// Guards against a hang (the test fails instead of waiting forever); not a timing check.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("finished")
}

async fn status(fleet: &Fleet) -> (Output, HashMap<String, Value>) {
    let hosts: Vec<Ipv4Addr> = fleet.plugs().iter().map(|p| p.ip).collect();
    status_of(fleet, &hosts).await
}

async fn status_of(fleet: &Fleet, hosts: &[Ipv4Addr]) -> (Output, HashMap<String, Value>) {
    let mut args = vec![
        "status".to_string(),
        "--json".into(),
        "--port".into(),
        fleet.port().to_string(),
        "--tdp-port".into(),
        fleet.tdp_port().to_string(),
        "--timeout".into(),
        "3".into(),
        "--username".into(),
        simklap::DEFAULT_USERNAME.into(),
        "--password".into(),
        simklap::DEFAULT_PASSWORD.into(),
    ];
    for ip in hosts {
        args.extend(["--host".into(), ip.to_string()]);
    }
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .env_remove("PLUGFLEET_USERNAME")
            .env_remove("PLUGFLEET_PASSWORD")
            .env_remove("PLUGFLEET_CONFIG")
            .env("XDG_CONFIG_HOME", "/nonexistent/plugfleet-test")
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

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_lists_a_smart_strips_children_like_an_hs300s() {
    let glitch = FaultKind::OutletGlitch28kw {
        outlet: GLITCH_OUTLET,
    };
    let (fleet, k) = fleet(&PROFILES, vec![(P304M, glitch)], vec![]).await;
    let (out, devs) = status(&fleet).await;
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(simklap::DEFAULT_PASSWORD),
        "{out:?}"
    );
    assert_eq!(devs.len(), PROFILES.len(), "{out:?}");
    let p = fleet.plugs();
    let row = |i: usize| &devs[&p[i].ip.to_string()];
    let hs300 = row(HS300);
    let hs300_child = &hs300["children"][0];
    for (i, model, n) in [(P304M, "P304M(UK)", 4), (P300, "P300(EU)", 3)] {
        let d = row(i);
        assert_eq!(keys(d), keys(hs300), "the same fields as an HS300: {d}");
        assert_eq!(
            (&d["protocol"], &d["dialect"]),
            (&"klap".into(), &"smart".into())
        );
        assert_eq!(d["model"], model, "{d}");
        assert_eq!(d["type"], hs300["type"], "a strip like the HS300: {d}");
        assert_eq!(d["online"], true, "{d}");
        let kids = d["children"].as_array().expect("children");
        assert_eq!(kids.len(), n, "{d}");
        // In position order, with the outlets' own names and relay states.
        let relays = p[i].relays();
        for (j, c) in kids.iter().enumerate() {
            assert_eq!(keys(c), keys(hs300_child), "the same child fields: {c}");
            assert_eq!(c["id"], p[i].children[j].as_str(), "{c}");
            assert_eq!(c["relay_state"], u8::from(relays[j]), "{c}");
        }
    }
    let aliases = |i: usize| -> Vec<String> {
        row(i)["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["alias"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(aliases(P304M), ["Kettle", "Fridge", "Router", "Lamp"]);
    assert_eq!(aliases(P300), ["Desk lamp", "Monitor", "Speakers"]);

    // The P304M meters each outlet: readings like the HS300's outlets'; the glitching one is
    // flagged bogus with the reason, the others are not.
    let strip = row(P304M);
    assert_eq!(strip["has_emeter"], true, "{strip}");
    for (j, c) in strip["children"].as_array().unwrap().iter().enumerate() {
        assert!(c["emeter"]["power_w"].is_number(), "{c}");
        let verdict = &c["plausibility"]["verdict"];
        if j + 1 == usize::from(GLITCH_OUTLET) {
            assert!(c["emeter"]["power_w"].as_f64().unwrap() >= 28_000.0, "{c}");
            assert_eq!(verdict, "bogus", "{c}");
            let reasons = c["plausibility"]["reasons"].as_array().expect("reasons");
            assert!(
                reasons
                    .iter()
                    .any(|r| r.as_str().is_some_and(|r| r.contains("rated (P304M UK)"))),
                "the reason names the watts against the P304M's rating: {c}"
            );
        } else {
            assert_ne!(verdict, "bogus", "{c}");
        }
    }
    assert_eq!(strip["plausibility"]["verdict"], "bogus", "{strip}");
    // The P300 has no meters: its children have none either, and nothing is flagged.
    let bare = row(P300);
    assert_eq!(bare["has_emeter"], false, "{bare}");
    assert!(hs300_child["emeter"].is_object(), "{hs300}");
    for c in bare["children"].as_array().unwrap() {
        assert!(c["emeter"].is_null(), "{c}");
        assert_ne!(c["plausibility"]["verdict"], "bogus", "{c}");
    }
    // The EP25: a SMART plug with energy, like the KP125M.
    let ep25 = row(EP25);
    assert_eq!(ep25["model"], "EP25(US)", "{ep25}");
    assert_eq!(ep25["hw_ver"], "2.6", "{ep25}");
    assert_eq!(ep25["has_emeter"], true, "{ep25}");
    assert!(ep25["emeter"]["power_w"].is_number(), "{ep25}");
    assert_eq!(ep25["children"], Value::Array(Vec::new()), "{ep25}");
    // One session per device, the strips' outlets read over it.
    for i in [P304M, P300, EP25] {
        assert_eq!(
            k.device(p[i].ip).unwrap().handshakes(),
            1,
            "{}",
            p[i].profile
        );
    }
}

/// One discovery pass over the fleet's hosts into an app with the account: the app and the
/// commands it gave (a track per plug).
async fn discover_into(fleet: &Fleet) -> (App, Vec<AppCommand>) {
    let cfg = DiscoveryConfig {
        targets: Vec::new(),
        hosts: fleet.plugs().iter().map(|p| p.ip).collect(),
        port: fleet.port(),
        tdp_port: fleet.tdp_port(),
        timeout: Duration::from_secs(2),
        ..DiscoveryConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(256);
    let task = discovery::spawn(cfg, tx, CancellationToken::new());
    let now = std::time::Instant::now();
    let mut app = App::new(
        Settings {
            account: Some(account()),
            ..Settings::default()
        },
        now,
    );
    let mut cmds = Vec::new();
    while let Some(ev) = rx.recv().await {
        if let DiscoveryEvent::Found(s) = ev {
            cmds.extend(update(&mut app, Event::DeviceDiscovered(s.into()), now));
        }
    }
    task.await.unwrap().unwrap();
    (app, cmds)
}

/// How to reach each newer-protocol plug, by address, as the app asked the poller.
fn newer_specs(cmds: &[AppCommand]) -> HashMap<Ipv4Addr, NewerSpec> {
    cmds.iter()
        .filter_map(|c| match c {
            AppCommand::TrackNewer { addr, spec, .. } => match addr.ip() {
                std::net::IpAddr::V4(ip) => Some((ip, (**spec).clone())),
                std::net::IpAddr::V6(_) => None,
            },
            _ => None,
        })
        .collect()
}

/// Runs the poller over `cmds`' tracks until each device has one report.
async fn poll_once(cmds: &[AppCommand]) -> Vec<PollReport> {
    newer_common::poll_rounds(cmds, 1)
        .await
        .into_values()
        .filter_map(|mut v| (!v.is_empty()).then(|| v.swap_remove(0)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_one_smart_outlet_changes_only_that_outlet() {
    let (fleet, k) = fleet(&PROFILES, vec![], vec![]).await;
    let (_, cmds) = discover_into(&fleet).await;
    let specs = newer_specs(&cmds);
    for i in [P304M, P300] {
        let plug = &fleet.plugs()[i];
        let mut link = NewerLink::new(
            plug.ip.into(),
            specs[&plug.ip].clone(),
            Duration::from_secs(2),
        );
        let polled = bounded(link.poll()).await.expect("read");
        let ids: Vec<String> = polled
            .sysinfo
            .children
            .iter()
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(ids, plug.children, "{}", plug.profile);
        for (j, id) in ids.iter().enumerate() {
            let before = plug.relays();
            let want = !before[j];
            bounded(link.set_relay(want, Some(id)))
                .await
                .expect("switched");
            let after = plug.relays();
            for (n, (b, a)) in before.iter().zip(&after).enumerate() {
                if n == j {
                    assert_eq!(*a, want, "{}: outlet {n} switched", plug.profile);
                } else {
                    assert_eq!(a, b, "{}: outlet {n} left alone", plug.profile);
                }
            }
            // Read back through the child list.
            let p = bounded(link.poll()).await.expect("read back");
            assert_eq!(p.sysinfo.children[j].relay_on, want, "{}", plug.profile);
        }
        // An unknown child is the device's error, not a panic or a switch elsewhere.
        let before = plug.relays();
        let e = bounded(link.set_relay(true, Some("NOT-A-CHILD")))
            .await
            .expect_err("unknown child");
        assert!(
            matches!(e, NetError::Device { .. } | NetError::Reply(_)),
            "{e:?}"
        );
        assert_eq!(plug.relays(), before);
        assert_eq!(link.handshakes(), 1, "{}: one session", plug.profile);
        assert_eq!(k.device(plug.ip).unwrap().handshakes(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_child_lists_are_typed_errors_and_the_rest_of_the_fleet_reads() {
    let profiles = [
        "p304m-uk-hw1-smart",
        "p304m-uk-hw1-smart",
        "p304m-uk-hw1-smart",
        "ep25-us-hw2-smart",
        "hs300-us-hw2",
    ];
    let (fleet, _k) = fleet(
        &profiles,
        vec![],
        vec![
            (0, KlapFault::ChildrenEndless),
            (1, KlapFault::Children10000),
            (2, KlapFault::ChildrenGarbled),
        ],
    )
    .await;
    let (_, cmds) = discover_into(&fleet).await;
    let specs = newer_specs(&cmds);
    let p = fleet.plugs();
    for (i, why) in [(0, "pages"), (1, "children"), (2, "device_on")] {
        let mut link = NewerLink::new(
            p[i].ip.into(),
            specs[&p[i].ip].clone(),
            Duration::from_secs(3),
        );
        let e = bounded(link.poll()).await.expect_err("hostile child list");
        assert_eq!(e.kind(), "protocol", "{i}: {e}");
        assert!(e.to_string().contains(why), "{i}: {e}");
        // The session is still good: the device answers its info.
        let info = bounded(link.query(&serde_json::json!({"method": "get_device_info"})))
            .await
            .expect("still answers");
        assert_eq!(info["result"]["model"], "P304M", "{i}");
    }
    // Polled together, the hostile strips fail and the others read.
    let reports = poll_once(&cmds).await;
    assert_eq!(reports.len(), profiles.len());
    for r in &reports {
        let i = p
            .iter()
            .position(|x| std::net::IpAddr::V4(x.ip) == r.addr.ip())
            .unwrap();
        match i {
            0..=2 => assert!(r.outcome.is_err(), "{r:?}"),
            _ => assert!(r.outcome.is_ok(), "{}: {r:?}", p[i].profile),
        }
    }
}

fn screen(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
    t.draw(|f| plugfleet::ui::render(f, app)).unwrap();
    let buf = t.backend().buffer();
    let mut s = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_shows_a_smart_strips_outlets_as_rows() {
    let glitch = FaultKind::OutletGlitch28kw {
        outlet: GLITCH_OUTLET,
    };
    let (fleet, _k) = fleet(&PROFILES, vec![(P304M, glitch)], vec![]).await;
    let (mut app, cmds) = discover_into(&fleet).await;
    let now = std::time::Instant::now();
    for r in poll_once(&cmds).await {
        update(&mut app, Event::Polled(Box::new(r)), now);
    }
    let p = fleet.plugs();
    let strip = app
        .fleet
        .devices
        .values()
        .find(|d| d.addr.ip() == std::net::IpAddr::V4(p[P304M].ip))
        .expect("the P304M");
    assert!(strip.is_strip() && strip.is_online(), "{strip:?}");
    assert_eq!(strip.outlets.len(), 4);
    // Each strip opened to its outlets with the key a user presses (→), as an HS300 is.
    let strips: Vec<String> = [P304M, P300]
        .iter()
        .map(|&i| {
            let ip = std::net::IpAddr::V4(p[i].ip);
            let d = app.fleet.devices.values().find(|d| d.addr.ip() == ip);
            d.expect("strip").key.clone()
        })
        .collect();
    for key in strips {
        app.view.selected = Some(RowId::device(&key));
        update(
            &mut app,
            Event::Key(KeyEvent::new(KeyCode::Right, KeyModifiers::NONE)),
            now,
        );
    }
    let s = screen(&app);
    let line_of = |name: &str| {
        s.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("a row for {name}:\n{s}"))
            .to_owned()
    };
    for name in [
        "Kettle",
        "Fridge",
        "Router",
        "Lamp",
        "Desk lamp",
        "Monitor",
        "Speakers",
    ] {
        line_of(name);
    }
    assert!(line_of("Fridge").contains("BOGUS"), "{s}");
    assert!(!line_of("Kettle").contains("BOGUS"), "{s}");
    assert!(line_of("P304M").contains("BOGUS"), "{s}");

    // `--record` rows and `/metrics` series come from the same model: the strip's own row and
    // one per outlet, as an HS300's.
    let strip = app
        .fleet
        .devices
        .values()
        .find(|d| d.addr.ip() == std::net::IpAddr::V4(p[P304M].ip))
        .unwrap();
    let rows = plugfleet::record::rows_of(strip, 1_700_000_000_000);
    let outlet_rows: Vec<_> = rows.iter().filter(|r| r.outlet_id.is_some()).collect();
    assert_eq!(outlet_rows.len(), 4, "{rows:#?}");
    assert_eq!(rows.len(), 5, "the strip's row first: {rows:#?}");
    for (j, r) in outlet_rows.iter().enumerate() {
        assert_eq!(r.outlet_id.as_deref(), Some(p[P304M].children[j].as_str()));
        assert_eq!(r.model, "P304M(UK)");
        let bogus = j + 1 == usize::from(GLITCH_OUTLET);
        assert_eq!(r.verdict == Verdict::Bogus, bogus, "{r:?}");
        assert_eq!(!r.reasons.is_empty(), bogus, "{r:?}");
    }
    assert_eq!(
        outlet_rows[1].outlet_alias.as_deref(),
        Some("Fridge"),
        "{rows:#?}"
    );
    let text = plugfleet::metrics::render(&plugfleet::metrics::view::snapshot(&app.fleet, now));
    let mac = plugfleet::protocol::normalise_mac(&p[P304M].mac);
    for (j, id) in p[P304M].children.iter().enumerate() {
        let info = text.lines().find(|l| {
            l.starts_with("plugfleet_outlet_info{")
                && l.contains(&format!("mac=\"{mac}\""))
                && l.contains(&format!("child_id=\"{id}\""))
        });
        assert!(info.is_some(), "outlet {j} info series:\n{text}");
        let power = text.lines().find(|l| {
            l.starts_with("plugfleet_power_watts{") && l.contains(&format!("child_id=\"{id}\""))
        });
        assert!(power.is_some(), "outlet {j} power series:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_p304m_and_ep25_read_with_its_account_and_the_glitch_shows() {
    use plugfleet::cmd::demo;
    let mut started = None;
    for n in 0..8u8 {
        let b = Ipv4Addr::new(127, 100 + (std::process::id() % 90) as u8, 200 + n, 2);
        match sim::start(demo::demo_spec(b)).await {
            Ok(f) => {
                started = Some(f);
                break;
            }
            Err(sim::SimError::AddrInUse { .. }) => continue,
            Err(e) => panic!("demo fleet: {e}"),
        }
    }
    let fleet = started.expect("the demo fleet starts");
    let _k = simklap::serve(&fleet, &KlapSpec::default())
        .await
        .expect("KLAP servers start");
    let p = fleet.plugs();
    let at = |profile: &str| {
        p.iter()
            .position(|x| x.profile == profile)
            .unwrap_or_else(|| panic!("{profile} is in the demo"))
    };
    let (strip, plug) = (at("p304m-uk-hw1-smart"), at("ep25-us-hw2-smart"));
    assert!(p[strip].faults.contains(&FaultKind::OutletGlitch28kw {
        outlet: demo::GLITCH_OUTLET
    }));
    let (out, devs) = status_of(&fleet, &[p[strip].ip, p[plug].ip]).await;
    assert_eq!(devs.len(), 2, "{out:?}");
    let s = &devs[&p[strip].ip.to_string()];
    let kids = s["children"].as_array().expect("children");
    assert_eq!(kids.len(), 4, "{s}");
    let g = &kids[usize::from(demo::GLITCH_OUTLET) - 1];
    assert_eq!(g["plausibility"]["verdict"], "bogus", "{g}");
    let e = &devs[&p[plug].ip.to_string()];
    assert_eq!(
        (&e["model"], &e["refusal"]),
        (&"EP25(US)".into(), &Value::Null),
        "{e}"
    );
    assert!(e["emeter"]["power_w"].is_number(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_on_a_smart_outlet_row_switches_that_outlet_with_the_usual_confirmation() {
    use plugfleet::app::event::ActionKind;
    let (fleet, _k) = fleet(&PROFILES, vec![], vec![]).await;
    let (mut app, cmds) = discover_into(&fleet).await;
    let specs = newer_specs(&cmds);
    let now = std::time::Instant::now();
    for r in poll_once(&cmds).await {
        update(&mut app, Event::Polled(Box::new(r)), now);
    }
    let plug = &fleet.plugs()[P304M];
    let key = app
        .fleet
        .devices
        .values()
        .find(|d| d.addr.ip() == std::net::IpAddr::V4(plug.ip))
        .unwrap()
        .key
        .clone();
    let key_event = |c: char| Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    for j in 0..plug.children.len() {
        let id = plug.children[j].clone();
        app.view.selected = Some(RowId {
            key: key.clone(),
            child: Some(id.clone()),
        });
        let before = plug.relays();
        let mut out = update(&mut app, key_event('t'), now);
        if before[j] {
            // Switching off always asks first.
            assert!(out.is_empty(), "{out:?}");
            out = update(&mut app, key_event('y'), now);
        }
        let act = out
            .iter()
            .find_map(|c| match c {
                AppCommand::Act {
                    child, kind, addr, ..
                } => Some((child.clone(), *kind, *addr)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("outlet {j}: no switch: {out:?}"));
        assert_eq!(act.0.as_deref(), Some(id.as_str()));
        let on = act.1 == ActionKind::RelayOn;
        assert_eq!(on, !before[j]);
        // What the runtime does with it for a newer-protocol device.
        let mut link = NewerLink::new(
            plug.ip.into(),
            specs[&plug.ip].clone(),
            Duration::from_secs(2),
        );
        bounded(link.set_relay(on, act.0.as_deref()))
            .await
            .expect("switched");
        let after = plug.relays();
        for n in 0..after.len() {
            let want = if n == j { on } else { before[n] };
            assert_eq!(after[n], want, "outlet {n} after switching {j}");
        }
        // The next poll shows it.
        for r in poll_once(&cmds).await {
            update(&mut app, Event::Polled(Box::new(r)), now);
        }
    }
    // Read-only: the key does nothing.
    let mut ro = App::new(
        Settings {
            account: Some(account()),
            read_only: true,
            ..Settings::default()
        },
        now,
    );
    std::mem::swap(&mut ro.fleet, &mut app.fleet);
    ro.view.selected = Some(RowId {
        key: key.clone(),
        child: Some(plug.children[0].clone()),
    });
    let mut out = update(&mut ro, key_event('t'), now);
    out.extend(update(&mut ro, key_event('y'), now));
    assert!(
        !out.iter().any(|c| matches!(c, AppCommand::Act { .. })),
        "{out:?}"
    );
}
