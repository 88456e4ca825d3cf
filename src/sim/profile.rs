//! Device profiles: data files under `assets/profiles/`, embedded at build time, each shaped on a
//! real device dump from `tests/fixtures/` (the `sysinfo` object is that dump's `get_sysinfo` with
//! the masked identity fields filled in per plug at run time).

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

/// Which `emeter` the profile has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeterScheme {
    /// `voltage`/`current`/`power`/`total` floats (V/A/W/kWh): HS110 hw 1.x.
    Float,
    /// `voltage_mv`/`current_ma`/`power_mw`/`total_wh` integers: HS110 hw 4, KP115, HS300.
    Milli,
    /// No meter: `emeter` answers err -1 "module not support".
    None,
    /// A bulb's or light strip's meter: `smartlife.iot.common.emeter` with `power_mw` and
    /// `total_wh`; `emeter` answers err -2001 "Module not support" (KL130, KL430).
    Bulb,
}

/// One outlet of a strip.
#[derive(Debug, Clone, Deserialize)]
pub struct OutletSpec {
    pub alias: String,
    pub load: String,
}

/// A simulated device model.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// The real dump the profile is shaped on (file in `tests/fixtures/`).
    pub fixture: String,
    /// `legacy` (port 9999) or the label of a newer protocol (`klap`, `aes`).
    pub protocol: String,
    pub meter: MeterScheme,
    /// Meter replies carry `slot_id` (HS300 hw 2.0).
    #[serde(default)]
    pub slot_id: bool,
    pub mains_v: f64,
    pub rated_w: f64,
    /// First three MAC bytes (`50:C7:BF`).
    pub mac_oui: String,
    pub flash_time_s: u64,
    pub reboot_time_s: u64,
    pub latitude: f64,
    pub longitude: f64,
    /// Appliance names (from `loads.json`) a single-outlet plug may feed.
    #[serde(default)]
    pub loads: Vec<String>,
    /// Strip outlets (empty for plugs).
    #[serde(default)]
    pub outlets: Vec<OutletSpec>,
    /// `get_sysinfo` template.
    pub sysinfo: Map<String, Value>,
    /// UDP 20002 discovery `result` template (newer-protocol devices).
    #[serde(default)]
    pub discovery: Option<Map<String, Value>>,
}

