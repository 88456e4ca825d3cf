#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Metrics against the simulator: a snapshot built from a `status` pass over a simulated fleet
//! (a 28 kW plug, a milli-unit plug, a six-outlet strip, a plug without a meter, one alias full
//! of quotes, backslashes and a newline) rendered, parsed back with a small exposition parser and
//! checked against the readings; then served on 127.0.0.1:0 and fetched over a raw TCP HTTP/1.1
//! request (404 elsewhere, updates seen, stops on the token).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use plugfleet::cmd::args::TargetArgs;
use plugfleet::cmd::status;
use plugfleet::fleet::identity::Names;
use plugfleet::fleet::model::Fleet as Model;
use plugfleet::metrics::{self, MetricsSnapshot};
use plugfleet::net::{Client, ClientConfig};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A distinct 127.202.N.2 base per test (and per process, mostly).
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 202, pid.wrapping_mul(13).wrapping_add(n * 3), 2)
}

const PROFILES: [&str; 4] = [
    "hs110-us-hw1",
    "kp115-us-hw1",
    "hs300-us-hw2",
    "hs105-us-hw1",
];
const HOSTILE_ALIAS: &str = "evil \"quote\" back\\slash\nsecond line";

async fn fleet() -> Fleet {
    let b = base();
    let spec = FleetSpec {
        profiles: PROFILES.iter().map(|s| s.to_string()).collect(),
        faults: vec![(b, FaultKind::Bogus28kw)],
        ..FleetSpec::on_free_port(b, PROFILES.len())
    };
    let fleet = sim::start(spec).await.expect("fleet starts");
    // A device-supplied string with everything the exposition format must escape.
    let p = &fleet.plugs()[1];
    Client::new(
        p.addr(),
        ClientConfig::with_timeout(p.port, Duration::from_secs(3)),
    )
    .set_alias(HOSTILE_ALIAS, None)
    .await
    .unwrap();
    fleet
}

/// One `status` round (discovery pass + poll round) into a fresh fleet model.
async fn snapshot(fleet: &Fleet, names: &Names) -> Model {
    let net = TargetArgs {
        hosts: fleet.plugs().iter().map(|p| p.addr()).collect(),
        port: fleet.port(),
        timeout: Duration::from_secs(3),
        ..TargetArgs::default()
    };
    let cfg = plugfleet::cmd::args::discovery_config(&net).unwrap();
    let client = ClientConfig::with_timeout(net.port, net.timeout);
    let mut model = Model::new(std::time::Instant::now());
    status::round(&mut model, cfg, client, &Default::default(), names)
        .await
        .unwrap();
    assert_eq!(model.len(), PROFILES.len(), "every plug answered");
    model
}

