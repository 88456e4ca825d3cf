//! Record rows: a view of the fleet model. One row per meter with a current reading (a plug's
//! own, or each outlet's of a strip, plus a strip's own row with its sum and judgement),
//! carrying the verdict and reasons the model judged — the same the TUI, `status` and
//! `/metrics` show. A meter without a current reading gives no row:
//! there is nothing to record, and never an "ok" without a value.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::fleet::meter::Meter;
use crate::fleet::model::Device;
use crate::fleet::plausibility::{Assessment, Verdict};
use crate::fleet::quiet::Finding;
use crate::protocol::{ChildInfo, Realtime, SysInfo, UnitScheme};

/// One reading of one meter, as written to the record file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadingRecord {
    /// When it was read, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub ip: String,
    /// Normalised MAC (`AA:BB:…`), the device's identity.
    pub mac: String,
    pub device_id: String,
    /// The alias the device reports (for a strip: the strip's).
    pub alias: String,
    /// The local name from the config file, if any.
    pub name: Option<String>,
    pub model: String,
    /// A strip outlet's full id (parent deviceId + index); none for plugs.
    pub outlet_id: Option<String>,
    pub outlet_alias: Option<String>,
    pub power_w: Option<f64>,
    pub voltage_v: Option<f64>,
    pub current_a: Option<f64>,
    pub total_kwh: Option<f64>,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// The quiet findings among the reasons (issue 15) with their evidence, as JSON
    /// (`{"rule", "text", "evidence": {"kind", …}, "from_ms", "to_ms"}`), and the flagged days
    /// and months of the meter's energy history (`"kind": "energy-history"`, issue 16); JSON
    /// lines only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<serde_json::Value>,
    /// The unit scheme of the reply: `base` (W/V/A/kWh floats), `milli` (mW/mV/mA/Wh) or
    /// `mixed`.
    pub scheme: String,
    /// What the device is (`plug`, `strip`, `bulb`, …: [`crate::protocol::Kind::label`]), as
    /// the TUI's Type column and `status --json`'s `type` say. Empty in files written before
    /// the field existed.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// How it was read: `legacy` (port 9999) or the newer transport (`klap`, `aes`, …), as
    /// `status --json`'s `protocol`. Empty in files written before the field existed.
    #[serde(default)]
    pub protocol: String,
    /// The payload dialect: `iot` (the port-9999 JSON, also over KLAP) or `smart` (JSON-RPC),
    /// as `status --json`'s `dialect`. Empty in files written before the field existed.
    #[serde(default)]
    pub dialect: String,
}

/// `base`, `milli` or `mixed`, as the scheme serialises.
pub fn scheme_name(s: UnitScheme) -> &'static str {
    match s {
        UnitScheme::Base => "base",
        UnitScheme::Milli => "milli",
        UnitScheme::Mixed => "mixed",
    }
}

impl ReadingRecord {
    /// A reading of the device `info` at `ip` (of its outlet `outlet` on a strip) with the
    /// engine's assessment.
    pub fn new(
        unix_ms: u64,
        ip: IpAddr,
        info: &SysInfo,
        outlet: Option<&ChildInfo>,
        realtime: &Realtime,
        assessment: &Assessment,
    ) -> Self {
        Self::with_verdict(
            unix_ms,
            ip,
            info,
            outlet,
            realtime,
            assessment.verdict,
            assessment.texts(),
        )
    }

