//! Matching images to plugs: per plug, the image chosen, current → new version and a
//! [`Verdict`]. With several images (a folder), each plug gets its best match.
//!
//! Pure: takes the plugs' `SysInfo` and the inspected images, returns the plan. The TUI's confirm
//! dialog and `plugfleet update` both draw it.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use super::image::{ImageInfo, ImageTarget, Version};
use crate::protocol::SysInfo;

/// What matching one image to one plug concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Right model, hardware and region; newer version.
    Compatible,
    /// Newer, but a version known to move this model to the authenticated protocol (§8.3).
    /// Allowed after confirmation.
    ProtocolChange { reason: String },
    /// Older than what the plug runs. Allowed after confirmation.
    Downgrade,
    /// The plug already runs this version: skipped unless forced.
    SameVersion,
    /// The target cannot be established (platform code, no hardware or version in the name):
    /// needs an explicit override (`--force`).
    UnknownTarget { reason: String },
    /// For another model, hardware revision or region: never flashed, not even with `--force`.
    WrongTarget { reason: String },
    /// Beyond the ceiling configured for this model (`[firmware.max_version]`): never flashed
    /// until the ceiling is raised.
    AboveCeiling { reason: String },
    /// The file carries a header but is truncated or corrupt: never flashed.
    Corrupt { reason: String },
}

impl Verdict {
    /// Never flashed.
    pub fn is_blocked(&self) -> bool {
        matches!(
            self,
            Verdict::WrongTarget { .. } | Verdict::Corrupt { .. } | Verdict::AboveCeiling { .. }
        )
    }

    /// Flashed only with an explicit override.
    pub fn needs_override(&self) -> bool {
        matches!(self, Verdict::UnknownTarget { .. } | Verdict::SameVersion)
    }

    /// Flashed after confirmation, with a warning shown.
    pub fn is_warning(&self) -> bool {
        matches!(self, Verdict::ProtocolChange { .. } | Verdict::Downgrade)
    }

    /// Whether a plug with this verdict is updated (`force` = the explicit override).
    pub fn allows_update(&self, force: bool) -> bool {
        !self.is_blocked() && (!self.needs_override() || force)
    }

    /// Short label: `compatible`, `protocol-change`, `downgrade`, `same-version`,
    /// `unknown-target`, `wrong-target`, `above-ceiling`, `corrupt`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Compatible => "compatible",
            Verdict::ProtocolChange { .. } => "protocol-change",
            Verdict::Downgrade => "downgrade",
            Verdict::SameVersion => "same-version",
            Verdict::UnknownTarget { .. } => "unknown-target",
            Verdict::WrongTarget { .. } => "wrong-target",
            Verdict::AboveCeiling { .. } => "above-ceiling",
            Verdict::Corrupt { .. } => "corrupt",
        }
    }

    /// A plain sentence for the confirm dialog.
    pub fn explain(&self) -> String {
        match self {
            Verdict::Compatible => "compatible".into(),
            Verdict::ProtocolChange { reason } => format!("warning: {reason}"),
            Verdict::Downgrade => "warning: this is a downgrade".into(),
            Verdict::SameVersion => "already runs this version (skipped unless --force)".into(),
            Verdict::UnknownTarget { reason } => {
                format!("unknown target: {reason} (needs --force)")
            }
            Verdict::WrongTarget { reason } | Verdict::AboveCeiling { reason } => {
                format!("blocked: {reason}")
            }
            Verdict::Corrupt { reason } => format!("blocked: image is corrupt: {reason}"),
        }
    }

    /// Lower is better when choosing among several images for one plug.
    fn rank(&self) -> u8 {
        match self {
            Verdict::Compatible => 0,
            Verdict::ProtocolChange { .. } => 1,
            Verdict::SameVersion => 2,
            Verdict::Downgrade => 3,
            Verdict::UnknownTarget { .. } => 4,
            Verdict::AboveCeiling { .. } => 5,
            Verdict::WrongTarget { .. } => 6,
            Verdict::Corrupt { .. } => 7,
        }
    }
}

