//! Unit tests of the update function: keys, fleet events, firmware, names, recording.

mod keys_and_fleet {
    use std::time::Duration;

    use super::super::*;
    #[allow(unused_imports)]
    use crate::app::event::{ActionKind, Sighting};
    use crate::app::fixture::{self, Plug, device_id, mixed_fleet};
    use crate::app::state::{Column, Health, OFFLINE_AFTER, Settings};
    #[allow(unused_imports)]
    use crate::app::state::{Confirm, Picker};
    use ratatui::crossterm::event::KeyEventState;

    fn key(app: &mut App, code: KeyCode, now: Instant) -> Vec<Command> {
        update(
            app,
            Event::Key(KeyEvent::new(code, KeyModifiers::NONE)),
            now,
        )
    }

    fn chars(app: &mut App, s: &str, now: Instant) -> Vec<Command> {
        s.chars()
            .flat_map(|c| key(app, KeyCode::Char(c), now))
            .collect()
    }

    fn fleet() -> (App, Instant) {
        mixed_fleet(Settings::default(), Instant::now())
    }

    fn visible_aliases(app: &App) -> Vec<String> {
        app.rows().iter().map(|r| r.alias().to_owned()).collect()
    }

    #[test]
    fn only_key_presses_act() {
        let (mut app, now) = fleet();
        let release = KeyEvent {
            code: KeyCode::Char('q'),
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Release,
            state: KeyEventState::NONE,
        };
        assert!(update(&mut app, Event::Key(release), now).is_empty());
        assert!(!app.quit);
        assert_eq!(key(&mut app, KeyCode::Char('q'), now), vec![Command::Quit]);
        assert!(app.quit);
    }

    #[test]
    fn a_sighting_tracks_the_device_and_identity_follows_the_device_id() {
        let now = Instant::now();
        let mut app = App::new(Settings::default(), now);
        let p = Plug::new(1, "a", "HS110(EU)", "4.0", "1.0.4");
        let cmds = update(&mut app, fixture::sighting(&p, "broadcast"), now);
        assert_eq!(
            cmds,
            vec![Command::Track {
                key: device_id(1),
                addr: fixture::addr(1)
            }]
        );
        // Seen again by a sweep at the same address: no new tracking, provenance added.
        assert!(update(&mut app, fixture::sighting(&p, "sweep"), now).is_empty());
        // Seen at a new address: same device, tracked at the new address.
        let Event::DeviceDiscovered(mut s) = fixture::sighting(&p, "host") else {
            unreachable!()
        };
        s.ip = fixture::ip(42);
        let cmds = update(&mut app, Event::DeviceDiscovered(s), now);
        assert_eq!(app.fleet.devices.len(), 1);
        let d = &app.fleet.devices[&device_id(1)];
        assert_eq!(d.previous_addr, Some(fixture::addr(1)));
        assert_eq!(d.found_by.len(), 3);
        assert!(matches!(&cmds[..], [Command::Track { addr, .. }] if *addr == fixture::addr(42)));
    }

    #[test]
    fn a_newer_protocol_sighting_merges_into_the_legacy_device_with_that_mac() {
        let now = Instant::now();
        let mut app = App::new(Settings::default(), now);
        update(&mut app, fixture::newer(3, "HS103(US)"), now);
        assert_eq!(
            app.fleet.devices.values().next().unwrap().health(),
            Health::Newer
        );
        let p = Plug::new(3, "both", "HS103(US)", "5.0", "1.1.3");
        update(&mut app, fixture::sighting(&p, "broadcast"), now);
        assert_eq!(app.fleet.devices.len(), 1);
        let d = &app.fleet.devices[&device_id(3)];
        assert!(d.tdp.is_some() && d.sysinfo.is_some());
        assert!(d.found_by.contains("udp20002") && d.found_by.contains("broadcast"));
        // And the other way round: a later TDP reply does not add a second row.
        update(&mut app, fixture::newer(3, "HS103(US)"), now);
        assert_eq!(app.fleet.devices.len(), 1);
    }

