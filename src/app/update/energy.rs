//! The energy history in the app (issue 16): asking the history task for what the fleet model
//! says is due after each poll, taking in what it fetched, and the erase (`e` in the detail
//! pane): a confirmation that shows what will be lost, then the write — refused read-only.

use std::time::Instant;

use crate::app::event::{ActionKind, Command};
use crate::app::rows::RowRef;
use crate::app::state::{App, Confirm, Overlay};
use crate::fleet::energy::{Date, EnergyHistory};
use crate::fleet::reading::Field;
use crate::fleet::stats::metered;
use crate::net::history::{HistoryJob, HistoryReport};

use super::actions::{counted, describe};

pub use crate::app::export::today_of;

/// The history fetch of the device just polled, if the model says it is due (first seen,
/// hourly, after a counter reset).
pub(super) fn fetch_due(app: &mut App, key: &str, now: Instant) -> Option<Command> {
    let today = today_of(app, app.fleet.get(key)?, now);
    let d = app.fleet.history_due(key, today, now)?;
    Some(Command::FetchHistory(HistoryJob {
        key: d.key,
        addr: d.addr,
        meters: d.meters,
        months: d.months,
        years: d.years,
    }))
}

/// One meter's fetch goes to the fleet model.
pub(super) fn on_history(app: &mut App, r: HistoryReport, now: Instant) {
    if let Some(e) = r.first_error() {
        tracing::info!(addr = %r.addr, child = ?r.child, "energy history: {e}");
    }
    if let Some(c) = r.clock {
        let unix_s = i64::try_from(crate::app::export::unix_ms_at(app, now) / 1000).unwrap_or(0);
        app.fleet.learn_clock(&r.key, c, unix_s);
    }
    let Some(today) = app.fleet.get(&r.key).map(|d| today_of(app, d, now)) else {
        return;
    };
    let text = |e: crate::net::NetError| e.to_string();
    app.fleet.apply_history(
        &r.key,
        r.addr,
        r.child.as_deref(),
        r.days
            .into_iter()
            .map(|(p, x)| (p, x.map_err(text)))
            .collect(),
        r.months
            .into_iter()
            .map(|(p, x)| (p, x.map_err(text)))
            .collect(),
        today,
        now,
    );
    app.metrics_dirty = true;
}

/// What one meter's erase loses, in words.
pub fn loss(h: &EnergyHistory, today: Date) -> String {
    let days: Vec<f64> = h
        .days
        .iter()
        .filter(|(d, _)| (d.year, d.month) == (today.year, today.month))
        .map(|(_, v)| *v)
        .collect();
    let months: Vec<f64> = h
        .months
        .iter()
        .filter(|((y, _), _)| *y == today.year)
        .map(|(_, v)| *v)
        .collect();
    if h.is_empty() {
        return "no history fetched yet: whatever it keeps".into();
    }
    format!(
        "this month {} days ({}), this year {} months ({})",
        days.len(),
        Field::Total.fmt(days.iter().filter(|v| v.is_finite()).sum()),
        months.len(),
        Field::Total.fmt(months.iter().filter(|v| v.is_finite()).sum()),
    )
}

