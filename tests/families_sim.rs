#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The device families against the simulator (issue 11): `status --json` gives each new
//! profile's type, light state, brightness and watts, judged like plugs (a bulb's bogus reading
//! is flagged against the bulb's rating); the camera known by its UDP 20002 reply alone shows
//! what that reply carries; and `t` in the running app switches a simulated bulb and a light
//! strip through their lighting services.
//!
//! Every wait is on a condition with a bound that only stops a hang; nothing is timed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugfleet::app::state::{App, Settings};
use plugfleet::net::client::{Client, ClientConfig};
use plugfleet::net::discovery::DiscoveryConfig;
use plugfleet::net::poller::PollConfig;
use plugfleet::protocol::{Request, Switching};
use plugfleet::runtime::sources::discovery_source;
use plugfleet::runtime::{self, Io, Keys, Setup};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec};
use plugfleet::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event as CtEvent, KeyCode, KeyEvent, KeyModifiers};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

const PATIENCE: Duration = Duration::from_secs(30);

/// A distinct 127.<pid-derived>.<210+n>.2 base per test (status_sim uses 150+).
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 100 + (std::process::id() % 90) as u8, 210 + n, 2)
}

async fn fleet(profiles: &[&str], faults: impl Fn(usize) -> Option<FaultKind>) -> Fleet {
    let b = base();
    let spec = FleetSpec {
        profiles: profiles.iter().map(|s| s.to_string()).collect(),
        faults: (0..profiles.len())
            .filter_map(|i| {
                let ip = Ipv4Addr::from(u32::from(b) + i as u32);
                faults(i).map(|f| (ip, f))
            })
            .collect(),
        ..FleetSpec::on_free_port(b, profiles.len())
    };
    sim::start(spec).await.expect("fleet starts")
}

/// Switches a simulated light on through its own module (as `t` does).
async fn switch(fleet: &Fleet, i: usize, how: Switching, on: bool) {
    let c = Client::new(
        IpAddr::V4(fleet.plugs()[i].ip),
        ClientConfig::with_timeout(fleet.port(), Duration::from_secs(2)),
    );
    c.call(&Request::set_power(how, on, None))
        .await
        .expect("switched");
}

