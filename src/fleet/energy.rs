//! The energy history a metered plug (or strip outlet) keeps itself — kWh per day of a month
//! (`emeter.get_daystat`) and per month of a year (`emeter.get_monthstat`) — and its judgement
//! (pure; issue 16).
//!
//! Rules, each a [`Reason`] in the vocabulary of the reading findings (same glyphs, same
//! `reasons` JSON):
//! - every day and month through [`check_energy`]: not finite, negative, or more than the rating
//!   can draw in that period (24 h, or the days of the month × 24 h) — bogus;
//! - a month whose fetched days do not add up to its month figure beyond rounding
//!   ([`SUM_SLACK_KWH`] + [`ROUNDING_KWH`] per day) — suspect;
//! - a day more than [`GLITCH_FACTOR`] × the median day of its month and above
//!   [`GLITCH_MIN_KWH`] — suspect ("glitch day?").
//!
//! Dates are the plugs' calendar days (their local clock: [`crate::protocol::calendar::DeviceClock`]);
//! "today" is passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::fleet::plausibility::{Reason, Rule, check_energy};
use crate::fleet::ratings::Limits;
use crate::fleet::reading::Field;
use crate::fleet::verdict::Verdict;
use crate::protocol::EnergyStat;
pub use crate::protocol::calendar::{Date, days_in_month};

/// A day above this multiple of its month's median day …
pub const GLITCH_FACTOR: f64 = 10.0;
/// … and above this many kWh is suspect.
pub const GLITCH_MIN_KWH: f64 = 1.0;
/// Days may miss their month figure by this much (kWh) plus [`ROUNDING_KWH`] per day.
pub const SUM_SLACK_KWH: f64 = 0.01;
/// Rounding of one entry: 1 Wh (`energy_wh`), 0.001 kWh (`energy`).
pub const ROUNDING_KWH: f64 = 0.001;
/// Days drawn in the day chart.
pub const CHART_DAYS: usize = 30;
/// Months drawn in the month chart.
pub const CHART_MONTHS: usize = 12;

/// The figure of today as it was fetched, with the meter's total at that moment: today's bar
/// grows with the live total from there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TodayBase {
    pub date: Date,
    pub kwh: f64,
    /// The meter's `total` (kWh) when the day list was fetched, if a reading was known.
    pub total_kwh: Option<f64>,
}

/// What a plug (or outlet) said about its energy history, as fetched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnergyHistory {
    /// kWh per day.
    pub days: BTreeMap<Date, f64>,
    /// kWh per (year, month).
    pub months: BTreeMap<(i32, u32), f64>,
    /// The months whose day list was fetched (the sum rule applies only to them).
    pub day_months: BTreeSet<(i32, u32)>,
    /// When this month's days were last fetched.
    pub fetched: Option<Instant>,
    /// When a fetch was last asked for (a strip's on the device, not the outlets).
    pub requested: Option<Instant>,
    /// Today's figure at the last fetch, for the live bar.
    pub today: Option<TodayBase>,
    /// Why the last fetch failed, if it did.
    pub error: Option<String>,
    /// The day the month lists were fetched on: that month is judged over its days so far.
    pub months_as_of: Option<Date>,
}

/// One judged day or month.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub year: i32,
    pub month: u32,
    /// `None` for a month.
    pub day: Option<u32>,
    pub kwh: f64,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
}

impl Entry {
    fn new(year: i32, month: u32, day: Option<u32>, kwh: f64, reasons: Vec<Reason>) -> Self {
        let verdict = reasons
            .iter()
            .map(|r| r.severity)
            .max()
            .unwrap_or(Verdict::Ok);
        Self {
            year,
            month,
            day,
            kwh,
            verdict,
            reasons,
        }
    }

    /// `2026-12-05` or `2026-12`.
    pub fn label(&self) -> String {
        match self.day {
            Some(d) => format!("{:04}-{:02}-{d:02}", self.year, self.month),
            None => format!("{:04}-{:02}", self.year, self.month),
        }
    }

    pub fn texts(&self) -> Vec<String> {
        self.reasons.iter().map(|r| r.text.clone()).collect()
    }
}

