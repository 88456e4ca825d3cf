//! When the UI loop draws: only after something was applied that changes what the last frame
//! showed, and at most once per frame of the frame-rate cap. A burst of poll reports (a whole
//! fleet answering within a few milliseconds of each other) is one frame, not one per report:
//! the first report seen after a quiet spell is drawn one frame period later, with what else
//! of the burst came by then, not alone at once (keys, resizes and ticks draw at once); a
//! second with no visible change draws nothing.
//!
//! What counts as visible: a key, a resize, discovery, a job — anything but a poll report, an
//! energy history or a clock tick — is assumed to change the screen. A device's report changes
//! it only if it moved what the views show of the device ([`Stamp`]: its change generation,
//! its power-history points, its last-seen time, its address) in a way the last frame can show
//! ([`Shown`]): the device has a row on screen (a new point counts only with the power trend
//! drawn, a new last-seen only where the seen age was not "now"), its detail pane is open, the
//! rows can reorder with any reading (sorted by a value, filtered, flagged only), or, for a
//! device off screen, the summary line reads differently (checked once per batch). A tick
//! changes the screen only when an age drawn reads differently by now, the status message
//! expires, a quarter hour passes with the energy column drawn (a plug's day may turn), or a timed pane is open (detail, an overlay,
//! the firmware progress). Pure: time is passed in. `bench poll` drives the same pacer.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::cells::Onscreen;
use crate::app::event::{Command, Event};
use crate::app::rows::Summary;
use crate::app::state::{App, Column, Overlay};
use crate::app::update::update;
use crate::fleet::model::Device;

/// What the views show of a device, as far as the pacer compares it before and after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// [`Device::generation`].
    pub generation: u64,
    /// [`Device::points`]: a new point of the power history (the trend, the detail pane).
    pub points: u64,
    /// When it last answered (the seen age is drawn from it).
    pub seen: Option<std::time::Instant>,
    /// Its address: its place in the table sorted by address (the key is the device's own,
    /// the same before and after).
    pub place: SocketAddr,
}

impl Stamp {
    pub fn of(d: &Device) -> Self {
        Self {
            generation: d.generation(),
            points: d.points(),
            seen: d.last_seen,
            place: d.addr,
        }
    }
}

/// The summary line as drawn: its counts, versions and the total power in whole watts.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryKey {
    counts: [usize; 6],
    versions: Vec<(String, usize)>,
    watts: i64,
}

impl SummaryKey {
    pub fn of(s: &Summary) -> Self {
        Self {
            counts: [s.devices, s.online, s.offline, s.flagged, s.newer, s.marked],
            versions: s.versions.clone(),
            watts: s.power_w.round() as i64,
        }
    }
}

/// What the last frame showed, as far as the pacer needs to know.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shown {
    /// The table's rows and ages (`None`: no table was drawn).
    pub table: Option<Onscreen>,
    pub summary: Option<SummaryKey>,
    /// The device whose detail pane is open.
    pub detail: Option<String>,
    /// A pane that changes with time every second is open (detail, an overlay, the firmware
    /// progress).
    pub timed: bool,
    /// Any reading can reorder the rows or change which are shown (sorted by something else
    /// than the address, a filter, flagged rows only).
    pub volatile: bool,
    /// The log pane is open (new log lines are seen there).
    pub log: bool,
    /// A recording runs: its count in the status bar grows with every reading.
    pub recording: bool,
    /// The status message drawn goes away at this time.
    pub status_until: Option<std::time::Instant>,
}

impl Shown {
    /// What a frame just drawn of `app` shows (the table's part as `ui` recorded it).
    pub fn of(app: &App) -> Self {
        let v = &app.view;
        let detail = (v.detail && !(v.progress && app.firmware.is_some()))
            .then(|| v.selected.as_ref().map(|id| id.key.clone()))
            .flatten();
        Self {
            table: v.cells.onscreen(),
            summary: Some(SummaryKey::of(&app.summary())),
            timed: detail.is_some() || v.overlay != Overlay::None || app.firmware.is_some(),
            detail,
            volatile: v.sort != Column::Ip || !v.filter.trim().is_empty() || v.flagged_only,
            log: matches!(v.overlay, Overlay::Log { .. }),
            recording: app.recording.active,
            status_until: app
                .status()
                .and(v.status.as_ref())
                .map(|(_, at)| *at + app.settings.status_ttl),
        }
    }
}

