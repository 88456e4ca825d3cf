#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Identity through the path the TUI uses: events (sightings, poll reports) into
//! `app::update`, which feeds the one fleet model.
//!
//! - A plug moved to another address keeps its entry: its name, its mark and its history, and
//!   the record rows and metrics at the new address carry the same identity. The simulator
//!   derives a plug's MAC from its address, so a DHCP move is simulated with a TCP relay on a
//!   second loopback address that forwards to the real simulated plug; switching the relay to
//!   another plug makes the address answered by another device. Everything is read with the
//!   poller's own `poll_device`.
//! - Two different models reporting one MAC are two devices, each with the conflict shown.
//! - A strip's outlets keep their child ids (and marks, and history) across the strip's move.
//! - Something that is not a MAC (`NOT-A-MAC[2J`) is not an identity.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use plugfleet::app::fixture::{self, Plug, reading};
use plugfleet::app::state::{Link, RowId, Settings};
use plugfleet::app::{App, Command, Event, SeenInfo, Sighting, update};
use plugfleet::config::Config;
use plugfleet::fleet::identity::Names;
use plugfleet::net::ClientConfig;
use plugfleet::net::poller::{PollReport, poll_device};
use plugfleet::protocol::SysInfo;
use plugfleet::sim::{self, Fleet, FleetSpec};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A distinct 127.203.N.2 base per test (and per process, mostly).
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 203, pid.wrapping_mul(13).wrapping_add(n * 3), 2)
}

/// Forwards every TCP connection on `listen` to the current target, until the token.
async fn relay(
    listen: SocketAddr,
    target: watch::Receiver<SocketAddr>,
    token: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(listen).await.unwrap();
    tokio::spawn(async move {
        loop {
            let (mut inbound, _) = tokio::select! {
                _ = token.cancelled() => return,
                r = listener.accept() => match r { Ok(x) => x, Err(_) => return },
            };
            let to = *target.borrow();
            let token = token.clone();
            tokio::spawn(async move {
                let Ok(Ok(mut out)) =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(to)).await
                else {
                    return;
                };
                tokio::select! {
                    _ = token.cancelled() => {},
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {},
                }
            });
        }
    })
}

fn client(port: u16) -> ClientConfig {
    ClientConfig::with_timeout(port, Duration::from_secs(3))
}

/// What discovery would report for the plug answering at `addr` (its sysinfo, read there).
async fn discovered(addr: SocketAddr) -> Event {
    let polled = poll_device(addr, &client(addr.port())).await.unwrap();
    Event::DeviceDiscovered(Sighting {
        ip: addr.ip(),
        port: addr.port(),
        found_by: "host".into(),
        info: SeenInfo::Legacy(Box::new(polled.sysinfo)),
    })
}

/// One poll of the device `key` at `addr`, as the poller reports it.
async fn polled(key: &str, addr: SocketAddr) -> Event {
    let outcome = poll_device(addr, &client(addr.port())).await;
    Event::Polled(Box::new(PollReport {
        key: key.to_owned(),
        addr,
        misses: u32::from(outcome.is_err()),
        outcome,
        elapsed: Duration::from_millis(1),
    }))
}

fn press(app: &mut App, code: KeyCode, now: Instant) -> Vec<Command> {
    update(
        app,
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE)),
        now,
    )
}