/// One image judged against one plug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The version the plug will report afterwards, when known.
    pub to: Option<Version>,
    /// Secondary remarks (e.g. "target from the file name only").
    pub notes: Vec<String>,
}

/// The identity of a plug as the plan saw it (pre-flight compares against it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlugIdentity {
    pub ip: IpAddr,
    pub alias: String,
    pub model: String,
    pub hw_ver: String,
    pub sw_ver: String,
    pub mac: String,
    pub device_id: String,
}

impl PlugIdentity {
    pub fn from_sysinfo(ip: IpAddr, s: &SysInfo) -> Self {
        Self {
            ip,
            alias: s.alias.clone(),
            model: s.model.clone(),
            hw_ver: s.hw_ver.clone(),
            sw_ver: s.sw_ver.clone(),
            mac: s.mac.clone(),
            device_id: s.device_id.clone(),
        }
    }
}

/// One row of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanEntry {
    pub plug: PlugIdentity,
    /// The chosen image (none only when no image was given).
    #[serde(serialize_with = "ser_image")]
    pub image: Option<Arc<ImageInfo>>,
    pub assessment: Assessment,
}

fn ser_image<S: serde::Serializer>(img: &Option<Arc<ImageInfo>>, s: S) -> Result<S::Ok, S::Error> {
    match img {
        Some(i) => s.serialize_some(&i.file_name),
        None => s.serialize_none(),
    }
}

impl PlanEntry {
    pub fn verdict(&self) -> &Verdict {
        &self.assessment.verdict
    }

    /// Whether this plug gets updated (`force` = the explicit override).
    pub fn will_update(&self, force: bool) -> bool {
        self.image.is_some() && self.assessment.verdict.allows_update(force)
    }

    /// `1.1.1 → 1.2.3` (short forms).
    pub fn versions(&self) -> (String, String) {
        let from = Version::parse(&self.plug.sw_ver)
            .map(|v| v.short())
            .unwrap_or_else(|| self.plug.sw_ver.clone());
        let to = self
            .assessment
            .to
            .as_ref()
            .map(Version::short)
            .unwrap_or_else(|| "?".into());
        (from, to)
    }
}

#[derive(Debug, Deserialize)]
struct ChangeFile {
    entries: Vec<ProtocolChangeEntry>,
}

/// One row of PROTOCOL.md §8.3 (`assets/protocol-changes.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct ProtocolChangeEntry {
    pub model: String,
    pub region: Option<String>,
    pub hw_ver: Option<String>,
    pub version: String,
    pub reason: String,
}

static PROTOCOL_CHANGES: LazyLock<Vec<ProtocolChangeEntry>> = LazyLock::new(|| {
    serde_json::from_str::<ChangeFile>(include_str!("../../assets/protocol-changes.json"))
        .map(|f| f.entries)
        .unwrap_or_default()
});

/// The known protocol-changing versions (PROTOCOL.md §8.3).
pub fn protocol_changes() -> &'static [ProtocolChangeEntry] {
    &PROTOCOL_CHANGES
}

/// The §8.3 entry that `to` would trigger on this plug, if any.
pub fn protocol_change_for(plug: &SysInfo, to: &Version) -> Option<&'static ProtocolChangeEntry> {
    let (base, region) = crate::protocol::split_model(&plug.model);
    protocol_changes().iter().find(|e| {
        e.model.eq_ignore_ascii_case(base)
            && e.region
                .as_deref()
                .is_none_or(|r| region.is_some_and(|pr| pr.eq_ignore_ascii_case(r)))
            && e.hw_ver.as_deref().is_none_or(|h| same_hw(h, &plug.hw_ver))
            && Version::parse(&e.version).is_some_and(|v| to.cmp_numbers(&v).is_ge())
    })
}

fn same_hw(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let mut p = s.trim().split('.');
        let major = p.next().unwrap_or("").to_owned();
        let minor = p.next().unwrap_or("0").to_owned();
        (major, minor)
    };
    norm(a) == norm(b)
}

fn hw_major(hw_ver: &str) -> &str {
    hw_ver.trim().split('.').next().unwrap_or(hw_ver)
}

