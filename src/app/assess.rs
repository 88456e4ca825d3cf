//! The TUI's adapter onto plausibility checking: one [`Check`] per reading, with a verdict,
//! short reasons and which of W/V/A/kWh are flagged.
//!
//! The fleet-wide engine (`crate::fleet::plausibility`) is built on its own branch; until it is
//! merged this module applies the hard rules of PROTOCOL.md §9 itself, behind the one function
//! [`assess`], so swapping in the engine touches nothing else in the app.

use serde::Serialize;

use crate::protocol::Realtime;
use crate::protocol::reply::split_model;

/// How believable a reading is. Ordered: the worst of several is the `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Ok,
    Suspect,
    Bogus,
}

/// Which values of a reading are flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValueFlags {
    pub power: Verdict,
    pub voltage: Verdict,
    pub current: Verdict,
    pub total: Verdict,
}

/// The result of checking one reading.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Check {
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub flags: ValueFlags,
}

impl Check {
    fn flag(&mut self, v: Verdict, slot: fn(&mut ValueFlags) -> &mut Verdict, reason: String) {
        let s = slot(&mut self.flags);
        *s = (*s).max(v);
        self.verdict = self.verdict.max(v);
        self.reasons.push(reason);
    }

    /// A note that does not change the verdict (e.g. a counter reset).
    fn note(&mut self, reason: String) {
        self.reasons.push(reason);
    }
}

/// Rated current and mains band for a model/region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    pub amps: f64,
    pub volts_nominal: f64,
    pub volts_min: f64,
    pub volts_max: f64,
}

impl Rating {
    pub fn watts(&self) -> f64 {
        self.amps * self.volts_nominal
    }
}

/// Ratings by region (PROTOCOL.md §9.1/§9.2); unknown regions get the US band widened to EU.
pub fn rating(model: &str) -> Rating {
    let (_, region) = split_model(model);
    match region.map(str::to_ascii_uppercase).as_deref() {
        Some("US") | Some("CA") => Rating {
            amps: 15.0,
            volts_nominal: 120.0,
            volts_min: 95.0,
            volts_max: 140.0,
        },
        Some("EU") => Rating {
            amps: 16.0,
            volts_nominal: 230.0,
            volts_min: 190.0,
            volts_max: 265.0,
        },
        Some("UK") => Rating {
            amps: 13.0,
            volts_nominal: 230.0,
            volts_min: 190.0,
            volts_max: 265.0,
        },
        Some("AU") => Rating {
            amps: 10.0,
            volts_nominal: 230.0,
            volts_min: 190.0,
            volts_max: 265.0,
        },
        _ => Rating {
            amps: 16.0,
            volts_nominal: 230.0,
            volts_min: 95.0,
            volts_max: 265.0,
        },
    }
}

