//! `plugfleet demo`: the TUI on an embedded simulated fleet on loopback, found the way a real
//! fleet is (broadcast to 127.255.255.255 plus a sweep of the fleet's range). Nothing is sent
//! off loopback; busy loopback addresses or ports are skipped.
//!
//! Everything the demo writes (its log, the update journal, recordings of the record key, the
//! demo firmware images) goes into its own fresh temporary folder, [`DemoFolder`], never into
//! the user's data, state or config folders; the exit message says where, after the terminal
//! is handed back (the status bar too at start, until discovery's first message replaces it). The folder is kept (minus the images) so a
//! recording made in the demo is not lost; it lives in the system's temporary directory.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ipnet::Ipv4Net;

use crate::app::state::App;
use crate::cmd::tui::{ViewArgs, run_tui};
use crate::net::client::ClientConfig;
use crate::net::discovery::DiscoveryConfig;
use crate::runtime::Setup;
use crate::runtime::sources::{discovery_source, rediscovery_interval};
use crate::sim::{self, FaultKind, Fleet, FleetSpec, SimError};

#[derive(Debug, Clone, Args, Default)]
pub struct DemoArgs {
    #[command(flatten)]
    pub view: ViewArgs,
}

/// The demo's own folder, `<tmp>/plugfleet-demo-<pid>-<n>`, created new (private to the user
/// on Unix): the only place the demo writes to.
#[derive(Debug)]
pub struct DemoFolder {
    root: PathBuf,
}

impl DemoFolder {
    /// Creates a fresh folder in the system's temporary directory (never one that exists).
    pub fn create() -> std::io::Result<DemoFolder> {
        Self::create_in(&std::env::temp_dir())
    }

