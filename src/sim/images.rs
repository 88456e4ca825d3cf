//! Which firmware images a simulated plug accepts: a list of SHA-256 digests with the target and
//! version each image carries (`assets/profiles/images.json`, embedded, plus any
//! [`FleetSpec::images`](super::FleetSpec::images) a test or bench adds).
//!
//! The simulator never parses an image. A real plug accepts only what its vendor signed; the
//! simulator stands in for that signature check with the digest, so a bug in the product's own
//! header parser (`firmware::header`) cannot make the simulated plug agree with it.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One image the simulated vendor "signed".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct KnownImage {
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
    /// Model with region, as the plug reports it: `HS110(US)`.
    pub model: String,
    /// Hardware major version the image is for: `1` (matches hw `1.0`, `1.5`, …).
    pub hw: String,
    /// The `sw_ver` the plug reports once flashed.
    pub sw_ver: String,
}

impl KnownImage {
    /// The entry for `bytes`, for images built at run time (tests, benches).
    pub fn for_bytes(bytes: &[u8], model: &str, hw: &str, sw_ver: &str) -> Self {
        Self {
            sha256: sha256_hex(bytes),
            model: model.to_owned(),
            hw: hw.to_owned(),
            sw_ver: sw_ver.to_owned(),
        }
    }

    /// Is the image meant for a plug reporting `model` and `hw_ver`?
    pub fn targets(&self, model: &str, hw_ver: &str) -> bool {
        let major = hw_ver.split('.').next().unwrap_or(hw_ver);
        self.model.eq_ignore_ascii_case(model) && self.hw == major
    }
}

/// A manifest entry: the image plus its file name and size (documentation and the manifest test).
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestEntry {
    pub file: String,
    pub size: u64,
    #[serde(flatten)]
    pub image: KnownImage,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    images: Vec<ManifestEntry>,
}

const MANIFEST: &str = include_str!("../../assets/profiles/images.json");

/// The embedded manifest (the demo images in `assets/firmware/`).
pub fn manifest() -> &'static [ManifestEntry] {
    static M: OnceLock<Vec<ManifestEntry>> = OnceLock::new();
    M.get_or_init(|| match serde_json::from_str::<Manifest>(MANIFEST) {
        Ok(m) => m.images,
        Err(e) => {
            // Embedded data, checked by the unit test below; never fails in a build that passed.
            tracing::error!("assets/profiles/images.json is invalid: {e}");
            Vec::new()
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct List {
    /// Allowed so the manifest itself is a valid list; not used.
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    images: Vec<KnownImage>,
}

/// Parses a list of accepted images in the manifest's shape, `{"images":[{"sha256":…,
/// "model":…,"hw":…,"sw_ver":…}]}` (other per-image fields such as `file` are ignored), for
/// `plugfleet sim --accept-images FILE`.
pub fn parse_list(text: &str) -> Result<Vec<KnownImage>, String> {
    let list: List = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(list.images.len());
    for (i, mut img) in list.images.into_iter().enumerate() {
        img.sha256 = img.sha256.to_ascii_lowercase();
        if img.sha256.len() != 64 || !img.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("image {}: sha256 must be 64 hex digits", i + 1));
        }
        if img.model.is_empty() || img.hw.is_empty() || img.sw_ver.is_empty() {
            return Err(format!(
                "image {}: model, hw and sw_ver must not be empty",
                i + 1
            ));
        }
        out.push(img);
    }
    Ok(out)
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Why a downloaded image is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("image not signed (sha256 {0} is unknown)")]
    Unknown(String),
    #[error("image is for {model} hw {hw}, not {plug_model} hw {plug_hw}")]
    WrongTarget {
        model: String,
        hw: String,
        plug_model: String,
        plug_hw: String,
    },
}

/// The images a fleet's plugs accept: the manifest plus the spec's extras.
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    extra: Vec<KnownImage>,
}

impl Accepted {
    pub fn new(extra: Vec<KnownImage>) -> Self {
        Self { extra }
    }

    fn find(&self, sha256: &str) -> Option<&KnownImage> {
        self.extra
            .iter()
            .chain(manifest().iter().map(|e| &e.image))
            .find(|i| i.sha256 == sha256)
    }

    /// Judges a complete download for a plug reporting `model` / `hw_ver`.
    pub fn judge(&self, bytes: &[u8], model: &str, hw_ver: &str) -> Result<KnownImage, Rejected> {
        let digest = sha256_hex(bytes);
        let Some(img) = self.find(&digest) else {
            return Err(Rejected::Unknown(digest));
        };
        if !img.targets(model, hw_ver) {
            return Err(Rejected::WrongTarget {
                model: img.model.clone(),
                hw: img.hw.clone(),
                plug_model: model.to_owned(),
                plug_hw: hw_ver.to_owned(),
            });
        }
        Ok(img.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_parses_and_digests_are_unique() {
        let m = manifest();
        assert_eq!(m.len(), 12);
        let mut seen = std::collections::HashSet::new();
        for e in m {
            assert_eq!(e.image.sha256.len(), 64, "{}", e.file);
            assert!(seen.insert(e.image.sha256.clone()), "{} twice", e.file);
        }
    }

    #[test]
    fn lists_parse_in_the_manifests_shape() {
        let l = parse_list(include_str!("../../assets/profiles/images.json")).expect("manifest");
        assert_eq!(l.len(), manifest().len());
        let one = format!(
            r#"{{"images":[{{"sha256":"{}","model":"HS110(US)","hw":"1","sw_ver":"1.2.9 Build 1 Rel.1"}}]}}"#,
            "AB".repeat(32)
        );
        assert_eq!(parse_list(&one).expect("one")[0].sha256, "ab".repeat(32));
        assert!(
            parse_list(r#"{"images":[{"sha256":"xyz","model":"M","hw":"1","sw_ver":"1"}]}"#)
                .expect_err("bad digest")
                .contains("64 hex")
        );
        assert!(parse_list("[]").is_err());
        assert!(parse_list(r#"{"images":[],"extra":1}"#).is_err());
    }

    #[test]
    fn unknown_and_wrong_target_images_are_refused() {
        let a = Accepted::new(vec![KnownImage::for_bytes(
            b"image",
            "HS110(US)",
            "1",
            "1.2.9 Build 1 Rel.1",
        )]);
        assert_eq!(
            a.judge(b"image", "HS110(US)", "1.0").expect("known").sw_ver,
            "1.2.9 Build 1 Rel.1"
        );
        assert!(matches!(
            a.judge(b"image", "HS110(EU)", "1.0"),
            Err(Rejected::WrongTarget { .. })
        ));
        assert!(matches!(
            a.judge(b"image", "HS110(US)", "2.0"),
            Err(Rejected::WrongTarget { .. })
        ));
        assert!(matches!(
            a.judge(b"imagf", "HS110(US)", "1.0"),
            Err(Rejected::Unknown(_))
        ));
        assert!(matches!(
            Accepted::default().judge(b"image", "HS110(US)", "1.0"),
            Err(Rejected::Unknown(_))
        ));
    }
}
