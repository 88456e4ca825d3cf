//! The views `status` prints, both of the fleet model: one JSON object per device
//! ([`json_line`]: the `discover --json` keys, then relay, signal, the reading and its
//! plausibility; strips list their outlets in `children`) and the aligned text table
//! ([`render_table`]). Pure; the verdicts and reasons are the model's.

use serde_json::{Value, json};

use crate::fleet::meter::Meter;
use crate::fleet::model::{Device, Fleet};
use crate::fleet::plausibility::{Assessment, Rule, Verdict};
use crate::fleet::reading::{Field, Reading};
use crate::protocol::reply::RawJson;
use crate::protocol::{LightState, Realtime, SysInfo};

fn round(v: Option<f64>, digits: i32) -> Value {
    match v {
        Some(v) => {
            let m = 10f64.powi(digits);
            json!((v * m).round() / m)
        }
        None => Value::Null,
    }
}

fn emeter_json(r: Option<&Reading>) -> Value {
    match r {
        Some(r) => json!({
            "power_w": round(r.power_w, 3),
            "voltage_v": round(r.voltage_v, 3),
            "current_a": round(r.current_a, 4),
            "total_kwh": round(r.total_kwh, 4),
        }),
        None => Value::Null,
    }
}

/// The verdict, its reasons and flagged fields; for a reading that is not believed, the raw
/// reply too (PROTOCOL.md §9.3: keep the raw JSON of every rejected sample).
fn plausibility_json(a: Option<&Assessment>, raw: Option<&RawJson>) -> Value {
    match a {
        Some(a) => {
            let mut v = json!({
                "verdict": a.verdict,
                "reasons": a.texts(),
                "flagged": a.flagged,
            });
            if let Some(raw) = raw.filter(|_| a.verdict > Verdict::Ok) {
                v["raw"] = raw.to_value();
            }
            v
        }
        None => Value::Null,
    }
}

/// The quiet findings (issue 15) into a `plausibility` object: their evidence under
/// `findings`, and the verdict and reasons with them (the model's, as every view shows).
fn quiet_json<'a>(
    p: &mut Value,
    verdict: Verdict,
    reasons: &[String],
    fs: impl IntoIterator<Item = &'a crate::fleet::quiet::Finding>,
) {
    let findings = crate::fleet::watch::findings_json(fs);
    if findings.is_empty() || !p.is_object() {
        return;
    }
    p["verdict"] = json!(verdict);
    p["reasons"] = json!(reasons);
    p["findings"] = Value::Array(findings);
}

/// A meter's current reading and judgement, or why there is none.
fn meter_state(m: Option<&Meter>) -> (Option<(&Realtime, &Assessment)>, Option<&str>) {
    match m {
        Some(m) => (m.current(), m.no_reading()),
        None => (None, None),
    }
}

