//! The plausibility engine (pure): every meter reading gets a [`Verdict`], short human
//! [`Reason`]s and the set of flagged fields, so that a 28 kW HS110 or a plug reporting
//! milliwatts in its watts field is impossible to miss (PROTOCOL.md §9, issue 4).
//!
//! Two layers:
//! - [`check`]: the stateless rules on one reading against the model's [`Limits`] (rating,
//!   negative values, real power above apparent power, mains band, 0 V with current, the
//!   unit-scale bug seen as P ≈ V × I × 1000);
//! - [`Meter`]: one plug or outlet over time, with its [`History`]: jumps (suspect until a
//!   re-read confirms them), the unit-scale bug seen as a 1000× jump, counter resets, totals that
//!   rise faster than the rating allows, and counts of readings per verdict.
//!
//! Strips: each outlet has its own [`Meter`] checked against the strip's rating, and
//! [`strip_total`] checks the sum of the outlets against it.
//!
//! Time is passed in as milliseconds on the caller's monotonic clock; nothing here reads a clock.
//!
//! ```
//! use plugfleet::fleet::plausibility::{Meter, Verdict};
//! use plugfleet::fleet::reading::{Field, Reading};
//!
//! let mut meter = Meter::for_model("HS110(US)");
//! let a = meter.assess(&Reading::new(7.7, 118.9, 0.128, 30.4), 0);
//! assert_eq!(a.verdict, Verdict::Ok);
//! let a = meter.assess(&Reading::new(28_000.0, 118.9, 0.128, 30.4), 2_000);
//! assert_eq!(a.verdict, Verdict::Bogus);
//! assert_eq!(a.reasons[0].text, "28000 W is above 1.25 × 1800 W rated (HS110 US)");
//! // Mark exactly the bad cell, with a glyph that survives a monochrome terminal.
//! assert!(a.is_flagged(Field::Power) && !a.is_flagged(Field::Voltage));
//! assert_eq!(a.field_verdict(Field::Power).glyph(), "‼");
//! assert_eq!(meter.counts().bogus, 1);
//! // Sparkline data without the glitch.
//! assert_eq!(meter.history().power_sparkline(10), vec![Some(8), None]);
//! ```

use std::collections::VecDeque;
use std::fmt;

use serde::Serialize;

use crate::fleet::history::History;
use crate::fleet::ratings::Limits;
use crate::fleet::reading::{Field, Flags, Reading};
pub use crate::fleet::verdict::{Counts, Verdict};
use crate::protocol::Realtime;

/// Values above this multiple of the rating are impossible (PROTOCOL.md §9.2).
pub const OVER_RATING: f64 = 1.25;
/// Real power may exceed V × I by this factor plus [`APPARENT_SLACK_W`] (meter tolerance).
pub const APPARENT_FACTOR: f64 = 1.1;
pub const APPARENT_SLACK_W: f64 = 5.0;
/// A rise to more than this multiple of the recent power …
pub const JUMP_FACTOR: f64 = 5.0;
/// … and above this many watts is suspect until a re-read confirms it.
pub const JUMP_MIN_W: f64 = 500.0;
/// A re-read confirms a jump when it comes within this time of the suspect reading …
pub const CONFIRM_WINDOW_MS: u64 = 30_000;
/// … and is within this factor of it (either way).
pub const CONFIRM_TOLERANCE: f64 = 2.0;
/// A reading older than this is not "recent" (no jump or 1000× comparison against it).
pub const BASELINE_MAX_AGE_MS: u64 = 120_000;
/// "About 1000×": the ratio window that names the unit-scale bug.
pub const UNIT_RATIO: (f64, f64) = (700.0, 1400.0);
/// "P ≈ V × I × 1000": the power factor that P / 1000 would give the load must lie in this
/// window. Narrow on purpose: a 28 kW glitch on a load of ~28–56 VA looks the same, and is
/// named by its rating instead when the load's power factor is known to differ.
pub const UNIT_PF: (f64, f64) = (0.4, 1.02);
/// The lower bound when the reply mixed both unit schemes' field names (`power` next to
/// `voltage_mv`): a strong sign of a unit mix-up in itself.
pub const UNIT_PF_MIXED_MIN: f64 = 0.1;
/// With a known power factor of this meter's load (from a recent believable reading), P / 1000
/// must give a power factor within this ratio of it instead.
pub const UNIT_PF_HINT_RATIO: (f64, f64) = (0.7, 1.4);
/// Below this, a baseline power is noise, not evidence.
pub const UNIT_MIN_W: f64 = 0.5;
/// Below this, V × I is too coarse to say that P is 1000 × too big.
pub const UNIT_MIN_VA: f64 = 0.1;
/// Voltage below this counts as 0 V.
pub const ZERO_V: f64 = 1.0;
/// Current or power above these count as "flowing" for the 0 V rule.
pub const FLOWING_A: f64 = 0.02;
pub const FLOWING_W: f64 = 2.0;
/// A total may drop by this much (kWh) before it counts as a counter reset (rounding).
pub const RESET_TOLERANCE_KWH: f64 = 0.002;
/// Slack on the "total rises faster than the rating allows" rule (counter granularity).
pub const TOTAL_SLACK_KWH: f64 = 0.01;
/// How many flagged assessments a meter keeps for the detail pane.
pub const RECENT_REASONS: usize = 32;

/// Which rule produced a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    NotFinite,
    Negative,
    AboveRatedPower,
    AboveRatedCurrent,
    PowerAboveApparent,
    VoltageOutOfBand,
    ZeroVoltage,
    UnitScale,
    Jump,
    JumpConfirmed,
    CounterReset,
    TotalTooFast,
    EnergyAboveRating,
    StripAboveRatedPower,
    StripAboveRatedCurrent,
    /// A strip's summary of one flagged outlet.
    Outlet,
    /// The device sent a value of the wrong type (`"power":"28000"`, `null`, `true`).
    Unreadable,
    /// A quiet rule over the meter's history or the fleet (issue 15, [`crate::fleet::quiet`]);
    /// the text says which.
    Quiet,
    /// A month of the device's energy history whose days do not add up to its month figure
    /// (issue 16, [`crate::fleet::energy`]).
    DaysNotMonth,
    /// A day of the energy history far above the month's median day ("glitch day?").
    GlitchDay,
}

impl Rule {
    /// The kebab-case name (`above-rated-power`), as it serialises.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One finding: a short human sentence, the rule, the field it points at and how bad it is
/// (`Ok` = information only, e.g. a counter reset). Serialises as its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub rule: Rule,
    pub field: Option<Field>,
    pub severity: Verdict,
    pub text: String,
}

