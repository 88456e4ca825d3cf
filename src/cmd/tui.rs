//! `plugfleet` (no command): the fleet TUI on the real network.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::app::state::{App, Settings};
use crate::runtime::{self, Setup, Sources};

use crate::cmd::args::{RecordArgs, TargetArgs, UsageError, parse_metrics_addr, parse_seconds};
use crate::config::Config;
use crate::net::client::ClientConfig;
use crate::net::poller::PollConfig;
use crate::ui::Theme;

/// How the TUI looks at the fleet (shared by `plugfleet` and `plugfleet demo`).
#[derive(Debug, Clone, Args, Default)]
pub struct ViewArgs {
    /// Seconds between reading refreshes [default: 2, or `poll.interval` of the config].
    #[arg(long, value_parser = parse_seconds, value_name = "SECONDS", env = "PLUGFLEET_INTERVAL")]
    pub interval: Option<Duration>,
    /// Disable every write (relay, reboot, firmware); the status bar says so.
    /// PLUGFLEET_READ_ONLY=1 (or true, yes, on) sets it; 0, false, no or off leave it off.
    #[arg(
        long,
        env = "PLUGFLEET_READ_ONLY",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub read_only: bool,
    /// Leave the mouse alone (no click to select or sort, no wheel): the terminal's own
    /// selection and scrolling keep working. PLUGFLEET_NO_MOUSE=1 sets it.
    #[arg(
        long,
        env = "PLUGFLEET_NO_MOUSE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_mouse: bool,
    #[command(flatten)]
    pub record: RecordArgs,
    /// Serve the readings in the Prometheus text format at http://ADDR/metrics
    /// (ADDR = IP:PORT, :PORT or PORT; 127.0.0.1 unless an IP is given).
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub metrics: Option<std::net::SocketAddr>,
}

/// The metrics server of a TUI run: publish on `tx`; the server stops when this is dropped.
pub struct MetricsServer {
    pub tx: tokio::sync::watch::Sender<crate::metrics::MetricsSnapshot>,
    pub url: String,
    _stop: tokio_util::sync::DropGuard,
}

#[derive(Debug, Clone, Args, Default)]
pub struct TuiArgs {
    #[command(flatten)]
    pub net: TargetArgs,
    #[command(flatten)]
    pub view: ViewArgs,
}

/// The poll interval when neither the flag nor the config sets one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

impl ViewArgs {
    pub fn interval(&self) -> Duration {
        self.interval.unwrap_or(DEFAULT_INTERVAL)
    }

    /// Fills what the flags left unset from the config file (flags win).
    pub fn apply_config(&mut self, cfg: &Config) {
        if self.interval.is_none() {
            self.interval = cfg.poll.interval.map(Duration::from_secs_f64);
        }
        if cfg.safety.read_only == Some(true) {
            self.read_only = true;
        }
    }

    pub fn settings(&self, label: Option<String>) -> Settings {
        let epoch_unix_ms = crate::record::unix_ms(std::time::SystemTime::now());
        Settings {
            read_only: self.read_only,
            label,
            interval: self.interval(),
            color: Theme::color_from_env(),
            record: self.record.target(),
            record_default: crate::app::export::default_record_path(epoch_unix_ms),
            epoch_unix_ms,
            mouse: !self.no_mouse,
            ..Settings::default()
        }
    }

    /// Starts the `--metrics` server on `rt`, if asked for (a busy address is an error before
    /// the terminal is taken over).
    pub fn start_metrics(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<Option<MetricsServer>> {
        let Some(addr) = self.metrics else {
            return Ok(None);
        };
        let (tx, rx) = tokio::sync::watch::channel(crate::metrics::MetricsSnapshot::default());
        let token = tokio_util::sync::CancellationToken::new();
        let (local, _task) = rt.block_on(crate::metrics::serve(addr, rx, token.clone()))?;
        Ok(Some(MetricsServer {
            tx,
            url: format!("http://{local}/metrics"),
            _stop: token.drop_guard(),
        }))
    }

    /// Poller settings: the request timeout never exceeds what the interval allows, so a dead
    /// plug is retried on the backoff schedule rather than piling up.
    pub fn poll_config(&self, net: &TargetArgs) -> PollConfig {
        PollConfig {
            interval: self.interval(),
            client: ClientConfig::with_timeout(net.port, net.timeout),
            ..PollConfig::default()
        }
    }
}

/// Restores the terminal when dropped: on return, on error and on unwinding (mouse capture
/// off first, when it was on, then raw mode and the alternate screen).
pub struct TerminalGuard {
    pub mouse: bool,
}

/// Turns crossterm's mouse capture off; errors are ignored (the terminal may be gone).
fn release_mouse() {
    let _ = ratatui::crossterm::execute!(
        std::io::stdout(),
        ratatui::crossterm::event::DisableMouseCapture
    );
}

/// Mouse capture on, and a panic hook that turns it off before the one ratatui installed
/// restores the rest: a panic never leaves the terminal reporting mouse moves as text.
fn capture_mouse() -> std::io::Result<()> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        release_mouse();
        previous(info);
    }));
    ratatui::crossterm::execute!(
        std::io::stdout(),
        ratatui::crossterm::event::EnableMouseCapture
    )
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if self.mouse {
            release_mouse();
        }
        // Not `ratatui::restore`, which prints its error with `eprintln!`: on a terminal that
        // hung up, that print fails and panics.
        if let Err(e) = ratatui::try_restore() {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "plugfleet: cannot restore the terminal: {e}"
            );
        }
    }
}

