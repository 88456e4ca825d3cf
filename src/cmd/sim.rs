//! `plugfleet sim`: simulated plugs on loopback addresses until SIGINT/SIGTERM, one JSON line
//! per plug on stdout once they are all listening.
//!
//! The simulator's counters (connections, requests, downloads started / completed / failed,
//! images rejected, flashes, premature flash attempts, outages) are printed as one JSON line
//! `{"stats":{…totals…,"plugs":[{"ip":…,…}]}}` on exit (SIGINT, SIGTERM), on SIGUSR1, and when
//! a line `stats` is read on stdin, so tests and benchmarks assert on numbers rather than logs.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::ExitCode;

use clap::Args;

use crate::cmd::args::UsageError;
use crate::sim::{self, FaultKind, FleetSpec, PlugHandle, PlugStats, SimError};

#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Number of plugs (default: one of each profile).
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// Address of the first plug; the others follow (must be in 127.0.0.0/8).
    #[arg(long, default_value = "127.0.0.2", value_name = "IP")]
    pub base: Ipv4Addr,
    /// Port every plug listens on (0 = pick a free one, printed in the JSON lines).
    #[arg(long, default_value_t = crate::protocol::DEFAULT_PORT, value_name = "P")]
    pub port: u16,
    /// UDP discovery port of newer-protocol plugs (0 = pick a free one).
    #[arg(long, default_value_t = crate::protocol::tdp::TDP_PORT, value_name = "P")]
    pub tdp_port: u16,
    /// Profile to use (repeatable; plugs cycle through the list). Default: a mixed fleet.
    /// Known: hs110-eu-hw1, hs110-us-hw1, hs110-eu-hw4, kp115-us-hw1, hs100-us-hw2,
    /// hs300-us-hw2, hs105-us-hw1, kp303-us-hw2, hs100-uk-hw4-klap (or a model such as HS110(EU));
    /// outside the default fleet: kp125m-us-hw1-smart and ep25-us-hw2-smart (SMART over KLAP
    /// v2), kp125m-us-hw1-smart-https (the same over TLS), p304m-uk-hw1-smart and
    /// p300-eu-hw1-smart (SMART strips, metered per outlet or not), p110-eu-hw1-aes (SMART over
    /// AES securePassthrough), kl130-eu-hw1 (bulb), kl430-us-hw2 (light strip), hs220-us-hw1
    /// (dimmer), c210-eu-hw2-camera (camera: UDP 20002 only).
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Multiplies every simulated duration (reboot, flash, download, slow, flaky): 0.1 = 10× faster.
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub time_scale: f64,
    /// The plugs' time zone as an offset from UTC (`+01:00`, `-08:00`, `+05:45`, `0`): their
    /// `time.get_time` and their day and month statistics follow local time, as a real
    /// plug's do after the Kasa app set its zone.
    #[arg(long, default_value = "0", value_name = "±HH:MM", value_parser = parse_utc_offset, allow_hyphen_values = true)]
    pub utc_offset: i64,
    /// Give the plug at IP a fault (repeatable), e.g. 127.0.0.3=bogus-28kw. Kinds: bogus-28kw,
    /// glitch-28kw, unit-scale, hang, garbage, truncated, oversized, slow (or slow:MS), refuse,
    /// ignore-broadcast, download-drop, download-stall, image-reject, never-back, old-version,
    /// hang-after-flash, flaky, stuck-meter, counter-lag, voltage-drift (or voltage-drift:PCT),
    /// phantom-load, close-after-reply, history-glitch, hang-daystat.
    #[arg(long = "fault", value_name = "IP=KIND")]
    pub faults: Vec<String>,
    /// Also accept the images listed in FILE (JSON, the shape of assets/profiles/images.json:
    /// {"images":[{"sha256","model","hw","sw_ver"}]}); the demo images are always accepted.
    #[arg(long = "accept-images", value_name = "FILE")]
    pub accept_images: Option<std::path::PathBuf>,
    /// HTTP port of the newer-protocol (KLAP/AES) plugs (0 = pick a free one; printed as
    /// `http_port` in their JSON lines).
    #[arg(long, default_value_t = 0, value_name = "P")]
    pub klap_port: u16,
    /// The TP-Link account the KLAP plugs are bound to (printed in their JSON lines).
    #[arg(long, default_value = sim::klap::DEFAULT_USERNAME, value_name = "EMAIL")]
    pub username: String,
    /// The account's password (a simulator's, printed in the KLAP plugs' JSON lines).
    #[arg(long, default_value = sim::klap::DEFAULT_PASSWORD, value_name = "PW")]
    pub password: String,
    /// Give the KLAP plug at IP a fault (repeatable). Kinds: wrong-credentials, session-expiry,
    /// handshake-hang, garbage-ciphertext, tls-hang (an HTTPS plug: TCP accepted, TLS handshake
    /// never answered); for SMART strips children-endless, children-10000, children-garbled (a
    /// hostile child list).
    #[arg(long = "klap-fault", value_name = "IP=KIND")]
    pub klap_faults: Vec<String>,
}

