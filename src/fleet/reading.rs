//! The four meter values the plausibility engine and the history work on, in canonical units.

use serde::Serialize;

use crate::protocol::Realtime;

/// One meter reading in W, V, A and kWh (any may be absent: bulbs report power only).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Reading {
    pub power_w: Option<f64>,
    pub voltage_v: Option<f64>,
    pub current_a: Option<f64>,
    pub total_kwh: Option<f64>,
}

impl Reading {
    /// A reading with all four values.
    pub fn new(power_w: f64, voltage_v: f64, current_a: f64, total_kwh: f64) -> Self {
        Self {
            power_w: Some(power_w),
            voltage_v: Some(voltage_v),
            current_a: Some(current_a),
            total_kwh: Some(total_kwh),
        }
    }

    /// The value of one field.
    pub fn get(&self, field: Field) -> Option<f64> {
        match field {
            Field::Power => self.power_w,
            Field::Voltage => self.voltage_v,
            Field::Current => self.current_a,
            Field::Total => self.total_kwh,
        }
    }

    /// Sums outlets the way python-kasa's `StripEmeter` does: power, current and total added,
    /// voltage averaged. A field absent from every outlet stays absent.
    pub fn strip_sum<'a>(outlets: impl IntoIterator<Item = &'a Reading>) -> Reading {
        let mut sum = Reading::default();
        let mut volts = (0.0, 0u32);
        let add = |acc: &mut Option<f64>, v: Option<f64>| {
            if let Some(v) = v {
                *acc = Some(acc.unwrap_or(0.0) + v);
            }
        };
        for r in outlets {
            add(&mut sum.power_w, r.power_w);
            add(&mut sum.current_a, r.current_a);
            add(&mut sum.total_kwh, r.total_kwh);
            if let Some(v) = r.voltage_v {
                volts.0 += v;
                volts.1 += 1;
            }
        }
        if volts.1 > 0 {
            sum.voltage_v = Some(volts.0 / f64::from(volts.1));
        }
        sum
    }
}

impl From<&Realtime> for Reading {
    fn from(r: &Realtime) -> Self {
        Self {
            power_w: r.power_w,
            voltage_v: r.voltage_v,
            current_a: r.current_a,
            total_kwh: r.total_kwh,
        }
    }
}

/// One of the four meter values; what a flag points at so the UI can mark exactly that cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Power,
    Voltage,
    Current,
    Total,
}

impl Field {
    pub const ALL: [Field; 4] = [Field::Power, Field::Voltage, Field::Current, Field::Total];

    /// The unit shown after a value.
    pub fn unit(self) -> &'static str {
        match self {
            Field::Power => "W",
            Field::Voltage => "V",
            Field::Current => "A",
            Field::Total => "kWh",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Field::Power => 1,
            Field::Voltage => 2,
            Field::Current => 4,
            Field::Total => 8,
        }
    }

    /// A value with a precision that suits its size and unit: `28000 W`, `7.68 W`, `118.9 V`,
    /// `0.128 A`, `30.404 kWh` (the one formatter per unit, [`crate::text::fmt`]).
    pub fn fmt(self, v: f64) -> String {
        use crate::text::Unit;
        let unit = match self {
            Field::Power => Unit::Watt,
            Field::Voltage => Unit::Volt,
            Field::Current => Unit::Amp,
            Field::Total => Unit::KilowattHour,
        };
        crate::text::fmt(v, unit)
    }
}

/// A set of flagged fields, one bit each (cheap to store per history sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(u8);

impl Flags {
    pub const NONE: Flags = Flags(0);

    pub fn contains(self, f: Field) -> bool {
        self.0 & f.bit() != 0
    }

    pub fn insert(&mut self, f: Field) {
        self.0 |= f.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> Self {
        Flags(bits & 0x0f)
    }
}

impl Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl FromIterator<Field> for Flags {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        let mut f = Flags::NONE;
        for x in iter {
            f.insert(x);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_size() {
        assert_eq!(Field::Power.fmt(28000.0), "28000 W");
        assert_eq!(Field::Power.fmt(7.677094), "7.68 W");
        assert_eq!(Field::Power.fmt(61.753), "61.8 W");
        assert_eq!(Field::Voltage.fmt(118.917389), "119 V");
        assert_eq!(Field::Current.fmt(0.128037), "0.128 A");
        assert_eq!(Field::Current.fmt(24.0), "24.0 A");
        assert_eq!(Field::Total.fmt(30.404), "30.404 kWh");
    }

    #[test]
    fn flags_round_trip() {
        let f: Flags = [Field::Power, Field::Total].into_iter().collect();
        assert!(f.contains(Field::Power) && !f.contains(Field::Voltage));
        assert_eq!(Flags::from_bits(f.bits()), f);
        assert_eq!(
            serde_json::to_string(&f).expect("json"),
            r#"["power","total"]"#
        );
        assert!(Flags::NONE.is_empty());
    }

    #[test]
    fn strips_sum_power_and_average_voltage() {
        let a = Reading::new(10.0, 120.0, 0.1, 1.0);
        let b = Reading::new(20.0, 122.0, 0.2, 2.0);
        let s = Reading::strip_sum([&a, &b]);
        assert_eq!(s.power_w, Some(30.0));
        assert_eq!(s.voltage_v, Some(121.0));
        assert!((s.current_a.expect("a") - 0.3).abs() < 1e-9);
        assert_eq!(s.total_kwh, Some(3.0));
        assert_eq!(Reading::strip_sum([]), Reading::default());
    }
}
