//! `plugfleet bench discovery`: time from the first probe until the last of N plugs is known,
//! by broadcast (127.255.255.255) and by TCP sweep of the whole /24, for N = 10, 50, 250, against
//! the simulator (every profile, newer-protocol plugs included) and, for comparison, against the
//! minimal discovery responders. Loopback only. Prints figures; asserts nothing about time.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::net::discovery::loopback::{FakePlug, LOOPBACK_BROADCAST, LoopbackFleet};
use crate::net::discovery::{self, DiscoveryConfig};
use crate::protocol::sighting::DiscoveryEvent;
use crate::sim::{Fleet, FleetSpec};

/// Fleet sizes measured.
pub const SIZES: [u32; 3] = [10, 50, 250];
/// Runs per measurement (median and worst are printed).
pub const RUNS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Broadcast,
    Sweep,
}

/// One run: milliseconds until every plug was known, and until the pass was over (the sweep
/// settles every address of the /24; a broadcast pass always lasts its timeout, so it is
/// cancelled once all are known and that figure is not reported).
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    pub all_known_ms: f64,
    pub pass_done_ms: Option<f64>,
    pub found: usize,
}

/// Measures one discovery pass against plugs on `port`/`tdp_port` in 127.`net`.0/24 (`expect`
/// of them).
pub async fn measure(
    port: u16,
    tdp_port: u16,
    net: (u8, u8),
    method: Method,
    expect: usize,
) -> anyhow::Result<Measurement> {
    let mut cfg = DiscoveryConfig {
        port,
        tdp_port,
        timeout: Duration::from_secs(5),
        ..DiscoveryConfig::default()
    };
    match method {
        Method::Broadcast => cfg.targets = vec![LOOPBACK_BROADCAST],
        Method::Sweep => cfg.sweeps = vec![format!("127.{}.{}.0/24", net.0, net.1).parse()?],
    }
    let (tx, mut rx) = mpsc::channel::<DiscoveryEvent>(1024);
    let token = CancellationToken::new();
    let start = Instant::now();
    let task = discovery::spawn(cfg, tx, token.clone());
    let mut macs = HashSet::new();
    let mut all_known = None;
    let mut pass_done = None;
    while let Some(ev) = rx.recv().await {
        match ev {
            DiscoveryEvent::Found(s) => {
                macs.insert(s.reply.mac().to_owned());
                if macs.len() == expect && all_known.is_none() {
                    all_known = Some(start.elapsed());
                    if method == Method::Broadcast {
                        token.cancel();
                    }
                }
            }
            DiscoveryEvent::RoundDone { .. } => pass_done = Some(start.elapsed()),
            _ => {}
        }
    }
    task.await??;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(Measurement {
        all_known_ms: all_known.map_or(f64::NAN, ms),
        pass_done_ms: pass_done.map(ms),
        found: macs.len(),
    })
}

fn median_max(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (v[v.len() / 2], v[v.len() - 1])
}

/// A /24 of 127/8 for the benchmark, away from the ones tests use.
fn bench_net() -> (u8, u8) {
    let b = (std::process::id() % 250) as u8;
    (200, b)
}

/// The two kinds of fleet measured.
enum Responders {
    Sim(Fleet),
    Minimal(LoopbackFleet),
}

impl Responders {
    async fn start(sim: bool, net: (u8, u8), n: u32) -> anyhow::Result<Self> {
        let base = Ipv4Addr::new(127, net.0, net.1, 1);
        Ok(if sim {
            Responders::Sim(Fleet::start(FleetSpec::on_free_port(base, n as usize)).await?)
        } else {
            let plugs = (1..=n)
                .map(|i| FakePlug::legacy(Ipv4Addr::new(127, net.0, net.1, i as u8), i))
                .collect();
            Responders::Minimal(LoopbackFleet::start(plugs).await?)
        })
    }

    fn ports(&self) -> (u16, u16) {
        match self {
            Responders::Sim(f) => (f.port(), f.tdp_port()),
            Responders::Minimal(f) => (f.port(), f.tdp_port()),
        }
    }

    async fn shutdown(self) {
        match self {
            Responders::Sim(f) => f.shutdown().await,
            Responders::Minimal(f) => f.shutdown().await,
        }
    }
}

async fn suite() -> anyhow::Result<()> {
    println!("discovery — loopback, time from the first probe until the last of N plugs is known");
    println!("  sim     = plugfleet::sim fleet, every profile in turn (1 in 9 is a newer-protocol");
    println!("            plug, found through UDP 20002)");
    println!("  minimal = plugfleet::net::discovery::loopback responders (discovery only)");
    println!("  {RUNS} runs each, median / worst; sweep = the whole /24 (254 addresses)");
    println!();
    println!(
        "  {:>5}  {:<8}  {:<10}  {:>22}  {:>22}",
        "plugs", "fleet", "method", "all known ms (med/max)", "pass over ms (med/max)"
    );
    let net = bench_net();
    for n in SIZES {
        for sim in [true, false] {
            let fleet = Responders::start(sim, net, n).await?;
            let (port, tdp_port) = fleet.ports();
            for method in [Method::Broadcast, Method::Sweep] {
                let mut known = Vec::new();
                let mut done = Vec::new();
                let mut missing = 0;
                for _ in 0..RUNS {
                    let m = measure(port, tdp_port, net, method, n as usize).await?;
                    if m.found < n as usize {
                        missing += 1;
                    }
                    known.push(m.all_known_ms);
                    if let Some(d) = m.pass_done_ms {
                        done.push(d);
                    }
                }
                let (km, kx) = median_max(known);
                let over = if done.is_empty() {
                    "—".to_owned()
                } else {
                    let (dm, dx) = median_max(done);
                    format!("{dm:.1} / {dx:.1}")
                };
                let label = match method {
                    Method::Broadcast => "broadcast",
                    Method::Sweep => "sweep /24",
                };
                println!(
                    "  {n:>5}  {:<8}  {label:<10}  {:>22}  {over:>22}{}",
                    if sim { "sim" } else { "minimal" },
                    format!("{km:.1} / {kx:.1}"),
                    if missing > 0 {
                        format!("  ({missing} runs did not find all)")
                    } else {
                        String::new()
                    }
                );
            }
            fleet.shutdown().await;
        }
    }
    println!();
    println!("  targets: 250 by broadcast within 300 ms; a /24 sweep within 1 s");
    Ok(())
}

/// Runs the discovery suite on its own runtime.
pub fn run() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(suite())
}
