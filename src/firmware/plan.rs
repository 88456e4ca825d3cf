//! Matching images to plugs: per plug, the image chosen, current → new version, a [`Verdict`]
//! and what was checked ([`Checks`]: file type, size against the model family's bounds,
//! container structure, SHA-256, whether the hash is on the user's allowlist). With several
//! images (a folder), each plug gets its best match; a valid image always ranks above an
//! invalid one.
//!
//! What may be flashed: never a refused file (not a regular file, a symlink leaving the folder),
//! a size out of bounds, a corrupt demo image, a wrong target or a version above the ceiling;
//! unrecognised content, an unknown target or the same version only with the override
//! (`--force`); a downgrade only with its own consent (`--allow-downgrade`, or the TUI's second
//! confirmation) — `--force` never covers it. [`PlanEntry::will_update`] is the one gate the
//! runner and both front ends use.
//!
//! Pure: takes the plugs' `SysInfo` and the inspected images, returns the plan. The TUI's confirm
//! dialog and `plugfleet update` both draw it.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use super::container::Structure;
use super::image::{ImageInfo, ImageTarget, Version};
use super::limits::{Bounds, KnownHashes, SizeBounds, SizeLimits};
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
    /// Older than what the plug runs: only with its own consent (`--allow-downgrade` or the
    /// TUI's second confirmation); `--force` does not cover it.
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
    /// No recognised container structure (PROTOCOL.md §6.6): needs the explicit override
    /// (`--force`), even when the hash is on the allowlist.
    UnrecognisedContent { reason: String },
    /// Smaller or larger than any image of the model family can be: never flashed (the bounds
    /// can be changed in the config file, `[firmware.size_limits]`).
    SizeOutOfBounds { reason: String },
    /// Not read at all: not a regular file, a symlink leaving the folder or to something that is
    /// not a regular file, empty, too large or unreadable. Never flashed.
    Refused { reason: String },
}

impl Verdict {
    /// Never flashed.
    pub fn is_blocked(&self) -> bool {
        matches!(
            self,
            Verdict::WrongTarget { .. }
                | Verdict::Corrupt { .. }
                | Verdict::AboveCeiling { .. }
                | Verdict::SizeOutOfBounds { .. }
                | Verdict::Refused { .. }
        )
    }

    /// Flashed only with an explicit override.
    pub fn needs_override(&self) -> bool {
        matches!(
            self,
            Verdict::UnknownTarget { .. }
                | Verdict::SameVersion
                | Verdict::UnrecognisedContent { .. }
        )
    }

    /// Flashed after confirmation, with a warning shown.
    pub fn is_warning(&self) -> bool {
        matches!(self, Verdict::ProtocolChange { .. } | Verdict::Downgrade)
    }

    /// Whether a plug with this verdict is updated (`force` = the explicit override), without
    /// consent to a downgrade: a downgrade needs [`PlanEntry::allow_downgrade`] as well.
    pub fn allows_update(&self, force: bool) -> bool {
        self.allows_update_with(force, false)
    }

    /// Whether a plug with this verdict is updated under the override and the downgrade consent.
    pub fn allows_update_with(&self, force: bool, allow_downgrade: bool) -> bool {
        !self.is_blocked()
            && (!self.needs_override() || force)
            && (*self != Verdict::Downgrade || allow_downgrade)
    }

