#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Firmware in the TUI: the plan with every verdict (and the override), the progress pane mid
//! update and its summary, at 140 columns and at 80×24; cell styles where they carry meaning (a
//! blocked plug must look blocked, with and without colour); and the flow through `update`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugfleet::app::event::DirItem;
use plugfleet::app::fixture::{self, Plug, mixed_fleet};
use plugfleet::app::state::{App, Batch, FirmwareConfirm, Overlay, Settings};
use plugfleet::app::{Command, Event, update};
use plugfleet::firmware::header::ImageHeader;
use plugfleet::firmware::image::{self, ImageError, ImageInfo};
use plugfleet::firmware::job::{JobSnapshot, Outcome, Stage};
use plugfleet::firmware::plan::{self, PlanEntry};
use plugfleet::firmware::runner::{BatchReport, JobEvent, PlugReport, PlugResult};
use plugfleet::protocol::SysInfo;
use plugfleet::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};

fn settings(color: bool) -> Settings {
    Settings {
        color,
        ..Settings::default()
    }
}

fn draw(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::render(f, app)).unwrap();
    t
}

fn press(app: &mut App, code: KeyCode, now: Instant) -> Vec<Command> {
    update(
        app,
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE)),
        now,
    )
}

fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width)
            .map(|x| buf[(x, y)].symbol().to_string())
            .collect();
        if let Some(i) = line.find(needle) {
            return Some((line[..i].chars().count() as u16, y));
        }
    }
    None
}

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/firmware")
}

fn demo_image(name: &str) -> Arc<ImageInfo> {
    Arc::new(ImageInfo::load(&assets().join(name)).unwrap())
}

fn plug(
    n: u32,
    alias: &str,
    model: &'static str,
    hw: &'static str,
    sw: &'static str,
) -> (IpAddr, SysInfo) {
    (fixture::ip(n), Plug::new(n, alias, model, hw, sw).sysinfo())
}

/// A 256 KiB U-Boot uImage: content that passes the structure check, judged by its name.
fn uimage_bytes() -> Vec<u8> {
    use plugfleet::firmware::container::{UIMAGE_LEN, UIMAGE_MAGIC, uimage_header_crc};
    let total = 256 * 1024;
    let mut h = vec![0u8; UIMAGE_LEN];
    h[0..4].copy_from_slice(&UIMAGE_MAGIC.to_be_bytes());
    h[12..16].copy_from_slice(&((total - UIMAGE_LEN) as u32).to_be_bytes());
    let crc = uimage_header_crc(&h);
    h[4..8].copy_from_slice(&crc.to_be_bytes());
    h.resize(total, 0x5A);
    h
}

