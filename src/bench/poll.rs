//! `plugfleet bench poll`: the poller's cost per plug-poll against a simulated fleet in a child
//! process (`plugfleet sim`, so its CPU is not counted as ours), 50 / 250 / 2,500 plugs at a 1 s
//! interval, fresh connection per poll vs kept connections, side by side. Prints figures;
//! asserts nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bench::cpu::cpu_ns;
use crate::bench::floor;
use crate::bench::sim_child::{self, LegacyPlug, SimChild};
use crate::bench::tui::rss_bytes;
use crate::net::ClientConfig;
use crate::net::poller::{self, Control, PollConfig, PollReport, Target};
use crate::net::pool::PoolStats;

/// Fleet sizes measured.
pub const SIZES: [usize; 3] = [50, 250, 2500];
/// Cycles measured per run (default), after warm-up cycles.
pub const CYCLES: u64 = 15;
const WARM_CYCLES: u64 = 2;

/// A simulated fleet in a child process, with what the poller is given of it.
struct SimProcess {
    /// Kept for its drop: the simulator stops with the run.
    _sim: SimChild,
    targets: Vec<(String, SocketAddr)>,
    outlets: usize,
    /// The same devices as the floor client reads them.
    floor: Vec<LegacyPlug>,
}

/// Which simulated fleet a run polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fleet {
    /// Plugs with and without a meter and a 6-outlet HS300 strip one device in six: a strip
    /// is read with 7 requests (sysinfo, then each outlet), so ≈ 2 requests per device.
    Mixed,
    /// Metered plugs only: one combined request per device per cycle, what the issue's
    /// minimal C client (15 µs per kept poll) did.
    Plugs,
}

impl Fleet {
    fn profiles(self) -> &'static [&'static str] {
        match self {
            Fleet::Mixed => sim_child::LEGACY,
            Fleet::Plugs => &[
                "hs110-eu-hw4",
                "hs110-us-hw1",
                "kp115-us-hw1",
                "hs110-eu-hw1",
            ],
        }
    }
}

/// `plugfleet sim --count N` on 127.(160+b).0.2…, legacy profiles only (`fleet`'s); up to
/// 2,500 plugs span ten /24 blocks.
fn start_sim(count: usize, fleet: Fleet) -> anyhow::Result<SimProcess> {
    let sim = sim_child::start_with(count, 160, 90, Duration::from_secs(60), fleet.profiles())?;
    let plugs = sim.legacy_plugs();
    let targets = plugs
        .iter()
        .map(|p| (p.device_id.clone(), p.addr))
        .collect();
    let outlets = plugs.iter().map(|p| p.outlets.len()).sum();
    Ok(SimProcess {
        _sim: sim,
        targets,
        outlets,
        floor: plugs,
    })
}

/// The figures of one run.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub plugs: usize,
    pub polls: u64,
    pub failed: u64,
    pub cpu_us_per_poll: Option<f64>,
    pub core_percent: Option<f64>,
    pub polls_per_s: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub open: usize,
    pub connects: u64,
    pub reconnects: u64,
    pub rss_mb: Option<f64>,
}

