//! Who a device is, in one place: the keys of the fleet model, MAC validation and the local
//! names that follow a MAC.
//!
//! - A port-9999 plug is keyed by its `deviceId` (40 hex digits, stable across DHCP moves and
//!   distinct for two devices that happen to report one MAC); a strip's outlets by their child
//!   ids (parent `deviceId` + index).
//! - A device known only from UDP 20002 is keyed `mac:<MAC>` (its MAC is all it has that is
//!   stable), else `id:<device_id>`; when it also answers on 9999 the two entries merge by MAC.
//! - A MAC is only an identity when it is one: 12 hex digits in the usual forms. Device text
//!   such as `NOT-A-MAC[2J` is not, and merging by it never happens.
//! - [`Names`]: the config's `[names]` table (MAC → local name), looked up by normalised MAC
//!   whatever separator or case the file or the device used, overlaid on the device's alias.
//!
//! ```
//! use plugfleet::config::Config;
//! use plugfleet::fleet::identity::Names;
//!
//! let mut cfg = Config::default();
//! cfg.names.insert("b0-95-75-00-00-01".into(), "Kitchen kettle".into());
//! let names = Names::from_config(&cfg);
//! assert_eq!(names.display("B0:95:75:00:00:01", "HS110"), "Kitchen kettle");
//! assert_eq!(names.display("B0:95:75:00:00:02", "HS110"), "HS110");
//! ```

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::Config;
use crate::protocol::normalise_mac;

/// The MAC in `AA:BB:CC:DD:EE:FF` form, if `s` is a MAC (12 hex digits, optionally separated
/// by `:` or `-` in pairs); `None` for anything else.
pub fn valid_mac(s: &str) -> Option<String> {
    let s = s.trim();
    let hex: String = s.chars().filter(char::is_ascii_hexdigit).collect();
    let seps = s.chars().filter(|c| !c.is_ascii_hexdigit()).count();
    let ok_shape = match (s.len(), seps) {
        (12, 0) => true,
        (17, 5) => {
            let sep = s.as_bytes()[2];
            (sep == b':' || sep == b'-')
                && s.as_bytes().iter().enumerate().all(|(i, b)| {
                    if i % 3 == 2 {
                        *b == sep
                    } else {
                        b.is_ascii_hexdigit()
                    }
                })
        }
        _ => false,
    };
    (ok_shape && hex.len() == 12).then(|| normalise_mac(&hex))
}

/// The key of a port-9999 device: its `deviceId`, else `mac:<MAC>` for a valid MAC, else its
/// address (`ip:<IP>`).
pub fn legacy_key(device_id: &str, mac: &str, ip: IpAddr) -> String {
    if !device_id.trim().is_empty() {
        return device_id.to_owned();
    }
    match valid_mac(mac) {
        Some(m) => format!("mac:{m}"),
        None => format!("ip:{ip}"),
    }
}

/// The key of a device known only from UDP 20002: `mac:<MAC>` for a valid MAC, else
/// `id:<device_id>`, else its address.
pub fn newer_key(mac: &str, device_id: Option<&str>, ip: IpAddr) -> String {
    match (valid_mac(mac), device_id.filter(|d| !d.trim().is_empty())) {
        (Some(m), _) => format!("mac:{m}"),
        (None, Some(id)) => format!("id:{id}"),
        (None, None) => format!("ip:{ip}"),
    }
}

/// Local names keyed by normalised MAC (the config's `[names]` table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    by_mac: HashMap<String, String>,
}

/// The lookup form of a MAC: hex digits only, upper case (any separator, any case in).
fn mac_key(mac: &str) -> String {
    let hex: String = normalise_mac(mac)
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    hex.to_ascii_uppercase()
}