/// One plan entry per verdict: compatible, protocol change, downgrade, same version, unknown
/// target, wrong hardware, unrecognised content, size out of bounds, refused symlink.
fn every_verdict() -> Vec<PlanEntry> {
    let hs300_protocol_change = {
        let payload = vec![7u8; 4096];
        let bytes =
            ImageHeader::new("HS300", "2", "US", "1.1.2", "240101", "101010").build(&payload);
        Arc::new(ImageInfo::from_bytes(
            Path::new("hs300v2_us_1.1.2_Build_240101_Rel.101010.bin"),
            bytes,
        ))
    };
    let unknown = Arc::new(ImageInfo::from_bytes(
        Path::new("update.bin"),
        uimage_bytes(),
    ));
    let unrecognised = Arc::new(ImageInfo::from_bytes(
        Path::new("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin"),
        vec![b'x'; 256 * 1024],
    ));
    let text = Arc::new(ImageInfo::from_bytes(
        Path::new("hs110v1_us_9.9.9_Build_240101_Rel.000001.bin"),
        b"hello\n".to_vec(),
    ));
    let planted = Arc::new(ImageInfo::refused(
        Path::new("/home/me/kasa-firmware/hs110v1_eu_9.9.9_Build_240101_Rel.000001.bin"),
        &ImageError::Symlink {
            path: "/home/me/kasa-firmware/hs110v1_eu_9.9.9_Build_240101_Rel.000001.bin".into(),
            target: "/etc/passwd".into(),
            why: "outside the folder /home/me/kasa-firmware".into(),
        },
    ));
    let cases: Vec<((IpAddr, SysInfo), Arc<ImageInfo>)> = vec![
        (
            plug(
                1,
                "kitchen",
                "HS110(EU)",
                "4.0",
                "1.0.4 Build 191111 Rel.143500",
            ),
            demo_image("hs110v4_eu_1.0.5_Build_200826_Rel.090312.bin"),
        ),
        (
            plug(
                2,
                "rack strip",
                "HS300(US)",
                "2.0",
                "1.0.12 Build 220101 Rel.101010",
            ),
            hs300_protocol_change,
        ),
        (
            plug(
                3,
                "garage heater",
                "HS110(US)",
                "1.0",
                "1.2.6 Build 200630 Rel.101010",
            ),
            demo_image("hs110v1_us_1.2.3_Build_171016_Rel.100427.bin"),
        ),
        (
            plug(
                4,
                "living room fan",
                "HS100(US)",
                "2.0",
                "1.5.7 Build 200903 Rel.151120",
            ),
            demo_image("hs100v2_us_1.5.7_Build_200903_Rel.151120.bin"),
        ),
        (
            plug(
                5,
                "porch",
                "HS105(US)",
                "1.0",
                "1.5.6 Build 191125 Rel.083657",
            ),
            unknown,
        ),
        (
            plug(
                6,
                "office desk",
                "HS110(EU)",
                "1.0",
                "1.2.5 Build 171213 Rel.101523",
            ),
            demo_image("hs110v2_eu_1.5.8_Build_190705_Rel.100202.bin"),
        ),
        (
            plug(
                7,
                "shed",
                "HS110(US)",
                "1.0",
                "1.2.6 Build 200630 Rel.101010",
            ),
            unrecognised,
        ),
        (
            plug(
                8,
                "attic",
                "HS110(US)",
                "1.0",
                "1.2.6 Build 200630 Rel.101010",
            ),
            text,
        ),
        (
            plug(
                9,
                "hall",
                "HS110(EU)",
                "1.0",
                "1.2.5 Build 171213 Rel.101523",
            ),
            planted,
        ),
    ];
    cases
        .into_iter()
        .flat_map(|(p, img)| plan::plan(&[p], &[img]))
        .collect()
}

fn plan_dialog(color: bool, force: bool) -> App {
    let (mut app, _) = mixed_fleet(settings(color), Instant::now());
    app.view.overlay = Overlay::FirmwareConfirm(FirmwareConfirm {
        source: PathBuf::from("/home/me/kasa-firmware"),
        entries: every_verdict(),
        force,
        downgrade_prompt: false,
    });
    app
}

#[test]
fn the_plan_covers_every_verdict() {
    let labels: Vec<&str> = every_verdict()
        .iter()
        .map(|e| e.verdict().label())
        .collect();
    assert_eq!(
        labels,
        [
            "compatible",
            "protocol-change",
            "downgrade",
            "same-version",
            "unknown-target",
            "wrong-target",
            "unrecognised-content",
            "size-out-of-bounds",
            "refused"
        ]
    );
}

#[test]
fn plan_with_every_verdict() {
    insta::assert_snapshot!(draw(&plan_dialog(true, false), 150, 52).backend());
}

#[test]
fn plan_with_the_override_on() {
    insta::assert_snapshot!(draw(&plan_dialog(true, true), 150, 52).backend());
}

#[test]
fn plan_at_80x24() {
    insta::assert_snapshot!(draw(&plan_dialog(true, false), 80, 24).backend());
}

#[test]
fn a_blocked_plug_is_red_with_a_cross_and_still_marked_without_colour() {
    let t = draw(&plan_dialog(true, false), 140, 36);
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "✗ BLOCKED").expect("a blocked row");
    let cell = &buf[(x, y)];
    assert_eq!(cell.fg, Color::LightRed);
    assert!(cell.modifier.contains(Modifier::BOLD));
    // The reason is on the next line, in the same style.
    let (rx, ry) = find(buf, "blocked: ").expect("the reason");
    assert_eq!(ry, y + 1);
    assert_eq!(buf[(rx, ry)].fg, Color::LightRed);
    // A compatible row looks different.
    let (cx, cy) = find(buf, "✓ update").unwrap();
    assert_ne!(buf[(cx, cy)].fg, Color::LightRed);
    // Without colour the glyph and the word carry it, and it is still bold.
    let t = draw(&plan_dialog(false, false), 140, 36);
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "✗ BLOCKED").expect("a blocked row without colour");
    assert_eq!(buf[(x, y)].fg, Color::Reset);
    assert!(buf[(x, y)].modifier.contains(Modifier::BOLD));
}

