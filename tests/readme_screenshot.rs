#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The README's text screenshot of the table is the real renderer's output: the test fleet
//! (a 28 kW glitch, the milliwatt unit bug, a suspect strip, an offline plug, a newer-protocol
//! plug) drawn by `ui::render` at 110×14 without colour must equal the block between the
//! README's `<!-- screenshot -->` markers. Regenerate it with `PLUGFLEET_README_SCREENSHOT=print
//! cargo test --test readme_screenshot -- --nocapture` and paste the printed block.

use std::path::Path;
use std::time::{Duration, Instant};

use plugfleet::app::fixture::{mixed_fleet, polled, reading};
use plugfleet::app::state::Settings;
use plugfleet::app::update;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn screenshot() -> String {
    let settings = Settings {
        interval: Duration::from_secs(2),
        color: false,
        ..Settings::default()
    };
    let t0 = Instant::now();
    let (mut app, mut now) = mixed_fleet(settings, t0);
    // The heater's glitch was two polls ago: its row still says so (‼ BOGUS 4s ago).
    now += Duration::from_secs(4);
    let heater = plugfleet::app::fixture::Plug::new(
        2,
        "garage heater",
        "HS110(US)",
        "1.0",
        "1.1.1 Build 170417 Rel.165206",
    );
    update(
        &mut app,
        polled(&heater, Some(reading(1485.0, 121.3, 12.4, 3.2)), vec![]),
        now,
    );
    let mut t = Terminal::new(TestBackend::new(110, 14)).unwrap();
    t.draw(|f| plugfleet::ui::render(f, &app)).unwrap();
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        let mut x = 0;
        while x < buf.area.width {
            let sym = buf[(x, y)].symbol();
            line.push_str(sym);
            x += plugfleet::text::width(sym).max(1) as u16;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn the_readme_screenshot_is_what_the_renderer_draws() {
    let shot = screenshot();
    assert!(
        shot.contains("‼ BOGUS") && shot.contains("61753.0‼"),
        "{shot}"
    );
    if std::env::var_os("PLUGFLEET_README_SCREENSHOT").is_some() {
        println!("```text\n{shot}```");
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("<!-- screenshot")
        .expect("the README has a screenshot block");
    let body = &readme[start..];
    let open = body.find("```text\n").expect("```text") + "```text\n".len();
    let close = body[open..].find("```").expect("closing ```") + open;
    assert_eq!(
        &body[open..close],
        shot,
        "the README's screenshot is not what the renderer draws; regenerate it (see the top of this file)"
    );
}
