//! The quiet rules (issue 15, [`crate::fleet::quiet`]) wired into the fleet model: every meter's
//! findings after its poll ([`crate::fleet::meter::Meter::judge_quiet`]) and the fleet-voltage
//! rule once per poll round ([`Fleet::judge_voltages`]) are merged into the device's judgement,
//! so every view (TUI, `status`, `--record`, `/metrics`) shows the same reasons.

use std::time::{Duration, Instant};

use crate::fleet::model::{Device, Fleet, Link};
use crate::fleet::quiet::{self, Finding, VoltagePoint};

/// Every quiet finding of the device: its meters' and the fleet-voltage one.
pub fn findings(d: &Device) -> impl Iterator<Item = &Finding> {
    d.meters()
        .flat_map(|m| m.quiet.iter())
        .chain(d.voltage_finding.iter())
}

/// Quiet findings with their evidence, as JSON values.
pub fn findings_json<'a>(fs: impl IntoIterator<Item = &'a Finding>) -> Vec<serde_json::Value> {
    fs.into_iter()
        .filter_map(|f| serde_json::to_value(f).ok())
        .collect()
}

impl Fleet {
    /// [`Fleet::judge_voltages`] when a poll round (`interval`) has passed since it last ran:
    /// the TUI's polls arrive one device at a time, this keeps the fleet rule once per round.
    pub fn judge_voltages_due(&mut self, now: Instant, interval: Duration) {
        if self
            .voltages_at
            .is_none_or(|at| now.saturating_duration_since(at) >= interval)
        {
            self.judge_voltages(now);
        }
    }

