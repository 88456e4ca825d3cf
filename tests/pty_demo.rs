#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end: the real binary runs `plugfleet demo` in a pseudo-terminal; we read its screen
//! with a terminal emulator, press keys like a user, quit with `q`, and check that the terminal
//! was handed back clean (alternate screen left, cursor shown, cooked mode back).

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
    master: Box<dyn portable_pty::MasterPty + Send>,
    _logs: tempdir::Dir,
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
        let logs = std::env::temp_dir().join(format!("plugfleet-pty-{}", std::process::id()));
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_plugfleet"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("PLUGFLEET_LOG_DIR", &logs);
        cmd.env_remove("NO_COLOR");
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
            master: pair.master,
            _logs: tempdir::Dir(logs),
        }
    }

    fn screen(&self) -> String {
        self.parser.screen().contents()
    }

    /// Feeds output to the emulator until `pred` holds on the screen, or fails at the deadline.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
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
    if let Some(t) = tui.master.get_termios() {
        let flags = format!("{:?}", t.local_flags);
        assert!(!flags.contains("ICANON"), "raw mode while running: {flags}");
    }
    tui.wait_for("a bogus plug", |s| {
        s.contains("BOGUS") && s.contains("klap")
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