/// Polls `targets` at a 1 s interval through the real poller for `cycles` cycles after
/// `WARM_CYCLES` of warm-up; counts only what happens in the measured window.
fn measure(targets: &[(String, SocketAddr)], keep: bool, cycles: u64) -> anyhow::Result<Figures> {
    // The consumer: one thread that counts what the poller's thread hands over.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let interval = Duration::from_secs(1);
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<PollReport>(4096);
        let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(4096);
        let token = tokio_util::sync::CancellationToken::new();
        let stats = Arc::new(PoolStats::default());
        let cfg = PollConfig {
            interval,
            client: ClientConfig::with_timeout(0, Duration::from_secs(2)),
            keep_connections: keep,
            ..PollConfig::default()
        };
        // As the app runs it: on a thread of its own.
        let poller = poller::spawn_thread(
            cfg,
            ctl_rx,
            tx,
            token.clone(),
            stats.clone(),
            crate::net::newer::Sessions::new(),
        )?;
        for (key, addr) in targets {
            ctl_tx
                .send(Control::Track(Target {
                    key: key.clone(),
                    addr: *addr,
                }))
                .await?;
        }
        let warm = tokio::time::Instant::now() + interval * WARM_CYCLES as u32;
        while tokio::time::timeout_at(warm, rx.recv()).await.is_ok() {}
        let (cpu0, t0) = (cpu_ns(), Instant::now());
        let (connects0, reconnects0) = (stats.connects(), stats.reconnects());
        let end = tokio::time::Instant::now() + interval * cycles as u32;
        let mut lat = Vec::with_capacity(targets.len() * cycles as usize);
        let mut failed = 0;
        while let Ok(Some(r)) = tokio::time::timeout_at(end, rx.recv()).await {
            if r.outcome.is_err() {
                failed += 1;
            }
            lat.push(r.elapsed);
        }
        let wall = t0.elapsed();
        let cpu = cpu0.zip(cpu_ns()).map(|(a, b)| b.saturating_sub(a));
        let open = stats.open();
        let rss_mb = rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0));
        token.cancel();
        poller.join().await;
        Ok(figures(
            targets.len(),
            lat,
            failed,
            cpu,
            wall,
            open,
            &stats,
            (connects0, reconnects0),
            rss_mb,
        ))
    })
}

/// Polls `targets` as the TUI does with kept connections: discovery's sightings first (one
/// poll of each plug, turned into the sighting a sweep makes, so the app tracks them under its
/// own keys), then every report and a 1 s tick applied through the real `update()`, and frames
/// of the home screen (160×50, `TestBackend`) drawn by the UI loop's own [`Pacer`]: after a
/// visible change, at most `MAX_FPS` a second. Returns the figures and the frames drawn.
fn measure_tui(
    targets: &[(String, SocketAddr)],
    cycles: u64,
) -> anyhow::Result<(Figures, u64, (u64, u64))> {
    use crate::app::state::Settings;
    use crate::app::{App, Event};
    use crate::runtime::MAX_FPS;
    use crate::runtime::pacer::Pacer;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let interval = Duration::from_secs(1);
    rt.block_on(async {
        let client = ClientConfig::with_timeout(0, Duration::from_secs(2));
        let mut app = App::new(
            Settings {
                interval,
                ..Settings::default()
            },
            Instant::now(),
        );
        let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 50))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Event>(crate::runtime::EVENT_QUEUE);
        let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(4096);
        let token = tokio_util::sync::CancellationToken::new();
        let stats = Arc::new(PoolStats::default());
        let cfg = PollConfig {
            interval,
            client,
            ..PollConfig::default()
        };
        // As the app runs it: on a thread of its own.
        let poller = poller::spawn_thread(
            cfg,
            ctl_rx,
            tx,
            token.clone(),
            stats.clone(),
            crate::net::newer::Sessions::new(),
        )?;
        let tracked = sim_child::track_as_discovered(
            &mut app,
            targets.iter().map(|(_, addr)| *addr),
            &client,
            &ctl_tx,
        )
        .await?;
        anyhow::ensure!(
            tracked == targets.len(),
            "only {tracked} of {} plugs were tracked",
            targets.len()
        );
        let mut pacer = Pacer::new(Duration::from_secs(1) / MAX_FPS);
        let mut tick = tokio::time::interval(interval);
        let mut frames = 0u64;
        let mut lat = Vec::with_capacity(targets.len() * cycles as usize);
        let mut failed = 0u64;
        let warm = tokio::time::Instant::now() + interval * WARM_CYCLES as u32;
        let end = warm + interval * cycles as u32;
        // CPU, wall clock, frames, connection counters and rows formatted / reused when the
        // measured window opened.
        type Window = (Option<u64>, Instant, u64, (u64, u64), (u64, u64));
        let mut window: Option<Window> = None;
        loop {
            let now = tokio::time::Instant::now();
            if now >= end {
                break;
            }
            if window.is_none() && now >= warm {
                window = Some((
                    cpu_ns(),
                    Instant::now(),
                    frames,
                    (stats.connects(), stats.reconnects()),
                    app.view.cells.counts(),
                ));
                lat.clear();
                failed = 0;
            }
            let ev = tokio::select! {
                ev = rx.recv() => match ev { Some(ev) => Some(ev), None => break },
                _ = tick.tick() => Some(Event::Tick),
                _ = tokio::time::sleep_until(pacer.next_frame(now)), if pacer.pending() => None,
                _ = tokio::time::sleep_until(warm), if window.is_none() => None,
                _ = tokio::time::sleep_until(end) => break,
            };
            let mut batch: Vec<Event> = ev.into_iter().collect();
            while !batch.is_empty() && batch.len() < 512 {
                match rx.try_recv() {
                    Ok(ev) => batch.push(ev),
                    Err(_) => break,
                }
            }
            for ev in batch {
                if let Event::Polled(r) = &ev {
                    failed += u64::from(r.outcome.is_err());
                    lat.push(r.elapsed);
                }
                pacer.update(&mut app, ev, Instant::now());
            }
            pacer.settle(&app, tokio::time::Instant::now());
            let now = tokio::time::Instant::now();
            if pacer.should_draw(now) {
                term.draw(|f| crate::ui::render(f, &app))?;
                frames += 1;
                pacer.drawn_app(now, &app);
            }
        }
        let (cpu0, t0, frames0, conns0, rows0) =
            window.unwrap_or((None, Instant::now(), frames, (0, 0), (0, 0)));
        let rows1 = app.view.cells.counts();
        let rows = (rows1.0 - rows0.0, rows1.1 - rows0.1);
        let wall = t0.elapsed();
        let cpu = cpu0.zip(cpu_ns()).map(|(a, b)| b.saturating_sub(a));
        let open = stats.open();
        let rss_mb = rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0));
        token.cancel();
        poller.join().await;
        let tracked = app.fleet.len();
        drop(app);
        anyhow::ensure!(
            tracked >= targets.len(),
            "only {tracked} plugs were tracked"
        );
        Ok((
            figures(
                targets.len(),
                lat,
                failed,
                cpu,
                wall,
                open,
                &stats,
                conns0,
                rss_mb,
            ),
            frames - frames0,
            rows,
        ))
    })
}

