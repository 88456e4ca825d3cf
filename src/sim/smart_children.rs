//! The children of a simulated SMART strip (P304M, P300), shaped on python-kasa's
//! `P304M(UK)_1.0_1.0.3.json` and `P300(EU)_1.0_1.0.13.json` fixtures, answered from the
//! plug's own outlets (the port-9999 state every profile keeps):
//!
//! - `get_child_device_list {start_index}`: pages of [`PAGE`] children with `start_index` and
//!   `sum`; each child has its `device_id` (the outlet's port-9999 child id), base64
//!   `nickname`, `device_on`, `on_time`, 1-based `position` and `slot_number` (the number of
//!   slots), `category` `plug.powerstrip.sub-plug` and the bare-hex `mac` of the fixtures;
//! - `get_child_device_component_list`: each child's `device` and, on a metered strip,
//!   `energy_monitoring` components (one page);
//! - `control_child {device_id, requestData}`: the child's own `get_device_info`,
//!   `set_device_info {device_on}`, and on a metered strip `get_energy_usage` (Wh, no
//!   `current_power`, as the P304M's outlets), `get_current_power` (W) and `get_emeter_data`
//!   (mW, mV, mA, Wh) with `get_emeter_vgain_igain` (the fixture's outlets lack both, but
//!   python-kasa 0.12 requires them of an `energy_monitoring` v2 component and reads no outlet
//!   energy without them); an unmetered
//!   strip's outlets answer the energy methods -1002; a `multipleRequest` inside is answered
//!   method by method. The reply is `{"error_code":0,"result":{"responseData":{…}}}`.
//!
//! The `children-*` KLAP faults make `get_child_device_list` hostile ([`Hostile`], for client
//! tests).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::load;
use super::plug::PlugShared;

/// Children per `get_child_device_list` page: a P304M's four come in two pages, so a client
/// must page.
pub const PAGE: usize = 3;
/// Children the `children-10000` fault lists in one page.
pub const HOSTILE_CHILDREN: usize = 10_000;
/// The `sum` the `children-endless` fault announces (a strip's worth, never delivered).
pub const ENDLESS_SUM: usize = 16;

const UNKNOWN_METHOD: i64 = -1002;
const PARAMS_ERROR: i64 = -1008;

fn ok(result: Value) -> Value {
    json!({"error_code": 0, "result": result})
}

fn code(c: i64) -> Value {
    json!({"error_code": c})
}

/// A port-9999 request to outlet `i` (its `context`), unwrapped to the method's object.
fn iot_child(
    plug: &Arc<PlugShared>,
    i: usize,
    module: &str,
    method: &str,
    args: Value,
    now: f64,
) -> Value {
    let req = json!({"context": {"child_ids": [plug.id.child_id(i)]}, module: {method: args}});
    let r = plug.respond(&req, now);
    r.get(module)
        .and_then(|m| m.get(method))
        .cloned()
        .unwrap_or(Value::Null)
}

/// One child entry, as in `get_child_device_list` and the child's `get_device_info`.
fn child_info(plug: &Arc<PlugShared>, i: usize, now: f64) -> Value {
    let p = plug.id.profile;
    let si = plug.sysinfo(now);
    let kid = si
        .get("children")
        .and_then(Value::as_array)
        .and_then(|c| c.get(i))
        .cloned()
        .unwrap_or(Value::Null);
    let s = |k: &str| si.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let model = s("model");
    let base = model.split('(').next().unwrap_or("").to_owned();
    let on = kid.get("state").and_then(Value::as_i64) == Some(1);
    let ty = p
        .discovery
        .as_ref()
        .and_then(|d| d.get("device_type"))
        .cloned()
        .unwrap_or_else(|| json!("SMART.TAPOPLUG"));
    json!({
        "auto_off_remain_time": 0,
        "auto_off_status": "off",
        "avatar": "plug",
        "bind_count": 1,
        "category": "plug.powerstrip.sub-plug",
        "default_states": {"type": "last_states"},
        "device_id": plug.id.child_id(i),
        "device_on": on,
        "fw_id": "00000000000000000000000000000000",
        "fw_ver": s("sw_ver"),
        "has_set_location_info": true,
        "hw_id": s("hwId"),
        "hw_ver": s("hw_ver"),
        "is_usb": false,
        "latitude": (plug.id.latitude * 10_000.0) as i64,
        "longitude": (plug.id.longitude * 10_000.0) as i64,
        "mac": s("mac").replace(':', ""),
        "model": base,
        "nickname": B64.encode(kid.get("alias").and_then(Value::as_str).unwrap_or("")),
        "oem_id": s("oemId"),
        "on_time": kid.get("on_time").cloned().unwrap_or(json!(0)),
        "original_device_id": s("deviceId"),
        "overheat_status": "normal",
        "position": i + 1,
        "region": "Europe/London",
        "slot_number": p.outlets.len(),
        "status_follow_edge": true,
        "type": ty,
    })
}

