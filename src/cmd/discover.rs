//! `plugfleet discover`: one discovery pass, devices printed as they arrive — an aligned table, or
//! with `--json` one object per line (repeated with the grown `found_by` list when a device is
//! found another way).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Instant;

use serde_json::{Value, json};

use clap::Args;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cmd::args::{TargetArgs, UsageError, discovery_config};
use crate::fleet::identity::{Names, valid_mac};
use crate::fleet::model::{Device, Fleet};
use crate::net::discovery::{self, DEFAULT_CONCURRENCY, DiscoveryConfig};
use crate::protocol::sighting::{DiscoveryEvent, FoundBy};
use crate::protocol::tdp::TDP_PORT;

#[derive(Debug, Clone, Args, Default)]
#[command(after_help = "\
Without --target, --host or --sweep, probes every interface's broadcast address and \
255.255.255.255; with any of them, only those. --timeout is how long broadcast replies are \
awaited (and each device's reply timeout); known hosts get up to --timeout to answer; a sweep \
always covers its whole range. Devices are printed as they answer; the summary goes to stderr.")]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub net: TargetArgs,
    /// One JSON object per line per device, printed as soon as it is known (again, with the list
    /// grown, when it is found another way).
    #[arg(long)]
    pub json: bool,
    /// At most this many TCP connections at once during a sweep.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_name = "N")]
    pub concurrency: usize,
    /// UDP port of the newer devices' discovery probe (tests use a free port).
    #[arg(long, default_value_t = TDP_PORT, value_name = "P", hide = true)]
    pub tdp_port: u16,
}

impl DiscoverArgs {
    /// The engine configuration, or a usage error (exit status 2).
    pub fn config(&self) -> Result<DiscoveryConfig, UsageError> {
        let mut cfg = discovery_config(&self.net)?;
        cfg.tdp_port = self.tdp_port;
        cfg.concurrency = self.concurrency;
        cfg.validate(self.net.force)?;
        Ok(cfg)
    }
}

pub fn run(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(discover(cfg, args.json))
}

