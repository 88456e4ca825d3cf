//! The energy history in the fleet model (pure, time and date passed in): which devices are due
//! a history fetch ([`Fleet::history_due`]: first seen, then at most once an hour, and after a
//! counter reset), taking in what a fetch brought ([`Fleet::apply_history`]), and the history
//! as rows, one per device, outlet and day or month ([`rows`], what `plugfleet history`
//! prints).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::fleet::energy::{Date, EnergyHistory, Entry, TodayBase};
use crate::fleet::meter::Meter;
use crate::fleet::model::{Device, Fleet, Link};
use crate::fleet::plausibility::Rule;
use crate::fleet::ratings::Limits;
use crate::fleet::verdict::Verdict;
use crate::protocol::EnergyStat;

/// A device's history is fetched again at most this often …
pub const REFETCH: Duration = Duration::from_secs(3600);
/// … except after a counter reset, when this much after the last fetch is enough.
pub const AFTER_RESET: Duration = Duration::from_secs(60);

/// Fetched lists as the model takes them: by period, the entries or why not (as text).
pub type Lists<P> = Vec<(P, Result<Vec<EnergyStat>, String>)>;

/// A device due a history fetch: its meters (`None` = the plug's own, `Some(id)` = outlets, in
/// order) and the periods to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub key: String,
    pub addr: SocketAddr,
    pub meters: Vec<Option<String>>,
    pub months: Vec<(i32, u32)>,
    pub years: Vec<i32>,
}

/// The periods the charts need: this month and the one before (30 days), this year and the
/// one before (12 months).
pub fn chart_periods(today: Date) -> (Vec<(i32, u32)>, Vec<i32>) {
    let before = Date::month_before(today.year, today.month);
    (
        vec![(today.year, today.month), before],
        vec![today.year, today.year - 1],
    )
}

fn saw_reset(m: Option<&Meter>) -> bool {
    m.and_then(Meter::current)
        .is_some_and(|(_, a)| a.reasons.iter().any(|r| r.rule == Rule::CounterReset))
}

/// The meters of a metered device, in fetch order; empty without a meter.
pub fn metered(d: &Device) -> Vec<Option<String>> {
    if d.has_emeter() != Some(true) {
        return Vec::new();
    }
    if d.is_strip() {
        d.outlets.iter().map(|o| Some(o.id.clone())).collect()
    } else {
        vec![None]
    }
}

/// The history of one meter of `d`.
pub fn history_of<'a>(d: &'a Device, child: Option<&str>) -> Option<&'a EnergyHistory> {
    match child {
        None => Some(&d.energy),
        Some(id) => d.outlets.iter().find(|o| o.id == id).map(|o| &o.energy),
    }
}

/// The live total (kWh) of one meter of `d`.
pub fn live_total(d: &Device, child: Option<&str>) -> Option<f64> {
    let m = match child {
        None => d.meter.as_ref(),
        Some(id) => d.outlets.iter().find(|o| o.id == id)?.meter.as_ref(),
    };
    m?.values()?.total_kwh
}

/// Whether any row of `d` has an energy figure ([`today_and_month`] is `Some` for the device or
/// one of its outlets): the table's energy column is drawn when one has. Asks without building
/// anything — the table checks every device each frame.
pub fn has_energy(d: &Device) -> bool {
    d.outlets.iter().any(|o| !o.energy.is_empty())
        || (!d.energy.is_empty() && !d.is_strip() && d.has_emeter() == Some(true))
}

/// "kWh today / this month" of one row (a plug, an outlet, or a strip as the sum of its
/// outlets), with the worst verdict of that history; `None` before anything was read.
pub fn today_and_month(
    d: &Device,
    child: Option<&str>,
    today: Date,
) -> Option<(f64, f64, Verdict)> {
    let limits = d
        .limits
        .clone()
        .unwrap_or_else(|| crate::fleet::ratings::limits_for(d.model()));
    let meters: Vec<Option<String>> = match child {
        Some(id) => vec![Some(id.to_owned())],
        None => metered(d),
    };
    let mut out: Option<(f64, f64, Verdict)> = None;
    for m in meters {
        let Some(h) = history_of(d, m.as_deref()) else {
            continue;
        };
        if h.is_empty() {
            continue;
        }
        let live = live_total(d, m.as_deref());
        let t = h.today_kwh(today, live).unwrap_or(0.0);
        let mo = h.month_kwh(today, live).unwrap_or(0.0);
        let v = h.summary(&limits).0;
        let acc = out.get_or_insert((0.0, 0.0, Verdict::Ok));
        acc.0 += t;
        acc.1 += mo;
        acc.2 = acc.2.max(v);
    }
    out
}