/// How a hostile `get_child_device_list` misbehaves (the `children-*` KLAP faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hostile {
    /// Every page holds the first child again and announces [`ENDLESS_SUM`].
    Endless,
    /// One page of [`HOSTILE_CHILDREN`] children.
    Huge,
    /// Children without `device_on`, with `device_on: "on"`, with a numeric `device_id`.
    Garbled,
}

/// `get_child_device_list`: the page from `params.start_index` (0 when absent or not a count).
pub(super) fn child_list(
    plug: &Arc<PlugShared>,
    params: &Value,
    hostile: Option<Hostile>,
    now: f64,
) -> Value {
    let n = plug.id.profile.outlets.len();
    let start = params
        .get("start_index")
        .and_then(Value::as_u64)
        .map_or(0, |s| s.min(n as u64) as usize);
    if hostile == Some(Hostile::Endless) {
        // Whatever the start: the first child again, and always more to come.
        return ok(json!({"child_device_list": [child_info(plug, 0, now)],
            "start_index": start, "sum": ENDLESS_SUM}));
    }
    if hostile == Some(Hostile::Huge) {
        // Short entries, so the page stays under a client's reply cap and reaches its parser.
        let list: Vec<Value> = (0..HOSTILE_CHILDREN)
            .map(|k| {
                json!({"device_id": format!("C{k:05}"), "device_on": k % 2 == 0,
                "position": k + 1})
            })
            .collect();
        return ok(json!({"child_device_list": list, "start_index": 0,
            "sum": HOSTILE_CHILDREN}));
    }
    let mut list: Vec<Value> = (start..n.min(start + PAGE))
        .map(|i| child_info(plug, i, now))
        .collect();
    if hostile == Some(Hostile::Garbled) {
        for (k, c) in list.iter_mut().enumerate() {
            if let Some(o) = c.as_object_mut() {
                match k % 3 {
                    0 => o.remove("device_on"),
                    1 => o.insert("device_on".into(), json!("on")),
                    _ => o.insert("device_id".into(), json!(42)),
                };
            }
        }
    }
    ok(json!({"child_device_list": list, "start_index": start, "sum": n}))
}

/// `get_child_device_component_list`: each child's components (python-kasa asks it before
/// the children's own methods), `energy_monitoring` on a metered strip's.
pub(super) fn child_components(plug: &Arc<PlugShared>) -> Value {
    let n = plug.id.profile.outlets.len();
    let mut components = vec![json!({"id": "device", "ver_code": 2})];
    if plug.id.profile.has_meter() {
        components.push(json!({"id": "energy_monitoring", "ver_code": 2}));
    }
    let list: Vec<Value> = (0..n)
        .map(|i| json!({"device_id": plug.id.child_id(i), "component_list": components}))
        .collect();
    ok(json!({"child_component_list": list, "start_index": 0, "sum": n}))
}

