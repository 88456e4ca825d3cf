//! The flags shared by several commands (`--target/--host/--sweep`, `--record`, `--metrics`),
//! their parsers, and [`UsageError`]. Turning the target flags into a discovery configuration
//! happens here ([`discovery_config`]), so `net` never sees a flag.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use clap::Args;
use ipnet::Ipv4Net;

use crate::net::discovery::{DiscoveryConfig, InvalidDiscoveryConfig, default_broadcast_targets};

/// Where to look for plugs and how to talk to them. Explicit `--target`, `--host` or `--sweep`
/// replace the default (broadcast on every interface). Each has an environment variable
/// (`PLUGFLEET_TARGET`, … ; lists separated by commas); a flag wins over its variable, and both
/// over the config file.
#[derive(Debug, Clone, Args, Default)]
pub struct TargetArgs {
    /// Broadcast address to probe on UDP (repeatable or comma-separated), e.g. 192.168.1.255.
    #[arg(
        long = "target",
        value_name = "ADDR",
        env = "PLUGFLEET_TARGET",
        value_delimiter = ','
    )]
    pub targets: Vec<IpAddr>,
    /// A known plug, probed by unicast (repeatable or comma-separated): an IPv4 address or a
    /// host name, with an optional :PORT (the port of the whole run: one port per run).
    #[arg(
        long = "host",
        id = "host",
        value_name = "HOST[:PORT]",
        env = "PLUGFLEET_HOST",
        value_delimiter = ',',
        value_parser = parse_host
    )]
    pub host_specs: Vec<HostSpec>,
    /// The `--host` plugs' addresses (or the config file's `hosts`), once [`Self::resolve_hosts`]
    /// has looked the names up.
    #[arg(skip)]
    pub hosts: Vec<IpAddr>,
    /// An IPv4 range to sweep over TCP (repeatable or comma-separated), e.g. 192.168.1.0/24.
    #[arg(
        long = "sweep",
        value_name = "CIDR",
        env = "PLUGFLEET_SWEEP",
        value_delimiter = ',',
        value_parser = parse_sweep
    )]
    pub sweeps: Vec<Ipv4Net>,
    /// Allow a sweep larger than a /16 (for `update`, also images of unknown target, the same
    /// version or unrecognised content; never a downgrade, see `--allow-downgrade`).
    #[arg(long)]
    pub force: bool,
    /// The plugs' port.
    #[arg(long, default_value_t = crate::protocol::DEFAULT_PORT, value_name = "P", env = "PLUGFLEET_PORT")]
    pub port: u16,
    /// Per-request timeout in seconds.
    #[arg(
        long,
        default_value = "3",
        value_parser = parse_seconds,
        value_name = "SECONDS",
        env = "PLUGFLEET_TIMEOUT"
    )]
    pub timeout: Duration,
    /// TP-Link account e-mail for newer-protocol (KLAP/AES) plugs.
    #[arg(
        long,
        value_name = "EMAIL",
        env = "PLUGFLEET_USERNAME",
        hide_env_values = true
    )]
    pub username: Option<String>,
    /// The account's password (prefer PLUGFLEET_PASSWORD or the config file: a flag shows in
    /// the process list). Never printed, logged or recorded.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "PLUGFLEET_PASSWORD",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub password: Option<crate::config::Secret>,
}

fn parse_secret(s: &str) -> Result<crate::config::Secret, String> {
    Ok(crate::config::Secret::new(s))
}

/// One `--host` value: an IPv4 address or a host name, and the port if one was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// As given (an address or a name), for messages.
    pub host: String,
    /// The address, when `host` is an IPv4 literal (no lookup needed).
    pub ip: Option<Ipv4Addr>,
    pub port: Option<u16>,
}