    /// Creates a fresh `plugfleet-demo-<pid>-<n>` folder in `base`.
    pub fn create_in(base: &Path) -> std::io::Result<DemoFolder> {
        let mut last = None;
        for n in 0..100u32 {
            let root = base.join(format!("plugfleet-demo-{}-{n}", std::process::id()));
            // Private to the user on Unix; on Windows the temporary folder is already per user.
            #[cfg(unix)]
            let b = {
                use std::os::unix::fs::DirBuilderExt as _;
                let mut b = std::fs::DirBuilder::new();
                b.mode(0o700);
                b
            };
            #[cfg(not(unix))]
            let b = std::fs::DirBuilder::new();
            match b.create(&root) {
                Ok(()) => return Ok(DemoFolder { root }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no temporary directory")))
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The update journal of the demo's firmware batches.
    pub fn journal(&self) -> PathBuf {
        self.root.join("journal.jsonl")
    }

    /// Where the record key writes (no `--record`): `readings-YYYY-MM-DD.jsonl` in the folder.
    pub fn record_path(&self, unix_ms: u64) -> PathBuf {
        self.root
            .join(crate::app::export::default_record_name(unix_ms))
    }
}

/// The demo fleet's profiles, in address order.
/// The first fourteen fit the /28 the demo sweeps (base .2 to .15; the camera at .15 is found
/// by the UDP 20002 broadcast); the two SMART devices after them (.16, .17) are found by that
/// broadcast alone too.
pub const PROFILES: [&str; 16] = [
    "hs110-eu-hw4",
    "hs110-us-hw1", // the 28 kW glitch
    "hs110-eu-hw1", // the unit-scale bug
    "kp115-us-hw1", // offline now and then
    "hs100-us-hw2",
    "hs300-us-hw2",        // a six-outlet strip, metered per outlet
    "hs220-us-hw1",        // a wall dimmer: brightness, no meter
    "kl130-eu-hw1",        // a colour bulb, metered at smartlife.iot.common.emeter
    "kp303-us-hw2",        // a strip without meter
    "hs100-uk-hw4-klap",   // newer protocol only: IOT JSON over KLAP v1
    "kp125m-us-hw1-smart", // newer protocol only: SMART JSON-RPC over KLAP v2
    "hs110-us-hw1",        // voltage 8 % low: a quiet fault only the fleet-voltage rule shows
    "kl430-us-hw2",        // a light strip
    "c210-eu-hw2-camera",  // a camera: known by its UDP 20002 reply alone
    "p304m-uk-hw1-smart",  // a SMART strip over KLAP v2, metered per outlet; one outlet glitches
    "ep25-us-hw2-smart",   // a SMART plug with energy over KLAP v2
];

/// The demo P304M's glitching outlet (1-based): the 28 kW rule flags it in its outlet row.
pub const GLITCH_OUTLET: u8 = 2;

/// The spec for a demo fleet starting at `base`, on a free port.
pub fn demo_spec(base: Ipv4Addr) -> FleetSpec {
    let at = |i: u32| Ipv4Addr::from(u32::from(base) + i);
    FleetSpec {
        base,
        count: PROFILES.len(),
        port: 0,
        tdp_port: 0,
        profiles: PROFILES.iter().map(|p| (*p).to_owned()).collect(),
        // Flash + reboot of a plug take seconds rather than a minute, so a firmware update can
        // be watched end to end in the demo.
        time_scale: crate::app::firmware::DEMO_TIME_SCALE,
        clock_rate: 1.0,
        utc_offset_s: 0,
        faults: vec![
            (at(1), FaultKind::Glitch28kw),
            // The glitch poisoned a day of its energy history too: flagged in the detail
            // pane's chart and by `plugfleet history`.
            (at(1), FaultKind::HistoryGlitch),
            (at(2), FaultKind::UnitScale),
            (at(3), FaultKind::Flaky),
            // Four other metered US devices read the true mains voltage to compare it with.
            (at(11), FaultKind::VoltageDrift { pct: -8 }),
            // A SMART strip's outlet glitching, flagged like a legacy plug's.
            (
                at(14),
                FaultKind::OutletGlitch28kw {
                    outlet: GLITCH_OUTLET,
                },
            ),
        ],
        // The demo images of `assets/firmware/` are accepted by default.
        images: Vec::new(),
    }
}

/// Loopback /28 blocks tried in turn (derived from the process id, so two demos differ), then
/// 127.0.0.2–127.0.0.17: where only 127.0.0.1 is up by default (macOS), those are the
/// addresses to alias (README, "Platforms").
fn candidate_bases() -> impl Iterator<Item = Ipv4Addr> {
    let seed = std::process::id();
    let derived = (0..64u32).map(move |i| {
        let n = seed
            .wrapping_mul(2_654_435_761)
            .wrapping_add(i.wrapping_mul(40_503));
        // 127.(100..=227).(0..=255).(16 × k + 2): never .0/.1 of a block, never the broadcast.
        Ipv4Addr::new(
            127,
            100 + (n % 128) as u8,
            (n >> 8) as u8,
            ((n >> 16) % 15) as u8 * 16 + 2,
        )
    });
    derived.chain(std::iter::once(Ipv4Addr::new(127, 0, 0, 2)))
}

/// Starts the demo fleet on the first loopback block where it can bind.
pub async fn start_fleet() -> anyhow::Result<Fleet> {
    let mut last = None;
    for base in candidate_bases() {
        match sim::start(demo_spec(base)).await {
            Ok(f) => return Ok(f),
            Err(
                e @ (SimError::AddrInUse { .. }
                | SimError::AddrNotAvailable { .. }
                | SimError::Io { .. }),
            ) => {
                tracing::info!("demo fleet at {base} not possible: {e}");
                last = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(anyhow::anyhow!(
        "could not start the simulated fleet on any loopback address: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Discovery of the demo fleet: broadcast to 127.255.255.255 and a sweep of its /28, on the
/// fleet's ports. Every address is loopback (checked).
pub fn demo_discovery(fleet: &Fleet) -> anyhow::Result<DiscoveryConfig> {
    let first = fleet
        .plugs()
        .first()
        .map(|p| p.ip)
        .ok_or_else(|| anyhow::anyhow!("the demo fleet is empty"))?;
    let sweep = Ipv4Net::new(first, 28)?.trunc();
    let cfg = DiscoveryConfig {
        targets: vec![sim::LOOPBACK_BROADCAST],
        hosts: Vec::new(),
        sweeps: vec![sweep],
        port: fleet.port(),
        tdp_port: fleet.tdp_port(),
        timeout: Duration::from_millis(1500),
        ..DiscoveryConfig::default()
    };
    let all_loopback = cfg.targets.iter().all(Ipv4Addr::is_loopback)
        && cfg.hosts.iter().all(Ipv4Addr::is_loopback)
        && cfg
            .sweeps
            .iter()
            .all(|n| n.network().is_loopback() && n.broadcast().is_loopback());
    anyhow::ensure!(
        all_loopback,
        "refusing a demo discovery that leaves loopback"
    );
    Ok(cfg)
}

/// Runs the demo; everything it writes goes into `folder` (`main` created it first, for the log).
pub fn run(args: DemoArgs, folder: &DemoFolder) -> anyhow::Result<ExitCode> {
    let result = run_in(args, folder);
    // After the terminal is handed back, so it stays on the screen. Not `eprintln!`, which
    // panics when the terminal hung up.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "plugfleet demo: its files (log, update journal, recordings) are in {}",
        folder.path().display()
    );
    result
}

fn run_in(args: DemoArgs, folder: &DemoFolder) -> anyhow::Result<ExitCode> {
    // The demo firmware images are embedded: written to the demo's folder (removed on exit)
    // where the picker starts, whatever the current directory.
    let images = crate::app::firmware::DemoImages::write_in(folder.path())
        .map_err(|e| anyhow::anyhow!("cannot write the demo firmware images: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let fleet = rt.block_on(start_fleet())?;
    // The newer-protocol plugs (HS100(UK), KP125M, P304M, EP25) answer KLAP over HTTP, bound
    // to the demo's account (preset below), so they read like any other plug.
    let klap = match rt.block_on(sim::klap::serve(&fleet, &sim::klap::KlapSpec::default())) {
        Ok(k) => k,
        Err(e) => {
            rt.block_on(fleet.shutdown());
            return Err(e.into());
        }
    };
    // The faulty plugs' relays on, so their bad readings show (a plug that is off reads 0 W).
    rt.block_on(async {
        // (Port 9999: the legacy ones. A SMART strip's glitch shows whatever its relays.)
        for p in fleet
            .plugs()
            .iter()
            .filter(|p| !p.faults.is_empty() && p.has_meter() && p.is_legacy())
        {
            let client = crate::net::Client::new(
                IpAddr::V4(p.ip),
                ClientConfig::with_timeout(fleet.port(), Duration::from_secs(2)),
            );
            if let Err(e) = client.set_relay(true, None).await {
                tracing::warn!(ip = %p.ip, "demo: could not switch the relay on: {e}");
            }
        }
    });
    let disc = demo_discovery(&fleet)?;
    tracing::info!(port = fleet.port(), first = %disc.sweeps[0], "demo fleet started");
    let mut settings = args.view.settings(Some("DEMO".into()));
    let metrics = match args.view.start_metrics(&rt) {
        Ok(m) => m,
        Err(e) => {
            rt.block_on(fleet.shutdown());
            return Err(e);
        }
    };
    settings.metrics_url = metrics.as_ref().map(|m| m.url.clone());
    settings.firmware_dir = images.dir();
    settings.firmware = crate::app::firmware::FirmwareSettings::demo();
    // Never the user's data folder: the journal and the record key's file go to the demo's.
    settings.firmware.journal = Some(folder.journal());
    settings.record_default = folder.record_path(settings.epoch_unix_ms);
    settings.account = Some(crate::net::klap::Credentials::new(
        sim::klap::DEFAULT_USERNAME,
        sim::klap::DEFAULT_PASSWORD,
    ));
    let timeout = Duration::from_secs(2);
    let setup = Setup {
        poll: crate::net::poller::PollConfig {
            interval: args.view.interval(),
            client: ClientConfig::with_timeout(fleet.port(), timeout),
            ..Default::default()
        },
        client: ClientConfig::with_timeout(fleet.port(), timeout),
        metrics: metrics.as_ref().map(|m| m.tx.clone()),
    };
    let sources = discovery_source(disc, rediscovery_interval(args.view.interval()));
    let now = std::time::Instant::now();
    let mut app = App::new(settings, now);
    app.set_status(
        format!(
            "demo files (journal, recordings, log) go to {}",
            folder.path().display()
        ),
        now,
    );
    let result = run_tui(&rt, app, setup, sources);
    drop(metrics);
    rt.block_on(klap.shutdown());
    rt.block_on(fleet.shutdown());
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(images);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_demo_gets_a_fresh_private_folder_holding_all_it_writes() {
        let base = std::env::temp_dir().join(format!("pf-demo-folder-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let a = DemoFolder::create_in(&base).unwrap();
        let b = DemoFolder::create_in(&base).unwrap();
        assert_ne!(a.path(), b.path());
        assert!(a.path().starts_with(&base) && a.path().is_dir());
        assert!(a.journal().starts_with(a.path()));
        assert_eq!(a.record_path(0), a.path().join("readings-1970-01-01.jsonl"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "private to the user: {mode:o}");
        }
        let _ = std::fs::remove_dir_all(base);
    }
}
