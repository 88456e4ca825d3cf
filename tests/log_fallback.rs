#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A log file that cannot be created is no reason to stop: every command runs without one,
//! after one warning on stderr (the real binary). Tests run as root, whom permission bits do not
//! stop, so the unwritable directory is a path under a regular file.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "plugfleet-log-fallback-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn plugfleet(log_dir: &std::path::Path, home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plugfleet"))
        .args(args)
        .env("PLUGFLEET_LOG_DIR", log_dir)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn an_unwritable_log_dir_gives_one_warning_and_the_command_still_runs() {
    let home = temp_dir("unwritable");
    let file = home.join("file");
    std::fs::write(&file, b"a regular file, not a directory").unwrap();
    let log_dir = file.join("sub");
    let out = plugfleet(&log_dir, &home, &["config", "path"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        home.join("config/plugfleet/config.toml")
            .display()
            .to_string()
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("plugfleet: warning: cannot create the log directory"),
        "{stderr}"
    );
    assert!(stderr.contains(&log_dir.display().to_string()), "{stderr}");
    assert!(stderr.contains("running without a log file"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A failing command keeps its own exit status and message, after the one warning.
    let bad = home.join("bad.toml");
    std::fs::write(&bad, "[poll]\ninterval = 0\n").unwrap();
    let out = plugfleet(
        &log_dir,
        &home,
        &["--config", bad.to_str().unwrap(), "config", "check"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("plugfleet: warning:"), "{stderr}");
    assert!(lines[1].contains("poll.interval"), "{stderr}");
    let _ = std::fs::remove_dir_all(home);
}

#[cfg(target_os = "linux")]
#[test]
fn sys_as_log_dir_does_not_panic() {
    let home = temp_dir("sys");
    let out = plugfleet(std::path::Path::new("/sys"), &home, &["config", "path"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("cannot open the log file /sys/plugfleet.log"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn a_writable_log_dir_gets_the_file_and_no_warning() {
    let home = temp_dir("writable");
    let log_dir = home.join("logs/deeper");
    let out = plugfleet(&log_dir, &home, &["config", "path"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(log_dir.join("plugfleet.log").is_file());
    let _ = std::fs::remove_dir_all(home);
}
