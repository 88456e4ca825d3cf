#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Text that fits (issue 14): cells measured in display width, `…` wherever text is cut, wide
//! characters never shifting a column, filter matches highlighted (visible without colour),
//! and at 200 columns the extra width going to the power trend and the hardware/firmware ids.

use std::time::{Duration, Instant};

use plugfleet::app::fixture::{self, mixed_fleet};
use plugfleet::app::state::{App, Settings};
use plugfleet::app::{Event, update};
use plugfleet::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Modifier;

fn settings(color: bool) -> Settings {
    Settings {
        interval: Duration::from_secs(2),
        color,
        ..Settings::default()
    }
}

fn draw(app: &App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::render(f, app)).unwrap();
    t
}

/// Line `y` of the screen as text (a wide character's second cell is skipped, as a terminal
/// shows it).
fn line(buf: &Buffer, y: u16) -> String {
    let mut out = String::new();
    let mut x = 0u16;
    while x < buf.area.width {
        let sym = buf[(x, y)].symbol();
        out.push_str(sym);
        x += plugfleet::text::width(sym).max(1) as u16;
    }
    out
}

/// The (x, y) of the first cell of `needle` on screen.
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    for y in 0..buf.area.height {
        let mut x = 0u16;
        let mut text = String::new();
        let mut starts = Vec::new();
        while x < buf.area.width {
            starts.push((text.len(), x));
            let sym = buf[(x, y)].symbol();
            text.push_str(sym);
            let w = plugfleet::text::width(sym).max(1) as u16;
            x += w;
        }
        if let Some(i) = text.find(needle) {
            let x = starts
                .iter()
                .rev()
                .find(|(b, _)| *b <= i)
                .map_or(0, |(_, x)| *x);
            return Some((x, y));
        }
    }
    None
}

fn fleet_with(aliases: &[&str], color: bool) -> (App, Instant) {
    let now = Instant::now();
    let mut app = App::new(settings(color), now);
    for (i, a) in aliases.iter().enumerate() {
        let p = fixture::Plug::new(i as u32 + 1, a, "HS110(EU)", "4.0", "1.0.4");
        update(&mut app, fixture::sighting(&p, "host"), now);
    }
    (app, now)
}

#[test]
fn a_wide_character_alias_is_cut_with_an_ellipsis_and_never_shifts_a_column() {
    let long_cjk = "台所の電気ケトルと冷蔵庫とコーヒーメーカー";
    let (app, _) = fleet_with(&[long_cjk, "🔌🔌 desk", "plain"], true);
    let t = draw(&app, 100, 12);
    let buf = t.backend().buffer();
    let (ip_x, _) = find(buf, "IP▲").expect("IP header");
    for ip in ["127.77.0.1", "127.77.0.2", "127.77.0.3"] {
        let (x, y) = find(buf, ip).unwrap_or_else(|| panic!("{ip} missing"));
        assert_eq!(x, ip_x, "{ip} shifted: {}", line(buf, y));
    }
    let (_, y) = find(buf, "127.77.0.1").unwrap();
    let row = line(buf, y);
    assert!(row.contains("台所の電気"), "{row}");
    assert!(row.contains('…'), "a cut alias ends in …: {row}");
    assert!(!row.contains("コーヒーメーカー"), "{row}");
    let (_, y) = find(buf, "127.77.0.2").unwrap();
    assert!(line(buf, y).contains("🔌🔌 desk"), "{}", line(buf, y));
}

#[test]
fn filter_matches_are_highlighted_and_still_seen_without_colour() {
    for color in [true, false] {
        let (mut app, _) = mixed_fleet(settings(color), Instant::now());
        app.view.filter = "KITCH".into();
        let t = draw(&app, 120, 14);
        let buf = t.backend().buffer();
        let (x, y) = find(buf, "kitchen").expect("the kitchen row");
        let hl = Modifier::BOLD | Modifier::UNDERLINED;
        for dx in 0..5 {
            assert!(
                buf[(x + dx, y)].modifier.contains(hl),
                "matched cell {dx} not highlighted (color {color})"
            );
        }
        for dx in 5..7 {
            assert!(
                !buf[(x + dx, y)].modifier.contains(Modifier::UNDERLINED),
                "unmatched cell {dx} highlighted"
            );
        }
    }
}

#[test]
fn at_200_columns_the_extra_width_goes_to_the_power_trend_and_the_ids() {
    let (mut app, mut now) = mixed_fleet(settings(true), Instant::now());
    // A few more readings so the trend has a shape.
    for w in [60.0, 90.0, 30.0] {
        now += Duration::from_secs(2);
        let p = fixture::Plug::new(1, "kitchen", "HS110(EU)", "4.0", "1.0.4");
        update(
            &mut app,
            fixture::polled(
                &p,
                Some(fixture::reading(w, 230.0, w / 230.0, 16.3)),
                vec![],
            ),
            now,
        );
    }
    let wide = draw(&app, 200, 30);
    let buf = wide.backend().buffer();
    assert!(find(buf, "Power trend").is_some(), "{}", line(buf, 3));
    assert!(find(buf, "HW id/FW id").is_some(), "{}", line(buf, 3));
    let (_, y) = find(buf, "127.77.0.1").expect("kitchen row");
    let row = line(buf, y);
    assert!(row.contains("A0E3CC8…"), "hw id shown: {row}");
    assert!(
        row.chars().any(|c| ('▁'..='█').contains(&c)),
        "sparkline: {row}"
    );
    // No run of 8 blank cells at the end of the header: the width is used.
    assert!(!line(buf, 3).ends_with("        "), "{}", line(buf, 3));
    // At 120 columns neither wide-screen column is there.
    let narrow = draw(&app, 120, 30);
    let buf = narrow.backend().buffer();
    assert!(find(buf, "Power trend").is_none() && find(buf, "HW id/FW id").is_none());
}

#[test]
fn the_sorted_column_is_marked_in_the_header() {
    let (mut app, now) = mixed_fleet(settings(true), Instant::now());
    let press = |app: &mut App, c: char| {
        use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        update(
            app,
            Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
            now,
        );
    };
    press(&mut app, 'P');
    let t = draw(&app, 120, 14);
    assert!(find(t.backend().buffer(), "W▲").is_some());
    press(&mut app, 'P');
    let t = draw(&app, 120, 14);
    assert!(find(t.backend().buffer(), "W▼").is_some());
    assert!(find(t.backend().buffer(), "IP▲").is_none());
}
