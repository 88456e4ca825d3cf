//! `plugfleet` (no command): the fleet TUI on the real network.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::app::runtime::{self, Setup, Sources};
use crate::app::state::{App, Settings};
use crate::cli::{TargetArgs, parse_seconds};
use crate::net::client::ClientConfig;
use crate::net::poller::PollConfig;
use crate::ui::Theme;

/// How the TUI looks at the fleet (shared by `plugfleet` and `plugfleet demo`).
#[derive(Debug, Clone, Args, Default)]
pub struct ViewArgs {
    /// Seconds between reading refreshes.
    #[arg(long, value_parser = parse_seconds, value_name = "SECONDS", default_value = "2")]
    pub interval: Duration,
    /// Disable every write (relay, reboot, firmware); the status bar says so.
    #[arg(long)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Args, Default)]
pub struct TuiArgs {
    #[command(flatten)]
    pub net: TargetArgs,
    #[command(flatten)]
    pub view: ViewArgs,
}

impl ViewArgs {
    pub fn settings(&self, label: Option<String>) -> Settings {
        Settings {
            read_only: self.read_only,
            label,
            interval: self.interval,
            color: Theme::color_from_env(),
            ..Settings::default()
        }
    }

    /// Poller settings: the request timeout never exceeds what the interval allows, so a dead
    /// plug is retried on the backoff schedule rather than piling up.
    pub fn poll_config(&self, net: &TargetArgs) -> PollConfig {
        PollConfig {
            interval: self.interval,
            client: ClientConfig::with_timeout(net.port, net.timeout),
            ..PollConfig::default()
        }
    }
}

/// Restores the terminal when dropped: on return, on error and on unwinding.
pub struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
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
    let guard = TerminalGuard;
    let result = rt.block_on(runtime::run(&mut terminal, app, setup, sources));
    drop(guard);
    result.map(|()| ExitCode::SUCCESS)
}

pub fn run(args: TuiArgs) -> anyhow::Result<ExitCode> {
    let sources = crate::app::sources::discovery(&args.net, args.view.interval)?;
    let mut settings = args.view.settings(None);
    // Firmware: `[firmware]` of the config file (folders, concurrency, max_version).
    let cfg = crate::app::firmware::load_config().map_err(crate::cli::UsageError)?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/"));
    settings.firmware_dir = crate::app::firmware::start_dir(Some(&cfg), &cwd);
    settings.firmware = crate::app::firmware::FirmwareSettings::from_config(&cfg)
        .map_err(|e| crate::cli::UsageError(format!("config: {e}")))?;
    let setup = Setup {
        poll: args.view.poll_config(&args.net),
        client: ClientConfig::with_timeout(args.net.port, args.net.timeout),
    };
    let app = App::new(settings, std::time::Instant::now());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = run_tui(&rt, app, setup, sources);
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}
