//! Firmware in the TUI, the parts that are not screens: how a batch is configured (from the
//! config file, or for the demo), where the file picker starts, which directory entries it lists,
//! the verdict glyphs, and the demo's embedded images.
//!
//! Everything here is pure or plain file I/O at start-up; the update function and the runtime
//! call into it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::state::{App, Batch, Overlay};

use crate::config::Config;
use crate::firmware::image;
use crate::firmware::plan::{self, PlanEntry, Policy, Verdict};
use crate::firmware::runner::BatchReport;
use crate::protocol::SysInfo;

pub use super::settings::FirmwareSettings;

/// Inspects the image file or folder at `path` and matches it to `plugs` under the policy
/// (blocking file I/O: the runtime calls it off the UI loop). Errors are plain sentences.
pub fn plan_from(
    path: &Path,
    plugs: &[(IpAddr, SysInfo)],
    policy: &Policy,
) -> Result<Vec<PlanEntry>, String> {
    let images = image::load_path(path).map_err(|e| e.to_string())?;
    if images.is_empty() {
        return Err(format!("no firmware image in {}", path.display()));
    }
    let images: Vec<Arc<_>> = images.into_iter().map(Arc::new).collect();
    Ok(plan::plan_in(plugs, &images, policy))
}

/// The demo fleet's time scale: flash + reboot of a simulated plug take seconds, not a minute.
pub const DEMO_TIME_SCALE: f64 = 0.2;

/// Where the file picker starts: the first `[firmware] folders` entry of the config file, else
/// the current directory; made absolute so the picker shows a real path.
pub fn start_dir(cfg: Option<&Config>, cwd: &Path) -> PathBuf {
    let dir = cfg
        .and_then(|c| c.firmware.folders.first().cloned())
        .unwrap_or_else(|| cwd.to_path_buf());
    if dir.is_absolute() {
        dir
    } else {
        cwd.join(dir)
    }
}

/// The picker lists folders and firmware images (`*.bin`), nothing else.
pub fn listed(name: &str, is_dir: bool) -> bool {
    is_dir || is_image_name(name)
}

pub fn is_image_name(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("bin"))
}

/// A glyph per verdict, so the meaning does not rest on colour (the plan's set in
/// [`crate::text::glyph`]): `✓` compatible, `!` caution (protocol change, downgrade), `=` same
/// version, `*` unknown target or unrecognised content (needs the override), `✗` blocked.
pub fn verdict_glyph(v: &Verdict) -> &'static str {
    use crate::text::glyph;
    match v {
        Verdict::Compatible => glyph::PLAN_OK,
        Verdict::ProtocolChange { .. } | Verdict::Downgrade => glyph::PLAN_CAUTION,
        Verdict::SameVersion => glyph::PLAN_SAME,
        Verdict::UnknownTarget { .. } | Verdict::UnrecognisedContent { .. } => glyph::PLAN_OVERRIDE,
        Verdict::WrongTarget { .. }
        | Verdict::AboveCeiling { .. }
        | Verdict::Corrupt { .. }
        | Verdict::SizeOutOfBounds { .. }
        | Verdict::Refused { .. } => glyph::PLAN_BLOCKED,
    }
}

/// Device-supplied text for a status line: control characters replaced, at most 24 characters.
fn short_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(24)
        .collect()
}

/// One line per downgrade waiting for consent: `kitchen 127.0.0.5 HS110(EU) 1.2.5 → 1.1.4`.
pub fn downgrade_lines(c: &super::state::FirmwareConfirm) -> Vec<String> {
    plan::downgrades_waiting(&c.entries, c.force)
        .into_iter()
        .map(|e| {
            let (from, to) = e.versions();
            format!(
                "{} {} {} {from} → {to}",
                short_text(&e.plug.alias),
                e.plug.ip,
                short_text(&e.plug.model)
            )
        })
        .collect()
}

/// `D` in the firmware plan: the downgrade's own consent, as `--allow-downgrade` in
/// `plugfleet update` (`y` alone never flashes an older version). The first `D` asks, naming the
/// downgrades; a second `D` allows them; `D` once allowed takes the consent back.
pub fn allow_downgrade(app: &mut App, now: Instant) {
    let Overlay::FirmwareConfirm(c) = &mut app.view.overlay else {
        return;
    };
    if c.downgrade_allowed() {
        for e in &mut c.entries {
            e.allow_downgrade = false;
        }
        c.downgrade_prompt = false;
        let msg = format!(
            "downgrade no longer allowed: {} plug(s) will be updated",
            c.updating()
        );
        app.set_status(msg, now);
        return;
    }
    let waiting = downgrade_lines(c);
    if waiting.is_empty() {
        c.downgrade_prompt = false;
        app.set_status("no plug in this plan would be downgraded", now);
        return;
    }
    if !c.downgrade_prompt {
        c.downgrade_prompt = true;
        let msg = format!(
            "DOWNGRADE {} plug(s) to older firmware ({})? press D again to allow it, n/Esc cancels",
            waiting.len(),
            waiting.join("; ")
        );
        app.set_status(msg, now);
        return;
    }
    let n = plan::allow_downgrades(&mut c.entries, c.force);
    c.downgrade_prompt = false;
    let msg = format!(
        "DOWNGRADE ALLOWED for {n} plug(s) (like --allow-downgrade): y updates {} plug(s)",
        c.updating()
    );
    app.set_status(msg, now);
}

