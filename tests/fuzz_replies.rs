#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fuzzing the reply decoder end to end: bytes off the wire → frame check → decrypt → JSON →
//! every typed reply the product reads (sysinfo, realtime, download state, energy stats, acks,
//! the UDP 20002 answer). Nothing may panic, whatever a hostile plug sends; decoded device text
//! never carries a control character, an escape or a bidi override.
//!
//! CI runs the default number of cases; run it longer by hand with
//! `PROPTEST_CASES=200000 cargo test --release --test fuzz_replies`.

use plugfleet::protocol::codec::{FrameStatus, check_frame, encode_frame};
use plugfleet::protocol::reply::{self, DownloadState, Realtime, SysInfo};
use plugfleet::protocol::{DEFAULT_MAX_FRAME, cipher, tdp};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Cases per property: `PROPTEST_CASES` if set, else enough to be useful in CI.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        // Nothing is written next to the sources; a failure prints its minimal case.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Keys the decoders look for, so arbitrary JSON reaches the interesting branches.
const KEYS: &[&str] = &[
    "system",
    "get_sysinfo",
    "emeter",
    "get_realtime",
    "get_daystat",
    "get_monthstat",
    "day_list",
    "month_list",
    "err_code",
    "err_msg",
    "alias",
    "model",
    "dev_name",
    "mac",
    "mic_mac",
    "deviceId",
    "hwId",
    "fwId",
    "oemId",
    "hw_ver",
    "sw_ver",
    "relay_state",
    "feature",
    "children",
    "id",
    "state",
    "power",
    "power_mw",
    "voltage",
    "voltage_mv",
    "current",
    "current_ma",
    "total",
    "total_wh",
    "energy",
    "energy_wh",
    "year",
    "month",
    "day",
    "rssi",
    "status",
    "ratio",
    "reboot_time",
    "flash_time",
    "upgrade",
    "get_download_state",
    "result",
    "device_id",
    "device_model",
    "device_type",
    "ip",
    "mgt_encrypt_schm",
];

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ._:-]{0,24}",
        Just("\u{1b}[2J\u{1b}]0;pwned\u{7}".to_owned()),
        Just("\u{202e}evil\u{2066}\u{200b}\u{feff}".to_owned()),
        Just("NOT-A-MAC\u{1b}[2J".to_owned()),
        any::<String>(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(1e308)),
        Just(json!(-0.0)),
        hostile_string().prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                let mut m = Map::new();
                for (k, v) in kv {
                    m.insert((*k).to_owned(), v);
                }
                Value::Object(m)
            }),
        ]
    })
}

/// Every decoder the product applies to a parsed reply. Results are ignored: only panics (and
/// unsafe device text) fail.
fn decode_all(root: &Value) {
    if let Ok(info) = SysInfo::from_reply(root) {
        for s in [&info.alias, &info.model] {
            assert!(is_printable(s), "device text not sanitised: {s:?}");
        }
        let _ = info.has_emeter();
        let _ = info.base_model();
        let _ = info.region();
        let _ = info.version();
    }
    let _ = SysInfo::from_result(root);
    let _ = Realtime::from_reply(root);
    let _ = Realtime::from_result(root);
    if let Ok(d) = DownloadState::from_reply(root) {
        let _ = d.is_complete();
    }
    let _ = reply::parse_stats(root, "get_daystat");
    let _ = reply::parse_stats(root, "get_monthstat");
    let _ = reply::check_ack(root, "system", "set_relay_state");
    let _ = reply::method_result(root, "system", "get_sysinfo");
}

/// The poller's borrowed decode ([`reply::parse_lite`] and the `from_lite_reply` readers) reads
/// the same bytes exactly as the `Value` path does: same sysinfo, same reading (wrong-type
/// values, `raw` included), same errors.
fn lite_agrees(plain: &[u8]) {
    let value = reply::parse_json(plain);
    let lite = reply::parse_lite(plain);
    match (&value, &lite) {
        (Ok(v), Ok(l)) => {
            assert_eq!(SysInfo::from_reply(v), SysInfo::from_lite_reply(l));
            assert_eq!(Realtime::from_reply(v), Realtime::from_lite_reply(l));
            assert_eq!(
                reply::method_result(v, "emeter", "get_realtime").err(),
                reply::method_result(l, "emeter", "get_realtime").err()
            );
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("value {value:?} vs lite {lite:?}"),
    }
}

/// No C0/C1 control, no escape and no bidi override/format character.
fn is_printable(s: &str) -> bool {
    s.chars().all(|c| {
        !c.is_control()
            && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200b}'..='\u{200f}' | '\u{feff}')
    })
}

