#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One judgement, shown the same everywhere: the same readings go through the real path (events
//! into `app::update`, which feeds the fleet model), and the TUI's table cell and detail pane
//! (drawn on ratatui's `TestBackend`), the `status --json` line, the `--record` row and the
//! `/metrics` series must all carry the model's verdict and reasons.
//!
//! The readings: a 28 kW plug, a plug reporting milliwatts in its watts field, a strip whose
//! outlets are each fine but whose total is over the strip's rating, a counter reset, a power
//! value sent as a string, and a meter that answers "device error -9" (no reading: never ok).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use plugfleet::app::fixture::{self, Plug, reading};
use plugfleet::app::state::{App, RowId, Settings};
use plugfleet::app::{Event, update};
use plugfleet::fleet::model::Device;
use plugfleet::net::NetError;
use plugfleet::net::poller::{PollReport, Polled};
use plugfleet::protocol::Realtime;
use plugfleet::record::ReadingRecord;
use plugfleet::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::{Value, json};

const W: u16 = 240;
const H: u16 = 50;

/// What every view must say about one device: its verdict (`None`: no reading) and reasons.
struct Case {
    plug: Plug,
    verdict: Option<&'static str>,
    /// A piece of the first reason (the first reason's text, from the model, is compared in
    /// full where the view has room for it).
    reason: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let mut strip = Plug::new(3, "Rack", "HS300(US)", "2.0", "1.0.21");
    strip.outlets = (0..6).map(|_| ("load", true)).collect();
    vec![
        Case {
            plug: Plug::new(1, "Heater", "HS110(US)", "1.0", "1.2.6"),
            verdict: Some("bogus"),
            reason: Some("28000 W is above 1.25 × 1800 W rated (HS110 US)"),
        },
        Case {
            plug: Plug::new(2, "Desk", "HS110(EU)", "4.0", "1.0.4"),
            verdict: Some("bogus"),
            reason: Some("unit-scale bug: looks like milliwatts in the watts field"),
        },
        Case {
            plug: strip,
            verdict: Some("bogus"),
            reason: Some("strip total 2400 W is above 1.25 × 1800 W rated (HS300 US)"),
        },
        Case {
            plug: Plug::new(4, "Meter", "KP115(US)", "1.0", "1.0.16"),
            verdict: Some("ok"),
            reason: Some("total fell from 30.404 kWh to 0.001 kWh: counter reset"),
        },
        Case {
            plug: Plug::new(5, "Odd", "HS110(US)", "1.0", "1.2.6"),
            verdict: Some("bogus"),
            reason: Some("unreadable power: \"28000\""),
        },
        Case {
            plug: Plug::new(6, "Broken", "HS110(US)", "1.0", "1.2.6"),
            verdict: None,
            reason: None,
        },
    ]
}

fn meter_error(p: &Plug) -> Event {
    Event::Polled(Box::new(PollReport {
        key: fixture::device_id(p.n),
        addr: fixture::addr(p.n),
        outcome: Ok(Polled {
            sysinfo: p.sysinfo(),
            realtime: Some(Err(NetError::Device {
                code: -9,
                msg: "emeter busy".into(),
            })),
            outlets: Vec::new(),
        }),
        misses: 0,
        elapsed: Duration::from_millis(2),
    }))
}

/// The fleet, fed through `update` as the runtime would.
fn app(cases: &[Case]) -> (App, Instant) {
    let t0 = Instant::now();
    let mut app = App::new(
        Settings {
            epoch_unix_ms: 1_800_000_000_000,
            ..Settings::default()
        },
        t0,
    );
    for c in cases {
        update(&mut app, fixture::sighting(&c.plug, "broadcast"), t0);
    }
    let t1 = t0 + Duration::from_secs(2);
    let ps: Vec<&Plug> = cases.iter().map(|c| &c.plug).collect();
    let odd = Realtime::from_result(
        &json!({"power": "28000", "voltage": 120.1, "current": 0.2, "total": 1.0, "err_code": 0}),
    )
    .unwrap();
    let events = vec![
        fixture::polled(ps[0], Some(reading(28_000.0, 118.9, 0.128, 30.4)), vec![]),
        fixture::polled(ps[1], Some(reading(61_753.0, 230.8, 0.2676, 16.3)), vec![]),
        fixture::polled(
            ps[2],
            None,
            (0..6).map(|_| reading(400.0, 120.0, 3.5, 1.0)).collect(),
        ),
        fixture::polled(ps[3], Some(reading(7.6, 119.0, 0.128, 30.404)), vec![]),
        fixture::polled(ps[4], Some(odd), vec![]),
        meter_error(ps[5]),
    ];
    for e in events {
        update(&mut app, e, t1);
    }
    let t2 = t1 + Duration::from_secs(2);
    update(
        &mut app,
        fixture::polled(ps[3], Some(reading(7.6, 119.0, 0.128, 0.001)), vec![]),
        t2,
    );
    (app, t2)
}

