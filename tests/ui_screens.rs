#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Whole-screen snapshots of the TUI against `TestBackend`, plus cell-style assertions where
//! style carries meaning (a bogus reading must look different, with and without colour).

use std::time::{Duration, Instant};

use plugfleet::app::fixture::{self, mixed_fleet};
use plugfleet::app::keymap::KEYMAP;
use plugfleet::app::state::{App, Settings};
use plugfleet::app::{Event, update};
use plugfleet::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};

fn settings() -> Settings {
    Settings {
        interval: Duration::from_secs(2),
        ..Settings::default()
    }
}

fn draw(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::render(f, app)).unwrap();
    t
}

fn press(app: &mut App, code: KeyCode, now: Instant) {
    update(
        app,
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE)),
        now,
    );
}

fn keys(app: &mut App, s: &str, now: Instant) {
    for c in s.chars() {
        press(app, KeyCode::Char(c), now);
    }
}

fn fleet() -> (App, Instant) {
    mixed_fleet(settings(), Instant::now())
}

/// Finds `needle` on screen; returns (x, y) of its first cell.
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    let area = buf.area;
    for y in 0..area.height {
        let line: String = (0..area.width)
            .map(|x| buf[(x, y)].symbol().to_string())
            .collect();
        if let Some(i) = line.find(needle) {
            let x = line[..i].chars().count() as u16;
            return Some((x, y));
        }
    }
    None
}

#[test]
fn empty_while_discovering() {
    let app = App::new(settings(), Instant::now());
    insta::assert_snapshot!(draw(&app, 120, 16).backend());
}

#[test]
fn mixed_fleet_with_bogus_plugs() {
    let (app, _) = fleet();
    insta::assert_snapshot!(draw(&app, 140, 20).backend());
}

#[test]
fn strip_expanded() {
    let (mut app, now) = fleet();
    // Select the strip (sorted by IP: 5th row) and expand it.
    keys(&mut app, "jjjj", now);
    press(&mut app, KeyCode::Right, now);
    insta::assert_snapshot!(draw(&app, 140, 20).backend());
}

#[test]
fn detail_pane_of_the_unit_scale_plug() {
    let (mut app, now) = fleet();
    keys(&mut app, "jj", now);
    press(&mut app, KeyCode::Enter, now);
    insta::assert_snapshot!(draw(&app, 140, 44).backend());
}

#[test]
fn detail_pane_of_the_newer_protocol_plug() {
    let (mut app, now) = fleet();
    press(&mut app, KeyCode::End, now);
    press(&mut app, KeyCode::Enter, now);
    let t = draw(&app, 100, 40);
    assert!(find(t.backend().buffer(), "not pollable on 9999").is_some());
    insta::assert_snapshot!(t.backend());
}

#[test]
fn help_lists_every_binding() {
    let (mut app, now) = fleet();
    keys(&mut app, "?", now);
    let t = draw(&app, 120, 90);
    insta::assert_snapshot!(t.backend());
    for b in KEYMAP {
        assert!(
            find(t.backend().buffer(), b.help).is_some(),
            "help misses {:?}",
            b.action
        );
    }
}

#[test]
fn flagged_only_view() {
    let (mut app, now) = fleet();
    keys(&mut app, "f", now);
    insta::assert_snapshot!(draw(&app, 140, 16).backend());
}

#[test]
fn small_terminal_80x24() {
    let (mut app, now) = fleet();
    keys(&mut app, "jjjj", now);
    press(&mut app, KeyCode::Right, now);
    insta::assert_snapshot!(draw(&app, 80, 24).backend());
}

#[test]
fn small_terminal_80x24_with_detail() {
    let (mut app, now) = fleet();
    keys(&mut app, "j", now);
    press(&mut app, KeyCode::Enter, now);
    insta::assert_snapshot!(draw(&app, 80, 24).backend());
}

#[test]
fn filter_marks_and_read_only() {
    let mut s = settings();
    s.read_only = true;
    s.label = Some("DEMO".into());
    let (mut app, now) = mixed_fleet(s, Instant::now());
    keys(&mut app, "/", now);
    keys(&mut app, "hs110", now);
    press(&mut app, KeyCode::Enter, now);
    keys(&mut app, " ", now);
    keys(&mut app, "t", now);
    let t = draw(&app, 140, 14);
    assert!(find(t.backend().buffer(), "READ-ONLY").is_some());
    assert!(find(t.backend().buffer(), "DEMO").is_some());
    insta::assert_snapshot!(t.backend());
}

