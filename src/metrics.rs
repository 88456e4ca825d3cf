//! Metrics for monitoring stacks (`--metrics ADDR`): the current readings, verdicts, health and
//! versions of every device in the Prometheus text format, on an embedded axum server, so the
//! long-term view goes to Prometheus/Grafana instead of plugfleet growing a database.
//!
//! - [`MetricsSnapshot`]: plain data, published by the owner of the fleet model (the TUI, or
//!   `status --metrics`) through a `tokio::sync::watch` channel: a view of the model
//!   ([`view::snapshot`]), the same verdicts every other view shows.
//! - [`render`]: the snapshot in the Prometheus text format 0.0.4 ([`render_openmetrics`]: the
//!   OpenMetrics text format, served when the scraper asks for it). Encoding, escaping of
//!   device-supplied label values included, is `prometheus-client`'s.
//! - [`serve`]: `GET /metrics` on `addr` (port 0 allowed); every other path is 404. Stops when
//!   the token is cancelled.
//!
//! # Metrics
//!
//! Every device series carries `mac`, `ip` and `alias`; a strip outlet's also `outlet` (its
//! index, `0`…) and `outlet_alias`. A strip's meters are its outlets (no strip-sum series, so
//! `sum by (mac)` adds up a strip without counting it twice).
//!
//! | name | type | what |
//! |---|---|---|
//! | `plugfleet_build_info{version}` | gauge | 1, plugfleet's own version |
//! | `plugfleet_devices` | gauge | devices known |
//! | `plugfleet_device_up` | gauge | 1 when the device answers, 0 when offline |
//! | `plugfleet_device_info{name,device_id,model,hw_ver,sw_ver,protocol}` | gauge | 1; `name` is the local name from the config (else the alias) |
//! | `plugfleet_device_last_seen_age_seconds` | gauge | since the device last answered |
//! | `plugfleet_device_rssi_dbm` | gauge | Wi-Fi signal |
//! | `plugfleet_relay_on` | gauge | 1 on, 0 off (per outlet on strips) |
//! | `plugfleet_power_watts`, `plugfleet_voltage_volts`, `plugfleet_current_amperes` | gauge | the latest reading, as read (even when flagged: see the verdict) |
//! | `plugfleet_energy_kwh_total` | counter | the meter's own total since its last reset |
//! | `plugfleet_reading_verdict{verdict}` | gauge | 1 for the latest reading's verdict (`ok`/`suspect`/`bogus`), 0 for the others; the device-level series (no `outlet`) is a strip's summary |
//! | `plugfleet_reading_finding{rule,severity}` | gauge | 1 per finding on the latest reading (the device-level series of a strip: its total and flagged outlets) |
//! | `plugfleet_readings_total` | counter | readings assessed |
//! | `plugfleet_flagged_readings_total{verdict}` | counter | readings flagged `suspect` / `bogus` |
//! | `plugfleet_reading_findings_total{rule}` | counter | quiet findings (issue 15: `counter_vs_power`, `frozen_meter`, `fleet_voltage`, `phantom_load`, `low_power_factor`), one per meter and poll that raised it, fleet-wide |
//!
//! An offline device keeps `device_up 0`, its info, last-seen age and counters; its last
//! reading, verdict, relay and signal are not exported (they would be stale).
//!
//! Names with units follow the Prometheus conventions. Alert on bogus readings with
//! `plugfleet_reading_verdict{verdict="bogus"} == 1`; show local names with
//! `… * on (mac) group_left (name) plugfleet_device_info`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fleet::identity::Names;
use crate::fleet::plausibility::{Assessment, Counts, Verdict};
use crate::fleet::reading::Reading;
use crate::protocol::SysInfo;

pub mod view;

/// `Content-Type` of [`render`].
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// `Content-Type` of [`render_openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One meter's latest reading and what the engine made of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MeterMetrics {
    pub reading: Reading,
    pub verdict: Verdict,
    /// Readings of this meter per verdict so far.
    pub counts: Counts,
    /// The findings on the latest reading: (rule, severity), as the model judged it.
    pub findings: Vec<(String, Verdict)>,
}

impl MeterMetrics {
    pub fn new(reading: Reading, verdict: Verdict, counts: Counts) -> Self {
        Self {
            reading,
            verdict,
            counts,
            findings: Vec::new(),
        }
    }