    #[test]
    fn misses_make_a_device_failing_then_offline_and_a_reply_brings_it_back() {
        let now = Instant::now();
        let mut app = App::new(Settings::default(), now);
        let p = Plug::new(1, "a", "HS110(EU)", "4.0", "1.0.4");
        update(&mut app, fixture::sighting(&p, "host"), now);
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Pending);
        update(&mut app, fixture::failed(&p, 1), now);
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Failing);
        update(&mut app, fixture::failed(&p, OFFLINE_AFTER), now);
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Offline);
        let r = fixture::reading(10.0, 230.0, 0.1, 1.0);
        update(&mut app, fixture::polled(&p, Some(r), vec![]), now);
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Ok);
    }

    #[test]
    fn readings_are_assessed_and_flag_counts_kept() {
        let (app, _) = fleet();
        let heater = &app.fleet.devices[&device_id(2)];
        assert_eq!(heater.health(), Health::Bogus);
        assert_eq!(heater.flagged(), 2);
        let desk = &app.fleet.devices[&device_id(3)];
        assert!(desk.meter.as_ref().unwrap().check.reasons[0].contains("unit-scale"));
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Ok);
        assert_eq!(app.summary().flagged, 3);
    }

    #[test]
    fn filter_narrows_and_escape_clears() {
        let (mut app, now) = fleet();
        chars(&mut app, "/hs110", now);
        assert!(app.view.editing_filter);
        key(&mut app, KeyCode::Enter, now);
        assert_eq!(
            visible_aliases(&app),
            ["kitchen", "garage heater", "office desk"]
        );
        // Typing q in the table now quits, not filters.
        key(&mut app, KeyCode::Esc, now);
        assert_eq!(app.rows().len(), 7);
        chars(&mut app, "/nas", now);
        key(&mut app, KeyCode::Enter, now);
        // An outlet match shows its strip, expanded or not.
        assert_eq!(visible_aliases(&app), ["rack strip"]);
    }

    #[test]
    fn flagged_only_and_marks() {
        let (mut app, now) = fleet();
        chars(&mut app, "f", now);
        assert_eq!(
            visible_aliases(&app),
            ["garage heater", "office desk", "rack strip"]
        );
        chars(&mut app, "a", now);
        assert_eq!(app.view.marked.len(), 3);
        chars(&mut app, "a", now);
        assert!(app.view.marked.is_empty());
        chars(&mut app, "f", now);
        chars(&mut app, " ", now);
        chars(&mut app, " ", now);
        assert_eq!(app.view.marked.len(), 2, "space marks and moves down");
        chars(&mut app, "u", now);
        assert!(app.view.marked.is_empty());
    }

    #[test]
    fn sorting_by_power_descending_puts_the_glitch_first() {
        let (mut app, now) = fleet();
        while app.view.sort != Column::Watts {
            chars(&mut app, "s", now);
        }
        chars(&mut app, "o", now);
        assert_eq!(visible_aliases(&app)[..2], ["office desk", "garage heater"]);
        chars(&mut app, "S", now);
        assert_eq!(app.view.sort, Column::Relay);
    }

    #[test]
    fn a_sort_key_sorts_by_its_column_and_a_second_press_reverses() {
        let (mut app, now) = fleet();
        chars(&mut app, "P", now);
        assert_eq!((app.view.sort, app.view.descending), (Column::Watts, false));
        let ascending = visible_aliases(&app);
        chars(&mut app, "P", now);
        assert_eq!((app.view.sort, app.view.descending), (Column::Watts, true));
        assert_eq!(visible_aliases(&app)[..2], ["office desk", "garage heater"]);
        assert_ne!(visible_aliases(&app), ascending);
        assert!(
            app.status()
                .is_some_and(|s| s.contains("power (descending)"))
        );
        // Another column starts ascending again.
        chars(&mut app, "A", now);
        assert_eq!((app.view.sort, app.view.descending), (Column::Alias, false));
        let aliases = visible_aliases(&app);
        let mut sorted = aliases.clone();
        sorted.sort_by_key(|a| a.to_lowercase());
        assert_eq!(aliases, sorted);
        for (k, col) in [
            ("H", Column::Health),
            ("I", Column::Ip),
            ("M", Column::Model),
            ("V", Column::Sw),
            ("E", Column::Kwh),
        ] {
            chars(&mut app, k, now);
            assert_eq!(app.view.sort, col, "{k}");
        }
    }

    #[test]
    fn strips_expand_and_collapse() {
        let (mut app, now) = fleet();
        chars(&mut app, "jjjj", now);
        assert_eq!(app.selected().unwrap().alias(), "rack strip");
        key(&mut app, KeyCode::Right, now);
        assert_eq!(app.rows().len(), 10);
        chars(&mut app, "jj", now);
        assert_eq!(app.selected().unwrap().alias(), "nas");
        key(&mut app, KeyCode::Left, now);
        assert_eq!(app.rows().len(), 7);
        assert_eq!(app.selected().unwrap().alias(), "rack strip");
    }

    #[test]
    fn one_plug_off_asks_like_a_batch_several_ask_and_enter_never_confirms() {
        let (mut app, now) = fleet();
        // The kitchen plug is on: switching it off asks, `y` only.
        assert!(chars(&mut app, "t", now).is_empty());
        let Overlay::Confirm(c) = &app.view.overlay else {
            panic!("switching one plug off did not ask")
        };
        assert_eq!(c.kind, ActionKind::RelayOff);
        assert!(key(&mut app, KeyCode::Enter, now).is_empty());
        let cmds = chars(&mut app, "y", now);
        assert!(matches!(
            &cmds[..],
            [Command::Act {
                kind: ActionKind::RelayOff,
                child: None,
                ..
            }]
        ));
        chars(&mut app, "  ", now);
        assert!(chars(&mut app, "t", now).is_empty());
        assert!(matches!(app.view.overlay, Overlay::Confirm(_)));
        assert!(key(&mut app, KeyCode::Enter, now).is_empty());
        assert!(matches!(app.view.overlay, Overlay::Confirm(_)));
        let cmds = chars(&mut app, "y", now);
        assert_eq!(cmds.len(), 2);
        assert_eq!(app.view.overlay, Overlay::None);
        // Cancelling sends nothing.
        chars(&mut app, "t", now);
        assert!(chars(&mut app, "n", now).is_empty());
        assert_eq!(app.view.overlay, Overlay::None);
    }

    #[test]
    fn one_plug_on_acts_at_once_and_a_batch_leaves_out_the_rows_that_would_not_change() {
        let (mut app, now) = fleet();
        // Row 4, the hall lamp, is off: switching it on needs no question.
        chars(&mut app, "jjj", now);
        assert_eq!(app.selected().unwrap().alias(), "hall lamp");
        let cmds = chars(&mut app, "t", now);
        assert!(matches!(
            &cmds[..],
            [Command::Act {
                kind: ActionKind::RelayOn,
                ..
            }]
        ));
        // Kitchen (on) and hall lamp (off) marked: "on" changes only the lamp.
        chars(&mut app, "g ", now);
        chars(&mut app, "jj ", now);
        assert_eq!(app.view.marked.len(), 2);
        assert!(chars(&mut app, "t", now).is_empty());
        let Overlay::Confirm(c) = &app.view.overlay else {
            panic!("no dialog")
        };
        assert_eq!(c.kind, ActionKind::RelayOn);
        assert_eq!(c.rows.len(), 1);
        assert!(c.lines[0].contains("hall lamp") && c.lines[0].contains("off → on"));
        assert!(!c.lines.iter().any(|l| l.contains("on → on")));
        assert!(c.lines.iter().any(|l| l.contains("1 already on")));
        let cmds = chars(&mut app, "y", now);
        assert_eq!(cmds.len(), 1);
    }

    #[test]
    fn a_strip_outlet_is_toggled_with_its_child_id() {
        let (mut app, now) = fleet();
        chars(&mut app, "jjjj", now);
        key(&mut app, KeyCode::Right, now);
        chars(&mut app, "j", now);
        assert!(chars(&mut app, "t", now).is_empty(), "switching off asks");
        let cmds = chars(&mut app, "y", now);
        let want = format!("{}00", device_id(5));
        assert!(
            matches!(&cmds[..], [Command::Act { child: Some(c), kind: ActionKind::RelayOff, .. }] if *c == want)
        );
    }

    #[test]
    fn reboot_always_asks() {
        let (mut app, now) = fleet();
        assert!(chars(&mut app, "R", now).is_empty());
        let Overlay::Confirm(c) = &app.view.overlay else {
            panic!("no dialog")
        };
        assert_eq!(c.kind, ActionKind::Reboot);
        let cmds = chars(&mut app, "y", now);
        assert!(matches!(
            &cmds[..],
            [Command::Act {
                kind: ActionKind::Reboot,
                ..
            }]
        ));
    }

    #[test]
    fn a_dialog_title_counts_rows_by_what_they_are() {
        let (app, _) = mixed_fleet(Settings::default(), Instant::now());
        let strip = app
            .fleet
            .by_address()
            .into_iter()
            .find(|d| d.is_strip())
            .expect("the mixed fleet has a strip");
        let outlets: Vec<RowId> = strip
            .outlets
            .iter()
            .map(|o| RowId {
                key: strip.key.clone(),
                child: Some(o.id.clone()),
            })
            .collect();
        let rows = |ids: &[RowId]| -> Vec<crate::app::rows::RowRef<'_>> {
            ids.iter().filter_map(|id| app.row(id)).collect()
        };
        let one = [RowId::device(&device_id(1))];
        assert_eq!(super::super::actions::counted(&rows(&one)), "1 plug");
        assert_eq!(super::super::actions::counted(&rows(&outlets)), "3 outlets");
        let mut mixed = vec![RowId::device(&device_id(1)), RowId::device(&device_id(2))];
        mixed.push(outlets[0].clone());
        mixed.push(RowId::device(&strip.key));
        assert_eq!(
            super::super::actions::counted(&rows(&mixed)),
            "2 plugs, 1 outlet and 1 strip"
        );
        assert_eq!(super::super::actions::counted(&[]), "0 devices");
    }

    #[test]
    fn read_only_sends_no_write_and_says_so() {
        let settings = Settings {
            read_only: true,
            ..Settings::default()
        };
        let (mut app, now) = mixed_fleet(settings, Instant::now());
        assert!(chars(&mut app, "t", now).is_empty());
        assert!(app.status().unwrap().contains("read-only"));
        assert!(chars(&mut app, "R", now).is_empty());
        assert_eq!(app.view.overlay, Overlay::None);
        // Even a dialog opened some other way cannot produce a write.
        app.view.overlay = Overlay::Confirm(Confirm {
            kind: ActionKind::Reboot,
            rows: vec![RowId::device(&device_id(1))],
            what: "1 plug".into(),
            lines: vec![],
        });
        assert!(chars(&mut app, "y", now).is_empty());
        // Refresh is a read: allowed.
        assert_eq!(chars(&mut app, "r", now), vec![Command::PollNow(vec![])]);
    }

    #[test]
    fn an_action_result_is_reported_and_a_success_polls_again() {
        let (mut app, now) = fleet();
        let later = now + Duration::from_secs(1);
        let cmds = update(
            &mut app,
            Event::ActionFinished {
                key: device_id(1),
                child: None,
                kind: ActionKind::RelayOff,
                result: Ok(()),
            },
            later,
        );
        assert_eq!(cmds, vec![Command::PollNow(vec![device_id(1)])]);
        assert!(app.status().unwrap().contains("kitchen"));
        update(
            &mut app,
            Event::ActionFinished {
                key: device_id(1),
                child: None,
                kind: ActionKind::Reboot,
                result: Err("timed out".into()),
            },
            later,
        );
        assert!(app.status().unwrap().contains("failed: timed out"));
        // Status messages expire.
        update(&mut app, Event::Tick, later + Duration::from_secs(60));
        assert!(app.status().is_none());
    }

    #[test]
    fn navigation_stays_in_bounds_and_the_selection_survives_a_filter() {
        let (mut app, now) = fleet();
        key(&mut app, KeyCode::End, now);
        key(&mut app, KeyCode::Down, now);
        assert_eq!(app.selected_index(&app.rows()), Some(6));
        key(&mut app, KeyCode::Home, now);
        key(&mut app, KeyCode::Up, now);
        assert_eq!(app.selected_index(&app.rows()), Some(0));
        chars(&mut app, "/desk", now);
        assert_eq!(app.selected().unwrap().alias(), "office desk");
        key(&mut app, KeyCode::Enter, now);
        key(&mut app, KeyCode::Enter, now);
        assert!(app.view.detail);
        key(&mut app, KeyCode::Esc, now);
        assert!(!app.view.detail);
    }

    #[test]
    fn another_device_at_a_tracked_address_is_not_mistaken_for_it() {
        let now = Instant::now();
        let mut app = App::new(Settings::default(), now);
        let a = Plug::new(1, "a", "HS110(EU)", "4.0", "1.0.4");
        update(&mut app, fixture::sighting(&a, "host"), now);
        let mut b = Plug::new(2, "b", "HS110(EU)", "4.0", "1.0.4");
        b.n = 2;
        let Event::Polled(mut rep) = fixture::polled(&b, None, vec![]) else {
            unreachable!()
        };
        rep.key = device_id(1);
        rep.addr = fixture::addr(1);
        let cmds = update(&mut app, Event::Polled(rep), now);
        assert_eq!(app.fleet.devices.len(), 2);
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Offline);
        assert!(matches!(&cmds[..], [Command::Track { key, .. }] if *key == device_id(2)));
    }

    #[test]
    fn the_account_prompt_takes_a_user_then_a_password_and_retracks_the_newer_plugs() {
        let (mut app, now) = fleet();
        update(&mut app, fixture::newer(30, "KP125M(US)"), now);
        let newer: Vec<String> = app
            .fleet
            .devices
            .values()
            .filter(|d| d.access.is_some())
            .map(|d| d.key.clone())
            .collect();
        assert!(newer.len() >= 2, "{newer:?}");
        assert!(app.settings.account.is_none());
        // `c` opens the prompt; letters are typed into it, not taken as keys ('q' does not quit).
        assert!(key(&mut app, KeyCode::Char('c'), now).is_empty());
        assert!(chars(&mut app, "me@example.org q", now).is_empty());
        assert!(!app.quit);
        key(&mut app, KeyCode::Backspace, now);
        key(&mut app, KeyCode::Backspace, now);
        let Overlay::Account(p) = &app.view.overlay else {
            panic!("no prompt: {:?}", app.view.overlay)
        };
        assert_eq!(p.username, "me@example.org");
        // Enter moves on to the password, which is typed blind.
        assert!(key(&mut app, KeyCode::Enter, now).is_empty());
        chars(&mut app, "s3cret!", now);
        let Overlay::Account(p) = &app.view.overlay else {
            panic!("prompt closed early")
        };
        assert_eq!(p.password_len(), 7);
        assert!(!format!("{p:?}").contains("s3cret"));
        assert!(app.settings.account.is_none());
        // Enter on the password: the account is taken and every newer plug tracked with it.
        let cmds = key(&mut app, KeyCode::Enter, now);
        assert_eq!(app.view.overlay, Overlay::None);
        let account = crate::net::klap::Credentials::new("me@example.org", "s3cret!");
        assert_eq!(app.settings.account.as_ref(), Some(&account));
        let mut tracked: Vec<String> = cmds
            .iter()
            .map(|c| match c {
                Command::TrackNewer { key, addr, spec } => {
                    assert_eq!(spec.account.as_ref(), Some(&account));
                    assert_eq!(*addr, app.fleet.devices[key].addr);
                    key.clone()
                }
                other => panic!("not a newer track: {other:?}"),
            })
            .collect();
        tracked.sort();
        let mut want = newer.clone();
        want.sort();
        assert_eq!(tracked, want);
        let status = app.status().unwrap_or_default().to_owned();
        assert!(
            status.contains(&format!("reading {} newer", newer.len())),
            "{status}"
        );
        assert!(!status.contains("s3cret") && !status.contains("me@example.org"));
    }

    #[test]
    fn the_account_prompt_needs_a_user_name_and_esc_keeps_the_old_account() {
        let (mut app, now) = fleet();
        let old = crate::net::klap::Credentials::new("old@example.org", "pw");
        app.settings.account = Some(old.clone());
        key(&mut app, KeyCode::Char('c'), now);
        chars(&mut app, "  ", now);
        assert!(key(&mut app, KeyCode::Enter, now).is_empty());
        let Overlay::Account(p) = &app.view.overlay else {
            panic!("prompt closed on an empty user name")
        };
        assert!(p.error.is_some());
        assert_eq!(p.field, crate::app::account::Field::Username);
        chars(&mut app, "new@example.org", now);
        key(&mut app, KeyCode::Enter, now);
        chars(&mut app, "typed", now);
        assert!(key(&mut app, KeyCode::Esc, now).is_empty());
        assert_eq!(app.view.overlay, Overlay::None);
        assert_eq!(app.settings.account, Some(old));
        assert_eq!(app.status(), Some("cancelled"));
        // Read-only mode still lets the account be given: it reads, it writes nothing.
        app.settings.read_only = true;
        key(&mut app, KeyCode::Char('c'), now);
        assert!(matches!(app.view.overlay, Overlay::Account(_)));
    }
}