#[test]
fn confirm_dialog_for_several_marked_plugs() {
    let (mut app, now) = fleet();
    keys(&mut app, "  ", now);
    keys(&mut app, "t", now);
    insta::assert_snapshot!(draw(&app, 100, 20).backend());
}

#[test]
fn a_flagged_value_has_colour_and_a_glyph() {
    let (app, _) = fleet();
    let t = draw(&app, 140, 20);
    let buf = t.backend().buffer();
    // The 28 kW reading: the glyph sits right after the value, both in the bogus style.
    let (x, y) = find(buf, "28041.6‼").expect("the 28 kW value with its glyph");
    let glyph = &buf[(x + 7, y)];
    assert_eq!(glyph.symbol(), "‼");
    assert_eq!(glyph.fg, Color::LightRed);
    assert!(glyph.modifier.contains(Modifier::BOLD));
    assert_eq!(buf[(x, y)].fg, Color::LightRed);
    // A plausible value next to it is plain.
    let (ox, oy) = find(buf, "230.8 ").expect("kitchen voltage");
    assert_eq!(buf[(ox, oy)].fg, Color::Reset);
    // The row's health says it, too.
    assert!(find(buf, "‼ BOGUS").is_some());
}

#[test]
fn without_colour_the_flag_is_still_visible() {
    let mut s = settings();
    s.color = false;
    let (app, _) = mixed_fleet(s, Instant::now());
    let t = draw(&app, 140, 20);
    let buf = t.backend().buffer();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            let c = &buf[(x, y)];
            assert_eq!(c.fg, Color::Reset, "colour at {x},{y}");
        }
    }
    let (x, y) = find(buf, "28041.6‼").expect("glyph without colour");
    assert!(buf[(x + 7, y)].modifier.contains(Modifier::BOLD));
    assert!(find(buf, "61753.0‼").is_some(), "unit-scale plug flagged");
}

#[test]
fn hostile_device_strings_are_cleaned() {
    let mut app = App::new(settings(), Instant::now());
    let mut p = fixture::Plug::new(9, "evil\u{1b}[2J\u{7}alias", "HS110(EU)", "4.0", "1.0.4");
    p.emeter = false;
    update(&mut app, fixture::sighting(&p, "host"), Instant::now());
    let t = draw(&app, 120, 8);
    let buf = t.backend().buffer();
    assert!(find(buf, "alias").is_some());
    assert!(find(buf, "\u{1b}").is_none() && find(buf, "\u{7}").is_none());
    // The whole escape sequence goes, not only its ESC; bidi overrides too.
    assert_eq!(ui::clean("a\u{1b}[2Jb\u{7}\n", 64), "a�b��");
    assert_eq!(ui::clean("abc\u{202e}fed\u{2066}", 64), "abc�fed�");
    // Bounded in display cells, and a cut shows: the last cell is `…`.
    assert_eq!(
        ui::clean(&"x".repeat(500), 40),
        format!("{}…", "x".repeat(39))
    );
}

#[test]
fn wide_values_are_never_cut_and_keep_their_glyph() {
    let now = Instant::now();
    let mut app = App::new(settings(), now);
    let p = fixture::Plug::new(9, "welder", "HS110(US)", "1.0", "1.2.6");
    update(&mut app, fixture::sighting(&p, "host"), now);
    let r = fixture::reading(125_000_000.0, 120.0, 233.5279, 12.0);
    update(&mut app, fixture::polled(&p, Some(r), vec![]), now);
    let t = draw(&app, 140, 8);
    let buf = t.backend().buffer();
    // 125 MW does not fit the W column: a shorter honest form, with its unit and glyph.
    assert!(find(buf, "125 MW‼").is_some(), "power cell");
    // 233.5279 A in the 7-wide A column: two decimals, not the leading digit cut off.
    let (x, y) = find(buf, "233.53").expect("current cell");
    assert_ne!(buf[(x - 1, y)].symbol(), "…");
    assert!(find(buf, "33.528").is_none(), "no cut number");
}

#[test]
fn the_detail_pane_says_why_a_reply_was_bad() {
    use plugfleet::net::NetError;
    use plugfleet::net::poller::PollReport;
    use plugfleet::protocol::codec::FrameError;
    let now = Instant::now();
    let mut app = App::new(settings(), now);
    let p = fixture::Plug::new(9, "garage", "HS110(US)", "1.0", "1.2.6");
    update(&mut app, fixture::sighting(&p, "host"), now);
    let bad = NetError::Frame(FrameError::TooLarge {
        len: 2_147_483_648,
        max: 64 * 1024,
    });
    let report = PollReport {
        key: fixture::device_id(9),
        addr: fixture::addr(9),
        outcome: Err(bad),
        misses: 1,
        elapsed: Duration::from_millis(1),
    };
    update(&mut app, Event::Polled(Box::new(report)), now);
    press(&mut app, KeyCode::Enter, now);
    let t = draw(&app, 140, 70);
    let buf = t.backend().buffer();
    assert!(
        find(buf, "bad reply: length 2147483648 over the 64 KiB cap").is_some(),
        "{:?}",
        t.backend()
    );
}