    /// Short label: `compatible`, `protocol-change`, `downgrade`, `same-version`,
    /// `unknown-target`, `unrecognised-content`, `wrong-target`, `above-ceiling`, `corrupt`,
    /// `size-out-of-bounds`, `refused`.
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
            Verdict::UnrecognisedContent { .. } => "unrecognised-content",
            Verdict::SizeOutOfBounds { .. } => "size-out-of-bounds",
            Verdict::Refused { .. } => "refused",
        }
    }

    /// A plain sentence for the confirm dialog.
    pub fn explain(&self) -> String {
        match self {
            Verdict::Compatible => "compatible".into(),
            Verdict::ProtocolChange { reason } => format!("warning: {reason}"),
            Verdict::Downgrade => {
                "downgrade: skipped unless allowed (--allow-downgrade; --force does not cover it)"
                    .into()
            }
            Verdict::SameVersion => "already runs this version (skipped unless --force)".into(),
            Verdict::UnknownTarget { reason } => {
                format!("unknown target: {reason} (needs --force)")
            }
            Verdict::WrongTarget { reason } | Verdict::AboveCeiling { reason } => {
                format!("blocked: {reason}")
            }
            Verdict::Corrupt { reason } => format!("blocked: image is corrupt: {reason}"),
            Verdict::UnrecognisedContent { reason } => {
                format!("unrecognised content: {reason} (needs --force)")
            }
            Verdict::SizeOutOfBounds { reason } => format!("blocked: {reason}"),
            Verdict::Refused { reason } => format!("blocked: file refused: {reason}"),
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
            Verdict::UnrecognisedContent { .. } => 5,
            Verdict::AboveCeiling { .. } => 6,
            Verdict::SizeOutOfBounds { .. } => 7,
            Verdict::WrongTarget { .. } => 8,
            Verdict::Corrupt { .. } => 9,
            Verdict::Refused { .. } => 10,
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
    /// The image's version is older than the plug's: flashed only with the downgrade consent,
    /// whatever the verdict says (an unrecognised downgrade needs both `--force` and it).
    pub downgrade: bool,
    /// What was checked (none when no image was given).
    pub checks: Option<Checks>,
}

/// What was checked about one image for one plug, for the plan and `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checks {
    /// `regular file`, `symlink → /fw/x.bin (regular file)`, `in memory` or `refused: …`.
    pub file: String,
    pub size: u64,
    /// The bounds applied (the model family's, the config's, or the demo images').
    pub size_bounds: Option<Bounds>,
    pub size_ok: bool,
    pub structure: Structure,
    /// `sha256` of the whole file (empty for a refused file).
    pub sha256: String,
    /// On the user's allowlist (`[[firmware.known]]`) for this plug's model and hardware: the
    /// entry's note, or "listed".
    pub known: Option<String>,
}

