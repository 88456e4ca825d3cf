//! The `emeter` module of a simulated plug: live readings (with the reading faults applied) and
//! the day and month history.

use serde_json::{Value, json};

use super::fault::{self, FaultKind};
use super::load;
use super::outlets::Ctx;
use super::plug::{PlugShared, PlugState};
use super::profile::MeterScheme;
use super::reply::{err, ok, round, with_ok};

impl PlugShared {
    fn outlet_index(&self, ctx: &Ctx) -> Result<usize, Value> {
        match ctx {
            Ctx::Bad => Err(err(-14, "entry not exist")),
            Ctx::Children(ix) => Ok(ix.first().copied().unwrap_or(0)),
            // A strip's parent-level reading looks like one outlet's (PROTOCOL.md §5.4).
            Ctx::None => Ok(0),
        }
    }

    pub(crate) fn emeter(&self, method: &str, args: &Value, ctx: &Ctx, now: f64) -> Value {
        let i = match self.outlet_index(ctx) {
            Ok(i) => i,
            Err(e) => return e,
        };
        match method {
            "get_realtime" => self.realtime(i, now),
            "get_daystat" => {
                let (Some(y), Some(m)) = (
                    args.get("year").and_then(Value::as_i64),
                    args.get("month").and_then(Value::as_u64),
                ) else {
                    return err(-3, "invalid argument");
                };
                if !(1..=12).contains(&m) || !(1970..=9999).contains(&y) {
                    return err(-3, "invalid argument");
                }
                self.daystat(i, y, m as u32, now)
            }
            "get_monthstat" => {
                let Some(y) = args.get("year").and_then(Value::as_i64) else {
                    return err(-3, "invalid argument");
                };
                if !(1970..=9999).contains(&y) {
                    return err(-3, "invalid argument");
                }
                self.monthstat(i, y, now)
            }
            "erase_emeter_stat" => {
                let mut st = self.lock();
                let today = (now / 86_400.0).floor() as i64;
                st.stats_floor = today;
                st.glitch_day = None;
                st.start_day = today;
                st.start_frac = 0.0;
                for o in &mut st.outlets {
                    o.advance(now);
                    o.total_wh = 0.0;
                    o.day_wh = 0.0;
                }
                ok()
            }
            "get_vgain_igain" => json!({"vgain": 13462, "igain": 16835, "err_code": 0}),
            _ => err(-2, "member not support"),
        }
    }

    /// One reading of outlet `i`, with the reading faults applied.
    fn realtime(&self, i: usize, now: f64) -> Value {
        let p = self.id.profile;
        let mut st = self.lock();
        let st_brightness = st.brightness;
        st.readings += 1;
        let n = st.readings;
        let Some(o) = st.outlets.get_mut(i) else {
            return err(-14, "entry not exist");
        };
        o.advance(now);
        o.readings += 1;
        // `outlet-glitch-28kw:N`: outlet N's first reading and every third after.
        let outlet_glitch = o.readings % 3 == 1
            && self.id.faults.iter().any(
                |f| matches!(f, FaultKind::OutletGlitch28kw { outlet } if usize::from(*outlet) == i + 1),
            );
        // `stuck-meter`: the meter shows what it read when the relay last closed.
        let at = if self.id.has(FaultKind::StuckMeter) && o.relay_on {
            o.on_since.min(now)
        } else {
            now
        };
        let true_volts = o.load.voltage_v(at);
        let mut watts = if o.relay_on {
            o.load.power_w(at) * super::light::dim_factor(p, st_brightness)
        } else {
            0.0
        };
        if !o.relay_on && self.id.has(FaultKind::PhantomLoad) {
            watts = fault::PHANTOM_W * (0.9 + 0.2 * load::unit(self.id.seed ^ 0xF0, n));
        }
        let amps = o.load.current_a(watts, true_volts);
        // `voltage-drift`: only the voltage sensor is off.
        let volts = true_volts
            * self
                .id
                .faults
                .iter()
                .find_map(FaultKind::voltage_factor)
                .unwrap_or(1.0);
        let mut total_wh = o.total_wh;
        if self.id.has(FaultKind::CounterLag) {
            total_wh *= fault::COUNTER_LAG_FRACTION;
        }
        drop(st);
        if self.id.has(FaultKind::Bogus28kw)
            || (self.id.has(FaultKind::Glitch28kw) && n % 3 == 0)
            || outlet_glitch
        {
            watts = 28_000.0 + load::unit(self.id.seed, n) * 400.0;
        }
        let unit_scale = self.id.has(FaultKind::UnitScale);
        let mut r = match p.meter {
            MeterScheme::Float => json!({
                "voltage": round(volts, 6), "current": round(amps, 6),
                "power": round(watts, 6), "total": round(total_wh / 1000.0, 3),
            }),
            // A bulb reports power (and energy) only, in mW and Wh.
            MeterScheme::Bulb => json!({
                "power_mw": (watts * 1000.0).round() as i64,
                "total_wh": total_wh.floor() as i64,
            }),
            _ => json!({
                "voltage_mv": (volts * 1000.0).round() as i64,
                "current_ma": (amps * 1000.0).round() as i64,
                "power_mw": (watts * 1000.0).round() as i64,
                "total_wh": total_wh.floor() as i64,
            }),
        };
        if let Some(obj) = r.as_object_mut() {
            if unit_scale {
                // The firmware bug: milliwatts in the watts field.
                obj.remove("power_mw");
                obj.insert("power".into(), json!(round(watts * 1000.0, 3)));
            }
            if p.slot_id {
                obj.insert("slot_id".into(), json!(i));
            }
        }
        with_ok(r)
    }

