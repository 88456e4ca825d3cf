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

use super::reply::{Realtime, ReplyError, SysInfo, device_text, split_model};

/// The methods one poll asks, in one `multipleRequest`. Real firmware stops at the first method
/// it does not have (python-kasa's `smartprotocol.py` queries the rest one by one for that
/// reason), so they go from the most to the least widely answered: `get_energy_usage`, which
/// every metered SMART plug answers, before `get_emeter_data`, which `energy_monitoring`
/// version-1 firmware (P110 fw 1.0.7) lacks; `get_child_device_list` last (a plug answers it
/// "unknown method"; a strip whose parent stops at the energy methods has it asked on its own).
pub const POLL_METHODS: [&str; 4] = [
    "get_device_info",
    "get_energy_usage",
    "get_emeter_data",
    CHILD_LIST,
];

/// The paged list of a strip's children (`start_index`, `sum`).
pub const CHILD_LIST: &str = "get_child_device_list";

/// The energy methods asked of one child through `control_child` (a P304M's outlets answer
/// `get_energy_usage` without `current_power`, and `get_current_power` in W).
pub const CHILD_POLL_METHODS: [&str; 3] =
    ["get_emeter_data", "get_energy_usage", "get_current_power"];

/// Most children a strip may list (HS300: 6, P300 and KP303: 3, P304M: 4); a reply announcing
/// more is refused, not trusted.
pub const MAX_CHILDREN: usize = 16;

/// Most `get_child_device_list` pages read in one poll (the first included): a device that
/// pages on and on, or one child at a time past this, is refused.
pub const MAX_CHILD_PAGES: usize = 8;

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
    SysInfo::from_result(&Value::Object(sysinfo_map(info, discovery_model, metered)?))
}

/// A SMART strip's `get_device_info` with its children, as the [`SysInfo`] of a port-9999 strip:
/// each child becomes a `children` entry (`id` = its `device_id`, `alias`, `state`, `on_time`),
/// in `position` order, so every view shows its outlets as it does an HS300's. `metered`: the
/// children have meters (the parent of a P304M has none of its own).
pub fn strip_sysinfo(
    info: &Value,
    discovery_model: Option<&str>,
    metered: bool,
    children: &[SmartChild],
) -> Result<SysInfo, ReplyError> {
    let mut m = sysinfo_map(info, discovery_model, metered)?;
    let list: Vec<Value> = children
        .iter()
        .map(|c| {
            let mut o = json!({"id": c.device_id, "alias": c.alias, "state": u8::from(c.on)});
            if let (Some(t), Some(obj)) = (c.on_time, o.as_object_mut()) {
                obj.insert("on_time".into(), json!(t));
            }
            o
        })
        .collect();
    m.insert("child_num".into(), json!(list.len()));
    m.insert("children".into(), Value::Array(list));
    // A strip's relays are its outlets'; the parent's own `device_on` (P300) is not one.
    m.remove("relay_state");
    let mut s = SysInfo::from_result(&Value::Object(m))?;
    // The outlet's identity is its `device_id` as sent (short ones are not an index to
    // prefix with the parent's id, as on port 9999): what `control_child` addresses.
    for (ci, c) in s.children.iter_mut().zip(children) {
        ci.id.clone_from(&c.device_id);
    }
    Ok(s)
}

fn sysinfo_map(
    info: &Value,
    discovery_model: Option<&str>,
    metered: bool,
) -> Result<Map<String, Value>, ReplyError> {
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
    Ok(m)
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

/// One child of a SMART strip, from `get_child_device_list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartChild {
    /// As the device sent it: what `control_child` addresses.
    pub device_id: String,
    /// `nickname`, base64-decoded.
    pub alias: String,
    pub on: bool,
    /// 1-based place on the strip.
    pub position: Option<i64>,
    pub on_time: Option<i64>,
}

/// The request for the page of children from `start_index` on (0: the first page).
pub fn child_list_request(start_index: usize) -> Value {
    request(CHILD_LIST, Some(json!({ "start_index": start_index })))
}