fn tracked(cmds: &[Command]) -> Vec<(String, SocketAddr)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Track { key, addr } => Some((key.clone(), *addr)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plug_moved_to_another_address_keeps_its_name_marks_and_history() {
    let b = base();
    let spec = FleetSpec {
        profiles: vec!["hs110-us-hw1".into(), "hs110-eu-hw1".into()],
        ..FleetSpec::on_free_port(b, 2)
    };
    let fleet: Fleet = sim::start(spec).await.expect("fleet starts");
    let port = fleet.port();
    let (p1, p2) = (&fleet.plugs()[0], &fleet.plugs()[1]);
    let (x1, x2) = (
        SocketAddr::new(p1.addr(), port),
        SocketAddr::new(p2.addr(), port),
    );
    let y = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(u32::from(b) + 7)), port);

    // The user named plug 1 in the config file (any MAC spelling).
    let toml = format!(
        "[names]\n\"{}\" = \"Kitchen kettle\"\n",
        p1.mac.replace(':', "-").to_lowercase()
    );
    let cfg = Config::parse(&toml, std::path::Path::new("/test/config.toml")).unwrap();
    let settings = Settings {
        names: Names::from_config(&cfg),
        ..Settings::default()
    };
    let t0 = Instant::now();
    let mut app = App::new(settings, t0);

    // First seen at their own addresses, then polled.
    let cmds = update(&mut app, discovered(x1).await, t0);
    assert_eq!(tracked(&cmds), vec![(p1.device_id.clone(), x1)]);
    update(&mut app, discovered(x2).await, t0);
    let key1 = p1.device_id.clone();
    update(&mut app, polled(&key1, x1).await, t0);
    update(
        &mut app,
        polled(&p2.device_id, x2).await,
        t0 + Duration::from_millis(1),
    );
    assert_eq!(app.fleet.len(), 2);
    // The cursor is on the first row (plug 1, lowest address): mark it with the mark key.
    assert_eq!(app.view.selected, Some(RowId::device(&key1)));
    press(&mut app, KeyCode::Char(' '), t0);
    assert!(app.view.marked.contains(&RowId::device(&key1)));
    assert_eq!(
        app.row(&RowId::device(&key1)).unwrap().alias(),
        "Kitchen kettle"
    );

    // DHCP moves plug 1 to y.
    let (target_tx, target_rx) = watch::channel(x1);
    let token = CancellationToken::new();
    let relay_task = relay(y, target_rx, token.clone()).await;
    let t1 = t0 + Duration::from_secs(2);
    let cmds = update(&mut app, discovered(y).await, t1);
    assert_eq!(
        tracked(&cmds),
        vec![(key1.clone(), y)],
        "the poller follows the plug"
    );
    assert_eq!(app.fleet.len(), 2, "same device, not a new one");
    update(&mut app, polled(&key1, y).await, t1);
    let d = app.fleet.get(&key1).unwrap();
    assert_eq!(d.addr, y);
    assert_eq!(d.previous_ips, vec![x1.ip()]);
    assert_eq!(d.link, Link::Online);
    // Its name, mark and history follow it.
    assert!(app.view.marked.contains(&RowId::device(&key1)));
    let row = app.row(&RowId::device(&key1)).unwrap();
    assert_eq!(row.alias(), "Kitchen kettle");
    assert_eq!(row.meter().unwrap().readings(), 2, "history kept");
    assert_eq!(
        d.meter
            .as_ref()
            .and_then(|m| m.engine.as_ref())
            .unwrap()
            .history()
            .len(),
        2
    );
    // Record rows and metrics at the new address carry the same identity and name.
    let rows = plugfleet::record::rows_of(d, 1);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].ip.as_str(), rows[0].mac.as_str()),
        (y.ip().to_string().as_str(), p1.mac.as_str())
    );
    assert_eq!(rows[0].name.as_deref(), Some("Kitchen kettle"));
    let m = plugfleet::metrics::view::device_metrics(d, t1 + Duration::from_millis(5));
    assert_eq!(m.ip, y.ip().to_string());
    assert_eq!(m.name.as_deref(), Some("Kitchen kettle"));
    assert_eq!(m.last_seen_age, Some(Duration::from_millis(5)));
    assert_eq!(m.meter.unwrap().counts.total(), 2);

    // Now y is answered by plug 2: plug 2 moved there; plug 1 is not mistaken for it.
    target_tx.send_replace(x2);
    let t2 = t1 + Duration::from_secs(2);
    let cmds = update(&mut app, polled(&key1, y).await, t2);
    assert_eq!(tracked(&cmds), vec![(p2.device_id.clone(), y)]);
    let d1 = app.fleet.get(&key1).unwrap();
    assert!(
        matches!(&d1.link, Link::Offline(why) if why.contains("another device")),
        "{:?}",
        d1.link
    );
    let d2 = app.fleet.get(&p2.device_id).unwrap();
    assert_eq!((d2.addr, d2.previous_ips.clone()), (y, vec![x2.ip()]));
    assert_eq!(
        app.row(&RowId::device(&p2.device_id)).unwrap().alias(),
        p2.alias
    );
    assert!(!app.view.marked.contains(&RowId::device(&p2.device_id)));
    assert_eq!(app.fleet.len(), 2);

    token.cancel();
    relay_task.await.unwrap();
    fleet.shutdown().await;
}