fn human_size(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1 << 20 {
        format!("{:.0} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / 1_048_576.0)
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

impl Checks {
    /// A compact form for the TUI: `regular file · 96 KiB in 64 B–4 MiB · plugfleet demo
    /// header (verified) · sha256 1a2b3c4d… · not known`.
    pub fn short(&self) -> String {
        let size = match &self.size_bounds {
            Some(b) => format!(
                "{} {} {}–{}",
                human_size(self.size),
                if self.size_ok { "in" } else { "OUTSIDE" },
                human_bytes(b.bounds.min_bytes),
                human_bytes(b.bounds.max_bytes)
            ),
            None => human_size(self.size),
        };
        let sha = if self.sha256.is_empty() {
            "sha256 -".to_owned()
        } else {
            format!("sha256 {}…", &self.sha256[..8.min(self.sha256.len())])
        };
        let known = if self.known.is_some() {
            "KNOWN"
        } else {
            "not known"
        };
        format!(
            "{} · {size} · {} · {sha} · {known}",
            self.file,
            self.structure.describe()
        )
    }

    /// One line: `regular file; 98515 bytes within 64 B–4 MiB (plugfleet demo images);
    /// plugfleet demo header (verified); sha256 1a2b3c4d5e6f…; not on the known list`.
    pub fn summary(&self) -> String {
        let size = match &self.size_bounds {
            Some(b) => format!(
                "{} bytes {} {}–{} ({})",
                self.size,
                if self.size_ok { "within" } else { "OUTSIDE" },
                human_bytes(b.bounds.min_bytes),
                human_bytes(b.bounds.max_bytes),
                b.source
            ),
            None => format!("{} bytes", self.size),
        };
        let sha = if self.sha256.is_empty() {
            "sha256 -".to_owned()
        } else {
            format!("sha256 {}…", &self.sha256[..12.min(self.sha256.len())])
        };
        let known = match &self.known {
            Some(n) => format!("KNOWN ({n})"),
            None => "not on the known list".into(),
        };
        format!(
            "{}; {size}; {}; {sha}; {known}",
            self.file,
            self.structure.describe()
        )
    }
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
    /// Consent to flash an older version (`--allow-downgrade`, or the TUI's second
    /// confirmation). Off in every new plan.
    pub allow_downgrade: bool,
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

    /// Whether this plug gets updated (`force` = the explicit override). A downgrade also needs
    /// [`allow_downgrade`](Self::allow_downgrade), whatever `force` says.
    pub fn will_update(&self, force: bool) -> bool {
        self.image.is_some()
            && self
                .assessment
                .verdict
                .allows_update_with(force, self.allow_downgrade)
            && (!self.assessment.downgrade || self.allow_downgrade)
    }

    /// Whether this plug would be updated if the downgrade were allowed (a downgrade waiting for
    /// its consent).
    pub fn awaits_downgrade_consent(&self, force: bool) -> bool {
        self.image.is_some()
            && self.assessment.downgrade
            && !self.allow_downgrade
            && self.assessment.verdict.allows_update_with(force, true)
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
            .unwrap_or_else(|| "unknown".into());
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

/// Everything an image is judged by besides itself: version ceilings, size bounds and the
/// allowlist of known hashes (all from the config file's `[firmware]` section).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub ceilings: Ceilings,
    pub size_limits: SizeLimits,
    pub known: KnownHashes,
}

impl Policy {
    /// From the config file's `[firmware]` section (`max_version`, `size_limits`, `known`).
    /// Errors are plain sentences naming the entry.
    pub fn from_config(fw: &crate::config::FirmwareSection) -> Result<Policy, String> {
        Ok(Policy {
            ceilings: Ceilings::new(fw.max_version.iter().map(|(m, v)| (m.as_str(), v.as_str())))?,
            size_limits: SizeLimits::new(fw.size_limits.iter().map(|(m, b)| {
                (
                    m.as_str(),
                    SizeBounds {
                        min_bytes: b.min_bytes,
                        max_bytes: b.max_bytes,
                    },
                )
            }))?,
            known: KnownHashes::new(fw.known.iter().cloned())?,
        })
    }

    /// Only version ceilings (built-in size bounds, no known hashes).
    pub fn with_ceilings(ceilings: Ceilings) -> Policy {
        Policy {
            ceilings,
            ..Policy::default()
        }
    }
}

/// Judges one image against one plug under the built-in size bounds, no ceilings and no
/// allowlist.
pub fn assess(image: &ImageInfo, plug: &SysInfo) -> Assessment {
    assess_with(image, plug, &Policy::default())
}

/// Judges one image against one plug: the file first (refused, corrupt, size, structure), then
/// the target and version, then the ceiling. The verdict is the gravest finding; `checks` says
/// what was looked at either way.
pub fn assess_with(image: &ImageInfo, plug: &SysInfo, policy: &Policy) -> Assessment {
    let bounds = if image.refused.is_some() {
        None
    } else if image.header.is_some() {
        Some(policy.size_limits.for_demo(&plug.model))
    } else {
        Some(policy.size_limits.for_model(&plug.model))
    };
    let size_ok = bounds
        .as_ref()
        .is_some_and(|b| b.bounds.contains(image.size));
    let known = if image.sha256.is_empty() {
        None
    } else {
        policy
            .known
            .lookup(&plug.model, &plug.hw_ver, &image.sha256)
            .map(|k| k.note.clone().unwrap_or_else(|| "listed".into()))
    };
    let checks = Checks {
        file: match &image.refused {
            Some(why) => format!("refused: {why}"),
            None => image.source.describe(),
        },
        size: image.size,
        size_bounds: bounds.clone(),
        size_ok,
        structure: image.structure.clone(),
        sha256: image.sha256.clone(),
        known: known.clone(),
    };
    let mut a = assess_target(image, plug);
    a.downgrade = a.verdict == Verdict::Downgrade;
    if let Some(why) = &image.refused {
        a.verdict = Verdict::Refused {
            reason: why.clone(),
        };
    } else if !a.verdict.is_blocked() {
        if let Some(b) = bounds.as_ref().filter(|_| !size_ok) {
            let side = if image.size < b.bounds.min_bytes {
                format!("below the minimum {}", human_bytes(b.bounds.min_bytes))
            } else {
                format!("above the maximum {}", human_bytes(b.bounds.max_bytes))
            };
            a.verdict = Verdict::SizeOutOfBounds {
                reason: format!(
                    "{} bytes is {side} for {}; content: {} (bounds: {}; \
                     [firmware.size_limits] in the config file changes them)",
                    image.size,
                    plug.model,
                    image.structure.describe(),
                    b.source
                ),
            };
        } else if !image.structure.is_recognised() {
            // Even a hash on the allowlist does not stand in for a structure: only `--force`
            // flashes content that is not recognised (issue 13's rule).
            if a.verdict != Verdict::Compatible {
                a.notes.push(format!("otherwise: {}", a.verdict.explain()));
            }
            a.verdict = Verdict::UnrecognisedContent {
                reason: "no TP-Link v1 or RTOS header, U-Boot uImage, squashfs or LZMA \
                         signature and no plugfleet demo header at the start"
                    .into(),
            };
        }
    }
    if let Some(n) = &known {
        a.notes.push(format!(
            "known image: its SHA-256 is on the allowlist for {} hw {} ({n})",
            plug.model, plug.hw_ver
        ));
    }
    a.checks = Some(checks);
    policy.ceilings.apply(plug, a)
}

/// Judges the target and version alone (what the header or the file name says).
fn assess_target(image: &ImageInfo, plug: &SysInfo) -> Assessment {
    let mut notes = Vec::new();
    let (base, region) = crate::protocol::split_model(&plug.model);
    let plug_major = hw_major(&plug.hw_ver);
    let done = |verdict, to, notes| Assessment {
        verdict,
        to,
        notes,
        downgrade: false,
        checks: None,
    };
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

/// The best image for one plug: best verdict, then highest version, then a known hash, then
/// file name.
pub fn best_match(
    images: &[Arc<ImageInfo>],
    plug: &SysInfo,
) -> Option<(Arc<ImageInfo>, Assessment)> {
    best_match_in(images, plug, &Policy::default())
}

/// [`best_match`] under version ceilings.
pub fn best_match_with(
    images: &[Arc<ImageInfo>],
    plug: &SysInfo,
    ceilings: &Ceilings,
) -> Option<(Arc<ImageInfo>, Assessment)> {
    best_match_in(images, plug, &Policy::with_ceilings(ceilings.clone()))
}

/// [`best_match`] under a whole [`Policy`].
pub fn best_match_in(
    images: &[Arc<ImageInfo>],
    plug: &SysInfo,
    policy: &Policy,
) -> Option<(Arc<ImageInfo>, Assessment)> {
    let known = |a: &Assessment| a.checks.as_ref().is_some_and(|c| c.known.is_some());
    images
        .iter()
        .map(|i| (i.clone(), assess_with(i, plug, policy)))
        .min_by(|(ia, a), (ib, b)| {
            a.verdict
                .rank()
                .cmp(&b.verdict.rank())
                .then_with(|| b.to.cmp(&a.to))
                .then_with(|| known(b).cmp(&known(a)))
                .then_with(|| ia.file_name.cmp(&ib.file_name))
        })
}

/// The plan for every plug: each gets its best match among `images`.
pub fn plan(plugs: &[(IpAddr, SysInfo)], images: &[Arc<ImageInfo>]) -> Vec<PlanEntry> {
    plan_in(plugs, images, &Policy::default())
}

/// [`plan`] under version ceilings.
pub fn plan_with(
    plugs: &[(IpAddr, SysInfo)],
    images: &[Arc<ImageInfo>],
    ceilings: &Ceilings,
) -> Vec<PlanEntry> {
    plan_in(plugs, images, &Policy::with_ceilings(ceilings.clone()))
}

/// [`plan`] under a whole [`Policy`].
pub fn plan_in(
    plugs: &[(IpAddr, SysInfo)],
    images: &[Arc<ImageInfo>],
    policy: &Policy,
) -> Vec<PlanEntry> {
    plugs
        .iter()
        .map(|(ip, s)| {
            let plug = PlugIdentity::from_sysinfo(*ip, s);
            match best_match_in(images, s, policy) {
                Some((image, assessment)) => PlanEntry {
                    plug,
                    image: Some(image),
                    assessment,
                    allow_downgrade: false,
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
                        downgrade: false,
                        checks: None,
                    },
                    allow_downgrade: false,
                },
            }
        })
        .collect()
}

/// Gives every entry of the plan the downgrade consent (`--allow-downgrade`, or the TUI's
/// second confirmation). Returns how many entries it lets through that were held back.
pub fn allow_downgrades(entries: &mut [PlanEntry], force: bool) -> usize {
    let mut n = 0;
    for e in entries.iter_mut() {
        if e.awaits_downgrade_consent(force) {
            n += 1;
        }
        e.allow_downgrade = true;
    }
    n
}

/// Entries held back only for want of the downgrade consent.
pub fn downgrades_waiting(entries: &[PlanEntry], force: bool) -> Vec<&PlanEntry> {
    entries
        .iter()
        .filter(|e| e.awaits_downgrade_consent(force))
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
