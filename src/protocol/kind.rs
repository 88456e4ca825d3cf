//! What a device is — plug, strip, wall switch, dimmer, bulb, light strip, camera, hub — derived
//! purely from what it says about itself: the port-9999 sysinfo (`mic_type`/`type`, model,
//! `light_state`, `brightness`, children) or the UDP 20002 reply (`device_type`, model). One
//! vocabulary for every view (`type` in `status --json`, the Type column).

use serde::Serialize;

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

/// `HS110` of `HS110(EU)`, upper-case.
fn base_upper(model: &str) -> String {
    model
        .split('(')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase()
}

/// What a sysinfo says that decides the family ([`Kind::of_traits`]); filled in by
/// `SysInfo::kind`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traits<'a> {
    pub model: &'a str,
    /// `mic_type` or `type`.
    pub device_type: Option<&'a str>,
    pub has_children: bool,
    /// `light_state` present (or the type says bulb).
    pub has_light: bool,
    /// `length` present (light strips).
    pub has_length: bool,
    /// Top-level `brightness` (dimmers).
    pub has_brightness: bool,
    pub has_relay: bool,
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

    /// The kind of a device that answered `get_sysinfo` on port 9999, by what it said.
    pub fn of_traits(t: Traits<'_>) -> Kind {
        if t.has_children {
            return Kind::Strip;
        }
        let base = base_upper(t.model);
        let ty = t.device_type.unwrap_or("").to_ascii_uppercase();
        if ty.contains("BULB") || ty.contains("LIGHT") || t.has_light {
            return if t.has_length || is_lightstrip_model(&base) {
                Kind::Lightstrip
            } else {
                Kind::Bulb
            };
        }
        if ty.contains("CAMERA") {
            return Kind::Camera;
        }
        if t.has_brightness || DIMMER_MODELS.contains(&base.as_str()) {
            return Kind::Dimmer;
        }
        if SWITCH_MODELS.contains(&base.as_str()) {
            return Kind::Switch;
        }
        if ty.contains("PLUG") || t.has_relay {
            return Kind::Plug;
        }
        Kind::Unknown
    }

    /// The kind of a device known only by its UDP 20002 reply (`device_type`, model).
    pub fn of_tdp(device_type: &str, model: &str) -> Kind {
        let ty = device_type.to_ascii_uppercase();
        let base = base_upper(model);
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

    fn sys(model: &'static str, device_type: &'static str) -> Traits<'static> {
        Traits {
            model,
            device_type: Some(device_type),
            ..Traits::default()
        }
    }

    #[test]
    fn families_from_sysinfo() {
        let plug = Traits {
            has_relay: true,
            ..sys("HS110(EU)", "IOT.SMARTPLUGSWITCH")
        };
        assert_eq!(Kind::of_traits(plug), Kind::Plug);
        let old = Traits {
            device_type: None,
            has_relay: true,
            ..sys("HS100(US)", "")
        };
        assert_eq!(Kind::of_traits(old), Kind::Plug);
        assert_eq!(
            Kind::of_traits(sys("HS200(US)", "IOT.SMARTPLUGSWITCH")),
            Kind::Switch
        );
        let dimmer = Traits {
            has_brightness: true,
            ..sys("XX220(US)", "IOT.SMARTPLUGSWITCH")
        };
        assert_eq!(Kind::of_traits(dimmer), Kind::Dimmer);
        assert_eq!(
            Kind::of_traits(sys("KS230(US)", "IOT.SMARTPLUGSWITCH")),
            Kind::Dimmer
        );
        let bulb = Traits {
            has_light: true,
            ..sys("KL130(EU)", "IOT.SMARTBULB")
        };
        assert_eq!(Kind::of_traits(bulb), Kind::Bulb);
        assert_eq!(Kind::of_traits(bulb).switching(), Switching::Bulb);
        let strip = Traits {
            has_length: true,
            ..bulb
        };
        assert_eq!(Kind::of_traits(strip), Kind::Lightstrip);
        assert_eq!(Kind::of_traits(strip).switching(), Switching::Lightstrip);
        // A bulb whose light_state is missing is still a bulb (by its type).
        assert_eq!(
            Kind::of_traits(sys("LB100(US)", "IOT.SMARTBULB")),
            Kind::Bulb
        );
        assert_eq!(
            Kind::of_traits(sys("KL420L5(US)", "IOT.SMARTBULB")),
            Kind::Lightstrip
        );
        let hs300 = Traits {
            has_children: true,
            ..sys("HS300(US)", "IOT.SMARTPLUGSWITCH")
        };
        assert_eq!(Kind::of_traits(hs300), Kind::Strip);
        assert_eq!(Kind::of_traits(Traits::default()), Kind::Unknown);
        assert_eq!(Kind::of_traits(plug).switching(), Switching::Relay);
    }

    #[test]
    fn families_from_the_udp_20002_reply() {
        assert_eq!(Kind::of_tdp("SMART.IPCAMERA", "C210"), Kind::Camera);
        assert_eq!(Kind::of_tdp("SMART.TAPODOORBELL", "D230"), Kind::Camera);
        assert_eq!(Kind::of_tdp("SMART.TAPOHUB", "H200"), Kind::Hub);
        assert_eq!(Kind::of_tdp("SMART.KASAHUB", "KH100"), Kind::Hub);
        assert_eq!(Kind::of_tdp("IOT.SMARTPLUGSWITCH", "HS100(UK)"), Kind::Plug);
        assert_eq!(
            Kind::of_tdp("IOT.SMARTPLUGSWITCH", "HS300(US)"),
            Kind::Strip
        );
        assert_eq!(Kind::of_tdp("SMART.KASASWITCH", "KS225(US)"), Kind::Dimmer);
        assert_eq!(Kind::of_tdp("SMART.KASASWITCH", "KS205(US)"), Kind::Switch);
        assert_eq!(Kind::of_tdp("SMART.TAPOBULB", "L530"), Kind::Bulb);
        assert_eq!(Kind::of_tdp("SMART.TAPOBULB", "L900-5"), Kind::Lightstrip);
        assert_eq!(Kind::of_tdp("SMART.TAPOROBOVAC", "RV30"), Kind::Unknown);
        for k in Kind::ALL {
            assert_eq!(serde_json::to_value(k).expect("json"), json!(k.label()));
        }
    }
}