/// `control_child {device_id, requestData}`: the child's own reply in `responseData`.
pub(super) fn control_child(plug: &Arc<PlugShared>, params: &Value, now: f64) -> Value {
    let n = plug.id.profile.outlets.len();
    let Some(id) = params.get("device_id").and_then(Value::as_str) else {
        return code(PARAMS_ERROR);
    };
    let Some(i) = (0..n).find(|&i| plug.id.child_id(i).eq_ignore_ascii_case(id)) else {
        return code(PARAMS_ERROR);
    };
    let Some(inner) = params.get("requestData").filter(|r| r.is_object()) else {
        return code(PARAMS_ERROR);
    };
    let method = inner.get("method").and_then(Value::as_str).unwrap_or("");
    let args = inner.get("params").cloned().unwrap_or(Value::Null);
    let reply = if method == "multipleRequest" {
        match args.get("requests").and_then(Value::as_array) {
            None => code(PARAMS_ERROR),
            Some(list) => {
                let responses: Vec<Value> = list
                    .iter()
                    .take(32)
                    .map(|r| {
                        let m = r.get("method").and_then(Value::as_str).unwrap_or("");
                        let p = r.get("params").cloned().unwrap_or(Value::Null);
                        let mut one = child_method(plug, i, m, &p, now);
                        if let Some(o) = one.as_object_mut() {
                            o.insert("method".into(), json!(m));
                        }
                        one
                    })
                    .collect();
                ok(json!({ "responses": responses }))
            }
        }
    } else {
        child_method(plug, i, method, &args, now)
    };
    ok(json!({ "responseData": reply }))
}

fn child_method(plug: &Arc<PlugShared>, i: usize, method: &str, params: &Value, now: f64) -> Value {
    let metered = plug.id.profile.has_meter();
    match method {
        "get_device_info" => ok(child_info(plug, i, now)),
        "set_device_info" => match params.get("device_on").and_then(Value::as_bool) {
            Some(on) => {
                let args = json!({"state": u8::from(on)});
                iot_child(plug, i, "system", "set_relay_state", args, now);
                ok(json!({}))
            }
            None => code(PARAMS_ERROR),
        },
        "get_current_power" if metered => {
            let rt = iot_child(plug, i, "emeter", "get_realtime", json!({}), now);
            let mw = rt.get("power_mw").and_then(Value::as_i64).unwrap_or(0);
            ok(json!({"current_power": (mw as f64 / 1000.0).round() as i64}))
        }
        "get_energy_usage" if metered => ok(energy_usage(plug, i, now)),
        "get_emeter_vgain_igain" if metered => ok(json!({"igain": 10861, "vgain": 118657})),
        "get_emeter_data" if metered => {
            let rt = iot_child(plug, i, "emeter", "get_realtime", json!({}), now);
            let g = |k: &str| rt.get(k).and_then(Value::as_i64).unwrap_or(0);
            ok(
                json!({"power_mw": g("power_mw"), "voltage_mv": g("voltage_mv"),
                "current_ma": g("current_ma"), "energy_wh": g("total_wh")}),
            )
        }
        _ => code(UNKNOWN_METHOD),
    }
}

/// An outlet's `get_energy_usage` as a P304M's outlets answer it: today's and this month's Wh
/// and minutes, no `current_power`.
fn energy_usage(plug: &Arc<PlugShared>, i: usize, now: f64) -> Value {
    let day = (now / 86_400.0).floor() as i64;
    let (y, m, d) = load::civil_from_days(day);
    let days = iot_child(
        plug,
        i,
        "emeter",
        "get_daystat",
        json!({"year": y, "month": m}),
        now,
    );
    let months = iot_child(plug, i, "emeter", "get_monthstat", json!({"year": y}), now);
    let pick = |list: &Value, key: &str, field: &str, want: u32| {
        list.get(key)
            .and_then(Value::as_array)
            .and_then(|l| {
                l.iter()
                    .find(|e| e.get(field).and_then(Value::as_u64) == Some(u64::from(want)))
            })
            .and_then(|e| e.get("energy_wh"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let s = now.rem_euclid(86_400.0) as u64;
    json!({
        "today_energy": pick(&days, "day_list", "day", d),
        "month_energy": pick(&months, "month_list", "month", m),
        "today_runtime": s / 60,
        "month_runtime": (u64::from(d) - 1) * 1440 + s / 60,
        "local_time": format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            s / 3600, (s / 60) % 60, s % 60),
        "electricity_charge": [0, 0, 0],
    })
}