/// One sample of the exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses `name{k="v",…} value` lines (label values unescaped), skipping comments.
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap();
        let name = line[..name_end].to_string();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let mut end = 0;
            loop {
                // key
                let mut key = String::new();
                let mut closed = false;
                for (i, c) in chars.by_ref() {
                    match c {
                        '=' => break,
                        '}' => {
                            end = i + 1;
                            closed = true;
                            break;
                        }
                        ',' => continue,
                        c => key.push(c),
                    }
                }
                if closed {
                    break;
                }
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().unwrap().1 {
                            'n' => value.push('\n'),
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            other => panic!("bad escape \\{other} in {line}"),
                        },
                        '"' => break,
                        c => value.push(c),
                    }
                }
                labels.insert(key, value);
            }
            rest = &r[end..];
        }
        let value: f64 = rest.trim().parse().unwrap_or_else(|_| panic!("{line}"));
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the one sample named `name` whose labels include `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{name} {want:?}: {found:?}");
    found.first().map(|s| s.value)
}

fn check(fleet: &Fleet, model: &Model, samples: &[Sample]) {
    let plugs = fleet.plugs();
    let statuses = model.by_address();
    assert_eq!(value(samples, "plugfleet_devices", &[]), Some(4.0));
    for (p, s) in plugs.iter().zip(&statuses) {
        assert_eq!(s.addr.ip(), p.addr());
        let mac = p.mac.as_str();
        let l = [("mac", mac)];
        assert_eq!(value(samples, "plugfleet_device_up", &l), Some(1.0));
        // Identity, versions and the local name.
        let name = if p.ip == plugs[0].ip {
            "Kettle"
        } else {
            s.sysinfo.as_ref().unwrap().alias.as_str()
        };
        let info = [
            ("mac", mac),
            ("ip", &p.ip.to_string()),
            ("alias", &s.sysinfo.as_ref().unwrap().alias),
            ("name", name),
            ("model", &p.model),
            ("hw_ver", &p.hw_ver),
            ("sw_ver", &p.sw_ver),
            ("protocol", "legacy"),
            ("device_id", &p.device_id),
        ];
        assert_eq!(
            value(samples, "plugfleet_device_info", &info),
            Some(1.0),
            "{p:?}"
        );
        if let (Some(r), false) = (s.values().0, s.is_strip()) {
            assert_eq!(value(samples, "plugfleet_power_watts", &l), r.power_w);
            assert_eq!(value(samples, "plugfleet_voltage_volts", &l), r.voltage_v);
            assert_eq!(value(samples, "plugfleet_current_amperes", &l), r.current_a);
            // Energy in the base unit: joules.
            assert_eq!(
                value(samples, "plugfleet_energy_joules_total", &l),
                r.total_kwh.map(|k| k * 3_600_000.0)
            );
            assert_eq!(value(samples, "plugfleet_readings_total", &l), Some(1.0));
        }
    }

    // The 28 kW plug: its verdict and its flagged count.
    let bogus = [("mac", plugs[0].mac.as_str())];
    assert!(value(samples, "plugfleet_power_watts", &bogus).unwrap() >= 28_000.0);
    let verdict = |mac: &str, v: &str| {
        value(
            samples,
            "plugfleet_reading_verdict",
            &[("mac", mac), ("verdict", v)],
        )
    };
    assert_eq!(verdict(&plugs[0].mac, "bogus"), Some(1.0));
    assert_eq!(verdict(&plugs[0].mac, "ok"), Some(0.0));
    assert_eq!(
        value(
            samples,
            "plugfleet_flagged_readings_total",
            &[("mac", &plugs[0].mac), ("verdict", "bogus")]
        ),
        Some(1.0)
    );
    assert_eq!(verdict(&plugs[1].mac, "ok"), Some(1.0));
    assert_eq!(
        value(
            samples,
            "plugfleet_flagged_readings_total",
            &[("mac", &plugs[1].mac), ("verdict", "bogus")]
        ),
        Some(0.0)
    );

    // The hostile alias came back intact through escaping (the protocol layer already dropped
    // its control characters; quotes and backslashes are the exposition format's to escape).
    let hostile = &statuses[1].sysinfo.as_ref().unwrap().alias;
    assert!(
        hostile.contains('"') && hostile.contains('\\'),
        "{hostile:?}"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.labels.get("alias") == Some(hostile)),
        "alias label round-trips"
    );

    // The strip: one series per outlet, none for the strip as a whole.
    let strip = statuses[2];
    assert_eq!(strip.outlets.len(), 6);
    for (i, o) in strip.outlets.iter().enumerate() {
        let Some((realtime, _)) = o.meter.as_ref().and_then(|m| m.current()) else {
            panic!("outlet {i} read");
        };
        let idx = i.to_string();
        // Keyed by the outlet's child id; its position and alias are on the info series.
        let ol = [("mac", plugs[2].mac.as_str()), ("child_id", o.id.as_str())];
        assert_eq!(
            value(
                samples,
                "plugfleet_outlet_info",
                &[
                    ("mac", plugs[2].mac.as_str()),
                    ("child_id", o.id.as_str()),
                    ("outlet", idx.as_str()),
                    ("outlet_alias", o.alias.as_str()),
                ]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(samples, "plugfleet_power_watts", &ol),
            realtime.power_w
        );
        assert_eq!(
            value(samples, "plugfleet_relay_on", &ol),
            Some(if o.relay_on { 1.0 } else { 0.0 })
        );
    }
    let strip_powers = samples
        .iter()
        .filter(|s| s.name == "plugfleet_power_watts" && s.labels["mac"] == plugs[2].mac)
        .count();
    assert_eq!(strip_powers, 6, "no strip-sum series");

    // No meter: listed, no readings.
    let plain = [("mac", plugs[3].mac.as_str())];
    assert_eq!(value(samples, "plugfleet_power_watts", &plain), None);
    assert!(value(samples, "plugfleet_relay_on", &plain).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_snapshot_parses_back_to_the_simulators_readings() {
    let fleet = fleet().await;
    let names = Names::from_pairs([(fleet.plugs()[0].mac.as_str(), "Kettle")]);
    let model = snapshot(&fleet, &names).await;
    let snap = metrics::view::snapshot(&model, std::time::Instant::now());
    let text = metrics::render(&snap);
    assert!(
        text.contains("# TYPE plugfleet_power_watts gauge"),
        "{text}"
    );
    check(&fleet, &model, &parse(&text));
    // The OpenMetrics rendering carries the same samples.
    let om = metrics::render_openmetrics(&snap);
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# UNIT plugfleet_power_watts watts"), "{om}");
    check(&fleet, &model, &parse(&om));
    fleet.shutdown().await;
}

/// One HTTP/1.1 request over a raw TCP connection: (status, headers, body).
async fn http(addr: SocketAddr, method: &str, path: &str, extra: &str) -> (u16, String, String) {
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_over_http_with_404_elsewhere_and_stops_on_the_token() {
    let fleet = fleet().await;
    let names = Names::from_pairs([(fleet.plugs()[0].mac.as_str(), "Kettle")]);
    let model = snapshot(&fleet, &names).await;
    let (tx, rx) = watch::channel(MetricsSnapshot::default());
    let token = CancellationToken::new();
    let (addr, task) = metrics::serve("127.0.0.1:0".parse().unwrap(), rx, token.clone())
        .await
        .unwrap();
    assert_ne!(addr.port(), 0);

    // Nothing published yet: a valid, empty exposition.
    let (status, head, body) = http(addr, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(
        value(&parse(&body), "plugfleet_devices", &[]),
        Some(0.0),
        "{body}"
    );

    // The owner of state publishes; the next scrape sees it.
    tx.send_replace(metrics::view::snapshot(&model, std::time::Instant::now()));
    let (status, _, body) = http(addr, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    check(&fleet, &model, &parse(&body));

    // A scraper asking for OpenMetrics gets it.
    let (status, head, body) = http(
        addr,
        "GET",
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"));

    for path in ["/", "/metrics/x", "/favicon.ico", "/../etc/passwd"] {
        let (status, _, _) = http(addr, "GET", path, "").await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, _) = http(addr, "POST", "/metrics", "Content-Length: 0\r\n").await;
    assert_eq!(status, 405, "read-only endpoint");

    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stops on the token")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn an_address_in_use_is_a_typed_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (_tx, rx) = watch::channel(MetricsSnapshot::default());
    let e = metrics::serve(addr, rx, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(e, metrics::MetricsError::Bind { .. }), "{e}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_polling_accumulates_counts_and_marks_vanished_plugs_down() {
    let fleet = fleet().await;
    let plugs = fleet.plugs().to_vec();
    let net = TargetArgs {
        hosts: plugs.iter().map(|p| p.addr()).collect(),
        port: fleet.port(),
        timeout: Duration::from_secs(2),
        ..TargetArgs::default()
    };
    let (tx, mut rx) = watch::channel(MetricsSnapshot::default());
    let token = CancellationToken::new();
    let names = Names::from_pairs([(plugs[0].mac.as_str(), "Kettle")]);
    let cfg = plugfleet::cmd::args::discovery_config(&net).unwrap();
    let client = ClientConfig::with_timeout(net.port, net.timeout);
    let task = tokio::spawn(status::poll_and_publish(
        cfg,
        client,
        names,
        Default::default(),
        Duration::from_millis(20),
        tx,
        token.clone(),
    ));
    let bogus = [("mac", plugs[0].mac.as_str())];
    // Wait (bounded) for a round in which the bogus plug has been read twice.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let samples = loop {
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("rounds keep coming")
            .unwrap();
        let samples = parse(&metrics::render(&rx.borrow_and_update()));
        if value(&samples, "plugfleet_readings_total", &bogus) >= Some(2.0) {
            break samples;
        }
    };
    let n = value(&samples, "plugfleet_readings_total", &bogus).unwrap();
    assert_eq!(
        value(
            &samples,
            "plugfleet_flagged_readings_total",
            &[("mac", &plugs[0].mac), ("verdict", "bogus")]
        ),
        Some(n),
        "every reading of the 28 kW plug is flagged"
    );
    assert_eq!(value(&samples, "plugfleet_device_up", &bogus), Some(1.0));

    // The fleet goes away: the plugs stay listed, down, without stale readings.
    fleet.shutdown().await;
    let samples = loop {
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("rounds keep coming")
            .unwrap();
        let samples = parse(&metrics::render(&rx.borrow_and_update()));
        if value(&samples, "plugfleet_device_up", &bogus) == Some(0.0) {
            break samples;
        }
    };
    assert_eq!(value(&samples, "plugfleet_devices", &[]), Some(4.0));
    assert_eq!(value(&samples, "plugfleet_power_watts", &bogus), None);
    assert!(value(&samples, "plugfleet_readings_total", &bogus).unwrap() >= n);
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops on the token")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_host_that_does_not_answer_is_device_up_0() {
    let fleet = fleet().await;
    let plugs = fleet.plugs().to_vec();
    let last = match plugs.last().unwrap().addr() {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => unreachable!("the simulator is on 127/8"),
    };
    // Nothing of the simulator listens here.
    let silent = Ipv4Addr::from(u32::from(last) + 50);
    let mut hosts: Vec<std::net::IpAddr> = plugs.iter().map(|p| p.addr()).collect();
    hosts.push(silent.into());
    let net = TargetArgs {
        hosts,
        port: fleet.port(),
        timeout: Duration::from_secs(1),
        ..TargetArgs::default()
    };
    let (tx, mut rx) = watch::channel(MetricsSnapshot::default());
    let token = CancellationToken::new();
    let cfg = plugfleet::cmd::args::discovery_config(&net).unwrap();
    let client = ClientConfig::with_timeout(net.port, net.timeout);
    let task = tokio::spawn(status::poll_and_publish(
        cfg,
        client,
        Names::default(),
        Default::default(),
        Duration::from_millis(20),
        tx,
        token.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    tokio::time::timeout_at(deadline, rx.changed())
        .await
        .expect("a round")
        .unwrap();
    let samples = parse(&metrics::render(&rx.borrow_and_update()));
    let ip = silent.to_string();
    let id = format!("host:{ip}");
    assert_eq!(
        value(&samples, "plugfleet_device_up", &[("mac", &id)]),
        Some(0.0),
        "the silent host is listed, down"
    );
    assert_eq!(
        value(
            &samples,
            "plugfleet_device_info",
            &[("mac", &id), ("ip", &ip)]
        ),
        Some(1.0),
        "its address is on its info series"
    );
    assert_eq!(
        value(&samples, "plugfleet_device_up", &[("mac", &plugs[0].mac)]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "plugfleet_devices", &[]),
        Some((plugs.len() + 1) as f64)
    );
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops on the token")
        .unwrap();
    fleet.shutdown().await;
}