    /// The same from a verdict and its reasons as strings (for callers that keep their own
    /// check type).
    pub fn with_verdict(
        unix_ms: u64,
        ip: IpAddr,
        info: &SysInfo,
        outlet: Option<&ChildInfo>,
        realtime: &Realtime,
        verdict: Verdict,
        reasons: Vec<String>,
    ) -> Self {
        Self {
            unix_ms,
            ip: ip.to_string(),
            mac: crate::protocol::normalise_mac(&info.mac),
            device_id: info.device_id.clone(),
            alias: info.alias.clone(),
            name: None,
            model: info.model.clone(),
            outlet_id: outlet.map(|o| o.id.clone()),
            outlet_alias: outlet.map(|o| o.alias.clone()),
            power_w: realtime.power_w,
            voltage_v: realtime.voltage_v,
            current_a: realtime.current_a,
            total_kwh: realtime.total_kwh,
            verdict,
            reasons,
            findings: Vec::new(),
            scheme: scheme_name(realtime.scheme).to_owned(),
            kind: info.kind().label().to_owned(),
            // From a sysinfo alone: it answered the port-9999 protocol. Rows of the fleet
            // model take the device's own (`row`, `strip_row`).
            protocol: "legacy".to_owned(),
            dialect: "iot".to_owned(),
        }
    }

    /// Sets the local name (e.g. [`crate::fleet::identity::Names::name_for`]).
    pub fn named(mut self, name: Option<&str>) -> Self {
        self.name = name.map(str::to_owned);
        self
    }

    /// Sets the local name the config gives this record's MAC, if any.
    pub fn with_names(mut self, names: &crate::fleet::identity::Names) -> Self {
        self.name = names.name_for(&self.mac).map(str::to_owned);
        self
    }
}

fn row(
    d: &Device,
    info: &SysInfo,
    outlet: Option<&ChildInfo>,
    m: &Meter,
    unix_ms: u64,
) -> Option<ReadingRecord> {
    let (rt, _) = m.current()?;
    // The model's judgement, quiet findings included: a plug's is the device's (the fleet
    // voltage too), an outlet's its meter's check.
    let (verdict, reasons, quiet): (_, _, Vec<&Finding>) = match (outlet, d.judged.as_ref()) {
        (None, Some(a)) => (
            a.verdict,
            a.texts(),
            crate::fleet::watch::findings(d).collect(),
        ),
        _ => (
            m.check.verdict,
            m.check.reasons.clone(),
            m.quiet.iter().collect(),
        ),
    };
    let mut r =
        ReadingRecord::with_verdict(unix_ms, d.addr.ip(), info, outlet, rt, verdict, reasons);
    r.findings = crate::fleet::watch::findings_json(quiet);
    // The flagged days and months of this meter's energy history (issue 16).
    if let (Some(h), Some(limits)) = (
        crate::fleet::stats::history_of(d, outlet.map(|c| c.id.as_str())),
        d.limits.as_ref(),
    ) {
        r.findings
            .extend(crate::fleet::stats::findings_json(h, limits));
    }
    r.name = d.local_name.clone();
    r.kind = d.kind().label().to_owned();
    r.protocol = d.protocol().to_owned();
    r.dialect = d.dialect().to_owned();
    Some(r)
}

/// A strip's own row: the sum of its outlets' current readings (python-kasa's way) with the
/// strip's judgement (its total against the strip's rating, its flagged outlets). Its
/// `outlet_id` is empty; sum the outlet rows or take this one, not both.
fn strip_row(d: &Device, info: &SysInfo, unix_ms: u64) -> Option<ReadingRecord> {
    let a = d.judged.as_ref()?;
    let (sum, _) = d.values();
    let sum = sum?;
    let scheme = d
        .outlets
        .iter()
        .find_map(|o| o.meter.as_ref()?.current())
        .map_or("base", |(rt, _)| scheme_name(rt.scheme));
    Some(ReadingRecord {
        unix_ms,
        ip: d.addr.ip().to_string(),
        mac: crate::protocol::normalise_mac(&info.mac),
        device_id: info.device_id.clone(),
        alias: info.alias.clone(),
        name: d.local_name.clone(),
        model: info.model.clone(),
        outlet_id: None,
        outlet_alias: None,
        power_w: sum.power_w,
        voltage_v: sum.voltage_v,
        current_a: sum.current_a,
        total_kwh: sum.total_kwh,
        verdict: a.verdict,
        reasons: a.texts(),
        findings: crate::fleet::watch::findings_json(crate::fleet::watch::findings(d)),
        scheme: scheme.to_owned(),
        kind: d.kind().label().to_owned(),
        protocol: d.protocol().to_owned(),
        dialect: d.dialect().to_owned(),
    })
}

