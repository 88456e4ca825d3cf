//! One meter of the fleet model (a plug's, or one outlet's of a strip): its last reading, the
//! judgement of that reading, the plausibility engine's state (history ring, counts, pending
//! jump) and, when the last read failed, why there is no reading.
//!
//! Every reading is judged here, once, by [`crate::fleet::plausibility::Meter`]; every view (the
//! TUI, `status`, `--record`, `/metrics`) shows this meter's verdict and reasons.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::fleet::plausibility::{self, Assessment};
use crate::fleet::ratings::Limits;
use crate::fleet::reading::{Field, Reading};
pub use crate::fleet::verdict::Verdict;
use crate::protocol::Realtime;

/// Recent plausibility findings kept per meter for the detail pane.
pub const FINDINGS_LEN: usize = 8;
/// How long a flagged reading keeps its meter's row flagged.
pub const STICKY: Duration = Duration::from_secs(60);

/// How bad each value of a reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValueFlags {
    pub power: Verdict,
    pub voltage: Verdict,
    pub current: Verdict,
    pub total: Verdict,
}

impl ValueFlags {
    /// How bad the value of `field` is.
    pub fn get(&self, field: Field) -> Verdict {
        match field {
            Field::Power => self.power,
            Field::Voltage => self.voltage,
            Field::Current => self.current,
            Field::Total => self.total,
        }
    }
}

/// The result of checking one reading, as the views show it.
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

/// One meter over time.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    /// The last reading that was read (kept while later reads fail, but see [`Meter::error`]).
    pub reading: Option<Realtime>,
    pub check: Check,
    /// Created with the device's rating at the first reading.
    pub engine: Option<plausibility::Meter>,
    /// Recent findings, newest last: (when, verdict, reason).
    pub findings: VecDeque<(Instant, Verdict, String)>,
    /// The worst verdict of the readings of the last [`STICKY`], and when it was last seen: a
    /// one-reading glitch keeps the row flagged long enough to be seen.
    pub recent: Verdict,
    pub recent_at: Option<Instant>,
    /// Why the last read of this meter failed (the device answered sysinfo, the meter did
    /// not: a timeout, `device error -9`, …). While set there is no current reading.
    pub error: Option<String>,
    /// The counts when the device's firmware last changed ([`Meter::split_at_update`]): the
    /// readings since are [`Meter::since_update`].
    pub before_update: Option<plausibility::Counts>,
    /// When that change was seen.
    pub updated_at: Option<Instant>,
}

impl Meter {
    /// The device's firmware changed: readings from here on are counted apart, and a flag
    /// raised by the old firmware no longer keeps the row flagged (the row shows whether the
    /// new version still glitches).
    pub fn split_at_update(&mut self, now: Instant) {
        self.before_update = Some(self.counts());
        self.updated_at = Some(now);
        self.recent = Verdict::Ok;
        self.recent_at = None;
    }

    /// Readings per verdict since the last firmware change, if there was one.
    pub fn since_update(&self) -> Option<plausibility::Counts> {
        let b = self.before_update?;
        let now = self.counts();
        Some(plausibility::Counts {
            ok: now.ok.saturating_sub(b.ok),
            suspect: now.suspect.saturating_sub(b.suspect),
            bogus: now.bogus.saturating_sub(b.bogus),
        })
    }

    /// The row is flagged by an earlier reading, not the current one: that verdict and when
    /// it was read.
    pub fn sticky(&self) -> Option<(Verdict, Instant)> {
        // While the last read failed there is no current reading: any flag is an earlier one.
        let current = if self.error.is_some() {
            Verdict::Ok
        } else {
            self.check.verdict
        };
        if self.recent <= current {
            return None;
        }
        Some((self.recent, self.recent_at?))
    }

    /// The newest finding with this verdict (the one that flagged the row).
    pub fn finding(&self, v: Verdict) -> Option<&(Instant, Verdict, String)> {
        self.findings.iter().rev().find(|f| f.1 == v)
    }

