#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Bulbs, light strips and dimmers decoded from real replies (python-kasa's anonymised dumps in
//! `tests/fixtures/`): what each is, its light state, brightness and meter; and the bad shapes
//! (light_state missing, an err_code inside get_realtime, modules answering -1 / -2001) typed.

use std::path::Path;

use plugfleet::protocol::reply::LIGHT_EMETER;
use plugfleet::protocol::{Kind, Realtime, ReplyError, SysInfo, UnitScheme};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

#[test]
fn kl130_bulb_light_state_and_milliwatt_meter() {
    let root = fixture("KL130(EU)_1.0_1.8.8.json");
    let info = SysInfo::from_reply(&root).unwrap();
    assert_eq!(info.kind(), Kind::Bulb);
    assert_eq!(info.mac, "1C:3B:F3:00:00:00", "mic_mac normalised");
    let l = info.light_state().expect("light state");
    assert!(l.on && !l.from_default);
    assert_eq!(l.brightness, Some(100));
    assert_eq!(l.color_temp, Some(2700));
    assert_eq!(l.hue, Some(0));
    assert_eq!(l.saturation, Some(0));
    assert_eq!(l.mode.as_deref(), Some("normal"));
    assert_eq!(info.is_on(), Some(true));
    assert_eq!(info.relay_on, None, "a bulb has no relay_state");
    assert_eq!(info.brightness_pct(), Some(100));
    assert_eq!(info.color, Some(true));
    assert!(
        info.has_emeter(),
        "a bulb's meter is asked though it lists no ENE"
    );
    assert_eq!(info.meter_module(), LIGHT_EMETER);
    assert_eq!(
        info.dev_name.as_deref(),
        Some("Smart Wi-Fi LED Bulb with Color Changing")
    );
    let rt = Realtime::from_reply_in(&root, LIGHT_EMETER).unwrap();
    assert_eq!(rt.scheme, UnitScheme::Milli);
    assert!((rt.power_w.unwrap() - 10.8).abs() < 1e-9);
    assert_eq!(rt.voltage_v, None);
    assert_eq!(rt.total_kwh, None);
}

#[test]
fn kl430_light_strip_in_colour_mode_with_total() {
    let root = fixture("KL430(US)_2.0_1.0.9.json");
    let info = SysInfo::from_reply(&root).unwrap();
    assert_eq!(info.kind(), Kind::Lightstrip);
    assert_eq!(info.strip_length, Some(16));
    let l = info.light_state().unwrap();
    assert_eq!(
        (l.hue, l.saturation, l.color_temp),
        (Some(194), Some(50), Some(0))
    );
    let rt = Realtime::from_reply_in(&root, LIGHT_EMETER).unwrap();
    assert!((rt.power_w.unwrap() - 11.15).abs() < 1e-9);
    assert!((rt.total_kwh.unwrap() - 0.018).abs() < 1e-9);
}

#[test]
fn hs220_dimmer_brightness_and_no_meter() {
    let root = fixture("HS220(US)_1.0_1.5.7.json");
    let info = SysInfo::from_reply(&root).unwrap();
    assert_eq!(info.kind(), Kind::Dimmer);
    assert_eq!(info.brightness, Some(25));
    assert_eq!(info.brightness_pct(), Some(25));
    assert_eq!(info.is_on(), Some(false));
    assert!(info.light.is_none());
    assert!(!info.has_emeter());
    assert_eq!(info.meter_module(), "emeter");
    // Both meter modules answer "module not support": typed, a missing meter, not a fault.
    for module in ["emeter", LIGHT_EMETER] {
        let e = Realtime::from_reply_in(&root, module).expect_err("no meter");
        assert_eq!(e.device_code(), Some(-1), "{module}");
        assert!(e.is_unsupported(), "{module}");
    }
}

#[test]
fn an_off_bulb_reads_the_state_it_comes_on_with() {
    let v = json!({"system":{"get_sysinfo":{"model":"KL110(EU)","hw_ver":"1.0",
        "sw_ver":"1.8.11 Build 191113 Rel.105336","mic_type":"IOT.SMARTBULB",
        "mic_mac":"AABBCCDDEEFF","deviceId":"KL110","alias":"stairs",
        "light_state":{"on_off":0,"dft_on_state":{"mode":"normal","hue":0,"saturation":0,
            "color_temp":2700,"brightness":45}},"err_code":0}}});
    let info = SysInfo::from_reply(&v).unwrap();
    let l = info.light_state().unwrap();
    assert!(!l.on && l.from_default);
    assert_eq!(l.brightness, Some(45));
    assert_eq!(l.color_temp, Some(2700));
    assert_eq!(info.is_on(), Some(false));
}

#[test]
fn bad_shapes_are_typed() {
    // A bulb without light_state: identity still read, the light state an error, state unknown.
    let v = json!({"model":"LB100(US)","hw_ver":"1.0","sw_ver":"1.8.11","mic_type":"IOT.SMARTBULB",
        "mic_mac":"AABBCCDDEEFF","deviceId":"LB","alias":"x"});
    let info = SysInfo::from_result(&v).unwrap();
    assert_eq!(info.kind(), Kind::Bulb);
    assert_eq!(
        info.light,
        Some(Err("bulb sysinfo has no light_state".to_owned()))
    );
    assert_eq!(info.is_on(), None);
    for (bad, why) in [
        (json!([1]), "not an object"),
        (json!({"brightness": 5}), "no on_off"),
        (json!({"on_off": "yes"}), "not 0 or 1"),
    ] {
        let mut v = v.clone();
        v["light_state"] = bad;
        let info = SysInfo::from_result(&v).unwrap();
        let e = info.light.clone().unwrap().expect_err("bad light_state");
        assert!(e.contains(why), "{e}");
    }
    // err_code inside get_realtime, and -2001 at module level (bulbs).
    let r = json!({LIGHT_EMETER:{"get_realtime":{"err_code":-3,"err_msg":"invalid argument"}}});
    let e = Realtime::from_reply_in(&r, LIGHT_EMETER).expect_err("device error");
    assert!(matches!(e, ReplyError::Device { code: -3, .. }));
    assert!(!e.is_unsupported());
    let r = json!({"emeter":{"err_code":-2001,"err_msg":"Module not support"}});
    let e = Realtime::from_reply(&r).expect_err("no module");
    assert!(e.is_unsupported());
    // A meter object with nothing in it.
    let r = json!({LIGHT_EMETER:{"get_realtime":{"err_code":0}}});
    assert!(matches!(
        Realtime::from_reply_in(&r, LIGHT_EMETER),
        Err(ReplyError::Shape(_))
    ));
}

#[test]
fn the_readme_lists_every_type_the_views_show() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = readme
        .split("<!-- device types -->")
        .nth(1)
        .expect("README has the device types table");
    let listed: Vec<String> = table
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .filter_map(|l| l.split('|').nth(1))
        .map(|c| c.trim().trim_matches('`').to_owned())
        .collect();
    let labels: Vec<String> = Kind::ALL.iter().map(|k| k.label().to_owned()).collect();
    assert_eq!(listed, labels);
    // The JSON `type` values are the labels.
    for k in Kind::ALL {
        assert_eq!(serde_json::to_value(k).unwrap(), json!(k.label()));
    }
}