/// One applied event, as the pacer judges it.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Can change anything on screen.
    Screen,
    /// Changes nothing drawn.
    Nothing,
    /// New log lines.
    Log,
    /// A report about one device: how the views saw it before and after.
    Device {
        key: String,
        before: Option<Stamp>,
        after: Option<Stamp>,
    },
    /// The clock moved to `now` (a tick); `quarter` is its quarter hour of UTC
    /// ([`Onscreen::quarter`]).
    Clock {
        now: std::time::Instant,
        quarter: u64,
    },
}

/// Whether a change is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Yes,
    No,
    /// Only if the summary line reads differently now.
    IfSummaryChanged,
}

/// Whether `change` shows on a screen that showed `shown` (`None`: nothing known of the last
/// frame, so everything is seen).
pub fn seen(shown: Option<&Shown>, change: &Change) -> Seen {
    let Some(s) = shown else {
        return match change {
            Change::Nothing => Seen::No,
            _ => Seen::Yes,
        };
    };
    match change {
        Change::Screen => Seen::Yes,
        Change::Nothing => Seen::No,
        Change::Log if s.log => Seen::Yes,
        Change::Log => Seen::No,
        Change::Clock { now, quarter } => {
            let t = s.table.as_ref();
            let due = |at: Option<std::time::Instant>| at.is_some_and(|at| *now >= at);
            if s.timed
                || due(s.status_until)
                || due(t.and_then(|t| t.ages_change))
                || t.and_then(|t| t.quarter).is_some_and(|q| q != *quarter)
            {
                Seen::Yes
            } else {
                Seen::No
            }
        }
        Change::Device { key, before, after } => {
            let (b, a) = match (before, after) {
                (None, None) => return Seen::No,
                (Some(b), Some(a)) => (b, a),
                // A device came or went: the row count, the order.
                _ => return Seen::Yes,
            };
            if b == a {
                return Seen::No;
            }
            if s.detail.as_deref() == Some(key.as_str()) {
                return Seen::Yes;
            }
            let new_point = b.points != a.points;
            if s.recording && new_point {
                return Seen::Yes;
            }
            let changed = b.generation != a.generation;
            let Some(t) = &s.table else {
                return if changed { Seen::Yes } else { Seen::No };
            };
            if t.keys.contains(key) {
                let seen_again = b.seen != a.seen && t.seen_aged.contains(key);
                return if changed || (new_point && t.trend) || seen_again {
                    Seen::Yes
                } else {
                    Seen::No
                };
            }
            if b.place != a.place {
                return Seen::Yes;
            }
            match (changed, s.volatile) {
                (false, _) => Seen::No,
                (true, true) => Seen::Yes,
                (true, false) => Seen::IfSummaryChanged,
            }
        }
    }
}

/// The draw policy of the UI loop.
#[derive(Debug, Clone)]
pub struct Pacer {
    frame: Duration,
    last: Option<Instant>,
    dirty: bool,
    /// What the last frame showed, when known.
    shown: Option<Shown>,
    /// A device off screen changed: the summary line may read differently.
    summary_due: bool,
    /// A poll report made the screen dirty after a quiet spell: its frame waits until then
    /// for the rest of its burst (a fleet answers within tens of milliseconds, not at once).
    hold: Option<Instant>,
}

impl Pacer {
    /// At most one frame per `frame`; the first frame is due at once.
    pub fn new(frame: Duration) -> Self {
        Self {
            frame,
            last: None,
            dirty: true,
            shown: None,
            summary_due: false,
            hold: None,
        }
    }

    /// Notes a change that was applied; returns whether it is seen (a pending summary check
    /// is settled by [`Pacer::settle`]).
    pub fn note(&mut self, change: &Change) -> bool {
        match seen(self.shown.as_ref(), change) {
            Seen::Yes => {
                self.dirty = true;
                true
            }
            Seen::No => false,
            Seen::IfSummaryChanged => {
                self.summary_due = true;
                false
            }
        }
    }

