#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Image names, inspection and matching images to plugs.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use plugfleet::firmware::container::{self, Structure};
use plugfleet::firmware::header::ImageHeader;
#[cfg(unix)]
use plugfleet::firmware::image::FileSource;
use plugfleet::firmware::image::{ImageError, ImageInfo, NameTarget, Version, load_path};
use plugfleet::firmware::limits::{KnownHashes, KnownImage, SizeBounds, SizeLimits};
use plugfleet::firmware::plan::{
    Policy, Verdict, allow_downgrades, assess, assess_with, best_match, plan, plan_in,
};
use plugfleet::protocol::SysInfo;
use serde_json::json;

fn name(n: &str) -> NameTarget {
    NameTarget::parse(n).unwrap()
}

fn v(s: &str) -> Option<Version> {
    Version::parse(s)
}

#[test]
fn names_from_protocol_6_5() {
    let n = name("hs110v1_eu_1.1.4_Build_170417_Rel.145118_2017-05-26_18.06.53.bin");
    assert_eq!(n.model.as_deref(), Some("HS110"));
    assert_eq!(n.hw_major.as_deref(), Some("1"));
    assert_eq!(n.region.as_deref(), Some("EU"));
    assert_eq!(n.version, v("1.1.4 Build 170417 Rel.145118"));
    assert!(n.is_specific());

    let n = name("hs100v1_eu_1.2.5_Build_171213_Rel.101415_2017_1516879250467.bin");
    assert_eq!(n.model.as_deref(), Some("HS100"));
    assert_eq!(n.hw_major.as_deref(), Some("1"));
    assert_eq!(n.region.as_deref(), Some("EU"));
    assert_eq!(n.version, v("1.2.5 Build 171213 Rel.101415"));

    let n = name("KS200M_FCC_1.0.12_Build_240507_Rel.143458_2024-05-07_14.37.42_1718767325443.bin");
    assert_eq!(n.model.as_deref(), Some("KS200M"));
    assert_eq!(n.hw_major, None);
    assert_eq!(n.region, None);
    assert_eq!(n.cert_region.as_deref(), Some("FCC"));
    assert_eq!(n.version, v("1.0.12 Build 240507 Rel.143458"));
    assert!(!n.is_specific());

    let n = name("KLM430v2_FCC_KL430_1.0.12_Build_240227_Rel.114253.bin");
    assert_eq!(n.model, None, "platform code, not a model");
    assert_eq!(n.model_token, "KLM430v2");
    assert_eq!(n.hw_major.as_deref(), Some("2"));
    assert_eq!(n.cert_region.as_deref(), Some("FCC"));
    assert_eq!(n.version, v("1.0.12 Build 240227 Rel.114253"));

    let n = name("KLM500_UN_1.0.9_Build_230412_Rel.091532.bin");
    assert_eq!(n.model, None);
    assert_eq!(n.cert_region.as_deref(), Some("UN"));
    assert_eq!(n.version.unwrap().short(), "1.0.9");

    let n = name("smartBulb_FCC_1.8.11_Build_191113_Rel.105336__1574839035801.bin");
    assert_eq!(n.model, None);
    assert_eq!(n.model_token, "smartBulb");
    assert_eq!(n.version, v("1.8.11 Build 191113 Rel.105336"));
}

