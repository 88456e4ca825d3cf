//! `plugfleet bench tui`: frame render time, CPU per poll cycle and resident memory with 250
//! simulated plugs. Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use crate::app::fixture::{big_fleet_plugs, round_events, sighting};
use crate::app::state::{App, Settings};
use crate::app::{Event, update};

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

/// Times `frames` draws of `app` at `w`×`h`; returns (mean, p99, max).
pub fn time_frames(app: &App, w: u16, h: u16, frames: usize) -> anyhow::Result<(Duration, Duration, Duration)> {
    let mut term = Terminal::new(TestBackend::new(w, h))?;
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t = Instant::now();
        term.draw(|f| crate::ui::render(f, app))?;
        times.push(t.elapsed());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / frames.max(1) as u32;
    let p99 = times[(frames * 99 / 100).min(frames - 1)];
    let max = times[frames - 1];
    Ok((mean, p99, max))
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
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
    let meters: usize = app.devices.values().map(|d| d.meters().count()).sum();
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
    for (w, h, what) in [(160u16, 50u16, "table"), (80, 24, "table at 80×24")] {
        let (mean, p99, max) = time_frames(&app, w, h, 300)?;
        println!("render one frame ({what}, {w}×{h}, TestBackend): mean {} · p99 {} · max {}   target ≤ 2 ms", ms(mean), ms(p99), ms(max));
    }
    // The detail pane of a strip, with every strip expanded.
    let strips: Vec<String> = app.devices.values().filter(|d| d.is_strip()).map(|d| d.key.clone()).collect();
    app.view.expanded.extend(strips);
    app.view.detail = true;
    let (mean, p99, max) = time_frames(&app, 160, 50, 300)?;
    println!("render one frame (strips expanded + detail pane, 160×50): mean {} · p99 {} · max {}", ms(mean), ms(p99), ms(max));
    Ok(())
}