    /// A single reading (as `status` takes one): counted once, under its verdict.
    pub fn single(reading: Reading, a: &Assessment) -> Self {
        let mut counts = Counts::default();
        counts.add(a.verdict);
        Self {
            findings: findings_of(a),
            ..Self::new(reading, a.verdict, counts)
        }
    }
}

/// (rule, severity) of every reason of an assessment, for `plugfleet_reading_finding`.
pub fn findings_of(a: &Assessment) -> Vec<(String, Verdict)> {
    a.reasons
        .iter()
        .map(|r| (r.rule.name(), r.severity))
        .collect()
}

/// One outlet of a strip.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutletMetrics {
    /// Position on the strip (0-based), the `outlet` label.
    pub index: usize,
    /// Full child id.
    pub id: String,
    pub alias: String,
    pub relay_on: Option<bool>,
    pub meter: Option<MeterMetrics>,
}

/// One device.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceMetrics {
    pub ip: String,
    /// Normalised MAC (the identity).
    pub mac: String,
    pub device_id: String,
    /// The alias the device reports.
    pub alias: String,
    /// The local name from the config file, if any.
    pub name: Option<String>,
    pub model: String,
    pub hw_ver: String,
    pub sw_ver: String,
    /// `legacy`, `klap`, …
    pub protocol: String,
    pub online: bool,
    pub last_seen_age: Option<Duration>,
    pub rssi: Option<i64>,
    pub relay_on: Option<bool>,
    /// A plug's own meter (none for strips: see `outlets`, and for plugs without one).
    pub meter: Option<MeterMetrics>,
    /// The device's overall verdict: its meter's, or a strip's summary of its outlets.
    pub verdict: Option<Verdict>,
    /// The findings behind that verdict: (rule, severity).
    pub findings: Vec<(String, Verdict)>,
    pub outlets: Vec<OutletMetrics>,
}

impl DeviceMetrics {
    /// A device that answered `get_sysinfo` at `ip` (online, last seen now), without readings.
    pub fn from_sysinfo(ip: IpAddr, info: &SysInfo) -> Self {
        Self {
            ip: ip.to_string(),
            mac: crate::protocol::normalise_mac(&info.mac),
            device_id: info.device_id.clone(),
            alias: info.alias.clone(),
            name: None,
            model: info.model.clone(),
            hw_ver: info.hw_ver.clone(),
            sw_ver: info.sw_ver.clone(),
            protocol: "legacy".into(),
            online: true,
            last_seen_age: Some(Duration::ZERO),
            rssi: info.rssi,
            relay_on: if info.children.is_empty() {
                info.is_on()
            } else {
                None
            },
            meter: None,
            verdict: None,
            findings: Vec::new(),
            outlets: info
                .children
                .iter()
                .enumerate()
                .map(|(index, c)| OutletMetrics {
                    index,
                    id: c.id.clone(),
                    alias: c.alias.clone(),
                    relay_on: Some(c.relay_on),
                    meter: None,
                })
                .collect(),
        }
    }

    /// Sets the local name from `names` (by MAC).
    pub fn named(mut self, names: &Names) -> Self {
        self.name = names.name_for(&self.mac).map(str::to_owned);
        self
    }

    /// The outlet with this full id.
    pub fn outlet_mut(&mut self, id: &str) -> Option<&mut OutletMetrics> {
        self.outlets.iter_mut().find(|o| o.id == id)
    }
}

/// Every device, as published to the metrics server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsSnapshot {
    pub devices: Vec<DeviceMetrics>,
    /// Quiet findings so far by rule name (every rule listed, 0 when none).
    pub findings_by_rule: Vec<(String, u64)>,
}

impl MetricsSnapshot {
    /// The device with this MAC.
    pub fn device(&self, mac: &str) -> Option<&DeviceMetrics> {
        self.devices.iter().find(|d| d.mac == mac)
    }
}

type Labels = Vec<(String, String)>;
type GaugeF = Gauge<f64, AtomicU64>;
type CounterF = Counter<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn with(base: &Labels, extra: &[(&str, &str)]) -> Labels {
    let mut l = base.clone();
    l.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    l
}