fn screen(app: &App) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(W, H)).unwrap();
    t.draw(|f| ui::render(f, app)).unwrap();
    let buf = t.backend().buffer();
    (0..H)
        .map(|y| (0..W).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

/// The health label the TUI draws for a verdict (`None`: no reading, "no data" in the
/// nine-column health cell).
fn health_label(v: Option<&str>) -> &'static str {
    match v {
        Some("bogus") => "BOGUS",
        Some("suspect") => "suspect",
        Some(_) => "ok",
        None => "no data",
    }
}

/// `name{k="v",…} value` lines of the exposition (label values without escapes here).
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (head, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (head, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once("=\"").unwrap();
                    (k.to_owned(), v.trim_end_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value.parse().unwrap())
        })
        .collect()
}

fn texts(d: &Device) -> Vec<String> {
    d.judged.as_ref().map(|a| a.texts()).unwrap_or_default()
}

#[test]
fn every_view_carries_the_models_verdict_and_reasons() {
    let cases = cases();
    let (mut app, now) = app(&cases);
    let rows = screen(&app);
    let metrics =
        plugfleet::metrics::render(&plugfleet::metrics::view::snapshot(&app.fleet, app.now));
    let series = samples(&metrics);

    for c in &cases {
        let key = fixture::device_id(c.plug.n);
        let d = app.fleet.get(&key).unwrap().clone();
        let name = &c.plug.alias;
        let want = texts(&d);
        // The model itself: the verdict and first reason the case is about.
        assert_eq!(
            d.judged.as_ref().map(|a| a.verdict.as_str()),
            c.verdict,
            "{name}: {want:?}"
        );
        if let Some(r) = c.reason {
            assert!(want[0].starts_with(r), "{name}: {want:?}");
        }

        // The TUI's table: the row's health cell.
        let row = rows
            .iter()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("{name}: no row in\n{}", rows.join("\n")));
        let label = health_label(c.verdict);
        assert!(row.contains(&format!(" {label} ")), "{name}: {row}");
        for other in ["BOGUS", " ok ", "no data", "suspect"] {
            if !row.contains(&format!(" {label} ")) || other.trim() == label {
                continue;
            }
            assert!(!row.contains(other), "{name}: {row}");
        }
        // The TUI's detail pane: the reasons.
        app.view.selected = Some(RowId::device(&key));
        app.view.detail = true;
        let detail = screen(&app).join("\n");
        for reason in &want {
            let shown: String = reason.chars().take(40).collect();
            assert!(detail.contains(&shown), "{name}: {shown:?} in\n{detail}");
        }
        if c.verdict.is_none() {
            assert!(detail.contains("device error -9"), "{name}:\n{detail}");
        }
        app.view.detail = false;

        // `status --json`.
        let j = plugfleet::cmd::status::json_line(&d, &app.fleet);
        match c.verdict {
            Some(v) => {
                assert_eq!(j["plausibility"]["verdict"], v, "{name}: {j}");
                assert_eq!(j["plausibility"]["reasons"], json!(want), "{name}: {j}");
            }
            None => {
                assert!(j["plausibility"].is_null(), "{name}: {j}");
                assert!(j["emeter"].is_null(), "{name}: {j}");
                assert!(
                    j["emeter_error"].as_str().unwrap().contains("-9"),
                    "{name}: {j}"
                );
            }
        }

        // The `--record` row (a strip's own row: no outlet id).
        let recs: Vec<ReadingRecord> = plugfleet::record::rows_of(&d, 1);
        let own = recs.iter().find(|r| r.outlet_id.is_none());
        match c.verdict {
            Some(v) => {
                let r = own.unwrap_or_else(|| panic!("{name}: {recs:?}"));
                assert_eq!(r.verdict.as_str(), v, "{name}");
                assert_eq!(r.reasons, want, "{name}");
                // Through the file format too.
                let back: ReadingRecord =
                    serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap();
                assert_eq!(&back, r);
            }
            None => assert!(recs.is_empty(), "{name}: no reading, no row: {recs:?}"),
        }

        // `/metrics`: the device-level verdict series and one finding per reason.
        let mac = plugfleet::protocol::normalise_mac(d.mac());
        let device_level = |s: &&(String, BTreeMap<String, String>, f64)| {
            s.1.get("mac") == Some(&mac) && !s.1.contains_key("child_id")
        };
        let verdicts: Vec<&str> = series
            .iter()
            .filter(device_level)
            .filter(|s| s.0 == "plugfleet_reading_verdict" && s.2 == 1.0)
            .map(|s| s.1["verdict"].as_str())
            .collect();
        assert_eq!(
            verdicts,
            c.verdict.into_iter().collect::<Vec<_>>(),
            "{name}"
        );
        let mut rules: Vec<String> = series
            .iter()
            .filter(device_level)
            .filter(|s| s.0 == "plugfleet_reading_finding")
            .map(|s| s.1["rule"].clone())
            .collect();
        rules.sort();
        let mut want_rules: Vec<String> = d
            .judged
            .iter()
            .flat_map(|a| a.reasons.iter().map(|r| r.rule.name()))
            .collect();
        want_rules.sort();
        want_rules.dedup();
        assert_eq!(rules, want_rules, "{name}");
        if c.verdict.is_none() {
            assert!(
                !series
                    .iter()
                    .any(|s| s.1.get("mac") == Some(&mac) && s.0 == "plugfleet_power_watts"),
                "{name}: no reading exported"
            );
        }
    }
    let _ = now;
}

