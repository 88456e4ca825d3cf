//! What a simulated plug measures: deterministic pseudo-random noise, an appliance's consumption as a
//! function of wall-clock time, its integral, and a little calendar arithmetic for day/month
//! statistics. Everything here is pure: time is passed in as Unix seconds (`f64`).
//!
//! Readings are computed lazily when a request asks for them; nothing ticks in the background.
//! Energy runs on the plug's clock, real time by default (a 60 W lamp adds 60 Wh per real hour
//! whatever the time scale), so a plausibility check comparing `total` increments with elapsed
//! time stays meaningful; the time scale only shrinks the simulated *durations* (reboot, flash,
//! download, slow replies, flaky). A fleet's `clock_rate` (a test knob) runs that clock faster,
//! readings and energy alike.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::calendar::Date;

use super::profile::Appliance;

/// The simulator's single time source: Unix time in seconds.
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// splitmix64: a good cheap mixer for seeds.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic value in [0, 1) for (`seed`, `x`).
pub fn unit(seed: u64, x: u64) -> f64 {
    (mix(seed ^ mix(x)) >> 11) as f64 / (1u64 << 53) as f64
}

/// One appliance on one outlet, with its own phase and noise.
#[derive(Debug, Clone)]
pub struct LoadModel {
    pub appliance: Appliance,
    pub seed: u64,
    pub mains_v: f64,
}

impl LoadModel {
    pub fn new(appliance: Appliance, seed: u64, mains_v: f64) -> Self {
        Self {
            appliance,
            seed,
            mains_v,
        }
    }

    /// Watts drawn at time `t` with the relay closed.
    pub fn power_w(&self, t: f64) -> f64 {
        let a = &self.appliance;
        let period = a.period_s.max(1.0);
        let phase = unit(self.seed, 1) * period;
        let active = a.duty >= 1.0 || (t + phase).rem_euclid(period) < a.duty * period;
        let base = if active { a.active_w } else { a.standby_w };
        if base <= 0.0 {
            return 0.0;
        }
        // Daily rhythm (a little more in the evening), a slow wobble, and per-half-second noise.
        let tod = t.rem_euclid(86_400.0);
        let daily = 1.0 + 0.12 * (std::f64::consts::TAU * (tod - 6.0 * 3600.0) / 86_400.0).sin();
        let wobble_period = 37.0 + unit(self.seed, 2) * 40.0;
        let wobble = 1.0 + 0.04 * (std::f64::consts::TAU * t / wobble_period).sin();
        let noise = (unit(self.seed, (t * 2.0) as u64) - 0.5) * 2.0 * a.noise;
        (base * daily * wobble * (1.0 + noise)).max(0.0)
    }

    /// Mains voltage at time `t`: nominal ± a slow drift ± noise.
    pub fn voltage_v(&self, t: f64) -> f64 {
        let drift_period = 300.0 + unit(self.seed, 3) * 300.0;
        let drift = 0.012 * (std::f64::consts::TAU * t / drift_period).sin();
        let noise = (unit(self.seed ^ 0x5555, (t * 2.0) as u64) - 0.5) * 0.006;
        self.mains_v * (1.0 + drift + noise)
    }

    /// Amps for `power_w` watts at `volts`, with the appliance's power factor.
    pub fn current_a(&self, power_w: f64, volts: f64) -> f64 {
        if power_w <= 0.0 || volts <= 0.0 {
            return 0.0;
        }
        power_w / (volts * self.appliance.pf.clamp(0.1, 1.0))
    }

    /// Watt-hours drawn between `t0` and `t1` with the relay closed (midpoint rule, ≤ 1 s steps
    /// up to 600 samples).
    pub fn energy_wh(&self, t0: f64, t1: f64) -> f64 {
        if t1 <= t0 || !t0.is_finite() || !t1.is_finite() {
            return 0.0;
        }
        let span = t1 - t0;
        let n = span.ceil().clamp(1.0, 600.0) as u64;
        let step = span / n as f64;
        (0..n)
            .map(|i| self.power_w(t0 + (i as f64 + 0.5) * step))
            .sum::<f64>()
            * step
            / 3600.0
    }

    /// Average watts over a day (for historical statistics).
    pub fn mean_w(&self) -> f64 {
        let a = &self.appliance;
        let duty = a.duty.clamp(0.0, 1.0);
        a.active_w * duty + a.standby_w * (1.0 - duty)
    }

    /// Kilowatt-hours of a past day (`day` = days since 1970-01-01), deterministic.
    pub fn day_kwh(&self, day: i64) -> f64 {
        self.mean_w() * 24.0 / 1000.0 * (0.6 + 0.8 * unit(self.seed ^ 0xDA7, day as u64))
    }
}

/// Days since 1970-01-01 of a civil date ([`Date::days`]; the simulator's years are `i64`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    Date::new(i32::try_from(y).unwrap_or(i32::MAX), m, d).days()
}

/// Civil date (year, month, day) of a day number ([`Date::from_days`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let d = Date::from_days(z);
    (i64::from(d.year), d.month, d.day)
}

/// Number of days in a month.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    crate::protocol::calendar::days_in_month(i32::try_from(y).unwrap_or(i32::MAX), m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::profile;

    fn model(name: &str) -> LoadModel {
        LoadModel::new(profile::appliance(name), 42, 230.0)
    }

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(
            days_from_civil(2024, 2, 29) + 1,
            days_from_civil(2024, 3, 1)
        );
        for d in [-1000, 0, 19_000, 20_000, 20_500] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2023, 12), 31);
    }

    #[test]
    fn power_stays_near_the_appliance_and_moves() {
        let lamp = model("lamp");
        let t0 = 1_700_000_000.0;
        let samples: Vec<f64> = (0..200)
            .map(|i| lamp.power_w(t0 + i as f64 * 0.7))
            .collect();
        assert!(
            samples.iter().all(|p| (7.0..11.5).contains(p)),
            "{samples:?}"
        );
        let first = samples[0];
        assert!(samples.iter().any(|p| (p - first).abs() > 0.01), "noise");
        let fridge = model("fridge");
        let on = (0..600)
            .filter(|i| fridge.power_w(t0 + *i as f64) > 50.0)
            .count();
        assert!((150..350).contains(&on), "duty cycle ~40 %: {on}");
    }

    #[test]
    fn energy_integrates_power() {
        let lamp = model("lamp");
        let t0 = 1_700_000_000.0;
        let wh = lamp.energy_wh(t0, t0 + 3600.0);
        assert!((7.0..11.5).contains(&wh), "{wh}");
        assert_eq!(lamp.energy_wh(t0, t0), 0.0);
        assert_eq!(lamp.energy_wh(t0 + 1.0, t0), 0.0);
    }

    #[test]
    fn voltage_near_mains() {
        let m = model("kettle");
        for i in 0..100 {
            let v = m.voltage_v(1_700_000_000.0 + f64::from(i) * 13.0);
            assert!((225.0..235.0).contains(&v), "{v}");
        }
    }
}
