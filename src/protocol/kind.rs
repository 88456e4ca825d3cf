//! What a device is — plug, strip, wall switch, dimmer, bulb, light strip, camera, hub — derived
//! purely from what it says about itself: the port-9999 sysinfo (`mic_type`/`type`, model,
//! `light_state`, `brightness`, children) or the UDP 20002 reply (`device_type`, model). One
//! vocabulary for every view (`type` in `status --json`, the Type column).

use serde::Serialize;

use super::reply::{SysInfo, split_model};
use super::tdp::TdpInfo;

/// A device family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Plug,
    /// Several outlets (`children`): HS300, KP303, KP400, HS107 …
    Strip,
    /// An in-wall relay switch (HS200, HS210, KS200 …).
    Switch,
    /// A wall dimmer or dimming plug (HS220, KS220M, KS230, ES20M, KP405): reports `brightness`.
    Dimmer,
    /// A smart bulb (LB1xx, KL1xx, KL50/KL60): `light_state` in sysinfo.
    Bulb,
    /// A light strip (KL400L5, KL420L5, KL430): a bulb-like device with `length`.
    Lightstrip,
    Camera,
    Hub,
    Unknown,
}

/// How the device is switched on and off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Switching {
    /// `system.set_relay_state` (plugs, strips' outlets, switches, dimmers).
    Relay,
    /// `smartlife.iot.smartbulb.lightingservice.transition_light_state {on_off}`.
    Bulb,
    /// `smartlife.iot.lightStrip.set_light_state {on_off}`.
    Lightstrip,
}

/// Wall switches without a dimmer, by base model (python-kasa's wall-switch list).
const SWITCH_MODELS: &[&str] = &["HS200", "HS210", "KS200", "KS200M", "KS205", "KP100S"];
/// Dimmers, by base model (a dimmer also says so by its `brightness` field).
const DIMMER_MODELS: &[&str] = &[
    "HS220", "KS220", "KS220M", "KS225", "KS230", "ES20M", "KP405",
];
/// Light strips, by base-model prefix.
const LIGHTSTRIP_PREFIXES: &[&str] = &["KL400", "KL420", "KL430", "L900", "L920", "L930"];

fn base_upper(model: &str) -> String {
    split_model(model).0.to_ascii_uppercase()
}

fn is_lightstrip_model(base: &str) -> bool {
    LIGHTSTRIP_PREFIXES.iter().any(|p| base.starts_with(p))
}

impl Kind {
    /// Every kind, in the order of the legend.
    pub const ALL: [Kind; 9] = [
        Kind::Plug,
        Kind::Strip,
        Kind::Switch,
        Kind::Dimmer,
        Kind::Bulb,
        Kind::Lightstrip,
        Kind::Camera,
        Kind::Hub,
        Kind::Unknown,
    ];