/// One device as a JSON object (one line of `status --json`).
pub fn json_line(d: &Device, fleet: &Fleet) -> Value {
    let i = d.sysinfo.as_ref();
    let children: Vec<Value> = d
        .outlets
        .iter()
        .map(|o| {
            let (cur, error) = meter_state(o.meter.as_ref());
            let mut v = json!({
                "id": o.id,
                "alias": o.alias,
                "relay_state": u8::from(o.relay_on),
                "emeter": emeter_json(cur.map(|(r, _)| Reading::from(r)).as_ref()),
                "plausibility": plausibility_json(cur.map(|(_, a)| a), cur.map(|(r, _)| &r.raw)),
            });
            if let Some(m) = o.meter.as_ref().filter(|m| !m.quiet.is_empty()) {
                quiet_json(
                    &mut v["plausibility"],
                    m.check.verdict,
                    &m.check.reasons,
                    m.quiet.iter(),
                );
            }
            if let Some(e) = error {
                v["emeter_error"] = json!(e);
            }
            v
        })
        .collect();
    let t_ms = u64::try_from(
        d.first_seen
            .saturating_duration_since(fleet.started)
            .as_millis(),
    )
    .unwrap_or(u64::MAX);
    let tdp = d.tdp.as_ref();
    let (reading, _) = d.values();
    let (cur, meter_error) = meter_state(d.meter.as_ref());
    let raw = if d.is_strip() {
        None
    } else {
        cur.map(|(r, _)| &r.raw)
    };
    // A device whose poll failed has no reading either: say why.
    let error = meter_error
        .or(d.last_error.as_deref())
        .filter(|_| reading.is_none() || meter_error.is_some());
    let mut v = json!({
        "ip": d.addr.ip().to_string(),
        "port": d.addr.port(),
        "mac": d.mac(),
        "device_id": d.device_id(),
        "alias": i.map(|s| s.alias.as_str())
            .or_else(|| tdp.and_then(|t| t.device_name.as_deref())),
        "type": d.kind(),
        "model": (!d.model().is_empty()).then(|| d.model()),
        "hw_ver": (!d.hw_ver().is_empty()).then(|| d.hw_ver()),
        "sw_ver": i.map(|s| s.sw_ver.as_str())
            .or_else(|| tdp.and_then(|t| t.sw_ver.as_deref())),
        "hw_id": i.and_then(|s| s.hw_id.as_deref()),
        "fw_id": i.and_then(|s| s.fw_id.as_deref()),
        "oem_id": i.and_then(|s| s.oem_id.as_deref()),
        "has_emeter": d.has_emeter(),
        "children": match i {
            Some(_) => Value::Array(children),
            None => Value::Null,
        },
        "protocol": d.protocol(),
        "dialect": d.dialect(),
        "refusal": d.refusal.as_ref().map(|r| r.label()),
        "device_type": i.and_then(|s| s.device_type.as_deref())
            .or_else(|| tdp.map(|t| t.device_type.as_str())),
        "http_port": tdp.and_then(|t| t.http_port),
        "found_by": d.found_by,
        "previous_ips": d.previous_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "online": d.is_online(),
        "t_ms": t_ms,
        "relay_state": i.and_then(SysInfo::is_on).map(u8::from),
        "brightness": d.brightness(),
        "rssi": i.and_then(|i| i.rssi),
        "emeter": emeter_json(reading.as_ref()),
        "plausibility": plausibility_json(d.judged.as_ref(), raw),
    });
    if let Some(a) = d.judged.as_ref() {
        quiet_json(
            &mut v["plausibility"],
            a.verdict,
            &a.texts(),
            crate::fleet::watch::findings(d),
        );
    }
    if let Some(e) = error {
        v["emeter_error"] = json!(e);
    }
    if let Some(c) = &d.conflict {
        v["conflict"] = json!(c);
    }
    if let Some(l) = i.and_then(|i| i.light.as_ref()) {
        v["light"] = light_json(l);
    }
    if let Some(name) = tdp.and_then(|t| t.device_name.as_deref()) {
        v["device_name"] = json!(name);
    }
    if let (false, Some(e)) = (d.is_online(), d.last_error.as_deref()) {
        v["error"] = json!(e);
    }
    if let Some(r) = &d.refusal {
        v["error"] = json!(r.to_string());
        v["hint"] = json!(r.hint());
    }
    v
}

/// A light's state: `on`, brightness, colour temperature or hue/saturation, mode, and
/// `default` when the values are the ones it comes on with (it is off); or why it could not
/// be read (`{"error": "bulb sysinfo has no light_state"}`).
fn light_json(l: &Result<LightState, String>) -> Value {
    match l {
        Ok(l) => json!({
            "on": l.on,
            "brightness": l.brightness,
            "color_temp": l.color_temp,
            "hue": l.hue,
            "saturation": l.saturation,
            "mode": l.mode,
            "default": l.from_default,
        }),
        Err(e) => json!({ "error": e }),
    }
}

/// The line for a named address where the plug listed at another address answered too.
pub fn same_device_json(ip: std::net::IpAddr, d: &Device) -> Value {
    json!({
        "ip": ip.to_string(),
        "port": d.addr.port(),
        "online": true,
        "mac": crate::fleet::identity::valid_mac(d.mac()).unwrap_or_else(|| d.mac().to_owned()),
        "device_id": d.device_id(),
        "same_device_as": d.addr.ip().to_string(),
    })
}

/// "same device as 127.0.0.5 (50:C7:…)": never "unreachable" for a plug that answered.
pub fn same_device_text(d: &Device) -> String {
    let mac = crate::fleet::identity::valid_mac(d.mac()).unwrap_or_else(|| d.mac().to_owned());
    crate::text::sanitize(&format!("same device as {} ({mac})", d.addr.ip())).into_owned()
}