mod fw_tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::*;
    use crate::app::event::DirItem;
    #[allow(unused_imports)]
    use crate::app::event::{ActionKind, Sighting};
    use crate::app::fixture::{device_id, mixed_fleet};
    use crate::app::state::Settings;
    #[allow(unused_imports)]
    use crate::app::state::{Confirm, Picker};
    use crate::firmware::job::{JobSnapshot, Outcome, Stage};

    fn key(app: &mut App, c: KeyCode, now: Instant) -> Vec<Command> {
        update(app, Event::Key(KeyEvent::new(c, KeyModifiers::NONE)), now)
    }

    fn images() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/firmware")
    }

    /// The plan for the marked plugs, as the runtime would compute it.
    fn plan_for(cmd: &Command) -> Vec<crate::firmware::plan::PlanEntry> {
        let Command::PlanFirmware { path, plugs } = cmd else {
            panic!("not a plan command: {cmd:?}")
        };
        let imgs: Vec<_> = crate::firmware::image::load_path(path)
            .unwrap()
            .into_iter()
            .map(Arc::new)
            .collect();
        crate::firmware::plan::plan(plugs, &imgs)
    }

    fn snapshot(ip: std::net::IpAddr, stage: Stage, outcome: Option<Outcome>) -> JobSnapshot {
        JobSnapshot {
            ip,
            alias: "garage heater".into(),
            model: "HS110(US)".into(),
            from: "1.1.1 Build 170417 Rel.165206".into(),
            to: "1.2.3".into(),
            stage,
            ratio: Some(40),
            served_bytes: Some(40_000),
            image_len: 100_000,
            elapsed: Duration::from_secs(3),
            expected_remaining: Some(Duration::from_secs(70)),
            can_cancel: true,
            outcome,
            warnings: vec![],
        }
    }

    #[test]
    fn pick_a_folder_confirm_with_y_and_follow_the_batch() {
        let settings = Settings {
            firmware_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets"),
            ..Settings::default()
        };
        let (mut app, now) = mixed_fleet(settings, Instant::now());
        // The garage heater (HS110(US) hw 1.0) is the second row.
        key(&mut app, KeyCode::Char('j'), now);
        let cmds = update(
            &mut app,
            Event::Key(KeyEvent::new(KeyCode::Char('U'), KeyModifiers::SHIFT)),
            now,
        );
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets");
        assert_eq!(cmds, vec![Command::ListDir(dir.clone())]);
        update(
            &mut app,
            Event::DirListed {
                dir: dir.clone(),
                result: Ok(vec![DirItem {
                    name: "firmware".into(),
                    is_dir: true,
                    size: 0,
                }]),
            },
            now,
        );
        assert_eq!(
            key(&mut app, KeyCode::Enter, now),
            vec![Command::ListDir(images())]
        );
        update(
            &mut app,
            Event::DirListed {
                dir: images(),
                result: Ok(vec![]),
            },
            now,
        );
        let cmds = key(&mut app, KeyCode::Char('.'), now);
        let entries = plan_for(&cmds[0]);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].plug.ip, crate::app::fixture::ip(2));
        update(&mut app, Event::FirmwarePlanned(Ok(entries)), now);
        let Overlay::FirmwareConfirm(c) = &app.view.overlay else {
            panic!("no confirm dialog")
        };
        assert_eq!(c.updating(), 1);
        // Enter never confirms; y does.
        assert!(key(&mut app, KeyCode::Enter, now).is_empty());
        let cmds = key(&mut app, KeyCode::Char('y'), now);
        assert!(matches!(&cmds[..], [Command::StartUpdate(_)]));
        assert!(app.view.progress);
        let ip = crate::app::fixture::ip(2);
        update(
            &mut app,
            Event::Job(Box::new(JobEvent::Progress {
                snapshot: snapshot(ip, Stage::Downloading, None),
            })),
            now,
        );
        assert_eq!(app.firmware.as_ref().unwrap().rows.len(), 1);
        assert_eq!(
            key(&mut app, KeyCode::Char('x'), now),
            vec![Command::CancelUpdate]
        );
        update(
            &mut app,
            Event::Job(Box::new(JobEvent::Transition {
                from: Stage::Downloading,
                note: None,
                snapshot: snapshot(ip, Stage::Done, Some(Outcome::Updated)),
            })),
            now,
        );
        let b = app.firmware.as_ref().unwrap();
        assert_eq!(b.rows.len(), 1);
        assert_eq!(b.rows[0].0.stage, Stage::Done);
        let _ = device_id(2);
    }

    #[test]
    fn read_only_never_starts_a_firmware_update() {
        let settings = Settings {
            read_only: true,
            ..Settings::default()
        };
        let (mut app, now) = mixed_fleet(settings, Instant::now());
        let cmds = update(
            &mut app,
            Event::Key(KeyEvent::new(KeyCode::Char('U'), KeyModifiers::SHIFT)),
            now,
        );
        assert!(cmds.is_empty());
        assert_eq!(app.view.overlay, Overlay::None);
        // A plan dialog reached some other way still cannot start a batch.
        app.view.overlay = Overlay::FirmwareConfirm(FirmwareConfirm::new(images(), vec![]));
        assert!(key(&mut app, KeyCode::Char('y'), now).is_empty());
    }

    #[test]
    fn a_blocked_plan_starts_nothing() {
        let (mut app, now) = mixed_fleet(Settings::default(), Instant::now());
        // The kitchen plug is an HS110(EU) hw 4.0; the HS300 image cannot match it.
        let plugs = vec![(
            crate::app::fixture::ip(1),
            app.fleet.devices[&device_id(1)].sysinfo.clone().unwrap(),
        )];
        let entries = plan_for(&Command::PlanFirmware {
            path: images().join("hs300v2_us_1.0.13_Build_230517_Rel.140855.bin"),
            plugs,
        });
        assert!(entries[0].verdict().is_blocked());
        app.view.overlay = Overlay::FirmwareConfirm(FirmwareConfirm::new(images(), entries));
        assert!(key(&mut app, KeyCode::Char('y'), now).is_empty());
        assert!(app.firmware.is_none());
    }
}

