//! `plugfleet status`: a headless snapshot of every device found — sysinfo, one reading per
//! meter (per outlet on strips) and the plausibility verdict — as an aligned table or, with
//! `--json`, one JSON object per line per device.
//!
//! One model, one read path: a discovery pass ([`find`]: the same probes as
//! `plugfleet discover`) and one poll round with the poller's [`poll_device`] go into the fleet
//! model ([`round`]); the JSON lines and the table are views of it (`status/view.rs`), like the
//! `--record` rows and `/metrics` (which, with `--metrics`, reads a round every `--interval`
//! into the same model).

use std::collections::HashSet;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cmd::args::{TargetArgs, UsageError, discovery_config};
use crate::fleet::identity::Names;
use crate::fleet::model::{Fleet, Link, OFFLINE_AFTER, Sighting};
use crate::fleet::ratings::Overrides;
use crate::net::ClientConfig;
use crate::net::discovery::{self, DiscoveryConfig};
use crate::net::klap::Credentials;
use crate::net::newer::{NewerSpec, Sessions};
use crate::net::poller::{PollReport, poll_device};
use crate::protocol::access::Refusal;
use crate::protocol::sighting::DiscoveryEvent;
use crate::protocol::tdp::TDP_PORT;

pub use view::{json_line, render_table, same_device_json, same_device_text};

mod view;

/// Devices read at once.
const CONCURRENCY: usize = 32;

#[derive(Debug, Clone, Args, Default)]
pub struct StatusArgs {
    #[command(flatten)]
    pub net: TargetArgs,
    /// One JSON object per line per device (discovery keys, relay_state, rssi, emeter,
    /// plausibility; strips list their outlets in `children`).
    #[arg(long)]
    pub json: bool,
    /// UDP port of the newer devices' discovery probe (tests use a free port).
    #[arg(long, default_value_t = TDP_PORT, value_name = "P", hide = true)]
    pub tdp_port: u16,
    #[command(flatten)]
    pub record: crate::cmd::args::RecordArgs,
    /// Keep running and serve the readings in the Prometheus text format at
    /// http://ADDR/metrics (ADDR = IP:PORT, :PORT or PORT; 127.0.0.1 unless an IP is given),
    /// reading every device each --interval, until Ctrl-C. With --record, every round's
    /// readings are appended to the file too.
    #[arg(long, value_name = "ADDR", value_parser = crate::cmd::args::parse_metrics_addr, conflicts_with_all = ["json"])]
    pub metrics: Option<std::net::SocketAddr>,
    /// Seconds between rounds with --metrics.
    #[arg(long, value_parser = crate::cmd::args::parse_seconds, value_name = "SECONDS", default_value = "10", requires = "metrics")]
    pub interval: std::time::Duration,
    /// Local names by MAC (from the config file), for --record and --metrics.
    #[arg(skip)]
    pub names: crate::fleet::identity::Names,
    /// Rating overrides per model (from the config file).
    #[arg(skip)]
    pub ratings: Overrides,
    /// The quiet rules (config `[plausibility]`).
    #[arg(skip)]
    pub plausibility: Box<crate::fleet::quiet::QuietRules>,
}

impl StatusArgs {
    /// The discovery configuration, or a usage error (exit status 2).
    pub fn config(&self) -> Result<DiscoveryConfig, UsageError> {
        let mut cfg = discovery_config(&self.net)?;
        cfg.tdp_port = self.tdp_port;
        cfg.validate(self.net.force)?;
        Ok(cfg)
    }
}

/// What discovery saw besides devices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindReport {
    /// `--host` addresses that did not answer.
    pub silent_hosts: Vec<IpAddr>,
    /// Replies that were counted and ignored (garbage, wrong shape, …).
    pub hostile: usize,
    /// Why a `--host` address's reply was unusable (`bad reply: length … over the 64 KiB cap`).
    pub bad_replies: Vec<(IpAddr, String)>,
    /// Probes that could not be sent.
    pub send_errors: Vec<String>,
}

