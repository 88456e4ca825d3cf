//! The quiet rules (issue 15, [`crate::fleet::quiet`]) wired into the fleet model: every meter's
//! findings after its poll ([`crate::fleet::meter::Meter::judge_quiet`]) and the fleet-voltage
//! rule once per poll round ([`Fleet::judge_voltages`]) are merged into the device's judgement,
//! so every view (TUI, `status`, `--record`, `/metrics`) shows the same reasons.

use std::time::{Duration, Instant};

use crate::fleet::meter::quiet_reason;
use crate::fleet::model::{Device, Fleet, Link};
use crate::fleet::plausibility::{Assessment, Rule};
use crate::fleet::quiet::{self, Finding, VoltagePoint};

/// Rebuilds the device's judgement with its meters' quiet findings (a strip's prefixed by the
/// outlet's alias) and its last fleet-voltage finding, as suspect reasons.
pub fn merge_quiet(d: &mut Device) {
    let mut extra = Vec::new();
    if let Some(m) = &d.meter {
        extra.extend(m.quiet.iter().map(|f| quiet_reason(f, "")));
    }
    for o in &d.outlets {
        if let Some(m) = &o.meter {
            let prefix = format!("{}: ", o.alias);
            extra.extend(m.quiet.iter().map(|f| quiet_reason(f, &prefix)));
        }
    }
    if let Some(f) = &d.voltage_finding {
        extra.push(quiet_reason(f, ""));
    }
    // The engine's own judgement of the last poll is kept as it is (verdict, reasons, flagged
    // cells); the quiet reasons are added on top of it, replacing those merged before.
    if !d
        .judged
        .as_ref()
        .is_some_and(|a| a.reasons.iter().any(|r| r.rule == Rule::Quiet))
    {
        d.judged_engine = d.judged.clone();
    }
    if extra.is_empty() && d.judged_engine.is_none() {
        d.judged = None;
        return;
    }
    let mut a = d
        .judged_engine
        .clone()
        .unwrap_or_else(|| Assessment::from_reasons(Vec::new()));
    for r in &extra {
        if let Some(f) = r.field {
            a.flagged.insert(f);
        }
        a.verdict = a.verdict.max(r.severity);
    }
    a.reasons.extend(extra);
    d.judged = Some(a);
}

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
            merge_quiet(d);
        }
    }
}