#[test]
fn more_real_style_names() {
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let cases: &[Case] = &[
        (
            "hs110v1_us_1.2.3_Build_171016_Rel.100427.bin",
            Some("HS110"),
            Some("1"),
            Some("US"),
            Some("1.2.3 Build 171016 Rel.100427"),
        ),
        (
            "HS110V4_UK_1.0.4_Build_191111_Rel.143500.bin",
            Some("HS110"),
            Some("4"),
            Some("UK"),
            Some("1.0.4 Build 191111 Rel.143500"),
        ),
        (
            "hs105v1_us_1.5.6_Build_191118_Rel.140307.bin",
            Some("HS105"),
            Some("1"),
            Some("US"),
            Some("1.5.6 Build 191118 Rel.140307"),
        ),
        (
            "hs300v2_us_1.1.2_Build_241220_Rel.182349.bin",
            Some("HS300"),
            Some("2"),
            Some("US"),
            Some("1.1.2 Build 241220 Rel.182349"),
        ),
        (
            "kp115v1_eu_1.0.16_Build_210205_Rel.163735.bin",
            Some("KP115"),
            Some("1"),
            Some("EU"),
            Some("1.0.16 Build 210205 Rel.163735"),
        ),
        (
            "ep10v1_us_1.1.1_Build_250908_Rel.101112.bin",
            Some("EP10"),
            Some("1"),
            Some("US"),
            Some("1.1.1 Build 250908 Rel.101112"),
        ),
        (
            "kp125mv1_us_1.1.3_Build_230801_Rel.093011.bin",
            Some("KP125M"),
            Some("1"),
            Some("US"),
            Some("1.1.3 Build 230801 Rel.093011"),
        ),
        (
            "hs100v01_au_1.0.2.bin",
            Some("HS100"),
            Some("1"),
            Some("AU"),
            Some("1.0.2"),
        ),
        (
            "hs110_us_1.2.3.bin",
            Some("HS110"),
            None,
            Some("US"),
            Some("1.2.3"),
        ),
        ("hs110v1_us.bin", Some("HS110"), Some("1"), Some("US"), None),
        ("firmware.bin", None, None, None, None),
        ("latest", None, None, None, None),
        (
            "hs110v1_xx_1.2.3.BIN",
            Some("HS110"),
            Some("1"),
            None,
            Some("1.2.3"),
        ),
        ("v1_us_1.2.3.bin", None, None, Some("US"), Some("1.2.3")),
        (
            "HS1100000v1_us_1.0.0.bin",
            None,
            Some("1"),
            Some("US"),
            Some("1.0.0"),
        ),
    ];
    for (file, model, hw, region, version) in cases {
        let n = name(file);
        assert_eq!(n.model.as_deref(), *model, "{file}");
        assert_eq!(n.hw_major.as_deref(), *hw, "{file}");
        assert_eq!(n.region.as_deref(), *region, "{file}");
        assert_eq!(n.version, version.and_then(Version::parse), "{file}");
    }
    assert!(NameTarget::parse("").is_none());
    // Untrusted names never panic.
    for weird in [
        "_",
        "__",
        "v",
        "V9",
        "1.2.3",
        "é_ü_1.2.3",
        "hs110v99999999999999999_us",
    ] {
        let _ = NameTarget::parse(weird);
    }
}

fn plug(model: &str, hw: &str, sw: &str) -> SysInfo {
    SysInfo::from_result(&json!({
        "model": model, "hw_ver": hw, "sw_ver": sw, "mac": "50:C7:BF:00:00:01",
        "deviceId": "D1", "alias": "p", "relay_state": 1, "err_code": 0
    }))
    .unwrap()
}

/// A U-Boot uImage of `total` bytes (a recognised structure; the header CRC is right).
fn uimage(total: usize) -> Vec<u8> {
    let mut h = vec![0u8; container::UIMAGE_LEN];
    h[0..4].copy_from_slice(&container::UIMAGE_MAGIC.to_be_bytes());
    h[12..16].copy_from_slice(&((total - 64) as u32).to_be_bytes());
    h[32..37].copy_from_slice(b"Linux");
    let crc = container::uimage_header_crc(&h);
    h[4..8].copy_from_slice(&crc.to_be_bytes());
    h.resize(total, 0x5A);
    h
}

/// An image that passes the content checks (a 256 KiB uImage), judged by its name.
fn named(file: &str) -> ImageInfo {
    ImageInfo::from_bytes(Path::new(file), uimage(256 * 1024))
}

/// 256 KiB of bytes with no recognised structure.
fn noise(file: &str) -> ImageInfo {
    let mut x: u32 = 0x1234_5678;
    let bytes: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    ImageInfo::from_bytes(Path::new(file), bytes)
}

fn header(model: &str, hw: &str, region: &str, version: &str) -> ImageHeader {
    ImageHeader::new(model, hw, region, version, "171016", "100427")
}

fn with_header(file: &str, h: ImageHeader) -> ImageInfo {
    ImageInfo::from_bytes(Path::new(file), h.build(&[9u8; 500]))
}

const OLD: &str = "1.1.1 Build 160725 Rel.164033";