impl FindReport {
    /// Why a silent `--host` gave nothing: its unusable reply, else "no answer".
    pub fn reason_for(&self, ip: IpAddr) -> String {
        self.bad_replies
            .iter()
            .find(|(bad, _)| *bad == ip)
            .map_or_else(|| "no answer".to_owned(), |(_, r)| r.clone())
    }
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config()?;
    let hosts = cfg.hosts.clone();
    let client = ClientConfig::with_timeout(cfg.port, cfg.timeout);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some(addr) = args.metrics {
        return rt.block_on(serve_metrics(addr, &args, cfg, client));
    }
    // Open the record file first: a file that cannot be written stops us before any plug is
    // contacted.
    let mut recorder = match args.record.target() {
        Some((path, format)) => Some(crate::record::Recorder::open_as(path, format)?),
        None => None,
    };
    let mut fleet = Fleet::new(Instant::now());
    fleet.rules = (*args.plausibility).clone();
    let account = args.net.credentials();
    let report = rt
        .block_on(round_read_with(
            &mut fleet,
            cfg,
            client,
            (&args.ratings, &args.names),
            (account.as_ref(), &Sessions::new()),
        ))?
        .0;
    let devices = fleet.by_address();
    if let Some(rec) = recorder.as_mut() {
        let at = crate::record::unix_ms(std::time::SystemTime::now());
        for d in &devices {
            rec.write_all(&crate::record::rows_of(d, at))?;
        }
        rec.flush()?;
    }
    for ip in &report.silent_hosts {
        // A reply that came but could not be used says why; "no answer" is for silence.
        eprintln!("plugfleet: {ip}: {}", report.reason_for(*ip));
    }
    for e in &report.send_errors {
        eprintln!("plugfleet: warning: could not send to {e}");
    }
    if report.hostile > 0 && !args.json {
        eprintln!(
            "plugfleet: ignored {} unusable repl{}",
            report.hostile,
            if report.hostile == 1 { "y" } else { "ies" }
        );
    }
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    // Named hosts where the plug listed at another address answered too.
    let same: Vec<(IpAddr, &crate::fleet::model::Device)> = hosts
        .iter()
        .map(|h| IpAddr::V4(*h))
        .filter(|ip| !devices.iter().any(|d| d.addr.ip() == *ip))
        .filter_map(|ip| fleet.same_device_as(ip).map(|d| (ip, d)))
        .collect();
    if args.json {
        for d in &devices {
            writeln!(out, "{}", json_line(d, &fleet))?;
        }
        for (ip, d) in &same {
            writeln!(out, "{}", same_device_json(*ip, d))?;
        }
    } else if devices.is_empty() {
        writeln!(out, "no devices found")?;
    } else {
        write!(out, "{}", render_table(&devices))?;
        for (ip, d) in &same {
            writeln!(out, "{ip}: {}", same_device_text(d))?;
        }
    }
    out.flush()?;
    let answered = devices
        .iter()
        .any(|d| d.sysinfo.is_some() || d.tdp.is_some());
    // A newer-protocol plug that refused the account (or needs one) was not read: exit 3.
    let refused = devices.iter().any(|d| {
        matches!(
            d.refusal,
            Some(Refusal::AuthFailed | Refusal::NeedsCredentials)
        )
    });
    Ok(if !answered || !report.silent_hosts.is_empty() {
        ExitCode::FAILURE
    } else if refused {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// `status --metrics ADDR`: serves `/metrics` on `addr` and reads a round into one fleet model
/// every `--interval` (the first round at once) until SIGINT/SIGTERM. The URL goes to stdout
/// first (with the bound port when ADDR asked for port 0).
async fn serve_metrics(
    addr: std::net::SocketAddr,
    args: &StatusArgs,
    cfg: DiscoveryConfig,
    client: ClientConfig,
) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    // Open the record file first: a file that cannot be written stops us before any plug is
    // contacted (and before the endpoint is served).
    let recorder = match args.record.target() {
        Some((path, format)) => Some(crate::record::Recorder::open_as(path, format)?),
        None => None,
    };
    let signals = crate::cmd::sim::Signals::new()?;
    let (tx, rx) = tokio::sync::watch::channel(crate::metrics::MetricsSnapshot::default());
    let token = CancellationToken::new();
    let (local, server) = crate::metrics::serve(addr, rx, token.clone()).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "metrics at http://{local}/metrics")?;
        out.flush()?;
    }
    eprintln!("plugfleet: reading every {:?}; Ctrl-C stops", args.interval);
    let mut poll = tokio::spawn(poll_publish_record(
        cfg,
        client,
        args.names.clone(),
        (args.ratings.clone(), (*args.plausibility).clone()),
        args.interval,
        tx,
        token.clone(),
        recorder,
        args.net.credentials(),
    ));
    // Until a signal, or until the rounds stop on their own (a record write error).
    let ended = tokio::select! {
        () = signals.wait() => None,
        r = &mut poll => Some(r),
    };
    token.cancel();
    let ended = match ended {
        Some(r) => r,
        None => poll.await,
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
    ended??;
    Ok(ExitCode::SUCCESS)
}

/// Headless publishing: a [`round`] into one fleet model every `interval`, each published on
/// `tx` as a metrics view of the model, until `token` is cancelled. Counts carry on in the
/// model; a device that vanished stays, down. A round that fails (discovery could not start)
/// publishes nothing.
pub async fn poll_and_publish(
    cfg: DiscoveryConfig,
    client: ClientConfig,
    names: Names,
    rules: (Overrides, crate::fleet::quiet::QuietRules),
    interval: std::time::Duration,
    tx: tokio::sync::watch::Sender<crate::metrics::MetricsSnapshot>,
    token: CancellationToken,
) {
    let r = poll_publish_record(cfg, client, names, rules, interval, tx, token, None, None).await;
    if let Err(e) = r {
        tracing::error!("metrics rounds stopped: {e:#}");
    }
}

/// [`poll_and_publish`], and with `recorder` (`status --metrics … --record FILE`) every
/// meter a round read is appended to it, with the model's verdict, reasons and quiet
/// findings (history-based ones included, as the model judged them over the rounds). A write
/// error ends the rounds with it. Newer-protocol plugs are read with `account`, each over one
/// session kept across the rounds (one handshake per plug, not one per round).
#[allow(clippy::too_many_arguments)]
pub async fn poll_publish_record(
    cfg: DiscoveryConfig,
    client: ClientConfig,
    names: Names,
    (ratings, rules): (Overrides, crate::fleet::quiet::QuietRules),
    interval: std::time::Duration,
    tx: tokio::sync::watch::Sender<crate::metrics::MetricsSnapshot>,
    token: CancellationToken,
    mut recorder: Option<crate::record::Recorder>,
    account: Option<Credentials>,
) -> anyhow::Result<()> {
    let mut fleet = Fleet::new(Instant::now());
    fleet.rules = rules;
    let sessions = Sessions::new();
    loop {
        let done = tokio::select! {
            _ = token.cancelled() => return Ok(()),
            r = round_read_with(&mut fleet, cfg.clone(), client, (&ratings, &names), (account.as_ref(), &sessions)) => r,
        };
        match done {
            Ok((_, read)) => {
                if let Some(rec) = recorder.as_mut() {
                    let at = crate::record::unix_ms(std::time::SystemTime::now());
                    for (key, meters) in &read {
                        if let Some(d) = fleet.get(key) {
                            rec.write_all(&crate::record::rows_for(d, meters, at))?;
                        }
                    }
                    rec.flush()?;
                }
                tx.send_replace(crate::metrics::view::snapshot(&fleet, Instant::now()));
            }
            Err(e) => tracing::warn!("metrics round failed: {e:#}"),
        }
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One discovery pass, then one poll of every port-9999 device of `fleet` (at most
/// [`CONCURRENCY`] at once; every request under `client`'s timeouts) with the poller's
/// [`poll_device`], all into the model. A device the pass did not find and that does not
/// answer is offline at once (one pass is all `status` has).
pub async fn round(
    fleet: &mut Fleet,
    cfg: DiscoveryConfig,
    client: ClientConfig,
    ratings: &Overrides,
    names: &Names,
) -> anyhow::Result<FindReport> {
    Ok(round_read(fleet, cfg, client, ratings, names).await?.0)
}

/// The meters one [`round`] read, by device key (what [`crate::record::rows_for`] records).
pub type RoundRead = Vec<(String, Vec<Option<String>>)>;

/// [`round`], also saying which meters of which devices it read successfully.
pub async fn round_read(
    fleet: &mut Fleet,
    cfg: DiscoveryConfig,
    client: ClientConfig,
    ratings: &Overrides,
    names: &Names,
) -> anyhow::Result<(FindReport, RoundRead)> {
    round_read_with(
        fleet,
        cfg,
        client,
        (ratings, names),
        (None, &Sessions::new()),
    )
    .await
}

/// [`round_read`], reading the newer-protocol (KLAP/AES) devices too with `account` (the
/// default and blank credentials are tried after it, or alone without one), each over its
/// session in `sessions` (kept from an earlier round with the same store: no handshake then).
pub async fn round_read_with(
    fleet: &mut Fleet,
    cfg: DiscoveryConfig,
    client: ClientConfig,
    (ratings, names): (&Overrides, &Names),
    (account, sessions): (Option<&Credentials>, &Sessions),
) -> anyhow::Result<(FindReport, RoundRead)> {
    let started = Instant::now();
    let port = cfg.port;
    let (sightings, report) = find(cfg).await?;
    for s in sightings {
        fleet.observe(s, names, Instant::now());
    }
    // A named host that did not answer is listed, offline, with why.
    for ip in &report.silent_hosts {
        fleet.unanswered(
            std::net::SocketAddr::new(*ip, port),
            report.reason_for(*ip),
            Instant::now(),
        );
    }
    let seen: HashSet<String> = fleet
        .devices
        .values()
        .filter(|d| d.last_seen.is_some_and(|t| t >= started))
        .map(|d| d.key.clone())
        .collect();
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    let mut set = JoinSet::new();
    for d in fleet
        .devices
        .values()
        .filter(|d| d.sysinfo.is_some() && d.access.is_none())
    {
        let sem = sem.clone();
        let (key, addr) = (d.key.clone(), d.addr);
        let misses = if seen.contains(&d.key) {
            match d.link {
                Link::Failing(n) => n.saturating_add(1),
                Link::Offline(_) => OFFLINE_AFTER,
                _ => 1,
            }
        } else {
            OFFLINE_AFTER
        };
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let t = tokio::time::Instant::now();
            let outcome = poll_device(addr, &client).await;
            PollReport {
                key,
                addr,
                misses: if outcome.is_ok() { 0 } else { misses },
                outcome,
                elapsed: t.elapsed(),
            }
        });
    }
    // Newer-protocol devices: over the transport their UDP 20002 reply names.
    for d in fleet.devices.values() {
        let (Some(access), Some(tdp)) = (d.access, d.tdp.as_ref()) else {
            continue;
        };
        let spec = NewerSpec {
            access,
            model: tdp.model.clone(),
            account: account.cloned(),
        };
        let (sem, sessions) = (sem.clone(), sessions.clone());
        let (key, addr) = (d.key.clone(), d.addr);
        let budget = client.reply_timeout;
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let t = tokio::time::Instant::now();
            let (outcome, _) = sessions.poll(&key, addr.ip(), &spec, budget).await;
            let outcome = outcome.map(Into::into);
            PollReport {
                key,
                addr,
                misses: if outcome.is_ok() { 0 } else { OFFLINE_AFTER },
                outcome,
                elapsed: t.elapsed(),
            }
        });
    }
    let mut reports = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(r) => reports.push(r),
            Err(e) => tracing::error!("status task failed: {e}"),
        }
    }
    reports.sort_by_key(|r| r.addr);
    let mut read = Vec::new();
    for r in reports {
        let key = r.key.clone();
        let applied = fleet.apply_poll(
            crate::app::event::poll_of(r),
            ratings,
            names,
            Instant::now(),
        );
        if !applied.read.is_empty() {
            read.push((key, applied.read));
        }
    }
    // Voltage against the fleet, once per round (it needs no history).
    fleet.judge_voltages(Instant::now());
    Ok((report, read))
}