fn snap(n: u32, stage: Stage, ratio: Option<u8>, outcome: Option<Outcome>) -> JobSnapshot {
    JobSnapshot {
        ip: fixture::ip(n),
        alias: format!("plug {n}"),
        model: "HS110(US)".into(),
        from: "1.2.6 Build 200630 Rel.101010".into(),
        to: "1.2.7".into(),
        stage,
        ratio,
        served_bytes: ratio.map(|r| u64::from(r) * 1065),
        image_len: 106_500,
        elapsed: Duration::from_secs(4),
        expected_remaining: Some(Duration::from_secs(9)),
        can_cancel: matches!(stage, Stage::Preflight | Stage::Downloading),
        outcome,
        warnings: vec![],
    }
}

fn mid_update(color: bool) -> (App, Instant) {
    let (mut app, now) = mixed_fleet(settings(color), Instant::now());
    let mut b = Batch {
        started: Some(now - Duration::from_secs(5)),
        ..Batch::default()
    };
    b.upsert(snap(1, Stage::Downloading, Some(40), None), now);
    // A plug reporting a ratio above 100 must not break the gauge.
    b.upsert(snap(2, Stage::Downloading, Some(250), None), now);
    b.upsert(snap(3, Stage::Flashing, Some(100), None), now);
    b.upsert(snap(4, Stage::Verifying, Some(100), None), now);
    b.upsert(snap(5, Stage::Preflight, None, None), now);
    app.firmware = Some(b);
    app.view.progress = true;
    (app, now)
}

#[test]
fn progress_mid_update() {
    let (app, _) = mid_update(true);
    insta::assert_snapshot!(draw(&app, 140, 30).backend());
}

#[test]
fn progress_mid_update_at_80x24() {
    let (app, _) = mid_update(true);
    insta::assert_snapshot!(draw(&app, 80, 24).backend());
}

fn report(n: u32, result: PlugResult, error: Option<&str>) -> PlugReport {
    PlugReport {
        ip: fixture::ip(n),
        alias: format!("plug {n}"),
        model: "HS110(US)".into(),
        mac: String::new(),
        result,
        from: "1.2.6".into(),
        to: "1.2.7".into(),
        now: (result == PlugResult::Updated).then(|| "1.2.7 Build 210310 Rel.113052".into()),
        stage: None,
        error: error.map(str::to_owned),
        warnings: vec![],
        image: None,
        served: Default::default(),
        elapsed: Duration::from_secs(9),
    }
}

#[test]
fn summary_after_the_batch() {
    let (mut app, now) = mid_update(true);
    for (n, stage, outcome) in [
        (1, Stage::Done, Some(Outcome::Updated)),
        (
            2,
            Stage::Failed,
            Some(Outcome::Failed {
                stage: Stage::Verifying,
                reason: "came back with the old version 1.2.6".into(),
            }),
        ),
        (3, Stage::Done, Some(Outcome::Updated)),
        (
            4,
            Stage::Cancelled,
            Some(Outcome::Cancelled {
                stage: Stage::Downloading,
            }),
        ),
        (5, Stage::Done, Some(Outcome::Updated)),
    ] {
        update(
            &mut app,
            Event::Job(Box::new(JobEvent::Transition {
                from: Stage::Verifying,
                note: None,
                snapshot: snap(n, stage, Some(100), outcome),
            })),
            now,
        );
    }
    let cmds = update(
        &mut app,
        Event::Job(Box::new(JobEvent::BatchFinished {
            report: BatchReport {
                plugs: vec![
                    report(1, PlugResult::Updated, None),
                    report(
                        2,
                        PlugResult::Failed,
                        Some("came back with the old version"),
                    ),
                    report(3, PlugResult::Updated, None),
                    report(4, PlugResult::Cancelled, None),
                    report(5, PlugResult::Updated, None),
                ],
                elapsed: Duration::from_secs(14),
            },
        })),
        now,
    );
    // The table reads the plugs again at once to show their new versions.
    let [Command::PollNow(keys)] = &cmds[..] else {
        panic!("expected a poll of the updated plugs: {cmds:?}")
    };
    assert_eq!(keys.len(), 5);
    insta::assert_snapshot!(draw(&app, 140, 30).backend());
}