impl Fleet {
    /// Whether device `key` is due a history fetch now; if so it is marked as asked (so it is
    /// returned once per [`REFETCH`]): metered, answering, and never asked, asked an hour ago,
    /// or showing a counter reset at least [`AFTER_RESET`] after the last ask. Called after
    /// each poll of that device (costs nothing for the others).
    pub fn history_due(&mut self, key: &str, today: Date, now: Instant) -> Option<Due> {
        let d = self.devices.get_mut(key)?;
        if d.link != Link::Online {
            return None;
        }
        // Not metered: `metered(d)` is empty (asked without building it, after every poll).
        if d.has_emeter() != Some(true) {
            return None;
        }
        let since = d.energy.requested.map(|t| now.saturating_duration_since(t));
        let reset =
            || saw_reset(d.meter.as_ref()) || d.outlets.iter().any(|o| saw_reset(o.meter.as_ref()));
        let due = match since {
            None => true,
            Some(s) => s >= REFETCH || (s >= AFTER_RESET && reset()),
        };
        if !due {
            return None;
        }
        let meters = metered(d);
        d.energy.requested = Some(now);
        let (months, years) = chart_periods(today);
        Some(Due {
            key: d.key.clone(),
            addr: d.addr,
            meters,
            months,
            years,
        })
    }

    /// Remembers the clock `key`'s plug told (with its energy history) at Unix time `unix_s`.
    /// When that moves the plug's "this month" (its days were asked by the month it was
    /// thought to be in), its history is due again at the next poll, once.
    pub fn learn_clock(
        &mut self,
        key: &str,
        clock: crate::protocol::calendar::DeviceClock,
        unix_s: i64,
    ) {
        let Some(d) = self.devices.get_mut(key) else {
            return;
        };
        let month = |date: Date| (date.year, date.month);
        if d.clock != Some(clock) && month(d.date_at(unix_s)) != month(clock.date_at(unix_s)) {
            d.energy.requested = None;
        }
        d.clock = Some(clock);
    }

    /// Takes in one meter's fetch: its day lists (by (year, month)) and month lists (by year),
    /// each the plug's entries or why they could not be read. Today's figure is remembered with
    /// the meter's total at this moment, so today's bar grows with the live total.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_history(
        &mut self,
        key: &str,
        addr: SocketAddr,
        child: Option<&str>,
        days: Lists<(i32, u32)>,
        months: Lists<i32>,
        today: Date,
        now: Instant,
    ) {
        let Some(d) = self.devices.get_mut(key) else {
            return;
        };
        if d.addr != addr {
            return;
        }
        let total = live_total(d, child);
        let h = match child {
            None => &mut d.energy,
            Some(id) => match d.outlets.iter_mut().find(|o| o.id == id) {
                Some(o) => &mut o.energy,
                None => return,
            },
        };
        let mut error = None;
        let mut any = false;
        for ((y, m), r) in days {
            match r {
                Ok(list) => {
                    h.set_days(y, m, &list);
                    any = true;
                    if (y, m) == (today.year, today.month) {
                        h.today = Some(TodayBase {
                            date: today,
                            kwh: h.days.get(&today).copied().unwrap_or(0.0),
                            total_kwh: total,
                        });
                    }
                }
                Err(e) => error = error.or(Some(e)),
            }
        }
        for (y, r) in months {
            match r {
                Ok(list) => {
                    h.set_months(y, &list);
                    h.months_as_of = Some(today);
                    any = true;
                }
                Err(e) => error = error.or(Some(e)),
            }
        }
        if any {
            h.fetched = Some(now);
        }
        h.error = error;
        d.refresh();
    }

    /// After a successful erase of `key`'s statistics (of `child`, or every meter): the
    /// history is forgotten and fetched again on the next poll.
    pub fn history_erased(&mut self, key: &str, child: Option<&str>) {
        let Some(d) = self.devices.get_mut(key) else {
            return;
        };
        match child {
            Some(id) => {
                if let Some(o) = d.outlets.iter_mut().find(|o| o.id == id) {
                    o.energy.clear();
                }
            }
            None => {
                for o in &mut d.outlets {
                    o.energy.clear();
                }
            }
        }
        d.energy.clear();
        d.refresh();
    }
}

/// The flagged days and months of one meter's history as `--record` findings (JSON lines):
/// `{"rule", "text", "evidence": {"kind": "energy-history", "period", "kwh", "verdict",
/// "reasons"}}`, one per flagged entry, the rule of its worst reason.
pub fn findings_json(h: &EnergyHistory, limits: &Limits) -> Vec<serde_json::Value> {
    h.judged_days(limits, None)
        .into_iter()
        .chain(h.judged_months(limits, None))
        .filter(|e| e.verdict > Verdict::Ok)
        .map(|e| {
            let worst = e.reasons.iter().max_by_key(|r| r.severity);
            serde_json::json!({
                "rule": worst.map(|r| r.rule.name()).unwrap_or_default(),
                "text": format!("energy history {}: {}", e.label(), e.texts().join("; ")),
                "evidence": {
                    "kind": "energy-history",
                    "period": e.label(),
                    "kwh": e.kwh,
                    "verdict": e.verdict,
                    "reasons": e.texts(),
                },
            })
        })
        .collect()
}