#[test]
fn verdicts_from_names() {
    let img = named("hs110v1_us_1.2.3_Build_171016_Rel.100427.bin");
    let a = assess(&img, &plug("HS110(US)", "1.0", OLD));
    assert_eq!(a.verdict, Verdict::Compatible);
    assert_eq!(a.to, v("1.2.3 Build 171016 Rel.100427"));
    assert!(a.notes.iter().any(|n| n.contains("file name only")));

    let wrong = |p: SysInfo, needle: &str| {
        let a = assess(&img, &p);
        match &a.verdict {
            Verdict::WrongTarget { reason } => assert!(reason.contains(needle), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(a.verdict.is_blocked());
        assert!(!a.verdict.allows_update(true), "blocked even with --force");
    };
    wrong(plug("HS110(EU)", "1.0", OLD), "region US");
    wrong(plug("HS110(US)", "4.0", OLD), "hardware 1.x");
    wrong(plug("HS100(US)", "1.0", OLD), "HS110");

    let a = assess(
        &img,
        &plug("HS110(US)", "1.0", "1.2.3 Build 171016 Rel.100427"),
    );
    assert_eq!(a.verdict, Verdict::SameVersion);
    assert!(!a.verdict.allows_update(false));
    assert!(a.verdict.allows_update(true));

    let a = assess(
        &img,
        &plug("HS110(US)", "1.0", "1.5.6 Build 191118 Rel.140307"),
    );
    assert_eq!(a.verdict, Verdict::Downgrade);
    assert!(a.downgrade && a.verdict.is_warning());
    assert!(
        !a.verdict.allows_update(false),
        "a downgrade needs its consent"
    );
    assert!(
        !a.verdict.allows_update(true),
        "--force does not cover a downgrade"
    );
    assert!(a.verdict.allows_update_with(false, true));

    // Same numbers, newer build: an update.
    let a = assess(
        &img,
        &plug("HS110(US)", "1.0", "1.2.3 Build 170101 Rel.000000"),
    );
    assert_eq!(a.verdict, Verdict::Compatible);

    // A name without build date compares the numbers only.
    let short = named("hs110v1_us_1.2.3.bin");
    let a = assess(
        &short,
        &plug("HS110(US)", "1.0", "1.2.3 Build 171016 Rel.100427"),
    );
    assert_eq!(a.verdict, Verdict::SameVersion);
}

#[test]
fn unknown_targets_need_an_override() {
    for (file, model, needle) in [
        (
            "KS200M_FCC_1.0.12_Build_240507_Rel.143458_2024-05-07_14.37.42_1718767325443.bin",
            "KS200M(US)",
            "no hardware version",
        ),
        (
            "smartBulb_FCC_1.8.11_Build_191113_Rel.105336__1574839035801.bin",
            "KL130(EU)",
            "platform code",
        ),
        (
            "KLM430v2_FCC_KL430_1.0.12_Build_240227_Rel.114253.bin",
            "KL430(US)",
            "platform code",
        ),
        ("firmware.bin", "HS110(US)", "platform code"),
        ("hs110v1_us.bin", "HS110(US)", "no version"),
    ] {
        let a = assess(&named(file), &plug(model, "1.0", OLD));
        match &a.verdict {
            Verdict::UnknownTarget { reason } => {
                assert!(reason.contains(needle), "{file}: {reason}")
            }
            other => panic!("{file}: {other:?}"),
        }
        assert!(!a.verdict.allows_update(false), "{file}");
        assert!(a.verdict.allows_update(true), "{file}");
    }
    // An unreadable current version.
    let a = assess(
        &named("hs110v1_us_1.2.3.bin"),
        &plug("HS110(US)", "1.0", "garbage"),
    );
    assert!(matches!(a.verdict, Verdict::UnknownTarget { .. }));
}

#[test]
fn known_protocol_changing_versions_warn() {
    let img = named("hs300v2_us_1.1.2_Build_241220_Rel.182349.bin");
    let a = assess(
        &img,
        &plug("HS300(US)", "2.0", "1.0.21 Build 210524 Rel.161309"),
    );
    match &a.verdict {
        Verdict::ProtocolChange { reason } => assert!(reason.contains("KLAP"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(a.verdict.is_warning() && a.verdict.allows_update(false));
    // Newer than the known change: still warned.
    let img = named("hs300v2_us_1.2.0_Build_250101_Rel.000000.bin");
    assert!(matches!(
        assess(&img, &plug("HS300(US)", "2.0", "1.0.21")).verdict,
        Verdict::ProtocolChange { .. }
    ));
    // Older than it: fine.
    let img = named("hs300v2_us_1.0.22_Build_220101_Rel.000000.bin");
    assert_eq!(
        assess(&img, &plug("HS300(US)", "2.0", "1.0.21")).verdict,
        Verdict::Compatible
    );
    // HS100(UK) hw 4.1 → 1.1.0; hw 4.0 is not listed.
    let img = named("hs100v4_uk_1.1.0_Build_201016_Rel.175121.bin");
    assert!(matches!(
        assess(
            &img,
            &plug("HS100(UK)", "4.1", "1.0.2 Build 200108 Rel.092016")
        )
        .verdict,
        Verdict::ProtocolChange { .. }
    ));
    assert_eq!(
        assess(
            &img,
            &plug("HS100(UK)", "4.0", "1.0.2 Build 200108 Rel.092016")
        )
        .verdict,
        Verdict::Compatible
    );
    // EP10(US) lists no hardware: any.
    let img = named("ep10v1_us_1.1.1_Build_250908_Rel.101112.bin");
    assert!(matches!(
        assess(
            &img,
            &plug("EP10(US)", "1.0", "1.0.2 Build 200915 Rel.085940")
        )
        .verdict,
        Verdict::ProtocolChange { .. }
    ));
}

#[test]
fn header_is_authoritative() {
    let img = with_header(
        "hs110v1_us_1.2.3_Build_171016_Rel.100427.bin",
        header("HS110", "1", "US", "1.2.3"),
    );
    assert!(img.header.is_some());
    assert_eq!(img.size, img.bytes.len() as u64);
    assert_eq!(img.sha256.len(), 64);
    let a = assess(&img, &plug("HS110(US)", "1.0", OLD));
    assert_eq!(a.verdict, Verdict::Compatible);
    assert_eq!(a.to, v("1.2.3 Build 171016 Rel.100427"));
    assert!(a.notes.is_empty());
    assert!(img.describe().contains("(header)"));

    // The header wins over a misleading name.
    let liar = with_header("hs100v1_eu_9.9.9.bin", header("HS110", "1", "US", "1.2.3"));
    let a = assess(&liar, &plug("HS110(US)", "1.0", OLD));
    assert_eq!(a.verdict, Verdict::Compatible);
    assert!(a.notes.iter().any(|n| n.contains("header wins")));
    assert!(matches!(
        assess(&liar, &plug("HS100(EU)", "1.0", OLD)).verdict,
        Verdict::WrongTarget { .. }
    ));
    // A region-less plug model accepts any region from the header.
    assert_eq!(
        assess(&img, &plug("HS110", "1.0", OLD)).verdict,
        Verdict::Compatible
    );
    // Wrong hardware per header.
    assert!(matches!(
        assess(&img, &plug("HS110(US)", "4.0", OLD)).verdict,
        Verdict::WrongTarget { .. }
    ));
}

#[test]
fn corrupt_or_truncated_images_are_blocked() {
    let full = header("HS110", "1", "US", "1.2.3").build(&[9u8; 500]);
    let truncated = ImageInfo::from_bytes(
        Path::new("hs110v1_us_1.2.3.bin"),
        full[..full.len() - 10].to_vec(),
    );
    assert!(truncated.header.is_none());
    assert!(truncated.header_error.is_some());
    let a = assess(&truncated, &plug("HS110(US)", "1.0", OLD));
    assert!(matches!(a.verdict, Verdict::Corrupt { .. }));
    assert!(!a.verdict.allows_update(true));

    let mut flipped = full.clone();
    let n = flipped.len();
    flipped[n - 1] ^= 1;
    let img = ImageInfo::from_bytes(Path::new("x.bin"), flipped);
    assert!(
        assess(&img, &plug("HS110(US)", "1.0", OLD))
            .verdict
            .is_blocked()
    );
}

#[test]
fn a_folder_gives_each_plug_its_best_match() {
    let images: Vec<Arc<ImageInfo>> = [
        "hs110v1_us_1.2.3_Build_171016_Rel.100427.bin",
        "hs110v1_us_1.2.5_Build_171206_Rel.085954.bin",
        "hs110v1_eu_1.2.6_Build_180101_Rel.000000.bin",
        "hs110v4_us_1.0.9_Build_200101_Rel.000000.bin",
        "hs100v1_us_1.3.0_Build_190101_Rel.000000.bin",
        "smartBulb_FCC_1.8.11_Build_191113_Rel.105336__1574839035801.bin",
    ]
    .iter()
    .map(|f| Arc::new(named(f)))
    .collect();
    let ip = |n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n));
    let plugs = vec![
        (ip(2), plug("HS110(US)", "1.0", OLD)),
        (
            ip(3),
            plug("HS110(US)", "4.0", "1.0.4 Build 191111 Rel.143500"),
        ),
        (
            ip(4),
            plug("HS100(US)", "1.0", "1.2.5 Build 171213 Rel.101523"),
        ),
        (
            ip(5),
            plug("HS105(US)", "1.0", "1.5.6 Build 191118 Rel.140307"),
        ),
        (ip(6), plug("HS110(EU)", "1.0", OLD)),
        (
            ip(7),
            plug("HS110(US)", "1.0", "1.2.5 Build 171206 Rel.085954"),
        ),
    ];
    let p = plan(&plugs, &images);
    let pick = |i: usize| p[i].image.as_ref().unwrap().file_name.clone();
    assert_eq!(pick(0), "hs110v1_us_1.2.5_Build_171206_Rel.085954.bin");
    assert_eq!(p[0].verdict(), &Verdict::Compatible);
    assert_eq!(p[0].versions(), ("1.1.1".to_owned(), "1.2.5".to_owned()));
    assert!(p[0].will_update(false));
    assert_eq!(pick(1), "hs110v4_us_1.0.9_Build_200101_Rel.000000.bin");
    assert_eq!(pick(2), "hs100v1_us_1.3.0_Build_190101_Rel.000000.bin");
    // Nothing fits an HS105: the unknown-target image ranks above the wrong ones.
    assert!(matches!(p[3].verdict(), Verdict::UnknownTarget { .. }));
    assert!(!p[3].will_update(false));
    assert_eq!(pick(4), "hs110v1_eu_1.2.6_Build_180101_Rel.000000.bin");
    // Already on the newest: same version beats a downgrade.
    assert_eq!(p[5].verdict(), &Verdict::SameVersion);
    assert_eq!(pick(5), "hs110v1_us_1.2.5_Build_171206_Rel.085954.bin");

    let only_wrong = vec![Arc::new(named("hs100v1_us_1.3.0.bin"))];
    let (_, a) = best_match(&only_wrong, &plugs[0].1).unwrap();
    assert!(a.verdict.is_blocked());
    assert!(plan(&plugs, &[]).iter().all(|e| !e.will_update(true)));
    // The plan serialises for `--json` and the TUI.
    let j = serde_json::to_value(&p[0]).unwrap();
    assert_eq!(j["assessment"]["verdict"], "compatible");
    assert_eq!(j["image"], "hs110v1_us_1.2.5_Build_171206_Rel.085954.bin");
}

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "plugfleet-fw-plan-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn loading_files_and_folders() {
    let dir = temp_dir();
    let img = header("HS110", "1", "US", "1.2.3").build(b"payload");
    std::fs::write(
        dir.join("hs110v1_us_1.2.3_Build_171016_Rel.100427.bin"),
        &img,
    )
    .unwrap();
    std::fs::write(dir.join("hs100v1_us_1.0.0.BIN"), b"plain bytes").unwrap();
    std::fs::write(dir.join("notes.txt"), b"ignored").unwrap();
    std::fs::create_dir_all(dir.join("sub.bin")).unwrap();
    let all = load_path(&dir).unwrap();
    let names: Vec<_> = all.iter().map(|i| i.file_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hs100v1_us_1.0.0.BIN",
            "hs110v1_us_1.2.3_Build_171016_Rel.100427.bin"
        ]
    );
    assert!(all[1].header.is_some());
    assert!(all[0].header.is_none() && all[0].header_error.is_none());
    let one = load_path(&dir.join("hs110v1_us_1.2.3_Build_171016_Rel.100427.bin")).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].size, img.len() as u64);

    std::fs::write(dir.join("empty.bin"), b"").unwrap();
    assert!(matches!(
        ImageInfo::load(&dir.join("empty.bin")),
        Err(ImageError::Empty(_))
    ));
    assert!(matches!(
        load_path(&dir.join("missing.bin")),
        Err(ImageError::Io { .. })
    ));
    let empty = temp_dir();
    assert!(matches!(load_path(&empty), Err(ImageError::NoImages(_))));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(empty);
}

