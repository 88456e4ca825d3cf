#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Identity surviving an IP change, against the simulator.
//!
//! The simulator derives a plug's MAC from its address (OUI + the last three octets), so a
//! simulated plug cannot be restarted with the same MAC at another address. A DHCP move is
//! therefore simulated with a TCP relay on a second loopback address that forwards to the real
//! simulated plug: the plug (same MAC, same deviceId, same readings) now answers at the new
//! address and no longer needs its old one. Switching the relay to another plug makes the new
//! address answered by a different MAC. Everything is read over the real protocol client and
//! merged by the real registry.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use plugfleet::config::Config;
use plugfleet::fleet::plausibility::MeterBank;
use plugfleet::fleet::reading::Reading;
use plugfleet::fleet::registry::{Change, Registry};
use plugfleet::identity::{Names, device_key, identity_key};
use plugfleet::metrics::DeviceMetrics;
use plugfleet::net::discovery::{DeviceReply, FoundBy, Sighting};
use plugfleet::net::{Client, ClientConfig};
use plugfleet::record::{ReadingRecord, unix_ms};
use plugfleet::sim::{self, Fleet, FleetSpec};
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

fn client(ip: IpAddr, port: u16) -> Client {
    Client::new(ip, ClientConfig::with_timeout(port, Duration::from_secs(3)))
}

async fn sighting(ip: IpAddr, port: u16, at: u64) -> Sighting {
    let info = client(ip, port).sysinfo().await.unwrap();
    Sighting {
        ip,
        port,
        found_by: FoundBy::Host,
        at,
        reply: DeviceReply::Legacy(info),
    }
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
    let (x1, x2) = (p1.addr(), p2.addr());
    let y = IpAddr::V4(Ipv4Addr::from(u32::from(b) + 7));

    // The user named plug 1 in the config file (any MAC spelling).
    let toml = format!(
        "[names]\n\"{}\" = \"Kitchen kettle\"\n",
        p1.mac.replace(':', "-").to_lowercase()
    );
    let cfg = Config::parse(&toml, std::path::Path::new("/test/config.toml")).unwrap();
    let names = Names::from_config(&cfg);

    let mut reg = Registry::new(3);
    let mut bank = MeterBank::new();
    let mut marks: BTreeSet<String> = BTreeSet::new();

    // First seen at their own addresses.
    reg.observe(&sighting(x1, port, 10).await);
    reg.observe(&sighting(x2, port, 11).await);
    assert_eq!(reg.len(), 2);
    let key1 = device_key(&reg.devices()[0]);
    assert_eq!(key1, identity_key(&p1.mac, &p1.device_id));
    assert_eq!(names.display_device(&reg.devices()[0]), "Kitchen kettle");
    assert_eq!(names.display_device(&reg.devices()[1]), p2.alias);
    marks.insert(key1.clone());
    let r = client(x1, port).realtime(None).await.unwrap();
    bank.assess(&key1, &p1.model, &Reading::from(&r), 1_000);

    // DHCP moves plug 1 to y.
    let (target_tx, target_rx) = watch::channel(SocketAddr::new(x1, port));
    let token = CancellationToken::new();
    let relay_task = relay(SocketAddr::new(y, port), target_rx, token.clone()).await;
    let seen = sighting(y, port, 20).await;
    let changes = reg.observe(&seen);
    assert_eq!(
        changes,
        vec![Change::Moved {
            idx: 0,
            from: x1,
            to: y
        }]
    );
    assert_eq!(reg.len(), 2, "same device, not a new one");
    let d = &reg.devices()[0];
    assert_eq!(d.ip, y);
    assert_eq!(d.previous_ips, vec![x1]);
    assert_eq!(d.mac, p1.mac);
    // Its name, mark and history follow it.
    assert_eq!(names.display_device(d), "Kitchen kettle");
    assert_eq!(device_key(d), key1);
    assert!(marks.contains(&device_key(d)));
    let r = client(y, port).realtime(None).await.unwrap();
    bank.assess(&device_key(d), &p1.model, &Reading::from(&r), 2_000);
    assert_eq!(bank.len(), 1, "one meter for the plug, wherever it is");
    assert_eq!(bank.get(&key1).unwrap().history().len(), 2);
    // Records and metrics at the new address carry the same identity and name.
    let DeviceReply::Legacy(info) = &seen.reply else {
        unreachable!()
    };
    let a = bank.get(&key1).unwrap().last_assessment().unwrap().clone();
    let rec = ReadingRecord::new(unix_ms(SystemTime::now()), y, info, None, &r, &a)
        .named(names.name_for(&info.mac));
    assert_eq!(
        (rec.ip.as_str(), rec.mac.as_str()),
        (y.to_string().as_str(), p1.mac.as_str())
    );
    assert_eq!(rec.name.as_deref(), Some("Kitchen kettle"));
    let m = DeviceMetrics::from_registry(d, 25).named(&names);
    assert_eq!(m.ip, y.to_string());
    assert_eq!(m.name.as_deref(), Some("Kitchen kettle"));
    assert_eq!(m.last_seen_age, Some(Duration::from_millis(5)));

    // Now y is answered by plug 2: shown as another device at that address.
    target_tx.send_replace(SocketAddr::new(x2, port));
    let changes = reg.observe(&sighting(y, port, 30).await);
    assert!(
        changes.contains(&Change::Moved {
            idx: 1,
            from: x2,
            to: y
        }),
        "{changes:?}"
    );
    assert!(
        changes.contains(&Change::AddressReused {
            ip: y,
            previous: 0,
            now: 1
        }),
        "{changes:?}"
    );
    assert_eq!(reg.devices()[1].mac, p2.mac);
    assert_eq!(names.display_device(&reg.devices()[1]), p2.alias);
    assert!(!marks.contains(&device_key(&reg.devices()[1])));

    token.cancel();
    relay_task.await.unwrap();
    fleet.shutdown().await;
}

/// The same at the registry level with two sightings of one MAC from different addresses (no
/// relay): the name lookup is by MAC, so it does not care where the sighting came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sightings_of_one_mac_from_different_addresses_are_one_named_device() {
    let b = base();
    let fleet = sim::start(FleetSpec {
        profiles: vec!["kp115-us-hw1".into()],
        ..FleetSpec::on_free_port(b, 1)
    })
    .await
    .expect("fleet starts");
    let p = &fleet.plugs()[0];
    let names = Names::from_pairs([(p.mac.as_str(), "Desk lamp")]);
    let mut s = sighting(p.addr(), fleet.port(), 1).await;
    let mut reg = Registry::new(3);
    reg.observe(&s);
    let moved_to = IpAddr::V4(Ipv4Addr::from(u32::from(b) + 40));
    s.ip = moved_to;
    s.at = 2;
    assert_eq!(
        reg.observe(&s),
        vec![Change::Moved {
            idx: 0,
            from: p.addr(),
            to: moved_to
        }]
    );
    assert_eq!(reg.find_by_mac(&p.mac), Some(0));
    assert_eq!(names.display_device(&reg.devices()[0]), "Desk lamp");
    fleet.shutdown().await;
}
