//! `plugfleet bench tui`: frame render time, CPU per poll cycle and resident memory with 250
//! simulated plugs. Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use crate::app::fixture::{big_fleet_plugs, round_events, sighting};
use crate::app::state::{App, Settings};
use crate::app::{Event, update};
use crate::bench::sim_child::{self, SimChild};
use crate::runtime::pacer::Pacer;

pub const PLUGS: u32 = 250;
/// 10 minutes of history at a 1 s interval.
pub const HISTORY_ROUNDS: u32 = 600;

/// Resident set size of this process in bytes (Linux `/proc/self/status`).
pub fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) used by this process so far (Linux `/proc/self/stat`).
pub fn cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis((utime + stime) * 10))
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Times `frames` draws of `app` at `w`×`h`; returns (median, mean, p99). `cold`: every row
/// formatted afresh each frame (the kept rows forgotten before it), else the rows of the frame
/// before are reused, as between two frames where nothing on them changed.
pub fn time_frames(
    app: &App,
    w: u16,
    h: u16,
    frames: usize,
    cold: bool,
) -> anyhow::Result<(Duration, Duration, Duration)> {
    let mut term = Terminal::new(TestBackend::new(w, h))?;
    let mut times = Vec::with_capacity(frames);
    term.draw(|f| crate::ui::render(f, app))?;
    for _ in 0..frames {
        if cold {
            app.view.cells.clear();
        }
        let t = Instant::now();
        term.draw(|f| crate::ui::render(f, app))?;
        times.push(t.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / frames.max(1) as u32;
    let p99 = times[(frames * 99 / 100).min(frames - 1)];
    let median = times[frames / 2];
    Ok((median, mean, p99))
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// The benchmark's simulated fleet: `PLUGS` plugs on 127.(150+b).0.2….
fn start_sim(count: usize) -> anyhow::Result<SimChild> {
    sim_child::start(count, 150, 100, Duration::from_secs(30))
}

/// Polls `PLUGS` simulated plugs at a 1 s interval for `secs` seconds through the real poller,
/// applying every report with `update` and drawing at most 30 frames a second (as the UI does).
fn poll_cycles(secs: u64) -> anyhow::Result<()> {
    let sim = start_sim(PLUGS as usize)?;
    let plugs = sim.legacy_plugs();
    let targets: Vec<(String, std::net::SocketAddr)> = plugs
        .iter()
        .map(|p| (p.device_id.clone(), p.addr))
        .collect();
    let outlets: usize = plugs.iter().map(|p| p.outlets.len()).sum();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let interval = Duration::from_secs(1);
    let (reports, cpu, wall, frames) = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Event>(1024);
        let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(1024);
        let token = tokio_util::sync::CancellationToken::new();
        let cfg = crate::net::poller::PollConfig {
            interval,
            client: crate::net::ClientConfig::with_timeout(0, Duration::from_secs(2)),
            ..Default::default()
        };
        let poller = tokio::spawn(crate::net::poller::run(cfg, ctl_rx, tx, token.clone()));
        let mut app = App::new(
            Settings {
                interval,
                ..Settings::default()
            },
            std::time::Instant::now(),
        );
        let mut term = Terminal::new(TestBackend::new(160, 50))?;
        // Tracked as discovery would (the app's keys), so every report is applied to a known
        // device: update() does its full work.
        let client = crate::net::ClientConfig::with_timeout(0, Duration::from_secs(2));
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
        // Warm up one cycle, then measure.
        let warm = Instant::now() + Duration::from_secs(2);
        while Instant::now() < warm {
            if let Ok(Some(ev)) = tokio::time::timeout_at(warm.into(), rx.recv()).await {
                update(&mut app, ev, std::time::Instant::now());
            }
        }
        let (cpu0, t0) = (cpu_time(), Instant::now());
        let end = t0 + Duration::from_secs(secs);
        let (mut reports, mut frames) = (0u64, 0u64);
        // Drawn as the UI loop draws: after a visible change, at most 30 frames a second.
        let mut pacer = Pacer::new(Duration::from_secs(1) / crate::runtime::MAX_FPS);
        while Instant::now() < end {
            let wake = pacer.next_frame(tokio::time::Instant::now());
            let ev = tokio::select! {
                ev = rx.recv() => match ev { Some(ev) => Some(ev), None => break },
                _ = tokio::time::sleep_until(wake), if pacer.pending() => None,
                _ = tokio::time::sleep_until(end.into()) => break,
            };
            if let Some(ev) = ev {
                reports += 1;
                pacer.update(&mut app, ev, std::time::Instant::now());
            }
            while let Ok(ev) = rx.try_recv() {
                reports += 1;
                pacer.update(&mut app, ev, std::time::Instant::now());
            }
            pacer.settle(&app, tokio::time::Instant::now());
            let now = tokio::time::Instant::now();
            if pacer.should_draw(now) {
                term.draw(|f| crate::ui::render(f, &app))?;
                frames += 1;
                pacer.drawn_app(now, &app);
            }
        }
        let wall = t0.elapsed();
        let cpu = match (cpu0, cpu_time()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        token.cancel();
        let _ = poller.await;
        Ok::<_, anyhow::Error>((reports, cpu, wall, frames))
    })?;
    let cycles = wall.as_secs_f64() / interval.as_secs_f64();
    println!(
        "polling {} legacy plugs ({outlets} strip outlets read per outlet) at a 1 s interval for {:.0} s: {reports} poll reports ({:.0} per cycle), {frames} frames drawn",
        targets.len(),
        wall.as_secs_f64(),
        reports as f64 / cycles
    );
    match cpu {
        Some(cpu) => println!(
            "CPU per poll cycle (poller + update + drawing, simulator in another process): {:.1} ms = {:.1} % of one core at a 1 s interval   target ≤ 5 %",
            cpu.as_secs_f64() * 1000.0 / cycles,
            cpu.as_secs_f64() * 100.0 / wall.as_secs_f64()
        ),
        None => println!("CPU per poll cycle: not measurable here (no /proc)"),
    }
    Ok(())
}

pub fn run() -> anyhow::Result<()> {
    println!("== tui: {PLUGS} plugs (every tenth a 4-outlet strip)");
    let rss_before = rss_bytes();
    let t0 = Instant::now();
    let plugs = big_fleet_plugs(PLUGS);
    let mut app = App::new(Settings::default(), t0);
    for p in &plugs {
        update(&mut app, sighting(p, "sweep"), t0);
    }
    // Building the events is not what is measured: only applying them.
    let mut fill = Duration::ZERO;
    let mut now = t0;
    for r in 0..HISTORY_ROUNDS {
        now += Duration::from_secs(1);
        let batch: Vec<Event> = round_events(&plugs, r);
        let t = Instant::now();
        for ev in batch {
            update(&mut app, ev, now);
        }
        fill += t.elapsed();
    }
    let rss_after = rss_bytes();
    let meters: usize = app.fleet.devices.values().map(|d| d.meters().count()).sum();
    println!(
        "history: {HISTORY_ROUNDS} readings per meter ({meters} meters) applied through update() in {:.2} s ({:.1} µs per poll report)",
        fill.as_secs_f64(),
        fill.as_secs_f64() * 1e6 / f64::from(PLUGS * HISTORY_ROUNDS)
    );
    match (rss_before, rss_after) {
        (Some(b), Some(a)) => println!(
            "resident memory after 10 min of history: {:.1} MB (process; {:.1} MB before the fleet, +{:.1} MB for it)   target ≤ 30 MB",
            mib(a),
            mib(b),
            mib(a.saturating_sub(b))
        ),
        _ => println!("resident memory: not measurable here (no /proc)"),
    }
    for (w, h, cold, what) in [
        (160u16, 50u16, true, "table, every row formatted"),
        (160, 50, false, "table, rows kept"),
        (80, 24, true, "table at 80×24, every row formatted"),
        (80, 24, false, "table at 80×24, rows kept"),
    ] {
        let (median, mean, p99) = time_frames(&app, w, h, 1000, cold)?;
        println!(
            "render one frame ({what}, {w}×{h}, TestBackend): median {} · mean {} · p99 {}   target ≤ 2 ms",
            ms(median),
            ms(mean),
            ms(p99)
        );
    }
    // The detail pane of a strip, with every strip expanded.
    let strips: Vec<String> = app
        .fleet
        .devices
        .values()
        .filter(|d| d.is_strip())
        .map(|d| d.key.clone())
        .collect();
    app.view.expanded.extend(strips);
    app.view.detail = true;
    let (median, mean, p99) = time_frames(&app, 160, 50, 1000, true)?;
    println!(
        "render one frame (strips expanded + detail pane, 160×50): median {} · mean {} · p99 {}",
        ms(median),
        ms(mean),
        ms(p99)
    );
    drop(app);
    poll_cycles(20)?;
    Ok(())
}
