#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Each quiet meter fault (issue 15) found by the TUI path: simulated plugs on loopback, each
//! poll read over the wire by the poller's `poll_device` and handed to the real `app::update`
//! as the runtime would (`Event::Polled`, a re-read when the engine asks for one), the screen
//! drawn by `ui::render` on a `TestBackend`: the faulty plug's row is suspect, its detail pane
//! shows the finding with its evidence, and the four healthy plugs beside it raise nothing.
//!
//! Time: the faults that need no long history run on real time, a round of polls every 100 ms.
//! For `counter-lag` (a ≥ 10 min window) the simulated plugs' clock runs [`FAST`] times as fast
//! as real time (`FleetSpec::clock_rate`, readings and energy counter alike) and the app is
//! given `now` advanced by the same factor, so ten minutes of metering take ten seconds. Every
//! loop is bounded by a count of poll rounds; nothing asserts how long anything took.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use plugfleet::app::event::{Command, Event};
use plugfleet::app::state::{App, Settings};
use plugfleet::app::update::update;
use plugfleet::cmd::status;
use plugfleet::fleet::quiet::{Evidence, Finding, QuietRule};
use plugfleet::net::discovery::DiscoveryConfig;
use plugfleet::net::poller::{PollReport, poll_device};
use plugfleet::net::{Client, ClientConfig};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec, SimError};
use plugfleet::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Seconds of the plugs' (and the app's) clock per real second on the fast clock: a round of
/// polls taking a second on a busy machine is a minute apart on it, well inside the counter
/// rule's 300 s `max_gap_s`.
const FAST: f64 = 60.0;
/// Five metered US plugs (float meter); the first has the fault.
const PROFILE: &str = "hs110-us-hw1";
const PLUGS: usize = 5;

/// A loopback block per test: 127.71.<block>.2 and up. The addresses are fixed because the
/// simulator picks each plug's appliance from its address (checked by alias below); the port
/// is picked free.
async fn start_fleet(
    block: u8,
    faults: &[(usize, FaultKind)],
    relay: bool,
    (rate, time_scale): (f64, f64),
) -> Fleet {
    let base = Ipv4Addr::new(127, 71, block, 2);
    let mut last = None;
    for _ in 0..8 {
        let spec = FleetSpec {
            profiles: vec![PROFILE.into()],
            faults: faults
                .iter()
                .map(|&(i, f)| (Ipv4Addr::from(u32::from(base) + i as u32), f))
                .collect(),
            clock_rate: rate,
            time_scale,
            ..FleetSpec::on_free_port(base, PLUGS)
        };
        match sim::start(spec).await {
            Ok(f) => {
                for p in f.plugs() {
                    Client::new(p.addr(), client(&f))
                        .set_relay(relay, None)
                        .await
                        .expect("relay");
                }
                return f;
            }
            Err(e @ SimError::AddrInUse { .. }) => last = Some(e),
            Err(e) => panic!("fleet at {base}: {e}"),
        }
    }
    panic!("no free port for the fleet at {base}: {last:?}");
}

fn client(fleet: &Fleet) -> ClientConfig {
    ClientConfig::with_timeout(fleet.port(), Duration::from_secs(3))
}

fn settings() -> Settings {
    Settings {
        interval: Duration::from_secs(1),
        color: false,
        label: Some("TEST".into()),
        status_ttl: Duration::from_secs(3600),
        ..Settings::default()
    }
}

/// The app, fed as the runtime feeds it, on a clock running `rate` times real time.
struct Rig {
    fleet: Fleet,
    app: App,
    real0: Instant,
    rate: f64,
    /// Real time between two rounds.
    pause: Duration,
    /// Device key of each plug, in address order.
    keys: Vec<(String, SocketAddr)>,
    rounds: usize,
}

impl Rig {
    /// Plugs of `block` with `faults` (by index), every relay set to `relay`, on real time.
    async fn start(block: u8, faults: &[(usize, FaultKind)], relay: bool) -> Rig {
        Self::with(block, faults, relay, (1.0, 1.0), Duration::from_millis(100)).await
    }

    /// [`Rig::start`] on the [`FAST`] clock, the simulator's durations (outages…) scaled by
    /// `time_scale`.
    async fn fast(block: u8, faults: &[(usize, FaultKind)], relay: bool, time_scale: f64) -> Rig {
        let clock = (FAST, time_scale);
        Self::with(block, faults, relay, clock, Duration::from_millis(20)).await
    }

