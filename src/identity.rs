//! Identity by MAC: local names that follow a plug when DHCP moves it.
//!
//! Identity is decided in one place, the fleet model ([`crate::fleet::identity`] for the keys,
//! [`crate::fleet::model::Fleet::observe`] for the merge), so a plug seen at a new address is
//! the same entry, with the old address in `previous_ips`. This module adds what the config
//! file brings on top:
//!
//! - [`Names`]: the `[names]` table of the config (MAC → local name), looked up by normalised MAC
//!   whatever separator or case the file or the device used; [`Names::display`] overlays a local
//!   name on the device's own alias.
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

use crate::config::Config;
pub use crate::fleet::identity::Names;

impl Names {
    /// The `[names]` table of `cfg`. Keys were checked to hold 12 hex digits when the file was
    /// loaded; they are normalised here so `b0-95-75-…` and `B0:95:75:…` are the same device.
    pub fn from_config(cfg: &Config) -> Self {
        Self::from_pairs(cfg.names.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// At most this many characters of a device-supplied name are shown.
pub const MAX_NAME_CHARS: usize = 64;

/// A device-supplied string made safe to show: control characters (escape sequences, new
/// lines, …) become `�`, and it is cut to [`MAX_NAME_CHARS`] characters (with `…`).
pub fn printable(s: &str) -> Cow<'_, str> {
    let clean = !s.chars().any(char::is_control) && s.chars().count() <= MAX_NAME_CHARS;
    if clean {
        return Cow::Borrowed(s);
    }
    let mut out: String = s
        .chars()
        .take(MAX_NAME_CHARS)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if s.chars().count() > MAX_NAME_CHARS {
        out.pop();
        out.push('…');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn printable_neutralises_control_characters_and_length() {
        assert_eq!(printable("Kitchen"), Cow::Borrowed("Kitchen"));
        assert_eq!(printable("a\x1b[2Jb\nc"), "a\u{FFFD}[2Jb\u{FFFD}c");
        let long = "x".repeat(200);
        let p = printable(&long);
        assert_eq!(p.chars().count(), MAX_NAME_CHARS);
        assert!(p.ends_with('…'));
    }
}
