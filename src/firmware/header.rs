//! The header of plugfleet's demo firmware images (`assets/firmware/*.bin`), understood by the
//! simulator (which refuses an image not meant for its model and hardware, or whose payload is
//! incomplete or corrupt) and recognised by the image inspector.
//!
//! Real Kasa images carry no published header (PROTOCOL.md §6.6); this one exists so that the
//! simulated plugs can make the same decisions a real plug makes. Layout:
//!
//! ```text
//! offset 0   16 bytes  magic "PLUGFLEET-FWIMG1"
//! offset 16  one line of compact JSON, at most 1024 bytes, ending in '\n':
//!            {"model":"HS110","hw":"1","region":"US","version":"1.2.3",
//!             "build":"171016","rel":"100427","payload_len":N,"payload_sha256":"<64 hex>"}
//! then       N bytes of payload; the image ends there.
//! ```
//!
//! `model` is the base model without region, `hw` the hardware major version, `region` the
//! region in the model name (`US`, `EU`, `UK`, …); `version`/`build`/`rel` form the `sw_ver` the
//! plug reports after flashing: `"<version> Build <build> Rel.<rel>"`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first 16 bytes of every demo image.
pub const MAGIC: &[u8; 16] = b"PLUGFLEET-FWIMG1";
const MAX_HEADER_LINE: usize = 1024;

/// What a demo image says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageHeader {
    pub model: String,
    pub hw: String,
    pub region: String,
    pub version: String,
    pub build: String,
    pub rel: String,
    pub payload_len: u64,
    pub payload_sha256: String,
}

/// Why bytes are not a valid demo image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("no plugfleet image header")]
    NoMagic,
    #[error("image header line is unterminated or longer than {MAX_HEADER_LINE} bytes")]
    BadLine,
    #[error("image header is not valid: {0}")]
    BadJson(String),
    #[error("image payload is {got} bytes, header says {expected}")]
    Length { got: u64, expected: u64 },
    #[error("image payload checksum does not match its header")]
    Checksum,
}

impl ImageHeader {
    /// A header for an image meant for `model` (base model, e.g. `HS110`) hardware `hw` (major,
    /// e.g. `1`) in `region`, installing `<version> Build <build> Rel.<rel>`. The payload's
    /// length and checksum are filled in by [`build`](Self::build).
    pub fn new(
        model: impl Into<String>,
        hw: impl Into<String>,
        region: impl Into<String>,
        version: impl Into<String>,
        build: impl Into<String>,
        rel: impl Into<String>,
    ) -> Self {
        Self {
            model: model.into(),
            hw: hw.into(),
            region: region.into(),
            version: version.into(),
            build: build.into(),
            rel: rel.into(),
            payload_len: 0,
            payload_sha256: String::new(),
        }
    }

    /// The `sw_ver` a plug reports once this image is installed.
    pub fn sw_ver(&self) -> String {
        format!("{} Build {} Rel.{}", self.version, self.build, self.rel)
    }

    /// True if this image targets a plug whose `model` is e.g. `HS110(US)` and `hw_ver` `1.0`.
    pub fn targets(&self, model: &str, hw_ver: &str) -> bool {
        let (base, region) = crate::protocol::split_model(model);
        let hw_major = hw_ver.split('.').next().unwrap_or(hw_ver);
        base.eq_ignore_ascii_case(&self.model)
            && hw_major == self.hw
            && region.is_none_or(|r| r.eq_ignore_ascii_case(&self.region))
    }

    /// Reads the header at the start of `bytes` and returns it with the payload's offset. Does
    /// not check the payload (see [`verify`]).
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize), HeaderError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(HeaderError::NoMagic);
        }
        let rest = &bytes[MAGIC.len()..];
        let window = &rest[..rest.len().min(MAX_HEADER_LINE)];
        let end = window
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(HeaderError::BadLine)?;
        let header: ImageHeader = serde_json::from_slice(&window[..end])
            .map_err(|e| HeaderError::BadJson(e.to_string()))?;
        Ok((header, MAGIC.len() + end + 1))
    }

    /// Builds a complete image around `payload`.
    pub fn build(mut self, payload: &[u8]) -> Vec<u8> {
        self.payload_len = payload.len() as u64;
        self.payload_sha256 = hex::encode(Sha256::digest(payload));
        let mut out = MAGIC.to_vec();
        // Serialising plain strings and integers cannot fail.
        out.extend(serde_json::to_vec(&self).unwrap_or_default());
        out.push(b'\n');
        out.extend_from_slice(payload);
        out
    }
}

/// Parses the header and checks that the whole payload is present and intact.
pub fn verify(bytes: &[u8]) -> Result<ImageHeader, HeaderError> {
    let (header, offset) = ImageHeader::parse(bytes)?;
    let payload = &bytes[offset..];
    if payload.len() as u64 != header.payload_len {
        return Err(HeaderError::Length {
            got: payload.len() as u64,
            expected: header.payload_len,
        });
    }
    if !hex::encode(Sha256::digest(payload)).eq_ignore_ascii_case(&header.payload_sha256) {
        return Err(HeaderError::Checksum);
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ImageHeader {
        ImageHeader::new("HS110", "1", "US", "1.2.3", "171016", "100427")
    }

    #[test]
    fn build_then_verify() {
        let img = header().build(b"kernel+rootfs");
        let h = verify(&img).expect("valid");
        assert_eq!(h.sw_ver(), "1.2.3 Build 171016 Rel.100427");
        assert!(h.targets("HS110(US)", "1.0"));
        assert!(!h.targets("HS110(EU)", "1.0"), "region");
        assert!(!h.targets("HS110(US)", "4.0"), "hardware");
        assert!(!h.targets("HS100(US)", "1.0"), "model");
    }

    #[test]
    fn incomplete_or_corrupt_images_fail() {
        let img = header().build(&[7u8; 100]);
        assert!(matches!(
            verify(&img[..img.len() - 1]),
            Err(HeaderError::Length { .. })
        ));
        let mut bad = img.clone();
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        assert_eq!(verify(&bad), Err(HeaderError::Checksum));
        assert_eq!(verify(b"not an image"), Err(HeaderError::NoMagic));
        let mut no_newline = MAGIC.to_vec();
        no_newline.extend([b'x'; 2000]);
        assert_eq!(verify(&no_newline), Err(HeaderError::BadLine));
    }
}
