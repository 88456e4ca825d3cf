#![allow(clippy::unwrap_used, clippy::expect_used)]

//! No false alarms: a healthy fleet of simulated loads (the simulator's own [`LoadModel`]),
//! polled the way the poller does for a long simulated time, with the relay switched now and then
//! and the readings rounded like the plugs' two unit schemes, never trips a quiet rule
//! (`fleet::quiet`, issue 15). And the same harness with a quiet fault does trip its rule, so the
//! property is not vacuous.

use plugfleet::fleet::quiet::{self, QuietRule, QuietRules, Sample, VoltagePoint};
use plugfleet::fleet::reading::Reading;
use plugfleet::sim::load::{LoadModel, unit};
use plugfleet::sim::profile;
use proptest::prelude::*;

const APPLIANCES: [&str; 21] = [
    "fridge",
    "freezer",
    "kettle",
    "washing-machine",
    "dehumidifier",
    "tv",
    "space-heater",
    "aquarium",
    "dishwasher",
    "computer",
    "coffee-machine",
    "microwave",
    "lamp",
    "fan",
    "router",
    "christmas-lights",
    "humidifier",
    "monitor",
    "printer",
    "speakers",
    "charger",
];

/// A quiet fault injected into one simulated meter (none for the healthy property).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    CounterLag,
    Stuck,
    Drift,
    Phantom,
}

/// One simulated plug: its load, relay, true energy counter and polled history.
struct Plug {
    load: LoadModel,
    milli: bool,
    relay_on: bool,
    total_wh: f64,
    last_t: f64,
    history: Vec<Sample>,
    fault: Fault,
    stuck: Option<(f64, f64, f64)>,
}

impl Plug {
    /// Advances the counter to `t` (energy flows only with the relay closed).
    fn advance(&mut self, t: f64) {
        if self.relay_on && t > self.last_t {
            let e = self.load.energy_wh(self.last_t, t);
            self.total_wh += if self.fault == Fault::CounterLag {
                0.3 * e
            } else {
                e
            };
        }
        self.last_t = self.last_t.max(t);
    }

    /// Reads the meter at `t`, rounded like the plug's unit scheme.
    fn poll(&mut self, t: f64, at_ms: u64) -> Sample {
        self.advance(t);
        let mut v = self.load.voltage_v(t);
        let mut p = if self.relay_on {
            self.load.power_w(t)
        } else {
            0.0
        };
        if self.fault == Fault::Phantom && !self.relay_on {
            p = 4.0;
        }
        let mut a = self.load.current_a(p, v);
        if self.fault == Fault::Drift {
            v *= 0.9;
        }
        if self.fault == Fault::Stuck && self.relay_on {
            let s = *self.stuck.get_or_insert((p, v, a));
            (p, v, a) = s;
        }
        let reading = if self.milli {
            Reading::new(
                (p * 1000.0).round() / 1000.0,
                (v * 1000.0).round() / 1000.0,
                (a * 1000.0).round() / 1000.0,
                self.total_wh.floor() / 1000.0,
            )
        } else {
            let r6 = |x: f64| (x * 1e6).round() / 1e6;
            Reading::new(
                r6(p),
                r6(v),
                r6(a),
                (self.total_wh / 1000.0 * 1000.0).round() / 1000.0,
            )
        };
        Sample {
            at_ms,
            reading,
            relay_on: Some(self.relay_on),
        }
    }
}