#[test]
fn the_override_is_explicit_and_never_covers_blocked_plugs() {
    let mut app = plan_dialog(true, false);
    let now = Instant::now();
    let Overlay::FirmwareConfirm(c) = &app.view.overlay else {
        unreachable!()
    };
    // compatible, protocol change (the downgrade waits for its own consent)
    assert_eq!(c.updating(), 2);
    assert!(press(&mut app, KeyCode::Char('F'), now).is_empty());
    let Overlay::FirmwareConfirm(c) = &app.view.overlay else {
        panic!("the dialog stays open")
    };
    assert!(c.force);
    // + same version + unknown target + unrecognised content; the wrong-hardware, too-small and
    // refused plugs stay out, and so does the downgrade.
    assert_eq!(c.updating(), 5);
    assert!(
        c.entries
            .iter()
            .any(|e| e.assessment.downgrade && !e.will_update(true))
    );
    assert!(app.status().unwrap().contains("OVERRIDE ON"));
    // Enter never confirms.
    assert!(press(&mut app, KeyCode::Enter, now).is_empty());
    let cmds = press(&mut app, KeyCode::Char('y'), now);
    let [Command::StartUpdate(plan)] = &cmds[..] else {
        panic!("y starts the update: {cmds:?}")
    };
    assert!(plan.force);
    let blocked = plan
        .entries
        .iter()
        .find(|e| e.verdict().is_blocked())
        .unwrap();
    assert!(!blocked.will_update(plan.force));
}

#[test]
fn a_downgrade_needs_a_second_distinct_confirmation() {
    let mut app = plan_dialog(true, false);
    let now = Instant::now();
    let confirm = |app: &App| match &app.view.overlay {
        Overlay::FirmwareConfirm(c) => c.clone(),
        other => panic!("the plan dialog is gone: {other:?}"),
    };
    let c = confirm(&app);
    let heater = |c: &FirmwareConfirm| {
        c.entries
            .iter()
            .find(|e| e.plug.alias == "garage heater")
            .unwrap()
            .clone()
    };
    assert!(!heater(&c).will_update(false) && heater(&c).awaits_downgrade_consent(false));
    assert_eq!(c.updating(), 2);
    // The override does not cover it.
    press(&mut app, KeyCode::Char('F'), now);
    assert!(!heater(&confirm(&app)).will_update(true));
    press(&mut app, KeyCode::Char('F'), now);

    // First D: the question, naming the downgrade; nothing allowed yet.
    assert!(press(&mut app, KeyCode::Char('D'), now).is_empty());
    let c = confirm(&app);
    assert!(c.downgrade_prompt && !c.downgrade_allowed());
    assert_eq!(c.updating(), 2);
    let status = app.status().unwrap().to_owned();
    assert!(status.contains("DOWNGRADE 1 plug(s)"), "{status}");
    assert!(
        status.contains("garage heater") && status.contains("1.2.6 → 1.2.3"),
        "{status}"
    );
    insta::assert_snapshot!(
        "plan_asking_about_the_downgrade",
        draw(&app, 150, 52).backend()
    );
    // y does not answer the question.
    assert!(press(&mut app, KeyCode::Char('y'), now).is_empty());
    assert!(confirm(&app).downgrade_prompt);
    assert!(
        app.status()
            .unwrap()
            .contains("answer the downgrade question first")
    );

    // Second D: allowed.
    assert!(press(&mut app, KeyCode::Char('D'), now).is_empty());
    let c = confirm(&app);
    assert!(!c.downgrade_prompt && c.downgrade_allowed());
    assert_eq!(c.updating(), 3);
    assert!(app.status().unwrap().contains("DOWNGRADE ALLOWED"));
    let t = draw(&app, 150, 52);
    assert!(find(t.backend().buffer(), "[DOWNGRADE ALLOWED]").is_some());
    assert!(find(t.backend().buffer(), "DOWNGRADE ALLOWED: 1.2.6 → 1.2.3").is_some());

    // D again takes it back; two more give it again; y starts with the consent recorded.
    press(&mut app, KeyCode::Char('D'), now);
    assert!(!confirm(&app).downgrade_allowed());
    press(&mut app, KeyCode::Char('D'), now);
    press(&mut app, KeyCode::Char('D'), now);
    let cmds = press(&mut app, KeyCode::Char('y'), now);
    let [Command::StartUpdate(plan)] = &cmds[..] else {
        panic!("y starts the update: {cmds:?}")
    };
    let h = heater(plan);
    assert!(h.allow_downgrade && h.will_update(plan.force));
    assert!(
        plan.entries
            .iter()
            .all(|e| !e.verdict().is_blocked() || !e.will_update(true))
    );
}

