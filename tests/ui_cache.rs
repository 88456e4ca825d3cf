#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The table formats a row once per change and reuses it (`app::rows::RowCells`): what it
//! draws from kept rows must be what a fresh formatting of every row draws, cell for cell and
//! style for style, through readings, marks, expanded strips, the filter, a narrower terminal,
//! a plug going offline and ages growing with time.

use std::time::{Duration, Instant};

use plugfleet::app::fixture::{big_fleet_plugs, failed, round_events, sighting};
use plugfleet::app::state::{App, RowId, Settings};
use plugfleet::app::{Event, update};
use plugfleet::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

fn frame(app: &App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::render(f, app)).unwrap();
    t.backend().buffer().clone()
}

/// Draws `app` (its kept rows) and a clone of it (a clone keeps no rows: every row formatted
/// afresh) and compares the two frames.
fn same_as_fresh(app: &App, w: u16, h: u16, what: &str) {
    let kept = frame(app, w, h);
    let fresh = frame(&app.clone(), w, h);
    assert_eq!(kept, fresh, "{what}: kept rows differ from fresh ones");
}

#[test]
fn kept_rows_draw_what_fresh_formatting_draws() {
    let t0 = Instant::now();
    let plugs = big_fleet_plugs(30);
    let mut app = App::new(Settings::default(), t0);
    for p in &plugs {
        update(&mut app, sighting(p, "sweep"), t0);
    }
    let mut now = t0;
    let (w, h) = (160, 30);
    same_as_fresh(&app, w, h, "before any reading");
    for round in 0..4 {
        now += Duration::from_secs(1);
        for ev in round_events(&plugs, round) {
            update(&mut app, ev, now);
        }
        same_as_fresh(&app, w, h, &format!("round {round}"));
    }

    // Nothing changed: every row of the next frame is a kept one.
    let (made0, reused0) = app.view.cells.counts();
    frame(&app, w, h);
    let (made1, reused1) = app.view.cells.counts();
    assert_eq!(made1, made0, "an unchanged frame formatted rows again");
    assert!(reused1 - reused0 >= 20, "{reused0} → {reused1}");
    // The same readings again a second later: still nothing to format except the trend, which
    // gained a point on every row.
    now += Duration::from_secs(1);
    for ev in round_events(&plugs, 3) {
        update(&mut app, ev, now);
    }
    same_as_fresh(&app, w, h, "the same readings again");
    // Without the trend column (80 columns), the same readings again reuse every row.
    frame(&app, 80, h);
    let (made2, _) = app.view.cells.counts();
    now += Duration::from_secs(1);
    for ev in round_events(&plugs, 3) {
        update(&mut app, ev, now);
    }
    same_as_fresh(&app, 80, h, "80 columns");
    let (made3, _) = app.view.cells.counts();
    frame(&app, 80, h);
    assert_eq!(
        app.view.cells.counts().0,
        made3,
        "the same readings: nothing formatted ({made2} → {made3})"
    );

    let first = RowId {
        key: plugfleet::app::fixture::device_id(1),
        child: None,
    };
    app.view.marked.insert(first.clone());
    same_as_fresh(&app, w, h, "a marked row");
    let strip = plugfleet::app::fixture::device_id(10);
    app.view.expanded.insert(strip);
    same_as_fresh(&app, w, h, "an expanded strip");
    app.view.filter = "plug 00".into();
    same_as_fresh(&app, w, h, "a filter");
    app.view.filter.clear();
    same_as_fresh(&app, 100, h, "a narrower terminal");
    same_as_fresh(&app, w, h, "wide again");
    app.settings.color = !app.settings.color;
    same_as_fresh(&app, w, h, "the other theme");

    // A plug goes offline; then time passes without polls: the ages grow.
    for misses in 1..=3 {
        now += Duration::from_secs(1);
        update(&mut app, failed(&plugs[1], misses), now);
        same_as_fresh(&app, w, h, &format!("miss {misses}"));
    }
    for secs in [1, 2, 5, 59, 61, 3700] {
        update(&mut app, Event::Tick, now + Duration::from_secs(secs));
        same_as_fresh(&app, w, h, &format!("{secs} s later"));
    }
}

/// A report that changes nothing visible moves no generation and formats no row; a changed
/// reading of one plug formats exactly its row (80 columns: no trend, which gains a point with
/// every reading). Nine plugs, no strip: the fixture's strip has an outlet drawing power with
/// its relay off, whose finding counts the polls ("3 polls"), a change with every poll.
#[test]
fn one_changed_reading_formats_exactly_its_row() {
    use plugfleet::app::fixture::{device_id, polled, reading};
    let t0 = Instant::now();
    let plugs = big_fleet_plugs(9);
    let mut app = App::new(Settings::default(), t0);
    for p in &plugs {
        update(&mut app, sighting(p, "sweep"), t0);
    }
    let mut now = t0 + Duration::from_millis(300);
    for ev in round_events(&plugs, 0) {
        update(&mut app, ev, now);
    }
    let (w, h) = (80, 30);
    frame(&app, w, h);
    let generations = |app: &App| -> Vec<u64> {
        plugs
            .iter()
            .map(|p| app.fleet.get(&device_id(p.n)).unwrap().generation())
            .collect()
    };
    let before = generations(&app);
    let (made0, _) = app.view.cells.counts();
    now += Duration::from_millis(300);
    for ev in round_events(&plugs, 0) {
        update(&mut app, ev, now);
    }
    assert_eq!(
        generations(&app),
        before,
        "the same readings moved a generation"
    );
    frame(&app, w, h);
    assert_eq!(
        app.view.cells.counts().0,
        made0,
        "the same readings formatted a row"
    );

    // Plug 3 draws 64 W instead of 61 W; nothing else changes.
    let p = &plugs[2];
    now += Duration::from_millis(300);
    update(
        &mut app,
        polled(p, Some(reading(64.0, 230.0, 64.0 / 230.0, 10.0)), vec![]),
        now,
    );
    let after = generations(&app);
    let moved: Vec<usize> = (0..plugs.len())
        .filter(|&i| after[i] != before[i])
        .collect();
    assert_eq!(moved, vec![2], "only plug 3's generation moves");
    frame(&app, w, h);
    assert_eq!(
        app.view.cells.counts().0,
        made0 + 1,
        "exactly its row is formatted again"
    );
    same_as_fresh(&app, w, h, "after one changed reading");
}