mod name_tests {
    use super::super::*;
    #[allow(unused_imports)]
    use crate::app::event::{ActionKind, Sighting};
    use crate::app::fixture::{self, Plug, device_id};
    use crate::app::state::Settings;
    #[allow(unused_imports)]
    use crate::app::state::{Confirm, Picker};

    #[test]
    fn a_local_name_follows_the_mac_across_an_address_change() {
        let settings = Settings {
            names: crate::fleet::identity::Names::from_pairs([(
                "50-c7-bf-00-00-01",
                "Kitchen kettle",
            )]),
            ..Settings::default()
        };
        let now = Instant::now();
        let mut app = App::new(settings, now);
        let p = Plug::new(1, "HS110 alias", "HS110(EU)", "4.0", "1.0.4");
        update(&mut app, fixture::sighting(&p, "broadcast"), now);
        assert_eq!(app.fleet.devices[&device_id(1)].alias(), "Kitchen kettle");
        let Event::DeviceDiscovered(mut s) = fixture::sighting(&p, "sweep") else {
            unreachable!()
        };
        s.ip = fixture::ip(99);
        update(&mut app, Event::DeviceDiscovered(s), now);
        assert_eq!(app.fleet.devices.len(), 1);
        assert_eq!(app.fleet.devices[&device_id(1)].alias(), "Kitchen kettle");
    }
}