mod firmware_screens {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{draw, fleet};
    use plugfleet::app::event::DirItem;
    use plugfleet::app::fixture;
    use plugfleet::app::state::{Batch, FirmwareConfirm, Overlay, Picker};
    use plugfleet::firmware::job::{JobSnapshot, Outcome, Stage};

    fn images() -> PathBuf {
        PathBuf::from("assets/firmware")
    }

    #[test]
    fn file_picker() {
        let (mut app, _) = fleet();
        app.view.overlay = Overlay::Picker(Picker {
            dir: images(),
            items: vec![
                DirItem {
                    name: "old".into(),
                    is_dir: true,
                    size: 0,
                },
                DirItem {
                    name: "hs110v1_us_1.2.3_Build_171016_Rel.100427.bin".into(),
                    is_dir: false,
                    size: 98_515,
                },
                DirItem {
                    name: "hs300v2_us_1.0.13_Build_230517_Rel.140855.bin".into(),
                    is_dir: false,
                    size: 164_053,
                },
            ],
            selected: 1,
            loading: false,
            error: None,
            targets: vec![fixture::device_id(2)],
        });
        insta::assert_snapshot!(draw(&app, 100, 16).backend());
    }

    #[test]
    fn firmware_plan_to_confirm() {
        let (mut app, _) = fleet();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/firmware");
        let imgs: Vec<_> = plugfleet::firmware::image::load_path(&dir)
            .unwrap()
            .into_iter()
            .map(Arc::new)
            .collect();
        let plugs: Vec<_> = [1, 2, 3]
            .iter()
            .map(|n| {
                (
                    fixture::ip(*n),
                    app.fleet.devices[&fixture::device_id(*n)]
                        .sysinfo
                        .clone()
                        .unwrap(),
                )
            })
            .collect();
        let entries = plugfleet::firmware::plan::plan(&plugs, &imgs);
        app.view.overlay = Overlay::FirmwareConfirm(FirmwareConfirm {
            source: images(),
            entries,
            force: false,
            downgrade_prompt: false,
        });
        insta::assert_snapshot!(draw(&app, 140, 22).backend());
    }

    #[test]
    fn progress_pane() {
        let (mut app, now) = fleet();
        let snap =
            |n: u32, stage: Stage, ratio: Option<u8>, outcome: Option<Outcome>| JobSnapshot {
                ip: fixture::ip(n),
                alias: format!("plug {n}"),
                model: "HS110(US)".into(),
                from: "1.1.1 Build 170417 Rel.165206".into(),
                to: "1.2.3".into(),
                stage,
                ratio,
                served_bytes: ratio.map(|r| u64::from(r) * 1000),
                image_len: 100_000,
                elapsed: Duration::from_secs(12),
                expected_remaining: Some(Duration::from_secs(80)),
                can_cancel: stage == Stage::Downloading,
                outcome,
                warnings: vec![],
            };
        let mut b = Batch {
            started: Some(now - Duration::from_secs(20)),
            ..Batch::default()
        };
        b.upsert(snap(1, Stage::Downloading, Some(40), None), now);
        b.upsert(snap(2, Stage::Flashing, Some(100), None), now);
        b.upsert(
            snap(
                3,
                Stage::Failed,
                Some(55),
                Some(Outcome::Failed {
                    stage: Stage::Downloading,
                    reason: "download stalled at 55 %".into(),
                }),
            ),
            now,
        );
        app.firmware = Some(b);
        app.view.progress = true;
        let _ = Instant::now();
        insta::assert_snapshot!(draw(&app, 140, 24).backend());
    }
}

fn log_lines() -> Vec<String> {
    (0..30)
        .map(|i| match i % 10 {
            3 => format!("15:0{}:{i:02}  WARN plugfleet::net::poller: 127.77.0.3: timeout after 2s", i / 10),
            7 => format!("15:0{}:{i:02} ERROR plugfleet::record: recording stopped: cannot write record file /tmp/r.jsonl: No space left on device", i / 10),
            _ => format!("15:0{}:{i:02}  INFO plugfleet::app::runtime: poll round {i}", i / 10),
        })
        .collect()
}