    /// Applies `ev` to `app` with [`update`] at `now`, noting what it changed on screen.
    pub fn update(&mut self, app: &mut App, ev: Event, now: std::time::Instant) -> Vec<Command> {
        let key = match &ev {
            Event::Polled(r) => Some(r.key.clone()),
            Event::History(r) => Some(r.key.clone()),
            _ => None,
        };
        let kind = match &ev {
            Event::Polled(_) | Event::History(_) => 0,
            Event::Tick => 1,
            Event::LogLines(_) => 2,
            // Only starts what the command line asked for (whatever that changes arrives as
            // its own event).
            Event::Launched => 3,
            _ => 4,
        };
        let devices = app.fleet.len();
        let stamp = |app: &App| key.as_deref().and_then(|k| app.fleet.get(k)).map(Stamp::of);
        let before = stamp(app);
        let cmds = update(app, ev, now);
        let change = match (kind, key) {
            // Another device answered at the polled address (tracked now), or one was added.
            (0, _)
                if app.fleet.len() != devices
                    || cmds.iter().any(|c| matches!(c, Command::Track { .. })) =>
            {
                Change::Screen
            }
            (0, Some(key)) => {
                let after = app.fleet.get(&key).map(Stamp::of);
                Change::Device { key, before, after }
            }
            (1, _) => Change::Clock {
                now: app.now,
                quarter: crate::app::export::unix_ms_at(app, app.now) / 900_000,
            },
            (2, _) => Change::Log,
            (3, _) => Change::Nothing,
            _ => Change::Screen,
        };
        let was_dirty = self.dirty;
        if self.note(&change) {
            self.hold = match change {
                // The first report of a burst: drawn one frame later, with the rest of the
                // burst, not alone at once and the rest a frame after it.
                Change::Device { .. } if !was_dirty => Some(Instant::from_std(now) + self.frame),
                Change::Device { .. } => self.hold,
                // Keys, resizes, jobs, ages: at once (within the frame cap).
                _ => None,
            };
        }
        cmds
    }

    /// After a batch of events at `now`: a device off screen changed, so compare the summary
    /// line — once the frame budget is spent (a summary is a pass over the fleet: at most one
    /// per frame, not one per batch), until then it stays [`Pacer::pending`].
    pub fn settle(&mut self, app: &App, now: Instant) {
        if !self.summary_due {
            return;
        }
        if self.dirty {
            self.summary_due = false;
            return;
        }
        if self.last.is_some_and(|t| now < t + self.frame) {
            return;
        }
        self.summary_due = false;
        let key = SummaryKey::of(&app.summary());
        if self.shown.as_ref().and_then(|s| s.summary.as_ref()) != Some(&key) {
            self.dirty = true;
        }
    }

    /// Something outside the events changed the screen (a resize, the first frame).
    pub fn invalidate(&mut self) {
        self.dirty = true;
        self.hold = None;
    }

    /// The earliest time the next frame may be drawn (now, if none was drawn yet and no
    /// burst of reports is being waited for).
    pub fn next_frame(&self, now: Instant) -> Instant {
        let budget = self.last.map_or(now, |t| (t + self.frame).max(now));
        self.hold.map_or(budget, |h| budget.max(h))
    }

    /// Draw now? Only with a change pending, the frame budget spent and a burst of reports
    /// waited for.
    pub fn should_draw(&self, now: Instant) -> bool {
        self.dirty
            && self.last.is_none_or(|t| now >= t + self.frame)
            && self.hold.is_none_or(|h| now >= h)
    }

    /// A change (or a summary check) is waiting for its frame.
    pub fn pending(&self) -> bool {
        self.dirty || self.summary_due
    }

    /// A frame was drawn at `now`; what it showed is not known (every change counts).
    pub fn drawn(&mut self, now: Instant) {
        self.dirty = false;
        self.summary_due = false;
        self.hold = None;
        self.last = Some(now);
        self.shown = None;
    }