fn reason(rule: Rule, text: String) -> Reason {
    Reason {
        rule,
        field: Some(Field::Total),
        severity: Verdict::Suspect,
        text,
    }
}

fn kwh(v: f64) -> String {
    Field::Total.fmt(v)
}

/// The median of `v` (0 for none).
fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return 0.0;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The findings on one day of a month whose days are `month_days`.
pub fn judge_day(limits: &Limits, kwh_day: f64, month_days: &[f64]) -> Vec<Reason> {
    let mut out: Vec<Reason> = check_energy(limits, kwh_day, 24.0).into_iter().collect();
    let med = median(month_days);
    if kwh_day.is_finite() && kwh_day > GLITCH_MIN_KWH && kwh_day > GLITCH_FACTOR * med {
        out.push(reason(
            Rule::GlitchDay,
            format!(
                "glitch day? {} is more than {}× this month's median day ({})",
                kwh(kwh_day),
                GLITCH_FACTOR,
                kwh(med)
            ),
        ));
    }
    out
}

/// The findings on one month: its figure against the rating over its days (the days so far
/// when `so_far` is the day of the month it was read on), and against the sum of its days when
/// they were fetched (`days`).
pub fn judge_month(
    limits: &Limits,
    (year, month, so_far): (i32, u32, Option<u32>),
    kwh_month: f64,
    days: Option<&[f64]>,
) -> Vec<Reason> {
    let n = days_in_month(year, month);
    let hours = f64::from(so_far.map_or(n, |d| d.clamp(1, n.max(1)))) * 24.0;
    let mut out: Vec<Reason> = check_energy(limits, kwh_month, hours).into_iter().collect();
    if let Some(days) = days
        && kwh_month.is_finite()
    {
        let sum: f64 = days.iter().copied().filter(|x| x.is_finite()).sum();
        let slack = SUM_SLACK_KWH + ROUNDING_KWH * days.len() as f64;
        if (sum - kwh_month).abs() > slack {
            out.push(reason(
                Rule::DaysNotMonth,
                format!(
                    "the days add up to {}, the month says {}",
                    kwh(sum),
                    kwh(kwh_month)
                ),
            ));
        }
    }
    out
}

impl EnergyHistory {
    /// Replaces the days of `year`-`month` with a `get_daystat` reply's list (entries of another
    /// month or with an impossible day are ignored).
    pub fn set_days(&mut self, year: i32, month: u32, list: &[EnergyStat]) {
        self.days
            .retain(|d, _| !(d.year == year && d.month == month));
        let last = days_in_month(year, month);
        for e in list {
            let Some(day) = e.day else { continue };
            if e.year != i64::from(year) || e.month != i64::from(month) {
                continue;
            }
            let Ok(day) = u32::try_from(day) else {
                continue;
            };
            if (1..=last).contains(&day) {
                self.days.insert(Date::new(year, month, day), e.energy_kwh);
            }
        }
        self.day_months.insert((year, month));
    }

    /// Replaces the months of `year` with a `get_monthstat` reply's list.
    pub fn set_months(&mut self, year: i32, list: &[EnergyStat]) {
        self.months.retain(|(y, _), _| *y != year);
        for e in list {
            if e.year != i64::from(year) {
                continue;
            }
            if let Ok(m) = u32::try_from(e.month)
                && (1..=12).contains(&m)
            {
                self.months.insert((year, m), e.energy_kwh);
            }
        }
    }

