#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every real device reply in `tests/fixtures/` parses with the typed replies, and the key
//! fields come out right (both sysinfo shapes, both meter schemes, module-level errors, strips,
//! the UDP 20002 discovery result).

use std::path::Path;

use plugfleet::protocol::reply::method_result;
use plugfleet::protocol::{Realtime, SysInfo, UnitScheme, tdp};
use serde_json::Value;

fn fixtures() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn fixture(name: &str) -> Value {
    fixtures()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .1
}

#[test]
fn every_fixture_parses() {
    let all = fixtures();
    assert_eq!(all.len(), 17);
    for (name, root) in &all {
        // "<model>_<hw>_<sw>.json"
        let stem = name.trim_end_matches(".json");
        let mut parts = stem.rsplitn(3, '_');
        let (sw, hw, model) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let info = SysInfo::from_reply(root).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.model, model, "{name}");
        assert_eq!(info.hw_ver, hw, "{name}");
        assert_eq!(info.version(), sw, "{name}");
        assert!(
            info.device_type.as_deref().unwrap().starts_with("IOT."),
            "{name}"
        );
        assert_eq!(info.mac.len(), 17, "{name}: normalised MAC");

        match method_result(root, "emeter", "get_realtime") {
            Ok(_) => {
                let rt = Realtime::from_reply(root).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(info.has_emeter(), "{name}");
                assert!(rt.voltage_v.unwrap() > 100.0, "{name}");
                assert!(rt.power_w.unwrap() >= 0.0, "{name}");
            }
            Err(e) => {
                if root.get("emeter").is_some() {
                    assert_eq!(e.device_code(), Some(-1), "{name}");
                    assert!(!info.has_emeter(), "{name}");
                }
            }
        }
        if let Some(d) = root.get("discovery_result") {
            let bytes = serde_json::to_vec(d).unwrap();
            let t = tdp::decode_reply(&tdp::encode_packet(&bytes, 0, 1)).unwrap();
            assert_eq!(t.model, info.model, "{name}");
            assert_eq!(t.mac, info.mac, "{name}");
            assert_eq!(t.encrypt_type.as_deref(), Some("KLAP"), "{name}");
        }
    }
}

#[test]
fn old_and_new_shapes_and_schemes() {
    let old = fixture("HS110(EU)_1.0_1.2.5.json");
    let info = SysInfo::from_reply(&old).unwrap();
    assert_eq!(
        info.fw_id.as_deref(),
        Some("00000000000000000000000000000000")
    );
    assert_eq!(info.relay_on, Some(true));
    assert_eq!(info.on_time, Some(6_023_162));
    let rt = Realtime::from_reply(&old).unwrap();
    assert_eq!(rt.scheme, UnitScheme::Base);
    assert!((rt.power_w.unwrap() - 0.928511).abs() < 1e-9);
    assert!((rt.total_kwh.unwrap() - 55.139).abs() < 1e-9);

    let new = fixture("HS110(EU)_4.0_1.0.4.json");
    let info = SysInfo::from_reply(&new).unwrap();
    assert_eq!(info.status.as_deref(), Some("new"));
    assert_eq!(info.latitude, Some(0.0));
    let rt = Realtime::from_reply(&new).unwrap();
    assert_eq!(rt.scheme, UnitScheme::Milli);
    assert!((rt.power_w.unwrap() - 61.753).abs() < 1e-9);
    assert!((rt.voltage_v.unwrap() - 230.837).abs() < 1e-9);
    assert!((rt.current_a.unwrap() - 0.451).abs() < 1e-9);
    assert!((rt.total_kwh.unwrap() - 16.323).abs() < 1e-9);
}

#[test]
fn strips_and_slots() {
    let s = fixture("HS300(US)_2.0_1.0.12.json");
    let info = SysInfo::from_reply(&s).unwrap();
    assert_eq!(info.children.len(), 6);
    assert!(info.relay_on.is_none(), "a strip parent has no relay_state");
    assert!(info.children.iter().all(|c| c.relay_on));
    assert_eq!(Realtime::from_reply(&s).unwrap().slot_id, Some(0));
    let kp303 = SysInfo::from_reply(&fixture("KP303(US)_2.0_1.0.9.json")).unwrap();
    assert_eq!(kp303.children.len(), 3);
    assert!(!kp303.has_emeter());
}

#[test]
fn meterless_plugs_answer_module_not_support() {
    for name in ["HS100(US)_2.0_1.5.6.json", "HS105(US)_1.0_1.5.6.json"] {
        let root = fixture(name);
        let e = Realtime::from_reply(&root).expect_err("no meter");
        assert_eq!(e.device_code(), Some(-1), "{name}");
        let e = method_result(&root, "smartlife.iot.dimmer", "x").expect_err("module level");
        assert_eq!(e.device_code(), Some(-1), "{name}");
    }
}
