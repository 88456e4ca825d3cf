#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The poller reads newer-protocol plugs over one kept session each: found by discovery on
//! UDP 20002 (the transport chosen from that reply alone), the app asks to track them over
//! KLAP/AES with the configured account, and every poll after the first reuses the session.
//! A session the device ends (403 mid-poll) gets one fresh handshake; a device with a hanging
//! handshake or garbage ciphertext fails with a typed error while the other plugs are read.

#[path = "common/newer.rs"]
mod newer_common;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use plugfleet::app::event::{Command, Event};
use plugfleet::app::settings::Settings;
use plugfleet::app::state::App;
use plugfleet::app::update;
use plugfleet::net::discovery::{self, DiscoveryConfig};
use plugfleet::net::klap::Credentials;
use plugfleet::net::poller::PollReport;
use plugfleet::protocol::access::Refusal;
use plugfleet::protocol::sighting::DiscoveryEvent;
use plugfleet::sim::klap::{self as simklap, KlapFault, KlapFleet, KlapSpec};
use plugfleet::sim::{self, Fleet, FleetSpec};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const PROFILES: [&str; 4] = [
    "hs110-eu-hw4",
    "hs100-uk-hw4-klap",
    "kp125m-us-hw1-smart",
    "p110-eu-hw1-aes",
];

fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 100 + (std::process::id() % 90) as u8, 70 + n, 2)
}

async fn fleet(klap: impl Fn(Ipv4Addr) -> Vec<(Ipv4Addr, KlapFault)>) -> (Fleet, KlapFleet) {
    let b = base();
    let spec = FleetSpec {
        profiles: PROFILES.iter().map(|s| s.to_string()).collect(),
        ..FleetSpec::on_free_port(b, PROFILES.len())
    };
    let fleet = sim::start(spec).await.expect("fleet starts");
    let k = simklap::serve(
        &fleet,
        &KlapSpec {
            faults: klap(b),
            ..KlapSpec::default()
        },
    )
    .await
    .expect("KLAP servers start");
    (fleet, k)
}

fn account() -> Credentials {
    Credentials::new(simklap::DEFAULT_USERNAME, simklap::DEFAULT_PASSWORD)
}

