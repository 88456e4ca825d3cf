#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The headless conventions of issue 14, with the real binary: `--host` takes names and
//! `HOST:PORT`; every discovery flag has a `PLUGFLEET_*` variable (a flag wins over it, and it
//! wins over the config file); `--sweep …/33` says what is wrong; `plugfleet man` prints the
//! manual page, whose variables the README lists. Only loopback addresses and `localhost` are
//! used.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use plugfleet::net::discovery::loopback::{FakePlug, LoopbackFleet, mac_of};
use serde_json::Value;

/// A directory removed on drop.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str) -> TmpDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "pf-headless-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback /24 of our own for this process and call: 127.<a>.<b>.0.
fn subnet() -> (u8, u8) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let k = NEXT.fetch_add(1, Ordering::Relaxed);
    let v = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(k * 7919);
    (40 + (v % 20) as u8, ((v >> 8) % 256) as u8)
}

fn addr(net: (u8, u8), last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, net.0, net.1, last)
}

/// `plugfleet ARGS` with the variables `env` and no inherited `PLUGFLEET_*` one, its log in
/// `logs`; off the async runtime so the fleet keeps answering.
async fn run(args: &[&str], env: &[(&str, &str)], logs: &Path) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let logs = logs.to_path_buf();
    tokio::task::spawn_blocking(move || run_blocking(&args, &env, &logs))
        .await
        .unwrap()
}

fn run_blocking(args: &[String], env: &[(String, String)], logs: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plugfleet"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PLUGFLEET_") {
            cmd.env_remove(k);
        }
    }
    // No config file of the user's: the default location is inside the test's folder.
    cmd.env("XDG_CONFIG_HOME", logs.join("config"));
    cmd.env("PLUGFLEET_LOG_DIR", logs);
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    cmd.output().unwrap()
}