/// Rows for the meters of `d` listed in `read` (`None` = the plug's own meter, `Some(id)` =
/// that outlet of a strip), e.g. those a poll just read; a strip with an outlet read also
/// gives its own row first ([`strip_row`]).
pub fn rows_for(d: &Device, read: &[Option<String>], unix_ms: u64) -> Vec<ReadingRecord> {
    let Some(info) = d.sysinfo.as_ref() else {
        return Vec::new();
    };
    let strip = (d.is_strip() && read.iter().any(Option::is_some))
        .then(|| strip_row(d, info, unix_ms))
        .flatten();
    strip
        .into_iter()
        .chain(read.iter().filter_map(|which| match which {
            None => row(d, info, None, d.meter.as_ref()?, unix_ms),
            Some(id) => {
                let child = info.children.iter().find(|c| &c.id == id)?;
                let o = d.outlets.iter().find(|o| &o.id == id)?;
                row(d, info, Some(child), o.meter.as_ref()?, unix_ms)
            }
        }))
        .collect()
}

/// Rows for every meter of `d` with a current reading.
pub fn rows_of(d: &Device, unix_ms: u64) -> Vec<ReadingRecord> {
    let which: Vec<Option<String>> = if d.is_strip() {
        d.outlets.iter().map(|o| Some(o.id.clone())).collect()
    } else {
        vec![None]
    };
    rows_for(d, &which, unix_ms)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::app::event::{Command, Event};
    use crate::app::fixture::{self, Plug, reading};
    use crate::app::recording::RecordFormat;
    use crate::app::state::{App, Settings};
    use crate::app::update;

    const EPOCH: u64 = 1_795_621_649_000;

    fn press(app: &mut App, code: KeyCode, now: Instant) -> Vec<Command> {
        update(
            app,
            Event::Key(KeyEvent::new(code, KeyModifiers::NONE)),
            now,
        )
    }

    /// The rows of the record commands, built from the model as the runtime builds them.
    fn records(app: &App, cmds: &[Command]) -> Vec<ReadingRecord> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Record { key, read, unix_ms } => {
                    Some(rows_for(app.fleet.get(key)?, read, *unix_ms))
                }
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn kettle() -> Plug {
        Plug::new(1, "kettle", "HS110(US)", "1.0", "1.2.6")
    }

    fn strip() -> Plug {
        let mut s = Plug::new(2, "strip", "HS300(US)", "2.0", "1.0.12");
        s.outlets = vec![("lamp", true), ("radio", true)];
        s
    }

    /// Two devices found; the kettle has a local name.
    fn found(settings: Settings) -> (App, Instant) {
        let t0 = Instant::now();
        let settings = Settings {
            names: crate::fleet::identity::Names::from_pairs([("50:C7:BF:00:00:01", "Kettle")]),
            epoch_unix_ms: EPOCH,
            record_default: PathBuf::from("/data/plugfleet/readings-2026-11-25.jsonl"),
            ..settings
        };
        let mut app = App::new(settings, t0);
        update(&mut app, fixture::sighting(&kettle(), "broadcast"), t0);
        update(&mut app, fixture::sighting(&strip(), "broadcast"), t0);
        (app, t0)
    }

    #[test]
    fn a_flagged_day_of_the_energy_history_is_a_finding_of_the_row() {
        let (mut app, t0) = found(Settings::default());
        let p = kettle();
        update(
            &mut app,
            fixture::polled(&p, Some(reading(100.0, 120.0, 0.9, 1.0)), vec![]),
            t0,
        );
        let d = app.fleet.get(&fixture::device_id(1)).expect("kettle");
        let day = |n: i64, kwh: f64| crate::protocol::EnergyStat {
            year: 2026,
            month: 11,
            day: Some(n),
            energy_kwh: kwh,
        };
        let report = crate::net::history::HistoryReport {
            key: d.key.clone(),
            addr: d.addr,
            child: None,
            days: vec![((2026, 11), Ok(vec![day(1, 0.5), day(2, 90.0)]))],
            months: vec![],
            clock: None,
        };
        update(&mut app, Event::History(Box::new(report)), t0);
        let rows = rows_of(
            app.fleet.get(&fixture::device_id(1)).expect("kettle"),
            EPOCH,
        );
        let f: Vec<&serde_json::Value> = rows[0]
            .findings
            .iter()
            .filter(|f| f["evidence"]["kind"] == "energy-history")
            .collect();
        assert_eq!(f.len(), 1, "{:?}", rows[0].findings);
        assert_eq!(f[0]["evidence"]["period"], "2026-11-02");
        assert_eq!(f[0]["evidence"]["verdict"], "bogus");
        // The reading's own verdict is the reading's.
        assert_eq!(rows[0].verdict, Verdict::Ok);
    }

    #[test]
    fn judged_readings_become_record_commands_only_while_recording() {
        let (mut app, t0) = found(Settings::default());
        let now = t0 + Duration::from_millis(1500);
        let bogus = fixture::polled(&kettle(), Some(reading(28_000.0, 120.0, 0.2, 1.0)), vec![]);
        assert!(
            {
                let c = update(&mut app, bogus.clone(), now);
                records(&app, &c)
            }
            .is_empty()
        );

        let cmds = press(&mut app, KeyCode::Char('w'), now);
        assert_eq!(
            cmds,
            vec![Command::StartRecording {
                path: PathBuf::from("/data/plugfleet/readings-2026-11-25.jsonl"),
                format: RecordFormat::JsonLines,
            }]
        );
        assert!(app.recording.active);
        assert!(
            app.status()
                .is_some_and(|s| s.contains("readings-2026-11-25"))
        );

        let recs = {
            let c = update(&mut app, bogus.clone(), now);
            records(&app, &c)
        };
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.verdict, Verdict::Bogus);
        assert!(!r.reasons.is_empty());
        assert_eq!(r.power_w, Some(28_000.0));
        assert_eq!(r.name.as_deref(), Some("Kettle"));
        assert_eq!(r.alias, "kettle");
        assert_eq!(r.ip, fixture::ip(1).to_string());
        assert_eq!(r.unix_ms, EPOCH + 1500, "stamped from the time passed in");
        assert_eq!(r.outlet_id, None);

        // A strip: its own row (sum and judgement, no outlet id), then one record per outlet
        // read, with the outlet's id and alias.
        let polled = fixture::polled(
            &strip(),
            None,
            vec![
                reading(10.0, 120.0, 0.09, 1.0),
                reading(20.0, 120.0, 0.17, 2.0),
            ],
        );
        let recs = {
            let c = update(&mut app, polled, now);
            records(&app, &c)
        };
        assert_eq!(recs.len(), 3);
        assert_eq!(
            (recs[0].outlet_id.clone(), recs[0].power_w),
            (None, Some(30.0))
        );
        assert_eq!(recs[2].outlet_alias.as_deref(), Some("radio"));
        assert_eq!(recs[2].power_w, Some(20.0));
        assert!(recs.iter().all(|r| r.verdict == Verdict::Ok));
        assert_eq!(
            app.recording.count, 3,
            "readings sent: the kettle and two outlets"
        );

        // A failed poll records nothing.
        assert!(
            {
                let c = update(&mut app, fixture::failed(&kettle(), 1), now);
                records(&app, &c)
            }
            .is_empty()
        );

        assert_eq!(
            press(&mut app, KeyCode::Char('w'), now),
            vec![Command::StopRecording]
        );
        assert!(!app.recording.active);
        assert!(
            {
                let c = update(&mut app, bogus, now);
                records(&app, &c)
            }
            .is_empty()
        );
    }
}
