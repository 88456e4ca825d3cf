#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end: the real binary runs `plugfleet demo` in a pseudo-terminal; we read its screen
//! with a terminal emulator, press keys like a user, quit with `q`, and check that the terminal
//! was handed back clean (alternate screen left, cursor shown, cooked mode back).

#[path = "common/pty.rs"]
mod pty;

use pty::Tui;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

#[test]
fn demo_runs_reacts_to_keys_and_quits_to_a_clean_terminal() {
    let mut tui = Tui::start(&["demo", "--interval", "1"]);
    // The fleet fills in, labelled as a demo, and the bad plugs stand out.
    tui.wait_for("the demo fleet", |s| {
        s.contains("DEMO") && s.contains("HS300(US)")
    });
    assert!(
        tui.parser.screen().alternate_screen(),
        "the TUI uses the alternate screen"
    );
    #[cfg(unix)]
    if let Some(t) = tui.master.get_termios() {
        let flags = format!("{:?}", t.local_flags);
        assert!(!flags.contains("ICANON"), "raw mode while running: {flags}");
    }
    tui.wait_for("a bogus plug", |s| {
        s.contains("BOGUS") && s.contains("HS100(UK)")
    });

    // Help from the key map.
    tui.send("?");
    tui.wait_for("help", |s| {
        s.contains("Help") && s.contains("reverse the sort order")
    });
    tui.send("?");
    tui.wait_for("help closed", |s| !s.contains("reverse the sort order"));

    // Flagged-only view: only bogus/suspect rows remain.
    tui.send("f");
    tui.wait_for("flagged only", |s| {
        s.contains("[flagged only]") || s.contains("showing flagged rows only")
    });
    tui.wait_for("no healthy row in the flagged view", |s| {
        !s.contains("● ok")
    });
    tui.send("f");
    tui.wait_for("all rows again", |s| s.contains("● ok"));

    // Filter by model, then open the detail pane of the selected row.
    tui.send("/HS300");
    tui.wait_for("filter line", |s| s.contains("filter: HS300"));
    tui.send("\r");
    tui.wait_for("one row", |s| s.contains("1 of") && !s.contains("HS110"));
    tui.send("\r");
    tui.wait_for("detail pane", |s| {
        s.contains("deviceId") && s.contains("hwId")
    });

    // Quit: exit status 0, alternate screen left, cursor shown, cooked mode back.
    tui.send("q");
    let status = tui.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        !tui.parser.screen().alternate_screen(),
        "alternate screen left"
    );
    let enter = find(&tui.raw, b"\x1b[?1049h").expect("entered the alternate screen");
    let leave = find(&tui.raw, b"\x1b[?1049l").expect("left the alternate screen");
    assert!(leave > enter);
    assert!(
        find(&tui.raw, b"\x1b[?25h").is_some_and(|i| i > enter),
        "cursor shown again"
    );
    assert!(!tui.parser.screen().hide_cursor(), "cursor visible");
    #[cfg(unix)]
    if let Some(t) = tui.master.get_termios() {
        let flags = format!("{:?}", t.local_flags);
        assert!(
            flags.contains("ICANON") && flags.contains("ECHO"),
            "raw mode left: {flags}"
        );
    }
}

#[test]
fn ctrl_c_quits_cleanly_too() {
    let mut tui = Tui::start(&["demo"]);
    tui.wait_for("the demo fleet", |s| {
        s.contains("DEMO") && s.contains("online")
    });
    tui.send("\u{3}");
    let status = tui.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    assert!(!tui.parser.screen().alternate_screen());
}