async fn status_json(fleet: &Fleet) -> (Output, HashMap<String, Value>) {
    let mut args = vec![
        "status".to_string(),
        "--json".into(),
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
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let devs = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["ip"].as_str().unwrap().to_string(), v)
        })
        .collect();
    (out, devs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_shows_every_family_with_its_state_and_watts() {
    let profiles = [
        "kl130-eu-hw1",
        "kl430-us-hw2",
        "hs220-us-hw1",
        "c210-eu-hw2-camera",
    ];
    let fleet = fleet(&profiles, |_| None).await;
    switch(&fleet, 0, Switching::Bulb, true).await;
    switch(&fleet, 1, Switching::Lightstrip, true).await;
    let (out, devs) = status_json(&fleet).await;
    assert_eq!(devs.len(), 4, "{}", String::from_utf8_lossy(&out.stderr));
    let dev = |i: usize| &devs[&fleet.plugs()[i].ip.to_string()];

    let bulb = dev(0);
    assert_eq!(bulb["type"], "bulb", "{bulb}");
    assert_eq!(bulb["model"], "KL130(EU)");
    assert_eq!(bulb["relay_state"], 1, "on_off of light_state");
    assert_eq!(bulb["brightness"], 100);
    assert_eq!(bulb["light"]["on"], true);
    assert_eq!(bulb["light"]["color_temp"], 2700);
    assert_eq!(bulb["has_emeter"], true);
    let w = bulb["emeter"]["power_w"].as_f64().expect("bulb watts");
    assert!(w > 5.0 && w < 12.5, "{w} W");
    assert!(
        bulb["emeter"]["voltage_v"].is_null(),
        "a bulb reports power only"
    );
    assert_eq!(bulb["plausibility"]["verdict"], "ok", "{bulb}");

    let strip = dev(1);
    assert_eq!(strip["type"], "lightstrip", "{strip}");
    assert_eq!(strip["light"]["hue"], 194);
    assert!(strip["emeter"]["power_w"].as_f64().expect("watts") > 1.0);
    assert_eq!(strip["plausibility"]["verdict"], "ok", "{strip}");

    let dimmer = dev(2);
    assert_eq!(dimmer["type"], "dimmer", "{dimmer}");
    assert_eq!(dimmer["brightness"], 25);
    assert_eq!(dimmer["has_emeter"], false);
    assert!(dimmer["emeter"].is_null() && dimmer.get("light").is_none());
    assert!(dimmer["relay_state"].is_u64());

    let cam = dev(3);
    assert_eq!(cam["type"], "camera", "{cam}");
    assert_eq!(cam["model"], "C210");
    assert_eq!(cam["hw_ver"], "2.0");
    assert_eq!(cam["sw_ver"], "1.4.3 Build 241010 Rel.33858n");
    assert_eq!(cam["device_type"], "SMART.IPCAMERA");
    assert_eq!(cam["protocol"], "https");
    assert!(
        cam["alias"].is_string() && cam["alias"] == cam["device_name"],
        "{cam}"
    );
    assert_eq!(cam["mac"].as_str().map(str::len), Some(17));
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulbs_impossible_reading_is_flagged_against_the_bulbs_rating() {
    let fleet = fleet(&["kl130-eu-hw1"], |_| Some(FaultKind::Bogus28kw)).await;
    switch(&fleet, 0, Switching::Bulb, true).await;
    let (_, devs) = status_json(&fleet).await;
    let bulb = &devs[&fleet.plugs()[0].ip.to_string()];
    assert_eq!(bulb["plausibility"]["verdict"], "bogus", "{bulb}");
    let reasons = bulb["plausibility"]["reasons"].to_string();
    assert!(reasons.contains("10 W rated (KL130 EU)"), "{reasons}");
    assert_eq!(
        bulb["plausibility"]["raw"]["power_mw"]
            .as_i64()
            .map(|m| m > 1_000_000),
        Some(true)
    );
    fleet.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The app in-process (as tests/app_inprocess.rs runs it): `t` switches a bulb.

struct Driver {
    keys: mpsc::UnboundedSender<std::io::Result<CtEvent>>,
    screen: Arc<Mutex<String>>,
}

impl Driver {
    fn key(&self, c: char) {
        let ev = CtEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        self.keys.send(Ok(ev)).expect("the app reads keys");
    }

    async fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = self.screen.lock().unwrap().clone();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}:\n{s}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn text_of(buf: &ratatui::buffer::Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_switches_a_simulated_bulb_and_light_strip_through_their_light_services() {
    let fleet = fleet(&["kl130-eu-hw1", "kl430-us-hw2"], |_| None).await;
    // Both off to start with: `t` on one light switches it on at once, no question.
    switch(&fleet, 0, Switching::Bulb, false).await;
    switch(&fleet, 1, Switching::Lightstrip, false).await;
    let (tx, rx) = mpsc::unbounded_channel();
    let keys: Keys = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|ev| (ev, rx))
    }));
    let client = ClientConfig::with_timeout(fleet.port(), Duration::from_secs(2));
    let disc = DiscoveryConfig {
        hosts: fleet.plugs().iter().map(|p| p.ip).collect(),
        port: fleet.port(),
        tdp_port: fleet.tdp_port(),
        timeout: Duration::from_secs(1),
        ..DiscoveryConfig::default()
    };
    assert!(disc.hosts.iter().all(Ipv4Addr::is_loopback));
    let setup = Setup {
        poll: PollConfig {
            interval: Duration::from_secs(1),
            client,
            ..PollConfig::default()
        },
        client,
        metrics: None,
    };
    let io = Io {
        keys,
        sources: discovery_source(disc, Duration::from_secs(30)),
        signals: false,
    };
    let screen = Arc::new(Mutex::new(String::new()));
    let s = screen.clone();
    let draw = move |f: &mut ratatui::Frame, app: &App| {
        ui::render(f, app);
        *s.lock().unwrap() = text_of(f.buffer_mut());
    };
    let settings = Settings {
        interval: Duration::from_secs(1),
        color: false,
        status_ttl: Duration::from_secs(3600),
        ..Settings::default()
    };
    let mut terminal = Terminal::new(TestBackend::new(140, 20)).unwrap();
    let app = App::new(settings, std::time::Instant::now());
    let d = Driver { keys: tx, screen };
    let run = runtime::run(&mut terminal, app, setup, io, draw);
    tokio::pin!(run);
    let fleet = &fleet;
    let script = async move {
        let row = |s: &str, ip: Ipv4Addr| {
            s.lines()
                .find(|l| l.contains(&format!("{ip} ")))
                .map(str::to_owned)
                .unwrap_or_default()
        };
        let (a, b) = (fleet.plugs()[0].ip, fleet.plugs()[1].ip);
        // Listed, polled (health ok: a light not polled yet cannot be switched) and off.
        let ready = |r: String, kind: &str| {
            r.contains(kind) && r.contains(" off ") && r.split_whitespace().any(|w| w == "ok")
        };
        d.wait_for("both lights polled, off", |s| {
            ready(row(s, a), "bulb") && ready(row(s, b), "lightstrip")
        })
        .await;
        // g selects the first row (sorted by IP: the bulb); t switches it on.
        d.key('g');
        d.key('t');
        until("the simulated bulb on", || {
            fleet.plugs()[0].relays() == vec![true]
        })
        .await;
        d.wait_for("the bulb's row on", |s| row(s, a).contains(" on "))
            .await;
        assert_eq!(fleet.plugs()[1].relays(), vec![false], "only the bulb");
        // j: the light strip, switched on too.
        d.key('j');
        d.key('t');
        until("the simulated light strip on", || {
            fleet.plugs()[1].relays() == vec![true]
        })
        .await;
        d.wait_for("the strip's row on", |s| row(s, b).contains(" on "))
            .await;
        // Off asks first; y confirms.
        d.key('t');
        d.wait_for("the confirmation", |s| s.contains("on → off"))
            .await;
        d.key('y');
        until("the light strip off again", || {
            fleet.plugs()[1].relays() == vec![false]
        })
        .await;
        d.key('q');
    };
    tokio::pin!(script);
    let mut result = None;
    tokio::select! {
        r = &mut run => result = Some(r),
        () = &mut script => {}
    }
    let r = match result {
        Some(r) => r,
        None => tokio::time::timeout(PATIENCE, run)
            .await
            .expect("the app quits"),
    };
    r.expect("the app ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulbs_meter_is_read_in_the_one_combined_poll_request() {
    use plugfleet::net::poller::{DEFAULT_STRIP_GAP, poll_link};
    use plugfleet::net::pool::{Link, PoolStats};
    let fleet = fleet(&["kl130-eu-hw1"], |_| None).await;
    switch(&fleet, 0, Switching::Bulb, true).await;
    let p = &fleet.plugs()[0];
    let addr = std::net::SocketAddr::new(IpAddr::V4(p.ip), fleet.port());
    let cfg = ClientConfig::with_timeout(fleet.port(), Duration::from_secs(2));
    let stats = Arc::new(PoolStats::default());
    let mut link = Link::default();
    let before = p.stats().requests;
    // First poll: the plug request finds a bulb (its `emeter` answers -2001), so the bulb's meter
    // is asked once on its own.
    let first = poll_link(&mut link, addr, &cfg, DEFAULT_STRIP_GAP, &stats)
        .await
        .expect("polled");
    let rt = first.realtime.expect("a bulb has a meter").expect("read");
    assert!(rt.power_w.is_some_and(|w| w > 1.0), "{rt:?}");
    assert_eq!(p.stats().requests - before, 2);
    // From then on, one request per poll: sysinfo and smartlife.iot.common.emeter together.
    for _ in 0..3 {
        let before = p.stats().requests;
        let again = poll_link(&mut link, addr, &cfg, DEFAULT_STRIP_GAP, &stats)
            .await
            .expect("polled");
        assert!(again.realtime.is_some_and(|r| r.is_ok()));
        assert_eq!(p.stats().requests - before, 1, "one combined request");
    }
    fleet.shutdown().await;
}

/// A bulb without a meter (a KL60 answers its meter modules -2001): a loopback responder that
/// counts requests.
async fn meterless_bulb() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use plugfleet::protocol::{cipher, codec};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let n = n.clone();
            tokio::spawn(async move {
                loop {
                    let mut hdr = [0u8; 4];
                    if s.read_exact(&mut hdr).await.is_err() {
                        break;
                    }
                    let mut body = vec![0u8; u32::from_be_bytes(hdr) as usize];
                    if s.read_exact(&mut body).await.is_err() {
                        break;
                    }
                    n.fetch_add(1, Ordering::SeqCst);
                    let req: Value = serde_json::from_slice(&cipher::decrypt(&body)).unwrap();
                    let mut out = serde_json::json!({});
                    for (module, _) in req.as_object().unwrap() {
                        out[module] = if module == "system" {
                            serde_json::json!({"get_sysinfo": {"model": "KL60(UN)", "hw_ver": "1.0",
                                "sw_ver": "1.1.4 Build 191008 Rel.134813", "mic_type": "IOT.SMARTBULB",
                                "mic_mac": "1C3BF3000099", "deviceId": "KL60", "alias": "filament",
                                "light_state": {"on_off": 1, "brightness": 50}, "err_code": 0}})
                        } else {
                            serde_json::json!({"err_code": -2001, "err_msg": "Module not support"})
                        };
                    }
                    let reply = codec::encode_frame(out.to_string().as_bytes());
                    if s.write_all(&reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulb_without_a_meter_has_none_and_is_asked_sysinfo_alone() {
    use plugfleet::net::poller::{DEFAULT_STRIP_GAP, poll_link};
    use plugfleet::net::pool::{Link, PoolStats};
    let (addr, requests) = meterless_bulb().await;
    let cfg = ClientConfig::with_timeout(addr.port(), Duration::from_secs(2));
    let stats = Arc::new(PoolStats::default());
    let mut link = Link::default();
    let mut counts = Vec::new();
    for _ in 0..3 {
        let before = requests.load(Ordering::SeqCst);
        let p = poll_link(&mut link, addr, &cfg, DEFAULT_STRIP_GAP, &stats)
            .await
            .expect("polled");
        assert!(
            p.realtime.is_none(),
            "no meter, not a failing one: {:?}",
            p.realtime
        );
        assert_eq!(p.sysinfo.is_on(), Some(true));
        counts.push(requests.load(Ordering::SeqCst) - before);
    }
    // The plug request, then the bulb's meter on its own; from then on sysinfo alone.
    assert_eq!(counts, vec![2, 1, 1]);
}
