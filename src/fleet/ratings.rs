//! Load ratings per plug model and region, and the mains voltage band of each region, read from
//! `assets/ratings.json` (embedded). The plausibility engine asks for the [`Limits`] of a model
//! string such as `HS110(US)`; unknown models get their region's default (PROTOCOL.md §9.1).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::protocol::reply::split_model;

const RATINGS_JSON: &str = include_str!("../../assets/ratings.json");

/// A mains voltage window (accepting sags and swells, PROTOCOL.md §9.2).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Band {
    /// Shown to users: `US`, `EU/UK`.
    pub name: String,
    pub nominal_v: f64,
    pub min_v: f64,
    pub max_v: f64,
}

impl Band {
    pub fn contains(&self, v: f64) -> bool {
        v >= self.min_v && v <= self.max_v
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}–{} V", self.name, self.min_v, self.max_v)
    }
}

/// What a reading of one plug (or strip) is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Where the rating came from, for reasons: `HS110 US`, `default for UK`, `default, region
    /// unknown`.
    pub label: String,
    pub rated_a: f64,
    pub rated_w: f64,
    /// Accepted mains bands: one for a known region, all of them when the region is unknown.
    pub bands: Vec<Band>,
    /// The model is listed in the ratings table (not a regional default).
    pub known_model: bool,
    /// The rating is a strip total (HS300).
    pub strip: bool,
}

impl Limits {
    /// Is `v` inside one of the accepted bands?
    pub fn voltage_ok(&self, v: f64) -> bool {
        self.bands.iter().any(|b| b.contains(v))
    }