fn legacy(ip: IpAddr, info: SysInfo) -> Event {
    Event::DeviceDiscovered(Sighting {
        ip,
        port: 9999,
        found_by: "broadcast".into(),
        info: SeenInfo::Legacy(Box::new(info)),
    })
}

fn plug_info(model: &str, mac: &str, device_id: &str, alias: &str) -> SysInfo {
    SysInfo::from_result(&serde_json::json!({
        "model": model, "hw_ver": "1.0", "sw_ver": "1.2.6 Build 200727 Rel.121701",
        "mac": mac, "deviceId": device_id, "alias": alias, "feature": "TIM:ENE",
        "relay_state": 1, "err_code": 0,
    }))
    .unwrap()
}

#[test]
fn two_models_answering_with_one_mac_are_two_devices_with_the_conflict_shown() {
    let t0 = Instant::now();
    let mut app = App::new(Settings::default(), t0);
    let a: IpAddr = "127.203.250.1".parse().unwrap();
    let b: IpAddr = "127.203.250.2".parse().unwrap();
    let mac = "50:C7:BF:12:34:56";
    update(
        &mut app,
        legacy(a, plug_info("HS110(US)", mac, "8006AA", "Kettle")),
        t0,
    );
    update(
        &mut app,
        legacy(b, plug_info("KP115(US)", mac, "8006BB", "Fridge")),
        t0,
    );
    assert_eq!(app.fleet.len(), 2, "never folded");
    assert_eq!(app.rows().len(), 2);
    let ka = app.fleet.get("8006AA").unwrap();
    let kb = app.fleet.get("8006BB").unwrap();
    assert_eq!((ka.addr.ip(), kb.addr.ip()), (a, b));
    assert_eq!(
        ka.conflict.as_deref(),
        Some("MAC 50:C7:BF:12:34:56 is also reported by KP115(US) at 127.203.250.2")
    );
    assert_eq!(
        kb.conflict.as_deref(),
        Some("MAC 50:C7:BF:12:34:56 is also reported by HS110(US) at 127.203.250.1")
    );
    // The `status --json` view says so too.
    let j = plugfleet::cmd::status::json_line(ka, &app.fleet);
    assert!(j["conflict"].as_str().unwrap().contains("KP115(US)"), "{j}");
}