impl Reason {
    fn new(rule: Rule, field: Option<Field>, severity: Verdict, text: String) -> Self {
        Self {
            rule,
            field,
            severity,
            text,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// The verdict on one reading.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Assessment {
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    /// The fields a suspect or bogus reason points at (the cells to mark).
    pub flagged: Flags,
    /// A jump is waiting for confirmation: re-read this meter soon.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reread: bool,
}

impl Assessment {
    /// Verdict = the worst severity; flags = the fields of the suspect/bogus reasons.
    pub fn from_reasons(reasons: Vec<Reason>) -> Self {
        let verdict = reasons
            .iter()
            .map(|r| r.severity)
            .max()
            .unwrap_or(Verdict::Ok);
        let flagged = reasons
            .iter()
            .filter(|r| r.severity > Verdict::Ok)
            .filter_map(|r| r.field)
            .collect();
        Self {
            verdict,
            reasons,
            flagged,
            reread: false,
        }
    }

    /// How bad the value of `field` is (`Ok` when not flagged; a strip's field flagged through
    /// one of its outlets takes the strip's verdict).
    pub fn field_verdict(&self, field: Field) -> Verdict {
        let own = self
            .reasons
            .iter()
            .filter(|r| r.field == Some(field))
            .map(|r| r.severity)
            .max()
            .unwrap_or(Verdict::Ok);
        if own == Verdict::Ok && self.flagged.contains(field) {
            self.verdict
        } else {
            own
        }
    }

    pub fn is_flagged(&self, field: Field) -> bool {
        self.flagged.contains(field)
    }

    /// The reasons as plain strings.
    pub fn texts(&self) -> Vec<String> {
        self.reasons.iter().map(|r| r.text.clone()).collect()
    }
}

fn num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn ms_text(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{} s", (ms as f64 / 1000.0).round())
    }
}

/// V × I when both are present.
fn apparent(r: &Reading) -> Option<f64> {
    Some(r.voltage_v? * r.current_a?)
}

/// What is known around one reading besides its values.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Context {
    /// The power factor of this meter's load in a recent believable reading.
    pub pf_hint: Option<f64>,
    /// The reply used field names of both unit schemes (e.g. `power` with `voltage_mv`).
    pub mixed_units: bool,
}

impl Context {
    /// What a device reply itself tells.
    pub fn of(r: &Realtime) -> Self {
        Self {
            pf_hint: None,
            mixed_units: r.scheme == crate::protocol::UnitScheme::Mixed,
        }
    }
}

/// Does P look like milliwatts given V × I (P ≈ V × I × 1000)?
fn unit_scale_by_vi(p: f64, r: &Reading, ctx: &Context) -> bool {
    match apparent(r) {
        Some(va) if va >= UNIT_MIN_VA && p > va * APPARENT_FACTOR + APPARENT_SLACK_W => {
            let pf = p / 1000.0 / va;
            // Milli-scheme meters round the current to 1 mA: at small loads that alone moves
            // the apparent power by several percent.
            let quantum = r.current_a.map_or(1.0, |i| 1.0 + 0.0005 / i.max(0.0005));
            let max = UNIT_PF.1 * quantum;
            let min = if ctx.mixed_units {
                UNIT_PF_MIXED_MIN
            } else {
                UNIT_PF.0
            } / quantum;
            match ctx.pf_hint {
                Some(h) if h > 0.0 => {
                    pf <= max
                        && pf >= h * UNIT_PF_HINT_RATIO.0 / quantum
                        && pf <= h * UNIT_PF_HINT_RATIO.1 * quantum
                }
                _ => pf >= min && pf <= max,
            }
        }
        _ => false,
    }
}

/// The power factor of a believable reading (P / (V × I)), when there is enough load to tell.
fn power_factor(r: &Reading) -> Option<f64> {
    let va = apparent(r)?;
    let p = r.power_w?;
    (va >= UNIT_MIN_W && p >= UNIT_MIN_W).then(|| (p / va).min(1.0))
}

/// The stateless rules on one reading (PROTOCOL.md §9.2).
pub fn check(limits: &Limits, r: &Reading) -> Vec<Reason> {
    check_with(limits, r, &Context::default())
}

/// [`check`], with what else is known (sharpens the unit-scale rule).
pub fn check_with(limits: &Limits, r: &Reading, ctx: &Context) -> Vec<Reason> {
    use Verdict::{Bogus, Suspect};
    let mut out = Vec::new();

    // NaN or infinity (never from the reply parser, but a reading may come from elsewhere): the
    // value is unusable and is treated as absent by the other rules.
    let mut r = *r;
    for field in Field::ALL {
        if r.get(field).is_some_and(|v| !v.is_finite()) {
            out.push(Reason::new(
                Rule::NotFinite,
                Some(field),
                Bogus,
                format!("{} is not a finite number", field_name(field)),
            ));
            match field {
                Field::Power => r.power_w = None,
                Field::Voltage => r.voltage_v = None,
                Field::Current => r.current_a = None,
                Field::Total => r.total_kwh = None,
            }
        }
    }
    let r = &r;

    for field in Field::ALL {
        if let Some(v) = r.get(field).filter(|v| *v < 0.0) {
            out.push(Reason::new(
                Rule::Negative,
                Some(field),
                Bogus,
                format!("negative {}: {}", field_name(field), field.fmt(v)),
            ));
        }
    }

    let mut zero_voltage = false;
    if let Some(v) = r.voltage_v.filter(|v| *v >= 0.0) {
        let amps = r.current_a.filter(|a| *a > FLOWING_A);
        let watts = r.power_w.filter(|p| *p > FLOWING_W);
        let flowing = match (amps, watts) {
            (Some(a), _) => Some(format!("{} flows", Field::Current.fmt(a))),
            (None, Some(p)) => Some(format!("drawing {}", Field::Power.fmt(p))),
            (None, None) => None,
        };
        if let Some(what) = flowing.filter(|_| v < ZERO_V) {
            zero_voltage = true;
            out.push(Reason::new(
                Rule::ZeroVoltage,
                Some(Field::Voltage),
                Bogus,
                format!("0 V while {what}"),
            ));
        } else if !limits.voltage_ok(v) {
            let plural = if limits.bands.len() > 1 { "s" } else { "" };
            out.push(Reason::new(
                Rule::VoltageOutOfBand,
                Some(Field::Voltage),
                Suspect,
                format!(
                    "{} is outside the {} mains band{plural}",
                    Field::Voltage.fmt(v),
                    limits.bands_text()
                ),
            ));
        }
    }

    if let Some(a) = r.current_a.filter(|a| *a > OVER_RATING * limits.rated_a) {
        out.push(Reason::new(
            Rule::AboveRatedCurrent,
            Some(Field::Current),
            Bogus,
            format!(
                "{} is above {OVER_RATING} × {} A rated ({})",
                Field::Current.fmt(a),
                num(limits.rated_a),
                limits.label
            ),
        ));
    }

    if let Some(p) = r.power_w.filter(|p| *p >= 0.0) {
        let unit_scale = unit_scale_by_vi(p, r, ctx);
        if unit_scale {
            out.push(unit_scale_reason(format!(
                "{} ≈ 1000 × V × I",
                Field::Power.fmt(p)
            )));
        }
        if p > OVER_RATING * limits.rated_w {
            out.push(Reason::new(
                Rule::AboveRatedPower,
                Some(Field::Power),
                Bogus,
                format!(
                    "{} is above {OVER_RATING} × {} W rated ({})",
                    Field::Power.fmt(p),
                    num(limits.rated_w),
                    limits.label
                ),
            ));
        }
        // The unit-scale reason already says that V × I does not match.
        if !unit_scale
            && let (Some(v), Some(a), false) = (r.voltage_v, r.current_a, zero_voltage)
            && v >= 0.0
            && a >= 0.0
            && p > v * a * APPARENT_FACTOR + APPARENT_SLACK_W
        {
            out.push(Reason::new(
                Rule::PowerAboveApparent,
                Some(Field::Power),
                Bogus,
                format!(
                    "{} is more than V × I allows ({} × {} = {:.1} VA)",
                    Field::Power.fmt(p),
                    Field::Voltage.fmt(v),
                    Field::Current.fmt(a),
                    v * a
                ),
            ));
        }
    }
    out
}

