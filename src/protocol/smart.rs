//! The SMART JSON-RPC dialect (KP125M, EP25, Tapo P1xx), mapped into the same model as the
//! port-9999 replies: `get_device_info` becomes a [`SysInfo`], the energy methods a
//! [`Realtime`] in canonical units. Pure; the requests are plain [`Value`]s.
//!
//! Shapes (PROTOCOL.md §8.4, python-kasa `smartprotocol.py`, `smart/modules/energy.py`):
//! - `multipleRequest {"requests":[{"method":…},…]}` answers `{"responses":[{"method", "error_code",
//!   "result"},…]}`, each sub-result with its own `error_code`; firmware stops at the first
//!   method that fails (python-kasa re-asks the rest one by one), so the order matters;
//! - `nickname` and `ssid` are base64; `model` has no region (`KP125M`), the discovery reply's
//!   does (`KP125M(US)`); the MAC uses dashes;
//! - `get_emeter_data` (newer firmware): `power_mw`, `voltage_mv`, `current_ma`, `energy_wh`;
//!   `get_energy_usage`: `current_power` in mW, `today_energy`/`month_energy` in Wh;
//!   `get_current_power`: `current_power` in W (the fallback).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use super::reply::{Realtime, ReplyError, SysInfo, split_model};

/// The methods one poll asks, in one `multipleRequest`. Real firmware stops at the first method
/// it does not have (python-kasa's `smartprotocol.py` queries the rest one by one for that
/// reason), so `get_energy_usage`, which every metered SMART plug answers, comes before
/// `get_emeter_data`, which `energy_monitoring` version-1 firmware (P110 fw 1.0.7) lacks.
pub const POLL_METHODS: [&str; 3] = ["get_device_info", "get_energy_usage", "get_emeter_data"];

/// `{"method": m}` (with `params` when given).
pub fn request(method: &str, params: Option<Value>) -> Value {
    match params {
        Some(p) => json!({"method": method, "params": p}),
        None => json!({"method": method}),
    }
}

/// One `multipleRequest` asking each of `methods` without parameters.
pub fn multiple(methods: &[&str]) -> Value {
    let list: Vec<Value> = methods.iter().map(|m| request(m, None)).collect();
    request("multipleRequest", Some(json!({ "requests": list })))
}

/// The poll's request: device info and both energy methods.
pub fn poll_request() -> Value {
    multiple(&POLL_METHODS)
}

/// `set_device_info {"device_on": on}`.
pub fn set_relay_request(on: bool) -> Value {
    request("set_device_info", Some(json!({ "device_on": on })))
}

fn code_of(v: &Value) -> i64 {
    v.get("error_code").and_then(Value::as_i64).unwrap_or(0)
}

fn device_error(method: &str, code: i64) -> ReplyError {
    ReplyError::Device {
        module: "smart".into(),
        method: method.into(),
        code,
        msg: format!("{method} answered error_code {code}"),
    }
}

/// The `result` of a single-method reply (`{"error_code":0,"result":{…}}`).
pub fn result_of<'a>(reply: &'a Value, method: &str) -> Result<&'a Value, ReplyError> {
    if !reply.is_object() {
        return Err(ReplyError::Shape(format!(
            "{method} reply is not an object"
        )));
    }
    match code_of(reply) {
        0 => reply
            .get("result")
            .ok_or_else(|| ReplyError::Shape(format!("{method} reply has no `result`"))),
        code => Err(device_error(method, code)),
    }
}

/// One sub-result of a `multipleRequest`: the method and its result or error.
pub type SubResult = (String, Result<Value, ReplyError>);

/// The sub-results of a `multipleRequest` reply, by method: each `Ok(result)` or the
/// sub-request's own error. A method the device did not answer (some firmware stops at the
/// first error) is absent.
pub fn responses(reply: &Value) -> Result<Vec<SubResult>, ReplyError> {
    let r = result_of(reply, "multipleRequest")?;
    let list = r
        .get("responses")
        .and_then(Value::as_array)
        .ok_or_else(|| ReplyError::Shape("multipleRequest reply has no `responses` list".into()))?;
    Ok(list
        .iter()
        .filter_map(|one| {
            let m = one.get("method").and_then(Value::as_str)?.to_owned();
            let r = result_of(one, &m).cloned();
            Some((m, r))
        })
        .collect())
}

fn b64_text(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?;
    match B64.decode(s.trim()) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        // Some firmware sends it plain.
        Err(_) => Some(s.to_owned()),
    }
}

