//! `plugfleet status`: a headless snapshot of every device found — sysinfo, one reading per
//! meter (per outlet on strips) and the plausibility verdict — as an aligned table or, with
//! `--json`, one JSON object per line per device.
//!
//! Three steps, one way: find devices with the discovery engine ([`find`]: the same probes as
//! `plugfleet discover`, merged by the fleet registry), read each one's meters with bounded
//! concurrency and a timeout per request ([`read_device`]), then render ([`json_line`],
//! [`render_table`]). Rendering is pure and unit-tested.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cmd::args::{TargetArgs, UsageError, discovery_config};
use crate::fleet::plausibility::{Assessment, Meter, Verdict, strip_summary, strip_total};
use crate::fleet::ratings::{Limits, Overrides};
use crate::fleet::reading::{Field, Reading};
use crate::fleet::registry::{Device, Registry};
use crate::net::discovery::{self, DiscoveryConfig};
use crate::net::{Client, ClientConfig};
use crate::protocol::sighting::DiscoveryEvent;
use crate::protocol::tdp::TDP_PORT;
use crate::protocol::{ChildInfo, Realtime};

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
    /// reading every device each --interval, until Ctrl-C.
    #[arg(long, value_name = "ADDR", value_parser = crate::cmd::args::parse_metrics_addr, conflicts_with_all = ["json", "record"])]
    pub metrics: Option<std::net::SocketAddr>,
    /// Seconds between rounds with --metrics.
    #[arg(long, value_parser = crate::cmd::args::parse_seconds, value_name = "SECONDS", default_value = "10", requires = "metrics")]
    pub interval: std::time::Duration,
    /// Local names by MAC (from the config file), for --record and --metrics.
    #[arg(skip)]
    pub names: crate::identity::Names,
    /// Rating overrides per model (from the config file).
    #[arg(skip)]
    pub ratings: Overrides,
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

/// What became of one meter.
#[derive(Debug, Clone, PartialEq)]
pub enum MeterState {
    /// The device has no energy meter.
    Absent,
    Read {
        realtime: Realtime,
        assessment: Assessment,
    },
    /// The meter could not be read (timeout, device error, …).
    Failed(String),
}

impl MeterState {
    fn reading(&self) -> Option<(Reading, &Assessment)> {
        match self {
            MeterState::Read {
                realtime,
                assessment,
            } => Some((Reading::from(realtime), assessment)),
            _ => None,
        }
    }
}

/// One outlet of a strip.
#[derive(Debug, Clone, PartialEq)]
pub struct OutletStatus {
    pub info: ChildInfo,
    pub meter: MeterState,
}

/// Everything `status` knows about one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    /// The device as discovery knows it (sysinfo for port-9999 devices, the UDP 20002 answer
    /// for newer ones).
    pub device: Device,
    /// A plug's own meter; for strips, the sum of the outlets (python-kasa's way).
    pub reading: Option<Reading>,
    pub meter_error: Option<String>,
    pub plausibility: Option<Assessment>,
    /// A plug's reply as sent (not kept for strips: see the outlets).
    pub raw: Option<Value>,
    pub outlets: Vec<OutletStatus>,
}

impl DeviceStatus {
    fn is_strip(&self) -> bool {
        self.device
            .sysinfo
            .as_ref()
            .is_some_and(|s| !s.children.is_empty())
    }

