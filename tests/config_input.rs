#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile config files: a FIFO, a device and a directory are refused at once with exit status 2
//! and one clear message (the real binary), and the loader never panics on arbitrary bytes or
//! TOML (a proptest; `PROPTEST_CASES=100000 cargo test --test config_input` runs it longer).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use plugfleet::config::Config;
use proptest::prelude::*;

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "plugfleet-config-input-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs plugfleet; a run that has not ended after 30 s is killed and fails the test (a hang is
/// the bug under test, so the test itself must not hang).
fn plugfleet(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
        .args(args)
        .env("PLUGFLEET_LOG_DIR", dir.join("log"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "plugfleet {args:?} hung; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
fn mkfifo(p: &Path) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

/// Exit 2, one line on stderr naming the file and the cause, nothing on stdout.
fn assert_refused(out: &Output, path: &Path, cause: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
}

#[cfg(unix)]
#[test]
fn a_fifo_as_config_file_is_refused_at_once_by_every_command() {
    let dir = temp_dir();
    let fifo = dir.join("pipe.toml");
    mkfifo(&fifo);
    let f = fifo.to_str().unwrap();
    let out = plugfleet(&dir, &["--config", f, "config", "check"]);
    assert_refused(&out, &fifo, "a FIFO");
    // Every command reads the file before contacting a plug (127.0.0.1: loopback, and the
    // run ends before anything is sent).
    let out = plugfleet(&dir, &["--config", f, "status", "--host", "127.0.0.1"]);
    assert_refused(&out, &fifo, "a FIFO");
    let out = plugfleet(
        &dir,
        &[
            "--config",
            f,
            "update",
            "--firmware",
            "/nonexistent",
            "--host",
            "127.0.0.1",
        ],
    );
    assert_refused(&out, &fifo, "a FIFO");
    // The same FIFO at the default location.
    let default = dir.join("config/plugfleet/config.toml");
    mkfifo(&default);
    let out = plugfleet(&dir, &["config", "check"]);
    assert_refused(&out, &default, "a FIFO");
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn dev_zero_and_a_directory_are_refused_without_reading() {
    let dir = temp_dir();
    let out = plugfleet(&dir, &["--config", "/dev/zero", "config", "check"]);
    assert_refused(&out, Path::new("/dev/zero"), "a character device");
    let out = plugfleet(
        &dir,
        &["--config", dir.to_str().unwrap(), "config", "check"],
    );
    assert_refused(&out, &dir, "a directory");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_or_bad_file_exits_2_with_the_cause_once() {
    let dir = temp_dir();
    let missing = dir.join("missing.toml");
    let out = plugfleet(
        &dir,
        &["--config", missing.to_str().unwrap(), "config", "check"],
    );
    assert_refused(&out, &missing, "No such file");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[poll]\ninterval = 0\n").unwrap();
    let out = plugfleet(
        &dir,
        &["--config", bad.to_str().unwrap(), "config", "check"],
    );
    assert_refused(&out, &bad, "poll.interval");
    let good = dir.join("good.toml");
    std::fs::write(&good, "[poll]\ninterval = 1.5\n").unwrap();
    let out = plugfleet(
        &dir,
        &["--config", good.to_str().unwrap(), "config", "check"],
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{}: ok", good.display())
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Cases from `PROPTEST_CASES` (default 256: quick in CI; raise it by hand).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// A TOML-shaped line: the file's real sections and keys with values of every type and range,
/// and some plain garbage.
fn toml_line() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "[discovery]",
        "[poll]",
        "[safety]",
        "[firmware]",
        "[firmware.max_version]",
        "[ratings.\"HS110(US)\"]",
        "[names]",
        "[[poll]]",
        "[discovery.x]",
    ])
    .prop_map(str::to_owned);
    let key = prop::sample::select(vec![
        "targets",
        "hosts",
        "sweeps",
        "port",
        "timeout",
        "interval",
        "concurrency",
        "read_only",
        "folders",
        "max_version",
        "amps",
        "watts",
        "volts",
        "\"B0:95:75:00:00:01\"",
        "\"HS300(US)\"",
        "a.b",
        "\"\"",
    ]);
    let value = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        prop::sample::select(vec![
            "nan",
            "inf",
            "-inf",
            "0",
            "-0.0",
            "1e309",
            "true",
            "[]",
            "{}",
            "[[]]",
            "\"127.0.0.1\"",
            "[\"127.255.255.255\"]",
            "[\"10.0.0.0/33\"]",
            "\"1.2.3\"",
            "\"\\u0000\"",
            "\"\u{202e}x\"",
            "'''",
            "\"\"\"\n\"\"\"",
            "1979-05-27T07:32:00Z",
            "{ a = 1 }",
            "[1, \"a\"]",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,20}".prop_map(|s| format!("\"{}\"", s.replace(['\\', '"'], ""))),
    ];
    prop_oneof![
        section,
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        "\\PC{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_loader(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = std::env::temp_dir().join(format!("plugfleet-config-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:016x}.toml", {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            h.finish()
        }));
        std::fs::write(&path, &bytes).unwrap();
        let r = Config::load(&path, true);
        let _ = std::fs::remove_file(&path);
        if let Err(e) = r {
            prop_assert!(e.to_string().contains(&path.display().to_string()), "{}", e);
        }
    }

    #[test]
    fn arbitrary_toml_never_panics_and_what_loads_round_trips(lines in prop::collection::vec(toml_line(), 0..12)) {
        let text = lines.join("\n");
        let path = Path::new("/fuzz/config.toml");
        match Config::parse(&text, path) {
            Ok(cfg) => {
                let again = toml::to_string(&cfg).expect("a loaded config serialises");
                prop_assert_eq!(Config::parse(&again, path).expect("and parses back"), cfg);
            }
            Err(e) => prop_assert!(e.to_string().contains("/fuzz/config.toml"), "{}", e),
        }
    }
}

#[test]
fn check_without_a_file_says_there_is_none_instead_of_ok() {
    let dir = temp_dir();
    let out = plugfleet(&dir, &["config", "check"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no config file"), "{stdout}");
    assert!(!stdout.contains(": ok"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}
