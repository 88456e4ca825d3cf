//! What an image is checked against besides its own bytes: size bounds per model family
//! (`assets/firmware_limits.json`, overridable with `[firmware.size_limits]` in the config
//! file) and the user's allowlist of SHA-256 per (model, hardware) (`[[firmware.known]]`).

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

// Declared by the config file, so defined beside it (below firmware); re-exported here.
pub use crate::config::{KnownImage, is_sha256_hex};

/// Inclusive size bounds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeBounds {
    pub min_bytes: u64,
    pub max_bytes: u64,
}

impl SizeBounds {
    pub fn contains(&self, size: u64) -> bool {
        (self.min_bytes..=self.max_bytes).contains(&size)
    }
}

/// Where a bound came from, for the plan ("HS110: Linux plugs …", "config", "demo images").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bounds {
    #[serde(flatten)]
    pub bounds: SizeBounds,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Family {
    family: String,
    prefixes: Vec<String>,
    min_bytes: u64,
    max_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
struct LimitsFile {
    demo: SizeBounds,
    default: SizeBounds,
    families: Vec<Family>,
}

/// A fallback if the embedded file were ever unreadable (a test checks it is not).
const FALLBACK: SizeBounds = SizeBounds {
    min_bytes: 64 * 1024,
    max_bytes: 32 * 1024 * 1024,
};

static BUILT_IN: LazyLock<Option<LimitsFile>> =
    LazyLock::new(|| serde_json::from_str(include_str!("../../assets/firmware_limits.json")).ok());

/// Size bounds: the built-in table, then per-model overrides from the config file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SizeLimits {
    /// (model key as written: `HS110` or `HS110(US)`, bounds).
    overrides: Vec<(String, SizeBounds)>,
}

impl SizeLimits {
    /// From `model → (min, max)` pairs of the config file. Checks min ≤ max and that max is
    /// within what is ever read ([`super::image::MAX_IMAGE_BYTES`]).
    pub fn new<'a>(
        pairs: impl IntoIterator<Item = (&'a str, SizeBounds)>,
    ) -> Result<SizeLimits, String> {
        let mut overrides = Vec::new();
        for (model, b) in pairs {
            if b.min_bytes > b.max_bytes {
                return Err(format!(
                    "size_limits for {model}: min_bytes {} is above max_bytes {}",
                    b.min_bytes, b.max_bytes
                ));
            }
            if b.max_bytes > super::image::MAX_IMAGE_BYTES || b.min_bytes == 0 {
                return Err(format!(
                    "size_limits for {model}: bounds must be between 1 and {} bytes",
                    super::image::MAX_IMAGE_BYTES
                ));
            }
            overrides.push((model.trim().to_owned(), b));
        }
        Ok(SizeLimits { overrides })
    }

    /// The bounds for a real image meant for `model` (as the plug reports it, `HS110(US)`):
    /// a config entry for the full model, else for the base model, else the built-in family,
    /// else the built-in default.
    pub fn for_model(&self, model: &str) -> Bounds {
        let (base, _) = crate::protocol::split_model(model);
        if let Some(b) = self.configured(model) {
            return b;
        }
        let Some(file) = BUILT_IN.as_ref() else {
            return Bounds {
                bounds: FALLBACK,
                source: "built-in fallback".into(),
            };
        };
        let up = base.to_ascii_uppercase();
        match file.families.iter().find(|f| {
            f.prefixes
                .iter()
                .any(|p| up.starts_with(&p.to_ascii_uppercase()))
        }) {
            Some(f) => Bounds {
                bounds: SizeBounds {
                    min_bytes: f.min_bytes,
                    max_bytes: f.max_bytes,
                },
                source: format!("{}: {}", base, f.family),
            },
            None => Bounds {
                bounds: file.default,
                source: format!("{base}: default for models of no listed family"),
            },
        }
    }

    /// The config file's bounds for `model`: the full-model entry, else the base-model one.
    pub fn configured(&self, model: &str) -> Option<Bounds> {
        let (base, _) = crate::protocol::split_model(model);
        self.overrides
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(model.trim()))
            .or_else(|| {
                self.overrides
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(base))
            })
            .map(|(k, b)| Bounds {
                bounds: *b,
                source: format!("config [firmware.size_limits] \"{k}\""),
            })
    }

    /// The bounds for one of plugfleet's demo images meant for `model`: the config file's, else
    /// the built-in demo bounds (demo images are small by design).
    pub fn for_demo(&self, model: &str) -> Bounds {
        self.configured(model).unwrap_or_else(|| self.demo())
    }

    /// The built-in bounds for plugfleet's demo images.
    pub fn demo(&self) -> Bounds {
        Bounds {
            bounds: BUILT_IN.as_ref().map_or(FALLBACK, |f| f.demo),
            source: "plugfleet demo images".into(),
        }
    }
}

/// The user's allowlist of image hashes per (model, hardware).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KnownHashes {
    entries: Vec<KnownImage>,
}