/// What `x` says: who stops, and who goes on and why (the runner refuses a cancel once a plug's
/// flash was requested; it reports each refusal too).
pub fn cancel_message(b: &Batch) -> String {
    let past = b
        .rows
        .iter()
        .filter(|(s, _)| !s.stage.is_final() && !s.can_cancel)
        .count();
    if past == 0 {
        "cancelling the firmware batch: no plug is flashing yet, every update stops".into()
    } else {
        format!(
            "cancelling what has not reached the flash: {past} plug(s) already past the flash \
             request go on (interrupting a flash could leave a plug unbootable)"
        )
    }
}

/// `F` in the firmware plan: the explicit override, as `--force` in `plugfleet update`.
pub fn toggle_force(app: &mut App, now: Instant) {
    let Overlay::FirmwareConfirm(c) = &mut app.view.overlay else {
        return;
    };
    if !c.force && !c.override_applies() {
        app.set_status(
            "no plug needs the override (it only covers unknown-target and same-version)",
            now,
        );
        return;
    }
    c.force = !c.force;
    let msg = if c.force {
        format!(
            "OVERRIDE ON (like --force): unknown-target and same-version plugs are updated too; \
             {} plug(s) now",
            c.updating()
        )
    } else {
        format!("override off: {} plug(s) will be updated", c.updating())
    };
    app.set_status(msg, now);
}

/// The table keys of the devices a batch report names (by address).
pub fn devices_in(app: &App, report: &BatchReport) -> Vec<String> {
    let mut keys: Vec<String> = app
        .fleet
        .devices
        .values()
        .filter(|d| report.plugs.iter().any(|p| p.ip == d.addr.ip()))
        .map(|d| d.key.clone())
        .collect();
    keys.sort();
    keys
}

macro_rules! demo_image {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/assets/firmware/",
                $name
            )),
        )
    };
}

/// The demo's firmware images, embedded so `plugfleet demo` does not depend on the current
/// directory (the same files as `assets/firmware/`; a test checks they agree).
pub const DEMO_IMAGES: &[(&str, &[u8])] = &[
    demo_image!("hs100v2_us_1.5.7_Build_200903_Rel.151120.bin"),
    demo_image!("hs105v1_us_1.5.7_Build_200901_Rel.101233.bin"),
    demo_image!("hs110v1_eu_1.1.4_Build_170417_Rel.145118.bin"),
    demo_image!("hs110v1_eu_1.2.6_Build_180110_Rel.100413.bin"),
    demo_image!("hs110v1_us_1.2.3_Build_171016_Rel.100427.bin"),
    demo_image!("hs110v1_us_1.2.7_Build_210310_Rel.113052.bin"),
    demo_image!("hs110v2_eu_1.5.8_Build_190705_Rel.100202.bin"),
    demo_image!("hs110v4_eu_1.0.5_Build_200826_Rel.090312.bin"),
    demo_image!("hs200v2_us_1.5.9_Build_210115_Rel.133045.bin"),
    demo_image!("hs300v2_us_1.0.13_Build_230517_Rel.140855.bin"),
    demo_image!("kp115v1_us_1.0.22_Build_240418_Rel.102311.bin"),
    demo_image!("kp303v2_us_1.0.10_Build_240716_Rel.162012.bin"),
];

/// The demo images written out to a fresh private directory; removed when dropped.
#[derive(Debug)]
pub struct DemoImages {
    /// The folder holding the images.
    dir: PathBuf,
    /// What is removed on drop: the images' folder, or the fresh folder made for it.
    owned: PathBuf,
}