/// `e`: asks to erase the energy statistics of the row in the detail pane — a plug, one
/// outlet, or every outlet of a strip — listing what each loses.
pub(super) fn ask_erase(app: &mut App, now: Instant) {
    if !app.view.detail {
        app.set_status(
            "open the detail pane (Enter) to erase a plug's energy history",
            now,
        );
        return;
    }
    let Some(sel) = app.selected() else {
        return;
    };
    let d = sel.device;
    let today = today_of(app, d, now);
    if !d.is_online() || metered(d).is_empty() {
        app.set_status(
            "nothing to erase: select an online plug with a meter (it keeps the history)",
            now,
        );
        return;
    }
    let targets: Vec<RowRef<'_>> = match sel.outlet {
        None if d.is_strip() => d
            .outlets
            .iter()
            .map(|o| RowRef {
                device: d,
                outlet: Some(o),
            })
            .collect(),
        _ => vec![sel],
    };
    let mut lines: Vec<String> = targets
        .iter()
        .map(|r| {
            let energy = r.outlet.map_or(&d.energy, |o| &o.energy);
            format!("{}  {}", describe(r), loss(energy, today))
        })
        .collect();
    lines.push("every day and month is erased for good (the device keeps no copy)".into());
    app.view.overlay = Overlay::Confirm(Confirm {
        kind: ActionKind::EraseStats,
        rows: targets.iter().map(RowRef::id).collect(),
        what: counted(&targets),
        lines,
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::app::event::Event;
    use crate::app::fixture::{self, Plug, reading};
    use crate::app::state::Settings;
    use crate::app::update::update;
    use crate::fleet::verdict::Verdict;
    use crate::protocol::EnergyStat;

    /// 2026-12-05 12:00 UTC.
    const EPOCH: u64 = 1_796_472_000_000;

    fn press(app: &mut App, c: char, now: Instant) -> Vec<Command> {
        update(
            app,
            Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
            now,
        )
    }

    fn glitched(read_only: bool) -> (App, Instant, Plug) {
        let t0 = Instant::now();
        let settings = Settings {
            epoch_unix_ms: EPOCH,
            read_only,
            ..Settings::default()
        };
        let mut app = App::new(settings, t0);
        let p = Plug::new(1, "kettle", "HS110(US)", "1.0", "1.2.6");
        update(&mut app, fixture::sighting(&p, "broadcast"), t0);
        let cmds = update(
            &mut app,
            fixture::polled(&p, Some(reading(100.0, 120.0, 0.9, 3.0)), vec![]),
            t0,
        );
        let jobs: Vec<&HistoryJob> = cmds
            .iter()
            .filter_map(|c| match c {
                Command::FetchHistory(j) => Some(j),
                _ => None,
            })
            .collect();
        assert_eq!(jobs.len(), 1, "fetched when first seen: {cmds:?}");
        assert_eq!(jobs[0].months, vec![(2026, 12), (2026, 11)]);
        let day = |d: i64, kwh: f64| EnergyStat {
            year: 2026,
            month: 12,
            day: Some(d),
            energy_kwh: kwh,
        };
        let report = HistoryReport {
            key: jobs[0].key.clone(),
            addr: jobs[0].addr,
            child: None,
            days: vec![(
                (2026, 12),
                Ok(vec![
                    day(1, 1.0),
                    day(2, 1.2),
                    day(3, 600.0),
                    day(4, 0.9),
                    day(5, 0.4),
                ]),
            )],
            months: vec![],
            clock: None,
        };
        update(&mut app, Event::History(Box::new(report)), t0);
        // The next poll asks nothing: fetched a moment ago.
        let cmds = update(
            &mut app,
            fixture::polled(&p, Some(reading(100.0, 120.0, 0.9, 3.1)), vec![]),
            t0 + Duration::from_secs(2),
        );
        assert!(!cmds.iter().any(|c| matches!(c, Command::FetchHistory(_))));
        (app, t0, p)
    }

    #[test]
    fn today_is_the_date_on_the_plug_s_own_clock() {
        let (mut app, t0, _) = glitched(false);
        let key = fixture::device_id(1);
        let d = app.fleet.get(&key).expect("d");
        // 2026-12-05 12:00 UTC; until the plug tells its clock, its days are UTC days.
        assert_eq!(today_of(&app, d, t0), Date::new(2026, 12, 5));
        // A plug on the Line Islands (+14:00) is already on the 6th: its statistics' "today"
        // is the 6th's entry.
        let clock = crate::protocol::calendar::DeviceClock {
            utc_offset_s: 14 * 3600,
        };
        let report = HistoryReport {
            key: key.clone(),
            addr: d.addr,
            child: None,
            days: vec![(
                (2026, 12),
                Ok(vec![EnergyStat {
                    year: 2026,
                    month: 12,
                    day: Some(6),
                    energy_kwh: 0.25,
                }]),
            )],
            months: vec![],
            clock: Some(clock),
        };
        update(&mut app, Event::History(Box::new(report)), t0);
        let d = app.fleet.get(&key).expect("d");
        assert_eq!(d.clock, Some(clock));
        let today = today_of(&app, d, t0);
        assert_eq!(today, Date::new(2026, 12, 6));
        assert_eq!(d.energy.today.map(|t| (t.date, t.kwh)), Some((today, 0.25)));
        // The same month either way: not asked again before the hour is up.
        assert!(fetch_due(&mut app, &key, t0 + Duration::from_secs(5)).is_none());
    }

    #[test]
    fn a_fetched_history_is_judged_recorded_and_erased_only_after_y() {
        let (mut app, t0, _) = glitched(false);
        let key = fixture::device_id(1);
        let d = app.fleet.get(&key).expect("d");
        let limits = d.limits.clone().expect("limits");
        assert_eq!(d.energy.summary(&limits).0, Verdict::Bogus);
        // Today's bar grows with the live total (3.0 kWh at the fetch, 3.1 now).
        let today = today_of(&app, d, t0);
        assert_eq!(today, Date::new(2026, 12, 5));
        assert!((d.energy.today_kwh(today, Some(3.1)).expect("today") - 0.5).abs() < 1e-9);
        // The findings the record rows carry: one per flagged day.
        let f = crate::fleet::stats::findings_json(&d.energy, &limits);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0]["evidence"]["kind"], "energy-history");
        assert_eq!(f[0]["evidence"]["period"], "2026-12-03");
        assert_eq!(f[0]["rule"], "energy-above-rating");
        assert_eq!(
            f[0]["evidence"]["reasons"].as_array().map(Vec::len),
            Some(2)
        );
        assert!(
            f[0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("glitch day?"))
        );

        // `e` needs the detail pane.
        assert!(press(&mut app, 'e', t0).is_empty());
        assert_eq!(app.view.overlay, Overlay::None);
        update(
            &mut app,
            Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
            t0,
        );
        assert!(press(&mut app, 'e', t0).is_empty());
        let Overlay::Confirm(c) = &app.view.overlay else {
            panic!("a confirmation: {:?}", app.view.overlay);
        };
        assert_eq!(c.kind, ActionKind::EraseStats);
        assert!(
            c.lines[0].contains("this month 5 days (603.500 kWh)"),
            "{:?}",
            c.lines
        );
        // `n` cancels; `y` erases.
        assert!(press(&mut app, 'n', t0).is_empty());
        assert_eq!(app.view.overlay, Overlay::None);
        press(&mut app, 'e', t0);
        let cmds = press(&mut app, 'y', t0);
        assert_eq!(
            cmds,
            vec![Command::Act {
                key: key.clone(),
                addr: fixture::addr(1),
                child: None,
                kind: ActionKind::EraseStats,
                switching: crate::protocol::Switching::Relay,
            }]
        );
        let cmds = update(
            &mut app,
            Event::ActionFinished {
                key: key.clone(),
                child: None,
                kind: ActionKind::EraseStats,
                result: Ok(()),
            },
            t0,
        );
        assert!(app.fleet.get(&key).expect("d").energy.is_empty());
        assert_eq!(cmds, vec![Command::PollNow(vec![key])]);
    }

    #[test]
    fn read_only_never_asks_to_erase() {
        let (mut app, t0, _) = glitched(true);
        update(
            &mut app,
            Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
            t0,
        );
        assert!(press(&mut app, 'e', t0).is_empty());
        assert_eq!(app.view.overlay, Overlay::None);
        assert_eq!(app.status(), Some("read-only mode: writes are disabled"));
        assert!(press(&mut app, 'y', t0).is_empty());
        assert!(
            !app.fleet
                .get(&fixture::device_id(1))
                .expect("d")
                .energy
                .is_empty()
        );
    }
}