/// Runs the TUI on `app` with the given sources of devices; the terminal is restored whatever
/// happens (ratatui's init also installs a panic hook that restores it).
pub fn run_tui(
    rt: &tokio::runtime::Runtime,
    app: App,
    setup: Setup,
    sources: Sources,
) -> anyhow::Result<ExitCode> {
    let mut terminal = ratatui::try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up the terminal (is this a terminal?): {e}"))?;
    let mouse = app.settings.mouse;
    let guard = TerminalGuard { mouse };
    if mouse && let Err(e) = capture_mouse() {
        tracing::warn!("cannot capture the mouse: {e}");
    }
    let result = rt.block_on(runtime::run_to_exit(
        &mut terminal,
        app,
        setup,
        runtime::Io::terminal(sources),
        crate::ui::render,
    ));
    // Show the cursor here, where a failure can be ignored: ratatui's `Terminal` would retry on
    // drop and `eprintln!` the error, which panics (and aborts, through the panic hook) when the
    // terminal hung up.
    let cursor_back = terminal.show_cursor().is_ok();
    drop(guard);
    if !cursor_back {
        std::mem::forget(terminal);
    }
    let leaving = result?;
    if let Some(line) = leaving.farewell() {
        use std::io::Write as _;
        // The terminal may be gone (SIGHUP): never panic on this last word.
        let _ = writeln!(std::io::stderr(), "plugfleet: {line}");
    }
    Ok(ExitCode::from(leaving.exit_status()))
}

/// `plugfleet` with the loaded config file `cfg` (`main` loads it and has already filled the
/// network flags the command line left unset: targets, port, timeout). Flags win over the file.
pub fn run(mut args: TuiArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    args.view.apply_config(cfg);
    let sources = runtime::sources::discovery(
        crate::cmd::args::discovery_config(&args.net)?,
        args.view.interval(),
    );
    let mut settings = args.view.settings(None);
    settings.names = crate::fleet::identity::Names::from_config(cfg);
    settings.ratings = crate::fleet::ratings::Overrides::from_config(cfg);
    settings.plausibility = cfg.plausibility.clone();
    settings.account = args.net.credentials();
    // Firmware: the picker starts in the first `[firmware] folders` entry (else here);
    // `concurrency` and the `max_version` ceilings apply to batches as in `plugfleet update`.
    let cwd = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/"));
    settings.firmware_dir = crate::app::firmware::start_dir(Some(cfg), &cwd);
    settings.firmware = crate::app::firmware::FirmwareSettings::from_config(cfg)
        .map_err(|e| UsageError(format!("config: {e}")))?;
    let mut poll = args.view.poll_config(&args.net);
    if let Some(n) = cfg.poll.concurrency {
        poll.concurrency = n.max(1);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let metrics = args.view.start_metrics(&rt)?;
    settings.metrics_url = metrics.as_ref().map(|m| m.url.clone());
    let setup = Setup {
        poll,
        client: ClientConfig::with_timeout(args.net.port, args.net.timeout),
        metrics: metrics.as_ref().map(|m| m.tx.clone()),
    };
    let app = App::new(settings, std::time::Instant::now());
    let result = run_tui(&rt, app, setup, sources);
    drop(metrics);
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::parse(text, std::path::Path::new("t.toml")).unwrap()
    }

    #[test]
    fn flags_win_over_the_config_and_read_only_only_adds() {
        let c = cfg("[poll]\ninterval = 5.0\n[safety]\nread_only = true\n");
        let mut v = ViewArgs::default();
        v.apply_config(&c);
        assert_eq!(v.interval(), Duration::from_secs(5));
        assert!(v.read_only);
        let mut v = ViewArgs {
            interval: Some(Duration::from_secs(1)),
            read_only: false,
            ..ViewArgs::default()
        };
        v.apply_config(&cfg("[poll]\ninterval = 5.0\n"));
        assert_eq!(v.interval(), Duration::from_secs(1));
        assert!(!v.read_only);
        assert_eq!(ViewArgs::default().interval(), DEFAULT_INTERVAL);
    }
}
