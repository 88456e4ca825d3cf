//! Logging with `tracing` to a file, never to the screen (the TUI owns the terminal), and to a
//! bounded in-memory ring of the most recent lines that the TUI shows on a key ([`recent`]).
//!
//! The file is `$PLUGFLEET_LOG_DIR/plugfleet.log`, else under `$XDG_STATE_HOME/plugfleet/`,
//! else `~/.local/state/plugfleet/` (on Windows `%LOCALAPPDATA%\plugfleet\data\logs\`), else
//! the temporary directory; `plugfleet demo` logs into its
//! own temporary folder instead ([`init_in`]).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// Lines the in-memory ring keeps.
pub const RING_LINES: usize = 200;
/// A longer log line is cut to this many characters in the ring (the file keeps it whole).
const RING_LINE_MAX: usize = 500;

/// Keeps the log writer alive; logs written before it is dropped are flushed then.
pub struct LogGuard {
    _guard: Option<WorkerGuard>,
    /// The log file, when one could be opened.
    pub path: Option<PathBuf>,
    /// Why there is no log file (the in-memory ring still works), to be shown once.
    pub no_file: Option<String>,
}

/// Where the log file goes.
pub fn log_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PLUGFLEET_LOG_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("plugfleet");
    }
    #[cfg(unix)]
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/state/plugfleet");
    }
    // Windows: %LOCALAPPDATA%\plugfleet\data\logs (HOME is not its convention).
    #[cfg(not(unix))]
    if let Some(d) = directories::ProjectDirs::from("", "", "plugfleet") {
        return d.data_local_dir().join("logs");
    }
    std::env::temp_dir().join("plugfleet")
}

/// The most recent log lines, oldest first, at most `cap`. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct LogRing {
    lines: Arc<Mutex<VecDeque<String>>>,
    cap: usize,
}

impl LogRing {
    pub fn new(cap: usize) -> Self {
        Self {
            lines: Arc::new(Mutex::new(VecDeque::with_capacity(cap.min(1024)))),
            cap: cap.max(1),
        }
    }

    /// Appends a line, forgetting the oldest beyond the capacity.
    pub fn push(&self, line: String) {
        let mut l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        while l.len() >= self.cap {
            l.pop_front();
        }
        l.push_back(line);
    }

    /// A copy of the lines, oldest first.
    pub fn snapshot(&self) -> Vec<String> {
        let l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        l.iter().cloned().collect()
    }
}

/// Collects an event's message and fields as `message key=value …`.
#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

/// `HH:MM:SS` (UTC) of `t`.
fn clock(t: SystemTime) -> String {
    let s = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A `tracing` layer that writes each event as one line into a [`LogRing`].
pub struct RingLayer {
    ring: LogRing,
}

impl RingLayer {
    pub fn new(ring: LogRing) -> Self {
        Self { ring }
    }
}

impl<S: tracing::Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut v = LineVisitor::default();
        event.record(&mut v);
        let meta = event.metadata();
        let mut line = format!(
            "{} {:>5} {}: {}{}",
            clock(SystemTime::now()),
            meta.level(),
            meta.target(),
            v.message,
            v.fields
        );
        // One screen line per entry: device-supplied text may carry newlines or escapes.
        line = crate::text::printable(&line, RING_LINE_MAX);
        self.ring.push(line);
    }
}

static RING: OnceLock<LogRing> = OnceLock::new();

/// The ring [`init`] installed, if logging is set up.
pub fn ring() -> Option<&'static LogRing> {
    RING.get()
}

/// The most recent log lines (oldest first); empty when logging is not set up.
pub fn recent() -> Vec<String> {
    ring().map(LogRing::snapshot).unwrap_or_default()
}

/// Opens (creating it and its directory if needed) the log file in `dir` for appending.
fn open_log_file(dir: &Path) -> Result<(std::fs::File, PathBuf), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
    let path = dir.join("plugfleet.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
    Ok((file, path))
}

/// Installs the global subscriber writing to the log file at `level` (`info`, `debug`, or a
/// full filter such as `plugfleet=debug`), and to the in-memory ring of the last
/// [`RING_LINES`] lines. Keep the guard until exit.
///
/// A log file that cannot be created (read-only or missing directory, `/sys`, a path under a
/// regular file) is no error: logging goes on to the ring only and [`LogGuard::no_file`] says
/// why, for the caller to warn once. Errors are a bad `level` and a second call.
pub fn init(level: &str) -> anyhow::Result<LogGuard> {
    init_in(level, &log_dir())
}

/// [`init`] with the log file in `dir` instead of [`log_dir`] (the demo logs into its own
/// temporary folder).
pub fn init_in(level: &str, dir: &Path) -> anyhow::Result<LogGuard> {
    let filter =
        EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("bad --log-level `{level}`: {e}"))?;
    let ring = RING.get_or_init(|| LogRing::new(RING_LINES)).clone();
    let (file_layer, guard, path, no_file) = match open_log_file(dir) {
        Ok((file, path)) => {
            let (writer, guard) = tracing_appender::non_blocking(file);
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false);
            (Some(layer), Some(guard), Some(path), None)
        }
        Err(why) => (None, None, None, Some(why)),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(file_layer)
        .with(RingLayer::new(ring))
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging already set up: {e}"))?;
    Ok(LogGuard {
        _guard: guard,
        path,
        no_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_only_the_newest_lines() {
        let r = LogRing::new(3);
        for i in 0..5 {
            r.push(format!("line {i}"));
        }
        assert_eq!(r.snapshot(), vec!["line 2", "line 3", "line 4"]);
    }

    #[test]
    fn the_layer_writes_one_clean_line_per_event_with_its_fields() {
        let ring = LogRing::new(10);
        let sub = tracing_subscriber::registry().with(RingLayer::new(ring.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(ip = "127.0.0.9", "plug said\nsomething");
            tracing::info!("second");
        });
        let lines = ring.snapshot();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].ends_with(
                " WARN plugfleet::logging::tests: plug said\u{FFFD}something ip=127.0.0.9"
            ),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with(" INFO plugfleet::logging::tests: second"));
        assert!(!lines[0].contains('\n'));
    }

    #[test]
    fn a_log_file_under_a_regular_file_cannot_be_opened_and_says_why() {
        let base = std::env::temp_dir().join(format!("pf-log-{}", std::process::id()));
        std::fs::create_dir_all(&base).expect("dir");
        let file = base.join("file");
        std::fs::write(&file, b"x").expect("write");
        let e = open_log_file(&file.join("sub")).expect_err("not a directory");
        assert!(e.starts_with("cannot create the log directory"), "{e}");
        assert!(e.contains("file/sub"), "{e}");
        // A directory is fine, and the file is appended to.
        let (_, p) = open_log_file(&base).expect("opens");
        assert_eq!(p, base.join("plugfleet.log"));
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn clock_is_utc_hours_minutes_seconds() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 3 + 3600 * 13 + 62);
        assert_eq!(clock(t), "13:01:02");
    }
}
