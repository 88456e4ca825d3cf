//! How to talk to a newer-protocol device, decided from its UDP 20002 discovery reply
//! (PROTOCOL.md §8.2/§8.4), and the typed ways such a device can refuse to be read. Pure.
//!
//! - `encrypt_type: KLAP` → the KLAP transport; `AES` → securePassthrough; anything else is
//!   [`Refusal::Unsupported`].
//! - `device_type` `IOT.*` → the port-9999 JSON inside ([`Dialect::Iot`]); `SMART.*` → JSON-RPC
//!   ([`Dialect::Smart`]).
//! - KLAP auth hash: v2 for `SMART.*`, for `lv >= 2` and for `new_klap: 1`; v1 otherwise.
//! - AES login: `password2` when `lv: 2`.
//! - `http_port` (default 80, or [`DEFAULT_HTTPS_PORT`] with HTTPS).
//! - `is_support_https: true`: the HTTPS variants python-kasa speaks for these devices
//!   (`kasa/device_factory.py`: `SMART.KLAP.HTTPS` → KLAP v2 over TLS, first seen on robovacs'
//!   later firmware, python-kasa #1415) are spoken: KLAP with a `SMART.*` dialect over TLS. The
//!   others are [`Refusal::Unsupported`] with the reason, never tried in clear text:
//!   `SMART.AES.HTTPS` and the cameras (`SMART.IPCAMERA`, no `encrypt_type`) use the SSL-AES
//!   login of `sslaestransport.py` (a nonce/digest exchange, not securePassthrough), and no
//!   `IOT.*` device over KLAP-HTTPS is known (python-kasa has no transport for one).

use serde::Serialize;

use crate::protocol::klap::AuthVersion;
use crate::protocol::tdp::TdpInfo;

/// The HTTP port when the discovery reply names none.
pub const DEFAULT_HTTP_PORT: u16 = 80;
/// The HTTPS port of KLAP when the discovery reply names none (python-kasa's
/// `KlapTransport.DEFAULT_HTTPS_PORT`; the robovac dumps name it too).
pub const DEFAULT_HTTPS_PORT: u16 = 4433;

/// The transport below the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Klap,
    Aes,
}

/// The payload language inside the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// The same JSON as port 9999 (`{"system":{"get_sysinfo":{}}}`).
    Iot,
    /// JSON-RPC (`{"method":"get_device_info"}`).
    Smart,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Iot => "iot",
            Dialect::Smart => "smart",
        }
    }
}

/// Everything needed to open a session with one newer-protocol device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub transport: Transport,
    pub dialect: Dialect,
    /// KLAP auth-hash version.
    pub version: AuthVersion,
    /// AES `login_device` with `password2` (`lv: 2`).
    pub login_v2: bool,
    /// The transport runs over TLS (`is_support_https`).
    pub https: bool,
    pub http_port: u16,
}