/// The MACs of the `discover --json` lines, and their IPs.
fn found(out: &Output) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .map(|o| {
            (
                o["mac"].as_str().unwrap().to_owned(),
                o["ip"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_takes_localhost_and_host_port() {
    let dir = TmpDir::new("localhost");
    let fleet = LoopbackFleet::start(vec![FakePlug::legacy(Ipv4Addr::LOCALHOST, 1)])
        .await
        .unwrap();
    let (port, tdp) = (fleet.port().to_string(), fleet.tdp_port().to_string());
    // The port comes with the host: no --port.
    let host = format!("localhost:{port}");
    let out = run(
        &[
            "discover",
            "--json",
            "--host",
            &host,
            "--tdp-port",
            &tdp,
            "--timeout",
            "2",
        ],
        &[],
        &dir.0,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        found(&out),
        vec![(mac_of(1), "127.0.0.1".to_owned())],
        "{out:?}"
    );
    // The same with an address and a port.
    let host = format!("127.0.0.1:{port}");
    let out = run(
        &["discover", "--json", "--host", &host, "--tdp-port", &tdp],
        &[("PLUGFLEET_TIMEOUT", "2")],
        &dir.0,
    )
    .await;
    fleet.shutdown().await;
    assert_eq!(found(&out), vec![(mac_of(1), "127.0.0.1".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_discovery_flag_has_a_variable_and_the_flag_wins() {
    let dir = TmpDir::new("env");
    let net = subnet();
    let fleet = LoopbackFleet::start(vec![
        FakePlug::legacy(addr(net, 1), 1),
        FakePlug::legacy(addr(net, 2), 2),
    ])
    .await
    .unwrap();
    let (port, tdp) = (fleet.port().to_string(), fleet.tdp_port().to_string());
    let both = vec![
        (mac_of(1), addr(net, 1).to_string()),
        (mac_of(2), addr(net, 2).to_string()),
    ];
    let disc = ["discover", "--json", "--tdp-port", tdp.as_str()];
    let hosts = format!("{},{}", addr(net, 1), addr(net, 2));
    let sweep = format!("127.{}.{}.0/30", net.0, net.1);
    for (what, env) in [
        (
            "PLUGFLEET_HOST (a comma-separated list)",
            vec![("PLUGFLEET_HOST", hosts.as_str())],
        ),
        ("PLUGFLEET_SWEEP", vec![("PLUGFLEET_SWEEP", sweep.as_str())]),
        (
            "PLUGFLEET_TARGET",
            vec![("PLUGFLEET_TARGET", "127.255.255.255")],
        ),
    ] {
        let mut env = env;
        env.extend([
            ("PLUGFLEET_PORT", port.as_str()),
            ("PLUGFLEET_TIMEOUT", "1"),
        ]);
        let out = run(&disc, &env, &dir.0).await;
        assert!(out.status.success(), "{what}: {out:?}");
        assert_eq!(found(&out), both, "{what}: {out:?}");
    }

    // A flag wins over its variable: the wrong port and a host where nothing answers in the
    // environment, the right ones on the command line.
    let one = addr(net, 1).to_string();
    let mut a = disc.to_vec();
    a.extend(["--host", one.as_str(), "--port", port.as_str()]);
    let nobody = addr(net, 9).to_string();
    let out = run(
        &a,
        &[
            ("PLUGFLEET_PORT", "9"),
            ("PLUGFLEET_HOST", nobody.as_str()),
            ("PLUGFLEET_TIMEOUT", "1"),
        ],
        &dir.0,
    )
    .await;
    assert_eq!(found(&out), vec![both[0].clone()], "{out:?}");

    // A variable wins over the config file.
    let cfg = dir.0.join("plugfleet.toml");
    std::fs::write(
        &cfg,
        format!("[discovery]\nhosts = [\"{nobody}\"]\nport = 9\ntimeout = 1.0\n"),
    )
    .unwrap();
    let out = run(
        &disc,
        &[
            ("PLUGFLEET_CONFIG", cfg.to_str().unwrap()),
            ("PLUGFLEET_PORT", port.as_str()),
            ("PLUGFLEET_HOST", one.as_str()),
        ],
        &dir.0,
    )
    .await;
    fleet.shutdown().await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(found(&out), vec![both[0].clone()], "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_in_flags_or_variables_exit_2_and_say_why() {
    let dir = TmpDir::new("bad");
    // None of these sends anything: they are refused before discovery starts.
    for (args, env, expect) in [
        (
            vec!["discover", "--sweep", "127.0.0.0/33"],
            vec![],
            "prefix length must be ≤ 32",
        ),
        (
            vec!["discover"],
            vec![("PLUGFLEET_SWEEP", "127.0.0.0/33")],
            "prefix length must be ≤ 32",
        ),
        (
            vec!["discover", "--sweep", "127.0.0.0"],
            vec![],
            "no prefix length",
        ),
        (
            vec!["discover", "--host", "127.0.0.1:10000,127.0.0.2:10001"],
            vec![],
            "different ports",
        ),
        (
            vec!["status", "--host", "127.0.0.1:10000", "--port", "10001"],
            vec![],
            "one run probes one port",
        ),
        (
            vec!["discover"],
            vec![
                ("PLUGFLEET_PORT", "10001"),
                ("PLUGFLEET_HOST", "127.0.0.1:10000"),
            ],
            "--port is 10001",
        ),
        (vec!["discover", "--host", "[::1]:9999"], vec![], "IPv4"),
        (vec!["discover", "--host", "127.0.0.1:0"], vec![], "port 0"),
        (
            vec!["discover", "--host", "not a host"],
            vec![],
            "neither an IPv4 address nor a host name",
        ),
        (
            vec!["config", "path"],
            vec![("PLUGFLEET_READ_ONLY", "banana")],
            "invalid value 'banana' for '--read-only'",
        ),
        (
            vec!["discover", "--host", "127.0.0.1"],
            vec![("PLUGFLEET_TIMEOUT", "0")],
            "--timeout",
        ),
    ] {
        let a: Vec<&str> = args.clone();
        let out = run(&a, &env, &dir.0).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?} {env:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} {env:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_log_level_and_read_only_variables_are_read() {
    let dir = TmpDir::new("globals");
    let cfg = dir.0.join("elsewhere.toml");
    let out = run(
        &["config", "path"],
        &[("PLUGFLEET_CONFIG", cfg.to_str().unwrap())],
        &dir.0,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        cfg.display().to_string()
    );
    let out = run(
        &["config", "path"],
        &[("PLUGFLEET_LOG_LEVEL", "no=such=level")],
        &dir.0,
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad --log-level"), "{stderr}");
    for v in ["1", "true", "yes", "on", "0", "false", "no", "off"] {
        let out = run(&["config", "path"], &[("PLUGFLEET_READ_ONLY", v)], &dir.0).await;
        assert!(out.status.success(), "PLUGFLEET_READ_ONLY={v}: {out:?}");
    }
}

/// The variable names on the manual page (bold `PLUGFLEET_…` words).
fn page_variables(page: &str) -> Vec<String> {
    let mut out: Vec<String> = page
        .split("\\fB")
        .skip(1)
        .filter_map(|s| s.split("\\fR").next())
        .filter(|w| w.starts_with("PLUGFLEET_") || *w == "NO_COLOR")
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn man_prints_the_pages_and_the_readme_lists_every_variable() {
    let dir = TmpDir::new("man");
    let out = run(&["man"], &[], &dir.0).await;
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains("\n.TH plugfleet 1 "), "{page}");
    for section in [
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH ENVIRONMENT",
        ".SH \"SEE ALSO\"",
    ] {
        assert!(page.contains(section), "{section} missing");
    }
    let vars = page_variables(&page);
    for v in [
        "PLUGFLEET_HOST",
        "PLUGFLEET_TARGET",
        "PLUGFLEET_SWEEP",
        "PLUGFLEET_PORT",
        "PLUGFLEET_TIMEOUT",
        "PLUGFLEET_INTERVAL",
        "PLUGFLEET_READ_ONLY",
    ] {
        assert!(vars.iter().any(|x| x == v), "{v} not on the page: {vars:?}");
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for v in &vars {
        assert!(
            readme.contains(&format!("`{v}`")),
            "README.md does not list `{v}`"
        );
    }
    // The variables of `--help` are the page's: both come from the same definitions.
    let help = run(&["--help"], &[], &dir.0).await;
    let help = String::from_utf8(help.stdout).unwrap();
    for v in vars
        .iter()
        .filter(|v| v.starts_with("PLUGFLEET_") && *v != "PLUGFLEET_LOG_DIR")
    {
        assert!(help.contains(&format!("[env: {v}")), "{v} not in --help");
    }

    let out = run(&["man", "status"], &[], &dir.0).await;
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains("\n.TH plugfleet-status 1 "), "{page}");
    assert!(page.contains("\\-\\-metrics"), "status's own flags: {page}");

    let out = run(&["man", "nope"], &[], &dir.0).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no command `nope`") && stderr.contains("status"),
        "{stderr}"
    );
}