#[test]
fn something_that_is_not_a_mac_is_not_an_identity() {
    let t0 = Instant::now();
    let settings = Settings {
        names: Names::from_pairs([("NOT-A-MAC[2J", "Should not apply")]),
        ..Settings::default()
    };
    let mut app = App::new(settings, t0);
    let a: IpAddr = "127.203.251.1".parse().unwrap();
    let b: IpAddr = "127.203.251.2".parse().unwrap();
    update(
        &mut app,
        legacy(
            a,
            plug_info("HS110(US)", "NOT-A-MAC\u{1b}[2J", "8006CC", "One"),
        ),
        t0,
    );
    update(
        &mut app,
        legacy(
            b,
            plug_info("HS110(US)", "NOT-A-MAC\u{1b}[2J", "8006DD", "Two"),
        ),
        t0,
    );
    // Two devices by their deviceIds; no conflict claimed on a MAC that is none; no name.
    assert_eq!(app.fleet.len(), 2);
    for k in ["8006CC", "8006DD"] {
        let d = app.fleet.get(k).unwrap();
        assert_eq!(d.conflict, None);
        assert_eq!(d.local_name, None);
    }
    // A newer-protocol answer with that "MAC" merges with neither.
    update(
        &mut app,
        Event::DeviceDiscovered(Sighting {
            ip: "127.203.251.3".parse().unwrap(),
            port: 20002,
            found_by: "udp20002".into(),
            info: SeenInfo::Newer(Box::new(plugfleet::protocol::tdp::TdpInfo {
                device_type: "IOT.SMARTPLUGSWITCH".into(),
                model: "KP125M(US)".into(),
                hw_ver: None,
                mac: "NOT-A-MAC\u{1b}[2J".into(),
                device_id: Some("80EE".into()),
                ip: None,
                encrypt_type: Some("KLAP".into()),
                http_port: Some(80),
                new_klap: false,
                ..Default::default()
            })),
        }),
        t0,
    );
    assert_eq!(app.fleet.len(), 3);
    assert!(app.fleet.get("id:80EE").is_some());
}

#[test]
fn a_strips_outlets_keep_their_ids_marks_and_history_across_its_move() {
    let t0 = Instant::now();
    let mut app = App::new(Settings::default(), t0);
    let mut strip = Plug::new(9, "Rack", "HS300(US)", "2.0", "1.0.21");
    strip.outlets = vec![("router", true), ("nas", true)];
    let outlets = || {
        vec![
            reading(10.0, 120.0, 0.09, 0.5),
            reading(20.0, 120.0, 0.18, 0.7),
        ]
    };
    update(&mut app, fixture::sighting(&strip, "broadcast"), t0);
    update(&mut app, fixture::polled(&strip, None, outlets()), t0);
    let key = fixture::device_id(9);
    let child = format!("{key}01");
    // Expand the strip, go to its second outlet and mark it with the keys.
    press(&mut app, KeyCode::Right, t0);
    press(&mut app, KeyCode::Down, t0);
    press(&mut app, KeyCode::Down, t0);
    let nas = RowId {
        key: key.clone(),
        child: Some(child.clone()),
    };
    assert_eq!(app.view.selected, Some(nas.clone()));
    press(&mut app, KeyCode::Char(' '), t0);
    assert!(app.view.marked.contains(&nas));

    // The strip moves: a sighting at the new address, then a poll there.
    let moved = SocketAddr::new("127.203.252.9".parse().unwrap(), 9999);
    let t1 = t0 + Duration::from_secs(2);
    let cmds = update(
        &mut app,
        Event::DeviceDiscovered(Sighting {
            ip: moved.ip(),
            port: 9999,
            found_by: "broadcast".into(),
            info: SeenInfo::Legacy(Box::new(strip.sysinfo())),
        }),
        t1,
    );
    assert_eq!(tracked(&cmds), vec![(key.clone(), moved)]);
    let Event::Polled(mut report) = fixture::polled(&strip, None, outlets()) else {
        unreachable!()
    };
    report.addr = moved;
    update(&mut app, Event::Polled(report), t1);
    let d = app.fleet.get(&key).unwrap();
    assert_eq!(d.addr, moved);
    let ids: Vec<&str> = d.outlets.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, vec![format!("{key}00"), child.clone()]);
    assert!(app.view.marked.contains(&nas), "the outlet's mark follows");
    let row = app.row(&nas).unwrap();
    assert_eq!(row.alias(), "nas");
    assert_eq!(
        row.meter().unwrap().readings(),
        2,
        "the outlet's history follows"
    );
}