#[test]
fn log_pane_shows_the_newest_lines_and_scrolls() {
    let (mut app, now) = fleet();
    keys(&mut app, "L", now);
    update(&mut app, Event::LogLines(log_lines()), now);
    let t = draw(&app, 100, 20);
    insta::assert_snapshot!("log_pane", t.backend());
    let buf = t.backend().buffer();
    assert!(
        find(buf, "poll round 29").is_some(),
        "the newest line is shown"
    );
    // A warning and an error are drawn apart from info lines.
    let (_, y) = find(buf, "cannot write record file").expect("error line");
    let (x, _) = find(buf, "ERROR").expect("error level");
    assert_ne!(
        buf[(x, y)].fg,
        buf[(x, find(buf, "poll round 29").unwrap().1)].fg
    );
    keys(&mut app, "kkkkk", now);
    let t = draw(&app, 100, 20);
    assert!(find(t.backend().buffer(), "poll round 29").is_none());
    assert!(find(t.backend().buffer(), "poll round 24").is_some());
    assert!(find(t.backend().buffer(), "of 30").is_some());
}

#[test]
fn status_bar_shows_recording_and_the_metrics_url() {
    let mut s = settings();
    s.metrics_url = Some("http://127.0.0.1:9184/metrics".into());
    s.record = Some((
        "/tmp/r.jsonl".into(),
        plugfleet::record::RecordFormat::JsonLines,
    ));
    let (mut app, now) = mixed_fleet(s, Instant::now());
    update(&mut app, Event::Launched, now);
    app.recording.count = 42;
    let t = draw(&app, 140, 20);
    let buf = t.backend().buffer();
    assert!(find(buf, "REC /tmp/r.jsonl (42)").is_some());
    assert!(find(buf, "http://127.0.0.1:9184/metrics").is_some());
    update(
        &mut app,
        Event::Recording(plugfleet::record::RecordEvent::Failed {
            path: "/tmp/r.jsonl".into(),
            error: "disk full".into(),
            written: 42,
            dropped: 0,
        }),
        now,
    );
    let t = draw(&app, 140, 20);
    assert!(find(t.backend().buffer(), "REC stopped: disk full").is_some());
}

#[test]
fn an_unknown_value_is_not_drawn_with_the_suspect_glyph() {
    // Found by QA: the newer-protocol plug's unknown firmware version was drawn as `?`, the
    // glyph the legend reserves for a suspect value.
    let (app, _) = fleet();
    let t = draw(&app, 140, 20);
    let buf = t.backend().buffer();
    let (_, y) = find(buf, "◇ klap").expect("the newer-protocol row");
    let row: String = (0..buf.area.width)
        .map(|x| buf[(x, y)].symbol().to_owned())
        .collect();
    assert!(!row.contains('?'), "{row}");
}

#[test]
fn the_help_says_that_space_moves_down() {
    // Found by QA: space marks the row and moves to the next one (so space space marks two
    // rows), but the help said only "mark/unmark the selected row".
    let (mut app, now) = fleet();
    let before = app.view.selected.clone();
    keys(&mut app, " ", now);
    assert_ne!(app.view.selected, before, "space moves the selection");
    let mark = KEYMAP
        .iter()
        .find(|b| b.action == plugfleet::app::keymap::Action::Mark)
        .expect("a mark binding");
    assert!(mark.help.contains("move"), "{}", mark.help);
}