    /// The label every view shows (the JSON `type` value).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Plug => "plug",
            Kind::Strip => "strip",
            Kind::Switch => "switch",
            Kind::Dimmer => "dimmer",
            Kind::Bulb => "bulb",
            Kind::Lightstrip => "lightstrip",
            Kind::Camera => "camera",
            Kind::Hub => "hub",
            Kind::Unknown => "unknown",
        }
    }

    /// A bulb or a light strip: light state in sysinfo, meter at `smartlife.iot.common.emeter`.
    pub fn is_light(self) -> bool {
        matches!(self, Kind::Bulb | Kind::Lightstrip)
    }

    /// How `t` switches it.
    pub fn switching(self) -> Switching {
        match self {
            Kind::Bulb => Switching::Bulb,
            Kind::Lightstrip => Switching::Lightstrip,
            _ => Switching::Relay,
        }
    }

    /// The kind of a device that answered `get_sysinfo` on port 9999.
    pub fn of_sysinfo(s: &SysInfo) -> Kind {
        if !s.children.is_empty() {
            return Kind::Strip;
        }
        let base = base_upper(&s.model);
        let ty = s.device_type.as_deref().unwrap_or("").to_ascii_uppercase();
        if ty.contains("BULB") || ty.contains("LIGHT") || s.light.is_some() {
            return if s.strip_length.is_some() || is_lightstrip_model(&base) {
                Kind::Lightstrip
            } else {
                Kind::Bulb
            };
        }
        if ty.contains("CAMERA") {
            return Kind::Camera;
        }
        if s.brightness.is_some() || DIMMER_MODELS.contains(&base.as_str()) {
            return Kind::Dimmer;
        }
        if SWITCH_MODELS.contains(&base.as_str()) {
            return Kind::Switch;
        }
        if ty.contains("PLUG") || s.relay_on.is_some() {
            return Kind::Plug;
        }
        Kind::Unknown
    }

    /// The kind of a device known only by its UDP 20002 reply (`device_type`, model).
    pub fn of_tdp(t: &TdpInfo) -> Kind {
        let ty = t.device_type.to_ascii_uppercase();
        let base = base_upper(&t.model);
        if ty.contains("CAMERA") || ty.contains("DOORBELL") {
            Kind::Camera
        } else if ty.contains("HUB") {
            Kind::Hub
        } else if ty.contains("BULB") || ty.contains("LIGHT") {
            if is_lightstrip_model(&base) {
                Kind::Lightstrip
            } else {
                Kind::Bulb
            }
        } else if ty.contains("SWITCH") && !ty.contains("PLUGSWITCH") {
            if DIMMER_MODELS.contains(&base.as_str()) {
                Kind::Dimmer
            } else {
                Kind::Switch
            }
        } else if ty.contains("PLUG") {
            if DIMMER_MODELS.contains(&base.as_str()) {
                Kind::Dimmer
            } else if SWITCH_MODELS.contains(&base.as_str()) {
                Kind::Switch
            } else if [
                "HS300", "KP303", "KP400", "KP200", "HS107", "EP40", "P300", "P304",
            ]
            .iter()
            .any(|m| base.starts_with(m))
            {
                Kind::Strip
            } else {
                Kind::Plug
            }
        } else {
            Kind::Unknown
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sys(v: serde_json::Value) -> SysInfo {
        let mut o = json!({"hw_ver":"1.0","sw_ver":"1.0.0","mac":"00:00:00:00:00:01",
            "deviceId":"D","alias":"a"});
        if let (Some(o), Some(v)) = (o.as_object_mut(), v.as_object()) {
            o.extend(v.clone());
        }
        SysInfo::from_result(&o).expect("sysinfo")
    }

    #[test]
    fn families_from_sysinfo() {
        let plug =
            sys(json!({"model":"HS110(EU)","mic_type":"IOT.SMARTPLUGSWITCH","relay_state":1}));
        assert_eq!(Kind::of_sysinfo(&plug), Kind::Plug);
        let old = sys(json!({"model":"HS100(US)","type":"IOT.SMARTPLUGSWITCH","relay_state":0}));
        assert_eq!(Kind::of_sysinfo(&old), Kind::Plug);
        let switch =
            sys(json!({"model":"HS200(US)","mic_type":"IOT.SMARTPLUGSWITCH","relay_state":0}));
        assert_eq!(Kind::of_sysinfo(&switch), Kind::Switch);
        let dimmer = sys(
            json!({"model":"HS220(US)","mic_type":"IOT.SMARTPLUGSWITCH","relay_state":0,"brightness":25}),
        );
        assert_eq!(Kind::of_sysinfo(&dimmer), Kind::Dimmer);
        let bulb =
            sys(json!({"model":"KL130(EU)","mic_type":"IOT.SMARTBULB","light_state":{"on_off":1}}));
        assert_eq!(Kind::of_sysinfo(&bulb), Kind::Bulb);
        assert_eq!(bulb.kind().switching(), Switching::Bulb);
        let strip = sys(
            json!({"model":"KL430(US)","mic_type":"IOT.SMARTBULB","length":16,"light_state":{"on_off":1}}),
        );
        assert_eq!(Kind::of_sysinfo(&strip), Kind::Lightstrip);
        assert_eq!(strip.kind().switching(), Switching::Lightstrip);
        // A bulb whose light_state is missing is still a bulb (its light state an error).
        let bare = sys(json!({"model":"LB100(US)","mic_type":"IOT.SMARTBULB"}));
        assert_eq!(Kind::of_sysinfo(&bare), Kind::Bulb);
        let hs300 = sys(
            json!({"model":"HS300(US)","mic_type":"IOT.SMARTPLUGSWITCH","children":[{"id":"00","state":1}]}),
        );
        assert_eq!(Kind::of_sysinfo(&hs300), Kind::Strip);
        let odd = sys(json!({"model":"XX1"}));
        assert_eq!(Kind::of_sysinfo(&odd), Kind::Unknown);
    }

    fn tdp(ty: &str, model: &str) -> TdpInfo {
        TdpInfo {
            device_type: ty.into(),
            model: model.into(),
            ..TdpInfo::default()
        }
    }

    #[test]
    fn families_from_the_udp_20002_reply() {
        assert_eq!(Kind::of_tdp(&tdp("SMART.IPCAMERA", "C210")), Kind::Camera);
        assert_eq!(Kind::of_tdp(&tdp("SMART.TAPOHUB", "H200")), Kind::Hub);
        assert_eq!(Kind::of_tdp(&tdp("SMART.KASAHUB", "KH100")), Kind::Hub);
        assert_eq!(
            Kind::of_tdp(&tdp("IOT.SMARTPLUGSWITCH", "HS100(UK)")),
            Kind::Plug
        );
        assert_eq!(
            Kind::of_tdp(&tdp("IOT.SMARTPLUGSWITCH", "HS300(US)")),
            Kind::Strip
        );
        assert_eq!(
            Kind::of_tdp(&tdp("SMART.KASASWITCH", "KS225(US)")),
            Kind::Dimmer
        );
        assert_eq!(
            Kind::of_tdp(&tdp("SMART.KASASWITCH", "KS205(US)")),
            Kind::Switch
        );
        assert_eq!(Kind::of_tdp(&tdp("SMART.TAPOBULB", "L530")), Kind::Bulb);
        assert_eq!(
            Kind::of_tdp(&tdp("SMART.TAPOBULB", "L900-5")),
            Kind::Lightstrip
        );
        assert_eq!(
            Kind::of_tdp(&tdp("SMART.TAPOROBOVAC", "RV30")),
            Kind::Unknown
        );
        assert_eq!(
            serde_json::to_value(Kind::Lightstrip).expect("json"),
            json!("lightstrip")
        );
        for k in Kind::ALL {
            assert_eq!(serde_json::to_value(k).expect("json"), json!(k.label()));
        }
    }
}