fn major(hw: &str) -> &str {
    hw.trim().split('.').next().unwrap_or("")
}

impl KnownHashes {
    pub fn new(entries: impl IntoIterator<Item = KnownImage>) -> Result<KnownHashes, String> {
        let entries: Vec<KnownImage> = entries.into_iter().collect();
        for e in &entries {
            if !is_sha256_hex(e.sha256.trim()) {
                return Err(format!(
                    "known image for {} hw {}: `{}` is not a SHA-256 (64 hex digits)",
                    e.model, e.hw, e.sha256
                ));
            }
        }
        Ok(KnownHashes { entries })
    }

    /// The entry that lists `sha256` for this plug (`model` as reported, `HS110(US)`).
    pub fn lookup(&self, model: &str, hw_ver: &str, sha256: &str) -> Option<&KnownImage> {
        let (base, region) = crate::protocol::split_model(model);
        self.entries.iter().find(|e| {
            let (kb, kr) = crate::protocol::split_model(&e.model);
            kb.eq_ignore_ascii_case(base)
                && kr.is_none_or(|r| region.is_some_and(|pr| pr.eq_ignore_ascii_case(r)))
                && major(&e.hw) == major(hw_ver)
                && e.sha256.trim().eq_ignore_ascii_case(sha256)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_loads_and_every_family_is_sane() {
        let file = BUILT_IN
            .as_ref()
            .expect("assets/firmware_limits.json parses");
        assert!(file.demo.min_bytes > 0 && file.demo.min_bytes < file.demo.max_bytes);
        assert!(file.default.min_bytes < file.default.max_bytes);
        assert!(file.families.len() >= 3);
        for f in &file.families {
            assert!(
                f.min_bytes >= 4096 && f.min_bytes < f.max_bytes,
                "{}",
                f.family
            );
            assert!(f.max_bytes <= super::super::image::MAX_IMAGE_BYTES);
        }
    }

    #[test]
    fn bounds_by_family_then_config() {
        let none = SizeLimits::default();
        let hs110 = none.for_model("HS110(US)");
        assert_eq!(hs110.bounds.min_bytes, 131072);
        assert!(hs110.source.contains("Linux"), "{}", hs110.source);
        // KP303 is a strip, not one of the KP plugs: the first matching family wins.
        assert!(none.for_model("KP303(US)").source.contains("strip"));
        assert!(none.for_model("KP115(EU)").source.contains("KP/EP"));
        assert!(none.for_model("XY9").source.contains("default"));
        assert!(!hs110.bounds.contains(6));
        assert!(hs110.bounds.contains(4 << 20));
        assert!(!hs110.bounds.contains(64 << 20));

        let cfg = SizeLimits::new([
            (
                "HS110",
                SizeBounds {
                    min_bytes: 10,
                    max_bytes: 20,
                },
            ),
            (
                "HS110(EU)",
                SizeBounds {
                    min_bytes: 30,
                    max_bytes: 40,
                },
            ),
        ])
        .expect("valid");
        assert_eq!(cfg.for_model("HS110(US)").bounds.max_bytes, 20);
        assert_eq!(cfg.for_model("HS110(EU)").bounds.max_bytes, 40);
        assert!(cfg.for_model("HS110(EU)").source.contains("config"));
        let bad = |min, max| {
            SizeLimits::new([(
                "HS110",
                SizeBounds {
                    min_bytes: min,
                    max_bytes: max,
                },
            )])
        };
        assert!(bad(20, 10).is_err());
        assert!(bad(0, 10).is_err());
        assert!(bad(1, u64::MAX).is_err());
    }

    #[test]
    fn known_hashes_match_model_region_and_hardware_major() {
        let h = "ab".repeat(32);
        let k = KnownHashes::new([KnownImage {
            model: "HS110(US)".into(),
            hw: "1.0".into(),
            sha256: h.to_uppercase(),
            note: None,
        }])
        .expect("valid");
        assert!(k.lookup("HS110(US)", "1.0", &h).is_some());
        assert!(k.lookup("HS110(US)", "1", &h).is_some());
        assert!(k.lookup("HS110(EU)", "1.0", &h).is_none(), "region");
        assert!(k.lookup("HS110(US)", "4.0", &h).is_none(), "hardware");
        assert!(k.lookup("HS100(US)", "1.0", &h).is_none(), "model");
        assert!(k.lookup("HS110(US)", "1.0", &"cd".repeat(32)).is_none());
        let any_region = KnownHashes::new([KnownImage {
            model: "HS110".into(),
            hw: "1".into(),
            sha256: h.clone(),
            note: None,
        }])
        .expect("valid");
        assert!(any_region.lookup("HS110(EU)", "1.0", &h).is_some());
        assert!(
            KnownHashes::new([KnownImage {
                model: "HS110".into(),
                hw: "1".into(),
                sha256: "abc".into(),
                note: None,
            }])
            .is_err()
        );
    }
}