async fn discover(cfg: DiscoveryConfig, json: bool) -> anyhow::Result<ExitCode> {
    let swept = !cfg.sweeps.is_empty();
    // Progress on stderr when it is a terminal (hidden when piped): the sweep's addresses as
    // they are settled, else a spinner while the broadcast replies come in.
    let progress = if swept {
        crate::cmd::progress::sweep_bar(cfg.sweep_size())
    } else {
        crate::cmd::progress::spinner("listening for replies · 0 found")
    };
    if swept {
        // The sweep's count moves between replies too; the ticker stops with the bar.
        let (bar, done) = (progress.clone(), cfg.sweep_progress.clone());
        tokio::spawn(async move {
            while !bar.is_finished() {
                bar.set_position(done.done());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
    }
    let hosts = cfg.hosts.clone();
    let port = cfg.port;
    let (tx, mut rx) = mpsc::channel::<DiscoveryEvent>(1024);
    let token = CancellationToken::new();
    let task = discovery::spawn(cfg, tx, token.clone());
    let ctrl_c = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ctrl_c.cancel();
        }
    });
    let mut fleet = Fleet::new(Instant::now());
    let names = Names::default();
    let mut out = std::io::stdout();
    let mut header_done = false;
    let mut hostile = 0usize;
    let mut elapsed = 0u64;
    let mut send_errors = Vec::new();
    // Named hosts that answered something unusable, with the reason.
    let mut refused: BTreeMap<IpAddr, String> = BTreeMap::new();
    while let Some(ev) = rx.recv().await {
        let sighting = match ev {
            DiscoveryEvent::Hostile { from, reason } => {
                hostile += 1;
                tracing::info!(%from, %reason, "ignored a reply");
                // A named host that answered something unusable is told with the reason.
                if hosts.iter().any(|h| IpAddr::V4(*h) == from.ip()) {
                    refused.insert(from.ip(), reason.to_string());
                }
                continue;
            }
            DiscoveryEvent::RoundDone { send_errors: e, .. } => {
                send_errors.extend(e.iter().cloned());
                continue;
            }
            DiscoveryEvent::Finished { at, .. } => {
                elapsed = at;
                continue;
            }
            DiscoveryEvent::Found(s) => s,
        };
        let before: HashMap<String, (SocketAddr, usize)> = fleet
            .devices
            .values()
            .map(|d| (d.key.clone(), (d.addr, d.found_by.len())))
            .collect();
        fleet.observe(sighting.into(), &names, Instant::now());
        let mut changed: Vec<(&Device, bool)> = fleet
            .by_address()
            .into_iter()
            .filter_map(|d| match before.get(&d.key) {
                None => Some((d, true)),
                Some(&(addr, n)) if addr != d.addr || n != d.found_by.len() => Some((d, false)),
                Some(_) => None,
            })
            .collect();
        changed.sort_by_key(|(d, _)| d.first_seen);
        let found_n = fleet.len();
        progress.suspend(|| -> std::io::Result<()> {
            for (d, added) in changed {
                if json {
                    writeln!(out, "{}", device_json(d, fleet.started))?;
                } else if added {
                    if !header_done {
                        writeln!(out, "{}", table_header())?;
                        header_done = true;
                    }
                    writeln!(out, "{}", table_row(d))?;
                }
            }
            out.flush()
        })?;
        if swept {
            progress.set_message(format!("{found_n} found"));
        } else {
            progress.set_message(format!("listening for replies · {found_n} found"));
        }
    }
    progress.finish_and_clear();
    task.await??;
    // Every named host gets an answer: its device, the same device as another address, or
    // why it gave none.
    let mut missing = 0usize;
    for h in &hosts {
        let ip = IpAddr::V4(*h);
        let line = match host_outcome(&fleet, ip, refused.get(&ip)) {
            HostOutcome::Listed => continue,
            HostOutcome::SameAs(d) => {
                let same = crate::cmd::status::same_device_text(d);
                if json {
                    crate::cmd::status::same_device_json(ip, d).to_string()
                } else {
                    offline_row(ip, port, &same)
                }
            }
            HostOutcome::NoAnswer(error) => {
                missing += 1;
                if json {
                    serde_json::json!({
                        "ip": ip.to_string(),
                        "port": port,
                        "online": false,
                        "error": error,
                    })
                    .to_string()
                } else {
                    offline_row(ip, port, &format!("offline: {error}"))
                }
            }
        };
        if !json && !header_done {
            writeln!(out, "{}", table_header())?;
            header_done = true;
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    for e in &send_errors {
        eprintln!("plugfleet: warning: could not send to {e}");
    }
    if !json {
        eprintln!("{}", summary(&fleet, hostile, elapsed));
        if missing > 0 {
            eprintln!(
                "plugfleet: {missing} named host{} did not answer",
                if missing == 1 { "" } else { "s" }
            );
        }
        if fleet.is_empty() && !swept && hosts.is_empty() {
            eprintln!(
                "hint: plugs on another subnet, VLAN or behind AP isolation do not hear \
                 broadcasts; try --host ADDR or --sweep CIDR (e.g. --sweep 192.168.1.0/24)"
            );
        }
    }
    Ok(exit_code(fleet.is_empty(), missing))
}

/// 0 when every named host answered and something was found; 1 otherwise (2, usage errors,
/// is returned before discovery starts).
fn exit_code(nothing_found: bool, missing: usize) -> ExitCode {
    if nothing_found || missing > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What became of a named host after the pass.
enum HostOutcome<'a> {
    /// A device of the fleet is listed at this address.
    Listed,
    /// The device answered here too but is listed at another address.
    SameAs(&'a Device),
    /// It did not answer (or answered something unusable), with why.
    NoAnswer(String),
}

fn host_outcome<'a>(fleet: &'a Fleet, ip: IpAddr, refused: Option<&String>) -> HostOutcome<'a> {
    if fleet.devices.values().any(|d| d.addr.ip() == ip) {
        return HostOutcome::Listed;
    }
    if let Some(d) = fleet
        .by_address()
        .into_iter()
        .find(|d| d.previous_ips.contains(&ip))
    {
        return HostOutcome::SameAs(d);
    }
    HostOutcome::NoAnswer(refused.cloned().unwrap_or_else(|| "no answer".to_owned()))
}

/// The normalised MAC when it is one, else what the device sent.
fn mac_of(d: &Device) -> String {
    valid_mac(d.mac()).unwrap_or_else(|| d.mac().to_owned())
}

/// A text row for an address with no device of its own: the note in the ALIAS column.
fn offline_row(ip: IpAddr, port: u16, note: &str) -> String {
    let mut cells = vec![ip.to_string(), port.to_string()];
    cells.extend(std::iter::repeat_n("-".to_owned(), COLUMNS.len() - 3));
    cells.push("host".to_owned());
    // The note goes where the alias would, uncut: it is the last column.
    let mut s = crate::cmd::table::fixed_row(&cells, &column_widths()[..COLUMNS.len()]);
    s.push_str("  ");
    s.push_str(&clean(note));
    s
}

/// The `plugfleet discover --json` object of a device (an interface: tests/discovery_cli.rs).
fn device_json(d: &Device, started: Instant) -> Value {
    let s = d.sysinfo.as_ref();
    let t_ms = u64::try_from(d.first_seen.saturating_duration_since(started).as_millis())
        .unwrap_or(u64::MAX);
    let opt = |v: &str| (!v.is_empty() || s.is_some()).then(|| v.to_owned());
    json!({
        "ip": d.addr.ip().to_string(),
        "port": d.addr.port(),
        "mac": mac_of(d),
        "device_id": d.device_id(),
        "alias": s.map(|s| s.alias.as_str())
            .or_else(|| d.tdp.as_ref().and_then(|t| t.device_name.as_deref())),
        "type": d.kind(),
        "model": opt(d.model()),
        "hw_ver": opt(d.hw_ver()),
        "sw_ver": s.map(|s| s.sw_ver.as_str())
            .or_else(|| d.tdp.as_ref().and_then(|t| t.sw_ver.as_deref())),
        "hw_id": s.and_then(|s| s.hw_id.as_deref()),
        "fw_id": s.and_then(|s| s.fw_id.as_deref()),
        "oem_id": s.and_then(|s| s.oem_id.as_deref()),
        "has_emeter": d.has_emeter(),
        "children": s.map(|s| s.children.len()),
        "protocol": d.protocol(),
        "device_type": s.and_then(|s| s.device_type.as_deref())
            .or_else(|| d.tdp.as_ref().map(|t| t.device_type.as_str())),
        "http_port": d.tdp.as_ref().and_then(|t| t.http_port),
        // How plugfleet reads it: `legacy` (port 9999), `klap-iot`, `klap-smart`, `aes-smart`,
        // `klap-smart-https` (KLAP over TLS) or `unsupported`; and whether that needs the
        // TP-Link account.
        "transport": match (&d.access, &d.refusal) {
            (Some(a), _) => a.label(),
            (None, Some(_)) => "unsupported",
            (None, None) if d.sysinfo.is_some() => "legacy",
            (None, None) => "unknown",
        },
        "credentials": match (&d.access, &d.refusal) {
            (Some(_), _) => Some("required"),
            (None, Some(r)) => Some(r.label()),
            (None, None) => None,
        },
        "found_by": d.found_by,
        "previous_ips": d.previous_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "online": true,
        "t_ms": t_ms,
    })
}

/// Device-supplied text, made safe for a terminal.
fn clean(s: &str) -> String {
    crate::text::sanitize(s).into_owned()
}

/// The widths of [`COLUMNS`] and of the alias after them, in display cells.
fn column_widths() -> Vec<u16> {
    COLUMNS.iter().map(|(_, w)| *w).chain([ALIAS_W]).collect()
}

/// The alias column (the last): cut to this many cells with `…`.
const ALIAS_W: u16 = 32;

/// The columns printed a row at a time as devices answer: fixed widths, laid out by display
/// width (comfy-table, [`crate::cmd::table::fixed_row`]), so every row lines up with the header.
const COLUMNS: [(&str, u16); 10] = [
    ("IP", 15),
    ("PORT", 5),
    ("MAC", 17),
    ("TYPE", 10),
    ("MODEL", 12),
    ("HW", 4),
    ("FIRMWARE", 8),
    ("PROTOCOL", 8),
    ("OUTLETS", 7),
    ("FOUND BY", 9),
];

fn table_header() -> String {
    let heads: Vec<String> = COLUMNS
        .iter()
        .map(|(h, _)| (*h).to_owned())
        .chain(["ALIAS".to_owned()])
        .collect();
    crate::cmd::table::fixed_row(&heads, &column_widths())
}

fn table_row(d: &Device) -> String {
    let (firmware, outlets) = match &d.sysinfo {
        Some(s) => (
            s.sw_ver.split_whitespace().next().unwrap_or("").to_owned(),
            match s.children.len() {
                0 => "-".to_owned(),
                n => n.to_string(),
            },
        ),
        // Known by its UDP 20002 reply alone: the firmware it reports there.
        None => (
            d.tdp
                .as_ref()
                .and_then(|t| t.version())
                .unwrap_or("-")
                .to_owned(),
            "-".to_owned(),
        ),
    };
    let or_unknown = |v: &str| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.to_owned()
        }
    };
    let found: Vec<&str> = d.found_by.iter().map(String::as_str).collect();
    let cells = [
        d.addr.ip().to_string(),
        d.addr.port().to_string(),
        mac_of(d),
        d.kind().label().to_owned(),
        or_unknown(d.model()),
        or_unknown(d.hw_ver()),
        firmware,
        d.protocol().to_owned(),
        outlets,
        found.join(","),
    ];
    let alias = match (&d.sysinfo, &d.tdp) {
        (Some(s), _) => s.alias.as_str(),
        (None, Some(t)) => t.device_name.as_deref().unwrap_or("-"),
        _ => "-",
    };
    let mut cells = cells.to_vec();
    cells.push(alias.to_owned());
    crate::cmd::table::fixed_row(&cells, &column_widths())
}