/// Runs `plugs` (appliance index, milli scheme, mains) for `polls` rounds of `interval_s`
/// seconds from `t0`, switching a relay now and then, and returns every finding of every rule
/// as (plug, rule). The first plug gets `fault`.
fn run(
    plugs: &[(usize, bool, bool)],
    seed: u64,
    t0: f64,
    interval_s: f64,
    polls: u32,
    fault: Fault,
    judge_every: u32,
) -> Vec<(usize, QuietRule, String)> {
    let rules = QuietRules::default();
    let mut fleet: Vec<Plug> = plugs
        .iter()
        .enumerate()
        .map(|(i, (app, milli, eu))| Plug {
            load: LoadModel::new(
                profile::appliance(APPLIANCES[*app % APPLIANCES.len()]),
                seed ^ (i as u64 + 1).wrapping_mul(0x9E37),
                if *eu { 230.0 } else { 120.0 },
            ),
            milli: *milli,
            relay_on: true,
            total_wh: 1000.0 * unit(seed, i as u64),
            last_t: t0,
            history: Vec::new(),
            fault: if i == 0 { fault } else { Fault::None },
            stuck: None,
        })
        .collect();
    let regions: Vec<&str> = plugs
        .iter()
        .map(|(_, _, eu)| if *eu { "EU" } else { "US" })
        .collect();
    let mut found = Vec::new();
    for k in 0..polls {
        let t = t0 + f64::from(k) * interval_s;
        let now_ms = (f64::from(k) * interval_s * 1000.0) as u64;
        let mut points = Vec::with_capacity(fleet.len());
        for (i, plug) in fleet.iter_mut().enumerate() {
            // Now and then someone switches the relay, somewhere between two polls.
            if unit(seed ^ 0x7E1A, u64::from(k) * 1000 + i as u64) < 0.004 {
                let at = t - interval_s * unit(seed ^ 0xAB, u64::from(k));
                plug.advance(at);
                plug.relay_on = !plug.relay_on;
            }
            let s = plug.poll(t, now_ms);
            plug.history.push(s);
            // Judged every few polls (each judgement looks at the whole window anyway).
            if k % judge_every == 0 || k + 1 == polls {
                let resistive = plug.load.appliance.pf >= 0.99;
                for f in quiet::check_meter(&plug.history, now_ms, &rules, resistive) {
                    found.push((i, f.rule, f.text));
                }
            }
            if let Some(v) = s.reading.voltage_v {
                points.push((
                    i,
                    VoltagePoint {
                        region: Some(regions[i]),
                        at_ms: now_ms,
                        voltage_v: v,
                    },
                ));
            }
        }
        if k % judge_every == 0 || k + 1 == polls {
            let pts: Vec<VoltagePoint<'_>> = points.iter().map(|(_, p)| p.clone()).collect();
            for (j, f) in quiet::fleet_voltages(&pts, now_ms, &rules) {
                found.push((points[j].0, f.rule, f.text));
            }
        }
    }
    found
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// An hour (or more) of a healthy fleet: not one finding.
    #[test]
    fn a_healthy_fleet_raises_no_quiet_finding(
        plugs in proptest::collection::vec((0..APPLIANCES.len(), any::<bool>(), prop_oneof![3 => Just(true), 1 => Just(false)]), 5..12),
        seed in any::<u64>(),
        day in 0u32..365,
        interval_s in 1.0f64..10.0,
    ) {
        let t0 = 1_700_000_000.0 + f64::from(day) * 86_400.0 + f64::from(day) * 137.0;
        let polls = (4000.0 / interval_s) as u32;
        let found = run(&plugs, seed, t0, interval_s, polls, Fault::None, 5);
        prop_assert!(found.is_empty(), "{:?}", &found[..found.len().min(5)]);
    }
}

/// The bar: 250 healthy plugs (every appliance, both unit schemes, mostly EU with a US
/// group) polled every 2 s for an hour of simulated time raise zero quiet findings.
#[test]
fn a_healthy_fleet_of_250_plugs_over_an_hour_raises_nothing() {
    let plugs: Vec<(usize, bool, bool)> =
        (0..250).map(|i| (i * 7, i % 2 == 0, i % 5 != 0)).collect();
    let found = run(&plugs, 2026, 1_764_547_200.0, 2.0, 1800, Fault::None, 30);
    assert!(found.is_empty(), "{:?}", &found[..found.len().min(5)]);
}

/// The harness is not blind: each quiet fault on the first plug (a kettle-sized load among
/// healthy EU plugs) is found by its rule.
#[test]
fn the_harness_finds_each_quiet_fault() {
    // The faulty plug first, among lamps, fans, tvs and computers, all EU.
    let others = [
        (12, true, true),
        (13, false, true),
        (5, true, true),
        (9, false, true),
    ];
    for (first, fault, rule) in [
        // A space heater (1400 W half the time): energy enough for the counter rule.
        (6, Fault::CounterLag, QuietRule::CounterVsPower),
        // A fan (35 W, always on): a load that must jitter.
        (13, Fault::Stuck, QuietRule::FrozenMeter),
        (13, Fault::Drift, QuietRule::FleetVoltage),
    ] {
        let mut plugs = vec![(first, false, true)];
        plugs.extend(others);
        let found = run(&plugs, 7, 1_700_000_000.0, 2.0, 1800, fault, 5);
        assert!(
            found.iter().any(|(i, r, _)| *i == 0 && *r == rule),
            "{fault:?}: {found:?}"
        );
        assert!(
            found.iter().all(|(i, _, _)| *i == 0),
            "only the faulty plug: {found:?}"
        );
    }
    // Phantom load needs the relay off: the lamp (always on) with the relay switched off.
    let rules = QuietRules::default();
    let mut p = Plug {
        load: LoadModel::new(profile::appliance("lamp"), 3, 120.0),
        milli: false,
        relay_on: false,
        total_wh: 0.0,
        last_t: 0.0,
        history: Vec::new(),
        fault: Fault::Phantom,
        stuck: None,
    };
    for k in 0..3u32 {
        let s = p.poll(f64::from(k) * 2.0, u64::from(k) * 2000);
        p.history.push(s);
    }
    let f = quiet::check_meter(&p.history, 4000, &rules, false);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].rule, QuietRule::PhantomLoad);
}