impl Access {
    /// The access a discovery reply asks for, or why it cannot be used.
    pub fn from_tdp(t: &TdpInfo) -> Result<Access, Refusal> {
        let dialect = if t.device_type.starts_with("SMART.") {
            Dialect::Smart
        } else if t.device_type.starts_with("IOT.") {
            Dialect::Iot
        } else {
            return Err(Refusal::Unsupported(format!(
                "device type `{}` is neither IOT.* nor SMART.*",
                t.device_type
            )));
        };
        let klap = t
            .encrypt_type
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("KLAP"));
        if t.https && !klap {
            return Err(Refusal::Unsupported(
                "HTTPS without KLAP: the SSL-AES login of cameras and hubs, not spoken".into(),
            ));
        }
        if t.https && dialect == Dialect::Iot {
            return Err(Refusal::Unsupported(
                "KLAP over HTTPS with IOT.* JSON: no such device is known (nor in python-kasa)"
                    .into(),
            ));
        }
        let transport = match t.encrypt_type.as_deref() {
            Some(e) if e.eq_ignore_ascii_case("KLAP") => Transport::Klap,
            Some(e) if e.eq_ignore_ascii_case("AES") => Transport::Aes,
            Some(e) => {
                return Err(Refusal::Unsupported(format!(
                    "encryption `{e}` is not KLAP or AES"
                )));
            }
            None => {
                return Err(Refusal::Unsupported(
                    "the discovery reply names no encryption".into(),
                ));
            }
        };
        if transport == Transport::Aes && dialect == Dialect::Iot {
            return Err(Refusal::Unsupported(
                "IOT payloads over the AES transport are not known to exist".into(),
            ));
        }
        let nk = t.new_klap.then_some(1);
        let default_port = if t.https {
            DEFAULT_HTTPS_PORT
        } else {
            DEFAULT_HTTP_PORT
        };
        Ok(Access {
            transport,
            dialect,
            version: AuthVersion::from_discovery(&t.device_type, t.lv, nk),
            login_v2: t.lv == Some(2),
            https: t.https,
            http_port: t.http_port.filter(|p| *p != 0).unwrap_or(default_port),
        })
    }

    /// `klap-iot`, `klap-smart`, `aes-smart`; `klap-smart-https` over TLS.
    pub fn label(&self) -> &'static str {
        match (self.transport, self.dialect, self.https) {
            (Transport::Klap, Dialect::Iot, false) => "klap-iot",
            (Transport::Klap, Dialect::Smart, false) => "klap-smart",
            (Transport::Aes, Dialect::Smart, false) => "aes-smart",
            (Transport::Aes, Dialect::Iot, false) => "aes-iot",
            (Transport::Klap, Dialect::Iot, true) => "klap-iot-https",
            (Transport::Klap, Dialect::Smart, true) => "klap-smart-https",
            (Transport::Aes, Dialect::Smart, true) => "aes-smart-https",
            (Transport::Aes, Dialect::Iot, true) => "aes-iot-https",
        }
    }
}

