#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One session per newer-protocol device, whoever talks to it: the TUI's relay writes go over
//! the poller's kept session, and `status --metrics`' rounds keep one session per plug across
//! the rounds. Counted on the simulated devices (handshake2 accepted / RSA key exchanges), so a
//! second session anywhere shows as a second handshake.
//!
//! Every wait has a bound that only stops a hang; nothing asserts how long anything took.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugfleet::app::state::{App, Settings};
use plugfleet::fleet::quiet::QuietRules;
use plugfleet::net::client::ClientConfig;
use plugfleet::net::discovery::DiscoveryConfig;
use plugfleet::net::klap::Credentials;
use plugfleet::net::poller::PollConfig;
use plugfleet::runtime::sources::discovery_source;
use plugfleet::runtime::{self, Io, Keys, Setup};
use plugfleet::sim::klap::{self as simklap, KlapFleet, KlapSpec};
use plugfleet::sim::{self, Fleet, FleetSpec};
use plugfleet::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event as CtEvent, KeyCode, KeyEvent, KeyModifiers};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest wait for anything: only there so a broken app fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// A distinct 127.<pid-derived>.<n>.2 base per test (other newer-protocol test files use other
/// third octets).
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 100 + (std::process::id() % 90) as u8, 90 + n, 2)
}

async fn fleet(profiles: &[&str]) -> (Fleet, KlapFleet) {
    let spec = FleetSpec {
        profiles: profiles.iter().map(|s| s.to_string()).collect(),
        ..FleetSpec::on_free_port(base(), profiles.len())
    };
    let fleet = sim::start(spec).await.expect("fleet starts");
    let k = simklap::serve(&fleet, &KlapSpec::default())
        .await
        .expect("KLAP servers start");
    (fleet, k)
}

fn account() -> Credentials {
    Credentials::new(simklap::DEFAULT_USERNAME, simklap::DEFAULT_PASSWORD)
}

fn discovery_of(fleet: &Fleet) -> DiscoveryConfig {
    let cfg = DiscoveryConfig {
        targets: Vec::new(),
        hosts: fleet.plugs().iter().map(|p| p.ip).collect(),
        port: fleet.port(),
        tdp_port: fleet.tdp_port(),
        timeout: Duration::from_secs(2),
        ..DiscoveryConfig::default()
    };
    assert!(cfg.hosts.iter().all(Ipv4Addr::is_loopback));
    cfg
}