    async fn with(
        block: u8,
        faults: &[(usize, FaultKind)],
        relay: bool,
        clock: (f64, f64),
        pause: Duration,
    ) -> Rig {
        let fleet = start_fleet(block, faults, relay, clock).await;
        let real0 = Instant::now();
        let mut rig = Rig {
            app: App::new(settings(), real0),
            fleet,
            real0,
            rate: clock.0,
            pause,
            keys: Vec::new(),
            rounds: 0,
        };
        rig.discover().await;
        rig
    }

    /// The app's clock: real time since the start, times the plugs' clock rate.
    fn now(&self) -> Instant {
        self.real0 + self.real0.elapsed().mul_f64(self.rate)
    }

    /// Seconds on the app's clock since the start.
    fn model_s(&self) -> f64 {
        self.now().duration_since(self.real0).as_secs_f64()
    }

    /// One discovery pass (by unicast to each plug); the app tracks every plug it finds.
    async fn discover(&mut self) {
        let cfg = DiscoveryConfig {
            hosts: self.fleet.plugs().iter().map(|p| p.ip).collect(),
            port: self.fleet.port(),
            tdp_port: self.fleet.tdp_port(),
            timeout: Duration::from_secs(1),
            ..DiscoveryConfig::default()
        };
        assert!(cfg.hosts.iter().all(Ipv4Addr::is_loopback));
        let (sightings, _) = status::find(cfg).await.expect("discovery");
        let mut keys = BTreeMap::new();
        for s in sightings {
            let now = self.now();
            for c in update(&mut self.app, Event::DeviceDiscovered(s), now) {
                if let Command::Track { key, addr } = c {
                    keys.insert(addr, key);
                }
            }
        }
        self.keys = keys.into_iter().map(|(a, k)| (k, a)).collect();
        assert_eq!(self.keys.len(), PLUGS, "every plug found");
    }

    /// Polls one plug and hands the report to the app; returns the keys it asks to re-read.
    async fn poll(&mut self, key: &str, addr: SocketAddr) -> Vec<String> {
        let t = tokio::time::Instant::now();
        let outcome = poll_device(addr, &client(&self.fleet)).await;
        let report = PollReport {
            key: key.to_owned(),
            addr,
            misses: u32::from(outcome.is_err()),
            outcome,
            elapsed: t.elapsed(),
        };
        let now = self.now();
        update(&mut self.app, Event::Polled(Box::new(report)), now)
            .into_iter()
            .flat_map(|c| match c {
                Command::PollNow(keys) => keys,
                _ => Vec::new(),
            })
            .collect()
    }

    /// One round: every plug polled once, and once more when the app asks for a re-read (a
    /// confirming read of a jump), as the runtime does.
    async fn round(&mut self) {
        for (key, addr) in self.keys.clone() {
            for again in self.poll(&key, addr).await {
                if again == key {
                    self.poll(&key, addr).await;
                }
            }
        }
        self.rounds += 1;
        tokio::time::sleep(self.pause).await;
    }

    /// Rounds until the faulty plug has a finding of `rule` (at most `max_rounds`); returns it.
    async fn until_found(&mut self, rule: QuietRule, max_rounds: usize) -> Finding {
        loop {
            self.round().await;
            if let Some(f) = findings(&self.app, &self.keys[0].0)
                .into_iter()
                .find(|f| f.rule == rule)
            {
                return f;
            }
            assert!(
                self.rounds < max_rounds,
                "no {rule:?} finding after {} rounds ({:.0} s on the plugs' clock); the screen:\n{}",
                self.rounds,
                self.model_s(),
                self.screen()
            );
        }
    }

    fn key(&mut self, code: KeyCode) {
        let now = self.now();
        update(
            &mut self.app,
            Event::Key(KeyEvent::new(code, KeyModifiers::NONE)),
            now,
        );
    }