/// `inner` (one method or a `multipleRequest`) sent to the child `device_id` of a strip.
pub fn control_child(device_id: &str, inner: Value) -> Value {
    request(
        "control_child",
        Some(json!({"device_id": device_id, "requestData": inner})),
    )
}

/// One child's energy: a `multipleRequest` of [`CHILD_POLL_METHODS`] inside `control_child`.
pub fn child_poll_request(device_id: &str) -> Value {
    control_child(device_id, multiple(&CHILD_POLL_METHODS))
}

/// Switches one outlet: `set_device_info {device_on}` inside `control_child`.
pub fn child_relay_request(device_id: &str, on: bool) -> Value {
    control_child(device_id, set_relay_request(on))
}

/// The child's own reply inside a `control_child` reply (`result.responseData`).
pub fn child_response(reply: &Value) -> Result<&Value, ReplyError> {
    let r = result_of(reply, "control_child")?;
    r.get("responseData")
        .filter(|d| d.is_object())
        .ok_or_else(|| ReplyError::Shape("control_child reply has no `responseData` object".into()))
}

/// One page of `get_child_device_list`: its children (raw) and the `start_index` and `sum` it
/// announces.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildPage {
    pub children: Vec<Value>,
    pub start_index: usize,
    pub sum: usize,
}

fn count(o: &Value, key: &str, what: &str) -> Result<Option<usize>, ReplyError> {
    match o.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| ReplyError::Shape(format!("{what} `{key}` is not a count"))),
    }
}

/// Reads one page (the `result` of `get_child_device_list`). A page or a `sum` of more than
/// [`MAX_CHILDREN`] is an error.
pub fn child_page(result: &Value) -> Result<ChildPage, ReplyError> {
    let what = CHILD_LIST;
    let list = result
        .get("child_device_list")
        .and_then(Value::as_array)
        .ok_or_else(|| ReplyError::Shape(format!("{what} has no `child_device_list` list")))?;
    let start_index = count(result, "start_index", what)?.unwrap_or(0);
    let sum = count(result, "sum", what)?.unwrap_or(start_index + list.len());
    if sum > MAX_CHILDREN || list.len() > MAX_CHILDREN {
        return Err(ReplyError::Shape(format!(
            "{what} announces {} children, more than a strip has ({MAX_CHILDREN})",
            sum.max(list.len())
        )));
    }
    Ok(ChildPage {
        children: list.clone(),
        start_index,
        sum,
    })
}

/// One child entry. `device_id` (a non-empty string) and `device_on` (a bool) are required.
pub fn smart_child(v: &Value) -> Result<SmartChild, ReplyError> {
    let o = v
        .as_object()
        .ok_or_else(|| ReplyError::Shape("a child is not an object".into()))?;
    let device_id = o
        .get("device_id")
        .and_then(Value::as_str)
        // Printable as it is: the id shown is the id addressed.
        .filter(|s| !s.trim().is_empty() && s.len() <= 128 && device_text(s) == *s)
        .ok_or_else(|| ReplyError::Shape("a child has no printable string `device_id`".into()))?
        .to_owned();
    let on = o
        .get("device_on")
        .and_then(Value::as_bool)
        .ok_or_else(|| ReplyError::Shape(format!("child {device_id} has no bool `device_on`")))?;
    Ok(SmartChild {
        alias: b64_text(o.get("nickname")).unwrap_or_default(),
        on,
        position: o.get("position").and_then(Value::as_i64),
        on_time: o.get("on_time").and_then(Value::as_i64),
        device_id,
    })
}

/// All children read from the pages, in `position` order (those without one last). A
/// `device_id` listed twice is an error.
pub fn smart_children(raw: &[Value]) -> Result<Vec<SmartChild>, ReplyError> {
    if raw.len() > MAX_CHILDREN {
        return Err(ReplyError::Shape(format!(
            "{CHILD_LIST} lists {} children, more than a strip has ({MAX_CHILDREN})",
            raw.len()
        )));
    }
    let mut out = raw.iter().map(smart_child).collect::<Result<Vec<_>, _>>()?;
    for (i, c) in out.iter().enumerate() {
        if out[..i].iter().any(|d| d.device_id == c.device_id) {
            return Err(ReplyError::Shape(format!(
                "{CHILD_LIST} lists child {} twice",
                c.device_id
            )));
        }
    }
    out.sort_by_key(|c| (c.position.is_none(), c.position));
    Ok(out)
}