impl std::fmt::Display for HostSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Parses `--host HOST[:PORT]`: an IPv4 address or a host name (letters, digits, `-`, `_` and
/// dots, at most 253 characters), optionally `:PORT` (1–65535). IPv6 is refused by name.
pub fn parse_host(s: &str) -> Result<HostSpec, String> {
    let t = s.trim();
    let ipv6 = "only IPv4 is supported (Kasa plugs have no IPv6)";
    if t.parse::<std::net::Ipv6Addr>().is_ok() || t.starts_with('[') {
        return Err(ipv6.into());
    }
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p
                .parse()
                .map_err(|_| format!("`{p}` is not a port (HOST:PORT, PORT 1-65535)"))?;
            if port == 0 {
                return Err("port 0 is not a port a plug listens on".into());
            }
            (h, Some(port))
        }
        None => (t, None),
    };
    if host.is_empty() {
        return Err("the host is empty (an IPv4 address or a host name)".into());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(HostSpec {
            host: host.to_owned(),
            ip: Some(ip),
            port,
        });
    }
    let name_ok = host.len() <= 253
        && host
            .split('.')
            .all(|l| (1..=63).contains(&l.len()))
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        // All digits and dots is a malformed address (127.0.0.300), not a name.
        && !host.chars().all(|c| c.is_ascii_digit() || c == '.');
    if !name_ok {
        return Err(format!(
            "`{}` is neither an IPv4 address nor a host name",
            crate::text::printable(host, 80)
        ));
    }
    Ok(HostSpec {
        host: host.to_owned(),
        ip: None,
        port,
    })
}

/// Parses `--sweep CIDR` (an IPv4 range such as 192.168.1.0/24) with a message that says what
/// is wrong: a prefix length over 32, a missing prefix, or no IPv4 range at all.
pub fn parse_sweep(s: &str) -> Result<Ipv4Net, String> {
    let t = s.trim();
    if let Ok(net) = t.parse::<Ipv4Net>() {
        return Ok(net);
    }
    let shown = crate::text::printable(t, 80);
    match t.split_once('/') {
        Some((addr, len)) if addr.parse::<Ipv4Addr>().is_ok() => match len.parse::<u32>() {
            Ok(n) if n > 32 => Err(format!("prefix length must be ≤ 32 (`{shown}` has /{n})")),
            _ => Err(format!(
                "`{shown}`: the prefix length after `/` must be a number from 0 to 32"
            )),
        },
        None if t.parse::<Ipv4Addr>().is_ok() => Err(format!(
            "`{shown}` has no prefix length: write a range such as {t}/24 (or {t}/32 for one \
             address)"
        )),
        _ => Err(format!(
            "`{shown}` is not an IPv4 range such as 192.168.1.0/24"
        )),
    }
}

/// How long a host name lookup may take before it counts as failed.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

impl TargetArgs {
    /// True when the user named targets, hosts or sweeps (no default broadcast then).
    pub fn is_explicit(&self) -> bool {
        !(self.targets.is_empty()
            && self.hosts.is_empty()
            && self.host_specs.is_empty()
            && self.sweeps.is_empty())
    }