    /// A frame of `app` was drawn at `now` (by `ui::render`, which records its table).
    pub fn drawn_app(&mut self, now: Instant, app: &App) {
        self.drawn(now);
        self.shown = Some(Shown::of(app));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(33);

    #[test]
    fn a_burst_is_one_frame_and_a_quiet_spell_none() {
        let t0 = Instant::now();
        let mut p = Pacer::new(FRAME);
        assert!(p.should_draw(t0), "the first frame is due at once");
        p.drawn(t0);
        assert!(
            !p.should_draw(t0 + Duration::from_secs(5)),
            "nothing changed"
        );
        // 250 reports within 10 ms: no frame until the budget is spent, then one.
        for i in 0..250u64 {
            let at = t0 + FRAME + Duration::from_micros(40 * i);
            p.note(&Change::Screen);
            if i == 0 {
                assert!(p.should_draw(at));
                p.drawn(at);
            } else {
                assert!(!p.should_draw(at), "report {i} drew a second frame");
            }
        }
        let trailing = p.next_frame(t0 + FRAME);
        assert_eq!(trailing, t0 + FRAME + FRAME);
        assert!(p.pending());
        assert!(p.should_draw(trailing));
        p.drawn(trailing);
        assert!(!p.pending());
    }

    /// The first report seen after a quiet spell waits one frame for the rest of its burst;
    /// the burst is then one frame. A key draws at once, and ends a wait.
    #[test]
    fn a_burst_of_reports_waits_one_frame_for_its_rest_and_a_key_does_not() {
        use crate::app::fixture::{big_fleet, big_fleet_plugs, round_events};
        let plugs = big_fleet_plugs(12);
        let (mut app, now) = big_fleet(12, 1, std::time::Instant::now());
        let t0 = Instant::from_std(now);
        let mut p = Pacer::new(FRAME);
        app.view.cells.set_onscreen(Some(Onscreen {
            keys: app.fleet.devices.keys().cloned().collect(),
            ..Onscreen::default()
        }));
        p.drawn_app(t0, &app);
        // A second later, new readings from every plug, 2 ms apart.
        let at = |i: u32| now + Duration::from_secs(1) + Duration::from_millis(2 * u64::from(i));
        let start = Instant::from_std(at(0));
        let events = round_events(&plugs, 7);
        let mut drawn = 0;
        for (i, ev) in events.into_iter().enumerate() {
            let when = at(i as u32);
            p.update(&mut app, ev, when);
            assert!(p.pending());
            if p.should_draw(Instant::from_std(when)) {
                drawn += 1;
                p.drawn_app(Instant::from_std(when), &app);
            }
        }
        assert_eq!(drawn, 0, "24 ms of reports: none drawn alone");
        assert_eq!(p.next_frame(start), start + FRAME);
        assert!(!p.should_draw(start + FRAME - Duration::from_millis(1)));
        assert!(p.should_draw(start + FRAME), "the burst, one frame later");
        p.drawn_app(start + FRAME, &app);
        assert!(!p.pending());
        // A report waits; a key then draws at once (the frame budget spent).
        let later = now + Duration::from_secs(2);
        p.update(&mut app, round_events(&plugs, 8).remove(0), later);
        assert!(!p.should_draw(Instant::from_std(later)));
        p.update(&mut app, Event::Resize(160, 50), later);
        assert!(
            p.should_draw(Instant::from_std(later)),
            "a key or resize does not wait"
        );
    }

    #[test]
    fn nothing_alone_draws_nothing() {
        let t0 = Instant::now();
        let mut p = Pacer::new(FRAME);
        p.drawn(t0);
        assert!(!p.note(&Change::Nothing));
        assert!(!p.should_draw(t0 + FRAME));
        assert!(p.note(&Change::Screen));
        assert!(p.should_draw(t0 + FRAME));
        p.invalidate();
        assert!(p.pending());
    }

    fn stamp(generation: u64, points: u64, seen: u64) -> Stamp {
        let t0 = std::time::Instant::now();
        Stamp {
            generation,
            points,
            seen: Some(t0 + Duration::from_secs(seen)),
            place: SocketAddr::from(([127, 0, 0, 1], 9999)),
        }
    }

    fn report(key: &str, before: Stamp, after: Stamp) -> Change {
        Change::Device {
            key: key.into(),
            before: Some(before),
            after: Some(after),
        }
    }

    fn shown(on: &[&str], trend: bool) -> Shown {
        Shown {
            table: Some(Onscreen {
                keys: on.iter().map(|k| k.to_string()).collect(),
                trend,
                ..Onscreen::default()
            }),
            ..Shown::default()
        }
    }

    #[test]
    fn a_report_is_seen_only_if_it_changed_what_its_row_shows() {
        let s = shown(&["a"], false);
        let s = Some(&s);
        let same = stamp(3, 10, 1);
        // The same reading a second later: same generation, a new point, a new last-seen.
        let again = stamp(3, 11, 2);
        assert_eq!(seen(s, &report("a", same, same)), Seen::No);
        assert_eq!(
            seen(s, &report("a", same, again)),
            Seen::No,
            "no trend drawn, seen age still 'now'"
        );
        assert_eq!(seen(s, &report("a", same, stamp(4, 11, 2))), Seen::Yes);
        let with_trend = shown(&["a"], true);
        assert_eq!(
            seen(Some(&with_trend), &report("a", same, again)),
            Seen::Yes,
            "a new point of a drawn trend"
        );
        let mut aged = shown(&["a"], false);
        if let Some(t) = aged.table.as_mut() {
            t.seen_aged.insert("a".into());
        }
        assert_eq!(
            seen(Some(&aged), &report("a", same, again)),
            Seen::Yes,
            "its seen age read 5s: now it reads 'now'"
        );
        // Off screen: only the summary can show it, and only a changed generation.
        assert_eq!(seen(s, &report("b", same, again)), Seen::No);
        assert_eq!(
            seen(s, &report("b", same, stamp(4, 11, 2))),
            Seen::IfSummaryChanged
        );
        let volatile = Shown {
            volatile: true,
            ..shown(&["a"], false)
        };
        assert_eq!(
            seen(Some(&volatile), &report("b", same, stamp(4, 11, 2))),
            Seen::Yes,
            "sorted by watts: any reading can move a row into view"
        );
        let moved = Stamp {
            place: SocketAddr::from(([127, 0, 0, 2], 9999)),
            ..same
        };
        assert_eq!(seen(s, &report("b", same, moved)), Seen::Yes, "moved");
        let detail = Shown {
            detail: Some("b".into()),
            ..shown(&["a"], false)
        };
        assert_eq!(
            seen(Some(&detail), &report("b", same, again)),
            Seen::Yes,
            "its detail pane is open"
        );
        let new = Change::Device {
            key: "c".into(),
            before: None,
            after: Some(same),
        };
        assert_eq!(seen(s, &new), Seen::Yes, "a new device");
        assert_eq!(
            seen(None, &report("a", same, same)),
            Seen::Yes,
            "nothing known"
        );
    }

    #[test]
    fn a_tick_is_seen_only_when_a_drawn_age_or_the_status_changes() {
        let t0 = std::time::Instant::now();
        let at = |s: u64| Change::Clock {
            now: t0 + Duration::from_secs(s),
            quarter: 7,
        };
        let mut s = shown(&["a"], true);
        if let Some(t) = s.table.as_mut() {
            t.ages_change = Some(t0 + Duration::from_secs(2));
            t.quarter = Some(7);
        }
        assert_eq!(seen(Some(&s), &at(1)), Seen::No);
        assert_eq!(seen(Some(&s), &at(2)), Seen::Yes, "'now' reads '2s'");
        s.status_until = Some(t0 + Duration::from_millis(1500));
        assert_eq!(seen(Some(&s), &at(1)), Seen::No);
        s.status_until = Some(t0 + Duration::from_millis(500));
        assert_eq!(
            seen(Some(&s), &at(1)),
            Seen::Yes,
            "the status message expired"
        );
        s.status_until = None;
        let next = Change::Clock {
            now: t0 + Duration::from_secs(1),
            quarter: 8,
        };
        assert_eq!(
            seen(Some(&s), &next),
            Seen::Yes,
            "a new quarter hour: a plug's day may have turned"
        );
        s.timed = true;
        assert_eq!(seen(Some(&s), &at(1)), Seen::Yes, "a timed pane");
        assert_eq!(seen(Some(&s), &Change::Log), Seen::No);
    }

    #[test]
    fn a_change_off_screen_draws_only_if_the_summary_reads_differently() {
        let t0 = Instant::now();
        let mut p = Pacer::new(FRAME);
        let app = App::new(Default::default(), std::time::Instant::now());
        // A table was drawn, without "b" on it.
        app.view.cells.set_onscreen(Some(Onscreen::default()));
        p.drawn_app(t0, &app);
        let off = report("b", stamp(1, 1, 1), stamp(2, 2, 2));
        assert!(!p.note(&off));
        p.settle(&app, t0);
        assert!(p.pending(), "checked once the frame is due, not at once");
        p.settle(&app, t0 + FRAME);
        assert!(!p.pending(), "the summary reads the same");
        let mut changed = app.clone();
        changed.view.marked.insert(crate::app::state::RowId {
            key: "b".into(),
            child: None,
        });
        assert!(!p.note(&off));
        p.settle(&changed, t0 + FRAME);
        assert!(p.pending(), "the summary reads differently");
        assert!(p.should_draw(t0 + FRAME));
    }
}
