#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every way out of the TUI in a pseudo-terminal (the real binary): SIGHUP, SIGTERM and SIGQUIT
//! hand the terminal back as clean as `q` does (alternate screen left, cursor shown, cooked mode
//! back), and during a firmware update `q` asks first, then waits until the flashing plug is
//! verified and its relay restored, and exits 130, as a signal does without asking. A terminal
//! that really hangs up (closed under the program) ends it too, after the flash is verified.

#[path = "common/pty.rs"]
mod pty;

use pty::Tui;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// Left the alternate screen and showed the cursor after entering it; cooked mode and echo back.
fn assert_terminal_restored(tui: &Tui, what: &str) {
    assert!(
        !tui.parser.screen().alternate_screen(),
        "{what}: alternate screen left"
    );
    let enter = find(&tui.raw, b"\x1b[?1049h").expect("entered the alternate screen");
    let leave = find(&tui.raw, b"\x1b[?1049l");
    assert!(
        leave.is_some_and(|l| l > enter),
        "{what}: leave-alternate-screen sent"
    );
    assert!(
        find(&tui.raw, b"\x1b[?25h").is_some_and(|i| i > enter),
        "{what}: cursor shown again"
    );
    assert!(!tui.parser.screen().hide_cursor(), "{what}: cursor visible");
    let t = tui.master.get_termios().expect("the terminal's modes");
    let flags = format!("{:?}", t.local_flags);
    assert!(
        flags.contains("ICANON") && flags.contains("ECHO"),
        "{what}: raw mode left behind: {flags}"
    );
}

#[test]
fn sighup_sigterm_and_sigquit_restore_the_terminal() {
    for sig in ["HUP", "TERM", "QUIT"] {
        let mut tui = Tui::start(&["demo", "--interval", "1"]);
        tui.wait_for("the demo fleet", |s| {
            s.contains("DEMO") && s.contains("online")
        });
        let t = tui.master.get_termios().expect("the terminal's modes");
        assert!(
            !format!("{:?}", t.local_flags).contains("ICANON"),
            "raw while running"
        );
        tui.signal(sig);
        let status = tui.wait_exit();
        // It ended by itself (a process killed by the signal does not exit successfully).
        let log = tui
            .demo_folder()
            .and_then(|d| std::fs::read_to_string(d.join("plugfleet.log")).ok())
            .unwrap_or_default();
        assert!(status.success(), "SIG{sig}: exit status {status:?}\n{log}");
        assert_terminal_restored(&tui, &format!("SIG{sig}"));
    }
}

/// `demo`, the first plug (HS110(EU) hw 4.0 on 1.0.4) marked, the demo image chosen and the
/// plan confirmed; returns once the plug is flashing.
fn update_until_flashing() -> Tui {
    let mut tui = Tui::start(&["demo", "--interval", "1"]);
    tui.wait_for("the whole demo fleet", |s| {
        s.contains("16 devices") && s.contains("HS110(EU)")
    });
    tui.send("g ");
    tui.wait_for("one mark", |s| s.contains("1 marked"));
    tui.send("U");
    tui.wait_for("the picker", |s| s.contains("hs110v4_eu_1.0.5"));
    tui.send(".");
    tui.wait_for("the plan", |s| {
        s.contains("Update firmware of 1 of 1 plug(s)?")
    });
    tui.send("y");
    tui.wait_for("the plug flashing", |s| s.contains("flashing"));
    tui
}

/// The journal of the run's demo folder: the last stage recorded.
fn last_journal_stage(tui: &Tui) -> String {
    let folder = tui.demo_folder().expect("the demo folder");
    let text = std::fs::read_to_string(folder.join("journal.jsonl")).expect("the journal");
    let last = text.lines().last().expect("a line");
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    v["stage"].as_str().unwrap().to_owned()
}

#[test]
fn q_during_a_flash_asks_then_waits_for_the_verify_and_exits_130() {
    let mut tui = update_until_flashing();
    tui.send("q");
    tui.wait_for("the question", |s| {
        s.contains("1 plug(s) flashing: quitting now still verifies them; q again to quit")
    });
    tui.send("q");
    tui.wait_for("the drain", |s| {
        s.contains("quitting after 1 plug(s) are verified")
    });
    // The progress stays on screen until the plug is verified; then the app quits by itself.
    let status = tui.wait_exit();
    assert_eq!(status.exit_code(), 130, "exit status {status:?}");
    assert_terminal_restored(&tui, "q q");
    assert_eq!(last_journal_stage(&tui), "done");
    // Said on the restored terminal.
    assert!(
        tui.screen()
            .contains("firmware update interrupted: 1 updated and verified"),
        "{}",
        tui.screen()
    );
}

#[test]
fn sigterm_during_a_flash_waits_for_the_verify_without_asking() {
    let mut tui = update_until_flashing();
    tui.signal("TERM");
    tui.wait_for("the drain", |s| {
        s.contains("quitting after 1 plug(s) are verified")
    });
    let status = tui.wait_exit();
    assert_eq!(status.exit_code(), 130, "exit status {status:?}");
    assert_terminal_restored(&tui, "SIGTERM");
    assert_eq!(last_journal_stage(&tui), "done");
    assert!(
        tui.screen()
            .contains("firmware update interrupted: 1 updated and verified"),
        "{}",
        tui.screen()
    );
}

#[test]
fn a_terminal_that_hangs_up_ends_the_tui_at_once() {
    let mut tui = Tui::start(&["demo", "--interval", "1"]);
    tui.wait_for("the demo fleet", |s| {
        s.contains("DEMO") && s.contains("online")
    });
    tui.hang_up();
    let status = tui.wait_exit_unread(std::time::Duration::from_secs(20));
    // It ends by itself, killed neither by SIGHUP nor by an abort: 0 when the SIGHUP is seen
    // first, 1 ("drawing: Input/output error") when a draw on the dead terminal fails first.
    assert_eq!(status.signal(), None, "exit status {status:?}");
    assert!(status.exit_code() <= 1, "exit status {status:?}");
}

#[test]
fn a_terminal_that_hangs_up_mid_flash_still_gets_the_plug_verified() {
    let mut tui = update_until_flashing();
    tui.hang_up();
    // No screen any more: the update runs on, the app quits once the plug is verified.
    let status = tui.wait_exit_unread(std::time::Duration::from_secs(60));
    assert_eq!(status.exit_code(), 130, "exit status {status:?}");
    assert_eq!(last_journal_stage(&tui), "done");
}