#[test]
fn without_a_downgrade_d_says_so() {
    let (mut app, now) = mixed_fleet(settings(true), Instant::now());
    let entries = plan::plan(
        &[plug(
            1,
            "kitchen",
            "HS110(EU)",
            "4.0",
            "1.0.4 Build 191111 Rel.143500",
        )],
        &[demo_image("hs110v4_eu_1.0.5_Build_200826_Rel.090312.bin")],
    );
    app.view.overlay = Overlay::FirmwareConfirm(FirmwareConfirm::new(assets(), entries));
    press(&mut app, KeyCode::Char('D'), now);
    let Overlay::FirmwareConfirm(c) = &app.view.overlay else {
        unreachable!()
    };
    assert!(!c.downgrade_prompt && !c.downgrade_allowed());
    assert!(app.status().unwrap().contains("would be downgraded"));
}

#[test]
fn the_override_is_refused_when_no_plug_needs_it() {
    let (mut app, now) = mixed_fleet(settings(true), Instant::now());
    let entries = plan::plan(
        &[plug(
            1,
            "kitchen",
            "HS110(EU)",
            "4.0",
            "1.0.4 Build 191111 Rel.143500",
        )],
        &[demo_image("hs110v4_eu_1.0.5_Build_200826_Rel.090312.bin")],
    );
    app.view.overlay = Overlay::FirmwareConfirm(FirmwareConfirm {
        source: assets(),
        entries,
        force: false,
        downgrade_prompt: false,
    });
    press(&mut app, KeyCode::Char('F'), now);
    let Overlay::FirmwareConfirm(c) = &app.view.overlay else {
        unreachable!()
    };
    assert!(!c.force);
    assert!(app.status().unwrap().contains("no plug needs the override"));
}

#[test]
fn the_picker_remembers_the_last_folder_for_the_session() {
    let dir = assets();
    let (mut app, now) = mixed_fleet(
        Settings {
            firmware_dir: dir.parent().unwrap().to_path_buf(),
            ..Settings::default()
        },
        Instant::now(),
    );
    press(&mut app, KeyCode::Char('j'), now);
    let cmds = press(&mut app, KeyCode::Char('U'), now);
    assert_eq!(
        cmds,
        vec![Command::ListDir(dir.parent().unwrap().to_path_buf())]
    );
    update(
        &mut app,
        Event::DirListed {
            dir: dir.parent().unwrap().to_path_buf(),
            result: Ok(vec![DirItem {
                name: "firmware".into(),
                is_dir: true,
                size: 0,
            }]),
        },
        now,
    );
    assert_eq!(
        press(&mut app, KeyCode::Enter, now),
        vec![Command::ListDir(dir.clone())]
    );
    update(
        &mut app,
        Event::DirListed {
            dir: dir.clone(),
            result: Err(format!("cannot read {}: permission denied", dir.display())),
        },
        now,
    );
    // The error is shown in the picker, which stays open.
    let Overlay::Picker(p) = &app.view.overlay else {
        panic!("the picker stays open")
    };
    assert!(p.error.as_deref().unwrap().contains("permission denied"));
    // The listing of the previous folder is gone: Enter cannot open a name from it here.
    assert!(p.items.is_empty());
    assert!(press(&mut app, KeyCode::Enter, now).is_empty());
    let cmds = press(&mut app, KeyCode::Char('.'), now);
    assert!(matches!(&cmds[..], [Command::PlanFirmware { path, .. }] if *path == dir));
    // Cancel, and open the picker again: it starts in the folder chosen last.
    press(&mut app, KeyCode::Esc, now);
    assert_eq!(
        press(&mut app, KeyCode::Char('U'), now),
        vec![Command::ListDir(dir)]
    );
}