/// Keeps device-supplied text printable and bounded for a table cell.
fn cell(s: &str, max: usize) -> String {
    crate::text::printable(s, max)
}

/// A value with its glyph when flagged (`28000‼`), `-` when absent.
fn value_cell(r: Option<&Reading>, a: Option<&Assessment>, field: Field) -> String {
    let Some(v) = r.and_then(|r| r.get(field)) else {
        return "-".into();
    };
    let text = field.fmt(v);
    let num = text.trim_end_matches(field.unit()).trim_end();
    let glyph = a.map_or("", |a| {
        if a.is_flagged(field) {
            a.field_verdict(field).glyph()
        } else {
            ""
        }
    });
    format!("{num}{glyph}")
}

fn relay(on: Option<bool>) -> &'static str {
    match on {
        Some(true) => "on",
        Some(false) => "off",
        None => "-",
    }
}

/// `25%` for a dimmer or a light (`45%*` when off: the brightness it comes on with), `-`.
fn brightness_cell(i: &SysInfo) -> String {
    match i.brightness_pct() {
        Some(b) if i.light_state().is_some_and(|l| l.from_default) => format!("{b}%*"),
        Some(b) => format!("{b}%"),
        None => "-".into(),
    }
}

fn verdict_cell(a: Option<&Assessment>, error: Option<&str>) -> String {
    match (a, error) {
        (Some(a), _) => format!("{}{}", a.verdict, a.verdict.glyph()),
        (None, Some(_)) => "no reading".into(),
        (None, None) => "no meter".into(),
    }
}

fn mark(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => crate::text::glyph::NOTE,
        other => other.glyph(),
    }
}

