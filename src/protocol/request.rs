//! Typed requests. Each knows its module and method, so the reply can be checked at both levels.

use serde_json::{Value, json};

use super::kind::Switching;

/// The bulbs' lighting module.
pub const BULB_SERVICE: &str = "smartlife.iot.smartbulb.lightingservice";
/// The light strips' lighting module.
pub const LIGHTSTRIP_SERVICE: &str = "smartlife.iot.lightStrip";

/// One request to a plug. `child` selects a strip outlet through a sibling `context` object.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    SysInfo,
    Realtime {
        child: Option<String>,
    },
    DayStat {
        year: i32,
        month: u32,
        child: Option<String>,
    },
    MonthStat {
        year: i32,
        child: Option<String>,
    },
    /// Erases the day and month statistics (of `child` on strips).
    EraseStats {
        child: Option<String>,
    },
    SetRelay {
        on: bool,
        child: Option<String>,
    },
    /// A bulb's or light strip's meter: `smartlife.iot.common.emeter.get_realtime`.
    LightRealtime,
    /// Switches a bulb (`smartlife.iot.smartbulb.lightingservice.transition_light_state`) or a
    /// light strip (`smartlife.iot.lightStrip.set_light_state`) on or off.
    SetLight {
        on: bool,
        strip: bool,
    },
    SetAlias {
        alias: String,
        child: Option<String>,
    },
    Reboot {
        delay_s: u32,
    },
    DownloadFirmware {
        url: String,
    },
    GetDownloadState,
    FlashFirmware,
    /// The plug's local wall-clock time (`time.get_time`), what its calendar days follow.
    Time,
    /// Anything else: a whole request object, sent as is.
    Raw(Value),
}

impl Request {
    pub fn realtime(child: Option<&str>) -> Self {
        Request::Realtime {
            child: child.map(str::to_owned),
        }
    }

    pub fn set_relay(on: bool, child: Option<&str>) -> Self {
        Request::SetRelay {
            on,
            child: child.map(str::to_owned),
        }
    }

    /// Switches a device on or off the way its family is switched ([`Switching`]).
    pub fn set_power(how: Switching, on: bool, child: Option<&str>) -> Self {
        match how {
            Switching::Relay => Self::set_relay(on, child),
            Switching::Bulb => Request::SetLight { on, strip: false },
            Switching::Lightstrip => Request::SetLight { on, strip: true },
        }
    }