    /// Voltage against the fleet, once per poll round (and in a one-shot `status`): one point
    /// per online metered device (a strip's first read outlet, not every outlet), compared
    /// within its region. Each device's finding replaces the last round's in its judgement.
    pub fn judge_voltages(&mut self, now: Instant) {
        self.voltages_at = Some(now);
        let now_ms = u64::try_from(now.saturating_duration_since(self.started).as_millis())
            .unwrap_or(u64::MAX);
        let mut keys: Vec<&String> = Vec::new();
        let mut points: Vec<VoltagePoint<'_>> = Vec::new();
        let mut order: Vec<&Device> = self.devices.values().collect();
        order.sort_by(|a, b| a.key.cmp(&b.key));
        for d in order {
            if !matches!(d.link, Link::Online) {
                continue;
            }
            let Some((at_ms, voltage_v)) = d.meters().find_map(|m| {
                m.no_reading().is_none().then_some(())?;
                let s = m.samples.back()?;
                Some((s.at_ms, s.reading.voltage_v?))
            }) else {
                continue;
            };
            keys.push(&d.key);
            points.push(VoltagePoint {
                region: d.sysinfo.as_ref().and_then(|s| s.region()),
                at_ms,
                voltage_v,
            });
        }
        let found = quiet::fleet_voltages(&points, now_ms, &self.rules);
        let keys: Vec<String> = keys.into_iter().cloned().collect();
        let mut by_key: Vec<(String, Finding)> = found
            .into_iter()
            .filter_map(|(i, f)| Some((keys.get(i)?.clone(), f)))
            .collect();
        for d in self.devices.values_mut() {
            let new = by_key
                .iter()
                .position(|(k, _)| *k == d.key)
                .map(|i| by_key.swap_remove(i).1);
            if new.is_none() && d.voltage_finding.is_none() {
                continue;
            }
            if let Some(f) = &new {
                *self.quiet_counts.entry(f.rule).or_default() += 1;
            }
            d.voltage_finding = new;
            d.merge_quiet();
            d.refresh();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::fleet::identity::Names;
    use crate::fleet::model::{Poll, PollRead, SeenInfo, Sighting};
    use crate::fleet::plausibility::Rule;
    use crate::fleet::quiet::QuietRule;
    use crate::fleet::ratings::Overrides;
    use crate::fleet::verdict::Verdict;
    use crate::protocol::{Realtime, SysInfo};

    fn sys(i: u8) -> SysInfo {
        SysInfo::from_result(&serde_json::json!({
            "model": "HS110(EU)", "hw_ver": "1.0", "sw_ver": "1.2.6 Build 200727 Rel.121701",
            "mac": format!("50:C7:BF:00:0A:{i:02X}"), "deviceId": format!("Q{i}"), "alias": "a",
            "feature": "TIM:ENE", "relay_state": 1,
        }))
        .expect("sysinfo")
    }

    fn track(f: &mut Model, i: u8, now: Instant) -> SocketAddr {
        let s = Sighting {
            ip: format!("127.0.10.{i}").parse().expect("ip"),
            port: 9999,
            found_by: "host".into(),
            info: SeenInfo::Legacy(Box::new(sys(i))),
        };
        f.observe(s, &Names::default(), now).expect("tracked").addr
    }

    fn poll(f: &mut Model, i: u8, addr: SocketAddr, rt: serde_json::Value, now: Instant) {
        let realtime = Realtime::from_result(&rt).expect("reading");
        f.apply_poll(
            Poll {
                key: format!("Q{i}"),
                addr,
                misses: 0,
                outcome: Ok(PollRead {
                    sysinfo: sys(i),
                    realtime: Some(Ok(realtime)),
                    outlets: Vec::new(),
                }),
                refusal: None,
            },
            &Overrides::default(),
            &Names::default(),
            now,
        );
    }

    use crate::fleet::model::Fleet as Model;

    #[test]
    fn a_lagging_counter_is_found_over_the_window_and_bounded_in_memory() {
        let t0 = Instant::now();
        let mut f = Model::new(t0);
        let addr = track(&mut f, 1, t0);
        // 1000 W for 40 minutes at a 1 s poll; the counter grows at a tenth of it.
        let mut last = t0;
        for k in 0..2400u64 {
            let now = t0 + Duration::from_secs(k);
            let p = 1000.0 + (k % 7) as f64;
            let total = 1.0 + 0.1 * k as f64 / 3600.0;
            poll(
                &mut f,
                1,
                addr,
                serde_json::json!({"power": p, "voltage": 230.0 + (k % 3) as f64 * 0.1,
                    "current": p / 230.0, "total": total}),
                now,
            );
            last = now;
        }
        let d = f.get("Q1").expect("d");
        let m = d.meter.as_ref().expect("meter");
        assert!(m.samples.len() <= crate::fleet::meter::SAMPLES_LEN);
        assert_eq!(m.quiet.len(), 1, "{:?}", m.quiet);
        assert_eq!(m.quiet[0].rule, QuietRule::CounterVsPower);
        let a = d.judged.as_ref().expect("judged");
        assert_eq!(a.verdict, Verdict::Suspect);
        assert!(a.flagged.contains(crate::fleet::reading::Field::Total));
        assert!(a.texts().contains(&m.quiet[0].text), "{a:?}");
        assert!(f.quiet_counts[&QuietRule::CounterVsPower] > 0);
        // An hour of 1 s polls is the cap; two hours later the ring still holds at most that.
        for k in 2400..7200u64 {
            poll(
                &mut f,
                1,
                addr,
                serde_json::json!({"power": 10.0 + (k % 5) as f64, "voltage": 230.0,
                    "current": 0.05, "total": 5.0 + k as f64 * 1e-5}),
                last + Duration::from_secs(k - 2399),
            );
        }
        let m = f.get("Q1").and_then(|d| d.meter.as_ref()).expect("meter");
        assert!(
            m.samples.len() <= crate::fleet::meter::SAMPLES_LEN,
            "{}",
            m.samples.len()
        );
    }

    #[test]
    fn the_fleet_voltage_finding_comes_and_goes_with_the_round() {
        let t0 = Instant::now();
        let mut f = Model::new(t0);
        let addrs: Vec<SocketAddr> = (1..=5).map(|i| track(&mut f, i, t0)).collect();
        let round = |f: &mut Model, low: f64, now: Instant| {
            for (i, a) in (1..=5u8).zip(&addrs) {
                let v = if i == 1 {
                    low
                } else {
                    230.0 + f64::from(i) * 0.3
                };
                poll(
                    f,
                    i,
                    *a,
                    serde_json::json!({"power": 50.0, "voltage": v, "current": 0.22, "total": 1.0}),
                    now,
                );
            }
            f.judge_voltages(now);
        };
        round(&mut f, 211.0, t0);
        let d = f.get("Q1").expect("d");
        assert_eq!(
            d.voltage_finding.as_ref().map(|f| f.rule),
            Some(QuietRule::FleetVoltage)
        );
        assert_eq!(d.verdict(), Verdict::Suspect);
        assert!(f.get("Q2").is_some_and(|d| d.voltage_finding.is_none()));
        round(&mut f, 230.5, t0 + Duration::from_secs(10));
        let d = f.get("Q1").expect("d");
        assert!(d.voltage_finding.is_none());
        assert!(
            d.judged
                .as_ref()
                .is_some_and(|a| a.reasons.iter().all(|r| r.rule != Rule::Quiet)),
            "{:?}",
            d.judged
        );
    }
}
