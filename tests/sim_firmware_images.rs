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
