//! Which container structure an image file starts with (PROTOCOL.md §6.6).
//!
//! Real Kasa images carry no published header, so content can only be sanity-checked: a file is
//! accepted as firmware when it starts with one of the structures binwalk recognises in TP-Link
//! images, or with plugfleet's own demo header ([`super::header`], checked by the caller):
//!
//! - the classic TP-Link v1 header (0x200 bytes): `01 00 00 00`, then the vendor string
//!   `TP-LINK Technologies` at 0x04, the version string at 0x1C, `hw_id`/`hw_rev` (big-endian
//!   u32) at 0x40/0x44;
//! - the "TP-Link RTOS" header (0x94 bytes): magic `00 14 2F C0` at 0, `IMG0` at 20, big-endian
//!   data size at 24, u16 model number at 28, hardware revision at 30;
//! - a U-Boot legacy image (uImage): magic `0x27051956`, 64-byte header whose CRC-32 must match;
//! - a squashfs superblock (`hsqs` little-endian / `sqsh` big-endian) of version 4 whose
//!   `bytes_used` fits the file;
//! - an LZMA ("alone") stream: a valid properties byte, a power-of-two dictionary and a sane
//!   uncompressed size.
//!
//! Anything else is [`Structure::Unrecognised`]: the plan blocks it unless `--force`. Every
//! probe looks only at the start of the file and reads only within the slice (no panic on short
//! or hostile input).

use serde::Serialize;

/// What the start of an image was recognised as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Structure {
    /// plugfleet's demo header, present and verified (payload length and SHA-256).
    PlugfleetDemo,
    /// Classic TP-Link v1 firmware header.
    TplinkV1 {
        firmware_version: String,
        hw_id: u32,
        hw_rev: u32,
    },
    /// "TP-Link RTOS" header.
    TplinkRtos {
        model: u16,
        hw_rev: u16,
        data_size: u32,
    },
    /// U-Boot legacy image header with a matching header CRC.
    UImage { name: String, data_size: u32 },
    /// A squashfs 4 superblock.
    Squashfs { big_endian: bool, bytes_used: u64 },
    /// An LZMA-alone stream header.
    Lzma { dict_size: u32 },
    /// None of the above.
    Unrecognised,
}

impl Structure {
    pub fn is_recognised(&self) -> bool {
        !matches!(self, Structure::Unrecognised)
    }

    /// A short label for plans: `TP-Link v1 header (hw_id 0x11000001 rev 1, ver. 1.0.0)`.
    pub fn describe(&self) -> String {
        match self {
            Structure::PlugfleetDemo => "plugfleet demo header (verified)".into(),
            Structure::TplinkV1 {
                firmware_version,
                hw_id,
                hw_rev,
            } => {
                let ver = if firmware_version.is_empty() {
                    String::new()
                } else {
                    format!(", {firmware_version}")
                };
                format!("TP-Link v1 header (hw_id {hw_id:#010x} rev {hw_rev}{ver})")
            }
            Structure::TplinkRtos {
                model,
                hw_rev,
                data_size,
            } => format!(
                "TP-Link RTOS header (model {model:#06x}, hw rev {hw_rev}, {data_size} data bytes)"
            ),
            Structure::UImage { name, data_size } if name.is_empty() => {
                format!("U-Boot uImage ({data_size} data bytes)")
            }
            Structure::UImage { name, data_size } => {
                format!("U-Boot uImage \"{name}\" ({data_size} data bytes)")
            }
            Structure::Squashfs {
                big_endian,
                bytes_used,
            } => format!(
                "squashfs 4 ({}, {bytes_used} bytes)",
                if *big_endian { "sqsh" } else { "hsqs" }
            ),
            Structure::Lzma { dict_size } => {
                format!("LZMA stream (dictionary {} KiB)", dict_size / 1024)
            }
            Structure::Unrecognised => "unrecognised content".into(),
        }
    }
}

/// TP-Link v1 header size.
pub const TPLINK_V1_LEN: usize = 0x200;
/// TP-Link RTOS header size.
pub const TPLINK_RTOS_LEN: usize = 0x94;
/// U-Boot legacy header size.
pub const UIMAGE_LEN: usize = 64;
pub const UIMAGE_MAGIC: u32 = 0x2705_1956;
const TPLINK_VENDOR: &[u8] = b"TP-LINK Technologies";
const RTOS_MAGIC: [u8; 4] = [0x00, 0x14, 0x2F, 0xC0];

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn u64_at(b: &[u8], at: usize, big_endian: bool) -> Option<u64> {
    let s: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(if big_endian {
        u64::from_be_bytes(s)
    } else {
        u64::from_le_bytes(s)
    })
}

fn u16_at(b: &[u8], at: usize, big_endian: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if big_endian {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    })
}

/// A NUL-terminated printable ASCII string in `b[at..at + len]` (lossy, control characters
/// dropped).
fn c_string(b: &[u8], at: usize, len: usize) -> String {
    let Some(s) = b.get(at..at.saturating_add(len)) else {
        return String::new();
    };
    s.iter()
        .take_while(|&&c| c != 0)
        .filter(|c| c.is_ascii_graphic() || **c == b' ')
        .map(|&c| char::from(c))
        .collect()
}