impl Names {
    /// The `[names]` table of `cfg`. Keys were checked to hold 12 hex digits when the file was
    /// loaded; they are normalised here so `b0-95-75-…` and `B0:95:75:…` are the same device.
    pub fn from_config(cfg: &Config) -> Self {
        Self::from_pairs(cfg.names.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Names from (MAC, name) pairs; empty names are ignored, a later pair wins.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let by_mac = pairs
            .into_iter()
            .filter(|(_, name)| !name.trim().is_empty())
            .map(|(mac, name)| (mac_key(mac), name.to_owned()))
            .collect();
        Self { by_mac }
    }

    /// The local name of the device with this MAC, if the config gives one (never for
    /// something that is not a MAC).
    pub fn name_for(&self, mac: &str) -> Option<&str> {
        valid_mac(mac)?;
        self.by_mac.get(&mac_key(mac)).map(String::as_str)
    }

    /// The name to show: the local name if any, else the device's alias.
    pub fn display<'a>(&'a self, mac: &str, alias: &'a str) -> &'a str {
        self.name_for(mac).unwrap_or(alias)
    }

    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_macs_are_macs() {
        assert_eq!(
            valid_mac("50:c7:bf:00:00:01").as_deref(),
            Some("50:C7:BF:00:00:01")
        );
        assert_eq!(
            valid_mac("50-C7-BF-00-00-01").as_deref(),
            Some("50:C7:BF:00:00:01")
        );
        assert_eq!(
            valid_mac("50c7bf000001").as_deref(),
            Some("50:C7:BF:00:00:01")
        );
        for bad in [
            "",
            "NOT-A-MAC[2J",
            "NOT-A-MAC\u{1b}[2J",
            "garbage",
            "50:c7:bf:00:00",
            "50:c7-bf:00:00:01",
            "50:c7:bf:00:00:01:02",
            "zz:zz:zz:zz:zz:zz",
        ] {
            assert_eq!(valid_mac(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_prefer_the_device_id_then_a_valid_mac() {
        let ip: IpAddr = "127.0.0.9".parse().expect("ip");
        assert_eq!(legacy_key("8006AB", "NOT-A-MAC[2J", ip), "8006AB");
        assert_eq!(
            legacy_key("", "50-c7-bf-00-00-01", ip),
            "mac:50:C7:BF:00:00:01"
        );
        assert_eq!(legacy_key(" ", "NOT-A-MAC[2J", ip), "ip:127.0.0.9");
        assert_eq!(
            newer_key("50-C7-BF-00-00-01", Some("80"), ip),
            "mac:50:C7:BF:00:00:01"
        );
        assert_eq!(newer_key("NOT-A-MAC[2J", Some("80"), ip), "id:80");
        assert_eq!(newer_key("NOT-A-MAC", None, ip), "ip:127.0.0.9");
    }

    #[test]
    fn names_match_any_mac_spelling_and_never_a_non_mac() {
        let n = Names::from_pairs([("b0-95-75-00-00-01", "Kettle"), ("b09575000002", "Fridge")]);
        assert_eq!(n.name_for("B0:95:75:00:00:01"), Some("Kettle"));
        assert_eq!(n.name_for("b0:95:75:00:00:02"), Some("Fridge"));
        assert_eq!(n.name_for("B0-95-75-00-00-02"), Some("Fridge"));
        assert_eq!(n.name_for("B0:95:75:00:00:03"), None);
        assert_eq!(n.name_for(""), None);
        assert_eq!(n.len(), 2);
        let n = Names::from_pairs([("AA:BB:CC:DD:EE:FF", "Desk")]);
        assert_eq!(n.name_for("xAA:BB:CC:DD:EE:FFx"), None);
    }

    #[test]
    fn local_name_overlays_alias() {
        let n = Names::from_pairs([("AA:BB:CC:DD:EE:FF", "Desk")]);
        assert_eq!(
            n.display("aa-bb-cc-dd-ee-ff", "TP-LINK_Smart Plug_EEFF"),
            "Desk"
        );
        assert_eq!(n.display("AA:BB:CC:DD:EE:00", "TP-LINK"), "TP-LINK");
        // An empty local name does not hide the alias.
        let n = Names::from_pairs([("AA:BB:CC:DD:EE:FF", "  ")]);
        assert!(n.is_empty());
        assert_eq!(n.display("AA:BB:CC:DD:EE:FF", "TP-LINK"), "TP-LINK");
    }

    #[test]
    fn from_config_uses_the_names_table() {
        let cfg = Config::parse(
            "[names]\n\"50:c7:bf:00:00:01\" = \"Kettle\"\n",
            std::path::Path::new("/x.toml"),
        )
        .unwrap();
        let n = Names::from_config(&cfg);
        assert_eq!(n.name_for("50-C7-BF-00-00-01"), Some("Kettle"));
        assert_eq!(
            n.name_for("50-C7-BF-00-00-01"),
            cfg.name_for("50-C7-BF-00-00-01")
        );
    }
}
