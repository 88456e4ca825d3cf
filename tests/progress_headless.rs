#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Headless progress (`indicatif`) is drawn on stderr only when stderr is a terminal: in a
//! pseudo-terminal `discover --sweep` shows its sweep bar; piped, not one byte of it appears
//! (no bar, no carriage return, no escape sequence) — the tests and every script run piped.

#[path = "common/pty.rs"]
mod pty;

use std::net::Ipv4Addr;
use std::process::Command;

use plugfleet::net::discovery::loopback::{FakePlug, LoopbackFleet};

fn net() -> (u8, u8) {
    let v = std::process::id().wrapping_mul(2_654_435_761);
    (64 + (v % 128) as u8, ((v >> 8) % 256) as u8)
}

fn discover_args(net: (u8, u8), fleet: &LoopbackFleet) -> Vec<String> {
    [
        "discover",
        "--sweep",
        &format!("127.{}.{}.0/28", net.0, net.1),
        "--port",
        &fleet.port().to_string(),
        "--tdp-port",
        &fleet.tdp_port().to_string(),
        "--timeout",
        "1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[test]
fn the_sweep_shows_progress_on_a_terminal_and_nothing_of_it_when_piped() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = net();
    let fleet = rt
        .block_on(LoopbackFleet::start(vec![
            FakePlug::legacy(Ipv4Addr::new(127, n.0, n.1, 2), 1),
            FakePlug::legacy(Ipv4Addr::new(127, n.0, n.1, 3), 2),
        ]))
        .unwrap();
    let args = discover_args(n, &fleet);

    // Piped: the table and the summary, nothing of a progress bar.
    let out = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
        .args(&args)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("127.") && stderr.contains("2 devices"),
        "{stdout}{stderr}"
    );
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        for sign in ["sweeping", "addresses", "\r", "\u{1b}[", "█"] {
            assert!(!text.contains(sign), "{name} has {sign:?}:\n{text}");
        }
    }

    // On a terminal: the sweep bar is drawn (then cleared), and the table is intact.
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut tui = pty::Tui::start(&arg_refs);
    let status = tui.wait_exit();
    assert!(status.success(), "{status:?}");
    let raw = String::from_utf8_lossy(&tui.raw).into_owned();
    assert!(
        raw.contains("sweeping") && raw.contains("/14 addresses"),
        "no sweep progress on a terminal:\n{raw}"
    );
    assert!(tui.screen().contains("2 devices"), "{}", tui.screen());
    rt.block_on(fleet.shutdown());
}