/// A real device reply from `tests/fixtures/`.
fn dump(name: &str) -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// A fleet of every family, fed from real replies the way the poller feeds it: a KL130 bulb
/// (10.8 W), a KL430 light strip (11.15 W), an HS220 dimmer (no meter), a KL130 claiming
/// 500 W, a bulb whose sysinfo lacks `light_state`, and a C210 camera known by its UDP 20002
/// reply alone.
fn families() -> (App, Instant) {
    use plugfleet::app::event::{SeenInfo, Sighting};
    use plugfleet::net::poller::{PollReport, Polled};
    use plugfleet::protocol::reply::LIGHT_EMETER;
    use plugfleet::protocol::{Realtime, SysInfo, tdp};
    let t0 = Instant::now();
    let mut app = App::new(settings(), t0);
    let mut add = |n: u8, root: &serde_json::Value, alias: &str, id: &str| {
        let mut sys = root["system"]["get_sysinfo"].clone();
        sys["alias"] = serde_json::json!(alias);
        sys["deviceId"] = serde_json::json!(id);
        sys["mic_mac"] = serde_json::json!(format!("1C3BF30000{n:02X}"));
        sys["mac"] = serde_json::json!(format!("50:C7:BF:00:00:{n:02X}"));
        let info = SysInfo::from_result(&sys).unwrap();
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 78, 0, n));
        update(
            &mut app,
            Event::DeviceDiscovered(Sighting {
                ip,
                port: 9999,
                found_by: "broadcast".into(),
                info: SeenInfo::Legacy(Box::new(info.clone())),
            }),
            t0,
        );
        // As the poller reads it: a light's meter module, and -1/-2001 there means no meter.
        let realtime = root
            .get(LIGHT_EMETER)
            .filter(|_| info.kind().is_light())
            .map(|_| Realtime::from_reply_in(root, LIGHT_EMETER))
            .filter(|r| !r.as_ref().is_err_and(|e| e.is_unsupported()))
            .map(|r| r.map_err(Into::into));
        update(
            &mut app,
            Event::Polled(Box::new(PollReport {
                key: id.into(),
                addr: std::net::SocketAddr::new(ip, 9999),
                outcome: Ok(Polled {
                    sysinfo: info,
                    realtime,
                    outlets: Vec::new(),
                }),
                misses: 0,
                elapsed: Duration::from_millis(3),
            })),
            t0 + Duration::from_millis(5),
        );
    };
    add(1, &dump("KL130(EU)_1.0_1.8.8.json"), "desk bulb", "B1");
    add(2, &dump("KL430(US)_2.0_1.0.9.json"), "shelf strip", "B2");
    add(3, &dump("HS220(US)_1.0_1.5.7.json"), "hall dimmer", "B3");
    let mut hot = dump("KL130(EU)_1.0_1.8.8.json");
    hot[LIGHT_EMETER]["get_realtime"]["power_mw"] = serde_json::json!(500_000);
    add(4, &hot, "hot bulb", "B4");
    let mut bare = dump("KL130(EU)_1.0_1.8.8.json");
    if let Some(o) = bare["system"]["get_sysinfo"].as_object_mut() {
        o.remove("light_state");
    }
    bare[LIGHT_EMETER] = serde_json::json!({"err_code": -2001, "err_msg": "Module not support"});
    add(5, &bare, "odd bulb", "B5");
    let cam = dump("discovery/C210(EU)_2.0_1.4.3.json");
    let body = serde_json::to_vec(&cam["discovery_result"]).unwrap();
    let t = tdp::decode_reply(&tdp::encode_packet(&body, 0, 1)).unwrap();
    update(
        &mut app,
        Event::DeviceDiscovered(Sighting {
            ip: "127.78.0.6".parse().unwrap(),
            port: 20002,
            found_by: "udp20002".into(),
            info: SeenInfo::Newer(Box::new(t)),
        }),
        t0,
    );
    (app, t0 + Duration::from_millis(10))
}

#[test]
fn every_device_family_shows_what_it_is() {
    let (mut app, now) = families();
    app.now = now;
    let t = draw(&app, 160, 16);
    let buf = t.backend().buffer();
    for needle in [
        "Type",
        "Bright",
        "bulb",
        "lightstrip",
        "dimmer",
        "camera",
        "25%",
        "10.8",
        "11.2",
        "500.0‼",
        "https",
        "C210",
        "1.4.3",
    ] {
        assert!(find(buf, needle).is_some(), "{needle} missing");
    }
    insta::assert_snapshot!(t.backend());
}

#[test]
fn detail_panes_of_a_bulb_and_a_camera() {
    let (mut app, now) = families();
    app.now = now;
    press(&mut app, KeyCode::Enter, now);
    let t = draw(&app, 120, 44);
    let buf = t.backend().buffer();
    assert!(find(buf, "on, 100%, 2700 K, normal").is_some());
    assert!(find(buf, "kind bulb").is_some());
    insta::assert_snapshot!("detail_pane_of_a_bulb", t.backend());
    press(&mut app, KeyCode::Enter, now);
    press(&mut app, KeyCode::End, now);
    press(&mut app, KeyCode::Enter, now);
    let t = draw(&app, 120, 40);
    let buf = t.backend().buffer();
    for needle in [
        "kind camera",
        "1.4.3 Build 241010",
        "SMART.IPCAMERA",
        "https",
    ] {
        assert!(find(buf, needle).is_some(), "{needle} missing");
    }
    insta::assert_snapshot!("detail_pane_of_a_camera", t.backend());
}
