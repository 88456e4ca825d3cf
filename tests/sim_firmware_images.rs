#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The committed demo images (`assets/firmware/*.bin`): each verifies, its file name agrees with
//! its header, it is exactly what `ImageHeader::build` makes, and it is small.

use std::path::Path;

use plugfleet::firmware::header::{self, ImageHeader};
use plugfleet::sim;

fn images() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/firmware");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("assets/firmware")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_image_verifies_and_its_name_agrees() {
    let all = images();
    assert!(all.len() >= 10, "the demo images are committed");
    for (name, bytes) in &all {
        let h = header::verify(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = format!(
            "{}v{}_{}_{}_Build_{}_Rel.{}.bin",
            h.model.to_lowercase(),
            h.hw,
            h.region.to_lowercase(),
            h.version,
            h.build,
            h.rel
        );
        assert_eq!(name, &expected, "file name vs header");
        let (_, offset) = ImageHeader::parse(bytes).unwrap();
        assert_eq!(
            &h.clone().build(&bytes[offset..]),
            bytes,
            "{name}: as ImageHeader::build makes it"
        );
        assert!(
            (4 * 1024..=256 * 1024).contains(&bytes.len()),
            "{name}: small"
        );
    }
}

#[test]
fn every_updatable_profile_has_a_newer_image_and_some_images_are_wrong() {
    let all: Vec<ImageHeader> = images()
        .iter()
        .map(|(_, b)| header::verify(b).unwrap())
        .collect();
    let num = |v: &str| -> Vec<u32> { v.split('.').map(|x| x.parse().unwrap()).collect() };
    for p in sim::profile::all().iter().filter(|p| p.is_legacy()) {
        let current = p.sw_ver().split_whitespace().next().unwrap();
        assert!(
            all.iter()
                .any(|h| h.targets(p.model(), p.hw_ver()) && num(&h.version) > num(current)),
            "no newer image for {} hw {}",
            p.model(),
            p.hw_ver()
        );
    }
    let targets_any = |h: &ImageHeader| {
        sim::profile::all()
            .iter()
            .any(|p| h.targets(p.model(), p.hw_ver()))
    };
    assert!(
        all.iter().filter(|h| !targets_any(h)).count() >= 2,
        "wrong-model/hw images"
    );
    let older = all.iter().filter(|h| {
        sim::profile::all().iter().any(|p| {
            h.targets(p.model(), p.hw_ver())
                && num(&h.version) < num(p.sw_ver().split_whitespace().next().unwrap())
        })
    });
    assert!(older.count() >= 2, "older-version images");
}

#[test]
fn every_demo_image_passes_the_inspector_and_is_planned_for_its_target() {
    use plugfleet::firmware::container::Structure;
    use plugfleet::firmware::image::{FileSource, load_path};
    use plugfleet::firmware::plan::{Verdict, assess};
    use plugfleet::protocol::SysInfo;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/firmware");
    let loaded = load_path(&dir).unwrap();
    assert_eq!(loaded.len(), images().len());
    for img in &loaded {
        assert!(img.refused.is_none(), "{}", img.file_name);
        assert_eq!(img.source, FileSource::Regular, "{}", img.file_name);
        assert_eq!(img.structure, Structure::PlugfleetDemo, "{}", img.file_name);
        let h = img.header.as_ref().unwrap();
        // A plug of the image's own target, on an older version: compatible, every check passed.
        let plug = SysInfo::from_result(&serde_json::json!({
            "model": format!("{}({})", h.model, h.region), "hw_ver": format!("{}.0", h.hw),
            "sw_ver": "0.0.1 Build 100101 Rel.000000", "mac": "50:C7:BF:00:00:01",
            "deviceId": "D1", "alias": "p", "relay_state": 1, "err_code": 0
        }))
        .unwrap();
        let a = assess(img, &plug);
        let ch = a.checks.as_ref().unwrap();
        assert!(ch.size_ok, "{}: {}", img.file_name, ch.summary());
        assert_eq!(ch.sha256, img.sha256);
        assert!(
            matches!(
                a.verdict,
                Verdict::Compatible | Verdict::ProtocolChange { .. }
            ),
            "{}: {:?}",
            img.file_name,
            a.verdict
        );
    }
}