mod export_tests {
    use std::path::PathBuf;
    use std::time::Instant;

    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::super::*;
    #[allow(unused_imports)]
    use crate::app::event::{ActionKind, Sighting};
    use crate::app::fixture::{self, Plug, device_id, reading};
    use crate::app::recording::{RecordEvent, RecordFormat};
    #[allow(unused_imports)]
    use crate::app::state::{Confirm, Picker};
    use crate::app::state::{Settings, Verdict};

    const EPOCH: u64 = 1_795_621_649_000;

    fn press(app: &mut App, code: KeyCode, now: Instant) -> Vec<Command> {
        update(
            app,
            Event::Key(KeyEvent::new(code, KeyModifiers::NONE)),
            now,
        )
    }

    /// The meters each record command asks the runtime to record.
    fn records(cmds: &[Command]) -> Vec<Option<String>> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Record { read, .. } => Some(read.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn kettle() -> Plug {
        Plug::new(1, "kettle", "HS110(US)", "1.0", "1.2.6")
    }

    fn strip() -> Plug {
        let mut s = Plug::new(2, "strip", "HS300(US)", "2.0", "1.0.12");
        s.outlets = vec![("lamp", true), ("radio", true)];
        s
    }

    /// Two devices found; the kettle has a local name.
    fn found(settings: Settings) -> (App, Instant) {
        let t0 = Instant::now();
        let settings = Settings {
            names: crate::fleet::identity::Names::from_pairs([("50:C7:BF:00:00:01", "Kettle")]),
            epoch_unix_ms: EPOCH,
            record_default: PathBuf::from("/data/plugfleet/readings-2026-11-25.jsonl"),
            ..settings
        };
        let mut app = App::new(settings, t0);
        update(&mut app, fixture::sighting(&kettle(), "broadcast"), t0);
        update(&mut app, fixture::sighting(&strip(), "broadcast"), t0);
        (app, t0)
    }

    #[test]
    fn record_flag_starts_at_launch_and_a_write_error_stops_with_the_reason() {
        let (mut app, now) = found(Settings::default());
        assert!(update(&mut app, Event::Launched, now).is_empty());

        let path = PathBuf::from("/tmp/day.csv");
        let (mut app, now) = found(Settings {
            record: Some((path.clone(), RecordFormat::Csv)),
            ..Settings::default()
        });
        assert_eq!(
            update(&mut app, Event::Launched, now),
            vec![Command::StartRecording {
                path: path.clone(),
                format: RecordFormat::Csv,
            }]
        );
        // A late failure of some other file does not stop this recording.
        update(
            &mut app,
            Event::Recording(RecordEvent::Failed {
                path: "/tmp/old.jsonl".into(),
                error: "old".into(),
                written: 0,
                dropped: 0,
            }),
            now,
        );
        assert!(app.recording.active);
        update(
            &mut app,
            Event::Recording(RecordEvent::Failed {
                path: path.clone(),
                error: "cannot write record file /tmp/day.csv: No space left on device".into(),
                written: 4,
                dropped: 0,
            }),
            now,
        );
        assert!(!app.recording.active);
        assert!(
            app.recording
                .error
                .as_deref()
                .is_some_and(|e| e.contains("No space left"))
        );
        assert!(app.status().is_some_and(|s| s.contains("No space left")));
        assert!(!app.quit, "the app keeps running");
        let p = fixture::polled(&kettle(), Some(reading(100.0, 120.0, 0.9, 1.0)), vec![]);
        assert!(records(&update(&mut app, p, now)).is_empty());
        // The key starts again, on the --record file.
        let cmds = press(&mut app, KeyCode::Char('w'), now);
        assert!(matches!(&cmds[..], [Command::StartRecording { path: p, .. }] if *p == path));
        assert_eq!(app.recording.error, None);
    }

    #[test]
    fn the_log_key_opens_a_pane_refreshed_on_ticks() {
        let (mut app, now) = found(Settings::default());
        assert!(!update(&mut app, Event::Tick, now).contains(&Command::ReadLog));
        assert_eq!(
            press(&mut app, KeyCode::Char('L'), now),
            vec![Command::ReadLog]
        );
        assert_eq!(app.view.overlay, Overlay::Log { scroll: 0 });
        let lines: Vec<String> = (0..5).map(|i| format!("line {i}")).collect();
        update(&mut app, Event::LogLines(lines), now);
        assert_eq!(app.log_lines.len(), 5);
        assert!(update(&mut app, Event::Tick, now).contains(&Command::ReadLog));
        // Table keys do not act under the pane; scrolling stays within the lines.
        assert!(press(&mut app, KeyCode::Char('w'), now).is_empty());
        assert!(!app.recording.active);
        press(&mut app, KeyCode::Char('k'), now);
        assert_eq!(app.view.overlay, Overlay::Log { scroll: 1 });
        press(&mut app, KeyCode::Char('g'), now);
        assert_eq!(app.view.overlay, Overlay::Log { scroll: 4 });
        press(&mut app, KeyCode::Up, now);
        assert_eq!(app.view.overlay, Overlay::Log { scroll: 4 });
        press(&mut app, KeyCode::Char('G'), now);
        assert_eq!(app.view.overlay, Overlay::Log { scroll: 0 });
        press(&mut app, KeyCode::Esc, now);
        assert_eq!(app.view.overlay, Overlay::None);
        assert!(!update(&mut app, Event::Tick, now).contains(&Command::ReadLog));
        press(&mut app, KeyCode::Char('L'), now);
        press(&mut app, KeyCode::Char('L'), now);
        assert_eq!(app.view.overlay, Overlay::None, "L closes it again");
    }

    #[test]
    fn metrics_are_published_on_a_tick_after_a_change_only() {
        let (mut app, now) = found(Settings::default());
        let p = fixture::polled(&kettle(), Some(reading(28_000.0, 120.0, 0.2, 1.0)), vec![]);
        update(&mut app, p.clone(), now);
        assert!(
            !update(&mut app, Event::Tick, now).contains(&Command::PublishMetrics),
            "no --metrics, nothing published"
        );
        let (mut app, now) = found(Settings {
            metrics_url: Some("http://127.0.0.1:9/metrics".into()),
            ..Settings::default()
        });
        update(&mut app, p.clone(), now);
        assert_eq!(
            update(&mut app, Event::Tick, now),
            vec![Command::PublishMetrics]
        );
        assert!(
            update(&mut app, Event::Tick, now).is_empty(),
            "nothing changed"
        );
        update(&mut app, p, now);
        assert_eq!(
            update(&mut app, Event::Tick, now),
            vec![Command::PublishMetrics]
        );

        // What the metrics view is built from: the model's judgement and counts.
        let k = app.fleet.get(&device_id(1)).expect("kettle");
        assert_eq!(k.local_name.as_deref(), Some("Kettle"));
        assert!(k.is_online());
        assert_eq!(k.judged.as_ref().map(|a| a.verdict), Some(Verdict::Bogus));
        let m = k.meter.as_ref().expect("meter");
        assert_eq!(m.values().and_then(|r| r.power_w), Some(28_000.0));
        assert_eq!(m.counts().bogus, 2);
        let s = app.fleet.get(&device_id(2)).expect("strip");
        assert_eq!(s.outlets.len(), 2);
        assert!(
            s.outlets
                .iter()
                .all(|o| o.meter.as_ref().is_none_or(|m| m.current().is_none())),
            "not read yet"
        );
        assert_eq!(s.judged, None);
        assert_eq!(
            app.fleet.devices[&device_id(1)]
                .meter
                .as_ref()
                .map(|m| m.readings()),
            Some(2)
        );
    }
}

mod first_row {
    use std::time::{Duration, Instant};