/// Why a newer-protocol device gave no reading although it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "state", content = "detail", rename_all = "kebab-case")]
pub enum Refusal {
    /// No account is configured and neither the default nor blank credentials work.
    #[error("needs credentials")]
    NeedsCredentials,
    /// The device refuses the account given.
    #[error("auth failed")]
    AuthFailed,
    /// Its transport or dialect is one plugfleet cannot speak.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl Refusal {
    /// `needs-credentials`, `auth-failed`, `unsupported`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::NeedsCredentials => "needs-credentials",
            Refusal::AuthFailed => "auth-failed",
            Refusal::Unsupported(_) => "unsupported",
        }
    }

    /// One line telling the user what to do.
    pub fn hint(&self) -> String {
        match self {
            Refusal::NeedsCredentials => "give the TP-Link account: --username/--password, \
                 PLUGFLEET_USERNAME/PLUGFLEET_PASSWORD or [credentials] in the config"
                .into(),
            Refusal::AuthFailed => "the device refuses this TP-Link account: check the e-mail \
                 and password of the account the plug is bound to"
                .into(),
            Refusal::Unsupported(why) => why.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tdp(ty: &str, enc: Option<&str>, port: Option<u16>, lv: Option<i64>, nk: bool) -> TdpInfo {
        TdpInfo {
            device_type: ty.into(),
            model: "X".into(),
            hw_ver: None,
            mac: "00:00:00:00:00:01".into(),
            device_id: None,
            ip: None,
            encrypt_type: enc.map(str::to_owned),
            http_port: port,
            new_klap: nk,
            lv,
            https: false,
            ..TdpInfo::default()
        }
    }

    #[test]
    fn the_discovery_reply_picks_transport_dialect_and_hash() {
        let a = Access::from_tdp(&tdp("IOT.SMARTPLUGSWITCH", Some("KLAP"), None, None, false))
            .expect("iot klap");
        assert_eq!(
            (a.transport, a.dialect, a.version, a.http_port, a.label()),
            (
                Transport::Klap,
                Dialect::Iot,
                AuthVersion::V1,
                80,
                "klap-iot"
            )
        );
        let a = Access::from_tdp(&tdp(
            "IOT.SMARTPLUGSWITCH",
            Some("KLAP"),
            Some(80),
            Some(2),
            true,
        ))
        .expect("new klap");
        assert_eq!(a.version, AuthVersion::V2);
        let a = Access::from_tdp(&tdp("IOT.SMARTPLUGSWITCH", Some("klap"), None, None, true))
            .expect("new klap alone");
        assert_eq!(a.version, AuthVersion::V2);
        let a = Access::from_tdp(&tdp(
            "SMART.KASAPLUG",
            Some("KLAP"),
            Some(4321),
            None,
            false,
        ))
        .expect("smart");
        assert_eq!(
            (a.dialect, a.version, a.http_port, a.label()),
            (Dialect::Smart, AuthVersion::V2, 4321, "klap-smart")
        );
        let a = Access::from_tdp(&tdp(
            "SMART.TAPOPLUG",
            Some("AES"),
            Some(80),
            Some(2),
            false,
        ))
        .expect("aes");
        assert_eq!(
            (a.transport, a.login_v2, a.label()),
            (Transport::Aes, true, "aes-smart")
        );
        let a = Access::from_tdp(&tdp("SMART.TAPOPLUG", Some("AES"), Some(0), None, false))
            .expect("aes v1");
        assert_eq!((a.login_v2, a.http_port), (false, 80));
    }

    #[test]
    fn what_cannot_be_spoken_is_unsupported_with_why() {
        for (t, want) in [
            (tdp("IOT.X", None, None, None, false), "no encryption"),
            (tdp("IOT.X", Some("TLS9"), None, None, false), "TLS9"),
            (tdp("SMART.IPCAMERA", Some("AES"), None, None, false), ""),
            (tdp("HUB.X", Some("KLAP"), None, None, false), "HUB.X"),
            (tdp("IOT.X", Some("AES"), None, None, false), "AES"),
        ] {
            match Access::from_tdp(&t) {
                Err(Refusal::Unsupported(why)) => assert!(why.contains(want), "{why}"),
                Ok(a) if want.is_empty() => assert_eq!(a.label(), "aes-smart"),
                other => panic!("{t:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn https_is_klap_smart_over_tls_and_the_rest_is_refused_with_why() {
        let https = |ty: &str, enc: Option<&str>, port: Option<u16>| {
            let mut t = tdp(ty, enc, port, None, false);
            t.https = true;
            Access::from_tdp(&t)
        };
        // The robovac dumps' shape: KLAP, port 4433, no lv.
        let a = https("SMART.TAPOROBOVAC", Some("KLAP"), Some(4433)).expect("klap https");
        assert_eq!(
            (a.transport, a.dialect, a.version, a.https, a.http_port),
            (Transport::Klap, Dialect::Smart, AuthVersion::V2, true, 4433)
        );
        assert_eq!(a.label(), "klap-smart-https");
        // No port named: python-kasa's KLAP HTTPS default, not 80.
        let a = https("SMART.KASAPLUG", Some("KLAP"), None).expect("default port");
        assert_eq!((a.http_port, a.https), (4433, true));
        let a = https("SMART.KASAPLUG", Some("KLAP"), Some(0)).expect("port 0");
        assert_eq!(a.http_port, 4433);
        // Plain HTTP keeps 80 and its label.
        let a = Access::from_tdp(&tdp("SMART.KASAPLUG", Some("KLAP"), None, None, false))
            .expect("http");
        assert_eq!((a.http_port, a.https, a.label()), (80, false, "klap-smart"));
        for (ty, enc, want) in [
            ("SMART.IPCAMERA", None, "SSL-AES"),
            ("SMART.TAPOPLUG", Some("AES"), "SSL-AES"),
            ("SMART.TAPOHUB", Some("AES"), "SSL-AES"),
            ("IOT.SMARTPLUGSWITCH", Some("KLAP"), "IOT.*"),
        ] {
            match https(ty, enc, Some(443)) {
                Err(Refusal::Unsupported(why)) => assert!(why.contains(want), "{ty}: {why}"),
                other => panic!("{ty}: {other:?}"),
            }
        }
    }

    #[test]
    fn refusals_have_labels_and_hints() {
        assert_eq!(Refusal::NeedsCredentials.label(), "needs-credentials");
        assert!(Refusal::NeedsCredentials.hint().contains("--username"));
        assert_eq!(Refusal::AuthFailed.to_string(), "auth failed");
        assert!(Refusal::AuthFailed.hint().contains("password"));
    }
}