/// Checks `r` from a plug of `model`, against the previous reading of the same meter.
pub fn assess(model: &str, r: &Realtime, prev: Option<&Realtime>) -> Check {
    let rate = rating(model);
    let mut c = Check::default();
    let (p, v, i, t) = (r.power_w, r.voltage_v, r.current_a, r.total_kwh);
    use Verdict::{Bogus, Suspect};

    for (val, slot, name) in [
        (p, (|f: &mut ValueFlags| &mut f.power) as fn(&mut ValueFlags) -> &mut Verdict, "power"),
        (v, |f| &mut f.voltage, "voltage"),
        (i, |f| &mut f.current, "current"),
        (t, |f| &mut f.total, "total"),
    ] {
        if let Some(x) = val {
            if !x.is_finite() || x < 0.0 {
                c.flag(Bogus, slot, format!("negative or invalid {name}"));
            }
        }
    }

    // The unit-scale bug: milli-units read as base units, so W ≈ V × I × 1000.
    let mut unit_bug = false;
    if let (Some(p), Some(v), Some(i)) = (p, v, i)
        && p > 100.0
        && v > 0.0
        && i > 0.0
    {
        let va_milli = v * i * 1000.0;
        if (p - va_milli).abs() <= va_milli * 0.1 {
            unit_bug = true;
            c.flag(
                Bogus,
                |f| &mut f.power,
                "unit-scale bug: watts equal V×I×1000 (milliwatts shown as watts)".into(),
            );
        }
    }
    if !unit_bug
        && let (Some(p), Some(prev_p)) = (p, prev.and_then(|q| q.power_w))
        && prev_p > 0.05
        && p > 50.0
        && (p / prev_p - 1000.0).abs() <= 200.0
    {
        unit_bug = true;
        c.flag(
            Bogus,
            |f| &mut f.power,
            format!("unit-scale bug: {p:.0} W is ~1000× the {prev_p:.1} W read just before"),
        );
    }

    if let Some(p) = p
        && p > rate.watts() * 1.25
        && !unit_bug
    {
        c.flag(
            Bogus,
            |f| &mut f.power,
            format!("{p:.0} W is above 1.25 × the {:.0} W rating", rate.watts()),
        );
    }
    if let Some(i) = i
        && i > rate.amps * 1.25
    {
        c.flag(
            Bogus,
            |f| &mut f.current,
            format!("{i:.1} A is above 1.25 × the {:.0} A rating", rate.amps),
        );
    }
    if let (Some(p), Some(v), Some(i)) = (p, v, i)
        && !unit_bug
        && p > v * i * 1.1 + 5.0
        && p <= rate.watts() * 1.25
    {
        c.flag(
            Bogus,
            |f| &mut f.power,
            format!("real power {p:.0} W exceeds apparent power V×I = {:.0} VA", v * i),
        );
    }
    if let Some(v) = v {
        if v == 0.0 && i.is_some_and(|i| i > 0.0) {
            c.flag(Bogus, |f| &mut f.voltage, "0 V while current flows".into());
        } else if v > 0.0 && (v < rate.volts_min || v > rate.volts_max) {
            c.flag(
                Suspect,
                |f| &mut f.voltage,
                format!(
                    "{v:.0} V is outside the {:.0}–{:.0} V mains band",
                    rate.volts_min, rate.volts_max
                ),
            );
        }
    }
    if let (Some(p), Some(prev_p)) = (p, prev.and_then(|q| q.power_w))
        && c.flags.power == Verdict::Ok
        && p > 500.0
        && p > prev_p * 5.0
    {
        c.flag(
            Suspect,
            |f| &mut f.power,
            format!("jumped from {prev_p:.0} W to {p:.0} W; unconfirmed"),
        );
    }
    if let (Some(t), Some(prev_t)) = (t, prev.and_then(|q| q.total_kwh))
        && t < prev_t
    {
        c.note(format!(
            "energy counter reset ({prev_t:.3} → {t:.3} kWh), not energy lost"
        ));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::reply::UnitScheme;

    fn rt(p: f64, v: f64, i: f64, t: f64) -> Realtime {
        Realtime {
            power_w: Some(p),
            voltage_v: Some(v),
            current_a: Some(i),
            total_kwh: Some(t),
            slot_id: None,
            scheme: UnitScheme::Base,
            raw: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_normal_reading_is_ok() {
        let c = assess("HS110(EU)", &rt(61.7, 230.8, 0.45, 16.3), None);
        assert_eq!(c.verdict, Verdict::Ok, "{c:?}");
        assert!(c.reasons.is_empty());
    }

    #[test]
    fn twenty_eight_kilowatts_is_bogus_on_power() {
        let c = assess("HS110(US)", &rt(28_000.0, 120.0, 0.5, 1.0), None);
        assert_eq!(c.verdict, Verdict::Bogus);
        assert_eq!(c.flags.power, Verdict::Bogus);
        assert_eq!(c.flags.voltage, Verdict::Ok);
        assert!(c.reasons.iter().any(|r| r.contains("rating")), "{c:?}");
    }

    #[test]
    fn milliwatts_as_watts_is_named_unit_scale() {
        let c = assess("HS110(EU)", &rt(61_753.0, 230.8, 0.2676, 16.3), None);
        assert_eq!(c.verdict, Verdict::Bogus);
        assert!(c.reasons.iter().any(|r| r.contains("unit-scale")), "{c:?}");
        let prev = rt(61.7, 230.8, 0.27, 16.3);
        let c = assess("HS110(EU)", &rt(61_700.0, 230.8, 0.5, 16.3), Some(&prev));
        assert!(c.reasons.iter().any(|r| r.contains("unit-scale")), "{c:?}");
    }

    #[test]
    fn voltage_out_of_band_is_suspect_and_counter_reset_is_a_note() {
        let prev = rt(10.0, 120.0, 0.1, 5.0);
        let c = assess("HS110(US)", &rt(10.0, 170.0, 0.1, 0.0), Some(&prev));
        assert_eq!(c.verdict, Verdict::Suspect);
        assert_eq!(c.flags.voltage, Verdict::Suspect);
        assert!(c.reasons.iter().any(|r| r.contains("reset")));
    }

    #[test]
    fn a_big_jump_is_suspect() {
        let prev = rt(100.0, 230.0, 0.5, 5.0);
        let c = assess("HS110(EU)", &rt(900.0, 230.0, 4.0, 5.0), Some(&prev));
        assert_eq!(c.verdict, Verdict::Suspect, "{c:?}");
    }

    #[test]
    fn negative_values_are_bogus() {
        let c = assess("HS110(EU)", &rt(-3.0, 230.0, 0.1, 1.0), None);
        assert_eq!(c.flags.power, Verdict::Bogus);
    }
}
