#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The simulator's list of accepted images (`assets/profiles/images.json`) against the demo
//! images themselves (`assets/firmware/*.bin`): every file is listed with its digest and size,
//! and what the list says each image is for agrees with what the product's header parser reads
//! from it. The two judges are independent; this test is where they must agree.

use std::collections::BTreeSet;
use std::path::Path;

use plugfleet::firmware::header;
use plugfleet::sim::images::{manifest, sha256_hex};

#[test]
fn every_demo_image_is_listed_with_its_digest_and_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/firmware");
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    let listed: BTreeSet<String> = manifest().iter().map(|e| e.file.clone()).collect();
    assert_eq!(
        files, listed,
        "assets/firmware and images.json list the same files"
    );
    for e in manifest() {
        let bytes = std::fs::read(dir.join(&e.file)).unwrap();
        assert_eq!(sha256_hex(&bytes), e.image.sha256, "{}", e.file);
        assert_eq!(bytes.len() as u64, e.size, "{}", e.file);
        let h = header::verify(&bytes).unwrap_or_else(|err| panic!("{}: {err}", e.file));
        assert_eq!(
            e.image.model,
            format!("{}({})", h.model, h.region),
            "{}",
            e.file
        );
        assert_eq!(e.image.hw, h.hw, "{}", e.file);
        assert_eq!(e.image.sw_ver, h.sw_ver(), "{}", e.file);
        for p in plugfleet::sim::profile::all() {
            assert_eq!(
                e.image.targets(p.model(), p.hw_ver()),
                h.targets(p.model(), p.hw_ver()),
                "{} for {}",
                e.file,
                p.name
            );
        }
    }
}
