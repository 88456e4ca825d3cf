//! The flags shared by several commands (`--target/--host/--sweep`, `--record`, `--metrics`),
//! their parsers, and [`UsageError`]. Turning the target flags into a discovery configuration
//! happens here ([`discovery_config`]), so `net` never sees a flag.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use clap::Args;
use ipnet::Ipv4Net;

use crate::net::discovery::{DiscoveryConfig, InvalidDiscoveryConfig, default_broadcast_targets};

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
    /// Allow a sweep larger than a /16 (for `update`, also images of unknown target, the same
    /// version or unrecognised content; never a downgrade, see `--allow-downgrade`).
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

/// An error in what the user asked for (exit status 2), as opposed to a failure while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl From<InvalidDiscoveryConfig> for UsageError {
    fn from(e: InvalidDiscoveryConfig) -> Self {
        UsageError(e.to_string())
    }
}

/// The discovery configuration for the shared target flags. If any of
/// `--target/--host/--sweep` is given only those are used; otherwise the targets are
/// [`default_broadcast_targets`]. Bad input (IPv6 addresses, port 0, a sweep larger than a /16
/// without `--force`) is a [`UsageError`].
pub fn discovery_config(args: &TargetArgs) -> Result<DiscoveryConfig, UsageError> {
    let v4 = |what: &str, ip: &IpAddr| -> Result<Ipv4Addr, UsageError> {
        match ip {
            IpAddr::V4(v4) => Ok(*v4),
            IpAddr::V6(_) => Err(UsageError(format!(
                "{what} {ip}: only IPv4 is supported (Kasa plugs have no IPv6)"
            ))),
        }
    };
    let targets = args
        .targets
        .iter()
        .map(|ip| v4("--target", ip))
        .collect::<Result<Vec<_>, _>>()?;
    let hosts = args
        .hosts
        .iter()
        .map(|ip| v4("--host", ip))
        .collect::<Result<Vec<_>, _>>()?;
    let mut cfg = DiscoveryConfig {
        targets,
        hosts,
        sweeps: args.sweeps.clone(),
        port: args.port,
        timeout: args.timeout,
        ..DiscoveryConfig::default()
    };
    if !args.is_explicit() {
        cfg.targets = default_broadcast_targets();
    }
    cfg.validate(args.force)?;
    Ok(cfg)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{FromArgMatches, Parser};

    /// A stand-in for the top-level command line (which lives in `cli`, above `cmd`).
    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        net: TargetArgs,
    }

    fn parse(args: &[&str]) -> (TargetArgs, clap::ArgMatches) {
        use clap::CommandFactory;
        let m = Flags::command().try_get_matches_from(args).expect("parse");
        let f = Flags::from_arg_matches(&m).expect("from");
        (f.net, m)
    }

    fn cfg() -> crate::config::Config {
        crate::config::Config::parse(
            "[discovery]\nhosts = [\"127.0.0.5\"]\nport = 9998\ntimeout = 1.5\n",
            std::path::Path::new("t.toml"),
        )
        .expect("cfg")
    }

    fn args() -> TargetArgs {
        TargetArgs {
            port: 9999,
            timeout: Duration::from_secs(1),
            ..TargetArgs::default()
        }
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("abc").is_err());
        assert!(parse_seconds("NaN").is_err());
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

    #[test]
    fn explicit_args_replace_the_default_broadcast() {
        let mut a = args();
        a.hosts.push("127.0.0.5".parse().unwrap());
        let cfg = discovery_config(&a).unwrap();
        assert!(cfg.targets.is_empty());
        assert_eq!(cfg.hosts, vec![Ipv4Addr::new(127, 0, 0, 5)]);
    }

    #[test]
    fn no_flags_mean_the_default_broadcast() {
        let cfg = discovery_config(&args()).unwrap();
        assert_eq!(cfg.targets, default_broadcast_targets());
    }

    #[test]
    fn large_sweeps_need_force() {
        let mut a = args();
        a.sweeps.push("10.0.0.0/15".parse().unwrap());
        let e = discovery_config(&a).unwrap_err();
        assert!(e.0.contains("--force"), "{e}");
        a.force = true;
        assert!(discovery_config(&a).is_ok());
        a.force = false;
        a.sweeps = vec!["10.0.0.0/16".parse().unwrap()];
        assert!(discovery_config(&a).is_ok());
        // Several ranges count together.
        a.sweeps.push("10.1.0.0/17".parse().unwrap());
        let e = discovery_config(&a).unwrap_err();
        assert!(e.0.contains("together"), "{e}");
        a.force = true;
        assert!(discovery_config(&a).is_ok());
    }

    #[test]
    fn ipv6_and_port_zero_are_usage_errors() {
        let mut a = args();
        a.hosts.push("::1".parse().unwrap());
        assert!(discovery_config(&a).unwrap_err().0.contains("IPv4"));
        let mut a = args();
        a.targets.push("127.255.255.255".parse().unwrap());
        a.port = 0;
        let e = discovery_config(&a).unwrap_err();
        assert_eq!(e.0, "--port 0 is not a port a plug listens on");
    }
}