/// Looks at the start of `bytes` (the plugfleet demo header is checked by the caller).
pub fn detect(bytes: &[u8]) -> Structure {
    tplink_v1(bytes)
        .or_else(|| tplink_rtos(bytes))
        .or_else(|| uimage(bytes))
        .or_else(|| squashfs(bytes))
        .or_else(|| lzma(bytes))
        .unwrap_or(Structure::Unrecognised)
}

fn tplink_v1(b: &[u8]) -> Option<Structure> {
    if b.len() < TPLINK_V1_LEN
        || b.get(0..4)? != [1, 0, 0, 0]
        || b.get(4..4 + TPLINK_VENDOR.len())? != TPLINK_VENDOR
    {
        return None;
    }
    Some(Structure::TplinkV1 {
        firmware_version: c_string(b, 0x1C, 36),
        hw_id: be32(b, 0x40)?,
        hw_rev: be32(b, 0x44)?,
    })
}

fn tplink_rtos(b: &[u8]) -> Option<Structure> {
    if b.len() < TPLINK_RTOS_LEN || b.get(0..4)? != RTOS_MAGIC || b.get(20..24)? != b"IMG0" {
        return None;
    }
    Some(Structure::TplinkRtos {
        data_size: be32(b, 24)?,
        model: be16(b, 28)?,
        hw_rev: be16(b, 30)?,
    })
}

/// The CRC-32 a uImage header must carry: over the 64 header bytes with the CRC field zeroed.
pub fn uimage_header_crc(header: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(header.get(0..4).unwrap_or_default());
    h.update(&[0; 4]);
    h.update(header.get(8..UIMAGE_LEN).unwrap_or_default());
    h.finalize()
}

fn uimage(b: &[u8]) -> Option<Structure> {
    if b.len() < UIMAGE_LEN || be32(b, 0)? != UIMAGE_MAGIC {
        return None;
    }
    if be32(b, 4)? != uimage_header_crc(&b[..UIMAGE_LEN]) {
        return None;
    }
    Some(Structure::UImage {
        name: c_string(b, 32, 32),
        data_size: be32(b, 12)?,
    })
}

fn squashfs(b: &[u8]) -> Option<Structure> {
    let big_endian = match b.get(0..4)? {
        b"hsqs" => false,
        b"sqsh" => true,
        _ => return None,
    };
    // Superblock: s_major at 28, bytes_used at 40.
    let major = u16_at(b, 28, big_endian)?;
    let bytes_used = u64_at(b, 40, big_endian)?;
    if major != 4 || bytes_used < 96 || bytes_used > b.len() as u64 {
        return None;
    }
    Some(Structure::Squashfs {
        big_endian,
        bytes_used,
    })
}

