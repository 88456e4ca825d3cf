//! `plugfleet bench newer`: the newer-protocol transports against a simulated mixed fleet in a
//! child process (`plugfleet sim`, legacy + KLAP IOT + KLAP SMART + AES SMART plugs, so the
//! simulator's CPU — its RSA and AES — is not counted as ours). Found by a discovery pass
//! exactly as the product finds them (the UDP 20002 reply picks the transport), then:
//!
//! - the process's one RSA key for AES (made once, on a blocking thread), then the cost of a
//!   session: the first poll of each plug (handshake included) against its second (a kept
//!   session), per transport, one plug at a time;
//! - the poller at a 1 s interval over each transport alone and over the whole mixed fleet:
//!   CPU µs per poll, handshakes per minute in the measured window (target: 0 after the
//!   first), latency.
//!
//! Prints figures; asserts nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bench::cpu::cpu_ns;
use crate::bench::sim_child::{self, SimChild};
use crate::bench::tui::rss_bytes;
use crate::net::ClientConfig;
use crate::net::discovery::{self, DiscoveryConfig};
use crate::net::klap::Credentials;
use crate::net::newer::{NewerLink, NewerSpec};
use crate::net::poller::{self, Control, PollConfig, PollReport, Target};
use crate::net::pool::PoolStats;
use crate::protocol::access::Access;
use crate::protocol::sighting::{DeviceReply, DiscoveryEvent};

/// Plugs of the mixed fleet (a quarter of each kind).
pub const MIXED: usize = 252;
const PROFILES: [&str; 4] = [
    "hs110-eu-hw4",
    "hs100-uk-hw4-klap",
    "kp125m-us-hw1-smart",
    "p110-eu-hw1-aes",
];
const WARM_CYCLES: u64 = 2;

/// The mixed fleet on 127.(170+b).0.2…: legacy and newer-protocol plugs, one per profile in turn.
fn start_sim(count: usize) -> anyhow::Result<SimChild> {
    sim_child::start_with(count, 170, 60, Duration::from_secs(60), &PROFILES)
}

/// One device to poll: how (`None` = port 9999) and under which label.
#[derive(Clone)]
struct Tracked {
    key: String,
    addr: SocketAddr,
    label: &'static str,
    spec: Option<NewerSpec>,
}