impl DemoImages {
    /// Writes [`DEMO_IMAGES`] to `<tmp>/plugfleet-demo-<pid>-<n>/firmware/` (a directory created
    /// new, never one that already exists).
    pub fn write() -> std::io::Result<DemoImages> {
        let base = std::env::temp_dir();
        let mut last = None;
        for n in 0..100u32 {
            let root = base.join(format!("plugfleet-demo-{}-{n}", std::process::id()));
            match std::fs::create_dir(&root) {
                Ok(()) => {
                    let images = DemoImages {
                        dir: root.join("firmware"),
                        owned: root,
                    };
                    std::fs::create_dir(&images.dir)?;
                    images.fill()?;
                    return Ok(images);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no temporary directory")))
    }

    /// Writes [`DEMO_IMAGES`] to `<parent>/firmware/` (created new: an existing folder is an
    /// error); only that folder is removed on drop.
    pub fn write_in(parent: &Path) -> std::io::Result<DemoImages> {
        let dir = parent.join("firmware");
        // Created before the guard exists, so a folder that was there is never removed.
        std::fs::create_dir(&dir)?;
        let images = DemoImages {
            owned: dir.clone(),
            dir,
        };
        images.fill()?;
        Ok(images)
    }

    /// Writes the images into the (existing) folder.
    fn fill(&self) -> std::io::Result<()> {
        for (name, bytes) in DEMO_IMAGES {
            std::fs::write(self.dir.join(name), bytes)?;
        }
        Ok(())
    }

    /// The folder holding the images.
    pub fn dir(&self) -> PathBuf {
        self.dir.clone()
    }
}

impl Drop for DemoImages {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.owned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::image::ImageInfo;

    #[test]
    fn the_embedded_demo_images_are_the_committed_ones() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/firmware");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| is_image_name(n))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = DEMO_IMAGES.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(embedded, on_disk);
        for (name, bytes) in DEMO_IMAGES {
            let info = ImageInfo::from_bytes(Path::new(name), bytes.to_vec());
            assert!(info.header.is_some(), "{name}: {:?}", info.header_error);
        }
    }

    #[test]
    fn demo_images_are_written_to_a_fresh_folder_and_removed() {
        let images = DemoImages::write().unwrap();
        let dir = images.dir();
        let loaded = crate::firmware::image::load_path(&dir).unwrap();
        assert_eq!(loaded.len(), DEMO_IMAGES.len());
        let other = DemoImages::write().unwrap();
        assert_ne!(other.dir(), dir);
        drop(images);
        assert!(!dir.exists());
        assert!(other.dir().exists());
    }

    #[test]
    fn demo_images_written_into_a_folder_remove_only_their_own_subfolder() {
        let parent = std::env::temp_dir().join(format!("pf-demo-in-{}", std::process::id()));
        std::fs::create_dir_all(&parent).unwrap();
        std::fs::write(parent.join("keep.txt"), b"mine").unwrap();
        let images = DemoImages::write_in(&parent).unwrap();
        assert_eq!(images.dir(), parent.join("firmware"));
        assert_eq!(
            crate::firmware::image::load_path(&images.dir())
                .unwrap()
                .len(),
            DEMO_IMAGES.len()
        );
        // A second set into the same folder is refused rather than mixed in.
        assert!(DemoImages::write_in(&parent).is_err());
        drop(images);
        assert!(!parent.join("firmware").exists());
        assert!(parent.join("keep.txt").exists());
        let _ = std::fs::remove_dir_all(parent);
    }

    #[test]
    fn the_picker_starts_in_the_configured_folder_else_the_current_one() {
        let cwd = Path::new("/home/me/work");
        assert_eq!(start_dir(None, cwd), cwd);
        let mut cfg = Config::default();
        assert_eq!(start_dir(Some(&cfg), cwd), cwd);
        cfg.firmware.folders = vec!["fw".into(), "/other".into()];
        assert_eq!(start_dir(Some(&cfg), cwd), cwd.join("fw"));
        cfg.firmware.folders = vec!["/srv/kasa".into()];
        assert_eq!(start_dir(Some(&cfg), cwd), Path::new("/srv/kasa"));
    }

    #[test]
    fn only_folders_and_images_are_listed() {
        assert!(listed("firmware", true));
        assert!(listed(
            "hs110v1_us_1.2.3_Build_171016_Rel.100427.bin",
            false
        ));
        assert!(listed("X.BIN", false));
        assert!(!listed("notes.txt", false));
        assert!(!listed("bin", false));
    }

    #[test]
    fn settings_follow_the_config_file() {
        let mut cfg = Config::default();
        cfg.firmware.concurrency = Some(2);
        cfg.firmware
            .max_version
            .insert("HS110".into(), "1.2.6".into());
        let s = FirmwareSettings::from_config(&cfg).unwrap();
        assert_eq!(s.concurrency, 2);
        assert!(s.policy.ceilings.for_model("HS110(US)").is_some());
        let rc = s.runner_config(crate::net::ClientConfig::default(), true);
        assert!(rc.force);
        assert_eq!(rc.concurrency, 2);
        assert_eq!(FirmwareSettings::default().concurrency, 4);
        cfg.firmware
            .max_version
            .insert("HS100".into(), "latest".into());
        assert!(FirmwareSettings::from_config(&cfg).is_err());
    }

    #[test]
    fn the_tui_plan_honours_the_configured_ceiling() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/firmware");
        let plug = crate::app::fixture::Plug::new(
            2,
            "heater",
            "HS110(US)",
            "1.0",
            "1.2.6 Build 200630 Rel.101010",
        );
        let plugs = vec![(crate::app::fixture::ip(2), plug.sysinfo())];
        let free = plan_from(&dir, &plugs, &Policy::default()).unwrap();
        assert_eq!(free[0].verdict().label(), "compatible");
        let capped = Policy::with_ceilings(
            crate::firmware::plan::Ceilings::new([("HS110", "1.2.6")]).unwrap(),
        );
        // With the folder, the best match under the ceiling is no longer the newer image.
        let entries = plan_from(&dir, &plugs, &capped).unwrap();
        assert_ne!(entries[0].versions().1, "1.2.7");
        // With the newer image alone, the plug is blocked.
        let newer = dir.join("hs110v1_us_1.2.7_Build_210310_Rel.113052.bin");
        let entries = plan_from(&newer, &plugs, &capped).unwrap();
        assert_eq!(entries[0].verdict().label(), "above-ceiling");
        let err = plan_from(&dir.join("missing.bin"), &plugs, &capped).unwrap_err();
        assert!(err.contains("missing.bin"), "{err}");
    }

    #[test]
    fn a_downgrade_is_allowed_only_by_a_second_d_and_f_never_covers_it() {
        use crate::app::state::{FirmwareConfirm, Settings};
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/firmware");
        let heater = crate::app::fixture::Plug::new(
            2,
            "heater",
            "HS110(US)",
            "1.0",
            "1.2.6 Build 200630 Rel.101010",
        );
        let plugs = vec![(crate::app::fixture::ip(2), heater.sysinfo())];
        let older = dir.join("hs110v1_us_1.2.3_Build_171016_Rel.100427.bin");
        let entries = plan_from(&older, &plugs, &Policy::default()).unwrap();
        let (mut app, now) = crate::app::fixture::mixed_fleet(Settings::default(), Instant::now());
        app.view.overlay = Overlay::FirmwareConfirm(FirmwareConfirm::new(dir, entries));
        let c = |app: &App| match &app.view.overlay {
            Overlay::FirmwareConfirm(c) => c.clone(),
            _ => panic!("no plan"),
        };
        assert_eq!(c(&app).updating(), 0);
        // F does not apply (nothing needs the override) and would not cover it anyway.
        toggle_force(&mut app, now);
        assert!(!c(&app).force);
        allow_downgrade(&mut app, now);
        assert!(c(&app).downgrade_prompt);
        assert_eq!(c(&app).updating(), 0, "asking is not allowing");
        assert!(app.status().unwrap_or("").contains("1.2.6 → 1.2.3"));
        allow_downgrade(&mut app, now);
        assert!(!c(&app).downgrade_prompt && c(&app).downgrade_allowed());
        assert_eq!(c(&app).updating(), 1);
        assert!(c(&app).entries[0].allow_downgrade);
        allow_downgrade(&mut app, now);
        assert_eq!(c(&app).updating(), 0, "a third D takes it back");
    }

    #[test]
    fn every_verdict_has_a_distinct_glyph_class() {
        let r = || "r".to_owned();
        assert_eq!(verdict_glyph(&Verdict::Compatible), "✓");
        assert_eq!(verdict_glyph(&Verdict::Downgrade), "!");
        assert_eq!(verdict_glyph(&Verdict::ProtocolChange { reason: r() }), "!");
        assert_eq!(verdict_glyph(&Verdict::SameVersion), "=");
        assert_eq!(verdict_glyph(&Verdict::UnknownTarget { reason: r() }), "*");
        assert_eq!(verdict_glyph(&Verdict::WrongTarget { reason: r() }), "✗");
        assert_eq!(verdict_glyph(&Verdict::Corrupt { reason: r() }), "✗");
        assert_eq!(verdict_glyph(&Verdict::AboveCeiling { reason: r() }), "✗");
        assert_eq!(
            verdict_glyph(&Verdict::UnrecognisedContent { reason: r() }),
            "*"
        );
        assert_eq!(
            verdict_glyph(&Verdict::SizeOutOfBounds { reason: r() }),
            "✗"
        );
        assert_eq!(verdict_glyph(&Verdict::Refused { reason: r() }), "✗");
    }
}