    /// A device that was found but not read (a newer-protocol device).
    pub fn unread(device: Device) -> Self {
        Self {
            device,
            reading: None,
            meter_error: None,
            plausibility: None,
            raw: None,
            outlets: Vec::new(),
        }
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

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config()?;
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
    let (statuses, report) = rt.block_on(snapshot(cfg, client, &args.ratings))?;
    if let Some(rec) = recorder.as_mut() {
        let at = crate::record::unix_ms(std::time::SystemTime::now());
        for s in &statuses {
            let recs: Vec<_> = crate::record::ReadingRecord::from_status(at, s)
                .into_iter()
                .map(|r| r.with_names(&args.names))
                .collect();
            rec.write_all(&recs)?;
        }
        rec.flush()?;
    }
    for ip in &report.silent_hosts {
        // A reply that came but could not be used says why; "no answer" is for silence.
        match report.bad_replies.iter().find(|(bad, _)| bad == ip) {
            Some((_, reason)) => eprintln!("plugfleet: {ip}: {reason}"),
            None => eprintln!("plugfleet: {ip}: no answer"),
        }
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
    if args.json {
        for s in &statuses {
            writeln!(out, "{}", json_line(s))?;
        }
    } else if statuses.is_empty() {
        writeln!(out, "no devices found")?;
    } else {
        write!(out, "{}", render_table(&statuses))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `status --metrics ADDR`: serves `/metrics` on `addr` and reads every device each
/// `--interval` (the first round at once) until SIGINT/SIGTERM. The URL goes to stdout first
/// (with the bound port when ADDR asked for port 0).
async fn serve_metrics(
    addr: std::net::SocketAddr,
    args: &StatusArgs,
    cfg: DiscoveryConfig,
    client: ClientConfig,
) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
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
    let poll = tokio::spawn(crate::metrics::poll_and_publish(
        cfg,
        client,
        args.names.clone(),
        args.ratings.clone(),
        args.interval,
        tx,
        token.clone(),
    ));
    signals.wait().await;
    token.cancel();
    let _ = poll.await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
    Ok(ExitCode::SUCCESS)
}

/// Finds the devices, then reads each one's meters (at most [`CONCURRENCY`] devices at once;
/// every request under `client`'s timeouts).
pub async fn snapshot(
    cfg: DiscoveryConfig,
    client: ClientConfig,
    ratings: &Overrides,
) -> anyhow::Result<(Vec<DeviceStatus>, FindReport)> {
    let (devices, report) = find(cfg).await?;
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    let mut set = JoinSet::new();
    for d in devices {
        let sem = sem.clone();
        let ratings = ratings.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            read_device(d, client, &ratings).await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(s) => out.push(s),
            Err(e) => tracing::error!("status task failed: {e}"),
        }
    }
    out.sort_by_key(|s| (s.device.ip, s.device.port));
    Ok((out, report))
}

/// One discovery pass (broadcast targets, known hosts, sweeps, UDP 20002 — exactly what
/// `plugfleet discover` does), merged by MAC in the fleet registry. Ctrl-C ends it early.
pub async fn find(cfg: DiscoveryConfig) -> anyhow::Result<(Vec<Device>, FindReport)> {
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
    let mut registry = Registry::new(1);
    let mut report = FindReport::default();
    while let Some(ev) = rx.recv().await {
        match &ev {
            DiscoveryEvent::Hostile { from, reason } => {
                report.hostile += 1;
                tracing::info!(%from, %reason, "ignored a reply");
                if hosts.iter().any(|h| IpAddr::V4(*h) == from.ip()) {
                    report.bad_replies.push((from.ip(), reason.to_string()));
                }
            }
            DiscoveryEvent::RoundDone { send_errors, .. } => {
                report.send_errors.extend(send_errors.iter().cloned());
                // One pass only: liveness does not apply.
                continue;
            }
            _ => {}
        }
        registry.apply(&ev);
    }
    watcher.abort();
    task.await??;
    let devices = registry.devices().to_vec();
    report.silent_hosts = hosts
        .into_iter()
        .map(IpAddr::V4)
        .filter(|ip| !devices.iter().any(|d| d.ip == *ip))
        .collect();
    Ok((devices, report))
}

/// One reading of one meter (an outlet's when `child` is given), assessed against `limits`. A
/// snapshot has no history: the stateless rules apply (rating, negative values, P > V × I,
/// mains band, 0 V with current, the unit-scale bug by V × I) plus what the reply itself shows.
/// The flag says whether a failure was the transport's (as opposed to the device saying no).
async fn read_meter(client: &Client, child: Option<&str>, limits: &Limits) -> (MeterState, bool) {
    match client.realtime(child).await {
        Ok(realtime) => {
            let assessment = Meter::new(limits.clone()).assess_realtime(&realtime, 0);
            (
                MeterState::Read {
                    realtime,
                    assessment,
                },
                false,
            )
        }
        Err(e) => (MeterState::Failed(e.to_string()), e.is_transport()),
    }
}

/// Reads one reading per meter of a found device: the plug's own, or each outlet's in turn on a
/// strip (gently, one at a time), and assesses them against the model's rating. Devices that
/// only answered on UDP 20002 (newer protocol) are not read.
pub async fn read_device(device: Device, cfg: ClientConfig, ratings: &Overrides) -> DeviceStatus {
    let Some(info) = device.sysinfo.clone() else {
        return DeviceStatus::unread(device);
    };
    let client = Client::new(
        device.ip,
        ClientConfig {
            port: device.port,
            ..cfg
        },
    );
    let info = &info;
    let limits = ratings.limits_for(&info.model);
    if info.children.is_empty() {
        let meter = if info.has_emeter() {
            read_meter(&client, None, &limits).await.0
        } else {
            MeterState::Absent
        };
        let (reading, plausibility, meter_error, raw) = match meter {
            MeterState::Read {
                realtime,
                assessment,
            } => (
                Some(Reading::from(&realtime)),
                Some(assessment),
                None,
                Some(realtime.raw),
            ),
            MeterState::Failed(e) => (None, None, Some(e), None),
            MeterState::Absent => (None, None, None, None),
        };
        return DeviceStatus {
            device,
            reading,
            meter_error,
            plausibility,
            raw,
            outlets: Vec::new(),
        };
    }

    let mut outlets = Vec::with_capacity(info.children.len());
    // After a transport failure (timeout, refused, reset) the other outlets would only wait out
    // the same timeout: they are reported with that error instead.
    let mut broken: Option<String> = None;
    for child in &info.children {
        let meter = match (&broken, info.has_emeter()) {
            (_, false) => MeterState::Absent,
            (Some(e), true) => MeterState::Failed(e.clone()),
            (None, true) => {
                let (meter, transport) = read_meter(&client, Some(&child.id), &limits).await;
                if transport && let MeterState::Failed(e) = &meter {
                    broken = Some(e.clone());
                }
                meter
            }
        };
        outlets.push(OutletStatus {
            info: child.clone(),
            meter,
        });
    }
    let read: Vec<(Reading, &Assessment, &str)> = outlets
        .iter()
        .filter_map(|o| {
            o.meter
                .reading()
                .map(|(r, a)| (r, a, o.info.alias.as_str()))
        })
        .collect();
    let (reading, plausibility, meter_error) = if read.is_empty() {
        let err = outlets.iter().find_map(|o| match &o.meter {
            MeterState::Failed(e) => Some(e.clone()),
            _ => None,
        });
        (None, None, err)
    } else {
        let total = strip_total(&limits, read.iter().map(|(r, a, _)| (r, *a)));
        let summary = strip_summary(&total, read.iter().map(|(_, a, name)| (*name, *a)));
        (
            Some(Reading::strip_sum(read.iter().map(|(r, _, _)| r))),
            Some(summary),
            None,
        )
    };
    DeviceStatus {
        device,
        reading,
        meter_error,
        plausibility,
        raw: None,
        outlets,
    }
}

fn round(v: Option<f64>, digits: i32) -> Value {
    match v {
        Some(v) => {
            let m = 10f64.powi(digits);
            json!((v * m).round() / m)
        }
        None => Value::Null,
    }
}

fn emeter_json(r: Option<&Reading>) -> Value {
    match r {
        Some(r) => json!({
            "power_w": round(r.power_w, 3),
            "voltage_v": round(r.voltage_v, 3),
            "current_a": round(r.current_a, 4),
            "total_kwh": round(r.total_kwh, 4),
        }),
        None => Value::Null,
    }
}

/// The verdict, its reasons and flagged fields; for a reading that is not believed, the raw
/// reply too (PROTOCOL.md §9.3: keep the raw JSON of every rejected sample).
fn plausibility_json(a: Option<&Assessment>, raw: Option<&Value>) -> Value {
    match a {
        Some(a) => {
            let mut v = json!({
                "verdict": a.verdict,
                "reasons": a.texts(),
                "flagged": a.flagged,
            });
            if let Some(raw) = raw.filter(|_| a.verdict > Verdict::Ok) {
                v["raw"] = raw.clone();
            }
            v
        }
        None => Value::Null,
    }
}

/// One device as a JSON object (one line of `status --json`).
pub fn json_line(s: &DeviceStatus) -> Value {
    let i = s.device.sysinfo.as_ref();
    let children: Vec<Value> = s
        .outlets
        .iter()
        .map(|o| {
            let (reading, assessment, error) = match &o.meter {
                MeterState::Read {
                    realtime,
                    assessment,
                } => (Some(Reading::from(realtime)), Some(assessment), None),
                MeterState::Failed(e) => (None, None, Some(e.as_str())),
                MeterState::Absent => (None, None, None),
            };
            let mut v = json!({
                "id": o.info.id,
                "alias": o.info.alias,
                "relay_state": u8::from(o.info.relay_on),
                "emeter": emeter_json(reading.as_ref()),
                "plausibility": plausibility_json(
                    assessment,
                    match &o.meter {
                        MeterState::Read { realtime, .. } => Some(&realtime.raw),
                        _ => None,
                    },
                ),
            });
            if let Some(e) = error {
                v["emeter_error"] = json!(e);
            }
            v
        })
        .collect();
    // The `discover --json` object, then what status adds; `children` becomes the outlet list.
    let mut v = s.device.to_json();
    v["children"] = match i {
        Some(_) => Value::Array(children),
        None => Value::Null,
    };
    v["relay_state"] = json!(i.and_then(|i| i.relay_on).map(u8::from));
    v["rssi"] = json!(i.and_then(|i| i.rssi));
    v["emeter"] = emeter_json(s.reading.as_ref());
    v["plausibility"] = plausibility_json(s.plausibility.as_ref(), s.raw.as_ref());
    if let Some(e) = &s.meter_error {
        v["emeter_error"] = json!(e);
    }
    v
}

/// Keeps device-supplied text printable and bounded for a table cell.
fn cell(s: &str, max: usize) -> String {
    crate::text::printable(s, max)
}

/// A value with its glyph when flagged (`28000‼`), `-` when absent.
fn value_cell(r: Option<&Reading>, a: Option<&Assessment>, field: Field) -> String {
    let Some(v) = r.and_then(|r| r.get(field)) else {
        return "-".into();
    };
    let text = field.fmt(v);
    let num = text.trim_end_matches(field.unit()).trim_end();
    let glyph = a.map_or("", |a| {
        if a.is_flagged(field) {
            a.field_verdict(field).glyph()
        } else {
            ""
        }
    });
    format!("{num}{glyph}")
}

fn relay(on: Option<bool>) -> &'static str {
    match on {
        Some(true) => "on",
        Some(false) => "off",
        None => "-",
    }
}

fn verdict_cell(a: Option<&Assessment>, error: Option<&String>) -> String {
    match (a, error) {
        (Some(a), _) => format!("{}{}", a.verdict, a.verdict.glyph()),
        (None, Some(_)) => "no reading".into(),
        (None, None) => "no meter".into(),
    }
}

/// The human table: one row per device (outlets indented under their strip), flagged values
/// marked with `?` (suspect) or `‼` (bogus), and the reasons listed below.
pub fn render_table(statuses: &[DeviceStatus]) -> String {
    const HEAD: [&str; 12] = [
        "IP", "ALIAS", "MODEL", "HW", "SW", "RELAY", "W", "V", "A", "kWh", "RSSI", "VERDICT",
    ];
    let mut rows: Vec<[String; 12]> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for s in statuses {
        let d = &s.device;
        let i = d.sysinfo.as_ref();
        let ip = if d.port == crate::protocol::DEFAULT_PORT {
            d.ip.to_string()
        } else {
            format!("{}:{}", d.ip, d.port)
        };
        let a = s.plausibility.as_ref();
        let r = s.reading.as_ref();
        let Some(i) = i else {
            // Found on UDP 20002 only: a newer-protocol device this tool cannot read.
            let protocol = d.protocol();
            rows.push([
                ip.clone(),
                "-".into(),
                cell(d.model().unwrap_or("?"), 12),
                cell(d.hw_ver().unwrap_or("-"), 5),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("{protocol}, not read"),
            ]);
            notes.push(format!(
                "{ip}: newer protocol ({protocol}): no port-9999 access, so no reading"
            ));
            continue;
        };
        rows.push([
            ip.clone(),
            cell(&i.alias, 24),
            cell(&i.model, 12),
            cell(&i.hw_ver, 5),
            cell(i.version(), 10),
            relay(i.relay_on).into(),
            value_cell(r, a, Field::Power),
            value_cell(r, a, Field::Voltage),
            value_cell(r, a, Field::Current),
            value_cell(r, a, Field::Total),
            i.rssi.map_or("-".into(), |v| v.to_string()),
            verdict_cell(a, s.meter_error.as_ref()),
        ]);
        let who = format!("{ip} {}", cell(&i.alias, 24));
        if let Some(e) = &s.meter_error {
            notes.push(format!("{who}: meter not read: {e}"));
        }
        if !s.is_strip()
            && let Some(a) = a
        {
            for reason in &a.reasons {
                notes.push(format!("{who}: {} {}", mark(reason.severity), reason.text));
            }
        } else if let Some(a) = a {
            // The strip's own (total) reasons; outlets list theirs below.
            for reason in a
                .reasons
                .iter()
                .filter(|r| r.rule != crate::fleet::plausibility::Rule::Outlet)
            {
                notes.push(format!("{who}: {} {}", mark(reason.severity), reason.text));
            }
        }
        let n = s.outlets.len();
        for (k, o) in s.outlets.iter().enumerate() {
            let branch = if k + 1 == n { "└" } else { "├" };
            let (or, oa, oe) = match &o.meter {
                MeterState::Read {
                    realtime,
                    assessment,
                } => (Some(Reading::from(realtime)), Some(assessment), None),
                MeterState::Failed(e) => (None, None, Some(e)),
                MeterState::Absent => (None, None, None),
            };
            rows.push([
                format!(" {branch} outlet {}", k + 1),
                cell(&o.info.alias, 24),
                String::new(),
                String::new(),
                String::new(),
                relay(Some(o.info.relay_on)).into(),
                value_cell(or.as_ref(), oa, Field::Power),
                value_cell(or.as_ref(), oa, Field::Voltage),
                value_cell(or.as_ref(), oa, Field::Current),
                value_cell(or.as_ref(), oa, Field::Total),
                String::new(),
                verdict_cell(oa, oe),
            ]);
            let owho = format!("{who} outlet {} {}", k + 1, cell(&o.info.alias, 24));
            if let Some(e) = oe {
                notes.push(format!("{owho}: meter not read: {e}"));
            }
            if let Some(a) = oa {
                for reason in &a.reasons {
                    notes.push(format!("{owho}: {} {}", mark(reason.severity), reason.text));
                }
            }
        }
    }

    let mut width = HEAD.map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Numbers right-aligned, text left-aligned.
    let right = |col: usize| (6..=10).contains(&col);
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (col, c) in cells.iter().enumerate() {
            let pad = width[col].saturating_sub(c.chars().count());
            if col > 0 {
                out.push_str("  ");
            }
            if right(col) {
                out.push_str(&" ".repeat(pad));
                out.push_str(c);
            } else {
                out.push_str(c);
                if col + 1 < cells.len() {
                    out.push_str(&" ".repeat(pad));
                }
            }
        }
        out.trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&line(&HEAD.map(String::from)));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    let flagged = statuses
        .iter()
        .filter(|s| {
            s.plausibility
                .as_ref()
                .is_some_and(|a| a.verdict > Verdict::Ok)
        })
        .count();
    out.push_str(&format!(
        "\n{} device{}, {flagged} flagged\n",
        statuses.len(),
        if statuses.len() == 1 { "" } else { "s" }
    ));
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

fn mark(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => crate::text::glyph::NOTE,
        other => other.glyph(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SysInfo;
    use crate::protocol::sighting::{DeviceReply, FoundBy, Sighting};
    use std::time::Duration;

    fn sysinfo(model: &str, extra: Value) -> SysInfo {
        let mut v = json!({
            "model": model, "hw_ver": "1.0", "sw_ver": "1.2.6 Build 200727 Rel.121701",
            "mac": "50:c7:bf:00:00:01", "deviceId": "8006AA", "alias": "Kitchen",
            "feature": "TIM:ENE", "relay_state": 1, "rssi": -38, "hwId": "H", "fwId": "F",
            "oemId": "O",
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        SysInfo::from_result(&v).expect("sysinfo")
    }

    fn found(info: SysInfo) -> Device {
        let mut reg = Registry::new(1);
        reg.observe(&Sighting {
            ip: "127.0.0.5".parse().expect("ip"),
            port: 9999,
            found_by: FoundBy::Host,
            at: 12,
            reply: DeviceReply::Legacy(info),
        });
        reg.devices()[0].clone()
    }

    fn read(model: &str, rt: Value) -> MeterState {
        let realtime = Realtime::from_result(&rt).expect("rt");
        let assessment = Meter::for_model(model).assess_realtime(&realtime, 0);
        MeterState::Read {
            realtime,
            assessment,
        }
    }

    fn plug(model: &str, rt: Value) -> DeviceStatus {
        let MeterState::Read {
            realtime,
            assessment,
        } = read(model, rt)
        else {
            unreachable!()
        };
        DeviceStatus {
            device: found(sysinfo(model, json!({}))),
            reading: Some(Reading::from(&realtime)),
            meter_error: None,
            plausibility: Some(assessment),
            raw: Some(realtime.raw),
            outlets: Vec::new(),
        }
    }

    #[test]
    fn json_of_a_bogus_plug_has_every_key() {
        let s = plug(
            "HS110(US)",
            json!({"power": 28000.0, "voltage": 118.9, "current": 0.128, "total": 30.404}),
        );
        let j = json_line(&s);
        for key in [
            "ip",
            "port",
            "mac",
            "device_id",
            "alias",
            "model",
            "hw_ver",
            "sw_ver",
            "hw_id",
            "fw_id",
            "oem_id",
            "has_emeter",
            "children",
            "protocol",
            "found_by",
            "t_ms",
            "relay_state",
            "rssi",
            "emeter",
            "plausibility",
        ] {
            assert!(j.get(key).is_some(), "missing {key}: {j}");
        }
        assert_eq!(j["ip"], "127.0.0.5");
        assert_eq!(j["mac"], "50:C7:BF:00:00:01");
        assert_eq!(j["protocol"], "legacy");
        assert_eq!(j["found_by"], json!(["host"]));
        assert_eq!(j["relay_state"], 1);
        assert_eq!(j["emeter"]["power_w"], 28000.0);
        assert_eq!(j["emeter"]["voltage_v"], 118.9);
        assert_eq!(j["plausibility"]["verdict"], "bogus");
        assert_eq!(
            j["plausibility"]["reasons"][0],
            "28000 W is above 1.25 × 1800 W rated (HS110 US)"
        );
        assert_eq!(j["children"], json!([]));
        // The rejected sample's raw reply is kept.
        assert_eq!(j["plausibility"]["raw"]["power"], 28000.0);
    }

    #[test]
    fn plugs_without_a_meter_have_null_emeter() {
        let s = DeviceStatus {
            device: found(sysinfo("HS100(US)", json!({"feature": "TIM"}))),
            reading: None,
            meter_error: None,
            plausibility: None,
            raw: None,
            outlets: Vec::new(),
        };
        let j = json_line(&s);
        assert_eq!(j["has_emeter"], false);
        assert!(j["emeter"].is_null() && j["plausibility"].is_null());
        assert!(j.get("emeter_error").is_none());
        let t = render_table(&[s]);
        assert!(t.contains("no meter"), "{t}");
    }

    fn strip() -> DeviceStatus {
        let info = sysinfo(
            "HS300(US)",
            json!({"children": [
                {"id": "00", "alias": "Lamp", "state": 1},
                {"id": "01", "alias": "Heater", "state": 1},
                {"id": "02", "alias": "TV", "state": 0},
            ], "relay_state": null}),
        );
        let rts = [
            json!({"power_mw": 10000, "voltage_mv": 120000, "current_ma": 90, "total_wh": 100}),
            json!({"power_mw": 28000000, "voltage_mv": 120000, "current_ma": 100, "total_wh": 200}),
            json!({"power_mw": 0, "voltage_mv": 121000, "current_ma": 0, "total_wh": 300}),
        ];
        let outlets: Vec<OutletStatus> = info
            .children
            .iter()
            .zip(rts)
            .map(|(c, rt)| OutletStatus {
                info: c.clone(),
                meter: read("HS300(US)", rt),
            })
            .collect();
        let limits = crate::fleet::ratings::limits_for("HS300(US)");
        let read: Vec<(Reading, &Assessment, &str)> = outlets
            .iter()
            .filter_map(|o| {
                o.meter
                    .reading()
                    .map(|(r, a)| (r, a, o.info.alias.as_str()))
            })
            .collect();
        let total = strip_total(&limits, read.iter().map(|(r, a, _)| (r, *a)));
        let summary = strip_summary(&total, read.iter().map(|(_, a, n)| (*n, *a)));
        DeviceStatus {
            reading: Some(Reading::strip_sum(read.iter().map(|(r, _, _)| r))),
            device: found(info),
            meter_error: None,
            plausibility: Some(summary),
            raw: None,
            outlets,
        }
    }

    #[test]
    fn strips_list_their_outlets_with_their_own_verdicts() {
        let j = json_line(&strip());
        let children = j["children"].as_array().expect("list");
        assert_eq!(children.len(), 3);
        assert_eq!(children[0]["id"], "8006AA00");
        assert_eq!(children[0]["alias"], "Lamp");
        assert_eq!(children[0]["plausibility"]["verdict"], "ok");
        assert_eq!(children[1]["plausibility"]["verdict"], "bogus");
        assert_eq!(children[1]["emeter"]["power_w"], 28000.0);
        assert_eq!(children[2]["relay_state"], 0);
        assert_eq!(j["plausibility"]["verdict"], "bogus");
        assert!(
            j["plausibility"]["reasons"][0]
                .as_str()
                .expect("s")
                .starts_with("outlet \"Heater\": bogus")
        );
        assert!(j["relay_state"].is_null());
    }

    #[test]
    fn table_marks_the_flagged_cell_and_lists_reasons() {
        let s = plug(
            "HS110(US)",
            json!({"power": 28000.0, "voltage": 118.9, "current": 0.128, "total": 30.404}),
        );
        let ok = {
            let mut p = plug(
                "HS110(EU)",
                json!({"power": 0.928, "voltage": 231.06, "current": 0.0149, "total": 55.139}),
            );
            p.device.ip = "127.0.0.6".parse().expect("ip");
            if let Some(i) = p.device.sysinfo.as_mut() {
                i.alias = "Desk\u{1b}[31m".into();
            }
            p
        };
        let t = render_table(&[s, ok, strip()]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("IP "), "{t}");
        assert!(lines[1].contains("28000‼"), "{t}");
        assert!(lines[1].contains("bogus‼"), "{t}");
        assert!(!lines[1].contains("119‼"), "{t}");
        assert!(
            lines[2].contains("0.93 ") && lines[2].contains(" ok"),
            "{t}"
        );
        assert!(
            !t.contains('\u{1b}'),
            "control characters must not reach the terminal"
        );
        assert!(t.contains(" ├ outlet 1"), "{t}");
        assert!(t.contains(" └ outlet 3"), "{t}");
        assert!(t.contains("3 devices, 2 flagged"), "{t}");
        assert!(
            t.contains("127.0.0.5 Kitchen: ‼ 28000 W is above 1.25 × 1800 W rated (HS110 US)"),
            "{t}"
        );
        assert!(t.contains("outlet 2 Heater: ‼ 28000 W is above"), "{t}");
        // Columns line up: every data row's W column ends at the same place as its header.
        let w_end = lines[0].find(" W ").expect("W header") + 2;
        for l in &lines[1..3] {
            let c = l.chars().nth(w_end - 1);
            assert!(c.is_some_and(|c| !c.is_whitespace()), "misaligned: {l:?}");
        }
    }

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