/// One child's reading from the reply to [`child_poll_request`]: `Ok(None)` when the child has
/// no meter (every energy method answered an error: a P300's outlets).
pub fn child_reading(reply: &Value) -> Result<Option<Realtime>, ReplyError> {
    let inner = child_response(reply)?;
    let mut got: [Option<Value>; 3] = [None, None, None];
    let mut first_err = None;
    for (m, r) in responses(inner)? {
        match (CHILD_POLL_METHODS.iter().position(|x| *x == m), r) {
            (Some(i), Ok(v)) => got[i] = Some(v),
            (Some(_), Err(e)) => {
                first_err.get_or_insert(e);
            }
            (None, _) => {}
        }
    }
    let [emeter, usage, power] = got;
    // `get_energy_usage` without `current_power` (a P304M outlet) gives no watts of its own.
    let usage = usage.filter(|u| u.get("current_power").is_some());
    if emeter.is_none() && usage.is_none() && power.is_none() {
        return match first_err {
            Some(_) => Ok(None),
            None => Err(ReplyError::Shape(
                "the child's energy reply holds no energy method".into(),
            )),
        };
    }
    realtime(emeter.as_ref(), usage.as_ref(), power.as_ref()).map(Some)
}

/// What a poll reply (`multipleRequest` of [`POLL_METHODS`]) says about children.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildList {
    /// `get_child_device_list` answered an error: not a strip.
    None,
    /// Not in the reply (firmware that stops at the first error): ask it on its own.
    Unanswered,
    /// The first page.
    Page(ChildPage),
}

/// A poll reply read: [`poll_reply`]'s parts, what it says about children, and the raw
/// `get_device_info` (a strip's [`strip_sysinfo`] is built from it once the children are read).
#[derive(Debug, Clone, PartialEq)]
pub struct PollParts {
    pub sysinfo: SysInfo,
    pub reading: Option<Result<Realtime, ReplyError>>,
    pub children: ChildList,
    pub info: Value,
}

