//! Command-line definitions (clap). Each command's own flags live beside it in `cmd/`; the
//! flags shared by every command that talks to plugs are here.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipnet::Ipv4Net;

use crate::cmd;

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
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,

    /// Log verbosity (error, warn, info, debug, trace); logs go to a file, never to the screen.
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL")]
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
    /// Update plugs' firmware from a local image or folder of images.
    Update(cmd::update::UpdateArgs),
    /// Measure discovery, rendering, polling and firmware throughput on simulated fleets.
    Bench(cmd::bench::BenchArgs),
    /// Show where the config file is, write a commented default, or check it.
    Config(cmd::config::ConfigArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::CompletionsArgs),
}

/// Where to look for plugs and how to talk to them. Explicit `--target`, `--host` or `--sweep`
/// replace the default (broadcast on every interface).
#[derive(Debug, Clone, Args, Default)]
pub struct TargetArgs {
    /// Broadcast address to probe on UDP (repeatable), e.g. 192.168.1.255.
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<IpAddr>,
    /// A known plug address, probed by unicast (repeatable).
    #[arg(long = "host", value_name = "ADDR")]
    pub hosts: Vec<IpAddr>,
    /// An IPv4 range to sweep over TCP (repeatable), e.g. 192.168.1.0/24.
    #[arg(long = "sweep", value_name = "CIDR")]
    pub sweeps: Vec<Ipv4Net>,
    /// Allow a sweep larger than a /16 (for `update`, also images of unknown target or the same version).
    #[arg(long)]
    pub force: bool,
    /// The plugs' port.
    #[arg(long, default_value_t = crate::protocol::DEFAULT_PORT, value_name = "P")]
    pub port: u16,
    /// Per-request timeout in seconds.
    #[arg(long, default_value = "3", value_parser = parse_seconds, value_name = "SECONDS")]
    pub timeout: Duration,
}

impl TargetArgs {
    /// True when the user named targets, hosts or sweeps (no default broadcast then).
    pub fn is_explicit(&self) -> bool {
        !(self.targets.is_empty() && self.hosts.is_empty() && self.sweeps.is_empty())
    }
}

/// Parses a positive number of seconds (fractions allowed), at most one day.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!(
            "`{s}` must be more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// An error in what the user asked for (exit status 2), as opposed to a failure while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("abc").is_err());
        assert!(parse_seconds("NaN").is_err());
    }
}

/// True when `id` was given on the command line (not defaulted, not from the environment).
pub fn given(matches: &clap::ArgMatches, id: &str) -> bool {
    matches!(
        matches
            .try_get_raw(id)
            .ok()
            .flatten()
            .and(matches.value_source(id)),
        Some(clap::parser::ValueSource::CommandLine)
    )
}

impl TargetArgs {
    /// Fills what the command line left unset from the config file: flags always win, and
    /// explicit targets, hosts or sweeps on the command line replace the file's lists whole.
    pub fn apply_config(&mut self, cfg: &crate::config::Config, matches: &clap::ArgMatches) {
        let d = &cfg.discovery;
        if !self.is_explicit() {
            self.targets = d.targets.clone();
            self.hosts = d.hosts.clone();
            self.sweeps = d.sweeps.clone();
        }
        if let Some(port) = d.port
            && !given(matches, "port")
        {
            self.port = port;
        }
        if let Some(t) = d.timeout
            && !given(matches, "timeout")
        {
            self.timeout = Duration::from_secs_f64(t);
        }
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn parse(args: &[&str]) -> (TargetArgs, clap::ArgMatches) {
        let m = Cli::command().try_get_matches_from(args).expect("parse");
        let cli = Cli::from_arg_matches(&m).expect("from");
        (cli.tui.net, m)
    }

    fn cfg() -> crate::config::Config {
        crate::config::Config::parse(
            "[discovery]\nhosts = [\"127.0.0.5\"]\nport = 9998\ntimeout = 1.5\n",
            std::path::Path::new("t.toml"),
        )
        .expect("cfg")
    }

    #[test]
    fn config_fills_what_flags_left_unset() {
        let (mut a, m) = parse(&["plugfleet"]);
        a.apply_config(&cfg(), &m);
        assert_eq!(a.port, 9998);
        assert_eq!(a.timeout, Duration::from_millis(1500));
        assert_eq!(a.hosts, vec!["127.0.0.5".parse::<IpAddr>().expect("ip")]);
    }

    #[test]
    fn flags_override_config() {
        let (mut a, m) = parse(&["plugfleet", "--port", "9999", "--sweep", "127.0.3.0/24"]);
        a.apply_config(&cfg(), &m);
        assert_eq!(a.port, 9999, "flag wins even when equal to the default");
        assert!(
            a.hosts.is_empty(),
            "explicit sweep replaces the file's hosts"
        );
        assert_eq!(a.timeout, Duration::from_millis(1500));
    }
}

/// `--record FILE [--record-format csv|jsonl]`: shared by the TUI, `demo` and `status`.
#[derive(Debug, Clone, Args, Default)]
pub struct RecordArgs {
    /// Append every reading with its verdict and reasons to FILE (JSON lines; CSV when FILE
    /// ends in `.csv`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
    /// Format of the --record file (csv or jsonl) [default: from the file's extension].
    #[arg(long, value_name = "FORMAT", requires = "record", value_parser = parse_record_format)]
    pub record_format: Option<crate::record::RecordFormat>,
}

impl RecordArgs {
    /// The file and its format, when `--record` was given.
    pub fn target(&self) -> Option<(std::path::PathBuf, crate::record::RecordFormat)> {
        let path = self.record.clone()?;
        let format = self
            .record_format
            .unwrap_or_else(|| crate::record::RecordFormat::from_path(&path));
        Some((path, format))
    }
}

fn parse_record_format(s: &str) -> Result<crate::record::RecordFormat, String> {
    s.parse()
}

/// Parses `--metrics ADDR` (`IP:PORT`, `:PORT` or `PORT`; the last two on 127.0.0.1).
pub fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    crate::metrics::parse_listen_addr(s).map_err(|e| e.to_string())
}