impl Profile {
    pub fn model(&self) -> &str {
        self.sysinfo
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn hw_ver(&self) -> &str {
        self.sysinfo
            .get("hw_ver")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn sw_ver(&self) -> &str {
        self.sysinfo
            .get("sw_ver")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Talks the port-9999 protocol.
    pub fn is_legacy(&self) -> bool {
        self.protocol == "legacy"
    }

    pub fn is_strip(&self) -> bool {
        !self.outlets.is_empty()
    }

    pub fn has_meter(&self) -> bool {
        self.meter != MeterScheme::None
    }

    /// A bulb or light strip: its template has `light_state`.
    pub fn is_light(&self) -> bool {
        self.sysinfo.contains_key("light_state")
    }

    /// A light strip: a light whose template has `length`.
    pub fn is_lightstrip(&self) -> bool {
        self.is_light() && self.sysinfo.contains_key("length")
    }

    /// A dimmer: its template has a top-level `brightness`.
    pub fn is_dimmer(&self) -> bool {
        self.sysinfo.contains_key("brightness")
    }

    /// Answers the UDP 20002 probe only (a camera: its own HTTPS API is not simulated).
    pub fn is_discovery_only(&self) -> bool {
        self.protocol == "discovery"
    }

    /// The brightness a new device starts at: the template's.
    pub fn initial_brightness(&self) -> u8 {
        let b = self
            .sysinfo
            .get("light_state")
            .and_then(|l| {
                l.get("brightness")
                    .or_else(|| l.pointer("/dft_on_state/brightness"))
            })
            .or_else(|| self.sysinfo.get("brightness"))
            .and_then(Value::as_u64)
            .unwrap_or(100);
        b.min(100) as u8
    }
}

/// An appliance's consumption pattern.
#[derive(Debug, Clone, Deserialize)]
pub struct Appliance {
    pub name: String,
    pub label: String,
    pub standby_w: f64,
    pub active_w: f64,
    pub period_s: f64,
    pub duty: f64,
    pub pf: f64,
    pub noise: f64,
}

#[derive(Debug, Deserialize)]
struct Catalogue {
    rooms: Vec<String>,
    appliances: Vec<Appliance>,
}

const PROFILE_FILES: [&str; 9] = [
    include_str!("../../assets/profiles/hs110-eu-hw1.json"),
    include_str!("../../assets/profiles/hs110-us-hw1.json"),
    include_str!("../../assets/profiles/hs110-eu-hw4.json"),
    include_str!("../../assets/profiles/kp115-us-hw1.json"),
    include_str!("../../assets/profiles/hs100-us-hw2.json"),
    include_str!("../../assets/profiles/hs300-us-hw2.json"),
    include_str!("../../assets/profiles/hs105-us-hw1.json"),
    include_str!("../../assets/profiles/kp303-us-hw2.json"),
    include_str!("../../assets/profiles/hs100-uk-hw4-klap.json"),
];
/// Profiles `--profile` finds that the default mixed fleet leaves out: SMART devices whose
/// dialect only `sim::klap` serves (their `sysinfo` is internal state in port-9999 shape; one
/// of them, `kp125m-us-hw1-smart-https`, over TLS).
/// Also the device families beyond plugs and strips (issue 11), in the demo fleet:
/// a bulb, a light strip, a dimmer and a camera known by its UDP 20002 reply alone.
/// The SMART strips (per-outlet meters on the P304M, none on the P300) and the EP25 too.
const EXTRA_PROFILE_FILES: [&str; 10] = [
    include_str!("../../assets/profiles/kp125m-us-hw1-smart.json"),
    include_str!("../../assets/profiles/ep25-us-hw2-smart.json"),
    include_str!("../../assets/profiles/p304m-uk-hw1-smart.json"),
    include_str!("../../assets/profiles/p300-eu-hw1-smart.json"),
    include_str!("../../assets/profiles/p110-eu-hw1-aes.json"),
    include_str!("../../assets/profiles/kl130-eu-hw1.json"),
    include_str!("../../assets/profiles/kl430-us-hw2.json"),
    include_str!("../../assets/profiles/hs220-us-hw1.json"),
    include_str!("../../assets/profiles/c210-eu-hw2-camera.json"),
    // After kp125m-us-hw1-smart, so `--profile KP125M(US)` still finds the HTTP one.
    include_str!("../../assets/profiles/kp125m-us-hw1-smart-https.json"),
];
const LOADS_FILE: &str = include_str!("../../assets/profiles/loads.json");

struct Embedded {
    profiles: Vec<Profile>,
    extra: Vec<Profile>,
    catalogue: Catalogue,
}

fn embedded() -> &'static Embedded {
    static DATA: OnceLock<Embedded> = OnceLock::new();
    DATA.get_or_init(|| {
        // The files are part of the build and checked by tests; a broken one is skipped here
        // rather than panicking at run time.
        let profiles = PROFILE_FILES
            .iter()
            .filter_map(|s| serde_json::from_str::<Profile>(s).ok())
            .collect();
        let extra = EXTRA_PROFILE_FILES
            .iter()
            .filter_map(|s| serde_json::from_str::<Profile>(s).ok())
            .collect();
        let catalogue = serde_json::from_str(LOADS_FILE).unwrap_or(Catalogue {
            rooms: vec!["Room".into()],
            appliances: Vec::new(),
        });
        Embedded {
            profiles,
            extra,
            catalogue,
        }
    })
}

/// All embedded profiles, in the order of the default mixed fleet.
pub fn all() -> &'static [Profile] {
    &embedded().profiles
}

/// Names of all profiles.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name.as_str()).collect()
}

/// Profiles outside the default mixed fleet (found by [`find`]).
pub fn extra() -> &'static [Profile] {
    &embedded().extra
}

/// A profile by name (`hs110-eu-hw1`) or by model (`HS110(EU)`, first match), case-insensitive;
/// the default fleet's profiles first, then [`extra`].
pub fn find(name: &str) -> Option<&'static Profile> {
    let name = name.trim();
    let every = || all().iter().chain(extra());
    every()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .or_else(|| every().find(|p| p.model().eq_ignore_ascii_case(name)))
}

/// An appliance by name; an always-on 10 W load if the name is unknown.
pub fn appliance(name: &str) -> Appliance {
    embedded()
        .catalogue
        .appliances
        .iter()
        .find(|a| a.name == name)
        .cloned()
        .unwrap_or(Appliance {
            name: name.to_owned(),
            label: name.to_owned(),
            standby_w: 0.0,
            active_w: 10.0,
            period_s: 3600.0,
            duty: 1.0,
            pf: 0.9,
            noise: 0.02,
        })
}

