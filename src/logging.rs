//! Logging with `tracing` to a file, never to the screen (the TUI owns the terminal).
//!
//! The file is `$PLUGFLEET_LOG_DIR/plugfleet.log`, else under `$XDG_STATE_HOME/plugfleet/`,
//! else `~/.local/state/plugfleet/`, else the temporary directory.

use std::path::PathBuf;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Keeps the log writer alive; logs written before it is dropped are flushed then.
pub struct LogGuard {
    _guard: WorkerGuard,
    pub path: PathBuf,
}

/// Where the log file goes.
pub fn log_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PLUGFLEET_LOG_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("plugfleet");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/state/plugfleet");
    }
    std::env::temp_dir().join("plugfleet")
}

/// Installs the global subscriber writing to the log file at `level` (`info`, `debug`, or a
/// full filter such as `plugfleet=debug`). Keep the guard until exit.
pub fn init(level: &str) -> anyhow::Result<LogGuard> {
    let dir = log_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create the log directory {}: {e}", dir.display()))?;
    let filter =
        EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("bad --log-level `{level}`: {e}"))?;
    let appender = tracing_appender::rolling::never(&dir, "plugfleet.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("logging already set up: {e}"))?;
    Ok(LogGuard {
        _guard: guard,
        path: dir.join("plugfleet.log"),
    })
}
