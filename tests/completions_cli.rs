#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `plugfleet completions`: the real binary prints a script, and a reader that goes away early
//! (`plugfleet completions bash | head`) is no reason to panic.

use std::process::{Command, Stdio};

#[test]
fn completions_are_printed() {
    let out = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
        .args(["completions", "bash"])
        .env("PLUGFLEET_LOG_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("_plugfleet()"));
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    // Found by QA: `plugfleet completions bash | head -2` panicked in clap_complete (exit 101).
    for shell in ["bash", "zsh", "fish"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(["completions", shell])
            .env("PLUGFLEET_LOG_DIR", std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the first byte is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{shell}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{shell}: {stderr}");
    }
}
