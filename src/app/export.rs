//! What leaves the TUI for recording and monitoring, built from the app state (pure):
//! [`records_for`] turns a device's fresh readings into [`ReadingRecord`]s, and
//! [`metrics_snapshot`] the whole fleet into a [`MetricsSnapshot`].

use std::time::Instant;

use super::state::{App, Device, Meter};
use crate::metrics::{DeviceMetrics, MeterMetrics, MetricsSnapshot, OutletMetrics};
use crate::record::ReadingRecord;

/// Milliseconds since the Unix epoch at `now`, on the app's clock (`epoch_unix_ms` at start).
pub fn unix_ms_at(app: &App, now: Instant) -> u64 {
    let since = now.saturating_duration_since(app.started).as_millis();
    app.settings
        .epoch_unix_ms
        .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
}

fn record_of(
    d: &Device,
    outlet: Option<&crate::protocol::ChildInfo>,
    m: &Meter,
    unix_ms: u64,
) -> Option<ReadingRecord> {
    let info = d.sysinfo.as_ref()?;
    let r = m.reading.as_ref()?;
    Some(
        ReadingRecord::with_verdict(
            unix_ms,
            d.addr.ip(),
            info,
            outlet,
            r,
            m.check.verdict,
            m.check.reasons.clone(),
        )
        .named(d.local_name.as_deref()),
    )
}

/// Records for the meters of `d` read just now: `read` lists them (`None` = the plug's own
/// meter, `Some(id)` = that outlet of a strip). Each carries the meter's last verdict and
/// reasons and the device's local name.
pub fn records_for(d: &Device, read: &[Option<String>], unix_ms: u64) -> Vec<ReadingRecord> {
    let Some(info) = d.sysinfo.as_ref() else {
        return Vec::new();
    };
    read.iter()
        .filter_map(|which| match which {
            None => record_of(d, None, d.meter.as_ref()?, unix_ms),
            Some(id) => {
                let child = info.children.iter().find(|c| &c.id == id)?;
                let o = d.outlets.iter().find(|o| &o.id == id)?;
                record_of(d, Some(child), o.meter.as_ref()?, unix_ms)
            }
        })
        .collect()
}

fn meter_metrics(m: &Meter) -> Option<MeterMetrics> {
    let r = m.reading.as_ref()?;
    let counts = m.engine.as_ref().map(|e| e.counts()).unwrap_or_default();
    Some(MeterMetrics::new(r.into(), m.check.verdict, counts))
}

/// One device as the metrics server exports it.
pub fn device_metrics(d: &Device, now: Instant) -> DeviceMetrics {
    let mut m = match &d.sysinfo {
        Some(info) => DeviceMetrics::from_sysinfo(d.addr.ip(), info),
        None => DeviceMetrics {
            ip: d.addr.ip().to_string(),
            mac: crate::protocol::normalise_mac(d.mac()),
            model: d.model().to_owned(),
            hw_ver: d.hw_ver().to_owned(),
            sw_ver: d.sw_version().to_owned(),
            device_id: d.key.clone(),
            alias: d.alias().to_owned(),
            ..DeviceMetrics::default()
        },
    };
    m.protocol = if d.sysinfo.is_none() && d.is_newer() {
        "klap".into()
    } else {
        "legacy".into()
    };
    m.name = d.local_name.clone();
    m.online = d.is_online();
    m.last_seen_age = d.last_seen.map(|t| now.saturating_duration_since(t));
    m.meter = d.meter.as_ref().and_then(meter_metrics);
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
    let has_reading = m.meter.is_some() || m.outlets.iter().any(|o| o.meter.is_some());
    m.verdict = has_reading
        .then(|| d.meters().map(|x| x.check.verdict).max())
        .flatten();
    m
}

/// Every device of the app, sorted by IP (a stable order for scrapers and tests).
pub fn metrics_snapshot(app: &App) -> MetricsSnapshot {
    let mut devices: Vec<DeviceMetrics> = app
        .devices
        .values()
        .map(|d| device_metrics(d, app.now))
        .collect();
    devices.sort_by(|a, b| a.ip.cmp(&b.ip).then_with(|| a.mac.cmp(&b.mac)));
    MetricsSnapshot { devices }
}

/// `(year, month, day)` (UTC) of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `readings-YYYY-MM-DD.jsonl` (UTC date of `unix_ms`).
pub fn default_record_name(unix_ms: u64) -> String {
    let days = i64::try_from(unix_ms / 86_400_000).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    format!("readings-{y:04}-{m:02}-{d:02}.jsonl")
}

/// Where the record key writes without `--record`: the data directory
/// (`~/.local/share/plugfleet/` on Linux), else the current directory.
pub fn default_record_path(unix_ms: u64) -> std::path::PathBuf {
    let name = default_record_name(unix_ms);
    match directories::ProjectDirs::from("", "", "plugfleet") {
        Some(d) => d.data_dir().join(name),
        None => std::path::PathBuf::from(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_record_names_carry_the_utc_date() {
        assert_eq!(default_record_name(0), "readings-1970-01-01.jsonl");
        // 2026-11-25T15:47:29Z
        assert_eq!(
            default_record_name(1_795_621_649_000),
            "readings-2026-11-25.jsonl"
        );
        // 2024-02-29 (a leap day), 2000-03-01
        assert_eq!(
            default_record_name(1_709_208_000_000),
            "readings-2024-02-29.jsonl"
        );
        assert_eq!(
            default_record_name(951_868_800_000),
            "readings-2000-03-01.jsonl"
        );
    }
}