    /// Turns the `--host` values into addresses (names looked up with tokio, each bounded by
    /// [`LOOKUP_TIMEOUT`]) appended to [`Self::hosts`], and applies a `HOST:PORT` port to the
    /// run. Call after [`Self::apply_config`]; `port_given` is true when `--port` (or
    /// `PLUGFLEET_PORT`) was set.
    ///
    /// The discovery engine probes one port per run, so the ports named in `HOST:PORT` must
    /// agree with each other, with `--port` if given, and — when other hosts without a port,
    /// targets or sweeps are probed too — with the port those use. A name that cannot be
    /// looked up or has no IPv4 address is a [`UsageError`].
    pub fn resolve_hosts(&mut self, port_given: bool) -> Result<(), UsageError> {
        if self.host_specs.is_empty() {
            return Ok(());
        }
        let mut port: Option<(u16, &HostSpec)> = None;
        for h in &self.host_specs {
            if let Some(p) = h.port {
                match port {
                    Some((q, other)) if q != p => {
                        return Err(UsageError(format!(
                            "--host {h} and --host {other} name different ports: one run \
                             probes one port"
                        )));
                    }
                    _ => port = Some((p, h)),
                }
            }
        }
        if let Some((p, h)) = port
            && p != self.port
        {
            let others = self.host_specs.iter().any(|s| s.port.is_none())
                || !self.targets.is_empty()
                || !self.sweeps.is_empty();
            if port_given {
                return Err(UsageError(format!(
                    "--host {h} names port {p} but --port is {}: one run probes one port",
                    self.port
                )));
            }
            if others {
                return Err(UsageError(format!(
                    "--host {h} names port {p} while the other hosts, targets or sweeps use \
                     port {}: one run probes one port (give --port {p}, or the port on each \
                     --host)",
                    self.port
                )));
            }
            self.port = p;
        }
        let names: Vec<&HostSpec> = self.host_specs.iter().filter(|h| h.ip.is_none()).collect();
        let looked_up = if names.is_empty() {
            Vec::new()
        } else {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| UsageError(format!("cannot look up host names: {e}")))?;
            let found = rt.block_on(async {
                let mut out = Vec::with_capacity(names.len());
                for h in &names {
                    out.push(lookup_v4(&h.host, self.port).await);
                }
                out
            });
            // A lookup stuck in the system resolver is not waited for.
            rt.shutdown_timeout(Duration::from_millis(100));
            found
        };
        let mut looked_up = looked_up.into_iter();
        for h in &self.host_specs {
            let ip = match h.ip {
                Some(ip) => ip,
                None => looked_up
                    .next()
                    .unwrap_or_else(|| Err(format!("`{}` was not looked up", h.host)))
                    .map_err(|e| UsageError(format!("--host {h}: {e}")))?,
            };
            let ip = IpAddr::V4(ip);
            if !self.hosts.contains(&ip) {
                self.hosts.push(ip);
            }
        }
        Ok(())
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
        // The account comes whole from one place: flags/env, else the file.
        let c = &cfg.credentials;
        if self.username.is_none() && self.password.is_none() {
            self.username = c.username.clone();
            self.password = c.password.clone();
        }
    }

    /// The TP-Link account for newer-protocol plugs: a user name (with its password, blank
    /// when none is given), or `None` when no user name is configured.
    pub fn credentials(&self) -> Option<crate::net::klap::Credentials> {
        let user = self.username.as_deref()?;
        Some(crate::net::klap::Credentials::new(
            user,
            self.password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default(),
        ))
    }
}

