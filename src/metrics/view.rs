//! `/metrics` as a view of the fleet model: one [`DeviceMetrics`] per device, its meters'
//! current readings with the verdicts and counts the model keeps. A meter without a current
//! reading exports none (and no verdict): never an "ok" for a meter that did not answer.

use std::time::Instant;

use super::{DeviceMetrics, MeterMetrics, MetricsSnapshot, OutletMetrics};
use crate::fleet::meter::Meter;
use crate::fleet::model::{Device, Fleet};
use crate::fleet::plausibility::{Rule, Verdict};
use crate::fleet::quiet::{Finding, QuietRule};
use crate::fleet::reading::Reading;

/// The quiet findings as (rule name, suspect): the `rule` label names the quiet rule.
fn quiet_of<'a>(fs: impl IntoIterator<Item = &'a Finding>) -> Vec<(String, Verdict)> {
    fs.into_iter()
        .map(|f| (f.rule.name().to_owned(), Verdict::Suspect))
        .collect()
}

fn meter_metrics(m: &Meter) -> Option<MeterMetrics> {
    let (r, a) = m.current()?;
    let mut findings = super::findings_of(a);
    findings.extend(quiet_of(&m.quiet));
    Some(MeterMetrics {
        findings,
        ..MeterMetrics::new(Reading::from(r), m.check.verdict, m.counts())
    })
}

/// One device as the metrics server exports it (`now` for its last-seen age).
pub fn device_metrics(d: &Device, now: Instant) -> DeviceMetrics {
    let mut m = match &d.sysinfo {
        Some(info) => DeviceMetrics::from_sysinfo(d.addr.ip(), info),
        None => DeviceMetrics {
            ip: d.addr.ip().to_string(),
            mac: crate::protocol::normalise_mac(d.mac()),
            model: d.model().to_owned(),
            hw_ver: d.hw_ver().to_owned(),
            sw_ver: d.sw_version().to_owned(),
            // The model's key when there is no deviceId (`host:<IP>` for a named host that
            // never answered): the series id when the MAC is unknown too.
            device_id: d.device_id().unwrap_or(&d.key).to_owned(),
            alias: d.alias().to_owned(),
            ..DeviceMetrics::default()
        },
    };
    m.protocol = d.protocol().to_owned();
    m.name = d.local_name.clone();
    m.online = d.is_online();
    m.last_seen_age = d.last_seen.map(|t| now.saturating_duration_since(t));
    // Wall-clock time of the last answer: now on the wall clock, less its age.
    m.last_seen_unix = m
        .last_seen_age
        .map(|age| (super::unix_now() - age.as_secs_f64()).max(0.0));
    m.meter = d.meter.as_ref().and_then(meter_metrics);
    // A plug's series are its meter's: the fleet-voltage finding is the plug's too.
    if let (Some(mm), Some(f)) = (m.meter.as_mut(), d.voltage_finding.as_ref()) {
        mm.verdict = mm.verdict.max(Verdict::Suspect);
        mm.findings.extend(quiet_of([f]));
    }
    for o in &d.outlets {
        if let Some(om) = m.outlet_mut(&o.id) {
            om.relay_on = Some(o.relay_on);
            om.meter = o.meter.as_ref().and_then(meter_metrics);
        } else {
            let index = m.outlets.len();
            m.outlets.push(OutletMetrics {
                index,
                id: o.id.clone(),
                alias: o.alias.clone(),
                relay_on: Some(o.relay_on),
                meter: o.meter.as_ref().and_then(meter_metrics),
            });
        }
    }
    // The device's judgement: a strip's includes its total against the strip's rating.
    m.verdict = d.judged.as_ref().map(|a| a.verdict);
    m.findings = d
        .judged
        .as_ref()
        .map(|a| {
            let mut own = super::findings_of(a);
            own.retain(|(rule, _)| *rule != Rule::Quiet.name());
            own
        })
        .unwrap_or_default();
    m.findings
        .extend(quiet_of(crate::fleet::watch::findings(d)));
    m
}

/// Every device of the model, sorted by IP (a stable order for scrapers and tests).
pub fn snapshot(fleet: &Fleet, now: Instant) -> MetricsSnapshot {
    let mut devices: Vec<DeviceMetrics> = fleet
        .devices
        .values()
        .map(|d| device_metrics(d, now))
        .collect();
    devices.sort_by(|a, b| a.ip.cmp(&b.ip).then_with(|| a.mac.cmp(&b.mac)));
    let findings_by_rule = QuietRule::ALL
        .iter()
        .map(|r| {
            let n = fleet.quiet_counts.get(r).copied().unwrap_or(0);
            (r.name().to_owned(), n)
        })
        .collect();
    MetricsSnapshot {
        devices,
        findings_by_rule,
    }
}