/// Judges one image against one plug.
pub fn assess(image: &ImageInfo, plug: &SysInfo) -> Assessment {
    let mut notes = Vec::new();
    let (base, region) = crate::protocol::split_model(&plug.model);
    let plug_major = hw_major(&plug.hw_ver);
    let done = |verdict, to, notes| Assessment { verdict, to, notes };
    if let Some(e) = &image.header_error {
        return done(Verdict::Corrupt { reason: e.clone() }, None, notes);
    }
    let version = match image.target() {
        None => {
            let reason = "the file name says nothing about the target".to_owned();
            return done(Verdict::UnknownTarget { reason }, None, notes);
        }
        Some(ImageTarget::Header {
            model,
            hw_major: hw,
            region: img_region,
            version,
        }) => {
            if !model.eq_ignore_ascii_case(base) {
                let reason = format!("image is for {model}, the plug is {}", plug.model);
                return done(Verdict::WrongTarget { reason }, Some(version), notes);
            }
            if hw != plug_major {
                let reason = format!(
                    "image is for hardware {hw}.x, the plug is hardware {}",
                    plug.hw_ver
                );
                return done(Verdict::WrongTarget { reason }, Some(version), notes);
            }
            if let Some(r) = region
                && !r.eq_ignore_ascii_case(&img_region)
            {
                let reason = format!("image is for region {img_region}, the plug is {r}");
                return done(Verdict::WrongTarget { reason }, Some(version), notes);
            }
            if let Some(n) = &image.name
                && let Some(m) = &n.model
                && !m.eq_ignore_ascii_case(&model)
            {
                notes.push(format!(
                    "the file name says {m} but the header says {model}; the header wins"
                ));
            }
            version
        }
        Some(ImageTarget::Name(n)) => {
            if let Some(m) = &n.model
                && !m.eq_ignore_ascii_case(base)
            {
                let reason = format!("file name is for {m}, the plug is {}", plug.model);
                return done(Verdict::WrongTarget { reason }, n.version, notes);
            }
            if n.model.is_some()
                && let Some(h) = &n.hw_major
                && h != plug_major
            {
                let reason = format!(
                    "file name is for hardware {h}.x, the plug is hardware {}",
                    plug.hw_ver
                );
                return done(Verdict::WrongTarget { reason }, n.version, notes);
            }
            if let (Some(r), Some(pr)) = (&n.region, region)
                && !r.eq_ignore_ascii_case(pr)
            {
                let reason = format!("file name is for region {r}, the plug is {pr}");
                return done(Verdict::WrongTarget { reason }, n.version, notes);
            }
            if n.model.is_none() {
                let reason = format!(
                    "`{}` is a platform code or family name, not a model",
                    n.model_token
                );
                return done(Verdict::UnknownTarget { reason }, n.version, notes);
            }
            if n.hw_major.is_none() {
                let reason = "the file name gives no hardware version".to_owned();
                return done(Verdict::UnknownTarget { reason }, n.version, notes);
            }
            let Some(version) = n.version else {
                let reason = "the file name gives no version".to_owned();
                return done(Verdict::UnknownTarget { reason }, None, notes);
            };
            if let Some(c) = &n.cert_region {
                notes.push(format!(
                    "`{c}` is a certification code, not a region: region not checked"
                ));
            }
            notes.push("target read from the file name only (no header)".into());
            version
        }
    };
    let Some(current) = Version::parse(&plug.sw_ver) else {
        let reason = format!("the plug's version `{}` is unreadable", plug.sw_ver);
        return done(Verdict::UnknownTarget { reason }, Some(version), notes);
    };
    // A name without build/rel compares on the numbers only.
    let ord = if version.build.is_none() {
        version.cmp_numbers(&current)
    } else {
        version.cmp(&current)
    };
    let verdict = match ord {
        std::cmp::Ordering::Equal => Verdict::SameVersion,
        std::cmp::Ordering::Less => Verdict::Downgrade,
        std::cmp::Ordering::Greater => match protocol_change_for(plug, &version) {
            Some(e) => Verdict::ProtocolChange {
                reason: e.reason.clone(),
            },
            None => Verdict::Compatible,
        },
    };
    done(verdict, Some(version), notes)
}