/// Room names used to build aliases.
pub fn rooms() -> &'static [String] {
    &embedded().catalogue.rooms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_parses() {
        assert_eq!(
            all().len(),
            PROFILE_FILES.len(),
            "a profile failed to parse"
        );
        for s in PROFILE_FILES {
            let p: Profile = serde_json::from_str(s).expect("profile");
            assert!(!p.model().is_empty() && !p.hw_ver().is_empty() && !p.sw_ver().is_empty());
            for l in p.loads.iter().chain(p.outlets.iter().map(|o| &o.load)) {
                assert_eq!(&appliance(l).name, l);
                assert!(
                    embedded().catalogue.appliances.iter().any(|a| &a.name == l),
                    "{}: unknown load {l}",
                    p.name
                );
            }
            assert!(p.is_legacy() || p.discovery.is_some(), "{}", p.name);
            assert!(p.is_strip() || !p.loads.is_empty(), "{}", p.name);
        }
        assert!(!rooms().is_empty());
    }

    #[test]
    fn extra_profiles_parse_and_are_found_but_not_in_the_default_fleet() {
        assert_eq!(
            extra().len(),
            EXTRA_PROFILE_FILES.len(),
            "an extra profile failed to parse"
        );
        for p in extra() {
            assert!(p.is_legacy() || p.discovery.is_some(), "{}", p.name);
            assert!(find(&p.name).is_some());
            assert!(all().iter().all(|q| q.name != p.name));
            for l in p.loads.iter().chain(p.outlets.iter().map(|o| &o.load)) {
                assert!(
                    embedded().catalogue.appliances.iter().any(|a| &a.name == l),
                    "{}: unknown load {l}",
                    p.name
                );
            }
            assert!(p.is_strip() || !p.loads.is_empty(), "{}", p.name);
        }
        for (name, strip, metered) in [
            ("p304m-uk-hw1-smart", true, true),
            ("p300-eu-hw1-smart", true, false),
            ("ep25-us-hw2-smart", false, true),
        ] {
            let p = find(name).expect(name);
            let d = p.discovery.as_ref().expect("discovery");
            assert_eq!(d["mgt_encrypt_schm"]["encrypt_type"], "KLAP", "{name}");
            assert!(
                d["device_type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("SMART."))
            );
            assert_eq!((p.is_strip(), p.has_meter()), (strip, metered), "{name}");
        }
        assert_eq!(
            find("KP125M(US)").map(|p| p.name.as_str()),
            Some("kp125m-us-hw1-smart")
        );
    }

    #[test]
    fn the_device_family_profiles_are_what_their_dumps_are() {
        use crate::protocol::{Kind, SysInfo};
        for (name, kind) in [
            ("kl130-eu-hw1", Kind::Bulb),
            ("kl430-us-hw2", Kind::Lightstrip),
            ("hs220-us-hw1", Kind::Dimmer),
        ] {
            let p = find(name).expect(name);
            assert!(p.is_legacy(), "{name}");
            let s = SysInfo::from_result(&Value::Object(p.sysinfo.clone())).expect(name);
            assert_eq!(s.kind(), kind, "{name}");
        }
        let bulb = find("KL130(EU)").expect("by model");
        assert!(bulb.is_light() && !bulb.is_lightstrip() && bulb.meter == MeterScheme::Bulb);
        assert!(find("kl430-us-hw2").is_some_and(Profile::is_lightstrip));
        assert!(find("hs220-us-hw1").is_some_and(|p| p.is_dimmer() && !p.has_meter()));
        assert_eq!(bulb.initial_brightness(), 100);
        assert_eq!(
            find("hs220-us-hw1").map(Profile::initial_brightness),
            Some(25)
        );
        let cam = find("c210-eu-hw2-camera").expect("camera");
        assert!(cam.is_discovery_only() && !cam.is_legacy());
        let d = cam.discovery.as_ref().expect("discovery");
        assert_eq!(d["device_type"], "SMART.IPCAMERA");
    }

    #[test]
    fn lookup_by_name_or_model() {
        assert_eq!(find("HS110-EU-HW1").map(|p| p.model()), Some("HS110(EU)"));
        assert_eq!(
            find("hs300(us)").map(|p| p.name.as_str()),
            Some("hs300-us-hw2")
        );
        assert!(find("hs999").is_none());
    }
}