#[test]
fn cancelling_says_who_goes_on_and_why() {
    let (mut app, now) = mid_update(true);
    let cmds = press(&mut app, KeyCode::Char('x'), now);
    assert_eq!(cmds, vec![Command::CancelUpdate]);
    let msg = app.status().unwrap().to_owned();
    // Plugs 3 (flashing) and 4 (verifying) are past the flash request.
    assert!(msg.contains("2 plug(s) already past the flash"), "{msg}");
    assert!(msg.contains("unbootable"), "{msg}");
    update(
        &mut app,
        Event::Job(Box::new(JobEvent::CancelRefused {
            ip: fixture::ip(3),
            reason: "the flash was already requested".into(),
        })),
        now,
    );
    assert!(app.status().unwrap().contains("not cancelled"));
}

#[test]
fn the_demo_images_load_and_plan_like_the_committed_ones() {
    let images = plugfleet::app::firmware::DemoImages::write().unwrap();
    let loaded: Vec<Arc<ImageInfo>> = image::load_path(&images.dir())
        .unwrap()
        .into_iter()
        .map(Arc::new)
        .collect();
    let entries = plan::plan(
        &[plug(
            2,
            "garage heater",
            "HS110(US)",
            "1.0",
            "1.2.6 Build 200630 Rel.101010",
        )],
        &loaded,
    );
    assert_eq!(entries[0].verdict().label(), "compatible");
    assert_eq!(entries[0].versions().1, "1.2.7");
}

#[test]
fn a_long_batch_on_a_short_terminal_keeps_the_running_plugs_in_view() {
    let (mut app, now) = mixed_fleet(settings(true), Instant::now());
    let mut b = Batch {
        started: Some(now - Duration::from_secs(30)),
        ..Batch::default()
    };
    for n in 1..=8 {
        b.upsert(snap(n, Stage::Done, Some(100), Some(Outcome::Updated)), now);
    }
    b.upsert(snap(9, Stage::Rebooting, Some(100), None), now);
    b.upsert(snap(10, Stage::Downloading, Some(70), None), now);
    b.upsert(
        snap(
            11,
            Stage::Failed,
            Some(0),
            Some(Outcome::Failed {
                stage: Stage::Preflight,
                reason: "the plug did not answer".into(),
            }),
        ),
        now,
    );
    app.firmware = Some(b);
    app.view.progress = true;
    let t = draw(&app, 80, 24);
    let buf = t.backend().buffer();
    for needle in ["plug 9", "plug 10", "plug 11", "more"] {
        assert!(find(buf, needle).is_some(), "{needle} on screen");
    }
    insta::assert_snapshot!(t.backend());
}

#[test]
fn cancel_messages_and_affected_devices() {
    let (app, _) = mid_update(true);
    let b = app.firmware.as_ref().unwrap();
    assert!(plugfleet::app::firmware::cancel_message(b).contains("2 plug(s)"));
    let fresh = Batch {
        rows: vec![(snap(1, Stage::Downloading, Some(3), None), Instant::now())],
        ..Batch::default()
    };
    assert!(plugfleet::app::firmware::cancel_message(&fresh).contains("every update stops"));
    let r = BatchReport {
        plugs: vec![
            report(1, PlugResult::Updated, None),
            report(99, PlugResult::Failed, None),
        ],
        elapsed: Duration::ZERO,
    };
    assert_eq!(
        plugfleet::app::firmware::devices_in(&app, &r),
        vec![fixture::device_id(1)]
    );
}