/// The human table: one row per device (outlets indented under their strip), flagged values
/// marked with their verdict's glyph, and the reasons listed below.
pub fn render_table(devices: &[&Device]) -> String {
    const HEAD: [&str; 14] = [
        "IP", "ALIAS", "TYPE", "MODEL", "HW", "SW", "RELAY", "BRIGHT", "W", "V", "A", "kWh",
        "RSSI", "VERDICT",
    ];
    // BRIGHT (a dimmer's or light's brightness) only when a device has one.
    const BRIGHT: usize = 7;
    let mut rows: Vec<[String; 14]> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for d in devices {
        let i = d.sysinfo.as_ref();
        let ip = if d.addr.port() == crate::protocol::DEFAULT_PORT {
            d.addr.ip().to_string()
        } else {
            d.addr.to_string()
        };
        let a = d.judged.as_ref();
        let (r, _) = d.values();
        let r = r.as_ref();
        if i.is_none() && d.tdp.is_none() {
            // A named host that did not answer.
            let why = d.last_error.as_deref().unwrap_or("no answer");
            let mut row: [String; 14] = std::array::from_fn(|_| "-".to_owned());
            row[0] = ip.clone();
            row[13] = "offline".into();
            rows.push(row);
            notes.push(format!("{ip}: offline: {}", cell(why, 120)));
            continue;
        }
        let Some(i) = i.filter(|_| d.refusal.is_none()) else {
            // Found on UDP 20002 only: a newer-protocol device not read (yet, or refusing).
            let protocol = d.protocol();
            let model = if d.model().is_empty() { "-" } else { d.model() };
            let hw = if d.hw_ver().is_empty() {
                "-"
            } else {
                d.hw_ver()
            };
            let sw = if d.sw_version().is_empty() {
                "-"
            } else {
                d.sw_version()
            };
            let name = if d.alias().is_empty() { "-" } else { d.alias() };
            rows.push([
                ip.clone(),
                cell(name, 24),
                d.kind().label().into(),
                cell(model, 12),
                cell(hw, 5),
                cell(sw, 10),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                match &d.refusal {
                    Some(r) => r.to_string(),
                    None => format!("{protocol}, not read"),
                },
            ]);
            notes.push(match &d.refusal {
                Some(r) => format!("{ip}: {protocol}: {r}: {}", r.hint()),
                None => format!(
                    "{ip}: newer protocol ({protocol}): not read ({})",
                    d.last_error.as_deref().unwrap_or("no session")
                ),
            });
            continue;
        };
        let meter_error = d
            .meter
            .as_ref()
            .and_then(Meter::no_reading)
            .or(d.last_error.as_deref().filter(|_| r.is_none()))
            .or_else(|| {
                // A strip none of whose outlets was read.
                (d.is_strip() && r.is_none())
                    .then(|| {
                        d.outlets
                            .iter()
                            .find_map(|o| o.meter.as_ref()?.no_reading())
                    })
                    .flatten()
            });
        rows.push([
            ip.clone(),
            cell(&i.alias, 24),
            i.kind().label().into(),
            cell(&i.model, 12),
            cell(&i.hw_ver, 5),
            cell(i.version(), 10),
            relay(i.is_on()).into(),
            brightness_cell(i),
            value_cell(r, a, Field::Power),
            value_cell(r, a, Field::Voltage),
            value_cell(r, a, Field::Current),
            value_cell(r, a, Field::Total),
            i.rssi.map_or("-".into(), |v| v.to_string()),
            verdict_cell(a, meter_error),
        ]);
        let who = format!("{ip} {}", cell(&i.alias, 24));
        if let Some(e) = meter_error.filter(|_| !d.is_strip() || r.is_none()) {
            notes.push(format!("{who}: meter not read: {e}"));
        }
        if let Some(c) = &d.conflict {
            notes.push(format!("{who}: {}", cell(c, 120)));
        }
        if let Some(Err(e)) = &i.light {
            notes.push(format!("{who}: light state not read: {}", cell(e, 120)));
        }
        if let Some(a) = a {
            // A strip's own (total) reasons; outlets list theirs below.
            for reason in a.reasons.iter().filter(|r| r.rule != Rule::Outlet) {
                notes.push(format!("{who}: {} {}", mark(reason.severity), reason.text));
            }
        }
        let n = d.outlets.len();
        for (k, o) in d.outlets.iter().enumerate() {
            let branch = if k + 1 == n { "└" } else { "├" };
            let (cur, oe) = meter_state(o.meter.as_ref());
            let or = cur.map(|(r, _)| Reading::from(r));
            let oa = cur.map(|(_, a)| a);
            rows.push([
                format!(" {branch} outlet {}", k + 1),
                cell(&o.alias, 24),
                "outlet".into(),
                String::new(),
                String::new(),
                String::new(),
                relay(Some(o.relay_on)).into(),
                String::new(),
                value_cell(or.as_ref(), oa, Field::Power),
                value_cell(or.as_ref(), oa, Field::Voltage),
                value_cell(or.as_ref(), oa, Field::Current),
                value_cell(or.as_ref(), oa, Field::Total),
                String::new(),
                verdict_cell(oa, oe),
            ]);
            let owho = format!("{who} outlet {} {}", k + 1, cell(&o.alias, 24));
            if let Some(e) = oe {
                notes.push(format!("{owho}: meter not read: {e}"));
            }
            if let Some(a) = oa {
                for reason in &a.reasons {
                    notes.push(format!("{owho}: {} {}", mark(reason.severity), reason.text));
                }
            }
        }
    }

    let bright = devices.iter().any(|d| d.brightness().is_some());
    let keep = |col: &usize| bright || *col != BRIGHT;
    let pick = |row: &[String]| -> Vec<String> {
        row.iter()
            .enumerate()
            .filter(|(c, _)| keep(c))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let head = pick(&HEAD.map(String::from));
    let rows: Vec<Vec<String>> = rows.iter().map(|r| pick(r)).collect();
    // Laid out by display width (comfy-table): a wide-character alias never shifts a column;
    // numbers right-aligned (brightness when shown, W, V, A, kWh, RSSI), text left-aligned.
    let last_num = if bright { 12 } else { 11 };
    let right: Vec<usize> = (BRIGHT..=last_num).collect();
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut out = crate::cmd::table::render(&head, &rows, &right);
    out.push('\n');
    let flagged = devices
        .iter()
        .filter(|d| d.judged.as_ref().is_some_and(|a| a.verdict > Verdict::Ok))
        .count();
    out.push_str(&format!(
        "\n{} device{}, {flagged} flagged\n",
        devices.len(),
        if devices.len() == 1 { "" } else { "s" }
    ));
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::app::fixture::{self, Plug, reading};
    use crate::app::state::{App, Settings};
    use crate::app::update;

    /// A model fed the way `status` feeds it (a sighting, then a poll per device).
    fn model(plugs: &[(Plug, Option<Realtime>, Vec<Realtime>)]) -> App {
        let t0 = Instant::now();
        let mut app = App::new(Settings::default(), t0);
        for (p, rt, outlets) in plugs {
            update(&mut app, fixture::sighting(p, "host"), t0);
            update(
                &mut app,
                fixture::polled(p, rt.clone(), outlets.clone()),
                t0 + Duration::from_millis(5),
            );
        }
        app
    }

    fn rt(v: Value) -> Realtime {
        Realtime::from_result(&v).expect("reading")
    }

    #[test]
    fn json_of_a_bogus_plug_has_every_key_and_the_raw_reply() {
        let p = Plug::new(5, "Kitchen", "HS110(US)", "1.0", "1.2.6");
        let app = model(&[(
            p.clone(),
            Some(rt(
                json!({"power": 28000.0, "voltage": 118.9, "current": 0.128, "total": 30.404}),
            )),
            vec![],
        )]);
        let d = app.fleet.get(&fixture::device_id(5)).expect("device");
        let j = json_line(d, &app.fleet);
        for key in [
            "ip",
            "port",
            "mac",
            "device_id",
            "alias",
            "model",
            "hw_ver",
            "sw_ver",
            "hw_id",
            "fw_id",
            "oem_id",
            "has_emeter",
            "children",
            "protocol",
            "device_type",
            "http_port",
            "found_by",
            "previous_ips",
            "online",
            "t_ms",
            "relay_state",
            "rssi",
            "emeter",
            "plausibility",
        ] {
            assert!(j.get(key).is_some(), "missing {key}: {j}");
        }
        assert_eq!(j["ip"], fixture::ip(5).to_string());
        assert_eq!(j["protocol"], "legacy");
        assert_eq!(j["found_by"], json!(["host"]));
        assert_eq!(j["relay_state"], 1);
        assert_eq!(j["emeter"]["power_w"], 28000.0);
        assert_eq!(j["plausibility"]["verdict"], "bogus");
        assert_eq!(
            j["plausibility"]["reasons"][0],
            "28000 W is above 1.25 × 1800 W rated (HS110 US)"
        );
        assert_eq!(j["children"], json!([]));
        // The rejected sample's raw reply is kept.
        assert_eq!(j["plausibility"]["raw"]["power"], 28000.0);
    }

    #[test]
    fn no_meter_and_no_reading_are_never_ok() {
        let mut plain = Plug::new(1, "Lamp", "HS100(US)", "2.0", "1.5.6");
        plain.emeter = false;
        let app = model(&[(plain, None, vec![])]);
        let d = app.fleet.get(&fixture::device_id(1)).expect("device");
        let j = json_line(d, &app.fleet);
        assert_eq!(j["has_emeter"], false);
        assert!(j["emeter"].is_null() && j["plausibility"].is_null());
        assert!(j.get("emeter_error").is_none());
        assert!(render_table(&[d]).contains("no meter"));

        // A value of the wrong type: a bogus finding with the value, not `power_w: null, ok`.
        let p = Plug::new(2, "Odd", "HS110(US)", "1.0", "1.2.6");
        let app = model(&[(
            p,
            Some(rt(json!({"power": "28000", "voltage": 120.0}))),
            vec![],
        )]);
        let d = app.fleet.get(&fixture::device_id(2)).expect("device");
        let j = json_line(d, &app.fleet);
        assert_eq!(j["plausibility"]["verdict"], "bogus", "{j}");
        assert_eq!(
            j["plausibility"]["reasons"][0],
            "unreadable power: \"28000\""
        );
        assert!(j["emeter"]["power_w"].is_null());
        let t = render_table(&[d]);
        assert!(t.contains("bogus‼"), "{t}");
        assert!(t.contains("‼ unreadable power: \"28000\""), "{t}");
    }

    #[test]
    fn a_strip_is_judged_by_its_total_and_lists_its_outlets() {
        let mut s = Plug::new(3, "Rack", "HS300(US)", "2.0", "1.0.21");
        s.outlets = (0..6).map(|_| ("load", true)).collect();
        let app = model(&[(
            s,
            None,
            (0..6).map(|_| reading(400.0, 120.0, 3.5, 1.0)).collect(),
        )]);
        let d = app.fleet.get(&fixture::device_id(3)).expect("device");
        let j = json_line(d, &app.fleet);
        let children = j["children"].as_array().expect("list");
        assert_eq!(children.len(), 6);
        assert!(
            children
                .iter()
                .all(|c| c["plausibility"]["verdict"] == "ok")
        );
        assert_eq!(j["plausibility"]["verdict"], "bogus");
        assert_eq!(
            j["plausibility"]["reasons"][0],
            "strip total 2400 W is above 1.25 × 1800 W rated (HS300 US)"
        );
        assert_eq!(j["emeter"]["power_w"], 2400.0);
        assert!(j["relay_state"].is_null());
        let t = render_table(&[d]);
        assert!(t.contains("2400‼"), "{t}");
        assert!(t.contains(" └ outlet 6"), "{t}");
        assert!(t.contains("1 device, 1 flagged"), "{t}");
    }

    #[test]
    fn table_marks_the_flagged_cell_cleans_device_text_and_lines_up() {
        let bogus = Plug::new(5, "Kitchen", "HS110(US)", "1.0", "1.2.6");
        let ok = Plug::new(6, "Desk\u{1b}[31m", "HS110(EU)", "4.0", "1.0.4");
        let app = model(&[
            (bogus, Some(reading(28000.0, 118.9, 0.128, 30.404)), vec![]),
            (ok, Some(reading(0.928, 231.06, 0.0149, 55.139)), vec![]),
        ]);
        let t = render_table(&app.fleet.by_address());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("IP "), "{t}");
        assert!(
            lines[1].contains("28000‼") && lines[1].contains("bogus‼"),
            "{t}"
        );
        assert!(!lines[1].contains("119‼"), "{t}");
        assert!(
            lines[2].contains("0.93 ") && lines[2].contains(" ok"),
            "{t}"
        );
        assert!(
            !t.contains('\u{1b}'),
            "control characters must not reach the terminal"
        );
        assert!(t.contains("2 devices, 1 flagged"), "{t}");
        let w_end = lines[0].find(" W ").expect("W header") + 2;
        for l in &lines[1..3] {
            let c = l.chars().nth(w_end - 1);
            assert!(c.is_some_and(|c| !c.is_whitespace()), "misaligned: {l:?}");
        }
    }

    #[test]
    fn a_long_or_wide_character_alias_never_shifts_a_column() {
        let plugs = [
            Plug::new(
                5,
                "台所の電気ケトルと冷蔵庫とコーヒーメーカー",
                "HS110(US)",
                "1.0",
                "1.2.6",
            ),
            Plug::new(6, "🔌🔌 desk", "HS110(EU)", "4.0", "1.0.4"),
            Plug::new(
                7,
                "a very long plain alias that goes on and on",
                "HS110(EU)",
                "4.0",
                "1.0.4",
            ),
            Plug::new(8, "x", "HS110(EU)", "4.0", "1.0.4"),
        ];
        let app = model(&plugs.map(|p| (p, Some(reading(12.5, 230.0, 0.06, 1.5)), vec![])));
        let t = render_table(&app.fleet.by_address());
        let lines: Vec<&str> = t.lines().take(5).collect();
        // Where the MODEL column starts, in display cells, on every line.
        let model_at = |l: &str, needle: &str| {
            l.find(needle)
                .map(|i| crate::text::width(&l[..i]))
                .unwrap_or_else(|| panic!("{needle} not in {l:?}\n{t}"))
        };
        let at = model_at(lines[0], "MODEL");
        for l in &lines[1..] {
            assert_eq!(model_at(l, "HS110"), at, "shifted:\n{t}");
        }
        // And the right-aligned W column ends at one display column.
        let w_end = |l: &str, n: &str| model_at(l, n) + n.len();
        let end = w_end(lines[0], " W ") - 1;
        for l in &lines[1..] {
            assert_eq!(w_end(l, "12.5"), end, "W shifted:\n{t}");
        }
        assert!(t.contains('…'), "the long aliases are cut with …:\n{t}");
    }
}