    use super::super::update;
    use crate::app::event::Event;
    use crate::app::fixture::{
        big_fleet, big_fleet_plugs, failed, mixed_fleet, polled, reading, round_events,
    };
    use crate::app::state::{Column, Settings};

    /// Row 1 found after a poll report by comparing the polled device with the last row 1
    /// alone is the row 1 a full pass finds, after every report, for every sort column and
    /// direction, a filter and flagged-only: readings that move plugs ahead of and behind the
    /// first (row 1 itself polled too), plugs failing, going offline and coming back, a
    /// bogus reading flagging one, and a view changed directly between two reports.
    #[test]
    fn after_each_report_is_the_first_a_full_pass_finds() {
        let plugs = big_fleet_plugs(30);
        for col in Column::ALL {
            for desc in [false, true] {
                for (filter, flagged) in [("", false), ("plug 01", false), ("", true)] {
                    let (mut app, mut now) = big_fleet(30, 1, Instant::now());
                    app.view.sort = col;
                    app.view.descending = desc;
                    app.view.filter = filter.into();
                    app.view.flagged_only = flagged;
                    for round in 1..8u32 {
                        now += Duration::from_millis(50);
                        let mut events = round_events(&plugs, round * 13);
                        for (i, p) in plugs.iter().enumerate() {
                            let i = i as u32;
                            if (i + round) % 7 == 0 {
                                events[i as usize] = failed(p, round % 4 + 1);
                            } else if (i * 3 + round) % 11 == 0 && p.outlets.is_empty() {
                                events[i as usize] =
                                    polled(p, Some(reading(9000.0, 230.0, 0.1, 1.0)), vec![]);
                            }
                        }
                        if round == 4 {
                            // Directly, between two reports: the view the last row 1 was
                            // found under no longer holds.
                            app.view.descending = !app.view.descending;
                        }
                        for ev in events {
                            let key = match &ev {
                                Event::Polled(r) => r.key.clone(),
                                _ => unreachable!(),
                            };
                            update(&mut app, ev, now);
                            assert_eq!(
                                app.view.selected,
                                app.first_row().map(|r| r.id()),
                                "{col:?} desc={desc} filter={filter:?} flagged={flagged} \
                                 round {round} after {key}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The selection's one-pass `first_row` is the first of the sorted, filtered `rows`, for
    /// every sort column, both directions, a filter and flagged-only.
    #[test]
    fn is_the_first_of_rows_for_every_sort_and_filter() {
        for (mut app, _) in [
            big_fleet(40, 3, Instant::now()),
            mixed_fleet(Settings::default(), Instant::now()),
        ] {
            for col in Column::ALL {
                for desc in [false, true] {
                    for (filter, flagged) in [("", false), ("plug 01", false), ("", true)] {
                        app.view.sort = col;
                        app.view.descending = desc;
                        app.view.filter = filter.into();
                        app.view.flagged_only = flagged;
                        let rows = app.rows();
                        assert_eq!(
                            app.first_row().map(|r| r.id()),
                            rows.first().map(|r| r.id()),
                            "{col:?} desc={desc} filter={filter:?} flagged={flagged}"
                        );
                    }
                }
            }
        }
    }
}