    /// `(module, method)` whose result this request's reply carries; `None` for [`Request::Raw`].
    pub fn target(&self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Request::SysInfo => ("system", "get_sysinfo"),
            Request::Realtime { .. } => ("emeter", "get_realtime"),
            Request::DayStat { .. } => ("emeter", "get_daystat"),
            Request::MonthStat { .. } => ("emeter", "get_monthstat"),
            Request::EraseStats { .. } => ("emeter", "erase_emeter_stat"),
            Request::SetRelay { .. } => ("system", "set_relay_state"),
            Request::LightRealtime => (super::reply::LIGHT_EMETER, "get_realtime"),
            Request::SetLight { strip: false, .. } => (BULB_SERVICE, "transition_light_state"),
            Request::SetLight { strip: true, .. } => (LIGHTSTRIP_SERVICE, "set_light_state"),
            Request::SetAlias { .. } => ("system", "set_dev_alias"),
            Request::Reboot { .. } => ("system", "reboot"),
            Request::DownloadFirmware { .. } => ("system", "download_firmware"),
            Request::GetDownloadState => ("system", "get_download_state"),
            Request::FlashFirmware => ("system", "flash_firmware"),
            Request::Time => ("time", "get_time"),
            Request::Raw(_) => return None,
        })
    }

    fn args(&self) -> Value {
        match self {
            Request::DayStat { year, month, .. } => json!({"year": year, "month": month}),
            Request::MonthStat { year, .. } => json!({"year": year}),
            Request::SetRelay { on, .. } => json!({"state": u8::from(*on)}),
            Request::SetLight { on, .. } => json!({"on_off": u8::from(*on)}),
            Request::SetAlias { alias, .. } => json!({"alias": alias}),
            Request::Reboot { delay_s } => json!({"delay": delay_s}),
            Request::DownloadFirmware { url } => json!({"url": url}),
            _ => json!({}),
        }
    }

    fn child(&self) -> Option<&str> {
        match self {
            Request::Realtime { child }
            | Request::DayStat { child, .. }
            | Request::MonthStat { child, .. }
            | Request::EraseStats { child }
            | Request::SetRelay { child, .. }
            | Request::SetAlias { child, .. } => child.as_deref(),
            _ => None,
        }
    }

    /// The request as a JSON value.
    pub fn to_value(&self) -> Value {
        if let Request::Raw(v) = self {
            return v.clone();
        }
        let Some((module, method)) = self.target() else {
            return Value::Null;
        };
        let mut root = serde_json::Map::new();
        if let Some(child) = self.child() {
            root.insert("context".into(), json!({"child_ids": [child]}));
        }
        root.insert(module.into(), json!({ method: self.args() }));
        Value::Object(root)
    }

    /// Compact JSON bytes, as python-kasa and tplink-smarthome-api send them.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Serialising a Value cannot fail.
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }

    /// A TCP frame for this request.
    pub fn encode_tcp(&self) -> Vec<u8> {
        super::codec::encode_frame(&self.to_json_bytes())
    }

    /// A UDP datagram for this request.
    pub fn encode_udp(&self) -> Vec<u8> {
        super::codec::encode_datagram(&self.to_json_bytes())
    }

    /// True for requests that change the plug (refused in read-only mode).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Request::SysInfo
                | Request::Realtime { .. }
                | Request::LightRealtime
                | Request::DayStat { .. }
                | Request::MonthStat { .. }
                | Request::GetDownloadState
                | Request::Time
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysinfo_is_compact_and_matches_the_reference_bytes() {
        assert_eq!(
            Request::SysInfo.to_json_bytes(),
            br#"{"system":{"get_sysinfo":{}}}"#
        );
        assert_eq!(
            hex::encode(Request::SysInfo.encode_udp()),
            "d0f281f88bff9af7d5ef94b6d1b4c09fec95e68fe187e8caf08bf68bf6"
        );
        assert_eq!(
            hex::encode(Request::GetDownloadState.encode_tcp()),
            "00000024d0f281f88bff9af7d5ef94b6d1b4c09ffb94e38de18eef8bd4a7d3b2c6a381bbc0bdc0bd"
        );
    }

    #[test]
    fn child_requests_carry_a_context() {
        let v = Request::set_relay(true, Some("ABC01")).to_value();
        assert_eq!(
            v,
            json!({"context":{"child_ids":["ABC01"]},"system":{"set_relay_state":{"state":1}}})
        );
        let v = Request::realtime(Some("ABC02")).to_value();
        assert_eq!(
            v,
            json!({"context":{"child_ids":["ABC02"]},"emeter":{"get_realtime":{}}})
        );
    }

    #[test]
    fn lights_are_switched_and_metered_by_their_own_modules() {
        assert_eq!(
            Request::set_power(Switching::Bulb, true, None).to_value(),
            json!({"smartlife.iot.smartbulb.lightingservice":{"transition_light_state":{"on_off":1}}})
        );
        assert_eq!(
            Request::set_power(Switching::Lightstrip, false, None).to_value(),
            json!({"smartlife.iot.lightStrip":{"set_light_state":{"on_off":0}}})
        );
        assert_eq!(
            Request::set_power(Switching::Relay, false, Some("C01")),
            Request::set_relay(false, Some("C01"))
        );
        assert!(
            Request::SetLight {
                on: true,
                strip: false
            }
            .is_write()
        );
        assert_eq!(
            Request::LightRealtime.to_value(),
            json!({"smartlife.iot.common.emeter":{"get_realtime":{}}})
        );
        assert!(!Request::LightRealtime.is_write());
    }

    #[test]
    fn firmware_requests() {
        assert_eq!(
            Request::DownloadFirmware {
                url: "http://127.0.0.1:8080/x.bin".into()
            }
            .to_value(),
            json!({"system":{"download_firmware":{"url":"http://127.0.0.1:8080/x.bin"}}})
        );
        assert_eq!(
            Request::FlashFirmware.to_value(),
            json!({"system":{"flash_firmware":{}}})
        );
        assert_eq!(
            Request::Reboot { delay_s: 1 }.to_value(),
            json!({"system":{"reboot":{"delay":1}}})
        );
        assert!(Request::FlashFirmware.is_write());
        assert!(!Request::GetDownloadState.is_write());
    }

    #[test]
    fn stats_and_raw() {
        assert_eq!(
            Request::DayStat {
                year: 2024,
                month: 6,
                child: None
            }
            .to_value(),
            json!({"emeter":{"get_daystat":{"year":2024,"month":6}}})
        );
        assert_eq!(
            Request::EraseStats {
                child: Some("P01".into())
            }
            .to_value(),
            json!({"context":{"child_ids":["P01"]},"emeter":{"erase_emeter_stat":{}}})
        );
        assert!(Request::EraseStats { child: None }.is_write());
        let raw = json!({"time":{"get_time":{}}});
        assert_eq!(Request::Raw(raw.clone()).to_value(), raw);
        assert_eq!(Request::Raw(raw).target(), None);
    }
}