/// The first IPv4 address `name` has (tokio's lookup, at most [`LOOKUP_TIMEOUT`]).
async fn lookup_v4(name: &str, port: u16) -> Result<Ipv4Addr, String> {
    let found = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((name, port)))
        .await
        .map_err(|_| {
            format!(
                "looking up `{name}` took more than {} s",
                LOOKUP_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("cannot look up `{name}`: {e}"))?;
    let mut v6 = false;
    for a in found {
        match a.ip() {
            IpAddr::V4(ip) => return Ok(ip),
            IpAddr::V6(_) => v6 = true,
        }
    }
    Err(if v6 {
        format!("`{name}` has only IPv6 addresses (Kasa plugs have no IPv6)")
    } else {
        format!("`{name}` has no address")
    })
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

/// True when `id` was given on the command line or by its environment variable (not
/// defaulted): then it wins over the config file.
pub fn given(matches: &clap::ArgMatches, id: &str) -> bool {
    matches!(
        matches
            .try_get_raw(id)
            .ok()
            .flatten()
            .and(matches.value_source(id)),
        Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
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

    fn spec(s: &str) -> HostSpec {
        parse_host(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn hosts_are_addresses_or_names_with_an_optional_port() {
        assert_eq!(
            spec("127.0.0.5"),
            HostSpec {
                host: "127.0.0.5".into(),
                ip: Some(Ipv4Addr::new(127, 0, 0, 5)),
                port: None
            }
        );
        assert_eq!(spec("127.0.0.5:10000").port, Some(10000));
        let n = spec("plug-3.lan:9999");
        assert_eq!(
            (n.host.as_str(), n.ip, n.port),
            ("plug-3.lan", None, Some(9999))
        );
        assert_eq!(n.to_string(), "plug-3.lan:9999");
        assert_eq!(spec(" localhost ").host, "localhost");
        for (bad, why) in [
            ("::1", "IPv4"),
            ("[::1]:9999", "IPv4"),
            ("fe80::1", "IPv4"),
            ("127.0.0.1:0", "port 0"),
            ("127.0.0.1:65536", "not a port"),
            ("127.0.0.1:", "not a port"),
            ("plug:x", "not a port"),
            ("", "empty"),
            (":9999", "empty"),
            ("127.0.0.300", "neither"),
            ("a b", "neither"),
            ("plug..lan", "neither"),
            ("plug\u{1b}[2J", "neither"),
        ] {
            let e = parse_host(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(
                !e.contains('\u{1b}'),
                "{bad:?}: the message is printable: {e:?}"
            );
        }
        assert!(parse_host(&"a".repeat(254)).is_err());
    }

    #[test]
    fn sweeps_say_what_is_wrong() {
        assert_eq!(
            parse_sweep("127.0.0.0/30"),
            Ok("127.0.0.0/30".parse().unwrap())
        );
        let e = parse_sweep("127.0.0.0/33").unwrap_err();
        assert!(e.starts_with("prefix length must be ≤ 32"), "{e}");
        assert!(parse_sweep("127.0.0.0/999").unwrap_err().contains("≤ 32"));
        assert!(parse_sweep("127.0.0.0/x").unwrap_err().contains("0 to 32"));
        assert!(
            parse_sweep("127.0.0.0")
                .unwrap_err()
                .contains("no prefix length")
        );
        assert!(
            parse_sweep("nope/24")
                .unwrap_err()
                .contains("not an IPv4 range")
        );
    }

    fn with_hosts(list: &[&str]) -> TargetArgs {
        TargetArgs {
            host_specs: list.iter().map(|h| spec(h)).collect(),
            ..args()
        }
    }

    #[test]
    fn host_ports_set_the_run_port_when_nothing_disagrees() {
        let mut a = with_hosts(&["127.0.0.5:10000", "127.0.0.6:10000"]);
        a.resolve_hosts(false).unwrap();
        assert_eq!(a.port, 10000);
        assert_eq!(
            a.hosts,
            vec![
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6))
            ]
        );
        // The same as --port, or the same as the run's port: fine.
        let mut a = with_hosts(&["127.0.0.5:9999", "127.0.0.6"]);
        a.resolve_hosts(true).unwrap();
        assert_eq!(a.port, 9999);
        // No port anywhere: --port stays.
        let mut a = with_hosts(&["127.0.0.5"]);
        a.resolve_hosts(false).unwrap();
        assert_eq!(a.port, 9999);
        assert!(a.is_explicit());
    }

    #[test]
    fn host_ports_that_disagree_are_usage_errors() {
        let e = with_hosts(&["127.0.0.5:10000", "127.0.0.6:10001"])
            .resolve_hosts(false)
            .unwrap_err();
        assert!(e.0.contains("different ports"), "{e}");
        let e = with_hosts(&["127.0.0.5:10000"])
            .resolve_hosts(true)
            .unwrap_err();
        assert!(e.0.contains("--port is 9999"), "{e}");
        let e = with_hosts(&["127.0.0.5:10000", "127.0.0.6"])
            .resolve_hosts(false)
            .unwrap_err();
        assert!(e.0.contains("one port"), "{e}");
        let mut a = with_hosts(&["127.0.0.5:10000"]);
        a.sweeps.push("127.0.1.0/30".parse().unwrap());
        assert!(a.resolve_hosts(false).is_err());
    }

    #[test]
    fn localhost_is_looked_up_to_its_ipv4_address() {
        // Only `localhost` is ever looked up in tests (it never leaves the machine).
        let mut a = with_hosts(&["localhost:10000", "127.0.0.1:10000"]);
        a.resolve_hosts(false).unwrap();
        assert_eq!(a.port, 10000);
        let ip = a.hosts.first().copied().expect("an address");
        assert!(ip.is_loopback(), "{ip}");
        // The same address named twice is probed once.
        assert_eq!(a.hosts.len(), 1, "{:?}", a.hosts);
    }
}