/// One day or month of one meter's history, as `plugfleet history` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    pub ip: String,
    pub mac: String,
    /// A strip outlet's full id; `null` for a plug.
    pub child_id: Option<String>,
    pub year: i32,
    pub month: u32,
    /// `null` for a month.
    pub day: Option<u32>,
    pub kwh: f64,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

/// What to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The days of one month.
    Days(i32, u32),
    /// The months of one year.
    Months(i32),
}

fn row(d: &Device, child: Option<&str>, e: Entry) -> HistoryRow {
    HistoryRow {
        ip: d.addr.ip().to_string(),
        mac: d.mac().to_owned(),
        child_id: child.map(str::to_owned),
        year: e.year,
        month: e.month,
        day: e.day,
        kwh: e.kwh,
        verdict: e.verdict,
        reasons: e.texts(),
    }
}

/// The rows of one device: per meter (outlets in order), its days or months, judged against
/// the device's rating.
pub fn rows(d: &Device, limits: &Limits, what: Listing) -> Vec<HistoryRow> {
    let mut out = Vec::new();
    for child in metered(d) {
        let Some(h) = history_of(d, child.as_deref()) else {
            continue;
        };
        let entries = match what {
            Listing::Days(y, m) => h.judged_days(limits, Some((y, m))),
            Listing::Months(y) => h.judged_months(limits, Some(y)),
        };
        out.extend(entries.into_iter().map(|e| row(d, child.as_deref(), e)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::identity::Names;
    use crate::fleet::model::{Poll, PollRead, SeenInfo, Sighting};
    use crate::fleet::ratings::Overrides;
    use crate::protocol::{Realtime, SysInfo};

    fn sys() -> SysInfo {
        SysInfo::from_result(&serde_json::json!({
            "model": "HS110(US)", "hw_ver": "1.0", "sw_ver": "1.2.6 Build 200727 Rel.121701",
            "mac": "50:C7:BF:00:0A:01", "deviceId": "E1", "alias": "a", "feature": "TIM:ENE",
            "relay_state": 1,
        }))
        .expect("sysinfo")
    }

    /// A fleet that has seen the metered plug `E1` (not polled yet).
    fn seen(t0: Instant) -> Fleet {
        let mut f = Fleet::new(t0);
        f.observe(
            Sighting {
                ip: "127.0.10.1".parse().expect("ip"),
                port: 9999,
                found_by: "host".into(),
                info: SeenInfo::Legacy(Box::new(sys())),
            },
            &Names::default(),
            t0,
        );
        f
    }

    fn poll(f: &mut Fleet, total: f64, now: Instant) {
        let rt = Realtime::from_result(&serde_json::json!({
            "power": 100.0, "voltage": 120.0, "current": 0.9, "total": total,
        }))
        .expect("rt");
        let addr = "127.0.10.1:9999".parse().expect("addr");
        f.apply_poll(
            Poll {
                key: "E1".into(),
                addr,
                misses: 0,
                outcome: Ok(PollRead {
                    sysinfo: sys(),
                    realtime: Some(Ok(rt)),
                    outlets: Vec::new(),
                }),
                refusal: None,
            },
            &Overrides::default(),
            &Names::default(),
            now,
        );
    }

    fn day(y: i64, m: i64, d: i64, kwh: f64) -> EnergyStat {
        EnergyStat {
            year: y,
            month: m,
            day: Some(d),
            energy_kwh: kwh,
        }
    }

    #[test]
    fn has_energy_says_what_today_and_month_says_of_the_device_or_an_outlet() {
        let t0 = Instant::now();
        let today = Date::new(2026, 12, 1);
        let any_row = |d: &Device| {
            std::iter::once(None)
                .chain(d.outlets.iter().map(|o| Some(o.id.as_str())))
                .any(|o| today_and_month(d, o, today).is_some())
        };
        let mut f = seen(t0);
        poll(&mut f, 10.0, t0);
        let d = f.get("E1").expect("d").clone();
        assert!(!has_energy(&d) && !any_row(&d), "nothing fetched yet");
        let mut with = d.clone();
        with.energy.days.insert(today, 0.5);
        assert!(has_energy(&with) && any_row(&with));
        // A device without a meter shows no figure of its own, whatever it keeps.
        let mut unmetered = with.clone();
        unmetered.meter = None;
        if let Some(s) = unmetered.sysinfo.as_mut() {
            s.feature = Some("TIM".into());
        }
        assert_eq!(has_energy(&unmetered), any_row(&unmetered));
        // A strip: only its outlets' histories count.
        let mut strip = with.clone();
        strip.outlets.push(crate::fleet::model::Outlet {
            id: "E100".into(),
            ..Default::default()
        });
        assert_eq!(has_energy(&strip), any_row(&strip));
        assert!(!has_energy(&strip), "a strip's own history is not a row's");
        strip.outlets[0].energy.days.insert(today, 0.1);
        assert!(has_energy(&strip) && any_row(&strip));
    }

    #[test]
    fn a_clock_that_moves_the_plug_s_month_makes_its_history_due_again_once() {
        use crate::protocol::calendar::DeviceClock;
        let t0 = Instant::now();
        let mut f = seen(t0);
        poll(&mut f, 10.0, t0);
        // 2026-11-30 20:00 UTC: in Tokyo (+9) it is already December.
        let unix = Date::new(2026, 11, 30).days() * 86_400 + 20 * 3600;
        let utc_today = Date::from_unix(unix);
        let due = f.history_due("E1", utc_today, t0).expect("first seen");
        assert_eq!(due.months, vec![(2026, 11), (2026, 10)]);
        let tokyo = DeviceClock {
            utc_offset_s: 9 * 3600,
        };
        f.learn_clock("E1", tokyo, unix);
        let d = f.get("E1").expect("d");
        let today = d.date_at(unix);
        assert_eq!(today, Date::new(2026, 12, 1));
        let again = f.history_due("E1", today, t0).expect("due again: December");
        assert_eq!(again.months, vec![(2026, 12), (2026, 11)]);
        // Told again, nothing moves: not due before the hour.
        f.learn_clock("E1", tokyo, unix);
        assert!(f.history_due("E1", today, t0).is_none());
        // A zone in the same month changes nothing either.
        let mut g = seen(t0);
        poll(&mut g, 10.0, t0);
        assert!(g.history_due("E1", utc_today, t0).is_some());
        g.learn_clock(
            "E1",
            DeviceClock {
                utc_offset_s: -3600,
            },
            unix,
        );
        assert!(g.history_due("E1", utc_today, t0).is_none());
    }

    #[test]
    fn a_metered_plug_is_due_when_first_seen_then_hourly_and_after_a_reset() {
        let t0 = Instant::now();
        let mut f = seen(t0);
        let today = Date::new(2026, 12, 1);
        assert!(
            f.history_due("E1", today, t0).is_none(),
            "not answering yet"
        );
        poll(&mut f, 10.0, t0);
        let due = f.history_due("E1", today, t0).expect("due when first seen");
        assert_eq!(due.meters, vec![None]);
        assert_eq!(due.months, vec![(2026, 12), (2026, 11)]);
        assert_eq!(due.years, vec![2026, 2025]);
        let t1 = t0 + Duration::from_secs(600);
        poll(&mut f, 10.1, t1);
        assert!(
            f.history_due("E1", today, t1).is_none(),
            "asked 10 minutes ago"
        );
        // The counter fell back to 0: a reset, fetched again.
        let t2 = t1 + Duration::from_secs(5);
        poll(&mut f, 0.0, t2);
        assert!(f.history_due("E1", today, t2).is_some());
        let t3 = t2 + Duration::from_secs(5);
        poll(&mut f, 0.01, t3);
        assert!(f.history_due("E1", today, t3).is_none());
        let t4 = t2 + REFETCH;
        poll(&mut f, 0.02, t4);
        assert!(f.history_due("E1", today, t4).is_some(), "an hour later");

        // What the fetch brought, judged in rows; today's figure grows with the live total.
        let addr = due.addr;
        let list = vec![day(2026, 12, 1, 0.5)];
        f.apply_history(
            "E1",
            addr,
            None,
            vec![
                ((2026, 12), Ok(list)),
                ((2026, 11), Err("timed out".into())),
            ],
            vec![(2026, Ok(Vec::new()))],
            today,
            t4,
        );
        let d = f.get("E1").expect("d");
        assert_eq!(d.energy.error.as_deref(), Some("timed out"));
        assert_eq!(d.energy.today_kwh(today, Some(0.02)), Some(0.5));
        assert_eq!(d.energy.today_kwh(today, Some(0.12)), Some(0.6));
        let r = rows(
            d,
            &crate::fleet::ratings::limits_for("HS110(US)"),
            Listing::Days(2026, 12),
        );
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].day, r[0].kwh, r[0].verdict),
            (Some(1), 0.5, Verdict::Ok)
        );
        assert_eq!(r[0].mac, "50:C7:BF:00:0A:01");
        f.history_erased("E1", None);
        assert!(f.get("E1").expect("d").energy.is_empty());
        assert!(
            f.history_due("E1", today, t4).is_some(),
            "fetched again after an erase"
        );
    }
}