#[test]
fn the_strips_outlets_are_each_fine_and_say_so_everywhere() {
    let cases = cases();
    let (app, _) = app(&cases);
    let d = app.fleet.get(&fixture::device_id(3)).unwrap();
    let j: Value = plugfleet::cmd::status::json_line(d, &app.fleet);
    let children = j["children"].as_array().unwrap();
    assert_eq!(children.len(), 6);
    for c in children {
        assert_eq!(c["plausibility"]["verdict"], "ok", "{c}");
    }
    let recs = plugfleet::record::rows_of(d, 1);
    assert_eq!(recs.len(), 7, "the strip's own row and one per outlet");
    assert!(recs[1..].iter().all(|r| r.verdict.as_str() == "ok"));
    assert_eq!(recs[0].power_w, Some(2400.0));
    // The outlets' rows in the TUI (expanded) say ok; the strip's says BOGUS.
    let mut app = app;
    app.view.expanded.insert(fixture::device_id(3));
    let rows = screen(&app);
    let outlets: Vec<&String> = rows.iter().filter(|l| l.contains(" load ")).collect();
    assert_eq!(outlets.len(), 6, "{}", rows.join("\n"));
    assert!(outlets.iter().all(|l| l.contains(" ok ")), "{outlets:?}");
    assert!(
        rows.iter()
            .any(|l| l.contains(" Rack ") && l.contains(" BOGUS "))
    );
}

/// Found by trying the demo: a plug whose voltage is off against the fleet was `? suspect` in
/// the table (`111.2?`) while its detail pane said "verdict ok" with no reason. The pane shows
/// the device's judgement, fleet-wide rules included.
#[test]
fn a_voltage_off_against_the_fleet_reads_the_same_in_the_row_and_the_detail_pane() {
    let t0 = Instant::now();
    let mut app = App::new(Settings::default(), t0);
    let plugs: Vec<Plug> = (1..=5)
        .map(|n| Plug::new(n, &format!("P{n}"), "HS110(US)", "1.0", "1.2.6"))
        .collect();
    for p in &plugs {
        update(&mut app, fixture::sighting(p, "broadcast"), t0);
    }
    let t1 = t0 + Duration::from_secs(2);
    for p in &plugs {
        // P5 reads 8 % below the other four.
        let v = if p.n == 5 { 110.4 } else { 120.0 };
        update(
            &mut app,
            fixture::polled(p, Some(reading(60.0, v, 60.0 / v, 1.0)), vec![]),
            t1,
        );
    }
    app.fleet.judge_voltages(t1);
    let key = fixture::device_id(5);
    let d = app.fleet.get(&key).unwrap();
    let judged = d.judged.as_ref().expect("judged");
    assert_eq!(judged.verdict.as_str(), "suspect", "{:?}", texts(d));
    let reason: String = texts(d)[0].chars().take(40).collect();

    let rows = screen(&app);
    let row = rows.iter().find(|l| l.contains(" P5 ")).unwrap();
    assert!(row.contains("suspect") && row.contains("110.4?"), "{row}");
    app.view.selected = Some(RowId::device(&key));
    app.view.detail = true;
    let detail = screen(&app).join("\n");
    assert!(detail.contains("? SUSPECT"), "{detail}");
    assert!(!detail.contains("verdict ok"), "{detail}");
    assert!(detail.contains(&reason), "{reason:?} in\n{detail}");
}