/// One bogus finding per value the device sent with the wrong type.
pub fn unreadable_reasons(r: &Realtime) -> Vec<Reason> {
    r.unreadable
        .iter()
        .map(|u| {
            let field = match u.quantity() {
                "power" => Field::Power,
                "voltage" => Field::Voltage,
                "current" => Field::Current,
                _ => Field::Total,
            };
            Reason::new(Rule::Unreadable, Some(field), Verdict::Bogus, u.to_string())
        })
        .collect()
}

fn field_name(field: Field) -> &'static str {
    match field {
        Field::Power => "power",
        Field::Voltage => "voltage",
        Field::Current => "current",
        Field::Total => "total",
    }
}

fn unit_scale_reason(evidence: String) -> Reason {
    Reason::new(
        Rule::UnitScale,
        Some(Field::Power),
        Verdict::Bogus,
        format!("unit-scale bug: looks like milliwatts in the watts field ({evidence})"),
    )
}

/// Checks an energy figure from the device's statistics (`get_daystat`/`get_monthstat`) over
/// `hours`: negative, or more than the rating could draw in that time (PROTOCOL.md §9.2: a day
/// is at most rated W × 24 h), is bogus.
pub fn check_energy(limits: &Limits, kwh: f64, hours: f64) -> Option<Reason> {
    if !kwh.is_finite() {
        return Some(Reason::new(
            Rule::NotFinite,
            Some(Field::Total),
            Verdict::Bogus,
            "energy is not a finite number".into(),
        ));
    }
    if kwh < 0.0 {
        return Some(Reason::new(
            Rule::Negative,
            Some(Field::Total),
            Verdict::Bogus,
            format!("negative energy: {}", Field::Total.fmt(kwh)),
        ));
    }
    let max = limits.rated_w * hours.max(0.0) / 1000.0;
    (kwh > max + TOTAL_SLACK_KWH).then(|| {
        Reason::new(
            Rule::EnergyAboveRating,
            Some(Field::Total),
            Verdict::Bogus,
            format!(
                "{} in {} h is more than {} W rated can draw ({})",
                Field::Total.fmt(kwh),
                num(hours),
                num(limits.rated_w),
                limits.label
            ),
        )
    })
}

/// A flagged (or annotated) assessment kept for the detail pane.
#[derive(Debug, Clone, PartialEq)]
pub struct Noted {
    pub t_ms: u64,
    pub assessment: Assessment,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct PendingJump {
    power_w: f64,
    at_ms: u64,
}

/// One meter (a plug, or one outlet of a strip) over time.
#[derive(Debug, Clone)]
pub struct Meter {
    limits: Limits,
    history: History,
    pending: Option<PendingJump>,
    counts: Counts,
    recent: VecDeque<Noted>,
    last: Option<Assessment>,
}

impl Meter {
    /// A meter checked against `limits`, keeping the default history (10 min at 1 s).
    pub fn new(limits: Limits) -> Self {
        Self::with_history(limits, History::default())
    }

    /// A meter for a model string such as `HS110(US)`, with the embedded ratings.
    pub fn for_model(model: &str) -> Self {
        Self::new(crate::fleet::ratings::limits_for(model))
    }

    pub fn with_history(limits: Limits, history: History) -> Self {
        Self {
            limits,
            history,
            pending: None,
            counts: Counts::default(),
            recent: VecDeque::new(),
            last: None,
        }
    }

