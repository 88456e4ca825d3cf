//! `plugfleet discover`: one discovery pass, devices printed as they arrive — an aligned table, or
//! with `--json` one object per line (repeated with the grown `found_by` list when a device is
//! found another way).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cmd::args::{TargetArgs, UsageError, discovery_config};
use crate::fleet::registry::{Change, Device, Registry};
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
    let hosts = cfg.hosts.clone();
    let (tx, mut rx) = mpsc::channel::<DiscoveryEvent>(1024);
    let token = CancellationToken::new();
    let task = discovery::spawn(cfg, tx, token.clone());
    let ctrl_c = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            ctrl_c.cancel();
        }
    });
    let mut registry = Registry::new(1);
    let mut out = std::io::stdout();
    let mut header_done = false;
    let mut hostile = 0usize;
    let mut elapsed = 0u64;
    let mut send_errors = Vec::new();
    // A named host is probed several ways (and retried): each reason is told once per address.
    let mut told: std::collections::HashSet<(std::net::IpAddr, String)> =
        std::collections::HashSet::new();
    while let Some(ev) = rx.recv().await {
        match &ev {
            DiscoveryEvent::Hostile { from, reason } => {
                hostile += 1;
                tracing::info!(%from, %reason, "ignored a reply");
                // A named host that answered something unusable is told with the reason.
                let error = reason.to_string();
                if hosts.iter().any(|h| std::net::IpAddr::V4(*h) == from.ip())
                    && told.insert((from.ip(), error.clone()))
                {
                    if json {
                        let line = serde_json::json!({
                            "ip": from.ip().to_string(),
                            "port": from.port(),
                            "online": false,
                            "error": error,
                        });
                        writeln!(out, "{line}")?;
                    } else {
                        eprintln!("plugfleet: {}: {error}", from.ip());
                    }
                }
            }
            DiscoveryEvent::RoundDone { send_errors: e, .. } => {
                send_errors.extend(e.iter().cloned())
            }
            DiscoveryEvent::Finished { at, .. } => elapsed = *at,
            DiscoveryEvent::Found(_) => {}
        }
        if matches!(ev, DiscoveryEvent::RoundDone { .. }) {
            // One pass only: liveness does not apply.
            continue;
        }
        for change in registry.apply(&ev) {
            let line = match change {
                Change::Added { idx } => registry.get(idx).map(|d| (d, true)),
                Change::NewProvenance { idx, .. }
                | Change::Moved { idx, .. }
                | Change::Updated { idx } => registry.get(idx).map(|d| (d, false)),
                Change::AddressReused { ip, previous, now } => {
                    if let (Some(p), Some(n)) = (registry.get(previous), registry.get(now)) {
                        eprintln!(
                            "plugfleet: note: {ip} was {} and is now answered by {}",
                            clean(&p.mac),
                            clean(&n.mac)
                        );
                    }
                    None
                }
                Change::Online { .. } | Change::Offline { .. } => None,
            };
            let Some((device, added)) = line else {
                continue;
            };
            if json {
                writeln!(out, "{}", device.to_json())?;
            } else if added {
                if !header_done {
                    writeln!(out, "{}", table_header())?;
                    header_done = true;
                }
                writeln!(out, "{}", table_row(device))?;
            }
            out.flush()?;
        }
    }
    task.await??;
    for e in &send_errors {
        eprintln!("plugfleet: warning: could not send to {e}");
    }
    if !json {
        eprintln!("{}", summary(&registry, hostile, elapsed));
        if registry.is_empty() && !swept {
            eprintln!(
                "hint: plugs on another subnet, VLAN or behind AP isolation do not hear \
                 broadcasts; try --host ADDR or --sweep CIDR (e.g. --sweep 192.168.1.0/24)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Device-supplied text, made safe for a terminal.
fn clean(s: &str) -> String {
    crate::text::sanitize(s).into_owned()
}

/// Pads or cuts `s` to exactly `w` characters.
fn fit(s: &str, w: usize) -> String {
    let s = clean(s);
    let n = s.chars().count();
    if n > w {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        format!("{s}{}", " ".repeat(w - n))
    }
}

const COLUMNS: [(&str, usize); 9] = [
    ("IP", 15),
    ("PORT", 5),
    ("MAC", 17),
    ("MODEL", 12),
    ("HW", 4),
    ("FIRMWARE", 8),
    ("PROTOCOL", 8),
    ("OUTLETS", 7),
    ("FOUND BY", 9),
];

fn table_header() -> String {
    let mut s: String = COLUMNS
        .iter()
        .map(|(h, w)| fit(h, *w))
        .collect::<Vec<_>>()
        .join("  ");
    s.push_str("  ALIAS");
    s
}

fn table_row(d: &Device) -> String {
    let firmware = d
        .sw_ver()
        .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
        .unwrap_or_else(|| "-".into());
    let outlets = match d.children() {
        Some(0) => "-".to_owned(),
        Some(n) => n.to_string(),
        None => "-".to_owned(),
    };
    let found: Vec<&str> = d.found_by.iter().map(|f| f.as_str()).collect();
    let cells = [
        d.ip.to_string(),
        d.port.to_string(),
        d.mac.clone(),
        d.model().unwrap_or("-").to_owned(),
        d.hw_ver().unwrap_or("-").to_owned(),
        firmware,
        d.protocol().to_owned(),
        outlets,
        found.join(","),
    ];
    let mut s: String = cells
        .iter()
        .zip(COLUMNS)
        .map(|(c, (_, w))| fit(c, w))
        .collect::<Vec<_>>()
        .join("  ");
    s.push_str("  ");
    s.push_str(&fit(d.alias().unwrap_or("-"), 32));
    s.trim_end().to_owned()
}

fn summary(r: &Registry, hostile: usize, elapsed_ms: u64) -> String {
    let n = r.len();
    let mut parts = Vec::new();
    for by in [
        FoundBy::Broadcast,
        FoundBy::Host,
        FoundBy::Sweep,
        FoundBy::Udp20002,
    ] {
        let c = r
            .devices()
            .iter()
            .filter(|d| d.found_by.contains(&by))
            .count();
        if c > 0 {
            parts.push(format!("{c} by {by}"));
        }
    }
    let newer = r
        .devices()
        .iter()
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
            "; {newer} {} a newer protocol only (no local control on port 9999)",
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
    fn fit_pads_and_cuts_by_characters() {
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("é\u{1b}[31m", 4), "é\u{FFFD}  ");
    }

    #[test]
    fn an_unknown_outlet_count_is_not_the_suspect_glyph() {
        // Found by QA: a newer-protocol plug's OUTLETS read `?`, the glyph for a suspect value.
        let mut r = Registry::new(1);
        let p = crate::net::discovery::loopback::FakePlug::newer(std::net::Ipv4Addr::LOCALHOST, 4);
        let json = serde_json::json!({"error_code": 0, "result": p.tdp.unwrap()}).to_string();
        let info = crate::protocol::tdp::decode_reply(&crate::protocol::tdp::encode_packet(
            json.as_bytes(),
            0,
            0,
        ))
        .unwrap();
        r.observe(&crate::protocol::sighting::Sighting {
            ip: "127.0.0.1".parse().unwrap(),
            port: 20002,
            found_by: FoundBy::Udp20002,
            at: 3,
            reply: crate::protocol::sighting::DeviceReply::Newer(info),
        });
        let row = table_row(&r.devices()[0]);
        assert!(row.contains("klap"), "{row}");
        assert!(!row.contains('?'), "{row}");
    }

    #[test]
    fn header_and_rows_align() {
        let mut r = Registry::new(1);
        let p = crate::net::discovery::loopback::FakePlug::strip(
            std::net::Ipv4Addr::new(127, 0, 0, 1),
            3,
            6,
        );
        let info = crate::protocol::SysInfo::from_result(&p.sysinfo).unwrap();
        r.observe(&crate::protocol::sighting::Sighting {
            ip: "127.0.0.1".parse().unwrap(),
            port: 9999,
            found_by: FoundBy::Sweep,
            at: 3,
            reply: crate::protocol::sighting::DeviceReply::Legacy(info),
        });
        let h = table_header();
        let row = table_row(&r.devices()[0]);
        assert_eq!(h.find("ALIAS"), row.find("plug 3"));
        assert_eq!(h.find("OUTLETS"), row.find("6 "));
        assert!(summary(&r, 2, 40).starts_with("1 device in 40 ms (1 by sweep)"));
    }
}
