#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end in a pseudo-terminal: `plugfleet demo`, mark a plug, `U`, choose the demo image
//! folder, see the plan, Enter does nothing, `y` confirms; the progress pane follows the update
//! to "updated", the table shows the new version, the journal has the
//! transitions (in the demo's own folder, not the data directory), and the terminal is handed back clean.

#[path = "common/pty.rs"]
mod pty;

use pty::Tui;

#[test]
fn a_firmware_update_from_the_demo_runs_end_to_end() {
    let mut tui = Tui::start(&["demo", "--interval", "1"]);
    tui.wait_for("the whole demo fleet", |s| {
        s.contains("16 devices") && s.contains("HS110(EU)") && s.contains("klap")
    });
    // The first row by IP is the HS110(EU) hw 4.0 on 1.0.4; mark it.
    tui.send("g ");
    tui.wait_for("one mark", |s| s.contains("1 marked"));
    tui.send("U");
    tui.wait_for("the picker in the demo images", |s| {
        s.contains("pick an image") && s.contains("hs110v4_eu_1.0.5_Build_200826_Rel.090312.bin")
    });
    tui.send(".");
    tui.wait_for("the plan", |s| {
        s.contains("Update firmware of 1 of 1 plug(s)?") && s.contains("1.0.4 → 1.0.5")
    });
    assert!(tui.screen().contains("✓ update"));
    // Enter never confirms: after Enter and F (which answers in the status bar, so both keys
    // were handled), the plan is still open.
    tui.send("\rF");
    tui.wait_for("F answered", |s| s.contains("no plug needs the override"));
    assert!(tui.screen().contains("Update firmware of 1 of 1"));
    tui.send("y");
    tui.wait_for("the progress pane", |s| s.contains("Firmware update"));
    tui.wait_for("the plug updated and verified", |s| {
        s.contains("✓ updated") && s.contains("finished")
    });
    tui.wait_for("the new version in the table", |s| s.contains("1.0.5 "));
    tui.send("q");
    let status = tui.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    assert!(!tui.parser.screen().alternate_screen());
    // The demo keeps its journal in its own folder, never in the data directory.
    assert!(!tui.dir().join("data/plugfleet/journal.jsonl").exists());
    let journal = tui
        .demo_folder()
        .expect("the demo folder")
        .join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).expect("the journal in the demo folder");
    assert!(text.contains("\"stage\":\"flash-requested\""), "{text}");
    assert!(text.contains("\"stage\":\"done\""), "{text}");
}