    /// The assessment of the newest reading.
    pub fn last_assessment(&self) -> Option<&Assessment> {
        self.last.as_ref()
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The most recent assessments that carried reasons, oldest first.
    pub fn recent_reasons(&self) -> impl DoubleEndedIterator<Item = &Noted> {
        self.recent.iter()
    }

    /// Is a jump waiting for a confirming re-read?
    pub fn awaiting_reread(&self) -> bool {
        self.pending.is_some()
    }

    /// Assesses a device reading taken at `now_ms`.
    /// Values sent with the wrong type are findings (bogus), never a silent "absent".
    pub fn assess_realtime(&mut self, r: &Realtime, now_ms: u64) -> Assessment {
        self.assess_with(
            &Reading::from(r),
            Context::of(r),
            unreadable_reasons(r),
            now_ms,
        )
    }

    /// Assesses `r` taken at `now_ms`, records it in the history and the counts.
    pub fn assess(&mut self, r: &Reading, now_ms: u64) -> Assessment {
        self.assess_in(r, Context::default(), now_ms)
    }

    /// [`assess`](Self::assess) with what the reply itself told (its [`Context`]; the power
    /// factor hint is filled in from the history).
    pub fn assess_in(&mut self, r: &Reading, ctx: Context, now_ms: u64) -> Assessment {
        self.assess_with(r, ctx, Vec::new(), now_ms)
    }

    /// [`assess_in`](Self::assess_in) with findings made before the rules ran (unreadable
    /// values).
    fn assess_with(
        &mut self,
        r: &Reading,
        ctx: Context,
        found: Vec<Reason>,
        now_ms: u64,
    ) -> Assessment {
        // The most recent believable reading (power not flagged) within the baseline age.
        let recent = self
            .history
            .iter()
            .rev()
            .take_while(|e| now_ms.saturating_sub(e.t_ms) <= BASELINE_MAX_AGE_MS)
            .find(|e| !e.flags.contains(Field::Power) && e.reading.power_w.is_some());
        let baseline = recent.and_then(|e| Some((e.reading.power_w?, e.t_ms)));
        let pf_hint = recent.and_then(|e| power_factor(&e.reading));

        let ctx = Context {
            pf_hint: pf_hint.or(ctx.pf_hint),
            ..ctx
        };
        let mut reasons = found;
        reasons.extend(check_with(&self.limits, r, &ctx));
        let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
        let r = &Reading {
            power_w: finite(r.power_w),
            voltage_v: finite(r.voltage_v),
            current_a: finite(r.current_a),
            total_kwh: finite(r.total_kwh),
        };
        let power_bogus = |rs: &[Reason]| {
            rs.iter()
                .any(|x| x.field == Some(Field::Power) && x.severity == Verdict::Bogus)
        };

        let mut reread = false;
        if let (Some(p), Some((b, b_at))) = (r.power_w.filter(|p| *p >= 0.0), baseline) {
            let has_unit = reasons.iter().any(|x| x.rule == Rule::UnitScale);
            let vi_consistent = apparent(r)
                .is_some_and(|va| va >= 0.0 && p <= va * APPARENT_FACTOR + APPARENT_SLACK_W);
            // When V × I and the load's power factor are both known, they have had their say.
            let vi_decides = pf_hint.is_some() && apparent(r).is_some_and(|va| va >= UNIT_MIN_VA);
            let ratio = if b >= UNIT_MIN_W { p / b } else { 0.0 };
            if !has_unit
                && !vi_consistent
                && !vi_decides
                && ratio >= UNIT_RATIO.0
                && ratio <= UNIT_RATIO.1
            {
                // "More than V × I allows" is a symptom of the same bug.
                reasons.retain(|x| x.rule != Rule::PowerAboveApparent);
                reasons.insert(
                    0,
                    unit_scale_reason(format!(
                        "{} ≈ {ratio:.0} × the {} read {} before",
                        Field::Power.fmt(p),
                        Field::Power.fmt(b),
                        ms_text(now_ms.saturating_sub(b_at))
                    )),
                );
            }

            if !power_bogus(&reasons) {
                if p > JUMP_FACTOR * b && p > JUMP_MIN_W {
                    let confirms = self.pending.is_some_and(|pj| {
                        now_ms.saturating_sub(pj.at_ms) <= CONFIRM_WINDOW_MS
                            && p <= pj.power_w * CONFIRM_TOLERANCE
                            && p * CONFIRM_TOLERANCE >= pj.power_w
                    });
                    if confirms {
                        self.pending = None;
                        reasons.push(Reason::new(
                            Rule::JumpConfirmed,
                            Some(Field::Power),
                            Verdict::Ok,
                            format!(
                                "jump from {} to {} confirmed by a re-read",
                                Field::Power.fmt(b),
                                Field::Power.fmt(p)
                            ),
                        ));
                    } else {
                        self.pending = Some(PendingJump {
                            power_w: p,
                            at_ms: now_ms,
                        });
                        reread = true;
                        reasons.push(Reason::new(
                            Rule::Jump,
                            Some(Field::Power),
                            Verdict::Suspect,
                            format!(
                                "jump from {} to {} (more than {JUMP_FACTOR}×), unconfirmed until a re-read",
                                Field::Power.fmt(b),
                                Field::Power.fmt(p)
                            ),
                        ));
                    }
                } else {
                    // Back to normal: the spike was not confirmed.
                    self.pending = None;
                }
            }
        } else if r.power_w.is_some_and(|p| p >= 0.0) && !power_bogus(&reasons) {
            self.pending = None;
        }

        if let Some(e) = r.total_kwh.filter(|e| *e >= 0.0) {
            let prev = self
                .history
                .iter()
                .rev()
                .find(|x| !x.flags.contains(Field::Total) && x.reading.total_kwh.is_some())
                .and_then(|x| Some((x.reading.total_kwh?, x.t_ms)));
            if let Some((prev, prev_at)) = prev {
                // History stores f32: compare at that precision.
                let prev_f = f64::from(prev as f32);
                let e_f = f64::from(e as f32);
                if e_f < prev_f - RESET_TOLERANCE_KWH {
                    reasons.push(Reason::new(
                        Rule::CounterReset,
                        Some(Field::Total),
                        Verdict::Ok,
                        format!(
                            "total fell from {} to {}: counter reset (reboot or erase), not energy lost",
                            Field::Total.fmt(prev),
                            Field::Total.fmt(e)
                        ),
                    ));
                } else {
                    let hours = now_ms.saturating_sub(prev_at) as f64 / 3_600_000.0;
                    let allowed =
                        OVER_RATING * self.limits.rated_w * hours / 1000.0 + TOTAL_SLACK_KWH;
                    if e_f - prev_f > allowed {
                        reasons.push(Reason::new(
                            Rule::TotalTooFast,
                            Some(Field::Total),
                            Verdict::Suspect,
                            format!(
                                "total rose by {} in {}, more than {OVER_RATING} × {} W allows",
                                Field::Total.fmt(e - prev),
                                ms_text(now_ms.saturating_sub(prev_at)),
                                num(self.limits.rated_w)
                            ),
                        ));
                    }
                }
            }
        }

        let mut a = Assessment::from_reasons(reasons);
        a.reread = reread;
        self.history.push(now_ms, r, a.verdict, a.flagged);
        self.counts.add(a.verdict);
        if !a.reasons.is_empty() {
            if self.recent.len() == RECENT_REASONS {
                self.recent.pop_front();
            }
            self.recent.push_back(Noted {
                t_ms: now_ms,
                assessment: a.clone(),
            });
        }
        self.last = Some(a.clone());
        a
    }
}

/// Checks the sum of a strip's outlets against the strip's rating. Outlets whose own power or
/// current is already flagged are left out of that sum (their glitch is reported on them).
pub fn strip_total<'a>(
    limits: &Limits,
    outlets: impl IntoIterator<Item = (&'a Reading, &'a Assessment)>,
) -> Assessment {
    let mut watts = 0.0;
    let mut amps = 0.0;
    for (r, a) in outlets {
        if let Some(p) = r
            .power_w
            .filter(|p| *p >= 0.0 && !a.is_flagged(Field::Power))
        {
            watts += p;
        }
        if let Some(i) = r
            .current_a
            .filter(|i| *i >= 0.0 && !a.is_flagged(Field::Current))
        {
            amps += i;
        }
    }
    let mut reasons = Vec::new();
    if watts > OVER_RATING * limits.rated_w {
        reasons.push(Reason::new(
            Rule::StripAboveRatedPower,
            Some(Field::Power),
            Verdict::Bogus,
            format!(
                "strip total {} is above {OVER_RATING} × {} W rated ({})",
                Field::Power.fmt(watts),
                num(limits.rated_w),
                limits.label
            ),
        ));
    }
    if amps > OVER_RATING * limits.rated_a {
        reasons.push(Reason::new(
            Rule::StripAboveRatedCurrent,
            Some(Field::Current),
            Verdict::Bogus,
            format!(
                "strip total {} is above {OVER_RATING} × {} A rated ({})",
                Field::Current.fmt(amps),
                num(limits.rated_a),
                limits.label
            ),
        ));
    }
    Assessment::from_reasons(reasons)
}

/// A strip's overall assessment: its total check plus one line per flagged outlet
/// (`outlet "Kettle": bogus`), the verdict being the worst of them. The flagged fields are the
/// union, so the strip row marks the same cells as its outlets.
pub fn strip_summary<'a>(
    total: &Assessment,
    outlets: impl IntoIterator<Item = (&'a str, &'a Assessment)>,
) -> Assessment {
    let mut reasons = total.reasons.clone();
    let mut flagged = total.flagged;
    let mut reread = total.reread;
    for (name, a) in outlets {
        for f in a.flagged.iter() {
            flagged.insert(f);
        }
        reread |= a.reread;
        if a.verdict > Verdict::Ok {
            let first = a.reasons.iter().find(|r| r.severity == a.verdict);
            reasons.push(Reason::new(
                Rule::Outlet,
                None,
                a.verdict,
                match first {
                    Some(r) => format!("outlet {name:?}: {} ({})", a.verdict, r.text),
                    None => format!("outlet {name:?}: {}", a.verdict),
                },
            ));
        }
    }
    let mut out = Assessment::from_reasons(reasons);
    out.flagged = flagged;
    out.reread = reread;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::ratings::limits_for;

    fn rules(a: &Assessment) -> Vec<Rule> {
        a.reasons.iter().map(|r| r.rule).collect()
    }

    fn only(limits: &str, r: Reading) -> Assessment {
        Assessment::from_reasons(check(&limits_for(limits), &r))
    }

    /// A resistive-ish load on US mains.
    fn us(p: f64) -> Reading {
        Reading::new(p, 120.0, p / 120.0 / 0.95, 10.0)
    }

    fn eu(p: f64) -> Reading {
        Reading::new(p, 230.0, p / 230.0 / 0.95, 10.0)
    }

    #[test]
    fn real_fixture_readings_are_ok() {
        // HS110(US) hw 1.0 fw 1.2.6 (float scheme), HS110(EU) hw 4.0 (milli), KP115(US) idle,
        // HS300(US) outlet.
        let cases = [
            (
                "HS110(US)",
                Reading::new(7.677094, 118.917389, 0.128037, 30.404),
            ),
            (
                "HS110(EU)",
                Reading::new(0.928511, 231.067823, 0.014937, 55.139),
            ),
            ("HS110(EU)", Reading::new(61.753, 230.837, 0.451, 16.323)),
            ("KP115(US)", Reading::new(0.0, 120.652, 0.0, 0.0)),
            ("HS300(US)", Reading::new(0.277, 120.11, 0.006, 0.062)),
        ];
        for (model, r) in cases {
            let a = only(model, r);
            assert_eq!(a.verdict, Verdict::Ok, "{model}: {:?}", a.reasons);
            assert!(a.reasons.is_empty() && a.flagged.is_empty());
        }
    }

    #[test]
    fn hs110_claiming_28_kw_is_bogus_with_the_rating_named() {
        let a = only("HS110(US)", Reading::new(28000.0, 118.9, 0.128, 30.4));
        assert_eq!(a.verdict, Verdict::Bogus);
        assert_eq!(
            a.reasons[0].text,
            "28000 W is above 1.25 × 1800 W rated (HS110 US)"
        );
        assert!(rules(&a).contains(&Rule::PowerAboveApparent));
        assert!(!rules(&a).contains(&Rule::UnitScale), "{:?}", a.reasons);
        assert!(a.is_flagged(Field::Power));
        assert!(!a.is_flagged(Field::Voltage) && !a.is_flagged(Field::Current));
        assert_eq!(a.field_verdict(Field::Power), Verdict::Bogus);
        assert_eq!(a.field_verdict(Field::Voltage), Verdict::Ok);
    }

    #[test]
    fn power_just_under_and_over_the_rating() {
        // 2250 W = 1.25 × 1800 W: allowed (the load draws the current to match).
        assert_eq!(
            only("HS110(US)", Reading::new(2250.0, 120.0, 18.75, 1.0)).verdict,
            Verdict::Ok
        );
        let a = only("HS110(US)", Reading::new(2260.0, 125.0, 18.5, 1.0));
        assert_eq!(rules(&a), vec![Rule::AboveRatedPower]);
        // The same load is fine on an EU plug.
        assert_eq!(only("HS110(EU)", eu(2260.0)).verdict, Verdict::Ok);
        assert_eq!(only("HS110(EU)", eu(4700.0)).verdict, Verdict::Bogus);
    }

    #[test]
    fn current_above_the_rating_is_bogus() {
        let a = only("HS110(US)", Reading::new(100.0, 120.0, 19.0, 1.0));
        assert_eq!(a.verdict, Verdict::Bogus);
        assert_eq!(rules(&a), vec![Rule::AboveRatedCurrent]);
        assert_eq!(
            a.reasons[0].text,
            "19.0 A is above 1.25 × 15 A rated (HS110 US)"
        );
        assert!(a.is_flagged(Field::Current) && !a.is_flagged(Field::Power));
        assert_eq!(
            only("HS110(EU)", Reading::new(100.0, 230.0, 19.0, 1.0)).verdict,
            Verdict::Ok
        );
        // UK plugs are rated 13 A, AU 10 A (regional defaults for unlisted models).
        assert_eq!(
            only("KP105(UK)", Reading::new(100.0, 230.0, 17.0, 1.0)).verdict,
            Verdict::Bogus
        );
        assert_eq!(
            only("XX(AU)", Reading::new(100.0, 230.0, 12.6, 1.0)).verdict,
            Verdict::Bogus
        );
        assert_eq!(
            only("XX(AU)", Reading::new(100.0, 230.0, 12.4, 1.0)).verdict,
            Verdict::Ok
        );
    }

    #[test]
    fn negative_values_are_bogus_each_flagged() {
        for field in Field::ALL {
            let mut r = us(60.0);
            match field {
                Field::Power => r.power_w = Some(-5.0),
                Field::Voltage => r.voltage_v = Some(-120.0),
                Field::Current => r.current_a = Some(-0.5),
                Field::Total => r.total_kwh = Some(-1.0),
            }
            let a = only("HS110(US)", r);
            assert_eq!(a.verdict, Verdict::Bogus, "{field:?}");
            assert!(a.is_flagged(field), "{field:?}");
            assert!(
                a.reasons[0].text.starts_with("negative "),
                "{:?}",
                a.reasons
            );
        }
    }

    #[test]
    fn real_power_above_apparent_power_is_bogus() {
        // 120 V × 0.5 A = 60 VA; 60 × 1.1 + 5 = 71 W allowed.
        assert_eq!(
            only("HS110(US)", Reading::new(71.0, 120.0, 0.5, 1.0)).verdict,
            Verdict::Ok
        );
        let a = only("HS110(US)", Reading::new(80.0, 120.0, 0.5, 1.0));
        assert_eq!(rules(&a), vec![Rule::PowerAboveApparent]);
        assert_eq!(
            a.reasons[0].text,
            "80.0 W is more than V × I allows (120 V × 0.500 A = 60.0 VA)"
        );
        // Low power factors are normal (PF 0.15): never require P ≈ V × I.
        assert_eq!(
            only("HS110(US)", Reading::new(9.0, 120.0, 0.5, 1.0)).verdict,
            Verdict::Ok
        );
        // Without current there is nothing to compare with.
        let mut r = us(80.0);
        r.current_a = None;
        assert_eq!(only("HS110(US)", r).verdict, Verdict::Ok);
    }

    #[test]
    fn voltage_outside_the_regions_band_is_suspect() {
        // The ~170 V on 240 V mains report (tplink-energy-monitor #7).
        let a = only("HS110(EU)", Reading::new(60.0, 170.0, 0.4, 1.0));
        assert_eq!(a.verdict, Verdict::Suspect);
        assert_eq!(
            a.reasons[0].text,
            "170 V is outside the EU/UK 190–265 V mains band"
        );
        assert!(a.is_flagged(Field::Voltage) && !a.is_flagged(Field::Power));
        // US: 95–140 V; 230 V on a US plug is out of band, 120 V on an EU plug too.
        assert_eq!(
            only("HS110(US)", Reading::new(60.0, 230.0, 0.3, 1.0)).verdict,
            Verdict::Suspect
        );
        assert_eq!(
            only("HS110(US)", Reading::new(60.0, 96.0, 0.7, 1.0)).verdict,
            Verdict::Ok
        );
        assert_eq!(
            only("HS110(US)", Reading::new(60.0, 141.0, 0.5, 1.0)).verdict,
            Verdict::Suspect
        );
        assert_eq!(
            only("HS110(EU)", Reading::new(60.0, 120.0, 0.6, 1.0)).verdict,
            Verdict::Suspect
        );
        assert_eq!(
            only("KP105(UK)", Reading::new(60.0, 250.0, 0.3, 1.0)).verdict,
            Verdict::Ok
        );
        // Unknown region: either band.
        assert_eq!(
            only("HS110", Reading::new(60.0, 120.0, 0.6, 1.0)).verdict,
            Verdict::Ok
        );
        assert_eq!(
            only("HS110", Reading::new(60.0, 230.0, 0.3, 1.0)).verdict,
            Verdict::Ok
        );
        let a = only("HS110", Reading::new(60.0, 170.0, 0.4, 1.0));
        assert_eq!(a.verdict, Verdict::Suspect);
        assert_eq!(
            a.reasons[0].text,
            "170 V is outside the EU/UK 190–265 V or US 95–140 V mains bands"
        );
    }

    #[test]
    fn zero_volts_with_current_flowing_is_bogus() {
        let a = only("HS110(EU)", Reading::new(60.0, 0.0, 0.45, 1.0));
        assert_eq!(a.verdict, Verdict::Bogus);
        assert_eq!(rules(&a), vec![Rule::ZeroVoltage]);
        assert_eq!(a.reasons[0].text, "0 V while 0.450 A flows");
        assert!(a.is_flagged(Field::Voltage) && !a.is_flagged(Field::Power));
        // Power alone also counts as flowing.
        let a = only(
            "HS110(EU)",
            Reading {
                current_a: None,
                ..Reading::new(60.0, 0.0, 0.0, 1.0)
            },
        );
        assert_eq!(rules(&a), vec![Rule::ZeroVoltage]);
        // 0 V with nothing flowing is merely out of band.
        let a = only("HS110(EU)", Reading::new(0.0, 0.0, 0.0, 1.0));
        assert_eq!(rules(&a), vec![Rule::VoltageOutOfBand]);
        assert_eq!(a.verdict, Verdict::Suspect);
    }

    #[test]
    fn unit_scale_bug_by_v_times_i_times_1000() {
        // HS110(EU) hw 4.0 fixture load (61.753 W) reported in milliwatts in the watts field.
        let a = only("HS110(EU)", Reading::new(61753.0, 230.837, 0.451, 16.3));
        assert_eq!(a.verdict, Verdict::Bogus);
        // Named first; the value is above the rating as well, whatever the cause.
        assert_eq!(
            rules(&a),
            vec![Rule::UnitScale, Rule::AboveRatedPower],
            "{:?}",
            a.reasons
        );
        assert!(
            a.reasons[0]
                .text
                .starts_with("unit-scale bug: looks like milliwatts in the watts field"),
            "{}",
            a.reasons[0].text
        );
        assert!(a.is_flagged(Field::Power));
        // Small loads too: 7.68 W → 7677 "W" on a US plug, below the rating.
        let a = only(
            "HS110(US)",
            Reading::new(7677.094, 118.917389, 0.128037, 30.4),
        );
        assert_eq!(rules(&a), vec![Rule::UnitScale, Rule::AboveRatedPower]);
        // A 0.5 W standby load on a milli-scheme meter: 4.17 mA reported as 4 mA.
        let a = only("HS110(US)", Reading::new(500.0, 120.0, 0.004, 30.4));
        assert_eq!(rules(&a), vec![Rule::UnitScale]);
        // A 1.5 W load in milliwatts stays below the rating: only the unit bug says it.
        let a = only("HS110(US)", Reading::new(1500.0, 120.0, 0.0125, 30.4));
        assert_eq!(rules(&a), vec![Rule::UnitScale]);
        // P / 1000 would need a power factor of 0.3: too far from "≈ V × I × 1000" …
        let r = Reading::new(30000.0, 230.0, 0.435, 16.3);
        let a = only("HS110(EU)", r);
        assert_eq!(
            rules(&a),
            vec![Rule::AboveRatedPower, Rule::PowerAboveApparent]
        );
        // … unless the reply mixed unit schemes (`power` next to `voltage_mv`).
        let mixed = Context {
            mixed_units: true,
            ..Context::default()
        };
        let a = Assessment::from_reasons(check_with(&limits_for("HS110(EU)"), &r, &mixed));
        assert_eq!(rules(&a), vec![Rule::UnitScale, Rule::AboveRatedPower]);
        let rt = Realtime::from_result(&serde_json::json!({
            "power": 30000.0, "voltage_mv": 230000, "current_ma": 435, "total_wh": 16300
        }))
        .expect("realtime");
        let a = Meter::for_model("HS110(EU)").assess_realtime(&rt, 0);
        assert_eq!(a.reasons[0].rule, Rule::UnitScale);
        // 28 kW at 15 VA is ~1800× V × I: not a milliwatt reading, named by its rating.
        let a = only("HS110(US)", Reading::new(28000.0, 118.9, 0.128, 30.4));
        assert!(!rules(&a).contains(&Rule::UnitScale));
    }

    fn meter(model: &str) -> Meter {
        Meter::for_model(model)
    }

    #[test]
    fn unit_scale_bug_by_a_1000x_jump() {
        // No current reported (bulb-like meter): only the history can tell.
        let mut m = meter("HS110(EU)");
        let p = |w: f64| Reading {
            power_w: Some(w),
            voltage_v: Some(230.0),
            current_a: None,
            total_kwh: None,
        };
        assert_eq!(m.assess(&p(61.7), 0).verdict, Verdict::Ok);
        assert_eq!(m.assess(&p(61.9), 1_000).verdict, Verdict::Ok);
        let a = m.assess(&p(61_800.0), 2_000);
        assert_eq!(a.verdict, Verdict::Bogus);
        // Named first as the unit-scale bug (and above the rating too).
        assert_eq!(
            rules(&a),
            vec![Rule::UnitScale, Rule::AboveRatedPower],
            "{:?}",
            a.reasons
        );
        assert_eq!(
            a.reasons[0].text,
            "unit-scale bug: looks like milliwatts in the watts field (61800 W ≈ 998 × the 61.9 W read 1 s before)"
        );
        assert!(!a.reread);
        // Stays named while it persists (the baseline is the last believable reading).
        let a = m.assess(&p(61_700.0), 3_000);
        assert_eq!(rules(&a), vec![Rule::UnitScale, Rule::AboveRatedPower]);
        // A 1000× rise that V × I explains is a real load switching on (1 W standby → 1 kW):
        // a jump, not the unit bug.
        let mut m = meter("HS110(EU)");
        m.assess(&Reading::new(1.0, 230.0, 0.0087, 1.0), 0);
        let a = m.assess(&Reading::new(1000.0, 230.0, 4.6, 1.0), 1_000);
        assert_eq!(rules(&a), vec![Rule::Jump]);
    }

    #[test]
    fn the_loads_known_power_factor_tells_a_glitch_from_the_unit_bug() {
        // A 45 W lamp (power factor 1) glitching to 28 kW: on its own the reading could be
        // 28 W in milliwatts at PF 0.62 …
        let glitch = Reading::new(28_000.0, 120.0, 0.375, 10.0);
        assert_eq!(
            rules(&only("HS110(US)", glitch)),
            vec![Rule::UnitScale, Rule::AboveRatedPower]
        );
        // … but the meter has just seen the lamp at PF 1: it is the 28 kW glitch.
        let mut m = meter("HS110(US)");
        m.assess(&Reading::new(45.0, 120.0, 0.375, 10.0), 0);
        let a = m.assess(&glitch, 1_000);
        assert_eq!(
            rules(&a),
            vec![Rule::AboveRatedPower, Rule::PowerAboveApparent]
        );
        // A low power factor load (PF 0.3 charger) that starts reporting milliwatts: named
        // thanks to the known power factor (the window alone would not).
        let mw = Reading::new(30_000.0, 120.0, 0.833, 10.0);
        assert!(!rules(&only("HS110(US)", mw)).contains(&Rule::UnitScale));
        let mut m = meter("HS110(US)");
        m.assess(&Reading::new(30.0, 120.0, 0.833, 10.0), 0);
        let a = m.assess(&mw, 1_000);
        assert_eq!(a.reasons[0].rule, Rule::UnitScale, "{:?}", a.reasons);
    }

    #[test]
    fn a_jump_is_suspect_until_a_re_read_confirms_it() {
        let mut m = meter("HS110(US)");
        assert_eq!(m.assess(&us(80.0), 0).verdict, Verdict::Ok);
        let a = m.assess(&us(1450.0), 2_000);
        assert_eq!(a.verdict, Verdict::Suspect);
        assert_eq!(rules(&a), vec![Rule::Jump]);
        assert_eq!(
            a.reasons[0].text,
            "jump from 80.0 W to 1450 W (more than 5×), unconfirmed until a re-read"
        );
        assert!(a.reread && m.awaiting_reread());
        assert!(a.is_flagged(Field::Power));
        // The re-read confirms: ok, with the confirmation as information.
        let a = m.assess(&us(1440.0), 3_000);
        assert_eq!(a.verdict, Verdict::Ok);
        assert_eq!(rules(&a), vec![Rule::JumpConfirmed]);
        assert!(a.flagged.is_empty() && !a.reread && !m.awaiting_reread());
        // The new level is the baseline now.
        let a = m.assess(&us(1460.0), 4_000);
        assert!(a.reasons.is_empty(), "{:?}", a.reasons);
        assert_eq!(
            m.counts(),
            Counts {
                ok: 3,
                suspect: 1,
                bogus: 0
            }
        );
    }

    #[test]
    fn an_unconfirmed_spike_stays_suspect_and_clears() {
        let mut m = meter("HS110(US)");
        m.assess(&us(80.0), 0);
        assert_eq!(m.assess(&us(1450.0), 1_000).verdict, Verdict::Suspect);
        // The re-read is back to normal: the spike was a glitch, nothing pending.
        assert_eq!(m.assess(&us(82.0), 2_000).verdict, Verdict::Ok);
        assert!(!m.awaiting_reread());
        // A re-read far from the suspect value does not confirm it: suspect again.
        assert_eq!(m.assess(&us(1450.0), 3_000).verdict, Verdict::Suspect);
        let a = m.assess(&us(600.0), 4_000);
        assert_eq!((a.verdict, rules(&a)), (Verdict::Suspect, vec![Rule::Jump]));
        // Too late a re-read does not confirm either.
        let a = m.assess(&us(610.0), 4_000 + CONFIRM_WINDOW_MS + 1);
        assert_eq!(a.verdict, Verdict::Suspect);
        // Small rises never count as jumps (below 500 W or below 5×).
        let mut m = meter("HS110(US)");
        m.assess(&us(50.0), 0);
        assert_eq!(m.assess(&us(400.0), 1_000).verdict, Verdict::Ok);
        assert_eq!(m.assess(&us(1900.0), 2_000).verdict, Verdict::Ok);
    }

    #[test]
    fn a_stale_baseline_is_not_recent_history() {
        let mut m = meter("HS110(US)");
        m.assess(&us(80.0), 0);
        let a = m.assess(&us(1450.0), BASELINE_MAX_AGE_MS + 1);
        assert_eq!(a.verdict, Verdict::Ok);
    }

    #[test]
    fn a_bogus_reading_is_not_a_baseline() {
        let mut m = meter("HS110(US)");
        m.assess(&us(80.0), 0);
        assert_eq!(
            m.assess(&Reading::new(28000.0, 120.0, 0.7, 10.0), 1_000)
                .verdict,
            Verdict::Bogus
        );
        // Back at 82 W: compared with 80 W, not with 28 kW.
        let a = m.assess(&us(82.0), 2_000);
        assert!(a.reasons.is_empty(), "{:?}", a.reasons);
        assert_eq!(m.counts().bogus, 1);
        assert_eq!(m.counts().flagged(), 1);
        assert_eq!(m.counts().total(), 3);
    }

    #[test]
    fn total_going_down_is_a_counter_reset_not_a_flag() {
        let mut m = meter("HS110(US)");
        m.assess(&Reading::new(7.6, 119.0, 0.128, 30.404), 0);
        let a = m.assess(&Reading::new(7.6, 119.0, 0.128, 0.001), 1_000);
        assert_eq!(a.verdict, Verdict::Ok);
        assert_eq!(rules(&a), vec![Rule::CounterReset]);
        assert_eq!(
            a.reasons[0].text,
            "total fell from 30.404 kWh to 0.001 kWh: counter reset (reboot or erase), not energy lost"
        );
        assert!(a.flagged.is_empty());
        assert_eq!(a.field_verdict(Field::Total), Verdict::Ok);
        // Counting continues from the new value.
        let a = m.assess(&Reading::new(7.6, 119.0, 0.128, 0.002), 2_000);
        assert!(a.reasons.is_empty());
        // A flat or rising counter is fine.
        let a = m.assess(&Reading::new(7.6, 119.0, 0.128, 0.002), 3_000);
        assert!(a.reasons.is_empty());
        assert_eq!(m.recent_reasons().count(), 1);
    }

    #[test]
    fn total_rising_faster_than_the_rating_allows_is_suspect() {
        let mut m = meter("HS110(US)");
        m.assess(&us(100.0), 0);
        let mut r = us(100.0);
        r.total_kwh = Some(13.2);
        let a = m.assess(&r, 10_000);
        assert_eq!(a.verdict, Verdict::Suspect);
        assert_eq!(rules(&a), vec![Rule::TotalTooFast]);
        assert!(a.is_flagged(Field::Total));
        // 2250 W for one hour is 2.25 kWh: allowed.
        let mut m = meter("HS110(US)");
        m.assess(&us(100.0), 0);
        r.total_kwh = Some(12.2);
        assert_eq!(m.assess(&r, 3_600_000).verdict, Verdict::Ok);
    }

    #[test]
    fn verdicts_serialise_lowercase_and_reasons_as_text() {
        for (v, s) in [
            (Verdict::Ok, "ok"),
            (Verdict::Suspect, "suspect"),
            (Verdict::Bogus, "bogus"),
        ] {
            assert_eq!(serde_json::to_value(v).expect("json"), s);
            assert_eq!(v.to_string(), s);
        }
        assert!(Verdict::Ok < Verdict::Suspect && Verdict::Suspect < Verdict::Bogus);
        let a = only("HS110(US)", Reading::new(28000.0, 120.0, 0.128, 1.0));
        let j = serde_json::to_value(&a).expect("json");
        assert_eq!(j["verdict"], "bogus");
        assert_eq!(
            j["reasons"][0],
            "28000 W is above 1.25 × 1800 W rated (HS110 US)"
        );
        assert_eq!(j["flagged"], serde_json::json!(["power"]));
        assert!(j.get("reread").is_none());
    }

    #[test]
    fn counts_and_recent_reasons_are_kept_per_meter() {
        let mut m = meter("HS110(EU)");
        m.assess(&eu(60.0), 0);
        m.assess(&Reading::new(60.0, 170.0, 0.4, 10.0), 1_000);
        m.assess(&Reading::new(-1.0, 230.0, 0.4, 10.0), 2_000);
        m.assess(&eu(60.0), 3_000);
        assert_eq!(
            m.counts(),
            Counts {
                ok: 2,
                suspect: 1,
                bogus: 1
            }
        );
        let recent: Vec<(u64, Verdict)> = m
            .recent_reasons()
            .map(|n| (n.t_ms, n.assessment.verdict))
            .collect();
        assert_eq!(
            recent,
            vec![(1_000, Verdict::Suspect), (2_000, Verdict::Bogus)]
        );
        assert_eq!(m.history().len(), 4);
        for i in 0..(RECENT_REASONS as u64 + 5) {
            m.assess(&Reading::new(-1.0, 230.0, 0.4, 10.0), 4_000 + i);
        }
        assert_eq!(m.recent_reasons().count(), RECENT_REASONS);
    }

    #[test]
    fn daily_energy_cannot_exceed_the_rating_over_the_day() {
        let us = limits_for("HS110(US)");
        assert_eq!(check_energy(&us, 43.2, 24.0), None);
        let r = check_energy(&us, 45.0, 24.0).expect("too much");
        assert_eq!(r.severity, Verdict::Bogus);
        assert_eq!(
            r.text,
            "45.000 kWh in 24 h is more than 1800 W rated can draw (HS110 US)"
        );
        assert_eq!(check_energy(&limits_for("HS110(EU)"), 45.0, 24.0), None);
        assert_eq!(
            check_energy(&us, -1.0, 24.0).map(|r| r.rule),
            Some(Rule::Negative)
        );
        assert_eq!(
            check_energy(&us, f64::NAN, 24.0).map(|r| r.rule),
            Some(Rule::NotFinite)
        );
    }

    #[test]
    fn non_finite_values_are_bogus_and_otherwise_ignored() {
        let mut m = meter("HS110(US)");
        let a = m.assess(&Reading::new(f64::NAN, 120.0, 0.5, f64::INFINITY), 0);
        assert_eq!(a.verdict, Verdict::Bogus);
        assert_eq!(rules(&a), vec![Rule::NotFinite, Rule::NotFinite]);
        assert_eq!(a.reasons[0].text, "power is not a finite number");
        assert!(a.is_flagged(Field::Power) && a.is_flagged(Field::Total));
        let e = m.history().latest().expect("stored");
        assert_eq!(e.reading.power_w, None);
        assert_eq!(m.last_assessment(), Some(&a));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_bogus_finding_not_ok() {
        for raw in [
            serde_json::json!({"power": "28000", "voltage": 120.0, "current": 0.2, "total": 1.0}),
            serde_json::json!({"power": null, "voltage": 120.0}),
            serde_json::json!({"power": true, "voltage": 120.0}),
            serde_json::json!({"power_mw": "28000000", "voltage_mv": 120000}),
        ] {
            let rt = Realtime::from_result(&raw).expect("read");
            let a = meter("HS110(US)").assess_realtime(&rt, 0);
            assert_eq!(a.verdict, Verdict::Bogus, "{raw}");
            assert_eq!(rules(&a), vec![Rule::Unreadable], "{raw}");
            assert!(a.is_flagged(Field::Power));
            assert!(a.reasons[0].text.starts_with("unreadable power"), "{raw}");
        }
        let rt = Realtime::from_result(&serde_json::json!({"power": "28000"})).expect("read");
        assert_eq!(
            meter("HS110(US)").assess_realtime(&rt, 0).reasons[0].text,
            "unreadable power: \"28000\""
        );
    }

    #[test]
    fn strip_total_is_checked_against_the_strip_rating() {
        let limits = limits_for("HS300(US)");
        let mut outlets: Vec<Meter> = (0..6).map(|_| Meter::new(limits.clone())).collect();
        // Six outlets at 400 W each: each fine, 2400 W together is over 1.25 × 1800 W.
        let readings: Vec<Reading> = (0..6).map(|_| us(400.0)).collect();
        let assessed: Vec<Assessment> = outlets
            .iter_mut()
            .zip(&readings)
            .map(|(m, r)| m.assess(r, 0))
            .collect();
        assert!(assessed.iter().all(|a| a.verdict == Verdict::Ok));
        let total = strip_total(&limits, readings.iter().zip(&assessed));
        assert_eq!(total.verdict, Verdict::Bogus);
        assert_eq!(
            total.reasons[0].text,
            "strip total 2400 W is above 1.25 × 1800 W rated (HS300 US)"
        );
        assert!(total.is_flagged(Field::Power));
        // Current is summed too (21 A > 18.75 A).
        assert!(rules(&total).contains(&Rule::StripAboveRatedCurrent));

        // Three outlets at 400 W: fine.
        let total = strip_total(&limits, readings.iter().zip(&assessed).take(3));
        assert_eq!(total.verdict, Verdict::Ok);
    }

    #[test]
    fn a_bogus_outlet_is_reported_on_the_outlet_not_in_the_strip_total() {
        let limits = limits_for("HS300(US)");
        let readings = [us(10.0), Reading::new(28000.0, 120.0, 0.1, 1.0), us(20.0)];
        let assessed: Vec<Assessment> = readings
            .iter()
            .map(|r| Meter::new(limits.clone()).assess(r, 0))
            .collect();
        assert_eq!(assessed[1].verdict, Verdict::Bogus);
        let total = strip_total(&limits, readings.iter().zip(&assessed));
        assert_eq!(total.verdict, Verdict::Ok);
        let names = ["Lamp", "Heater", "TV"];
        let summary = strip_summary(&total, names.iter().copied().zip(&assessed));
        assert_eq!(summary.verdict, Verdict::Bogus);
        assert_eq!(summary.reasons.len(), 1);
        assert_eq!(
            summary.reasons[0].text,
            "outlet \"Heater\": bogus (28000 W is above 1.25 × 1800 W rated (HS300 US))"
        );
        assert!(summary.is_flagged(Field::Power));
    }
}