fn lzma(b: &[u8]) -> Option<Structure> {
    // props = (pb * 5 + lp) * 9 + lc, at most 224; dictionary a power of two from 4 KiB to
    // 256 MiB; uncompressed size unknown (all ones) or below 1 GiB.
    let props = *b.first()?;
    let dict_size = le32(b, 1)?;
    let size = u64_at(b, 5, false)?;
    let sane_size = size == u64::MAX || (1..(1 << 30)).contains(&size);
    if props > 224
        || !dict_size.is_power_of_two()
        || !(4096..=(1 << 28)).contains(&dict_size)
        || !sane_size
        || b.len() < 13 + 5
    {
        return None;
    }
    Some(Structure::Lzma { dict_size })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(mut v: Vec<u8>, len: usize) -> Vec<u8> {
        v.resize(len, 0xA5);
        v
    }

    pub(crate) fn uimage_bytes(name: &str, total: usize) -> Vec<u8> {
        let mut h = vec![0u8; UIMAGE_LEN];
        h[0..4].copy_from_slice(&UIMAGE_MAGIC.to_be_bytes());
        let data = (total - UIMAGE_LEN) as u32;
        h[12..16].copy_from_slice(&data.to_be_bytes());
        h[32..32 + name.len()].copy_from_slice(name.as_bytes());
        let crc = uimage_header_crc(&h);
        h[4..8].copy_from_slice(&crc.to_be_bytes());
        padded(h, total)
    }

    #[test]
    fn tplink_v1_header() {
        let mut h = vec![0u8; TPLINK_V1_LEN];
        h[0..4].copy_from_slice(&[1, 0, 0, 0]);
        h[4..4 + TPLINK_VENDOR.len()].copy_from_slice(TPLINK_VENDOR);
        h[0x1C..0x1C + 8].copy_from_slice(b"ver. 1.0");
        h[0x40..0x44].copy_from_slice(&0x1100_0001u32.to_be_bytes());
        h[0x44..0x48].copy_from_slice(&1u32.to_be_bytes());
        let img = padded(h.clone(), 4096);
        assert_eq!(
            detect(&img),
            Structure::TplinkV1 {
                firmware_version: "ver. 1.0".into(),
                hw_id: 0x1100_0001,
                hw_rev: 1
            }
        );
        assert!(detect(&img).describe().contains("TP-Link v1"));
        // Truncated inside the header, or the wrong vendor: not recognised.
        assert_eq!(detect(&img[..0x1FF]), Structure::Unrecognised);
        let mut wrong = img.clone();
        wrong[4] = b'X';
        assert_eq!(detect(&wrong), Structure::Unrecognised);
        let mut v2 = img;
        v2[0] = 2;
        assert_eq!(detect(&v2), Structure::Unrecognised);
    }

    #[test]
    fn tplink_rtos_header() {
        let mut h = vec![0u8; TPLINK_RTOS_LEN];
        h[0..4].copy_from_slice(&RTOS_MAGIC);
        h[20..24].copy_from_slice(b"IMG0");
        h[24..28].copy_from_slice(&1000u32.to_be_bytes());
        h[28..30].copy_from_slice(&0x0110u16.to_be_bytes());
        h[30..32].copy_from_slice(&4u16.to_be_bytes());
        let img = padded(h, 2048);
        assert_eq!(
            detect(&img),
            Structure::TplinkRtos {
                model: 0x0110,
                hw_rev: 4,
                data_size: 1000
            }
        );
        assert_eq!(detect(&img[..0x93]), Structure::Unrecognised);
        let mut no_img0 = img;
        no_img0[20] = b'X';
        assert_eq!(detect(&no_img0), Structure::Unrecognised);
    }

    #[test]
    fn uimage_needs_its_header_crc() {
        let img = uimage_bytes("Linux Kernel Image", 8192);
        assert_eq!(
            detect(&img),
            Structure::UImage {
                name: "Linux Kernel Image".into(),
                data_size: 8192 - 64
            }
        );
        let mut bad = img.clone();
        bad[40] ^= 1; // inside the header: the CRC no longer matches
        assert_eq!(detect(&bad), Structure::Unrecognised);
        // The magic alone is not enough.
        let mut magic_only = UIMAGE_MAGIC.to_be_bytes().to_vec();
        magic_only.resize(4096, 0);
        assert_eq!(detect(&magic_only), Structure::Unrecognised);
        assert_eq!(detect(&img[..63]), Structure::Unrecognised);
    }

    #[test]
    fn squashfs_both_byte_orders() {
        let mut le = vec![0u8; 96];
        le[0..4].copy_from_slice(b"hsqs");
        le[28..30].copy_from_slice(&4u16.to_le_bytes());
        le[40..48].copy_from_slice(&4096u64.to_le_bytes());
        let le = padded(le, 4096);
        assert_eq!(
            detect(&le),
            Structure::Squashfs {
                big_endian: false,
                bytes_used: 4096
            }
        );
        let mut be = vec![0u8; 96];
        be[0..4].copy_from_slice(b"sqsh");
        be[28..30].copy_from_slice(&4u16.to_be_bytes());
        be[40..48].copy_from_slice(&1000u64.to_be_bytes());
        let be = padded(be, 1000);
        assert!(matches!(
            detect(&be),
            Structure::Squashfs {
                big_endian: true,
                ..
            }
        ));
        // bytes_used beyond the file, or another major version: not recognised.
        assert_eq!(detect(&le[..4000]), Structure::Unrecognised);
        let mut v3 = le.clone();
        v3[28] = 3;
        assert_eq!(detect(&v3), Structure::Unrecognised);
        assert_eq!(detect(b"hsqs"), Structure::Unrecognised);
    }

    #[test]
    fn lzma_stream_header() {
        let mut l = vec![0x5D];
        l.extend(0x0080_0000u32.to_le_bytes());
        l.extend(u64::MAX.to_le_bytes());
        let l = padded(l, 1024);
        assert_eq!(
            detect(&l),
            Structure::Lzma {
                dict_size: 0x0080_0000
            }
        );
        let mut sized = l.clone();
        sized[5..13].copy_from_slice(&3_000_000u64.to_le_bytes());
        assert!(detect(&sized).is_recognised());
        let mut odd_dict = l.clone();
        odd_dict[1] = 1;
        assert_eq!(detect(&odd_dict), Structure::Unrecognised);
        let mut bad_props = l;
        bad_props[0] = 0xE1;
        assert_eq!(detect(&bad_props), Structure::Unrecognised);
    }

    #[test]
    fn text_and_hostile_bytes_are_unrecognised() {
        for b in [
            &b""[..],
            b"hello\n",
            b"PLUGFLEET",
            b"\x27\x05\x19\x56",
            b"\x00\x14\x2f\xc0",
            &[0u8; 4096],
            &[0xFFu8; 4096],
        ] {
            assert_eq!(detect(b), Structure::Unrecognised, "{b:?}");
        }
        assert_eq!(Structure::Unrecognised.describe(), "unrecognised content");
    }
}