#[test]
fn ceilings_block_versions_beyond_them_and_steer_the_best_match() {
    use plugfleet::firmware::plan::{Ceilings, plan_with};
    let c = Ceilings::new([("HS300(US)", "1.0.21"), ("HS110", "1.2.5")]).unwrap();
    assert!(Ceilings::new([("HS100", "latest")]).is_err());
    let images: Vec<Arc<ImageInfo>> = [
        "hs300v2_us_1.0.21_Build_220101_Rel.000000.bin",
        "hs300v2_us_1.1.2_Build_241220_Rel.182349.bin",
        "hs110v1_us_1.2.6_Build_180101_Rel.000000.bin",
    ]
    .iter()
    .map(|f| Arc::new(named(f)))
    .collect();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let plugs = vec![
        (
            ip,
            plug("HS300(US)", "2.0", "1.0.12 Build 220121 Rel.175814"),
        ),
        (ip, plug("HS110(US)", "1.0", OLD)),
    ];
    let p = plan_with(&plugs, &images, &c);
    // The strip gets the last version below the protocol change instead of the newest.
    assert_eq!(p[0].verdict(), &Verdict::Compatible);
    assert_eq!(
        p[0].image.as_ref().unwrap().file_name,
        "hs300v2_us_1.0.21_Build_220101_Rel.000000.bin"
    );
    // Only a version beyond the base-model ceiling: blocked, even with --force.
    match p[1].verdict() {
        Verdict::AboveCeiling { reason } => assert!(reason.contains("1.2.5"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(!p[1].will_update(true));
    // Without ceilings the newest wins (with its protocol-change warning).
    let p = plan(&plugs, &images);
    assert!(matches!(p[0].verdict(), Verdict::Compatible));
    assert_eq!(
        p[0].image.as_ref().unwrap().file_name,
        "hs300v2_us_1.0.21_Build_220101_Rel.000000.bin",
        "compatible ranks above a protocol change"
    );
}

const PLUG_SW: &str = "1.2.6 Build 200630 Rel.101010";

fn hs110_us() -> SysInfo {
    plug("HS110(US)", "1.0", PLUG_SW)
}

#[test]
fn a_six_byte_text_file_named_like_an_image_is_never_planned() {
    let dir = temp_dir();
    let name = "hs110v1_us_9.9.9_Build_240101_Rel.000001.bin";
    std::fs::write(dir.join(name), b"hello\n").unwrap();
    let images: Vec<Arc<ImageInfo>> = load_path(&dir).unwrap().into_iter().map(Arc::new).collect();
    assert_eq!(images[0].structure, Structure::Unrecognised);
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let p = plan(&[(ip, hs110_us())], &images);
    match p[0].verdict() {
        Verdict::SizeOutOfBounds { reason } => {
            assert!(reason.contains("6 bytes"), "{reason}");
            assert!(reason.contains("unrecognised content"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!p[0].will_update(false));
    assert!(!p[0].will_update(true), "not even with --force");
    let ch = p[0].assessment.checks.as_ref().unwrap();
    assert!(!ch.size_ok);
    assert!(
        ch.summary().contains("unrecognised content"),
        "{}",
        ch.summary()
    );
    assert!(ch.summary().contains("OUTSIDE"), "{}", ch.summary());

    // Next to a valid image of a lower version, the valid one is chosen.
    let valid = header("HS110", "1", "US", "1.2.9").build(&[3u8; 4000]);
    std::fs::write(
        dir.join("hs110v1_us_1.2.9_Build_171016_Rel.100427.bin"),
        valid,
    )
    .unwrap();
    let images: Vec<Arc<ImageInfo>> = load_path(&dir).unwrap().into_iter().map(Arc::new).collect();
    assert_eq!(images.len(), 2);
    let p = plan(&[(ip, hs110_us())], &images);
    assert_eq!(p[0].verdict(), &Verdict::Compatible);
    assert_eq!(
        p[0].image.as_ref().unwrap().file_name,
        "hs110v1_us_1.2.9_Build_171016_Rel.100427.bin"
    );
    // Padded to a plausible size, the text is still unrecognised content: --force only.
    let mut padded = b"hello\n".to_vec();
    padded.resize(300 * 1024, b' ');
    let a = assess(&ImageInfo::from_bytes(Path::new(name), padded), &hs110_us());
    assert!(
        matches!(a.verdict, Verdict::UnrecognisedContent { .. }),
        "{a:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn symlinks_are_followed_only_to_regular_files_inside_the_folder() {
    use std::os::unix::fs::symlink;
    let dir = temp_dir();
    let outside = temp_dir();
    // A stand-in for /etc/passwd — even a valid image is refused when the link leaves the folder.
    let secret = outside.join("passwd");
    std::fs::write(
        &secret,
        header("HS110", "1", "US", "1.2.9").build(&[1u8; 4000]),
    )
    .unwrap();
    let planted = dir.join("hs110v1_us_9.9.9_Build_240101_Rel.000001.bin");
    symlink(&secret, &planted).unwrap();
    // A link inside the folder to a regular file is fine and shown with its target.
    std::fs::create_dir_all(dir.join("store")).unwrap();
    let real = dir.join("store").join("real.img");
    std::fs::write(
        &real,
        header("HS110", "1", "US", "1.2.8").build(&[2u8; 4000]),
    )
    .unwrap();
    symlink(
        "store/real.img",
        dir.join("hs110v1_us_1.2.8_Build_171016_Rel.100427.bin"),
    )
    .unwrap();
    // …but not to a folder, and not dangling.
    symlink("store", dir.join("hs110v1_us_1.2.7.bin")).unwrap();
    symlink("nowhere", dir.join("hs110v1_us_1.2.5.bin")).unwrap();

    let images: Vec<Arc<ImageInfo>> = load_path(&dir).unwrap().into_iter().map(Arc::new).collect();
    let by = |n: &str| images.iter().find(|i| i.file_name.contains(n)).unwrap();
    let secret_real = std::fs::canonicalize(&secret).unwrap();
    let refused = by("9.9.9").refused.clone().unwrap();
    assert!(
        refused.contains(&secret_real.display().to_string()),
        "{refused}"
    );
    assert!(refused.contains("outside the folder"), "{refused}");
    assert!(by("9.9.9").bytes.is_empty(), "the target was never read");
    assert!(by("9.9.9").describe().contains("REFUSED"));
    assert!(by("1.2.7").refused.as_ref().unwrap().contains("directory"));
    assert!(
        by("1.2.5")
            .refused
            .as_ref()
            .unwrap()
            .contains("cannot be resolved")
    );
    let inside = by("1.2.8");
    assert!(inside.refused.is_none());
    match &inside.source {
        FileSource::Symlink { target } => {
            assert_eq!(target, &std::fs::canonicalize(&real).unwrap())
        }
        other => panic!("{other:?}"),
    }

    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // The planted link alone: refused, blocked even with --force, its target in the plan.
    let only = vec![by("9.9.9").clone()];
    let p = plan(&[(ip, hs110_us())], &only);
    match p[0].verdict() {
        Verdict::Refused { reason } => assert!(reason.contains("passwd"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(!p[0].will_update(true));
    assert!(
        p[0].assessment
            .checks
            .as_ref()
            .unwrap()
            .file
            .starts_with("refused")
    );
    // The whole folder: the link inside wins.
    let p = plan(&[(ip, hs110_us())], &images);
    assert_eq!(p[0].verdict(), &Verdict::Compatible);
    assert!(
        p[0].assessment
            .checks
            .as_ref()
            .unwrap()
            .file
            .contains("symlink →")
    );
    // Named directly, the planted link is an error naming its target.
    let err = ImageInfo::load(&planted).unwrap_err().to_string();
    assert!(err.contains("passwd") && err.contains("outside"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(outside);
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_are_refused_without_being_opened() {
    let dir = temp_dir();
    let fifo = dir.join("hs110v1_us_1.2.9.bin");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opening a FIFO for reading would block until a writer came: this returns at once.
    let images = load_path(&dir).unwrap();
    assert!(
        images[0].refused.as_ref().unwrap().contains("FIFO"),
        "{images:?}"
    );
    assert!(matches!(
        ImageInfo::load(&fifo),
        Err(ImageError::Special { kind: "FIFO", .. })
    ));
    let e = ImageInfo::load(Path::new("/dev/zero")).unwrap_err();
    assert!(e.to_string().contains("character device"), "{e}");
    // A symlink in the folder to a device is refused too (and /dev is outside anyway).
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.bin")).unwrap();
    let images = load_path(&dir).unwrap();
    assert!(images.iter().all(|i| i.refused.is_some()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unrecognised_content_needs_the_override_even_when_its_hash_is_known() {
    let img = noise("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin");
    assert_eq!(img.structure, Structure::Unrecognised);
    let a = assess(&img, &hs110_us());
    match &a.verdict {
        Verdict::UnrecognisedContent { reason } => assert!(reason.contains("uImage"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(!a.verdict.allows_update(false));
    assert!(a.verdict.allows_update(true), "--force lets it through");
    assert!(a.verdict.explain().contains("--force"));
    assert!(a.checks.as_ref().unwrap().known.is_none());

    let known = Policy {
        known: KnownHashes::new([KnownImage {
            model: "HS110(US)".into(),
            hw: "1".into(),
            sha256: img.sha256.to_uppercase(),
            note: Some("from the cloud's fw_list".into()),
        }])
        .unwrap(),
        ..Policy::default()
    };
    let a = assess_with(&img, &hs110_us(), &known);
    assert!(
        matches!(a.verdict, Verdict::UnrecognisedContent { .. }),
        "known marks, it does not stand in for a structure: {a:?}"
    );
    let ch = a.checks.as_ref().unwrap();
    assert_eq!(ch.known.as_deref(), Some("from the cloud's fw_list"));
    assert!(ch.summary().contains("KNOWN"));
    assert!(a.notes.iter().any(|n| n.contains("allowlist")));
    // The allowlist is per model and hardware.
    let other_hw = assess_with(&img, &plug("HS110(US)", "4.0", PLUG_SW), &known);
    assert!(other_hw.checks.unwrap().known.is_none());
    // A known recognised image ranks above an unknown twin of the same version.
    let a = named("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin");
    let mut twin_bytes = uimage(256 * 1024);
    twin_bytes[1000] ^= 1;
    let b = ImageInfo::from_bytes(
        Path::new("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin"),
        twin_bytes,
    );
    let known_b = Policy {
        known: KnownHashes::new([KnownImage {
            model: "HS110".into(),
            hw: "1.0".into(),
            sha256: b.sha256.clone(),
            note: None,
        }])
        .unwrap(),
        ..Policy::default()
    };
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let images = vec![Arc::new(a), Arc::new(b.clone())];
    let p = plan_in(&[(ip, hs110_us())], &images, &known_b);
    assert_eq!(p[0].verdict(), &Verdict::Compatible);
    assert_eq!(p[0].image.as_ref().unwrap().sha256, b.sha256);
    assert_eq!(
        p[0].assessment.checks.as_ref().unwrap().known.as_deref(),
        Some("listed")
    );
}

#[test]
fn every_recognised_structure_is_accepted() {
    let mut v1 = vec![0u8; 0x200];
    v1[0] = 1;
    v1[4..24].copy_from_slice(b"TP-LINK Technologies");
    let mut rtos = vec![0u8; 0x94];
    rtos[0..4].copy_from_slice(&[0x00, 0x14, 0x2F, 0xC0]);
    rtos[20..24].copy_from_slice(b"IMG0");
    let mut sq = vec![0u8; 96];
    sq[0..4].copy_from_slice(b"hsqs");
    sq[28] = 4;
    sq[40..48].copy_from_slice(&(200u64 * 1024).to_le_bytes());
    let mut lz = vec![0x5D, 0x00, 0x00, 0x80, 0x00];
    lz.extend(u64::MAX.to_le_bytes());
    for (what, mut bytes) in [
        ("TP-Link v1", v1),
        ("TP-Link RTOS", rtos),
        ("uImage", uimage(1024)),
        ("squashfs", sq),
        ("LZMA", lz),
    ] {
        bytes.resize(256 * 1024, 0x11);
        let img = ImageInfo::from_bytes(
            Path::new("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin"),
            bytes,
        );
        assert!(
            img.structure.describe().contains(what),
            "{what}: {:?}",
            img.structure
        );
        let a = assess(&img, &hs110_us());
        assert_eq!(a.verdict, Verdict::Compatible, "{what}");
        assert!(a.checks.unwrap().size_ok);
    }
}

#[test]
fn size_bounds_come_from_the_family_and_the_config() {
    // A recognised uImage of 64 KiB is too small for an HS110 (Linux family: 128 KiB and up).
    let small = ImageInfo::from_bytes(
        Path::new("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin"),
        uimage(64 * 1024),
    );
    let a = assess(&small, &hs110_us());
    match &a.verdict {
        Verdict::SizeOutOfBounds { reason } => {
            assert!(reason.contains("below the minimum 128 KiB"), "{reason}");
            assert!(reason.contains("size_limits"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!a.verdict.allows_update(true));
    let relaxed = Policy {
        size_limits: SizeLimits::new([(
            "HS110",
            SizeBounds {
                min_bytes: 1024,
                max_bytes: 1 << 20,
            },
        )])
        .unwrap(),
        ..Policy::default()
    };
    let a = assess_with(&small, &hs110_us(), &relaxed);
    assert_eq!(a.verdict, Verdict::Compatible);
    let b = a.checks.unwrap().size_bounds.unwrap();
    assert!(b.source.contains("config"), "{}", b.source);
    // Above the maximum.
    let big = ImageInfo::from_bytes(
        Path::new("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin"),
        uimage(2 << 20),
    );
    assert!(matches!(
        assess_with(&big, &hs110_us(), &relaxed).verdict,
        Verdict::SizeOutOfBounds { .. }
    ));
    // Demo images have their own bounds.
    let demo = with_header("x.bin", header("HS110", "1", "US", "1.2.9"));
    let ch = assess(&demo, &hs110_us()).checks.unwrap();
    assert!(ch.size_ok);
    assert!(ch.size_bounds.unwrap().source.contains("demo"));
    assert_eq!(ch.structure, Structure::PlugfleetDemo);
}

#[test]
fn a_downgrade_needs_its_own_consent_never_just_force() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let older = vec![Arc::new(named(
        "hs110v1_us_1.2.3_Build_171016_Rel.100427.bin",
    ))];
    let mut p = plan(&[(ip, hs110_us())], &older);
    assert_eq!(p[0].verdict(), &Verdict::Downgrade);
    assert!(!p[0].will_update(false));
    assert!(
        !p[0].will_update(true),
        "--force does not allow a downgrade"
    );
    assert!(p[0].awaits_downgrade_consent(false));
    assert_eq!(allow_downgrades(&mut p, false), 1);
    assert!(p[0].allow_downgrade && p[0].will_update(false));
    assert!(!p[0].awaits_downgrade_consent(false));
    let j = serde_json::to_value(&p[0]).unwrap();
    assert_eq!(j["allow_downgrade"], true);
    assert_eq!(j["assessment"]["downgrade"], true);

    // An unrecognised downgrade needs both the override and the consent.
    let odd = vec![Arc::new(noise(
        "hs110v1_us_1.2.3_Build_171016_Rel.100427.bin",
    ))];
    let mut p = plan(&[(ip, hs110_us())], &odd);
    assert!(matches!(
        p[0].verdict(),
        Verdict::UnrecognisedContent { .. }
    ));
    assert!(p[0].assessment.downgrade);
    assert!(!p[0].will_update(true), "--force alone");
    assert!(
        !p[0].awaits_downgrade_consent(false),
        "the override is missing too"
    );
    assert_eq!(allow_downgrades(&mut p, true), 1);
    assert!(!p[0].will_update(false), "the consent alone");
    assert!(p[0].will_update(true));
    // Consent changes nothing for an update or a blocked plug.
    let newer = vec![Arc::new(named(
        "hs110v1_us_1.2.9_Build_220101_Rel.101010.bin",
    ))];
    let mut p = plan(&[(ip, hs110_us())], &newer);
    assert_eq!(allow_downgrades(&mut p, false), 0);
    assert!(p[0].will_update(false));
    let wrong = vec![Arc::new(named("hs100v1_us_1.2.3.bin"))];
    let mut p = plan(&[(ip, hs110_us())], &wrong);
    assert_eq!(allow_downgrades(&mut p, true), 0);
    assert!(!p[0].will_update(true));
}

#[test]
fn the_plan_serialises_what_was_checked() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let img = vec![Arc::new(with_header(
        "hs110v1_us_1.2.9.bin",
        header("HS110", "1", "US", "1.2.9"),
    ))];
    let p = plan(&[(ip, hs110_us())], &img);
    let j = serde_json::to_value(&p[0]).unwrap();
    let ch = &j["assessment"]["checks"];
    assert_eq!(ch["file"], "in memory");
    assert_eq!(ch["size_ok"], true);
    assert_eq!(ch["structure"]["kind"], "plugfleet-demo");
    assert_eq!(ch["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(ch["known"], serde_json::Value::Null);
    assert!(ch["size_bounds"]["max_bytes"].as_u64().unwrap() > 0);
}