/// The metric families of one exposition.
struct Families {
    build: Family<Labels, GaugeF>,
    devices: GaugeF,
    up: Family<Labels, GaugeF>,
    info: Family<Labels, GaugeF>,
    age: Family<Labels, GaugeF>,
    rssi: Family<Labels, GaugeF>,
    relay: Family<Labels, GaugeF>,
    power: Family<Labels, GaugeF>,
    voltage: Family<Labels, GaugeF>,
    current: Family<Labels, GaugeF>,
    energy: Family<Labels, CounterF>,
    verdict: Family<Labels, GaugeF>,
    finding: Family<Labels, GaugeF>,
    readings: Family<Labels, Counter>,
    flagged: Family<Labels, Counter>,
    quiet: Family<Labels, Counter>,
}

impl Families {
    fn new() -> Self {
        Self {
            build: Family::default(),
            devices: GaugeF::default(),
            up: Family::default(),
            info: Family::default(),
            age: Family::default(),
            rssi: Family::default(),
            relay: Family::default(),
            power: Family::default(),
            voltage: Family::default(),
            current: Family::default(),
            energy: Family::default(),
            verdict: Family::default(),
            finding: Family::default(),
            readings: Family::default(),
            flagged: Family::default(),
            quiet: Family::default(),
        }
    }

    fn registry(self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "plugfleet_build_info",
            "plugfleet's own version",
            self.build,
        );
        r.register("plugfleet_devices", "Devices known", self.devices);
        r.register(
            "plugfleet_device_up",
            "1 when the device answers, 0 when it is offline",
            self.up,
        );
        r.register(
            "plugfleet_device_info",
            "Identity and versions of a device (value 1); name is the local name, else the alias",
            self.info,
        );
        r.register_with_unit(
            "plugfleet_device_last_seen_age",
            "Time since the device last answered",
            Unit::Seconds,
            self.age,
        );
        r.register_with_unit(
            "plugfleet_device_rssi",
            "Wi-Fi signal strength the device reports",
            Unit::Other("dbm".into()),
            self.rssi,
        );
        r.register(
            "plugfleet_relay_on",
            "1 when the relay (outlet) is on, 0 when off",
            self.relay,
        );
        r.register_with_unit(
            "plugfleet_power",
            "Latest power reading, as read (see plugfleet_reading_verdict)",
            Unit::Other("watts".into()),
            self.power,
        );
        r.register_with_unit(
            "plugfleet_voltage",
            "Latest voltage reading",
            Unit::Volts,
            self.voltage,
        );
        r.register_with_unit(
            "plugfleet_current",
            "Latest current reading",
            Unit::Amperes,
            self.current,
        );
        r.register(
            "plugfleet_energy_kwh",
            "Energy the meter counted since its last reset, in kWh",
            self.energy,
        );
        r.register(
            "plugfleet_reading_verdict",
            "1 for the plausibility verdict of the latest reading (ok, suspect, bogus), 0 for the others",
            self.verdict,
        );
        r.register(
            "plugfleet_reading_finding",
            "1 per finding on the latest reading: the rule (e.g. strip-above-rated-power, unreadable, counter-reset) and its severity",
            self.finding,
        );
        r.register(
            "plugfleet_readings",
            "Readings assessed for plausibility",
            self.readings,
        );
        r.register(
            "plugfleet_flagged_readings",
            "Readings flagged suspect or bogus",
            self.flagged,
        );
        r.register(
            "plugfleet_reading_findings",
            "Quiet findings (a meter lying quietly, by rule), one per meter and poll that raised it",
            self.quiet,
        );
        r
    }

    fn verdict_series(&self, base: &Labels, v: Verdict, findings: &[(String, Verdict)]) {
        for each in [Verdict::Ok, Verdict::Suspect, Verdict::Bogus] {
            self.verdict
                .get_or_create(&with(base, &[("verdict", each.as_str())]))
                .set(if each == v { 1.0 } else { 0.0 });
        }
        for (rule, severity) in findings {
            self.finding
                .get_or_create(&with(
                    base,
                    &[("rule", rule.as_str()), ("severity", severity.as_str())],
                ))
                .set(1.0);
        }
    }

    /// A meter's series; `live` = false (device offline) keeps only the counters of readings
    /// and flags: a stale reading or verdict must not pass for a current one.
    fn meter(&self, base: &Labels, m: &MeterMetrics, live: bool) {
        self.readings.get_or_create(base).inc_by(m.counts.total());
        for (v, n) in [
            (Verdict::Suspect, m.counts.suspect),
            (Verdict::Bogus, m.counts.bogus),
        ] {
            self.flagged
                .get_or_create(&with(base, &[("verdict", v.as_str())]))
                .inc_by(n);
        }
        if !live {
            return;
        }
        let r = &m.reading;
        if let Some(v) = r.power_w {
            self.power.get_or_create(base).set(v);
        }
        if let Some(v) = r.voltage_v {
            self.voltage.get_or_create(base).set(v);
        }
        if let Some(v) = r.current_a {
            self.current.get_or_create(base).set(v);
        }
        if let Some(v) = r.total_kwh {
            self.energy.get_or_create(base).inc_by(v.max(0.0));
        }
        self.verdict_series(base, m.verdict, &m.findings);
    }

    fn device(&self, d: &DeviceMetrics) {
        let base = labels(&[("mac", &d.mac), ("ip", &d.ip), ("alias", &d.alias)]);
        self.up
            .get_or_create(&base)
            .set(if d.online { 1.0 } else { 0.0 });
        let name = d.name.as_deref().unwrap_or(&d.alias);
        self.info
            .get_or_create(&with(
                &base,
                &[
                    ("name", name),
                    ("device_id", &d.device_id),
                    ("model", &d.model),
                    ("hw_ver", &d.hw_ver),
                    ("sw_ver", &d.sw_ver),
                    ("protocol", &d.protocol),
                ],
            ))
            .set(1.0);
        if let Some(age) = d.last_seen_age {
            self.age.get_or_create(&base).set(age.as_secs_f64());
        }
        if let Some(rssi) = d.rssi.filter(|_| d.online) {
            self.rssi.get_or_create(&base).set(rssi as f64);
        }
        // An offline device's last reading, verdict, relay and signal would be stale.
        let live = d.online;
        if let Some(on) = d.relay_on.filter(|_| live) {
            self.relay
                .get_or_create(&base)
                .set(if on { 1.0 } else { 0.0 });
        }
        if let Some(m) = &d.meter {
            self.meter(&base, m, live);
        } else if let Some(v) = d.verdict.filter(|_| live) {
            self.verdict_series(&base, v, &d.findings);
        }
        for o in &d.outlets {
            let index = o.index.to_string();
            let ol = with(&base, &[("outlet", &index), ("outlet_alias", &o.alias)]);
            if let Some(on) = o.relay_on.filter(|_| live) {
                self.relay
                    .get_or_create(&ol)
                    .set(if on { 1.0 } else { 0.0 });
            }
            if let Some(m) = &o.meter {
                self.meter(&ol, m, live);
            }
        }
    }
}