/// A discovery pass over the simulator's plugs, as `status` does it.
async fn find(sim: &SimChild) -> anyhow::Result<Vec<Tracked>> {
    let num = |v: &Value, k: &str| v[k].as_u64().and_then(|p| u16::try_from(p).ok());
    let first = sim
        .plugs
        .first()
        .ok_or_else(|| anyhow::anyhow!("no plugs"))?;
    let port = num(first, "port").ok_or_else(|| anyhow::anyhow!("no port"))?;
    let tdp_port = sim
        .plugs
        .iter()
        .find_map(|p| num(p, "tdp_port"))
        .ok_or_else(|| anyhow::anyhow!("no newer-protocol plug"))?;
    let account = sim.plugs.iter().find_map(|p| {
        Some(Credentials::new(
            p["username"].as_str()?,
            p["password"].as_str()?,
        ))
    });
    let hosts = sim
        .plugs
        .iter()
        .filter_map(|p| p["ip"].as_str()?.parse().ok())
        .collect();
    let cfg = DiscoveryConfig {
        targets: Vec::new(),
        hosts,
        port,
        tdp_port,
        timeout: Duration::from_secs(2),
        ..DiscoveryConfig::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let task = discovery::spawn(cfg, tx, tokio_util::sync::CancellationToken::new());
    let mut out = Vec::new();
    while let Some(ev) = rx.recv().await {
        let DiscoveryEvent::Found(s) = ev else {
            continue;
        };
        let addr = SocketAddr::new(s.ip, s.port);
        match s.reply {
            DeviceReply::Legacy(sys) => out.push(Tracked {
                key: sys.device_id.clone(),
                addr,
                label: "legacy",
                spec: None,
            }),
            DeviceReply::Newer(t) => {
                let Ok(access) = Access::from_tdp(&t) else {
                    continue;
                };
                out.push(Tracked {
                    key: format!("mac:{}", t.mac),
                    addr,
                    label: access.label(),
                    spec: Some(NewerSpec {
                        access,
                        model: t.model.clone(),
                        account: account.clone(),
                    }),
                });
            }
        }
    }
    task.await??;
    out.sort_by_key(|t| t.addr);
    out.dedup_by(|a, b| a.key == b.key);
    Ok(out)
}

/// First poll (handshake included) and second poll (kept session) of each device, one at a
/// time: mean wall time and CPU of each.
async fn session_cost(devices: &[Tracked]) -> (f64, f64, f64, f64, usize) {
    let (mut w1, mut w2, mut c1, mut c2, mut ok) = (0.0, 0.0, 0.0, 0.0, 0usize);
    for d in devices {
        let Some(spec) = d.spec.clone() else {
            continue;
        };
        let mut link = NewerLink::new(d.addr.ip(), spec, Duration::from_secs(2));
        let (cpu0, t0) = (cpu_ns(), Instant::now());
        let first = link.poll().await;
        let (cpu1, t1) = (cpu_ns(), Instant::now());
        let second = link.poll().await;
        let (cpu2, t2) = (cpu_ns(), Instant::now());
        if first.is_err() || second.is_err() {
            continue;
        }
        ok += 1;
        w1 += (t1 - t0).as_secs_f64() * 1e3;
        w2 += (t2 - t1).as_secs_f64() * 1e3;
        if let (Some(a), Some(b), Some(c)) = (cpu0, cpu1, cpu2) {
            c1 += b.saturating_sub(a) as f64 / 1e3;
            c2 += c.saturating_sub(b) as f64 / 1e3;
        }
    }
    let n = ok.max(1) as f64;
    (w1 / n, c1 / n, w2 / n, c2 / n, ok)
}

struct Figures {
    plugs: usize,
    polls: u64,
    failed: u64,
    cpu_us_per_poll: Option<f64>,
    handshakes_per_min: f64,
    p50: Duration,
    p99: Duration,
}

/// The poller over `devices` at a 1 s interval, `cycles` measured after the warm-up.
async fn measure(devices: &[Tracked], cycles: u64) -> anyhow::Result<Figures> {
    let interval = Duration::from_secs(1);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PollReport>(4096);
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(4096);
    let token = tokio_util::sync::CancellationToken::new();
    let stats = Arc::new(PoolStats::default());
    let cfg = PollConfig {
        interval,
        client: ClientConfig::with_timeout(0, Duration::from_secs(2)),
        ..PollConfig::default()
    };
    // As the app runs it: on a thread of its own.
    let task = poller::spawn_thread(
        cfg,
        ctl_rx,
        tx,
        token.clone(),
        stats.clone(),
        crate::net::newer::Sessions::new(),
    )?;
    for d in devices {
        let t = Target {
            key: d.key.clone(),
            addr: d.addr,
        };
        let c = match &d.spec {
            Some(s) => Control::TrackNewer(t, Box::new(s.clone())),
            None => Control::Track(t),
        };
        ctl_tx.send(c).await?;
    }
    // Warm-up: WARM_CYCLES, and until every device was read once (its session made), at most
    // a minute — the first handshakes are the session cost above, not the steady state.
    let warm = tokio::time::Instant::now() + interval * WARM_CYCLES as u32;
    let cap = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut read: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        let until = if read.len() < devices.len() {
            cap
        } else {
            warm
        };
        match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(r)) => {
                if r.outcome.is_ok() {
                    read.insert(r.key);
                }
            }
            _ => break,
        }
        if read.len() == devices.len() && tokio::time::Instant::now() >= warm {
            break;
        }
    }
    let (cpu0, t0, hs0) = (cpu_ns(), Instant::now(), stats.handshakes());
    let end = tokio::time::Instant::now() + interval * cycles as u32;
    let mut lat = Vec::new();
    let mut failed = 0;
    while let Ok(Some(r)) = tokio::time::timeout_at(end, rx.recv()).await {
        failed += u64::from(r.outcome.is_err());
        lat.push(r.elapsed);
    }
    let wall = t0.elapsed();
    let cpu = cpu0.zip(cpu_ns()).map(|(a, b)| b.saturating_sub(a));
    let handshakes = stats.handshakes() - hs0;
    token.cancel();
    task.join().await;
    lat.sort();
    let polls = lat.len() as u64;
    let pct = |p: usize| {
        lat.get((lat.len() * p / 100).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Figures {
        plugs: devices.len(),
        polls,
        failed,
        cpu_us_per_poll: cpu.map(|c| c as f64 / 1000.0 / polls.max(1) as f64),
        handshakes_per_min: handshakes as f64 * 60.0 / wall.as_secs_f64(),
        p50: pct(50),
        p99: pct(99),
    })
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.1}"))
}

