#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end in a pseudo-terminal: `plugfleet demo`, mark a plug, `U`, choose the demo image
//! folder, see the plan, Enter does nothing, `y` confirms; the progress pane follows the update
//! to "updated", the table shows the new version, the journal in the data directory has the
//! transitions, and the terminal is handed back clean.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const ROWS: u16 = 30;
const COLS: u16 = 130;

struct Tui {
    parser: vt100::Parser,
    raw: Vec<u8>,
    rx: mpsc::Receiver<Vec<u8>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    /// Kept open: dropping it would close the terminal under the child.
    _master: Box<dyn portable_pty::MasterPty + Send>,
    logs: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop (for the log file).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Tui {
    fn start(args: &[&str]) -> Tui {
        let pty = native_pty_system();
        let pair = pty
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let logs = std::env::temp_dir().join(format!("plugfleet-pty-fw-{}", std::process::id()));
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_plugfleet"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("PLUGFLEET_LOG_DIR", &logs);
        cmd.env_remove("NO_COLOR");
        // A private data dir (the update journal) and config dir (no user config).
        cmd.env("XDG_DATA_HOME", logs.join("data"));
        cmd.env("XDG_CONFIG_HOME", logs.join("config"));
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Tui {
            parser: vt100::Parser::new(ROWS.try_into().unwrap(), COLS.try_into().unwrap(), 0),
            raw: Vec::new(),
            rx,
            writer,
            child,
            _master: pair.master,
            logs: tempdir::Dir(logs),
        }
    }

    fn screen(&self) -> String {
        self.parser.screen().contents()
    }

    /// Feeds output to the emulator until `pred` holds on the screen, or fails at the deadline.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            if pred(&self.screen()) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; screen:\n{}",
                self.screen()
            );
            if let Ok(bytes) = self.rx.recv_timeout(left.min(Duration::from_millis(200))) {
                self.parser.process(&bytes);
                self.raw.extend_from_slice(&bytes);
            }
        }
    }

    fn send(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Waits for the process to exit (and drains its last output).
    fn wait_exit(&mut self) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            while let Ok(bytes) = self.rx.try_recv() {
                self.parser.process(&bytes);
                self.raw.extend_from_slice(&bytes);
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread ends at EOF; take what is left.
                while let Ok(bytes) = self.rx.recv_timeout(Duration::from_millis(300)) {
                    self.parser.process(&bytes);
                    self.raw.extend_from_slice(&bytes);
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("plugfleet did not exit; screen:\n{}", self.screen());
            }
            if let Ok(bytes) = self.rx.recv_timeout(Duration::from_millis(100)) {
                self.parser.process(&bytes);
                self.raw.extend_from_slice(&bytes);
            }
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
    }
}

#[test]
fn a_firmware_update_from_the_demo_runs_end_to_end() {
    let mut tui = Tui::start(&["demo", "--interval", "1"]);
    tui.wait_for("the whole demo fleet", |s| {
        s.contains("12 devices") && s.contains("HS110(EU)") && s.contains("klap")
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
    let journal = tui.logs.0.join("data/plugfleet/journal.jsonl");
    let text = std::fs::read_to_string(&journal).expect("the journal in the data directory");
    assert!(text.contains("\"stage\":\"flash-requested\""), "{text}");
    assert!(text.contains("\"stage\":\"done\""), "{text}");
}