/// The figures of a measured window.
#[allow(clippy::too_many_arguments)]
fn figures(
    plugs: usize,
    mut lat: Vec<Duration>,
    failed: u64,
    cpu: Option<u64>,
    wall: Duration,
    open: usize,
    stats: &PoolStats,
    (connects0, reconnects0): (u64, u64),
    rss_mb: Option<f64>,
) -> Figures {
    lat.sort();
    let polls = lat.len() as u64;
    let pct = |p: usize| {
        lat.get((lat.len() * p / 100).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        plugs,
        polls,
        failed,
        cpu_us_per_poll: cpu.map(|c| c as f64 / 1000.0 / polls.max(1) as f64),
        core_percent: cpu.map(|c| c as f64 / 1e9 * 100.0 / wall.as_secs_f64()),
        polls_per_s: polls as f64 / wall.as_secs_f64(),
        p50: pct(50),
        p99: pct(99),
        open,
        connects: stats.connects() - connects0,
        reconnects: stats.reconnects() - reconnects0,
        rss_mb,
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.prec$}"))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// One size of one fleet, as measured.
struct Measured {
    fleet: Fleet,
    plugs: usize,
    floor: floor::FloorFigures,
    kept: Figures,
}

pub fn run(sizes: &[usize], cycles: u64) -> anyhow::Result<()> {
    println!(
        "== poll: the poller at a 1 s interval, {cycles} cycles measured after {WARM_CYCLES} of warm-up; simulator in a child process"
    );
    println!(
        "| plugs | connections | polls | failed | CPU µs/poll | % of a core | polls/s | p50 ms | p99 ms | open sockets | connects | reconnects | RSS MB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut tui = None;
    let mut runs = Vec::new();
    for fleet in [Fleet::Mixed, Fleet::Plugs] {
        for &n in sizes {
            let label = match fleet {
                Fleet::Mixed => None,
                Fleet::Plugs => Some("plugs only"),
            };
            let sim = match start_sim(n, fleet) {
                Ok(s) => s,
                Err(e) => {
                    println!("| {n} | — | simulator did not start: {e} |");
                    continue;
                }
            };
            let fl = floor::measure(&sim.floor, Duration::from_secs(1), WARM_CYCLES, cycles);
            print_floor_row(&fl, n, sim.outlets, label);
            // The fresh-connection case once, on the mixed fleet: what keeping them saves.
            if fleet == Fleet::Mixed {
                let f = measure(&sim.targets, false, cycles)?;
                print_row(&f, sim.outlets, "fresh", label);
            }
            let kept = measure(&sim.targets, true, cycles)?;
            print_row(&kept, sim.outlets, "kept", label);
            if fleet == Fleet::Mixed && n == TUI_PLUGS {
                let (f, frames, (formatted, reused)) = measure_tui(&sim.targets, cycles)?;
                print_row(
                    &f,
                    sim.outlets,
                    &format!(
                        "kept + TUI ({frames} frames, {:.1} per cycle)",
                        frames as f64 / cycles as f64
                    ),
                    label,
                );
                tui = Some((f, formatted, reused));
            }
            runs.push(Measured {
                fleet,
                plugs: n,
                floor: fl,
                kept,
            });
        }
    }
    for m in &runs {
        let requests = m.floor.requests as f64 / m.floor.polls.max(1) as f64;
        println!(
            "{} plugs{}: {requests:.2} requests per plug-poll; floor {} µs per plug-poll ({} µs per request); kept connections cost {} the floor",
            m.plugs,
            if m.fleet == Fleet::Plugs {
                ", plugs only"
            } else {
                ""
            },
            opt(m.floor.us_per_poll(), 1),
            opt(m.floor.us_per_request(), 1),
            ratio(m.kept.cpu_us_per_poll, m.floor.us_per_poll()),
        );
    }
    if let Some((_, formatted, reused)) = &tui {
        println!(
            "TUI case: {formatted} table rows formatted, {reused} reused from the frame before"
        );
    }
    for line in verdicts(&runs, tui.as_ref().map(|(f, _, _)| f)) {
        println!("{line}");
    }
    Ok(())
}

/// `n` with a comma every three digits, as the issue writes fleet sizes (2,500).
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `a / b` as "1.23×".
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    a.zip(b)
        .filter(|(_, b)| *b > 0.0)
        .map_or_else(|| "n/a ×".into(), |(a, b)| format!("{:.2}×", a / b))
}

/// A target's line: the figure, and met or by how much it was missed.
fn verdict(what: &str, value: Option<f64>, unit: &str, target: f64) -> String {
    match value {
        Some(v) if v <= target => format!("  {what}: {v:.2}{unit} ≤ {target}{unit} — met"),
        Some(v) => format!(
            "  {what}: {v:.2}{unit} > {target}{unit} — missed by {:.2}{unit} ({:.0} %)",
            v - target,
            (v / target - 1.0) * 100.0
        ),
        None => format!("  {what}: not measured"),
    }
}

/// The targets against what this run measured. The absolute per-poll targets are
/// judged on the plugs-only fleet (one request per plug, as the floor client); the
/// mixed fleet, at ≈ 2 requests per device, against its own floor (the goal: within 2×).
fn verdicts(runs: &[Measured], tui: Option<&Figures>) -> Vec<String> {
    let find = |fleet: Fleet, n: usize| runs.iter().find(|m| m.fleet == fleet && m.plugs == n);
    let mut out = vec!["targets (issue 12):".to_owned()];
    if let Some(m) = find(Fleet::Plugs, 250) {
        out.push(verdict(
            "CPU per plug-poll, 250 plugs only, kept",
            m.kept.cpu_us_per_poll,
            " µs",
            25.0,
        ));
    }
    if let Some(m) = find(Fleet::Plugs, 2500) {
        out.push(verdict(
            "2,500 plugs only at 1 Hz, share of one core",
            m.kept.core_percent,
            " %",
            10.0,
        ));
    }
    if let Some(m) = find(Fleet::Mixed, 2500) {
        out.push(verdict(
            "2,500 mixed devices at 1 Hz, share of one core",
            m.kept.core_percent,
            " %",
            10.0,
        ));
    }
    let rss = runs
        .iter()
        .filter(|m| m.plugs == 2500)
        .filter_map(|m| m.kept.rss_mb)
        .reduce(f64::max);
    if runs.iter().any(|m| m.plugs == 2500) {
        out.push(verdict(
            "resident memory with 2,500 kept connections",
            rss,
            " MB",
            60.0,
        ));
    }
    for m in runs {
        let x = m
            .kept
            .cpu_us_per_poll
            .zip(m.floor.us_per_poll())
            .filter(|(_, f)| *f > 0.0)
            .map(|(k, f)| k / f);
        out.push(verdict(
            &format!(
                "kept vs the floor, {} {}",
                grouped(m.plugs),
                match m.fleet {
                    Fleet::Mixed => "mixed devices",
                    Fleet::Plugs => "plugs only",
                }
            ),
            x,
            "×",
            2.0,
        ));
    }
    if let Some(f) = tui {
        out.push(verdict(
            "the TUI at 250 mixed devices, drawing included, share of one core",
            f.core_percent,
            " %",
            2.0,
        ));
    }
    out
}

/// The fleet size at which the TUI case (update + drawing) is measured too.
pub const TUI_PLUGS: usize = 250;

/// The floor client's row: only the figures it has (it keeps no latency or pool counters).
fn print_floor_row(f: &floor::FloorFigures, plugs: usize, outlets: usize, label: Option<&str>) {
    let wall = f.wall.as_secs_f64().max(f64::EPSILON);
    println!(
        "| {} | floor: minimal client, kept | {} | {} | {} | {} | {:.0} | — | — | {plugs} | — | — | — |",
        fleet_cell(plugs, outlets, label),
        f.polls,
        f.failed,
        opt(f.us_per_poll(), 1),
        opt(f.cpu_ns.map(|c| c as f64 / 1e9 * 100.0 / wall), 2),
        f.polls as f64 / wall,
    );
}

/// The first cell of a row: how many devices, and what they are.
fn fleet_cell(plugs: usize, outlets: usize, label: Option<&str>) -> String {
    match label {
        Some(l) => format!("{plugs} ({l})"),
        None => format!("{plugs} ({outlets} outlets)"),
    }
}

fn print_row(f: &Figures, outlets: usize, what: &str, label: Option<&str>) {
    println!(
        "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
        fleet_cell(f.plugs, outlets, label),
        what,
        f.polls,
        f.failed,
        opt(f.cpu_us_per_poll, 1),
        opt(f.core_percent, 2),
        f.polls_per_s,
        ms(f.p50),
        ms(f.p99),
        f.open,
        f.connects,
        f.reconnects,
        opt(f.rss_mb, 1),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_says_met_or_by_how_much_it_missed() {
        assert_eq!(
            verdict("x", Some(20.0), " µs", 25.0),
            "  x: 20.00 µs ≤ 25 µs — met"
        );
        assert_eq!(
            verdict("x", Some(30.0), " µs", 25.0),
            "  x: 30.00 µs > 25 µs — missed by 5.00 µs (20 %)"
        );
        assert_eq!(verdict("x", None, " %", 10.0), "  x: not measured");
        assert_eq!(grouped(250), "250");
        assert_eq!(grouped(2500), "2,500");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn the_absolute_targets_are_judged_on_the_plugs_only_fleet() {
        let figures = |us: f64, pct: f64| Figures {
            cpu_us_per_poll: Some(us),
            core_percent: Some(pct),
            rss_mb: Some(40.0),
            ..Figures::default()
        };
        let floor = floor::FloorFigures {
            polls: 100,
            requests: 100,
            cpu_ns: Some(1_500_000),
            ..Default::default()
        };
        let runs = [
            Measured {
                fleet: Fleet::Mixed,
                plugs: 250,
                floor,
                kept: figures(40.0, 1.0),
            },
            Measured {
                fleet: Fleet::Plugs,
                plugs: 250,
                floor,
                kept: figures(22.0, 0.55),
            },
        ];
        let lines = verdicts(&runs, None);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("250 plugs only, kept: 22.00 µs ≤ 25 µs — met")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("floor, 250 mixed devices: 2.67× > 2× — missed")),
            "{lines:#?}"
        );
        assert!(!lines.iter().any(|l| l.contains("2,500")), "not measured");
    }
}