/// [`poll_reply`] with what the reply says about children.
pub fn poll_parts(reply: &Value, discovery_model: Option<&str>) -> Result<PollParts, ReplyError> {
    let mut children = ChildList::Unanswered;
    let mut info = None;
    for (m, r) in responses(reply)? {
        match (m.as_str(), r) {
            (CHILD_LIST, Ok(v)) => children = ChildList::Page(child_page(&v)?),
            (CHILD_LIST, Err(_)) => children = ChildList::None,
            ("get_device_info", Ok(v)) => info = Some(v),
            _ => {}
        }
    }
    let (sysinfo, reading) = poll_reply(reply, discovery_model)?;
    Ok(PollParts {
        sysinfo,
        reading,
        children,
        info: info.unwrap_or(Value::Null),
    })
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
                {"method": "get_emeter_data"}, {"method": "get_child_device_list"}]}})
        );
        assert_eq!(
            child_relay_request("C1", true),
            json!({"method": "control_child", "params": {"device_id": "C1", "requestData":
                {"method": "set_device_info", "params": {"device_on": true}}}})
        );
        assert_eq!(
            child_poll_request("C1")["params"]["requestData"]["params"]["requests"][2],
            json!({"method": "get_current_power"})
        );
        assert_eq!(
            child_list_request(4),
            json!({"method": "get_child_device_list", "params": {"start_index": 4}})
        );
        assert_eq!(
            set_relay_request(false),
            json!({"method": "set_device_info", "params": {"device_on": false}})
        );
    }

    /// A child entry shaped on python-kasa's `P304M(UK)_1.0_1.0.3.json` `get_child_device_list`.
    fn child(id: &str, position: i64, on: bool, name: &str) -> Value {
        json!({
            "auto_off_status": "off", "avatar": "plug", "bind_count": 1,
            "category": "plug.powerstrip.sub-plug", "device_id": id, "device_on": on,
            "fw_ver": "1.0.3 Build 240605 Rel.091502", "hw_ver": "1.0", "mac": "A86E84000000",
            "model": "P304M", "nickname": B64.encode(name), "on_time": if on { 120 } else { 0 },
            "original_device_id": "0000000000000000000000000000000000000000",
            "position": position, "slot_number": 4, "type": "SMART.TAPOPLUG"
        })
    }

    #[test]
    fn a_strips_children_become_its_outlets_in_position_order() {
        let page = child_page(&json!({"child_device_list": [
            child("C2", 2, false, "Kettle"), child("C1", 1, true, "Lamp")],
            "start_index": 0, "sum": 4}))
        .expect("page");
        assert_eq!((page.start_index, page.sum, page.children.len()), (0, 4, 2));
        let mut raw = page.children;
        raw.push(child("C4", 4, true, "Fridge"));
        raw.push(child("C3", 3, false, "TV"));
        let kids = smart_children(&raw).expect("children");
        let names: Vec<&str> = kids.iter().map(|c| c.alias.as_str()).collect();
        assert_eq!(names, ["Lamp", "Kettle", "TV", "Fridge"]);
        let info = json!({"device_id": "P", "fw_ver": "1.0.3 Build 240605 Rel.091502",
            "hw_ver": "1.0", "mac": "A8-6E-84-00-00-00", "model": "P304M",
            "nickname": B64.encode("Strip"), "type": "SMART.TAPOPLUG", "rssi": -44});
        let s = strip_sysinfo(&info, Some("P304M(UK)"), true, &kids).expect("sysinfo");
        assert_eq!(s.model, "P304M(UK)");
        assert_eq!(s.alias, "Strip");
        assert!(s.has_emeter() && s.relay_on.is_none());
        assert_eq!(s.kind(), crate::protocol::Kind::Strip);
        let ids: Vec<&str> = s.children.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["C1", "C2", "C3", "C4"]);
        assert!(s.children[0].relay_on && !s.children[1].relay_on);
        assert_eq!(s.children[0].on_time, Some(120));
        assert!(
            !strip_sysinfo(&info, None, false, &kids)
                .expect("s")
                .has_emeter()
        );
    }

    #[test]
    fn hostile_child_lists_are_typed_errors() {
        let shape = |r: Result<ChildPage, ReplyError>| matches!(r, Err(ReplyError::Shape(_)));
        assert!(shape(child_page(&json!({"sum": 1}))));
        assert!(shape(child_page(
            &json!({"child_device_list": {}, "sum": 1})
        )));
        assert!(shape(child_page(
            &json!({"child_device_list": [], "sum": "4"})
        )));
        assert!(shape(child_page(
            &json!({"child_device_list": [], "sum": -1})
        )));
        assert!(shape(child_page(
            &json!({"child_device_list": [], "sum": 10_000})
        )));
        let many: Vec<Value> = (0..10_000)
            .map(|i| child(&format!("C{i}"), i, true, "x"))
            .collect();
        assert!(shape(child_page(
            &json!({"child_device_list": many.clone(), "sum": 10_000})
        )));
        assert!(smart_children(&many).is_err());
        for bad in [
            json!("child"),
            json!({"device_on": true}),
            json!({"device_id": 7, "device_on": true}),
            json!({"device_id": "", "device_on": true}),
            json!({"device_id": "C1"}),
            json!({"device_id": "C1", "device_on": "yes"}),
            json!({"device_id": "C1\u{1b}[2J", "device_on": true}),
        ] {
            assert!(smart_children(std::slice::from_ref(&bad)).is_err(), "{bad}");
        }
        let twice = [child("C1", 1, true, "a"), child("C1", 2, true, "b")];
        assert!(smart_children(&twice).is_err());
        // A nickname that is not base64 is taken as it is; a missing one is empty.
        let plain = smart_children(&[json!({"device_id": "C1", "device_on": false,
            "nickname": "Desk lamp!"})])
        .expect("lenient nickname");
        assert_eq!(plain[0].alias, "Desk lamp!");
    }

    #[test]
    fn a_childs_energy_comes_out_of_control_child() {
        let wrap = |responses: Value| {
            json!({"error_code": 0, "result": {"responseData": {"error_code": 0,
                "result": {"responses": responses}}}})
        };
        // A P304M outlet: no `get_emeter_data`, `get_energy_usage` without watts, W in
        // `get_current_power`.
        let p304m = wrap(json!([
            {"method": "get_emeter_data", "error_code": -1002},
            {"method": "get_energy_usage", "error_code": 0, "result": {"today_energy": 3,
                "month_energy": 14, "local_time": "2024-10-22 13:30:15"}},
            {"method": "get_current_power", "error_code": 0, "result": {"current_power": 28_012}},
        ]));
        let r = child_reading(&p304m).expect("reading").expect("metered");
        assert_eq!(r.power_w, Some(28_012.0));
        // Newer firmware: mW, mV and mA win.
        let full = wrap(json!([
            {"method": "get_emeter_data", "error_code": 0, "result": {"power_mw": 60_500,
                "voltage_mv": 230_100, "current_ma": 270, "energy_wh": 1_200}},
            {"method": "get_current_power", "error_code": 0, "result": {"current_power": 60}},
        ]));
        let r = child_reading(&full).expect("reading").expect("metered");
        assert_eq!((r.power_w, r.voltage_v), (Some(60.5), Some(230.1)));
        // A P300 outlet has no meter.
        let bare = wrap(json!([
            {"method": "get_emeter_data", "error_code": -1002},
            {"method": "get_energy_usage", "error_code": -1002},
            {"method": "get_current_power", "error_code": -1002},
        ]));
        assert_eq!(child_reading(&bare).expect("no meter"), None);
        for bad in [
            json!({"error_code": -1001}),
            json!({"error_code": 0, "result": {}}),
            json!({"error_code": 0, "result": {"responseData": 5}}),
            json!({"error_code": 0, "result": {"responseData": {"error_code": -1008}}}),
            wrap(json!("none")),
            wrap(json!([])),
        ] {
            assert!(child_reading(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_poll_reply_says_whether_the_device_has_children() {
        let reply = |list: Value| {
            json!({"error_code": 0, "result": {"responses": [
                {"method": "get_device_info", "error_code": 0, "result": info()},
                {"method": "get_emeter_data", "error_code": -1002},
                {"method": "get_energy_usage", "error_code": -1002},
                list,
            ]}})
        };
        let plug = poll_parts(
            &reply(json!({"method": "get_child_device_list", "error_code": -1002})),
            None,
        )
        .expect("plug");
        assert_eq!(plug.children, ChildList::None);
        assert_eq!(plug.info["model"], "KP125M");
        let strip = poll_parts(
            &reply(
                json!({"method": "get_child_device_list", "error_code": 0, "result":
                {"child_device_list": [child("C1", 1, true, "a")], "start_index": 0, "sum": 1}}),
            ),
            None,
        )
        .expect("strip");
        assert!(matches!(strip.children, ChildList::Page(ref p) if p.sum == 1));
        let stopped = poll_parts(&reply(json!({})), None).expect("stopped early");
        assert_eq!(stopped.children, ChildList::Unanswered);
        let hostile = reply(json!({"method": "get_child_device_list", "error_code": 0,
            "result": {"child_device_list": [], "sum": 1e9}}));
        assert!(poll_parts(&hostile, None).is_err());
    }

    proptest::proptest! {
        #[test]
        fn hostile_replies_never_panic(s: String) {
            let v = serde_json::from_str::<Value>(&s).unwrap_or(Value::String(s));
            let _ = poll_reply(&v, Some("P110(EU)"));
            let _ = poll_parts(&v, Some("P110(EU)"));
            let _ = sysinfo(&v, None, true);
            let _ = child_page(&v);
            let _ = child_reading(&v);
            if let Some(list) = v.as_array() {
                let _ = smart_children(list);
            }
        }
    }
}
