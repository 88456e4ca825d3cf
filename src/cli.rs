//! The top-level command line (clap): [`Cli`] and its [`Command`]s. Each command's own flags
//! live beside it in `cmd/`, the flags shared by several commands in [`crate::cmd::args`].
//! Only `main` uses this module; `cmd` never imports it.

use clap::{Parser, Subcommand};

use crate::cmd;

// Kept so code written before the flags moved to `cmd::args` still compiles; `src/` itself
// imports them from `cmd::args` (tests/architecture.rs checks it).
pub use crate::cmd::args::{
    RecordArgs, TargetArgs, UsageError, given, parse_metrics_addr, parse_seconds,
};

/// Discover, watch and locally update a fleet of TP-Link Kasa smart plugs.
///
/// Without a command, runs the fleet TUI on the real network. Try `plugfleet demo` first: the
/// same TUI on a simulated fleet on loopback.
#[derive(Debug, Parser)]
#[command(name = "plugfleet", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub tui: cmd::tui::TuiArgs,

    /// Config file to use instead of the platform default (see `plugfleet config path`).
    #[arg(long, global = true, value_name = "PATH", env = "PLUGFLEET_CONFIG")]
    pub config: Option<std::path::PathBuf>,

    /// Log verbosity (error, warn, info, debug, trace); logs go to a file, never to the screen.
    #[arg(
        long,
        global = true,
        default_value = "info",
        value_name = "LEVEL",
        env = "PLUGFLEET_LOG_LEVEL"
    )]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The TUI on an embedded simulated fleet on loopback (nothing leaves this machine).
    Demo(cmd::demo::DemoArgs),
    /// Run simulated plugs on loopback addresses until interrupted.
    Sim(cmd::sim::SimArgs),
    /// Find plugs (broadcast, known hosts, TCP sweep, UDP 20002) and print them as they arrive.
    Discover(cmd::discover::DiscoverArgs),
    /// A one-shot snapshot: sysinfo, one reading per meter and its plausibility verdict.
    Status(cmd::status::StatusArgs),
    /// The energy history the plugs keep (days and months of kWh), judged; `--erase` clears it.
    History(cmd::history::HistoryArgs),
    /// Update plugs' firmware from a local image or folder of images.
    Update(cmd::update::UpdateArgs),
    /// Measure discovery, rendering, polling and firmware throughput on simulated fleets.
    Bench(cmd::bench::BenchArgs),
    /// Show where the config file is, write a commented default, or check it.
    Config(cmd::config::ConfigArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::CompletionsArgs),
    /// Print the manual page (roff) of plugfleet or of one command: `plugfleet man | man -l -`.
    Man(cmd::man::ManArgs),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn shared_flags_reach_the_tui() {
        let cli = Cli::try_parse_from(["plugfleet", "--host", "127.0.0.5", "--port", "9998"])
            .expect("parse");
        assert_eq!(cli.tui.net.port, 9998);
        assert_eq!(cli.tui.net.host_specs.len(), 1);
        assert!(cli.command.is_none());
    }
}