/// Waits until `cond` holds, checking every 20 ms; panics with `what` after [`PATIENCE`].
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
async fn tui_relay_writes_reuse_the_pollers_session() {
    // One plug per newer transport and dialect; the relay of each is switched twice.
    let profiles = [
        "kp125m-us-hw1-smart",
        "hs100-uk-hw4-klap",
        "p110-eu-hw1-aes",
    ];
    let (fleet, k) = fleet(&profiles).await;
    let plugs = fleet.plugs().to_vec();
    let (keys_tx, keys_rx) = mpsc::unbounded_channel::<std::io::Result<CtEvent>>();
    let keys: Keys = Box::pin(futures_util::stream::unfold(keys_rx, |mut rx| async move {
        rx.recv().await.map(|ev| (ev, rx))
    }));
    let key = |c: char| {
        let ev = CtEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
        keys_tx.send(Ok(ev)).expect("the app reads keys");
    };
    let client = ClientConfig::with_timeout(fleet.port(), Duration::from_secs(2));
    let settings = Settings {
        interval: Duration::from_millis(300),
        color: false,
        account: Some(account()),
        ..Settings::default()
    };
    let setup = Setup {
        poll: PollConfig {
            interval: settings.interval,
            client,
            ..PollConfig::default()
        },
        client,
        metrics: None,
    };
    let io = Io {
        keys,
        sources: discovery_source(discovery_of(&fleet), Duration::from_secs(60)),
        signals: false,
    };
    let screen = Arc::new(Mutex::new(String::new()));
    let s = screen.clone();
    let draw = move |f: &mut ratatui::Frame, app: &App| {
        ui::render(f, app);
        *s.lock().unwrap() = text_of(f.buffer_mut());
    };
    let mut terminal = Terminal::new(TestBackend::new(140, 30)).unwrap();
    let app = App::new(settings, std::time::Instant::now());
    let run = runtime::run(&mut terminal, app, setup, io, draw);
    tokio::pin!(run);
    let ips: Vec<String> = plugs.iter().map(|p| p.ip.to_string()).collect();
    let script = async {
        // Every plug read (its row judged ok): the poller's sessions are made.
        until("every newer plug read", || {
            let s = screen.lock().unwrap().clone();
            let rows: Vec<&str> = s
                .lines()
                .filter(|l| ips.iter().any(|ip| l.contains(ip.as_str())))
                .collect();
            rows.len() == plugs.len()
                && rows.iter().all(|l| l.split_whitespace().any(|w| w == "ok"))
        })
        .await;
        // Rows are in address order: g selects the first, j moves down.
        for (i, p) in plugs.iter().enumerate() {
            let dev = k.device(p.ip).expect("a KLAP/AES device");
            for round in 0..2 {
                let before = p.relays();
                // The poller read the current state since the last switch, so `t` asks for
                // the other one (off asks to confirm with `y`; on acts at once).
                let seen = dev.requests();
                until("two more polls", || dev.requests() >= seen + 2).await;
                key('g');
                for _ in 0..i {
                    key('j');
                }
                key('t');
                key('y');
                until(&format!("{}: switch {round}", p.profile), || {
                    p.relays() != before
                })
                .await;
            }
            assert_eq!(
                dev.handshakes(),
                1,
                "{}: polls and two writes over one session",
                p.profile
            );
        }
        key('q');
    };
    tokio::pin!(script);
    let mut result = None;
    tokio::select! {
        r = &mut run => result = Some(r),
        () = &mut script => {}
    }
    let result = match result {
        Some(r) => r,
        None => tokio::time::timeout(PATIENCE, run)
            .await
            .expect("the app quits after the script"),
    };
    result.expect("the app ends cleanly on q");
    for p in &plugs {
        assert_eq!(
            k.device(p.ip).unwrap().handshakes(),
            1,
            "{}: one session in the whole run",
            p.profile
        );
    }
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_metrics_rounds_keep_one_session_per_plug() {
    let profiles = [
        "hs110-eu-hw4",
        "hs100-uk-hw4-klap",
        "kp125m-us-hw1-smart",
        "p110-eu-hw1-aes",
    ];
    let (fleet, k) = fleet(&profiles).await;
    let (tx, mut rx) = tokio::sync::watch::channel(Default::default());
    let token = CancellationToken::new();
    let rounds = tokio::spawn(plugfleet::cmd::status::poll_publish_record(
        discovery_of(&fleet),
        ClientConfig::with_timeout(fleet.port(), Duration::from_secs(2)),
        Default::default(),
        (Default::default(), QuietRules::default()),
        Duration::from_millis(50),
        tx,
        token.clone(),
        None,
        Some(account()),
    ));
    let plugs = fleet.plugs().to_vec();
    let newer: Vec<_> = plugs[1..]
        .iter()
        .map(|p| k.device(p.ip).expect("newer"))
        .collect();
    // Four published rounds, each of which read every newer plug.
    let mut published = 0;
    let four = tokio::time::timeout(PATIENCE, async {
        while published < 4 {
            rx.changed().await.expect("rounds run");
            published += 1;
        }
    })
    .await;
    token.cancel();
    rounds.await.unwrap().expect("rounds end cleanly");
    assert!(four.is_ok(), "four rounds published, {published} seen");
    for (p, dev) in plugs[1..].iter().zip(&newer) {
        assert!(
            dev.requests() >= 4,
            "{}: read in every round ({} requests)",
            p.profile,
            dev.requests()
        );
        assert_eq!(
            dev.handshakes(),
            1,
            "{}: one session across the rounds",
            p.profile
        );
    }
    fleet.shutdown().await;
}
