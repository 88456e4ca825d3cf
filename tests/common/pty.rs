//! The real binary in a pseudo-terminal, its screen read through a terminal emulator (vt100),
//! keys sent as a user types them. Shared by the pty tests (`#[path = "common/pty.rs"] mod pty;`).
//! Each run gets a private directory for its log file, data (journals, recordings) and config,
//! removed on drop, so no test reads or writes the user's files.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

pub const ROWS: u16 = 30;
pub const COLS: u16 = 130;

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Tui {
    pub parser: vt100::Parser,
    /// Everything the program wrote, escape sequences included.
    pub raw: Vec<u8>,
    rx: mpsc::Receiver<Vec<u8>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    /// Kept open: dropping it would close the terminal under the child.
    pub master: Box<dyn portable_pty::MasterPty + Send>,
    dir: TempDir,
    /// Tells the reader thread to let go of its end of the terminal ([`Tui::hang_up`]).
    hang_up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Tui {
    /// `plugfleet ARGS` in a 130×30 terminal.
    pub fn start(args: &[&str]) -> Tui {
        Self::start_sized(args, ROWS, COLS, &[])
    }

    /// `plugfleet ARGS` in a `cols`×`rows` terminal with extra environment variables.
    pub fn start_sized(args: &[&str], rows: u16, cols: u16, env: &[(&str, &Path)]) -> Tui {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "plugfleet-pty-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // The demo's own folder goes to TMPDIR: this run's `tmp/`.
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_plugfleet"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("PLUGFLEET_LOG_DIR", &dir);
        cmd.env("TMPDIR", dir.join("tmp"));
        cmd.env("XDG_DATA_HOME", dir.join("data"));
        cmd.env("XDG_CONFIG_HOME", dir.join("config"));
        cmd.env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair.slave.spawn_command(cmd).unwrap();
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let writer = pair.master.take_writer().unwrap();
        let (tx, rx) = mpsc::channel();
        let hang_up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = hang_up.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                if stop.load(Ordering::Relaxed) {
                    // Dropping the reader closes the last copy of the terminal's master side.
                    return;
                }
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
            parser: vt100::Parser::new(rows.try_into().unwrap(), cols.try_into().unwrap(), 0),
            raw: Vec::new(),
            rx,
            writer,
            child,
            master: pair.master,
            dir: TempDir(dir),
            hang_up,
        }
    }

    /// The private directory: log file, `data/` (XDG_DATA_HOME), `config/` (XDG_CONFIG_HOME),
    /// `tmp/` (TMPDIR, where the demo keeps its files).
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The folder `plugfleet demo` wrote into (`tmp/plugfleet-demo-*`), once it has started.
    pub fn demo_folder(&self) -> Option<PathBuf> {
        std::fs::read_dir(self.dir.0.join("tmp"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("plugfleet-demo-"))
            })
    }

    pub fn screen(&self) -> String {
        self.parser.screen().contents()
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
        self.raw.extend_from_slice(bytes);
    }

    /// Feeds output to the emulator until `pred` holds on the screen, or fails at the deadline.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
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
                self.feed(&bytes);
            }
        }
    }

    pub fn send(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Sends a signal (`HUP`, `TERM`, …) to the program, as `kill -NAME` does.
    #[cfg(unix)]
    pub fn signal(&self, name: &str) {
        let pid = self.child.process_id().expect("the child's pid");
        let ok = std::process::Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{name} {pid}");
    }

    /// Closes the terminal under the program, as a terminal emulator that is closed or an ssh
    /// connection that drops does: the kernel sends SIGHUP and the terminal reads and writes fail.
    /// The reader lets go after its next read (the program redraws at least once a second);
    /// output is no longer collected. Then wait with [`Tui::wait_exit_unread`].
    pub fn hang_up(&mut self) {
        self.hang_up.store(true, Ordering::Relaxed);
        // Swap in the master of a fresh, unused terminal so the real one is closed here.
        let spare = native_pty_system()
            .openpty(PtySize {
                rows: 1,
                cols: 1,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        self.writer = Box::new(std::io::sink());
        drop(std::mem::replace(&mut self.master, spare.master));
    }

    /// Waits for the process to exit without reading its output (after [`Tui::hang_up`]).
    pub fn wait_exit_unread(&mut self, within: Duration) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("plugfleet did not exit within {within:?} of the hang-up");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit (and drains its last output).
    pub fn wait_exit(&mut self) -> portable_pty::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            while let Ok(bytes) = self.rx.try_recv() {
                self.feed(&bytes);
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread ends at EOF; take what is left.
                while let Ok(bytes) = self.rx.recv_timeout(Duration::from_millis(300)) {
                    self.feed(&bytes);
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("plugfleet did not exit; screen:\n{}", self.screen());
            }
            if let Ok(bytes) = self.rx.recv_timeout(Duration::from_millis(100)) {
                self.feed(&bytes);
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