/// One discovery pass over the fleet's hosts, fed to an app with `account`: the commands
/// it gave (one track per plug).
async fn discover_into(fleet: &Fleet, account: Option<Credentials>) -> (App, Vec<Command>) {
    let cfg = DiscoveryConfig {
        targets: Vec::new(),
        hosts: fleet.plugs().iter().map(|p| p.ip).collect(),
        port: fleet.port(),
        tdp_port: fleet.tdp_port(),
        timeout: Duration::from_secs(2),
        ..DiscoveryConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(256);
    let task = discovery::spawn(cfg, tx, CancellationToken::new());
    let now = std::time::Instant::now();
    let mut app = App::new(
        Settings {
            account,
            ..Settings::default()
        },
        now,
    );
    let mut cmds = Vec::new();
    while let Some(ev) = rx.recv().await {
        if let DiscoveryEvent::Found(s) = ev {
            cmds.extend(update(&mut app, Event::DeviceDiscovered(s.into()), now));
        }
    }
    task.await.unwrap().unwrap();
    (app, cmds)
}

/// Runs the poller over `cmds`' tracks until each device has `n` reports.
async fn poll_rounds(cmds: &[Command], n: usize) -> HashMap<String, Vec<PollReport>> {
    newer_common::poll_rounds(cmds, n).await
}

fn by_ip(got: &HashMap<String, Vec<PollReport>>, ip: Ipv4Addr) -> &[PollReport] {
    got.values()
        .find(|v| v[0].addr.ip() == ip)
        .map(Vec::as_slice)
        .expect("polled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_plugs_are_tracked_over_their_transport_and_keep_one_session() {
    let (fleet, k) = fleet(|_| Vec::new()).await;
    let (app, cmds) = discover_into(&fleet, Some(account())).await;
    let newer: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::TrackNewer { spec, .. } => Some(spec),
            _ => None,
        })
        .collect();
    assert_eq!(newer.len(), 3, "{cmds:?}");
    let http: Vec<u16> = newer.iter().map(|s| s.access.http_port).collect();
    assert!(
        http.iter().all(|p| *p == k.port()),
        "the sim's real HTTP port from discovery: {http:?} vs {}",
        k.port()
    );
    assert!(newer.iter().all(|s| s.account == Some(account())));
    assert_eq!(app.fleet.len(), PROFILES.len());

    let got = poll_rounds(&cmds, 4).await;
    let p = fleet.plugs();
    for (i, model) in [(1, "HS100(UK)"), (2, "KP125M(US)"), (3, "P110(EU)")] {
        for r in by_ip(&got, p[i].ip) {
            let polled = r.outcome.as_ref().expect("read");
            assert_eq!(polled.sysinfo.model, model);
            assert_eq!(polled.sysinfo.alias, p[i].alias);
        }
        assert_eq!(
            k.device(p[i].ip).unwrap().handshakes(),
            1,
            "one handshake for four polls: {}",
            p[i].profile
        );
    }
    // The SMART plugs' meters are read in canonical units.
    let smart = by_ip(&got, p[2].ip).last().unwrap();
    let rt = smart
        .outcome
        .as_ref()
        .unwrap()
        .realtime
        .clone()
        .unwrap()
        .unwrap();
    assert!(
        rt.voltage_v.is_some_and(|v| (100.0..140.0).contains(&v)),
        "{rt:?}"
    );
    // The legacy plug is polled on port 9999 as before.
    assert!(by_ip(&got, p[0].ip).iter().all(|r| r.outcome.is_ok()));
    assert_eq!(
        by_ip(&got, p[0].ip)[0].addr,
        SocketAddr::from((p[0].ip, fleet.port()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_by_the_device_gets_a_fresh_handshake() {
    // session-expiry: every session ends with a 403 after two requests.
    let (fleet, k) = fleet(|b| {
        (1..=3)
            .map(|i| (Ipv4Addr::from(u32::from(b) + i), KlapFault::SessionExpiry))
            .collect()
    })
    .await;
    let (_, cmds) = discover_into(&fleet, Some(account())).await;
    let got = poll_rounds(&cmds, 5).await;
    let p = fleet.plugs();
    for plug in &p[1..=3] {
        let reports = by_ip(&got, plug.ip);
        assert!(
            reports.iter().all(|r| r.outcome.is_ok()),
            "{}: {reports:?}",
            plug.profile
        );
        let hs = k.device(plug.ip).unwrap().handshakes();
        assert!((2..=5).contains(&hs), "{}: {hs} handshakes", plug.profile);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_typed_and_leave_the_other_plugs_alone() {
    let (fleet, _k) = fleet(|b| {
        vec![
            (
                Ipv4Addr::from(u32::from(b) + 1),
                KlapFault::GarbageCiphertext,
            ),
            (
                Ipv4Addr::from(u32::from(b) + 2),
                KlapFault::WrongCredentials,
            ),
            (Ipv4Addr::from(u32::from(b) + 3), KlapFault::HandshakeHang),
        ]
    })
    .await;
    let (_, cmds) = discover_into(&fleet, Some(account())).await;
    let got = poll_rounds(&cmds, 2).await;
    let p = fleet.plugs();
    assert!(by_ip(&got, p[0].ip).iter().all(|r| r.outcome.is_ok()));
    for r in by_ip(&got, p[1].ip) {
        let e = r.outcome.as_ref().expect_err("garbage");
        assert_eq!(e.kind(), "protocol", "{e}");
    }
    for r in by_ip(&got, p[2].ip) {
        let e = r.outcome.as_ref().expect_err("wrong account");
        assert_eq!(e.refusal(), Some(&Refusal::AuthFailed), "{e}");
    }
    for r in by_ip(&got, p[3].ip) {
        let e = r.outcome.as_ref().expect_err("hang");
        assert_eq!(e.kind(), "timeout", "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_account_the_app_shows_needs_credentials() {
    let (fleet, _k) = fleet(|_| Vec::new()).await;
    let (mut app, cmds) = discover_into(&fleet, None).await;
    let got = poll_rounds(&cmds, 1).await;
    let now = std::time::Instant::now();
    for r in got.into_values().flatten() {
        update(&mut app, Event::Polled(Box::new(r)), now);
    }
    let p = fleet.plugs();
    for plug in &p[1..=3] {
        let d = app
            .fleet
            .devices
            .values()
            .find(|d| d.addr.ip() == plug.ip)
            .unwrap();
        assert_eq!(d.health().label(), "needs creds", "{}", plug.profile);
        assert!(d.last_error.as_deref().unwrap().contains("--username"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_switches_through_each_dialect() {
    use plugfleet::net::newer::NewerLink;
    let (fleet, _k) = fleet(|_| Vec::new()).await;
    let (_, cmds) = discover_into(&fleet, Some(account())).await;
    let specs: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::TrackNewer { addr, spec, .. } => Some((addr.ip(), (**spec).clone())),
            _ => None,
        })
        .collect();
    assert_eq!(specs.len(), 3);
    for (ip, spec) in specs {
        let label = spec.access.label();
        let mut link = NewerLink::new(ip, spec, Duration::from_secs(2));
        for on in [false, true, false] {
            link.set_relay(on, None).await.expect("switched");
            let p = link.poll().await.expect("read back");
            assert_eq!(p.sysinfo.relay_on, Some(on), "{label}");
        }
        assert_eq!(
            link.handshakes(),
            1,
            "{label}: one session for six requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_newer_plugs_are_never_firmware_targets() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use plugfleet::app::state::RowId;
    let (fleet, _k) = fleet(|_| Vec::new()).await;
    let (mut app, cmds) = discover_into(&fleet, Some(account())).await;
    let got = poll_rounds(&cmds, 1).await;
    let now = std::time::Instant::now();
    for r in got.into_values().flatten() {
        update(&mut app, Event::Polled(Box::new(r)), now);
    }
    let p = fleet.plugs();
    let key_of = |app: &App, ip: Ipv4Addr| {
        app.fleet
            .devices
            .values()
            .find(|d| d.addr.ip() == ip)
            .unwrap()
            .key
            .clone()
    };
    let newer: Vec<String> = p[1..=3].iter().map(|plug| key_of(&app, plug.ip)).collect();
    for k in &newer {
        let d = app.fleet.get(k).unwrap();
        assert!(d.sysinfo.is_some() && d.is_online(), "read: {k}");
        assert_eq!(d.health().label(), "ok", "{k}");
        app.view.marked.insert(RowId::device(k));
    }
    let cmds = update(
        &mut app,
        Event::Key(KeyEvent::new(KeyCode::Char('U'), KeyModifiers::SHIFT)),
        now,
    );
    assert!(cmds.is_empty(), "{cmds:?}");
    let status = app
        .view
        .status
        .as_ref()
        .map(|(s, _)| s.clone())
        .unwrap_or_default();
    assert!(status.contains("nothing to update"), "{status}");
    // With the legacy plug marked too, only it is planned; the rest are named as left out.
    let legacy = key_of(&app, p[0].ip);
    app.view.marked.insert(RowId::device(&legacy));
    update(
        &mut app,
        Event::Key(KeyEvent::new(KeyCode::Char('U'), KeyModifiers::SHIFT)),
        now,
    );
    let status = app
        .view
        .status
        .as_ref()
        .map(|(s, _)| s.clone())
        .unwrap_or_default();
    assert!(status.contains("3 marked device(s) left out"), "{status}");
    assert!(status.contains("cloud-only firmware"), "{status}");
}

/// Keys typed into the app as the terminal would send them.
fn type_keys(app: &mut App, keys: &[KeyCode]) -> Vec<Command> {
    let now = std::time::Instant::now();
    keys.iter()
        .flat_map(|k| update(app, Event::Key(KeyEvent::new(*k, KeyModifiers::NONE)), now))
        .collect()
}

fn text(s: &str) -> Vec<KeyCode> {
    s.chars().map(KeyCode::Char).collect()
}

/// The account typed at the `c` prompt: user, Enter, password, Enter.
fn enter_account(app: &mut App, user: &str, password: &str) -> Vec<Command> {
    let mut keys = vec![KeyCode::Char('c')];
    keys.extend(text(user));
    keys.push(KeyCode::Enter);
    keys.extend(text(password));
    let before = type_keys(app, &keys);
    assert!(
        before.is_empty(),
        "nothing is sent while typing: {before:?}"
    );
    type_keys(app, &[KeyCode::Enter])
}

fn screen(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(110, 30)).unwrap();
    t.draw(|f| plugfleet::ui::render(f, app)).unwrap();
    let buf = t.backend().buffer();
    let mut s = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

/// Health of the newer plugs (HS100(UK) KLAP v1, KP125M KLAP v2, P110 AES) after one poll of
/// `cmds`' tracks.
async fn newer_health(fleet: &Fleet, app: &mut App, cmds: &[Command]) -> Vec<&'static str> {
    let got = poll_rounds(cmds, 1).await;
    let now = std::time::Instant::now();
    for r in got.into_values().flatten() {
        update(app, Event::Polled(Box::new(r)), now);
    }
    fleet.plugs()[1..=3]
        .iter()
        .map(|plug| {
            let d = app.fleet.devices.values().find(|d| d.addr.ip() == plug.ip);
            d.unwrap().health().label()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_typed_at_the_prompt_gets_needs_credentials_plugs_read() {
    let (fleet, _k) = fleet(|_| Vec::new()).await;
    let (mut app, cmds) = discover_into(&fleet, None).await;
    assert_eq!(
        newer_health(&fleet, &mut app, &cmds).await,
        ["needs creds"; 3]
    );

    // A wrong password first: the plugs refuse it (auth failed), nothing else changes.
    let cmds = enter_account(&mut app, simklap::DEFAULT_USERNAME, "not-the-password");
    assert_eq!(cmds.len(), 3, "the three newer plugs re-tracked: {cmds:?}");
    assert!(cmds.iter().all(|c| matches!(c, Command::TrackNewer { .. })));
    assert_eq!(
        newer_health(&fleet, &mut app, &cmds).await,
        ["auth failed"; 3]
    );

    // The prompt drawn: the user name as typed, the password only as dots.
    let mut keys = vec![KeyCode::Char('c')];
    keys.extend(text(simklap::DEFAULT_USERNAME));
    keys.push(KeyCode::Enter);
    keys.extend(text(simklap::DEFAULT_PASSWORD));
    assert!(type_keys(&mut app, &keys).is_empty());
    let shown = screen(&app);
    assert!(shown.contains("TP-Link account"), "{shown}");
    assert!(shown.contains(simklap::DEFAULT_USERNAME), "{shown}");
    let dots = "•".repeat(simklap::DEFAULT_PASSWORD.chars().count());
    assert!(shown.contains(&format!("{dots}▏")), "{shown}");
    assert!(!shown.contains(simklap::DEFAULT_PASSWORD), "{shown}");

    // Enter: the right account is used at once, and every newer plug is read with it.
    let cmds = type_keys(&mut app, &[KeyCode::Enter]);
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    let read = newer_health(&fleet, &mut app, &cmds).await;
    assert!(
        read.iter()
            .all(|h| !["needs creds", "auth failed", "failing"].contains(h)),
        "{read:?}"
    );
    let p = fleet.plugs();
    for plug in &p[1..=3] {
        let d = app.fleet.devices.values().find(|d| d.addr.ip() == plug.ip);
        let d = d.unwrap();
        assert!(d.sysinfo.is_some(), "read: {}", plug.profile);
        assert_eq!(d.alias(), plug.alias, "{}", plug.profile);
        assert!(d.last_error.is_none(), "{:?}", d.last_error);
    }
    let shown = screen(&app);
    assert!(!shown.contains(simklap::DEFAULT_PASSWORD), "{shown}");
    assert!(
        !shown.contains("TP-Link account"),
        "the prompt closed: {shown}"
    );
}