    /// Forgets everything (after an erase).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn is_empty(&self) -> bool {
        self.days.is_empty() && self.months.is_empty()
    }

    fn month_days(&self, year: i32, month: u32) -> Vec<f64> {
        self.days
            .range(Date::new(year, month, 1)..=Date::new(year, month, 31))
            .map(|(_, v)| *v)
            .collect()
    }

    /// Every fetched day of `year`-`month` (every month when `None`), judged, oldest first.
    pub fn judged_days(&self, limits: &Limits, only: Option<(i32, u32)>) -> Vec<Entry> {
        let mut out = Vec::new();
        let months: BTreeSet<(i32, u32)> = self.days.keys().map(|d| (d.year, d.month)).collect();
        for (y, m) in months {
            if only.is_some_and(|o| o != (y, m)) {
                continue;
            }
            let all = self.month_days(y, m);
            for (d, v) in self.days.range(Date::new(y, m, 1)..=Date::new(y, m, 31)) {
                out.push(Entry::new(
                    y,
                    m,
                    Some(d.day),
                    *v,
                    judge_day(limits, *v, &all),
                ));
            }
        }
        out
    }

    /// Every fetched month of `year` (every year when `None`), judged, oldest first.
    pub fn judged_months(&self, limits: &Limits, year: Option<i32>) -> Vec<Entry> {
        self.months
            .iter()
            .filter(|((y, _), _)| year.is_none_or(|want| want == *y))
            .map(|((y, m), v)| {
                let days = self
                    .day_months
                    .contains(&(*y, *m))
                    .then(|| self.month_days(*y, *m));
                // This month is judged over the days it has had so far.
                let so_far = self
                    .months_as_of
                    .or(self.today.map(|b| b.date))
                    .filter(|d| (d.year, d.month) == (*y, *m))
                    .map(|d| d.day);
                Entry::new(
                    *y,
                    *m,
                    None,
                    *v,
                    judge_month(limits, (*y, *m, so_far), *v, days.as_deref()),
                )
            })
            .collect()
    }

    /// The worst day or month, and how many are flagged.
    pub fn summary(&self, limits: &Limits) -> (Verdict, usize) {
        let all: Vec<Entry> = self
            .judged_days(limits, None)
            .into_iter()
            .chain(self.judged_months(limits, None))
            .collect();
        let worst = all.iter().map(|e| e.verdict).max().unwrap_or(Verdict::Ok);
        let n = all.iter().filter(|e| e.verdict > Verdict::Ok).count();
        (worst, n)
    }

    /// Today's kWh: the fetched figure plus what the live total counted since (once the day's
    /// figure is known; after a counter reset, the whole live total is new).
    pub fn today_kwh(&self, today: Date, live_total: Option<f64>) -> Option<f64> {
        let base = self.today.filter(|b| b.date == today)?;
        let extra = match (base.total_kwh, live_total) {
            (Some(at), Some(now)) if now >= at => now - at,
            (Some(_), Some(now)) => now.max(0.0),
            _ => 0.0,
        };
        Some(base.kwh + extra)
    }

    /// This month's kWh: the fetched month figure (or the sum of its days), with today's bar
    /// grown as in [`Self::today_kwh`].
    pub fn month_kwh(&self, today: Date, live_total: Option<f64>) -> Option<f64> {
        let fetched = self
            .months
            .get(&(today.year, today.month))
            .copied()
            .or_else(|| {
                self.day_months
                    .contains(&(today.year, today.month))
                    .then(|| self.month_days(today.year, today.month).iter().sum())
            })?;
        let grown = match (self.today_kwh(today, live_total), self.today) {
            (Some(now), Some(b)) if b.date == today => now - b.kwh,
            _ => 0.0,
        };
        Some(fetched + grown)
    }

    /// The last [`CHART_DAYS`] days up to `today`: (date, kWh, verdict); a day without data
    /// is 0 and ok, today's bar follows the live total.
    pub fn chart_days(
        &self,
        limits: &Limits,
        today: Date,
        live_total: Option<f64>,
    ) -> Vec<(Date, f64, Verdict)> {
        let judged: BTreeMap<Date, Verdict> = self
            .judged_days(limits, None)
            .into_iter()
            .filter_map(|e| Some((Date::new(e.year, e.month, e.day?), e.verdict)))
            .collect();
        let t = today.days();
        (0..CHART_DAYS as i64)
            .rev()
            .map(|back| {
                let d = Date::from_days(t - back);
                let mut v = self.days.get(&d).copied().unwrap_or(0.0);
                if d == today
                    && let Some(live) = self.today_kwh(today, live_total)
                {
                    v = v.max(live);
                }
                (d, v, judged.get(&d).copied().unwrap_or(Verdict::Ok))
            })
            .collect()
    }

    /// The last [`CHART_MONTHS`] months up to this one: ((year, month), kWh, verdict).
    pub fn chart_months(
        &self,
        limits: &Limits,
        today: Date,
        live_total: Option<f64>,
    ) -> Vec<((i32, u32), f64, Verdict)> {
        let judged: BTreeMap<(i32, u32), Verdict> = self
            .judged_months(limits, None)
            .into_iter()
            .map(|e| ((e.year, e.month), e.verdict))
            .collect();
        let mut ym = (today.year, today.month);
        let mut out = Vec::with_capacity(CHART_MONTHS);
        for _ in 0..CHART_MONTHS {
            let mut v = self.months.get(&ym).copied().unwrap_or(0.0);
            if ym == (today.year, today.month)
                && let Some(live) = self.month_kwh(today, live_total)
            {
                v = v.max(live);
            }
            let verdict = judged.get(&ym).copied().unwrap_or(Verdict::Ok);
            out.push((ym, v, verdict));
            ym = Date::month_before(ym.0, ym.1);
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::ratings::limits_for;

    fn stat(y: i64, m: i64, d: Option<i64>, kwh: f64) -> EnergyStat {
        EnergyStat {
            year: y,
            month: m,
            day: d,
            energy_kwh: kwh,
        }
    }

    #[test]
    fn a_glitch_day_is_more_than_ten_times_the_median_and_above_one_kwh() {
        let us = limits_for("HS110(US)");
        let month = [0.5, 0.5, 0.5];
        // 10× the median exactly: not more.
        assert!(judge_day(&us, 5.0, &[0.5, 0.5, 0.5, 5.0]).is_empty());
        let r = judge_day(&us, 5.001, &[0.5, 0.5, 0.5, 5.001]);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].rule, r[0].severity),
            (Rule::GlitchDay, Verdict::Suspect)
        );
        assert_eq!(
            r[0].text,
            "glitch day? 5.001 kWh is more than 10× this month's median day (0.500 kWh)"
        );
        // Above 10× but not above 1 kWh.
        assert!(judge_day(&us, 1.0, &[0.05, 0.05, 1.0]).is_empty());
        let r = judge_day(&us, 1.01, &[0.05, 0.05, 1.01]);
        assert_eq!(r.len(), 1);
        // Median of an even count is the mean of the middle two.
        assert_eq!(median(&[1.0, 3.0, 100.0, 2.0]), 2.5);
        assert_eq!(median(&month), 0.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn days_and_months_are_checked_against_the_rating_over_their_period() {
        let us = limits_for("HS110(US)");
        // 1800 W × 24 h = 43.2 kWh (+ the 0.01 kWh slack of check_energy).
        assert!(judge_day(&us, 43.2, &[43.2]).is_empty());
        let r = judge_day(&us, 43.22, &[43.22]);
        assert_eq!(
            (r[0].rule, r[0].severity),
            (Rule::EnergyAboveRating, Verdict::Bogus)
        );
        let r = judge_day(&us, -0.001, &[1.0]);
        assert_eq!(r[0].rule, Rule::Negative);
        let r = judge_day(&us, f64::NAN, &[1.0]);
        assert_eq!(r.len(), 1, "not finite, and no glitch rule on NaN");
        assert_eq!(r[0].rule, Rule::NotFinite);
        // A 30-day month: 1800 W × 720 h = 1296 kWh; February 2026 has 28 days (1209.6 kWh).
        assert!(judge_month(&us, (2026, 11, None), 1296.0, None).is_empty());
        assert_eq!(
            judge_month(&us, (2026, 11, None), 1296.02, None)[0].rule,
            Rule::EnergyAboveRating
        );
        assert_eq!(
            judge_month(&us, (2026, 2, None), 1296.0, None)[0].rule,
            Rule::EnergyAboveRating
        );
        assert!(judge_month(&us, (2026, 2, None), 1209.6, None).is_empty());
        // This month so far: 3 days of 1800 W are 129.6 kWh.
        assert!(judge_month(&us, (2026, 12, Some(3)), 129.6, None).is_empty());
        assert_eq!(
            judge_month(&us, (2026, 12, Some(3)), 129.62, None)[0].rule,
            Rule::EnergyAboveRating
        );
    }

    #[test]
    fn days_must_add_up_to_their_month_within_rounding() {
        let us = limits_for("HS110(US)");
        let days = [1.0, 1.0, 1.0];
        // Slack: 0.01 + 3 × 0.001 = 0.013 kWh.
        assert!(judge_month(&us, (2026, 11, None), 3.013, Some(&days)).is_empty());
        assert!(judge_month(&us, (2026, 11, None), 2.987, Some(&days)).is_empty());
        let r = judge_month(&us, (2026, 11, None), 3.014, Some(&days));
        assert_eq!(
            (r[0].rule, r[0].severity),
            (Rule::DaysNotMonth, Verdict::Suspect)
        );
        assert_eq!(
            r[0].text,
            "the days add up to 3.000 kWh, the month says 3.014 kWh"
        );
        assert_eq!(
            judge_month(&us, (2026, 11, None), 2.986, Some(&days))[0].rule,
            Rule::DaysNotMonth
        );
        // Without the month's days there is nothing to add up.
        assert!(judge_month(&us, (2026, 11, None), 9.0, None).is_empty());
    }

    #[test]
    fn the_history_judges_every_entry_and_charts_the_last_days_and_months() {
        let us = limits_for("HS110(US)");
        let mut h = EnergyHistory::default();
        let mut days: Vec<EnergyStat> = (1..=5).map(|d| stat(2026, 12, Some(d), 1.0)).collect();
        days[2].energy_kwh = 600.0;
        // Another month's entry and an impossible day are ignored.
        days.push(stat(2026, 11, Some(3), 9.0));
        days.push(stat(2026, 12, Some(32), 9.0));
        h.set_days(2026, 12, &days);
        h.set_months(
            2026,
            &[stat(2026, 11, None, 30.0), stat(2026, 12, None, 604.0)],
        );
        let judged = h.judged_days(&us, Some((2026, 12)));
        assert_eq!(judged.len(), 5);
        let bad = &judged[2];
        assert_eq!(
            (bad.label(), bad.verdict),
            ("2026-12-03".into(), Verdict::Bogus)
        );
        let rules: Vec<Rule> = bad.reasons.iter().map(|r| r.rule).collect();
        assert_eq!(rules, vec![Rule::EnergyAboveRating, Rule::GlitchDay]);
        assert!(judged.iter().filter(|e| e.verdict == Verdict::Ok).count() == 4);
        let months = h.judged_months(&us, Some(2026));
        assert_eq!(months.len(), 2);
        assert!(
            months.iter().all(|m| m.verdict == Verdict::Ok),
            "{months:?}"
        );
        assert_eq!(h.summary(&us), (Verdict::Bogus, 1));

        let today = Date::new(2026, 12, 5);
        h.today = Some(TodayBase {
            date: today,
            kwh: 1.0,
            total_kwh: Some(10.0),
        });
        assert_eq!(h.today_kwh(today, Some(10.5)), Some(1.5));
        assert_eq!(h.today_kwh(today, Some(0.25)), Some(1.25), "after a reset");
        assert_eq!(h.today_kwh(Date::new(2026, 12, 6), Some(10.5)), None);
        assert_eq!(h.month_kwh(today, Some(10.5)), Some(604.5));
        let chart = h.chart_days(&us, today, Some(10.5));
        assert_eq!(chart.len(), CHART_DAYS);
        assert_eq!(chart[CHART_DAYS - 1], (today, 1.5, Verdict::Ok));
        assert_eq!(chart[CHART_DAYS - 3].1, 600.0);
        assert_eq!(chart[CHART_DAYS - 3].2, Verdict::Bogus);
        assert_eq!(chart[0].0, Date::new(2026, 11, 6));
        assert_eq!(chart[0].1, 0.0);
        let months = h.chart_months(&us, today, Some(10.5));
        assert_eq!(months.len(), CHART_MONTHS);
        assert_eq!(months[11], ((2026, 12), 604.5, Verdict::Bogus));
        assert_eq!(months[10], ((2026, 11), 30.0, Verdict::Ok));
        assert_eq!(months[0].0, (2026, 1));

        // A month whose days were fetched and do not add up.
        h.set_months(2026, &[stat(2026, 12, None, 5.0)]);
        let m = h.judged_months(&us, None);
        assert_eq!(m[0].reasons[0].rule, Rule::DaysNotMonth);
        h.clear();
        assert!(h.is_empty());
    }
}
