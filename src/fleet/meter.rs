//! One meter of the fleet model (a plug's, or one outlet's of a strip): its last reading, the
//! judgement of that reading, the plausibility engine's state (history ring, counts, pending
//! jump) and, when the last read failed, why there is no reading.
//!
//! Every reading is judged here, once, by [`crate::fleet::plausibility::Meter`]; every view (the
//! TUI, `status`, `--record`, `/metrics`) shows this meter's verdict and reasons.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::fleet::plausibility::{self, Assessment, Reason, Rule};
use crate::fleet::quiet::{self, Finding, QuietRules, Sample};
use crate::fleet::ratings::Limits;
use crate::fleet::reading::{Field, Reading};
pub use crate::fleet::verdict::Verdict;
use crate::protocol::Realtime;

/// Recent plausibility findings kept per meter for the detail pane.
pub const FINDINGS_LEN: usize = 8;
/// Most samples kept per meter for the quiet rules: an hour (the counter rule's default
/// `max_window_s`) at a 1 s poll. Older samples than the longest window are dropped first.
pub const SAMPLES_LEN: usize = 3600;
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
    /// The polls the quiet rules judge, oldest first: at most [`SAMPLES_LEN`], none older than
    /// the longest quiet window.
    pub samples: VecDeque<Sample>,
    /// What the quiet rules found after the last poll (suspect, never bogus).
    pub quiet: Vec<Finding>,
}

/// A quiet finding as a reason of an assessment (suspect, on the rule's field).
pub fn quiet_reason(f: &Finding, prefix: &str) -> Reason {
    Reason {
        rule: Rule::Quiet,
        field: Some(f.rule.field()),
        severity: Verdict::Suspect,
        text: format!("{prefix}{}", f.text),
    }
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

    /// Runs the quiet rules after a successful [`Meter::record`] at `now_ms`: keeps the poll as
    /// a sample (relay state `relay_on`), judges the history, and merges what they find into
    /// the check (reasons, the rule's cell, suspect at worst) and the sticky verdict.
    pub fn judge_quiet(
        &mut self,
        relay_on: Option<bool>,
        now: Instant,
        now_ms: u64,
        rules: &QuietRules,
        resistive: bool,
    ) -> &[Finding] {
        self.quiet.clear();
        let Some(mut reading) = self.reading.as_ref().map(Reading::from) else {
            return &self.quiet;
        };
        // A value the reading rules judged bogus (28 kW, milliwatts in the watts field) is no
        // measurement: the quiet rules do not see it, so a glitching power does not also make
        // the energy counter look lagging (found in the demo).
        let f = self.check.flags;
        for (flag, value) in [
            (f.power, &mut reading.power_w),
            (f.voltage, &mut reading.voltage_v),
            (f.current, &mut reading.current_a),
            (f.total, &mut reading.total_kwh),
        ] {
            if flag == Verdict::Bogus {
                *value = None;
            }
        }
        self.samples.push_back(Sample {
            at_ms: now_ms,
            reading,
            relay_on,
        });
        let keep_ms = (rules
            .counter
            .max_window_s
            .max(rules.fleet_voltage.window_s)
            .max(1.0)
            * 1000.0) as u64;
        while self.samples.len() > SAMPLES_LEN
            || self
                .samples
                .front()
                .is_some_and(|s| now_ms.saturating_sub(s.at_ms) > keep_ms)
        {
            self.samples.pop_front();
        }
        let samples = self.samples.make_contiguous();
        self.quiet = quiet::check_meter(samples, now_ms, rules, resistive);
        for f in &self.quiet {
            self.check.reasons.push(f.text.clone());
            let cell = match f.rule.field() {
                Field::Power => &mut self.check.flags.power,
                Field::Voltage => &mut self.check.flags.voltage,
                Field::Current => &mut self.check.flags.current,
                Field::Total => &mut self.check.flags.total,
            };
            *cell = (*cell).max(Verdict::Suspect);
            self.check.verdict = self.check.verdict.max(Verdict::Suspect);
            self.recent = self.recent.max(Verdict::Suspect);
            self.recent_at = Some(now);
            if self.findings.len() == FINDINGS_LEN {
                self.findings.pop_front();
            }
            self.findings
                .push_back((now, Verdict::Suspect, f.text.clone()));
        }
        &self.quiet
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