fn registry_of(s: &MetricsSnapshot) -> Registry {
    let f = Families::new();
    f.build
        .get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION"))]))
        .set(1.0);
    f.devices.set(s.devices.len() as f64);
    for d in &s.devices {
        f.device(d);
    }
    for (rule, n) in &s.findings_by_rule {
        f.quiet.get_or_create(&labels(&[("rule", rule)])).inc_by(*n);
    }
    f.registry()
}

/// The snapshot in the Prometheus text format (0.0.4).
pub fn render(s: &MetricsSnapshot) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry_of(s));
    out
}

/// The snapshot in the OpenMetrics text format (ends with `# EOF`).
pub fn render_openmetrics(s: &MetricsSnapshot) -> String {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry_of(s));
    out
}

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("bad metrics address {0:?}: expected HOST:PORT, :PORT or PORT")]
    BadAddr(String),
}

/// Parses `--metrics ADDR`: `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT`, or `:PORT` / `PORT`
/// for 127.0.0.1 (exposing metrics beyond this machine takes an explicit `0.0.0.0:PORT`).
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, MetricsError> {
    let bad = || MetricsError::BadAddr(s.to_owned());
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let port = s
        .strip_prefix("localhost:")
        .or_else(|| s.strip_prefix(':'))
        .unwrap_or(s);
    let port: u16 = port.parse().map_err(|_| bad())?;
    Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

async fn metrics(
    State(rx): State<watch::Receiver<MetricsSnapshot>>,
    headers: HeaderMap,
) -> Response {
    // Clone out of the channel at once: rendering must not hold the publisher up. Rendering a
    // large fleet takes milliseconds, so it runs on the blocking pool, off the runtime that
    // also drives the UI.
    let snapshot = rx.borrow().clone();
    let open = wants_openmetrics(&headers);
    let rendered = tokio::task::spawn_blocking(move || {
        if open {
            (render_openmetrics(&snapshot), OPENMETRICS_CONTENT_TYPE)
        } else {
            (render(&snapshot), CONTENT_TYPE)
        }
    })
    .await;
    match rendered {
        Ok((body, ctype)) => ([(header::CONTENT_TYPE, ctype)], body).into_response(),
        Err(e) => {
            tracing::error!("rendering metrics failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_FOUND,
        "not found; metrics are at /metrics\n",
    )
}

/// The router: `GET /metrics`, 404 for every other path.
pub fn router(rx: watch::Receiver<MetricsSnapshot>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(rx)
}

/// Listens on `addr` (port 0 = a free one) and serves the latest published snapshot at
/// `/metrics` until `token` is cancelled. Returns the bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    rx: watch::Receiver<MetricsSnapshot>,
    token: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), MetricsError> {
    let bind_err = |source| MetricsError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let app = router(rx);
    let task = tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await;
        if let Err(e) = r {
            tracing::error!("metrics server on {local} stopped: {e}");
        }
    });
    tracing::info!("metrics at http://{local}/metrics");
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> DeviceMetrics {
        DeviceMetrics {
            ip: "127.0.0.9".into(),
            mac: "50:C7:BF:00:00:09".into(),
            device_id: "ABC".into(),
            alias: "kettle \"big\"\\\nline".into(),
            name: Some("Kettle".into()),
            model: "HS110(US)".into(),
            hw_ver: "1.0".into(),
            sw_ver: "1.2.5 Build 171213 Rel.101523".into(),
            protocol: "legacy".into(),
            online: true,
            last_seen_age: Some(Duration::from_millis(1500)),
            rssi: Some(-52),
            relay_on: Some(true),
            meter: Some(MeterMetrics::new(
                Reading::new(28_000.0, 120.0, 0.2, 3.5),
                Verdict::Bogus,
                Counts {
                    ok: 3,
                    suspect: 1,
                    bogus: 2,
                },
            )),
            verdict: Some(Verdict::Bogus),
            findings: vec![("above-rated-power".into(), Verdict::Bogus)],
            outlets: vec![],
        }
    }

    #[test]
    fn renders_names_units_and_escaped_labels() {
        let text = render(&MetricsSnapshot {
            devices: vec![dev()],
            ..MetricsSnapshot::default()
        });
        let l = r#"mac="50:C7:BF:00:00:09",ip="127.0.0.9",alias="kettle \"big\"\\\nline""#;
        for line in [
            format!("plugfleet_power_watts{{{l}}} 28000.0"),
            format!("plugfleet_voltage_volts{{{l}}} 120.0"),
            format!("plugfleet_current_amperes{{{l}}} 0.2"),
            format!("plugfleet_energy_kwh_total{{{l}}} 3.5"),
            format!("plugfleet_device_up{{{l}}} 1.0"),
            format!("plugfleet_device_rssi_dbm{{{l}}} -52.0"),
            format!("plugfleet_device_last_seen_age_seconds{{{l}}} 1.5"),
            format!("plugfleet_reading_verdict{{{l},verdict=\"bogus\"}} 1.0"),
            format!("plugfleet_reading_verdict{{{l},verdict=\"ok\"}} 0.0"),
            format!("plugfleet_flagged_readings_total{{{l},verdict=\"bogus\"}} 2"),
            format!("plugfleet_readings_total{{{l}}} 6"),
            "plugfleet_devices 1.0".to_string(),
        ] {
            assert!(text.lines().any(|x| x == line), "missing {line}\n{text}");
        }
        assert!(text.contains("name=\"Kettle\""), "{text}");
        assert!(
            text.contains("# TYPE plugfleet_energy_kwh_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        assert!(render_openmetrics(&MetricsSnapshot::default()).ends_with("# EOF\n"));
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_addr(":9109").unwrap(),
            "127.0.0.1:9109".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("9109").unwrap(),
            "127.0.0.1:9109".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("localhost:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert!(parse_listen_addr("nope").is_err());
        assert!(parse_listen_addr(":99999").is_err());
    }
}