    /// The accepted bands as text: `US 95–140 V` or `US 95–140 V or EU/UK 190–265 V`.
    pub fn bands_text(&self) -> String {
        self.bands
            .iter()
            .map(Band::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

#[derive(Debug, Clone, Deserialize)]
struct RegionEntry {
    band: String,
    default_a: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct UnknownRegion {
    default_a: f64,
    default_w: f64,
}

#[derive(Debug, Clone, Deserialize)]
struct ModelEntry {
    model: String,
    /// Absent: the rating holds in every region (bulbs: their wattage does not depend on the
    /// mains), used when no entry names the device's region.
    #[serde(default)]
    region: Option<String>,
    rated_a: f64,
    rated_w: f64,
    #[serde(default)]
    strip: bool,
}

/// The ratings table.
#[derive(Debug, Clone, Deserialize)]
pub struct Ratings {
    bands: BTreeMap<String, Band>,
    regions: BTreeMap<String, RegionEntry>,
    unknown_region: UnknownRegion,
    models: Vec<ModelEntry>,
}

/// Why a ratings table is unusable.
#[derive(Debug, thiserror::Error)]
pub enum RatingsError {
    #[error("ratings table is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("ratings table is inconsistent: {0}")]
    Inconsistent(String),
}

impl Ratings {
    /// Parses and checks a ratings table.
    pub fn from_json(text: &str) -> Result<Self, RatingsError> {
        let r: Ratings = serde_json::from_str(text)?;
        r.check()?;
        Ok(r)
    }

    fn check(&self) -> Result<(), RatingsError> {
        let bad = |s: String| Err(RatingsError::Inconsistent(s));
        if self.bands.is_empty() {
            return bad("no mains bands".into());
        }
        for (name, b) in &self.bands {
            if !(b.min_v > 0.0 && b.min_v < b.nominal_v && b.nominal_v < b.max_v) {
                return bad(format!("band {name} is not min < nominal < max"));
            }
        }
        for (name, r) in &self.regions {
            if !self.bands.contains_key(&r.band) {
                return bad(format!("region {name} names unknown band {}", r.band));
            }
            if r.default_a <= 0.0 {
                return bad(format!("region {name} has no positive default_a"));
            }
        }
        if self.unknown_region.default_a <= 0.0 || self.unknown_region.default_w <= 0.0 {
            return bad("unknown_region defaults must be positive".into());
        }
        for m in &self.models {
            if m.rated_a <= 0.0 || m.rated_w <= 0.0 {
                return bad(format!("{} has a non-positive rating", m.model));
            }
            if let Some(r) = &m.region
                && !self.regions.contains_key(r)
            {
                return bad(format!("{}({r}) names an unknown region", m.model));
            }
        }
        Ok(())
    }

    /// The embedded table (`assets/ratings.json`). Its validity is checked by a unit test; should
    /// it ever fail to parse, a minimal built-in table (regional defaults only) is used instead.
    pub fn builtin() -> &'static Ratings {
        static CELL: OnceLock<Ratings> = OnceLock::new();
        CELL.get_or_init(|| {
            Ratings::from_json(RATINGS_JSON).unwrap_or_else(|e| {
                tracing::error!("embedded ratings table unusable, using defaults: {e}");
                Ratings::fallback()
            })
        })
    }

    fn fallback() -> Ratings {
        let band = |name: &str, nominal_v, min_v, max_v| Band {
            name: name.into(),
            nominal_v,
            min_v,
            max_v,
        };
        let region = |band: &str, default_a| RegionEntry {
            band: band.into(),
            default_a,
        };
        Ratings {
            bands: BTreeMap::from([
                ("NA".into(), band("US", 120.0, 95.0, 140.0)),
                ("EU".into(), band("EU/UK", 230.0, 190.0, 265.0)),
            ]),
            regions: BTreeMap::from([
                ("US".into(), region("NA", 15.0)),
                ("EU".into(), region("EU", 16.0)),
                ("UK".into(), region("EU", 13.0)),
                ("AU".into(), region("EU", 10.0)),
            ]),
            unknown_region: UnknownRegion {
                default_a: 16.0,
                default_w: 3680.0,
            },
            models: Vec::new(),
        }
    }

    /// Limits for a model string as the device reports it (`HS110(US)`, `hs300(us)`, `KP115`).
    pub fn limits_for(&self, model: &str) -> Limits {
        let (base, region) = split_model(model);
        let base = base.to_ascii_uppercase();
        let region = region.map(|r| r.trim().to_ascii_uppercase());
        let entry = region.as_deref().and_then(|r| self.regions.get(r));
        match (region.as_deref(), entry) {
            (Some(r), Some(reg)) => {
                let bands: Vec<Band> = self.bands.get(&reg.band).cloned().into_iter().collect();
                if let Some(m) = self
                    .models
                    .iter()
                    .find(|m| m.model.eq_ignore_ascii_case(&base) && m.region.as_deref() == Some(r))
                    .or_else(|| self.any_region(&base))
                {
                    return Limits {
                        label: format!("{} {}", m.model, m.region.as_deref().unwrap_or(r)),
                        rated_a: m.rated_a,
                        rated_w: m.rated_w,
                        bands,
                        known_model: true,
                        strip: m.strip,
                    };
                }
                let nominal = bands.first().map_or(230.0, |b| b.nominal_v);
                Limits {
                    label: format!("default for {r}"),
                    rated_a: reg.default_a,
                    rated_w: reg.default_a * nominal,
                    bands,
                    known_model: false,
                    strip: false,
                }
            }
            _ => match self.any_region(&base) {
                Some(m) => Limits {
                    label: format!("{}, any region", m.model),
                    rated_a: m.rated_a,
                    rated_w: m.rated_w,
                    bands: self.bands.values().cloned().collect(),
                    known_model: true,
                    strip: m.strip,
                },
                None => Limits {
                    label: "default, region unknown".into(),
                    rated_a: self.unknown_region.default_a,
                    rated_w: self.unknown_region.default_w,
                    bands: self.bands.values().cloned().collect(),
                    known_model: false,
                    strip: false,
                },
            },
        }
    }

    /// The region-free entry for a base model (bulbs, light strips, dimmers).
    fn any_region(&self, base: &str) -> Option<&ModelEntry> {
        self.models
            .iter()
            .find(|m| m.region.is_none() && m.model.eq_ignore_ascii_case(base))
    }
}

impl Limits {
    /// Applies a rating override (the config file's `[ratings."HS110(US)"]`): `amps` and `watts`
    /// replace the rating; with only one of them, the other follows from `volts` (or the band's
    /// nominal voltage).
    pub fn with_override(
        mut self,
        amps: Option<f64>,
        watts: Option<f64>,
        volts: Option<f64>,
    ) -> Limits {
        let positive = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0);
        let (amps, watts, volts) = (positive(amps), positive(watts), positive(volts));
        if amps.is_none() && watts.is_none() {
            return self;
        }
        let nominal = volts
            .or_else(|| self.bands.first().map(|b| b.nominal_v))
            .unwrap_or(230.0);
        match (amps, watts) {
            (Some(a), Some(w)) => (self.rated_a, self.rated_w) = (a, w),
            (Some(a), None) => (self.rated_a, self.rated_w) = (a, a * nominal),
            (None, Some(w)) => (self.rated_a, self.rated_w) = (w / nominal, w),
            (None, None) => {}
        }
        self.label = format!("{}, config override", self.label);
        self
    }
}

/// The config file's `[ratings."MODEL"]` overrides, applied over the embedded table (model keys
/// compared without regard to case or spaces).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides(Vec<(String, crate::config::RatingOverride)>);

impl Overrides {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self(
            cfg.ratings
                .iter()
                .map(|(k, o)| (normalise_model(k), o.clone()))
                .collect(),
        )
    }

    /// Limits for `model`: the embedded rating, overridden by the config file where it says so.
    pub fn limits_for(&self, model: &str) -> Limits {
        let base = limits_for(model);
        let key = normalise_model(model);
        match self.0.iter().find(|(k, _)| *k == key) {
            Some((_, o)) => base.with_override(o.amps, o.watts, o.volts),
            None => base,
        }
    }
}

fn normalise_model(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Limits for `model` with the config file's override for it, if any.
pub fn limits_with_config(model: &str, cfg: &crate::config::Config) -> Limits {
    Overrides::from_config(cfg).limits_for(model)
}

/// Shorthand for `Ratings::builtin().limits_for(model)`.
pub fn limits_for(model: &str) -> Limits {
    Ratings::builtin().limits_for(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses_and_is_consistent() {
        Ratings::from_json(RATINGS_JSON).expect("assets/ratings.json");
    }

    #[test]
    fn known_models_get_their_rating() {
        let l = limits_for("HS110(US)");
        assert_eq!((l.rated_a, l.rated_w), (15.0, 1800.0));
        assert_eq!(l.label, "HS110 US");
        assert!(l.known_model && !l.strip);
        assert!(l.voltage_ok(120.0) && !l.voltage_ok(230.0));

        let l = limits_for("HS110(EU)");
        assert_eq!((l.rated_a, l.rated_w), (16.0, 3680.0));
        assert!(l.voltage_ok(230.0) && !l.voltage_ok(120.0));

        let l = limits_for("HS300(US)");
        assert!(l.strip);
        assert_eq!(l.rated_a, 15.0);

        assert_eq!(limits_for("kp115(us)").rated_a, 15.0);
    }

    #[test]
    fn unknown_models_get_their_regional_default() {
        let l = limits_for("XY999(UK)");
        assert_eq!(l.rated_a, 13.0);
        assert_eq!(l.rated_w, 13.0 * 230.0);
        assert_eq!(l.label, "default for UK");
        assert!(!l.known_model);

        let l = limits_for("XY999(AU)");
        assert_eq!(l.rated_a, 10.0);

        let l = limits_for("XY999(US)");
        assert_eq!((l.rated_a, l.rated_w), (15.0, 1800.0));
    }

    #[test]
    fn unknown_region_accepts_either_band() {
        for model in ["HS110", "HS110(ZZ)", "HS110()", ""] {
            let l = limits_for(model);
            assert_eq!(l.label, "default, region unknown", "{model}");
            assert!(l.voltage_ok(120.0) && l.voltage_ok(230.0), "{model}");
            assert!(!l.voltage_ok(170.0) && !l.voltage_ok(0.0), "{model}");
            assert_eq!(l.bands_text(), "EU/UK 190–265 V or US 95–140 V");
        }
    }

    #[test]
    fn bulbs_are_rated_in_every_region() {
        for model in ["KL130(EU)", "KL130(US)", "KL130(UN)", "KL130"] {
            let l = limits_for(model);
            assert_eq!(l.rated_w, 10.0, "{model}");
            assert!(l.known_model, "{model}");
        }
        assert_eq!(limits_for("KL130(EU)").label, "KL130 EU");
        assert_eq!(limits_for("KL430(UN)").label, "KL430, any region");
        assert_eq!(limits_for("KL430(US)").rated_w, 15.0);
        assert!(limits_for("KL430(US)").voltage_ok(120.0));
        // Plugs keep their per-region entries and defaults.
        assert_eq!(limits_for("HS110(US)").rated_w, 1800.0);
        let bad = r#"{"bands":{"NA":{"name":"US","nominal_v":120,"min_v":95,"max_v":140}},
            "regions":{"US":{"band":"NA","default_a":15}},
            "unknown_region":{"default_a":16,"default_w":3680},
            "models":[{"model":"KL1","region":"ZZ","rated_a":1,"rated_w":1}]}"#;
        assert!(Ratings::from_json(bad).is_err());
        let ok = bad.replace(r#""region":"ZZ","#, "");
        assert!(Ratings::from_json(&ok).is_ok());
    }

    #[test]
    fn config_overrides_replace_the_rating() {
        let l = limits_for("HS110(US)").with_override(Some(10.0), None, None);
        assert_eq!((l.rated_a, l.rated_w), (10.0, 1200.0));
        assert_eq!(l.label, "HS110 US, config override");
        let l = limits_for("HS110(US)").with_override(None, Some(1000.0), Some(125.0));
        assert_eq!((l.rated_a, l.rated_w), (8.0, 1000.0));
        let l = limits_for("HS110(US)").with_override(None, Some(-1.0), None);
        assert_eq!(l, limits_for("HS110(US)"));

        let cfg = crate::config::Config::parse(
            "[ratings.\"hs110(us)\"]\namps = 10\n",
            std::path::Path::new("t.toml"),
        )
        .expect("config");
        assert_eq!(limits_with_config("HS110(US)", &cfg).rated_a, 10.0);
        assert_eq!(limits_with_config("HS110(EU)", &cfg).rated_a, 16.0);
    }

    #[test]
    fn broken_tables_are_rejected() {
        assert!(matches!(
            Ratings::from_json("{"),
            Err(RatingsError::Json(_))
        ));
        let bad_region = RATINGS_JSON.replace(
            r#""band": "NA", "default_a": 15 }"#,
            r#""band": "XX", "default_a": 15 }"#,
        );
        assert!(matches!(
            Ratings::from_json(&bad_region),
            Err(RatingsError::Inconsistent(_))
        ));
        let fallback = Ratings::fallback();
        fallback.check().expect("fallback table is consistent");
        assert_eq!(fallback.limits_for("HS110(US)").rated_w, 1800.0);
    }
}