    /// Judges and records one reading taken at `now` (`now_ms` on the engine's clock) against
    /// `limits` (the device's rating, a strip's for its outlets).
    pub fn record(&mut self, limits: &Limits, r: Realtime, now: Instant, now_ms: u64) {
        let engine = self
            .engine
            .get_or_insert_with(|| plausibility::Meter::new(limits.clone()));
        let check = Check::from(&engine.assess_realtime(&r, now_ms));
        let expired = self
            .recent_at
            .is_none_or(|at| now.saturating_duration_since(at) >= STICKY);
        if check.verdict != Verdict::Ok {
            self.recent = if expired {
                check.verdict
            } else {
                self.recent.max(check.verdict)
            };
            self.recent_at = Some(now);
        } else if expired {
            self.recent = Verdict::Ok;
            self.recent_at = None;
        }
        for reason in &check.reasons {
            if self.findings.len() == FINDINGS_LEN {
                self.findings.pop_front();
            }
            self.findings
                .push_back((now, check.verdict, reason.clone()));
        }
        self.reading = Some(r);
        self.check = check;
        self.error = None;
    }

    /// The read failed: no current reading, with `why`.
    pub fn failed(&mut self, why: String) {
        self.error = Some(why);
    }

    /// Why there is no current reading, if there is none: the last read failed, or nothing
    /// was read yet (`None` then, see [`Meter::current`]).
    pub fn no_reading(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The current reading and its judgement (none while the last read failed).
    pub fn current(&self) -> Option<(&Realtime, &Assessment)> {
        if self.error.is_some() {
            return None;
        }
        Some((
            self.reading.as_ref()?,
            self.engine.as_ref()?.last_assessment()?,
        ))
    }

    /// The row verdict: the last reading's, or worse if a recent one was worse.
    pub fn verdict(&self) -> Verdict {
        self.check.verdict.max(self.recent)
    }

    /// Readings flagged suspect or bogus since the meter was first read.
    pub fn flagged(&self) -> u64 {
        self.engine.as_ref().map_or(0, |e| e.counts().flagged())
    }

    pub fn readings(&self) -> u64 {
        self.engine.as_ref().map_or(0, |e| e.counts().total())
    }

    /// Readings per verdict so far.
    pub fn counts(&self) -> plausibility::Counts {
        self.engine
            .as_ref()
            .map(plausibility::Meter::counts)
            .unwrap_or_default()
    }

    /// The last `n` power values for a sparkline (`None` where absent or flagged).
    pub fn power_sparkline(&self, n: usize) -> Vec<Option<u64>> {
        self.engine
            .as_ref()
            .map(|e| e.history().power_sparkline(n))
            .unwrap_or_default()
    }

    /// The current reading's values in canonical units.
    pub fn values(&self) -> Option<Reading> {
        self.current().map(|(r, _)| Reading::from(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::ratings::limits_for;
    use serde_json::json;

    fn rt(v: serde_json::Value) -> Realtime {
        Realtime::from_result(&v).expect("reading")
    }

    #[test]
    fn the_engine_verdict_reaches_the_value_that_is_wrong() {
        let mut m = Meter::default();
        let us = limits_for("HS110(US)");
        let t0 = Instant::now();
        m.record(
            &us,
            rt(json!({"power": 60.0, "voltage": 120.0, "current": 0.6, "total": 1.0})),
            t0,
            0,
        );
        assert_eq!(m.check.verdict, Verdict::Ok);
        m.record(
            &us,
            rt(json!({"power": 28000.0, "voltage": 120.0, "current": 0.6, "total": 1.0})),
            t0,
            1000,
        );
        assert_eq!(m.check.verdict, Verdict::Bogus);
        assert_eq!(m.check.flags.power, Verdict::Bogus);
        assert_eq!(m.check.flags.voltage, Verdict::Ok);
        assert_eq!(m.counts().bogus, 1);
        assert!(m.current().is_some());
    }

    #[test]
    fn a_failed_read_is_no_reading_with_its_reason() {
        let mut m = Meter::default();
        let us = limits_for("HS110(US)");
        m.record(&us, rt(json!({"power": 6.0})), Instant::now(), 0);
        m.failed("device error -9 in emeter.get_realtime: busy".into());
        assert!(m.current().is_none() && m.values().is_none());
        assert_eq!(
            m.no_reading(),
            Some("device error -9 in emeter.get_realtime: busy")
        );
    }
}