impl Default for SimArgs {
    fn default() -> Self {
        Self {
            count: None,
            base: Ipv4Addr::new(127, 0, 0, 2),
            port: crate::protocol::DEFAULT_PORT,
            tdp_port: crate::protocol::tdp::TDP_PORT,
            profiles: Vec::new(),
            time_scale: 1.0,
            utc_offset: 0,
            faults: Vec::new(),
            accept_images: None,
            klap_port: 0,
            username: sim::klap::DEFAULT_USERNAME.into(),
            password: sim::klap::DEFAULT_PASSWORD.into(),
            klap_faults: Vec::new(),
        }
    }
}

/// Largest `--accept-images` file read.
const MAX_IMAGE_LIST: u64 = 1024 * 1024;

/// Reads an `--accept-images` file: a regular file of at most 1 MiB in the manifest's shape.
fn read_image_list(path: &std::path::Path) -> Result<Vec<sim::KnownImage>, UsageError> {
    let shown = path.display();
    let bad = |why: String| UsageError(format!("--accept-images {shown}: {why}"));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > MAX_IMAGE_LIST {
        return Err(bad(format!(
            "{} bytes, more than the {MAX_IMAGE_LIST} allowed",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    sim::images::parse_list(&text).map_err(bad)
}

/// Parses `IP=KIND`.
pub fn parse_fault(s: &str) -> Result<(Ipv4Addr, FaultKind), UsageError> {
    let (ip, kind) = s.split_once('=').ok_or_else(|| {
        UsageError(format!(
            "--fault `{s}` must be IP=KIND, e.g. 127.0.0.3=bogus-28kw"
        ))
    })?;
    let ip: Ipv4Addr = ip
        .trim()
        .parse()
        .map_err(|_| UsageError(format!("--fault `{s}`: `{ip}` is not an IPv4 address")))?;
    let kind: FaultKind = kind
        .parse()
        .map_err(|e| UsageError(format!("--fault `{s}`: {e}")))?;
    Ok((ip, kind))
}

/// Builds the KLAP side's spec from the flags.
pub fn klap_spec_from_args(args: &SimArgs) -> Result<sim::klap::KlapSpec, UsageError> {
    let faults = args
        .klap_faults
        .iter()
        .map(|f| {
            let (ip, kind) = f.split_once('=').ok_or_else(|| {
                UsageError(format!(
                    "--klap-fault `{f}` must be IP=KIND, e.g. 127.0.0.10=wrong-credentials"
                ))
            })?;
            let ip: Ipv4Addr = ip.trim().parse().map_err(|_| {
                UsageError(format!("--klap-fault `{f}`: `{ip}` is not an IPv4 address"))
            })?;
            let kind: sim::klap::KlapFault = kind
                .parse()
                .map_err(|e| UsageError(format!("--klap-fault `{f}`: {e}")))?;
            Ok((ip, kind))
        })
        .collect::<Result<Vec<_>, UsageError>>()?;
    Ok(sim::klap::KlapSpec {
        port: args.klap_port,
        username: args.username.clone(),
        password: args.password.clone(),
        faults,
        ..sim::klap::KlapSpec::default()
    })
}

/// A plug's JSON line: the plug, plus for a KLAP plug its HTTP port, dialect and the account.
fn plug_line(
    p: &PlugHandle,
    klap: &sim::klap::KlapFleet,
    spec: &sim::klap::KlapSpec,
) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    if let (Some(o), Some(d)) = (v.as_object_mut(), klap.device(p.ip)) {
        o.insert("http_port".into(), serde_json::json!(d.http_port));
        o.insert("transport".into(), serde_json::json!(d.transport));
        if d.https {
            // Served over TLS (test-only self-signed certificate, assets/tls/).
            o.insert("https".into(), serde_json::json!(true));
        }
        match d.transport {
            sim::klap::Transport::Klap => {
                o.insert("klap_version".into(), serde_json::json!(d.klap_version));
            }
            sim::klap::Transport::Aes => {
                let lv = if d.login_v2 { 2 } else { 1 };
                o.insert("login_version".into(), serde_json::json!(lv));
            }
        }
        o.insert("dialect".into(), serde_json::json!(d.dialect));
        o.insert("username".into(), serde_json::json!(spec.username));
        o.insert("password".into(), serde_json::json!(spec.password));
        if !d.faults.is_empty() {
            o.insert("klap_faults".into(), serde_json::json!(d.faults));
        }
    }
    v
}

/// Builds the fleet spec from the flags (usage errors are [`UsageError`]).
pub fn spec_from_args(args: &SimArgs) -> Result<FleetSpec, UsageError> {
    if !args.base.is_loopback() {
        return Err(UsageError(format!(
            "--base {} is not a loopback address: the simulator only runs on 127.0.0.0/8",
            args.base
        )));
    }
    let faults = args
        .faults
        .iter()
        .map(|f| parse_fault(f))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = FleetSpec {
        base: args.base,
        count: args.count.unwrap_or_else(|| {
            if args.profiles.is_empty() {
                sim::profile::all().len()
            } else {
                args.profiles.len()
            }
        }),
        port: args.port,
        tdp_port: args.tdp_port,
        profiles: args.profiles.clone(),
        time_scale: args.time_scale,
        clock_rate: 1.0,
        utc_offset_s: args.utc_offset,
        faults,
        images: match &args.accept_images {
            Some(p) => read_image_list(p)?,
            None => Vec::new(),
        },
    };
    Ok(spec)
}

/// `±HH:MM` (or `±HH`, or `0`) → seconds east of UTC, within −12:00 … +14:00.
fn parse_utc_offset(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t == "0" || t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Ok(0);
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(format!("`{t}`: give a sign, e.g. +01:00 or -08:00")),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let h: i64 = h
        .parse()
        .map_err(|_| format!("`{t}`: hours are not a number"))?;
    let m: i64 = m
        .parse()
        .map_err(|_| format!("`{t}`: minutes are not a number"))?;
    if !(0..60).contains(&m) || m % 15 != 0 {
        return Err(format!("`{t}`: minutes must be 00, 15, 30 or 45"));
    }
    let off = sign * (h * 3600 + m * 60);
    if !(-12 * 3600..=14 * 3600).contains(&off) {
        return Err(format!("`{t}`: outside -12:00 … +14:00"));
    }
    Ok(off)
}

fn map_err(e: SimError) -> anyhow::Error {
    match e {
        SimError::Invalid(msg) => UsageError(msg).into(),
        other => anyhow::Error::new(other),
    }
}

pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let spec = spec_from_args(&args)?;
    let klap_spec = klap_spec_from_args(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // Listen for signals before announcing readiness, so a signal right after the JSON
        // lines still ends the simulator cleanly.
        let signals = Signals::new()?;
        let fleet = sim::start(spec).await.map_err(map_err)?;
        let klap = sim::klap::serve(&fleet, &klap_spec)
            .await
            .map_err(map_err)?;
        {
            let mut out = std::io::stdout().lock();
            for p in fleet.plugs() {
                serde_json::to_writer(&mut out, &plug_line(p, &klap, &klap_spec))?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        let plugs: Vec<PlugHandle> = fleet.plugs().to_vec();
        let mut requests = stats_requests();
        let mut wait = std::pin::pin!(signals.wait());
        loop {
            tokio::select! {
                () = &mut wait => break,
                Some(()) = requests.recv() => print_stats(&plugs)?,
            }
        }
        klap.shutdown().await;
        fleet.shutdown().await;
        print_stats(&plugs)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The `{"stats":{…}}` object: fleet totals, then one entry per plug.
pub fn stats_json(plugs: &[PlugHandle]) -> serde_json::Value {
    let mut total = PlugStats::default();
    let mut per_plug = Vec::with_capacity(plugs.len());
    for p in plugs {
        let s = p.stats();
        total.add(&s);
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("ip".into(), serde_json::json!(p.ip.to_string()));
        }
        per_plug.push(v);
    }
    let mut v = serde_json::to_value(total).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("plugs".into(), serde_json::Value::Array(per_plug));
    }
    serde_json::json!({ "stats": v })
}

fn print_stats(plugs: &[PlugHandle]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &stats_json(plugs))?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// One message per stats request: SIGUSR1 (unix) or a `stats` line on stdin. Stdin is read on a
/// plain thread (a blocking read would hold up the runtime's shutdown); its end or an error stops
/// only that reader.
fn stats_requests() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let stdin_tx = tx.clone();
    let spawned = std::thread::Builder::new()
        .name("sim-stdin".into())
        .spawn(move || {
            use std::io::BufRead;
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { return };
                match line.trim() {
                    "stats" => {
                        if stdin_tx.blocking_send(()).is_err() {
                            return;
                        }
                    }
                    "" => {}
                    // Debug formatting escapes control characters.
                    other => eprintln!(
                        "plugfleet sim: unknown command {:?} on stdin (known: stats)",
                        other.chars().take(40).collect::<String>()
                    ),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot read stats requests from stdin: {e}");
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::user_defined1()) {
            Ok(mut usr1) => {
                tokio::spawn(async move {
                    while usr1.recv().await.is_some() {
                        if tx.send(()).await.is_err() {
                            return;
                        }
                    }
                });
            }
            Err(e) => tracing::warn!("cannot listen for SIGUSR1: {e}"),
        }
    }
    rx
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere).
pub(crate) struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    pub(crate) async fn wait(self) {
        #[cfg(unix)]
        {
            let mut s = self;
            tokio::select! {
                _ = s.int.recv() => {}
                _ = s.term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse() {
        assert_eq!(
            parse_fault("127.0.0.3=bogus-28kw").expect("ok"),
            (Ipv4Addr::new(127, 0, 0, 3), FaultKind::Bogus28kw)
        );
        assert!(parse_fault("127.0.0.3").is_err());
        assert!(parse_fault("localhost=hang").is_err());
        assert!(parse_fault("127.0.0.3=explode").is_err());
    }

    #[test]
    fn utc_offsets_parse_as_zones_do() {
        assert_eq!(parse_utc_offset("0"), Ok(0));
        assert_eq!(parse_utc_offset("+01:00"), Ok(3600));
        assert_eq!(parse_utc_offset("-08:00"), Ok(-8 * 3600));
        assert_eq!(parse_utc_offset("+05:45"), Ok(5 * 3600 + 45 * 60));
        assert_eq!(parse_utc_offset("+14"), Ok(14 * 3600));
        assert_eq!(parse_utc_offset("-12:00"), Ok(-12 * 3600));
        for bad in ["+15:00", "-12:30", "01:00", "+1:07", "+x", "+01:60", ""] {
            assert!(parse_utc_offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_loopback_base_is_a_usage_error() {
        let args = SimArgs {
            base: Ipv4Addr::new(192, 168, 1, 2),
            ..SimArgs::default()
        };
        assert!(spec_from_args(&args).is_err());
    }
}