proptest! {
    #![proptest_config(config())]

    /// Raw bytes as a TCP reply: the frame check never panics, never asks for more than the cap,
    /// and whatever it accepts decrypts and parses (or fails) without a panic.
    #[test]
    fn arbitrary_bytes_off_the_wire(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(FrameStatus::Complete { len }) = check_frame(&bytes, DEFAULT_MAX_FRAME) {
            prop_assert!(4 + len <= bytes.len());
            let plain = cipher::decrypt(&bytes[4..4 + len]);
            if let Ok(root) = reply::parse_json(&plain) {
                decode_all(&root);
            }
        }
        // The same bytes as an unframed datagram (UDP 9999) and as a UDP 20002 answer.
        let plain = cipher::decrypt(&bytes);
        if let Ok(root) = reply::parse_json(&plain) {
            decode_all(&root);
        }
        lite_agrees(&plain);
        let _ = tdp::decode_reply(&bytes);
    }

    /// Well-framed, encrypted JSON of any shape, built from the keys the decoders look for.
    #[test]
    fn arbitrary_json_in_a_valid_frame(root in value()) {
        let plain = serde_json::to_vec(&root).unwrap();
        let mut framed = encode_frame(&plain);
        let len = framed.len() - 4;
        let complete = matches!(
            check_frame(&framed, DEFAULT_MAX_FRAME),
            Ok(FrameStatus::Complete { len: n }) if n == len
        );
        prop_assert!(complete);
        let body = cipher::decrypt(&framed.split_off(4));
        // A reply that is not an object is a typed error; an object always parses.
        lite_agrees(&body);
        match reply::parse_json(&body) {
            Ok(parsed) => decode_all(&parsed),
            Err(e) => prop_assert!(!root.is_object(), "an object was refused: {e}"),
        }
    }

    /// A sysinfo of the right shape whose fields hold hostile or wrong-typed values.
    #[test]
    fn hostile_sysinfo_fields(fields in prop::collection::vec((prop::sample::select(KEYS), leaf()), 0..20)) {
        let mut info = json!({
            "alias": "plug", "model": "HS110(EU)", "mac": "50:C7:BF:00:00:01",
            "deviceId": "D1", "hwId": "H", "fwId": "F", "oemId": "O",
            "hw_ver": "1.0", "sw_ver": "1.2.5 Build 171213 Rel.101523",
            "relay_state": 1, "feature": "TIM:ENE", "err_code": 0
        });
        for (k, v) in fields {
            info[k] = v;
        }
        let root = json!({"system": {"get_sysinfo": info}});
        lite_agrees(&serde_json::to_vec(&root).unwrap());
        decode_all(&root);
    }

    /// A realtime reply of the right shape whose values are of any type.
    #[test]
    fn hostile_realtime_values(fields in prop::collection::vec((prop::sample::select(KEYS), leaf()), 0..12)) {
        let mut rt = json!({"power": 10.0, "voltage": 230.0, "current": 0.05, "total": 1.0, "err_code": 0});
        for (k, v) in fields {
            rt[k] = v;
        }
        let root = json!({"emeter": {"get_realtime": rt}});
        lite_agrees(&serde_json::to_vec(&root).unwrap());
        decode_all(&root);
    }
}

#[test]
fn the_borrowed_decode_agrees_on_duplicate_keys_escapes_and_nesting() {
    for text in [
        r#"{"emeter":{"get_realtime":{"power":1.0,"power":"x","voltage":2}}}"#,
        r#"{"emeter":{"err_code":0,"err_code":-1,"err_msg":"no\u001b[2J"}}"#,
        r#"{"system":{"get_sysinfo":{"model":"A\"B","hw_ver":"1","sw_ver":"1","mac":"aa-bb-cc-dd-ee-ff","deviceId":"D","alias":"\u202eevil","children":[{"id":"00"},{"id":"01","id":7}]}},"system":{"get_sysinfo":{"model":"last","hw_ver":"1","sw_ver":"1","mac":"x","deviceId":"E"}}}"#,
        r#"{"emeter":{"get_realtime":{"power_mw":1e400}}}"#,
        "[1,2]",
        "",
        "{",
    ] {
        lite_agrees(text.as_bytes());
    }
    let deep = format!("{}{}", r#"{"a":"#.repeat(200), "1");
    lite_agrees(deep.as_bytes());
}

#[test]
fn an_oversized_length_header_is_refused_before_any_allocation() {
    let bytes = [0x80, 0, 0, 0, 1, 2, 3];
    assert!(check_frame(&bytes, DEFAULT_MAX_FRAME).is_err());
}
