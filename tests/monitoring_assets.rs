#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `assets/monitoring/` uses only what the exporter serves. The real exporter
//! (`plugfleet status --metrics 127.0.0.1:0`) runs against a small simulated fleet on loopback
//! (a plug with the 28 kW glitch, a six-outlet strip, a KP115, a plug without a meter) and is
//! scraped over HTTP; then every `plugfleet_*` name in the Prometheus rules, their unit tests
//! and the Grafana dashboard must be a served metric, every label they match on, group by or
//! print must be a served label (or one Prometheus adds), and every recording rule the
//! dashboard uses must be defined in the rules.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plugfleet::sim::{self, FaultKind, FleetSpec};

/// Labels Prometheus itself attaches to every scraped series.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/monitoring")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(assets().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let code = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (code, body.to_owned())
}

/// Label names of a `{k="v",…}` block starting right after `{`, and the rest after `}`.
/// Values may hold escaped quotes; matchers may use `=`, `!=`, `=~`, `!~`.
fn label_block(s: &str) -> (Vec<String>, &str) {
    let mut keys = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([' ', ',', '\n']);
        if let Some(r) = rest.strip_prefix('}') {
            return (keys, r);
        }
        let Some(op) = rest.find(['=', '!']) else {
            return (keys, "");
        };
        keys.push(rest[..op].trim().to_owned());
        rest = rest[op..].trim_start_matches(['=', '!', '~']).trim_start();
        let quote = match rest.chars().next() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => return (keys, ""),
        };
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest.char_indices().skip(1) {
            match c {
                '\\' if !escaped => escaped = true,
                c if c == quote && !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { return (keys, "") };
        rest = &rest[end + 1..];
    }
}

/// The exposition's metric names and, per name, the label names its samples carry.
fn served(body: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let end = line.find(['{', ' ']).unwrap();
        let labels = out.entry(line[..end].to_owned()).or_default();
        if let Some(r) = line[end..].strip_prefix('{') {
            labels.extend(label_block(r).0);
        }
    }
    out
}

/// Every `plugfleet_*` metric name in `text` (not part of a longer word), with the label names
/// of a `{…}` selector right after it (empty when there is none).
fn used_metrics(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("plugfleet_").map(|i| i + from) {
        from = i + "plugfleet_".len();
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || b"_:-.".contains(&bytes[i - 1])) {
            continue;
        }
        let len = text[i..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len() - i);
        let name = &text[i..i + len];
        if name == "plugfleet_" {
            continue; // prose: `plugfleet_*`
        }
        let after = &text[i + len..];
        let labels = match after.strip_prefix('{') {
            Some(r) => label_block(r).0,
            None => Vec::new(),
        };
        out.push((name.to_owned(), labels));
    }
    out
}