    /// The screen as `ui::render` draws it on a 160 × 60 terminal.
    fn screen(&self) -> String {
        let mut t = Terminal::new(TestBackend::new(160, 60)).unwrap();
        t.draw(|f| ui::render(f, &self.app)).unwrap();
        let buf = t.backend().buffer();
        let mut out = String::new();
        for y in 0..buf.area.height {
            let line: String = (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect();
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// The table row of plug `i`.
    fn row(&self, screen: &str, i: usize) -> String {
        let ip = format!("{} ", self.fleet.plugs()[i].ip);
        screen
            .lines()
            .find(|l| l.contains(&ip) && !l.contains('│'))
            .unwrap_or_else(|| panic!("a row for {ip}:\n{screen}"))
            .to_owned()
    }

    /// The faulty plug (the first row, by address) is suspect with `f`'s text in its detail
    /// pane; the healthy plugs raise no quiet finding and their rows are ok.
    fn assert_shown(&mut self, f: &Finding) {
        let table = self.screen();
        let row = self.row(&table, 0);
        assert!(
            row.split_whitespace().any(|w| w == "suspect"),
            "the faulty plug's row is suspect: {row}\n{table}"
        );
        for i in 1..PLUGS {
            let row = self.row(&table, i);
            assert!(
                row.split_whitespace().any(|w| w == "ok"),
                "healthy plug {i}: {row}\n{table}"
            );
            let found = findings(&self.app, &self.keys[i].0);
            assert!(found.is_empty(), "healthy plug {i}: {found:?}");
        }
        // `g` selects the first row, Enter opens its detail pane.
        self.key(KeyCode::Char('g'));
        self.key(KeyCode::Enter);
        let s = self.screen();
        if std::env::var_os("QUIET_TUI_SHOW").is_some() {
            println!("{s}");
        }
        let pane: Vec<&str> = s.lines().filter(|l| l.contains('│')).collect();
        let pane = pane.join("\n");
        assert!(
            pane.contains(&self.fleet.plugs()[0].alias),
            "the pane is the faulty plug's: {s}"
        );
        assert!(
            pane.contains(&format!("• {}", f.text)),
            "the finding `{}` in the detail pane:\n{s}",
            f.text
        );
        assert!(pane.contains("SUSPECT"), "{s}");
        self.key(KeyCode::Esc);
    }
}

/// Every quiet finding the app's model holds for device `key` (its meter's and the fleet
/// voltage rule's).
fn findings(app: &App, key: &str) -> Vec<Finding> {
    let d = app.fleet.get(key).expect("device");
    let mut v: Vec<Finding> = d.meters().flat_map(|m| m.quiet.clone()).collect();
    v.extend(d.voltage_finding.clone());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_finds_a_stuck_meter_in_its_window() {
    let mut rig = Rig::start(3, &[(0, FaultKind::StuckMeter)], true).await;
    // An aquarium idles at 12 W (± its daily rhythm and wobble): above the rule's 5 W load
    // floor at every moment, so the stuck values are judged whenever the relay closed.
    assert!(rig.fleet.plugs()[0].alias.ends_with("aquarium"));
    let min_w = rig.app.fleet.rules.frozen.min_w;
    let polls = rig.app.fleet.rules.frozen.polls;
    let f = rig.until_found(QuietRule::FrozenMeter, 3 * polls).await;
    // Stuck from the first reading: found on the poll that completes the rule's run.
    assert_eq!(rig.rounds, polls, "{f:?}");
    let Evidence::Frozen {
        polls: n, power_w, ..
    } = f.evidence
    else {
        panic!("{f:?}")
    };
    assert_eq!(n, polls);
    assert!(power_w >= min_w, "{f:?}");
    assert!(
        f.text.starts_with(&format!("frozen for {polls} polls at")),
        "{}",
        f.text
    );
    rig.assert_shown(&f);
    rig.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_finds_a_phantom_load_in_its_window() {
    let mut rig = Rig::start(23, &[(0, FaultKind::PhantomLoad)], false).await;
    let polls = rig.app.fleet.rules.phantom.polls;
    let f = rig.until_found(QuietRule::PhantomLoad, 3 * polls).await;
    assert_eq!(rig.rounds, polls, "{f:?}");
    let Evidence::Phantom { power_w, .. } = f.evidence else {
        panic!("{f:?}")
    };
    let p = power_w.expect("watts");
    assert!((3.0..5.0).contains(&p), "the fault's ~4 W: {f:?}");
    assert!(
        f.text.contains("flowing while the relay is off"),
        "{}",
        f.text
    );
    rig.assert_shown(&f);
    rig.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_finds_a_drifted_voltage_against_the_fleet() {
    let mut rig = Rig::start(27, &[(0, "voltage-drift:-8".parse().expect("fault"))], true).await;
    let window_s = rig.app.fleet.rules.fleet_voltage.window_s;
    let f = rig.until_found(QuietRule::FleetVoltage, 100).await;
    // No history needed: found as soon as the others' voltages are in, within the rule's
    // window on the app's clock.
    assert!(rig.model_s() <= window_s, "{:.0} s: {f:?}", rig.model_s());
    let Evidence::FleetVoltage {
        median_v,
        others,
        diff_pct,
        ..
    } = f.evidence
    else {
        panic!("{f:?}")
    };
    assert_eq!(others, PLUGS - 1);
    assert!((115.0..125.0).contains(&median_v), "US mains: {f:?}");
    // 8 % low, give or take the ±1.2 % each side's mains wander in the simulator (as
    // quiet_headless allows); still past the rule's 4 % margin.
    assert!((-11.0..-4.5).contains(&diff_pct), "8 % low: {f:?}");
    assert!(f.text.contains("vs fleet median"), "{}", f.text);
    rig.assert_shown(&f);
    rig.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_finds_a_lagging_counter_on_a_fast_clock() {
    let mut rig = Rig::fast(21, &[(0, FaultKind::CounterLag)], true, 1.0).await;
    // A heater: about 700 W on average, ≥ 0.05 kWh in well under the window.
    assert!(rig.fleet.plugs()[0].alias.ends_with("heater"));
    let c = rig.app.fleet.rules.counter.clone();
    // Bounded by polls, not time: a round is at least 5 polls, the window an hour at most.
    let f = rig.until_found(QuietRule::CounterVsPower, 20_000).await;
    // Found within the rule's window on the app's (and the plugs') clock.
    assert!(
        rig.model_s() <= c.max_window_s,
        "{:.0} s: {f:?}",
        rig.model_s()
    );
    let Evidence::Counter {
        ratio,
        span_s,
        drawn_kwh,
        ..
    } = f.evidence
    else {
        panic!("{f:?}")
    };
    assert!(span_s >= c.min_window_s, "{f:?}");
    assert!(drawn_kwh >= c.min_expected_kwh, "{f:?}");
    // The counter shows 30 % of the energy drawn (about: the polls' ∫P dt of a cycling heater
    // is an estimate).
    let lag = sim::fault::COUNTER_LAG_FRACTION;
    assert!((ratio - lag).abs() < 0.1, "{ratio} vs {lag}: {f:?}");
    assert!(f.text.starts_with("total rose"), "{}", f.text);
    rig.assert_shown(&f);
    rig.fleet.shutdown().await;
}

/// The healthy plugs of the fast clock (a cycling 1.4 kW heater among them) raise nothing over
/// three times the counter rule's shortest window: power and `total` agree on the plugs'
/// clock, and the app's clock follows it. (The pure harness of `tests/quiet_rules.rs` runs 250
/// plugs for an hour.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_fleet_on_the_fast_clock_raises_nothing_for_half_an_hour() {
    let mut rig = Rig::fast(21, &[], true, 1.0).await;
    let until = 3.0 * rig.app.fleet.rules.counter.min_window_s;
    let mut judged = 0;
    while rig.model_s() < until {
        rig.round().await;
        for (key, _) in &rig.keys {
            let found = findings(&rig.app, key);
            assert!(found.is_empty(), "{key}: {found:?}");
        }
        judged += 1;
        assert!(judged < 100_000, "bounded");
    }
    rig.fleet.shutdown().await;
}

/// Found in the demo: a plug whose readings glitch to 28 kW (or carry milliwatts in the watts
/// field) had its energy counter blamed too — the bogus powers went into ∫P dt and the counter
/// "rose 0.05 kWh while 1.9 kWh were drawn". A power judged bogus is no measurement: the quiet
/// rules leave it out, and the loud finding (bogus) is the only one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_powers_do_not_make_the_counter_look_lagging() {
    let faults = [(0, FaultKind::Glitch28kw), (1, FaultKind::UnitScale)];
    let mut rig = Rig::fast(21, &faults, true, 1.0).await;
    // Past the counter rule's window, so it judges whatever it was given.
    let until = 1.5 * rig.app.fleet.rules.counter.min_window_s;
    let mut rounds = 0;
    while rig.model_s() < until {
        rig.round().await;
        for (key, _) in &rig.keys {
            let found = findings(&rig.app, key);
            assert!(found.is_empty(), "{key}: {found:?}");
        }
        rounds += 1;
        assert!(rounds < 100_000, "bounded");
    }
    // The faults did show, loudly.
    let table = rig.screen();
    for i in 0..2 {
        let d = rig.app.fleet.get(&rig.keys[i].0).expect("device");
        let m = d.meter.as_ref().expect("meter");
        assert!(m.flagged() > 0, "plug {i} was flagged bogus:\n{table}");
    }
    rig.fleet.shutdown().await;
}

/// A plug unreachable now and then (`flaky`: its Wi-Fi drops, the outlet stays on) keeps
/// metering meanwhile, as a real one does: across the polls that failed, `total` still rose by
/// the energy drawn, so the counter agrees with ∫P dt. (The simulator used to stop the energy
/// during such outages: at the demo's time scale the outages are short enough to be integrated
/// across, and the counter looked 20 % short.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_plug_keeps_counting_while_it_is_unreachable() {
    let scale = plugfleet::app::firmware::DEMO_TIME_SCALE;
    let mut rig = Rig::fast(49, &[(0, FaultKind::Flaky)], true, scale).await;
    // A TV: on for 14 min, standby for 6, so the polls' ∫P dt is close to the energy drawn
    // however the load on this machine spaces them, and the outages (48–96 s on the plugs'
    // clock at the demo's time scale, shorter than the rule's `max_gap_s`) are integrated
    // across.
    assert!(rig.fleet.plugs()[0].alias.ends_with("TV"));
    let until = 4.0 * rig.app.fleet.rules.counter.min_window_s;
    let mut rounds = 0;
    while rig.model_s() < until {
        rig.round().await;
        for (key, _) in &rig.keys {
            let found = findings(&rig.app, key);
            assert!(found.is_empty(), "{key}: {found:?}");
        }
        rounds += 1;
        assert!(rounds < 100_000, "bounded");
    }
    assert!(rig.fleet.plugs()[0].outages() > 0, "the plug did go away");
    // The counter's rise against the polls' ∫P dt (the trapezoid, as the rule integrates)
    // over every interval the rule would use: about 1 — it was ~0.85 when the outages lost
    // their energy.
    let d = rig.app.fleet.get(&rig.keys[0].0).expect("device");
    let m = d.meter.as_ref().expect("meter");
    let max_gap_ms = rig.app.fleet.rules.counter.max_gap_s * 1000.0;
    let (mut rise, mut drawn) = (0.0, 0.0);
    let samples: Vec<_> = m.samples.iter().collect();
    for w in samples.windows(2) {
        let (a, b) = (&w[0].reading, &w[1].reading);
        let dt = (w[1].at_ms - w[0].at_ms) as f64;
        if let (Some(pa), Some(pb), Some(ta), Some(tb)) =
            (a.power_w, b.power_w, a.total_kwh, b.total_kwh)
            && tb >= ta
            && dt <= max_gap_ms
        {
            rise += tb - ta;
            drawn += (pa + pb) / 2.0 * dt / 3_600_000.0 / 1000.0;
        }
    }
    assert!(drawn > 0.02, "enough energy to compare: {drawn} kWh");
    let ratio = rise / drawn;
    assert!(
        (0.94..1.06).contains(&ratio),
        "{rise} kWh counted vs {drawn} kWh drawn"
    );
    rig.fleet.shutdown().await;
}

#[tokio::test]
async fn a_clock_rate_out_of_range_is_refused() {
    for rate in [0.0, -1.0, f64::NAN, 10_001.0] {
        let spec = FleetSpec {
            clock_rate: rate,
            ..FleetSpec::on_free_port(Ipv4Addr::new(127, 71, 99, 2), 1)
        };
        let e = sim::start(spec).await.expect_err("refused");
        assert!(matches!(e, SimError::Invalid(_)), "{rate}: {e}");
        assert!(e.to_string().contains("clock rate"), "{e}");
    }
}
