#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The mouse in the real terminal (`plugfleet demo` in a pseudo-terminal): crossterm's mouse
//! capture is on, a click on a header sorts and a click on a row selects; capture is turned
//! off again on every way out (q, a signal), and never turned on with `--no-mouse` or
//! `PLUGFLEET_NO_MOUSE=1`.

#[path = "common/pty.rs"]
mod pty;

use std::path::Path;

use pty::Tui;

/// What crossterm's `EnableMouseCapture` / `DisableMouseCapture` write first.
const MOUSE_ON: &[u8] = b"\x1b[?1000h";
const MOUSE_OFF: &[u8] = b"\x1b[?1000l";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The cell (column, row) where `text` starts on the screen, for a click.
fn cell_of(tui: &Tui, text: &str) -> (u16, u16) {
    let screen = tui.screen();
    for (y, line) in screen.lines().enumerate() {
        if let Some(i) = line.find(text) {
            let x = line[..i].chars().count();
            return (x as u16, y as u16);
        }
    }
    panic!("{text:?} not on the screen:\n{screen}");
}

/// A left click at (x, y), as an xterm with SGR mouse reporting sends it.
fn click(tui: &mut Tui, (x, y): (u16, u16)) {
    tui.send(&format!(
        "\x1b[<0;{};{}M\x1b[<0;{};{}m",
        x + 1,
        y + 1,
        x + 1,
        y + 1
    ));
}

fn the_demo_fleet(tui: &mut Tui) {
    tui.wait_for("the demo fleet", |s| {
        s.contains("DEMO") && s.contains("HS300(US)") && s.contains("BOGUS")
    });
}

#[test]
#[cfg(unix)]
fn clicks_sort_and_select_and_a_signal_still_releases_the_mouse() {
    let mut tui = Tui::start(&["demo", "--interval", "1"]);
    the_demo_fleet(&mut tui);
    assert!(find(&tui.raw, MOUSE_ON).is_some(), "mouse capture is on");
    assert_ne!(
        tui.parser.screen().mouse_protocol_mode(),
        vt100::MouseProtocolMode::None
    );
    // A click on the Model header sorts by model; a second click reverses.
    let header = cell_of(&tui, "Model");
    click(&mut tui, header);
    tui.wait_for("sorted by model", |s| {
        s.contains("sorted by model (ascending)")
    });
    click(&mut tui, header);
    tui.wait_for("reversed", |s| s.contains("sorted by model (descending)"));
    // A click on a row selects it, whichever row it is: space then marks that row (✓).
    for model in ["HS300(US)", "HS110(EU)"] {
        let row = cell_of(&tui, model);
        click(&mut tui, row);
        tui.send(" ");
        tui.wait_for(model, |s| {
            s.lines()
                .any(|l| l.contains(model) && l.trim_start().starts_with('✓'))
        });
    }
    // SIGTERM: a way out like q, and mouse capture is off again.
    tui.signal("TERM");
    let _ = tui.wait_exit();
    let on = find(&tui.raw, MOUSE_ON).unwrap();
    let off = find(&tui.raw, MOUSE_OFF).expect("mouse capture turned off");
    assert!(off > on, "mouse capture turned off after it was turned on");
    assert_eq!(
        tui.parser.screen().mouse_protocol_mode(),
        vt100::MouseProtocolMode::None
    );
    assert!(!tui.parser.screen().alternate_screen());
}

#[test]
fn no_mouse_leaves_the_mouse_alone() {
    let mut tui = Tui::start(&["demo", "--no-mouse"]);
    the_demo_fleet(&mut tui);
    tui.send("q");
    assert!(tui.wait_exit().success());
    assert!(find(&tui.raw, MOUSE_ON).is_none(), "--no-mouse captured it");

    let mut tui = Tui::start_sized(
        &["demo"],
        pty::ROWS,
        pty::COLS,
        &[("PLUGFLEET_NO_MOUSE", Path::new("1"))],
    );
    the_demo_fleet(&mut tui);
    tui.send("q");
    assert!(tui.wait_exit().success());
    assert!(
        find(&tui.raw, MOUSE_ON).is_none(),
        "PLUGFLEET_NO_MOUSE=1 captured it"
    );
}