/// One discovery pass (broadcast targets, known hosts, sweeps, UDP 20002 — exactly what
/// `plugfleet discover` does): the sightings, for the fleet model to merge. Ctrl-C ends it
/// early.
pub async fn find(cfg: DiscoveryConfig) -> anyhow::Result<(Vec<Sighting>, FindReport)> {
    let hosts = cfg.hosts.clone();
    let (tx, mut rx) = mpsc::channel::<DiscoveryEvent>(1024);
    let token = CancellationToken::new();
    let task = discovery::spawn(cfg, tx, token.clone());
    let ctrl_c = token.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ctrl_c.cancel();
        }
    });
    let mut sightings = Vec::new();
    let mut report = FindReport::default();
    while let Some(ev) = rx.recv().await {
        match ev {
            DiscoveryEvent::Hostile { from, reason } => {
                report.hostile += 1;
                tracing::info!(%from, %reason, "ignored a reply");
                if hosts.iter().any(|h| IpAddr::V4(*h) == from.ip()) {
                    report.bad_replies.push((from.ip(), reason.to_string()));
                }
            }
            DiscoveryEvent::RoundDone { send_errors, .. } => {
                report.send_errors.extend(send_errors);
            }
            DiscoveryEvent::Found(s) => sightings.push(Sighting::from(s)),
            _ => {}
        }
    }
    watcher.abort();
    task.await??;
    report.silent_hosts = hosts
        .into_iter()
        .map(IpAddr::V4)
        .filter(|ip| !sightings.iter().any(|s| s.ip == *ip))
        .collect();
    Ok((sightings, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bad_args_are_usage_errors() {
        let mut args = StatusArgs {
            net: TargetArgs {
                port: 9999,
                timeout: Duration::from_secs(1),
                sweeps: vec!["127.0.0.0/8".parse().expect("net")],
                ..TargetArgs::default()
            },
            json: false,
            tdp_port: TDP_PORT,
            ..StatusArgs::default()
        };
        let e = args.config().expect_err("too big");
        assert!(e.0.contains("--force"), "{e}");
        args.net.force = true;
        assert!(args.config().is_ok());
        args.net.sweeps = vec!["127.1.0.0/24".parse().expect("net")];
        args.net.force = false;
        let cfg = args.config().expect("ok");
        assert!(
            cfg.targets.is_empty(),
            "explicit sweeps replace the default broadcast"
        );
        args.net.hosts = vec!["::1".parse().expect("v6")];
        assert!(args.config().is_err());
        args.net.hosts.clear();
        args.net.port = 0;
        assert!(args.config().is_err());
        args.net.port = 9999;
        args.tdp_port = 0;
        assert!(args.config().is_err());
    }
}