/// `get_device_info` as a [`SysInfo`]. `discovery_model` (`KP125M(US)`) replaces the region-less
/// `model` when it is the same base model; `metered` sets the `ENE` feature.
pub fn sysinfo(
    info: &Value,
    discovery_model: Option<&str>,
    metered: bool,
) -> Result<SysInfo, ReplyError> {
    let o = info
        .as_object()
        .ok_or_else(|| ReplyError::Shape("get_device_info is not an object".into()))?;
    let s = |k: &str| o.get(k).cloned().unwrap_or(Value::Null);
    let own = o.get("model").and_then(Value::as_str).unwrap_or("");
    let model = match discovery_model {
        Some(d) if own.is_empty() || split_model(d).0 == split_model(own).0 => d.to_owned(),
        _ => own.to_owned(),
    };
    let mut m = Map::new();
    m.insert("model".into(), json!(model));
    m.insert("hw_ver".into(), s("hw_ver"));
    m.insert("sw_ver".into(), s("fw_ver"));
    m.insert("mac".into(), s("mac"));
    m.insert("deviceId".into(), s("device_id"));
    for (from, to) in [("hw_id", "hwId"), ("fw_id", "fwId"), ("oem_id", "oemId")] {
        if let Some(v) = o.get(from) {
            m.insert(to.into(), v.clone());
        }
    }
    m.insert(
        "alias".into(),
        json!(b64_text(o.get("nickname")).unwrap_or_default()),
    );
    if let Some(t) = o.get("type") {
        m.insert("mic_type".into(), t.clone());
    }
    m.insert(
        "feature".into(),
        json!(if metered { "TIM:ENE" } else { "TIM" }),
    );
    if let Some(on) = o.get("device_on").and_then(Value::as_bool) {
        m.insert("relay_state".into(), json!(u8::from(on)));
    }
    for k in ["on_time", "rssi"] {
        if let Some(v) = o.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    // SMART coordinates are degrees × 10⁴, like `latitude_i`.
    for (from, to) in [("latitude", "latitude_i"), ("longitude", "longitude_i")] {
        if let Some(v) = o.get(from).filter(|v| v.is_i64()) {
            m.insert(to.into(), v.clone());
        }
    }
    SysInfo::from_result(&Value::Object(m))
}

/// The reading of one poll, in canonical units: `get_emeter_data` when it answered (mW, mV, mA,
/// Wh), else `get_energy_usage.current_power` (mW), else `get_current_power` (W).
pub fn realtime(
    emeter_data: Option<&Value>,
    energy_usage: Option<&Value>,
    current_power: Option<&Value>,
) -> Result<Realtime, ReplyError> {
    if let Some(e) = emeter_data.and_then(Value::as_object) {
        let mut m = Map::new();
        for (from, to) in [
            ("power_mw", "power_mw"),
            ("voltage_mv", "voltage_mv"),
            ("current_ma", "current_ma"),
            ("energy_wh", "total_wh"),
        ] {
            if let Some(v) = e.get(from) {
                m.insert(to.into(), v.clone());
            }
        }
        return Realtime::from_result(&Value::Object(m));
    }
    if let Some(p) = energy_usage.and_then(|u| u.get("current_power")) {
        return Realtime::from_result(&json!({ "power_mw": p }));
    }
    if let Some(p) = current_power.and_then(|u| u.get("current_power")) {
        return Realtime::from_result(&json!({ "power": p }));
    }
    Err(ReplyError::Shape(
        "no energy method answered (get_emeter_data, get_energy_usage, get_current_power)".into(),
    ))
}

/// A whole poll reply (`multipleRequest` of [`POLL_METHODS`]): the sysinfo and, for a device
/// with a meter, its reading (`Err` when the meter methods failed).
pub fn poll_reply(
    reply: &Value,
    discovery_model: Option<&str>,
) -> Result<(SysInfo, Option<Result<Realtime, ReplyError>>), ReplyError> {
    let mut info = None;
    let mut emeter = None;
    let mut usage = None;
    let mut meter_err = None;
    for (m, r) in responses(reply)? {
        match (m.as_str(), r) {
            ("get_device_info", r) => info = Some(r?),
            ("get_emeter_data", Ok(v)) => emeter = Some(v),
            ("get_energy_usage", Ok(v)) => usage = Some(v),
            (_, Err(e)) => meter_err = Some(e),
            _ => {}
        }
    }
    let info = info.ok_or_else(|| ReplyError::Shape("no get_device_info in the reply".into()))?;
    let metered = emeter.is_some() || usage.is_some();
    let sys = sysinfo(&info, discovery_model, metered)?;
    let reading = if metered {
        Some(realtime(emeter.as_ref(), usage.as_ref(), None))
    } else {
        // A device without energy monitoring answers "unknown method" (and stops there): no
        // meter.
        let _ = meter_err;
        None
    };
    Ok((sys, reading))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped on python-kasa's `tests/fixtures/smart/KP125M(US)_1.0_1.1.3.json`.
    fn info() -> Value {
        json!({
            "device_id": "8022852468EC205A8178C7CBE81FD119213BEB3F",
            "fw_ver": "1.1.3 Build 230801 Rel.092557",
            "hw_ver": "1.0",
            "type": "SMART.KASAPLUG",
            "model": "KP125M",
            "mac": "00-00-00-00-00-00",
            "hw_id": "00000000000000000000000000000000",
            "fw_id": "00000000000000000000000000000000",
            "oem_id": "00000000000000000000000000000000",
            "nickname": "IyNNQVNLRUROQU1FIyM=",
            "device_on": true,
            "on_time": 5332,
            "rssi": -62,
            "signal_level": 2,
            "latitude": 455100,
            "longitude": -1226700
        })
    }

    #[test]
    fn device_info_maps_into_sysinfo() {
        let s = sysinfo(&info(), Some("KP125M(US)"), true).expect("sysinfo");
        assert_eq!(s.model, "KP125M(US)");
        assert_eq!(s.alias, "##MASKEDNAME##");
        assert_eq!(s.sw_ver, "1.1.3 Build 230801 Rel.092557");
        assert_eq!(s.mac, "00:00:00:00:00:00");
        assert_eq!(s.device_id, "8022852468EC205A8178C7CBE81FD119213BEB3F");
        assert_eq!(s.hw_id.as_deref(), Some("00000000000000000000000000000000"));
        assert_eq!(s.relay_on, Some(true));
        assert_eq!(s.rssi, Some(-62));
        assert_eq!(s.on_time, Some(5332));
        assert_eq!(s.device_type.as_deref(), Some("SMART.KASAPLUG"));
        assert!(s.has_emeter());
        assert_eq!(s.latitude, Some(45.51));
        // Another model in discovery than in the info: the device's own wins.
        let s = sysinfo(&info(), Some("EP25(US)"), false).expect("sysinfo");
        assert_eq!(s.model, "KP125M");
        assert!(!s.has_emeter());
    }

    #[test]
    fn energy_is_in_canonical_units() {
        let r = realtime(
            Some(&json!({"power_mw": 12_345, "voltage_mv": 121_500, "current_ma": 104, "energy_wh": 2_500})),
            None,
            None,
        )
        .expect("emeter data");
        assert_eq!(r.power_w, Some(12.345));
        assert_eq!(r.voltage_v, Some(121.5));
        assert_eq!(r.current_a, Some(0.104));
        assert_eq!(r.total_kwh, Some(2.5));
        let r = realtime(
            None,
            Some(&json!({"current_power": 28_000_000, "today_energy": 3})),
            None,
        )
        .expect("usage");
        assert_eq!(
            r.power_w,
            Some(28_000.0),
            "28 kW: the glitch the rules flag"
        );
        assert_eq!(
            r.total_kwh, None,
            "today's energy is not the lifetime total"
        );
        let r = realtime(None, None, Some(&json!({"current_power": 7}))).expect("W");
        assert_eq!(r.power_w, Some(7.0));
        assert!(realtime(None, None, None).is_err());
    }

    #[test]
    fn a_multiple_request_reply_maps_each_sub_result() {
        let reply = json!({"error_code": 0, "result": {"responses": [
            {"method": "get_device_info", "error_code": 0, "result": info()},
            {"method": "get_emeter_data", "error_code": -1002},
            {"method": "get_energy_usage", "error_code": 0, "result": {"current_power": 1500}},
        ]}});
        let (s, r) = poll_reply(&reply, Some("KP125M(US)")).expect("poll");
        assert_eq!(s.model, "KP125M(US)");
        assert_eq!(r.expect("metered").expect("reading").power_w, Some(1.5));
        let bare = json!({"error_code": 0, "result": {"responses": [
            {"method": "get_device_info", "error_code": 0, "result": info()},
            {"method": "get_emeter_data", "error_code": -1002},
            {"method": "get_energy_usage", "error_code": -1002},
        ]}});
        let (s, r) = poll_reply(&bare, None).expect("poll");
        assert!(r.is_none() && !s.has_emeter());
        let failed = json!({"error_code": 0, "result": {"responses": [
            {"method": "get_device_info", "error_code": -1501},
        ]}});
        assert!(matches!(
            poll_reply(&failed, None),
            Err(ReplyError::Device { code: -1501, .. })
        ));
        assert!(poll_reply(&json!({"error_code": -1003}), None).is_err());
        assert!(poll_reply(&json!([1, 2]), None).is_err());
    }

    /// A device's reply to a `multipleRequest` the way python-kasa describes real firmware
    /// (`kasa/protocols/smartprotocol.py`: "Multi requests don't continue after errors so
    /// requery any missing"): the methods in order, and nothing after the first one the device
    /// does not have (`known` maps each method it has to its result). python-kasa's fake device
    /// (`tests/fakeprotocol_smart.py`) leaves the failing one out too; `with_error` keeps it.
    fn stops_at_first_error(methods: &[&str], known: &Value, with_error: bool) -> Value {
        let mut responses = Vec::new();
        for m in methods {
            match known.get(*m) {
                Some(r) => responses.push(json!({"method": m, "error_code": 0, "result": r})),
                None => {
                    if with_error {
                        responses.push(json!({"method": m, "error_code": -1002}));
                    }
                    break;
                }
            }
        }
        json!({"error_code": 0, "result": {"responses": responses}})
    }

    #[test]
    fn energy_monitoring_v1_firmware_gives_its_watts_though_it_stops_at_the_first_error() {
        // P110(EU) fw 1.0.7 (python-kasa `tests/fixtures/smart/P110(EU)_1.0_1.0.7.json`):
        // `energy_monitoring` ver_code 1 — `get_energy_usage` only, no `get_emeter_data`
        // (python-kasa's Energy module asks a version-1 device for nothing else).
        for with_error in [false, true] {
            let mut p110 = info();
            p110["model"] = json!("P110");
            p110["type"] = json!("SMART.TAPOPLUG");
            let usage = json!({"current_power": 61_250, "today_energy": 40, "month_energy": 430,
                "today_runtime": 90, "month_runtime": 2000, "local_time": "2024-02-26 23:29:21"});
            let known = json!({"get_device_info": p110, "get_energy_usage": usage});
            let reply = stops_at_first_error(&POLL_METHODS, &known, with_error);
            let (s, r) = poll_reply(&reply, Some("P110(EU)")).expect("poll");
            assert!(s.has_emeter(), "a P110 has a meter: {reply}");
            let r = r.expect("metered").expect("reading");
            assert_eq!(r.power_w, Some(61.25));
            assert_eq!((r.voltage_v, r.current_a), (None, None));
            // Newer firmware with `get_emeter_data` still gives volts and amps from it.
            let known = json!({"get_device_info": info(), "get_energy_usage": usage,
                "get_emeter_data": {"power_mw": 61_300, "voltage_mv": 121_000, "current_ma": 510,
                "energy_wh": 430}});
            let (_, r) = poll_reply(
                &stops_at_first_error(&POLL_METHODS, &known, with_error),
                None,
            )
            .expect("poll");
            let r = r.expect("metered").expect("reading");
            assert_eq!((r.power_w, r.voltage_v), (Some(61.3), Some(121.0)));
            // A plug without energy monitoring (a P100) is a plug without a meter.
            let known = json!({"get_device_info": info()});
            let (s, r) = poll_reply(
                &stops_at_first_error(&POLL_METHODS, &known, with_error),
                None,
            )
            .expect("poll");
            assert!(r.is_none() && !s.has_emeter());
        }
    }

    #[test]
    fn requests_have_the_wire_shape() {
        assert_eq!(
            poll_request(),
            json!({"method": "multipleRequest", "params": {"requests": [
                {"method": "get_device_info"}, {"method": "get_energy_usage"},
                {"method": "get_emeter_data"}]}})
        );
        assert_eq!(
            set_relay_request(false),
            json!({"method": "set_device_info", "params": {"device_on": false}})
        );
    }

    proptest::proptest! {
        #[test]
        fn hostile_replies_never_panic(s: String) {
            let v = serde_json::from_str::<Value>(&s).unwrap_or(Value::String(s));
            let _ = poll_reply(&v, Some("P110(EU)"));
            let _ = sysinfo(&v, None, true);
        }
    }
}