fn summary(f: &Fleet, hostile: usize, elapsed_ms: u64) -> String {
    let n = f.len();
    let mut parts = Vec::new();
    for by in [
        FoundBy::Broadcast,
        FoundBy::Host,
        FoundBy::Sweep,
        FoundBy::Udp20002,
    ] {
        let c = f
            .devices
            .values()
            .filter(|d| d.found_by.contains(by.as_str()))
            .count();
        if c > 0 {
            parts.push(format!("{c} by {by}"));
        }
    }
    let newer = f
        .devices
        .values()
        .filter(|d| d.protocol() != "legacy")
        .count();
    let mut s = format!(
        "{n} device{} in {elapsed_ms} ms",
        if n == 1 { "" } else { "s" }
    );
    if !parts.is_empty() {
        s.push_str(&format!(" ({})", parts.join(", ")));
    }
    if newer > 0 {
        s.push_str(&format!(
            "; {newer} {} a newer protocol only (read over KLAP/AES with the TP-Link account: \
             --username/--password)",
            if newer == 1 { "speaks" } else { "speak" }
        ));
    }
    if hostile > 0 {
        s.push_str(&format!(
            "; {hostile} malformed or unexpected replies ignored"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_cut_by_display_width_and_made_safe() {
        let row = |c: &str| crate::cmd::table::fixed_row(&[c.to_owned(), "x".into()], &[4, 1]);
        assert_eq!(row("ab"), "ab    x");
        assert_eq!(row("abcdef"), "abc…  x");
        assert_eq!(row("é\u{1b}[31m"), "é\u{FFFD}    x");
        assert_eq!(row("日本語"), "日…   x");
    }

    #[test]
    fn header_and_rows_align() {
        let mut r = Fleet::new(Instant::now());
        let p = crate::net::discovery::loopback::FakePlug::strip(
            std::net::Ipv4Addr::new(127, 0, 0, 1),
            3,
            6,
        );
        let info = crate::protocol::SysInfo::from_result(&p.sysinfo).unwrap();
        r.observe(
            crate::protocol::sighting::Sighting {
                ip: "127.0.0.1".parse().unwrap(),
                port: 9999,
                found_by: FoundBy::Sweep,
                at: 3,
                reply: crate::protocol::sighting::DeviceReply::Legacy(info),
            }
            .into(),
            &Names::default(),
            Instant::now(),
        );
        let h = table_header();
        let row = table_row(r.by_address()[0]);
        assert_eq!(h.find("ALIAS"), row.find("plug 3"));
        assert_eq!(h.find("OUTLETS"), row.find("6 "));
        assert_eq!(h.find("TYPE"), row.find("strip "));
        assert!(summary(&r, 2, 40).starts_with("1 device in 40 ms (1 by sweep)"));
    }

    #[test]
    fn an_unknown_outlet_count_is_not_the_suspect_glyph() {
        // Found by QA: a newer-protocol plug's OUTLETS read `?`, the glyph for a suspect value.
        let mut r = Fleet::new(Instant::now());
        let p = crate::net::discovery::loopback::FakePlug::newer(std::net::Ipv4Addr::LOCALHOST, 4);
        let json = serde_json::json!({"error_code": 0, "result": p.tdp.unwrap()}).to_string();
        let info = crate::protocol::tdp::decode_reply(&crate::protocol::tdp::encode_packet(
            json.as_bytes(),
            0,
            0,
        ))
        .unwrap();
        r.observe(
            crate::protocol::sighting::Sighting {
                ip: "127.0.0.1".parse().unwrap(),
                port: 20002,
                found_by: FoundBy::Udp20002,
                at: 3,
                reply: crate::protocol::sighting::DeviceReply::Newer(info),
            }
            .into(),
            &Names::default(),
            Instant::now(),
        );
        let row = table_row(r.by_address()[0]);
        assert!(row.contains("klap"), "{row}");
        assert!(!row.contains('?'), "{row}");
    }
}
