//! Identity by MAC: local names that follow a plug when DHCP moves it.
//!
//! Devices are merged by MAC (or by deviceId when a device sent no MAC) in
//! [`crate::fleet::registry`], so a plug seen at a new address is the same entry, with the old
//! address in `previous_ips`. This module adds what the config file brings on top:
//!
//! - [`Names`]: the `[names]` table of the config (MAC → local name), looked up by normalised MAC
//!   whatever separator or case the file or the device used; [`Names::display`] overlays a local
//!   name on the device's own alias.
//! - [`identity_key`]: the key under which anything per device (marks, history, flag counts)
//!   should be stored so it follows the device, not its address: `mac:<MAC>`, or `id:<deviceId>`
//!   for a device without a MAC.
//! - [`printable`]: device-supplied names are untrusted; this makes one safe to show.
//!
//! ```
//! use plugfleet::config::Config;
//! use plugfleet::identity::Names;
//!
//! let mut cfg = Config::default();
//! cfg.names.insert("b0-95-75-00-00-01".into(), "Kitchen kettle".into());
//! let names = Names::from_config(&cfg);
//! assert_eq!(names.display("B0:95:75:00:00:01", "HS110"), "Kitchen kettle");
//! assert_eq!(names.display("B0:95:75:00:00:02", "HS110"), "HS110");
//! ```

use std::borrow::Cow;
use std::collections::HashMap;

use crate::config::Config;
use crate::fleet::registry::Device;
use crate::protocol::normalise_mac;

/// Local names keyed by normalised MAC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    by_mac: HashMap<String, String>,
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

    /// The local name of the device with this MAC, if the config gives one.
    pub fn name_for(&self, mac: &str) -> Option<&str> {
        if mac.is_empty() {
            return None;
        }
        self.by_mac.get(&mac_key(mac)).map(String::as_str)
    }

    /// The name to show: the local name if any, else the device's alias.
    pub fn display<'a>(&'a self, mac: &str, alias: &'a str) -> &'a str {
        self.name_for(mac).unwrap_or(alias)
    }

    /// The name to show for a registry device: local name, else its alias, else its model,
    /// else its address.
    pub fn display_device(&self, d: &Device) -> String {
        if let Some(n) = self.name_for(&d.mac) {
            return n.to_owned();
        }
        match (d.alias(), d.model()) {
            (Some(a), _) if !a.trim().is_empty() => a.to_owned(),
            (_, Some(m)) if !m.is_empty() => m.to_owned(),
            _ => d.ip.to_string(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }
}

/// The lookup form of a MAC: hex digits only, upper case (any separator, any case in).
fn mac_key(mac: &str) -> String {
    let hex: String = normalise_mac(mac)
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    hex.to_ascii_uppercase()
}

/// The key per-device state should be stored under: `mac:<normalised MAC>`, or
/// `id:<deviceId>` when the MAC is unknown. Never the address.
pub fn identity_key(mac: &str, device_id: &str) -> String {
    let m = normalise_mac(mac);
    if m.chars().filter(char::is_ascii_hexdigit).count() >= 12 {
        format!("mac:{m}")
    } else {
        format!("id:{device_id}")
    }
}

/// The identity key of a registry device.
pub fn device_key(d: &Device) -> String {
    identity_key(&d.mac, d.device_id().unwrap_or(""))
}

/// At most this many characters of a device-supplied name are shown.
pub const MAX_NAME_CHARS: usize = 64;

/// A device-supplied string made safe to show ([`crate::text::sanitize`]: escape sequences,
/// control and bidi characters become `�`), cut to [`MAX_NAME_CHARS`] characters (with `…`).
pub fn printable(s: &str) -> Cow<'_, str> {
    match crate::text::sanitize(s) {
        Cow::Borrowed(b) => crate::text::clip(b, MAX_NAME_CHARS),
        Cow::Owned(o) => Cow::Owned(crate::text::clip(&o, MAX_NAME_CHARS).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_any_mac_spelling() {
        let n = Names::from_pairs([("b0-95-75-00-00-01", "Kettle"), ("b09575000002", "Fridge")]);
        assert_eq!(n.name_for("B0:95:75:00:00:01"), Some("Kettle"));
        assert_eq!(n.name_for("b0:95:75:00:00:02"), Some("Fridge"));
        assert_eq!(n.name_for("B0-95-75-00-00-02"), Some("Fridge"));
        assert_eq!(n.name_for("B0:95:75:00:00:03"), None);
        assert_eq!(n.name_for(""), None);
        assert_eq!(n.len(), 2);
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

    #[test]
    fn identity_key_prefers_the_mac() {
        assert_eq!(
            identity_key("50-c7-bf-00-00-01", "8006"),
            "mac:50:C7:BF:00:00:01"
        );
        assert_eq!(identity_key("", "8006"), "id:8006");
        assert_eq!(identity_key("garbage", "8006"), "id:8006");
    }

    #[test]
    fn printable_neutralises_control_characters_and_length() {
        assert_eq!(printable("Kitchen"), Cow::Borrowed("Kitchen"));
        assert_eq!(printable("a\x1b[2Jb\nc"), "a\u{FFFD}b\u{FFFD}c");
        let long = "x".repeat(200);
        let p = printable(&long);
        assert_eq!(p.chars().count(), MAX_NAME_CHARS);
        assert!(p.ends_with('…'));
    }
}