pub fn run(cycles: u64) -> anyhow::Result<()> {
    println!(
        "== newer: KLAP/AES plugs next to legacy ones, {MIXED} simulated plugs ({} kinds) in a child process",
        PROFILES.len()
    );
    let sim = match start_sim(MIXED) {
        Ok(s) => s,
        Err(e) => {
            println!("simulator did not start: {e}");
            return Ok(());
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let devices = find(&sim).await?;
        let mut by: BTreeMap<&'static str, Vec<Tracked>> = BTreeMap::new();
        for d in &devices {
            by.entry(d.label).or_default().push(d.clone());
        }
        println!("found: {}", {
            let v: Vec<String> = by.iter().map(|(k, v)| format!("{} {k}", v.len())).collect();
            v.join(", ")
        });
        println!();
        let (cpu0, t0) = (cpu_ns(), Instant::now());
        let key = crate::net::aes::client_key().await;
        let key_cpu = cpu0.zip(cpu_ns()).map(|(a, b)| b.saturating_sub(a) as f64 / 1e6);
        match key {
            Ok(_) => println!(
                "the process's RSA-1024 key for AES (once, on a blocking thread): {:.1} ms wall, {} ms CPU",
                t0.elapsed().as_secs_f64() * 1e3,
                opt(key_cpu)
            ),
            Err(e) => println!("no RSA key: {e}"),
        }
        println!("session cost, one plug at a time (first poll includes the handshake, not the key):");
        println!("| transport | plugs | first poll ms | first poll CPU µs | kept-session poll ms | kept-session CPU µs |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (label, list) in by.iter().filter(|(k, _)| **k != "legacy") {
            let sample: Vec<Tracked> = list.iter().take(20).cloned().collect();
            let (w1, c1, w2, c2, n) = session_cost(&sample).await;
            println!("| {label} | {n} | {w1:.2} | {c1:.0} | {w2:.2} | {c2:.0} |");
        }
        println!();
        println!("the poller at a 1 s interval, {cycles} cycles measured after {WARM_CYCLES} of warm-up and every plug read once:");
        println!("| plugs | kind | polls | failed | CPU µs/poll | handshakes/min | p50 ms | p99 ms |");
        println!("|---:|---|---:|---:|---:|---:|---:|---:|");
        let mut runs: Vec<(String, Vec<Tracked>)> = by
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        // Legacy first: the others are compared with it.
        runs.sort_by_key(|(k, _)| k != "legacy");
        runs.push(("mixed".into(), devices.clone()));
        let mut legacy_cpu = None;
        for (kind, list) in runs {
            let f = measure(&list, cycles).await?;
            if kind == "legacy" {
                legacy_cpu = f.cpu_us_per_poll;
            }
            let ratio = match (f.cpu_us_per_poll, legacy_cpu) {
                (Some(a), Some(b)) if b > 0.0 && kind != "legacy" && kind != "mixed" => {
                    format!(" ({:.1}× legacy)", a / b)
                }
                _ => String::new(),
            };
            println!(
                "| {} | {kind} | {} | {} | {}{ratio} | {:.1} | {:.2} | {:.2} |",
                f.plugs,
                f.polls,
                f.failed,
                opt(f.cpu_us_per_poll),
                f.handshakes_per_min,
                f.p50.as_secs_f64() * 1e3,
                f.p99.as_secs_f64() * 1e3,
            );
        }
        let rss = rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0));
        println!("RSS after the runs: {} MB", opt(rss));
        println!(
            "targets: a KLAP poll costs at most 2× a legacy poll; 0 handshakes/min at steady state"
        );
        anyhow::Ok(())
    })?;
    drop(sim);
    Ok(())
}
