//! The UDP 20002 discovery probe that newer-protocol (KLAP/AES) devices answer (PROTOCOL.md §8.2).
//!
//! A 16-byte header — version 2, message type 0, op code 1, payload length, flags, reserved,
//! serial, CRC32 over the whole packet with the CRC field preset to `0x5A6B7C8D` — then JSON.

use serde::Serialize;
use serde_json::Value;

use super::reply::{ReplyError, device_text, normalise_mac};

/// Port newer devices listen on for discovery.
pub const TDP_PORT: u16 = 20002;
/// Header length.
pub const TDP_HEADER_LEN: usize = 16;
const CRC_SEED: u32 = 0x5A6B_7C8D;

/// Builds a TDP packet around `payload` (empty for the plain probe).
pub fn encode_packet(payload: &[u8], flags: u8, serial: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(TDP_HEADER_LEN + payload.len());
    p.push(2);
    p.push(0);
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&(payload.len().min(u16::MAX as usize) as u16).to_be_bytes());
    p.push(flags);
    p.push(0);
    p.extend_from_slice(&serial.to_be_bytes());
    p.extend_from_slice(&CRC_SEED.to_be_bytes());
    p.extend_from_slice(payload);
    let crc = crc32fast::hash(&p);
    p[12..16].copy_from_slice(&crc.to_be_bytes());
    p
}

/// The empty probe python-kasa sent in 2023–2024.
pub fn probe() -> Vec<u8> {
    encode_packet(&[], 0, 0)
}

/// What a newer-protocol device says about itself: every field its reply carries that a view
/// shows (cameras and hubs are known by this alone).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TdpInfo {
    /// `IOT.SMARTPLUGSWITCH`, `SMART.KASAPLUG`, …
    pub device_type: String,
    pub model: String,
    pub hw_ver: Option<String>,
    pub mac: String,
    pub device_id: Option<String>,
    pub ip: Option<String>,
    /// `KLAP` or `AES`.
    pub encrypt_type: Option<String>,
    pub http_port: Option<u16>,
    pub new_klap: bool,
    /// `mgt_encrypt_schm.lv`: login version (2 = KLAP v2 hash for IOT, `password2` for AES).
    pub lv: Option<i64>,
    /// `firmware_version` (cameras, hubs, newer SMART devices).
    pub sw_ver: Option<String>,
    /// `device_name` (the user's name on cameras and hubs).
    pub device_name: Option<String>,
    /// `mgt_encrypt_schm.is_support_https`.
    pub https: bool,
}

impl TdpInfo {
    /// A protocol label for tables and JSON: `klap`, `klap-v2`, `aes`, or `tdp`.
    pub fn protocol_label(&self) -> &'static str {
        match self.encrypt_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("KLAP") && self.new_klap => "klap-v2",
            Some(t) if t.eq_ignore_ascii_case("KLAP") => "klap",
            Some(t) if t.eq_ignore_ascii_case("AES") => "aes",
            _ if self.https => "https",
            _ => "tdp",
        }
    }

    /// What the device is, by its `device_type` and model.
    pub fn kind(&self) -> super::kind::Kind {
        super::kind::Kind::of_tdp(&self.device_type, &self.model)
    }

    /// The numeric part of `firmware_version` (`1.4.3` of `1.4.3 Build 241010 Rel.33858n`).
    pub fn version(&self) -> Option<&str> {
        self.sw_ver
            .as_deref()
            .and_then(|v| v.split_whitespace().next())
    }
}