/// Per-model version ceilings (`[firmware.max_version]` in the config file): never flash a
/// version beyond them, e.g. to keep port-9999 control (PROTOCOL.md §6.6 step 5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ceilings {
    entries: Vec<(String, Version)>,
}

impl Ceilings {
    /// From `model → version` pairs; a key is a full model (`HS300(US)`) or a base model
    /// (`HS300`). A version that does not parse is an error naming the entry.
    pub fn new<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Ceilings, String> {
        let mut entries = Vec::new();
        for (model, v) in pairs {
            let version = Version::parse(v)
                .ok_or_else(|| format!("max_version for {model}: `{v}` is not a version"))?;
            entries.push((model.trim().to_owned(), version));
        }
        Ok(Ceilings { entries })
    }

    /// The ceiling for a plug's model: the full-model entry if any, else the base-model one.
    pub fn for_model(&self, model: &str) -> Option<&Version> {
        let (base, _) = crate::protocol::split_model(model);
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(model.trim()))
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(base))
            })
            .map(|(_, v)| v)
    }

    /// Applies the ceiling to an assessment: an update beyond it becomes `AboveCeiling`.
    pub fn apply(&self, plug: &SysInfo, mut a: Assessment) -> Assessment {
        if let (Some(max), Some(to)) = (self.for_model(&plug.model), &a.to)
            && !a.verdict.is_blocked()
            && to.cmp_numbers(max).is_gt()
        {
            a.verdict = Verdict::AboveCeiling {
                reason: format!(
                    "{} is beyond the configured ceiling {} for {}",
                    to.short(),
                    max.short(),
                    plug.model
                ),
            };
        }
        a
    }
}

/// The best image for one plug: best verdict, then highest version, then file name.
pub fn best_match(
    images: &[Arc<ImageInfo>],
    plug: &SysInfo,
) -> Option<(Arc<ImageInfo>, Assessment)> {
    best_match_with(images, plug, &Ceilings::default())
}

/// [`best_match`] under version ceilings.
pub fn best_match_with(
    images: &[Arc<ImageInfo>],
    plug: &SysInfo,
    ceilings: &Ceilings,
) -> Option<(Arc<ImageInfo>, Assessment)> {
    images
        .iter()
        .map(|i| (i.clone(), ceilings.apply(plug, assess(i, plug))))
        .min_by(|(ia, a), (ib, b)| {
            a.verdict
                .rank()
                .cmp(&b.verdict.rank())
                .then_with(|| b.to.cmp(&a.to))
                .then_with(|| ia.file_name.cmp(&ib.file_name))
        })
}

/// The plan for every plug: each gets its best match among `images`.
pub fn plan(plugs: &[(IpAddr, SysInfo)], images: &[Arc<ImageInfo>]) -> Vec<PlanEntry> {
    plan_with(plugs, images, &Ceilings::default())
}

/// [`plan`] under version ceilings.
pub fn plan_with(
    plugs: &[(IpAddr, SysInfo)],
    images: &[Arc<ImageInfo>],
    ceilings: &Ceilings,
) -> Vec<PlanEntry> {
    plugs
        .iter()
        .map(|(ip, s)| {
            let plug = PlugIdentity::from_sysinfo(*ip, s);
            match best_match_with(images, s, ceilings) {
                Some((image, assessment)) => PlanEntry {
                    plug,
                    image: Some(image),
                    assessment,
                },
                None => PlanEntry {
                    plug,
                    image: None,
                    assessment: Assessment {
                        verdict: Verdict::UnknownTarget {
                            reason: "no image given".into(),
                        },
                        to: None,
                        notes: Vec::new(),
                    },
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_change_table_loads() {
        assert!(protocol_changes().len() >= 6);
        assert!(
            protocol_changes()
                .iter()
                .all(|e| Version::parse(&e.version).is_some())
        );
    }
}