/// Label names in `by (…)`, `without (…)`, `on (…)`, `ignoring (…)`, `group_left (…)`,
/// `group_right (…)`, `$labels.X` and Grafana's `{{X}}` legends.
fn used_labels(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kw in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        let mut from = 0;
        while let Some(i) = text[from..].find(kw).map(|i| i + from) {
            from = i + kw.len();
            let before_ok = i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric();
            let rest = text[from..].trim_start();
            if !before_ok || !rest.starts_with('(') {
                continue;
            }
            let Some(close) = rest.find(')') else {
                continue;
            };
            out.extend(
                rest[1..close]
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    for open in ["$labels.", "{{"] {
        let mut from = 0;
        while let Some(i) = text[from..].find(open).map(|i| i + from) {
            from = i + open.len();
            let word: String = text[from..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `{{ $labels.x }}`, `{{ $value }}`, `{{ with … }}`, `{{ . }}` are Go templates,
            // handled by `$labels.` above.
            if !word.is_empty() && !["with", "end", "if", "range"].contains(&word.as_str()) {
                out.insert(word);
            }
        }
    }
    out
}

/// Runs the exporter against a simulated fleet and returns one full scrape.
fn scrape_the_exporter() -> String {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pid = (std::process::id() % 200) as u8;
    let base = Ipv4Addr::new(127, 206, pid.wrapping_mul(7), 2);
    let profiles = [
        "hs110-us-hw1",
        "hs300-us-hw2",
        "kp115-us-hw1",
        "hs100-us-hw2",
    ];
    let fleet = rt
        .block_on(sim::start(FleetSpec {
            profiles: profiles.iter().map(|s| s.to_string()).collect(),
            faults: vec![(base, FaultKind::Bogus28kw)],
            ..FleetSpec::on_free_port(base, profiles.len())
        }))
        .expect("fleet starts");
    let logs = std::env::temp_dir().join(format!("pf-monitoring-{}", std::process::id()));
    let mut args = vec![
        "status".to_string(),
        "--metrics".into(),
        "127.0.0.1:0".into(),
        "--interval".into(),
        "1".into(),
        "--port".into(),
        fleet.port().to_string(),
        "--tdp-port".into(),
        fleet.tdp_port().to_string(),
        "--timeout".into(),
        "3".into(),
    ];
    for p in fleet.plugs() {
        args.extend(["--host".into(), p.ip.to_string()]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
        .args(&args)
        .env("PLUGFLEET_LOG_DIR", &logs)
        .env("XDG_CONFIG_HOME", logs.join("config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().strip_prefix("metrics at http://").expect(&line);
    let addr: SocketAddr = url.strip_suffix("/metrics").unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback());
    // Until every device is in and a second round has counted readings.
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (code, body) = http_get(addr, "/metrics");
        assert_eq!(code, 200);
        let ready = body.contains("plugfleet_devices 4")
            && body.contains("plugfleet_power_watts{")
            && body
                .lines()
                .filter(|l| l.starts_with("plugfleet_readings_total{"))
                .any(|l| l.ends_with(" 2") || l.ends_with(" 3"));
        if ready {
            break body;
        }
        assert!(Instant::now() < deadline, "metrics never ready:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    rt.block_on(fleet.shutdown());
    let _ = std::fs::remove_dir_all(logs);
    body
}

#[test]
fn the_rules_and_the_dashboard_use_only_what_the_exporter_serves() {
    let body = scrape_the_exporter();
    let served = served(&body);
    let all_labels: BTreeSet<String> = served
        .values()
        .flatten()
        .cloned()
        .chain(TARGET_LABELS.map(String::from))
        .collect();

    // Prometheus conventions: base units (joules, seconds), a last-seen timestamp, and the
    // identity labels only on the info series, every other series keyed by its stable id
    // (`mac`, plus `child_id` for an outlet), so renaming or re-addressing a plug starts no
    // new series.
    for name in [
        "plugfleet_energy_joules_total",
        "plugfleet_device_last_seen_timestamp_seconds",
        "plugfleet_device_info",
        "plugfleet_outlet_info",
    ] {
        assert!(served.contains_key(name), "{name} not served");
    }
    assert!(
        !served
            .keys()
            .any(|k| k.contains("kwh") || k.contains("_age")),
        "{:?}",
        served.keys().collect::<Vec<_>>()
    );
    for (name, labels) in &served {
        if name.ends_with("_info") {
            continue;
        }
        for id in [
            "ip",
            "alias",
            "name",
            "model",
            "hw_ver",
            "sw_ver",
            "device_id",
            "outlet",
            "outlet_alias",
        ] {
            assert!(
                !labels.contains(id),
                "{name} carries the identity label {id}"
            );
        }
        if name.starts_with("plugfleet_device_")
            || name.starts_with("plugfleet_relay")
            || name.starts_with("plugfleet_power")
        {
            assert!(labels.contains("mac"), "{name} is not keyed by mac");
        }
    }
    assert!(
        served["plugfleet_power_watts"].contains("child_id"),
        "outlets keyed by child id"
    );

    // The README's metric table lists exactly what is served, with the labels served.
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut documented = BTreeSet::new();
    for row in readme
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("| `plugfleet_"))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`');
        let have = served
            .get(name)
            .unwrap_or_else(|| panic!("README documents {name}, which is not served"));
        // `[, label]` is a label only some series have (a strip outlet's): not required here.
        let required: String = {
            let mut out = String::new();
            let mut depth = 0;
            for c in cells[3].chars() {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    c if depth == 0 => out.push(c),
                    _ => {}
                }
            }
            out
        };
        for l in required.split(['`', ',', ' ']).filter(|l| !l.is_empty()) {
            assert!(
                have.contains(l),
                "README: {name} has no label {l} ({have:?})"
            );
        }
        documented.insert(name.to_owned());
    }
    for name in served.keys() {
        assert!(
            documented.contains(name),
            "{name} is served but not in the README's table"
        );
    }

    let rules = read("prometheus/plugfleet-rules.yml");
    let rule_tests = read("prometheus/plugfleet-rules.test.yml");
    let dashboard = read("grafana/plugfleet-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 5, "{} panels", panels.len());
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            t["expr"]
                .as_str()
                .expect("a target with an expr")
                .to_owned()
        })
        .chain(
            dash["annotations"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a["expr"].as_str().map(str::to_owned)),
        )
        .collect();
    let legends: String = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["legendFormat"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join(" ");
    let dash_text = format!("{}\n{legends}", exprs.join("\n"));

    let mut used = BTreeSet::new();
    for (file, text) in [
        ("prometheus/plugfleet-rules.yml", rules.as_str()),
        ("prometheus/plugfleet-rules.test.yml", rule_tests.as_str()),
        ("grafana/plugfleet-dashboard.json", dash_text.as_str()),
    ] {
        let metrics = used_metrics(text);
        assert!(!metrics.is_empty(), "{file} uses no plugfleet_* metric");
        for (name, labels) in metrics {
            let Some(have) = served.get(&name) else {
                panic!(
                    "{file} uses {name}, which the exporter does not serve; it serves {:?}",
                    served.keys().collect::<Vec<_>>()
                );
            };
            for l in labels {
                assert!(
                    have.contains(&l) || TARGET_LABELS.contains(&l.as_str()),
                    "{file}: {name} has no label `{l}` (it has {have:?})"
                );
            }
            used.insert(name);
        }
        for l in used_labels(text) {
            assert!(
                all_labels.contains(&l),
                "{file}: label `{l}` is on no served series ({all_labels:?})"
            );
        }
    }
    // What the brief asks of the assets is there: bogus readings, devices down, counter resets,
    // versions, power and energy.
    for name in [
        "plugfleet_reading_verdict",
        "plugfleet_flagged_readings_total",
        "plugfleet_device_up",
        "plugfleet_device_info",
        "plugfleet_power_watts",
        "plugfleet_energy_joules_total",
    ] {
        assert!(used.contains(name), "{name} is used nowhere");
    }
    for alert in [
        "PlugfleetBogusReading",
        "PlugfleetDeviceDown",
        "PlugfleetEnergyCounterReset",
        "PlugfleetFirmwareDrift",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}")),
            "{alert} missing"
        );
    }

    // The recording rules the dashboard uses are defined.
    let records: BTreeSet<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record:"))
        .map(str::trim)
        .collect();
    assert!(
        records.iter().any(|r| r.contains("energy_kwh")),
        "{records:?}"
    );
    for e in &exprs {
        let mut from = 0;
        while let Some(i) = e[from..].find("plugfleet:").map(|i| i + from) {
            let len = e[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(e.len() - i);
            let rec = &e[i..i + len];
            assert!(
                records.contains(rec),
                "the dashboard uses {rec}, not defined"
            );
            from = i + len;
        }
    }
}

#[test]
fn the_systemd_unit_runs_the_headless_exporter() {
    let unit = read("systemd/plugfleet-exporter.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert!(words[0].ends_with("/plugfleet"), "{exec}");
    let at = words.iter().position(|w| *w == "status").expect("status");
    assert!(
        words[at..].windows(2).any(|w| w == ["--metrics", ":9184"]),
        "{exec}"
    );
    assert!(
        words[at..].windows(2).any(|w| w == ["--interval", "10"]),
        "{exec}"
    );
    // The flags parse as the real command line would (the binary path aside).
    let out = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
        .args(&words[1..])
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{exec}: {out:?}");
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(unit.contains(section), "{section}");
    }
}

#[test]
fn the_extractors_find_names_and_labels() {
    let m = used_metrics(
        "x plugfleet_a_total{verdict=\"bo\\\"gus\", mac!~\"A.*\"} and plugfleet_b \
         my_plugfleet_c plugfleet:rec plugfleet_*",
    );
    assert_eq!(
        m,
        vec![
            (
                "plugfleet_a_total".to_owned(),
                vec!["verdict".to_owned(), "mac".to_owned()]
            ),
            ("plugfleet_b".to_owned(), vec![]),
        ]
    );
    let l = used_labels("sum by (job, alias) (x) * on (mac) group_left () y {{outlet}} $labels.ip");
    assert_eq!(
        l.into_iter().collect::<Vec<_>>(),
        ["alias", "ip", "job", "mac", "outlet"]
    );
    let s = served("# HELP x\nplugfleet_x{mac=\"a\",alias=\"q\\\"}\"} 1\nplugfleet_y 2\n");
    assert_eq!(s["plugfleet_x"], ["alias", "mac"].map(String::from).into());
    assert!(s["plugfleet_y"].is_empty());
}

/// The rules' own unit tests, with Prometheus's `promtool` when it is installed (it is on the
/// project's machines; elsewhere the test says it did not run them).
#[test]
fn the_rules_pass_promtool_when_it_is_installed() {
    let dir = assets().join("prometheus");
    let Ok(out) = Command::new("promtool")
        .args(["test", "rules", "plugfleet-rules.test.yml"])
        .current_dir(&dir)
        .output()
    else {
        eprintln!("promtool not installed: the rule unit tests were not run");
        return;
    };
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let check = Command::new("promtool")
        .args(["check", "rules", "plugfleet-rules.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
}