/// Decodes a TDP reply: header checks, CRC, then the JSON `result`.
pub fn decode_reply(packet: &[u8]) -> Result<TdpInfo, ReplyError> {
    if packet.len() < TDP_HEADER_LEN {
        return Err(ReplyError::Shape(format!(
            "TDP packet of {} bytes is shorter than its header",
            packet.len()
        )));
    }
    if packet[0] != 2 {
        return Err(ReplyError::Shape(format!(
            "TDP version {} is not 2",
            packet[0]
        )));
    }
    let len = u16::from_be_bytes([packet[4], packet[5]]) as usize;
    let body = &packet[TDP_HEADER_LEN..];
    if body.len() < len {
        return Err(ReplyError::Shape(format!(
            "TDP payload of {} bytes, header says {len}",
            body.len()
        )));
    }
    let mut check = packet[..TDP_HEADER_LEN + len].to_vec();
    let got = u32::from_be_bytes([check[12], check[13], check[14], check[15]]);
    check[12..16].copy_from_slice(&CRC_SEED.to_be_bytes());
    if crc32fast::hash(&check) != got {
        return Err(ReplyError::Shape("TDP checksum mismatch".into()));
    }
    let root = super::reply::parse_json(&body[..len])?;
    if let Some(code) = root
        .get("error_code")
        .and_then(Value::as_i64)
        .filter(|c| *c != 0)
    {
        return Err(ReplyError::Device {
            module: "tdp".into(),
            method: "discovery".into(),
            code,
            msg: "discovery error".into(),
        });
    }
    let r = root
        .get("result")
        .and_then(Value::as_object)
        .ok_or_else(|| ReplyError::Shape("TDP reply has no `result`".into()))?;
    // Device text enters the model here: sanitised once, like sysinfo's strings.
    let s = |k: &str| r.get(k).and_then(Value::as_str).map(device_text);
    let schm = r.get("mgt_encrypt_schm").and_then(Value::as_object);
    Ok(TdpInfo {
        device_type: s("device_type")
            .ok_or_else(|| ReplyError::Shape("TDP reply has no `device_type`".into()))?,
        model: s("device_model")
            .ok_or_else(|| ReplyError::Shape("TDP reply has no `device_model`".into()))?,
        hw_ver: s("hw_ver").or_else(|| s("hardware_version")),
        mac: s("mac")
            .map(|m| normalise_mac(&m))
            .ok_or_else(|| ReplyError::Shape("TDP reply has no `mac`".into()))?,
        device_id: s("device_id"),
        ip: s("ip"),
        encrypt_type: schm
            .and_then(|m| m.get("encrypt_type"))
            .and_then(Value::as_str)
            .map(device_text),
        http_port: schm
            .and_then(|m| m.get("http_port"))
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok()),
        new_klap: schm
            .and_then(|m| m.get("new_klap"))
            .and_then(Value::as_i64)
            .is_some_and(|v| v != 0),
        lv: schm.and_then(|m| m.get("lv")).and_then(Value::as_i64),
        sw_ver: s("firmware_version").or_else(|| s("sw_ver")),
        device_name: s("device_name"),
        https: schm
            .and_then(|m| m.get("is_support_https"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_probe_matches_the_reference() {
        assert_eq!(
            hex::encode(probe()),
            "02000001000000000000000046 3cb5d3".replace(' ', "")
        );
    }

    #[test]
    fn reply_round_trips() {
        let json = br#"{"error_code":0,"result":{"device_type":"IOT.SMARTPLUGSWITCH","device_model":"HS100(UK)","hw_ver":"4.1","mac":"C0-06-C3-00-00-00","ip":"127.0.0.9","device_id":"abc","mgt_encrypt_schm":{"encrypt_type":"KLAP","http_port":80,"is_support_https":false}}}"#;
        let p = encode_packet(json, 0, 7);
        let info = decode_reply(&p).expect("reply");
        assert_eq!(info.model, "HS100(UK)");
        assert_eq!(info.mac, "C0:06:C3:00:00:00");
        assert_eq!(info.protocol_label(), "klap");
        assert_eq!(info.http_port, Some(80));
        assert_eq!((info.lv, info.https), (None, false));
        let json = br#"{"error_code":0,"result":{"device_type":"SMART.TAPOPLUG","device_model":"P110(EU)","mac":"C0-06-C3-00-00-01","mgt_encrypt_schm":{"encrypt_type":"AES","http_port":8080,"lv":2,"is_support_https":true}}}"#;
        let info = decode_reply(&encode_packet(json, 0, 8)).expect("reply");
        assert_eq!(
            (info.lv, info.https, info.http_port),
            (Some(2), true, Some(8080))
        );
    }

    #[test]
    fn a_camera_reply_gives_every_field_it_carries() {
        // The `discovery_result` of python-kasa's C210(EU) 2.0 1.4.3 dump.
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/discovery/C210(EU)_2.0_1.4.3.json"
        ))
        .expect("fixture");
        let v: Value = serde_json::from_str(&text).expect("json");
        let body = serde_json::to_vec(&v["discovery_result"]).expect("bytes");
        let info = decode_reply(&encode_packet(&body, 0, 1)).expect("reply");
        assert_eq!(info.model, "C210");
        assert_eq!(info.device_type, "SMART.IPCAMERA");
        assert_eq!(info.hw_ver.as_deref(), Some("2.0"));
        assert_eq!(
            info.sw_ver.as_deref(),
            Some("1.4.3 Build 241010 Rel.33858n")
        );
        assert_eq!(info.version(), Some("1.4.3"));
        assert_eq!(info.device_name.as_deref(), Some("#MASKED_NAME#"));
        assert_eq!(info.mac, "40:AE:30:00:00:00");
        assert!(info.https);
        assert_eq!(info.protocol_label(), "https");
        assert_eq!(info.kind(), crate::protocol::Kind::Camera);
    }

    #[test]
    fn bad_packets_are_errors() {
        assert!(decode_reply(&[2, 0, 0]).is_err());
        let mut p = encode_packet(br#"{"error_code":0,"result":{}}"#, 0, 0);
        assert!(decode_reply(&p).is_err(), "missing fields");
        p[20] ^= 1;
        assert!(decode_reply(&p).is_err(), "crc");
        let mut q = probe();
        q[5] = 200;
        assert!(decode_reply(&q).is_err(), "length beyond packet");
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            let _ = decode_reply(&data);
        }
    }
}
