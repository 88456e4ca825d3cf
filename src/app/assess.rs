//! The TUI's view of plausibility: the engine (`crate::fleet::plausibility`) judges every
//! reading; this module turns its [`Assessment`] into what a table row needs — a verdict, short
//! reasons, and which of W/V/A/kWh to mark.

use crate::fleet::plausibility::Assessment;
pub use crate::fleet::plausibility::Verdict;
use crate::fleet::reading::Field;

/// How bad each value of a reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValueFlags {
    pub power: Verdict,
    pub voltage: Verdict,
    pub current: Verdict,
    pub total: Verdict,
}

/// The result of checking one reading, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Check {
    pub verdict: Verdict,
    /// Every reason, information-only ones (a counter reset) included.
    pub reasons: Vec<String>,
    pub flags: ValueFlags,
    /// The engine waits for a re-read to confirm a jump.
    pub reread: bool,
}

impl From<&Assessment> for Check {
    fn from(a: &Assessment) -> Self {
        let f = |field| {
            if a.is_flagged(field) {
                a.field_verdict(field)
            } else {
                Verdict::Ok
            }
        };
        Check {
            verdict: a.verdict,
            reasons: a.texts(),
            flags: ValueFlags {
                power: f(Field::Power),
                voltage: f(Field::Voltage),
                current: f(Field::Current),
                total: f(Field::Total),
            },
            reread: a.reread,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::plausibility::Meter;
    use crate::fleet::reading::Reading;

    #[test]
    fn the_engine_verdict_reaches_the_value_that_is_wrong() {
        let mut m = Meter::for_model("HS110(US)");
        let ok = Check::from(&m.assess(&Reading::new(60.0, 120.0, 0.6, 1.0), 0));
        assert_eq!(ok.verdict, Verdict::Ok);
        let c = Check::from(&m.assess(&Reading::new(28_000.0, 120.0, 0.6, 1.0), 1000));
        assert_eq!(c.verdict, Verdict::Bogus);
        assert_eq!(c.flags.power, Verdict::Bogus);
        assert_eq!(c.flags.voltage, Verdict::Ok);
        assert!(!c.reasons.is_empty());
    }

    #[test]
    fn the_unit_scale_bug_is_named() {
        let mut m = Meter::for_model("HS110(EU)");
        let c = Check::from(&m.assess(&Reading::new(61_753.0, 230.8, 0.2676, 16.3), 0));
        assert_eq!(c.verdict, Verdict::Bogus);
        assert!(c.reasons.iter().any(|r| r.contains("unit-scale")), "{c:?}");
    }
}