    /// Energy of outlet `i` on day number `day`, or None when the plug has no data for it.
    fn day_energy_kwh(&self, st: &mut PlugState, i: usize, day: i64, now: f64) -> Option<f64> {
        let today = (now / 86_400.0).floor() as i64;
        if day < st.stats_floor || day > today {
            return None;
        }
        let start_day = st.start_day;
        let start_frac = st.start_frac;
        // `history-glitch`: one bogus day on the first outlet.
        let glitch = if i == 0 && st.glitch_day == Some(day) {
            fault::HISTORY_GLITCH_KWH
        } else {
            0.0
        };
        let o = st.outlets.get_mut(i)?;
        if day < today {
            return Some(o.load.day_kwh(day) + glitch);
        }
        o.advance(now);
        let before = if start_day == today {
            o.load.day_kwh(day) * start_frac
        } else {
            0.0
        };
        Some(before + o.day_wh / 1000.0 + glitch)
    }

    fn energy_entry(&self, y: i64, m: u32, d: Option<u32>, kwh: f64) -> Value {
        let mut e = json!({"year": y, "month": m});
        if let Some(obj) = e.as_object_mut() {
            if let Some(d) = d {
                obj.insert("day".into(), json!(d));
            }
            match self.id.profile.meter {
                MeterScheme::Float => obj.insert("energy".into(), json!(round(kwh, 3))),
                _ => obj.insert("energy_wh".into(), json!((kwh * 1000.0).round() as i64)),
            };
        }
        e
    }

    fn daystat(&self, i: usize, y: i64, m: u32, now: f64) -> Value {
        let mut st = self.lock();
        let first = load::days_from_civil(y, m, 1);
        let mut list = Vec::new();
        for d in 1..=load::days_in_month(y, m) {
            if let Some(kwh) = self.day_energy_kwh(&mut st, i, first + i64::from(d) - 1, now) {
                list.push(self.energy_entry(y, m, Some(d), kwh));
            }
        }
        json!({"day_list": list, "err_code": 0})
    }

    fn monthstat(&self, i: usize, y: i64, now: f64) -> Value {
        let mut st = self.lock();
        let mut list = Vec::new();
        for m in 1..=12u32 {
            let first = load::days_from_civil(y, m, 1);
            let mut sum = None;
            for d in 0..i64::from(load::days_in_month(y, m)) {
                if let Some(kwh) = self.day_energy_kwh(&mut st, i, first + d, now) {
                    *sum.get_or_insert(0.0) += kwh;
                }
            }
            if let Some(kwh) = sum {
                list.push(self.energy_entry(y, m, None, kwh));
            }
        }
        json!({"month_list": list, "err_code": 0})
    }
}
