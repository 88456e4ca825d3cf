#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The whole app in-process (as imsnif/bandwhich tests its TUI): the real runtime, update and
//! drawing, on a simulated fleet on loopback, with a `TestBackend` terminal and keys typed
//! through a channel. No pseudo-terminal: `tests/pty_demo.rs` keeps the one test that the real
//! binary restores the terminal.
//!
//! Every wait is on a condition of the screen (or of the simulated plug) with a bound that
//! only stops a hang; nothing asserts how long anything took.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugfleet::app::state::{App, Settings};
use plugfleet::net::client::ClientConfig;
use plugfleet::net::discovery::DiscoveryConfig;
use plugfleet::net::poller::PollConfig;
use plugfleet::runtime::sources::discovery_source;
use plugfleet::runtime::{self, Io, Keys, Setup};
use plugfleet::sim::{self, Fleet, FleetSpec, SimError};
use plugfleet::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{Event as CtEvent, KeyCode, KeyEvent, KeyModifiers};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Longest wait for anything on screen: only there so a broken app fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

const WIDTH: u16 = 140;
const HEIGHT: u16 = 30;

/// Plugs of the fleet, in address order: a metered plug, a plain plug, a six-outlet strip and
/// a small metered plug.
const PROFILES: [&str; 4] = [
    "hs110-eu-hw4",
    "hs100-us-hw2",
    "hs300-us-hw2",
    "kp115-us-hw1",
];

/// A loopback block of our own for each test: 127.67.<block>.2 and up (other test files use
/// other second octets). The addresses are fixed because the simulator derives each plug's
/// alias, MAC and ids from its address, and the snapshots show them; the port is picked free,
/// so another run of this test at the same time does not collide.
async fn start_fleet(block: u8) -> Fleet {
    let base = Ipv4Addr::new(127, 67, block, 2);
    let mut last = None;
    for _ in 0..8 {
        let spec = FleetSpec {
            profiles: PROFILES.iter().map(|s| s.to_string()).collect(),
            ..FleetSpec::on_free_port(base, PROFILES.len())
        };
        match sim::start(spec).await {
            Ok(f) => return f,
            // The free port of the first plug was taken on another address meanwhile.
            Err(e @ SimError::AddrInUse { .. }) => last = Some(e),
            Err(e) => panic!("fleet at {base}: {e}"),
        }
    }
    panic!("no free port for the fleet at {base}: {last:?}");
}

/// Discovery of exactly the fleet's plugs, by unicast to each (every address is loopback).
fn discovery_of(fleet: &Fleet) -> DiscoveryConfig {
    let cfg = DiscoveryConfig {
        hosts: fleet.plugs().iter().map(|p| p.ip).collect(),
        port: fleet.port(),
        tdp_port: fleet.tdp_port(),
        timeout: Duration::from_secs(1),
        ..DiscoveryConfig::default()
    };
    assert!(cfg.hosts.iter().all(Ipv4Addr::is_loopback));
    assert!(cfg.targets.is_empty() && cfg.sweeps.is_empty());
    cfg.validate(false).expect("valid discovery");
    cfg
}

/// What a test holds while the app runs: the keys it types and the last frame drawn.
struct Driver {
    keys: mpsc::UnboundedSender<std::io::Result<CtEvent>>,
    screen: Arc<Mutex<String>>,
    /// Frames drawn so far.
    frames: Arc<Mutex<u64>>,
}

fn text_of(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let line: String = (0..area.width)
            .map(|x| buf[(x, y)].symbol().to_string())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

impl Driver {
    fn key(&self, code: KeyCode) {
        let ev = CtEvent::Key(KeyEvent::new(code, KeyModifiers::NONE));
        self.keys.send(Ok(ev)).expect("the app reads keys");
    }

    fn type_str(&self, s: &str) {
        for c in s.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    fn frames(&self) -> u64 {
        *self.frames.lock().unwrap()
    }

    /// Waits until the screen satisfies `cond`; returns that screen.
    async fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = self.screen();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}; the screen:\n{s}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a frame drawn after this call satisfies `cond` (so it reflects the keys
    /// typed before).
    async fn wait_for_new(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let seen = self.frames();
        self.wait_for(what, |s| self.frames() > seen && cond(s))
            .await
    }
}

fn settings() -> Settings {
    Settings {
        interval: Duration::from_secs(1),
        color: false,
        label: Some("TEST".into()),
        // The status line keeps its message while a test looks (however slow the machine).
        status_ttl: Duration::from_secs(3600),
        ..Settings::default()
    }
}

/// Runs the whole app on `fleet` with `settings` while `script` drives it; returns what the
/// runtime returned. The app must have quit by the time the script ends.
async fn with_app<F, Fut>(fleet: &Fleet, settings: Settings, script: F) -> anyhow::Result<()>
where
    F: FnOnce(Driver) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let keys: Keys = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|ev| (ev, rx))
    }));
    let client = ClientConfig::with_timeout(fleet.port(), Duration::from_secs(2));
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
        sources: discovery_source(discovery_of(fleet), Duration::from_secs(30)),
        signals: false,
    };
    let screen = Arc::new(Mutex::new(String::new()));
    let frames = Arc::new(Mutex::new(0u64));
    let (s, n) = (screen.clone(), frames.clone());
    let draw = move |f: &mut ratatui::Frame, app: &App| {
        ui::render(f, app);
        *s.lock().unwrap() = text_of(f.buffer_mut());
        *n.lock().unwrap() += 1;
    };
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
    let app = App::new(settings, std::time::Instant::now());
    let driver = Driver {
        keys: tx,
        screen,
        frames,
    };
    let run = runtime::run(&mut terminal, app, setup, io, draw);
    tokio::pin!(run);
    let script = script(driver);
    tokio::pin!(script);
    // The script runs beside the app; the app must end (on `q`) once the script is done.
    let mut result = None;
    tokio::select! {
        r = &mut run => result = Some(r),
        () = &mut script => {}
    }
    match result {
        Some(r) => r,
        None => tokio::time::timeout(PATIENCE, run)
            .await
            .expect("the app quits after the script"),
    }
}

/// The lines of the device table that show one of the fleet's addresses.
fn rows<'a>(screen: &'a str, fleet: &Fleet) -> Vec<&'a str> {
    let prefix = {
        let o = fleet.plugs()[0].ip.octets();
        format!("{}.{}.{}.", o[0], o[1], o[2])
    };
    screen.lines().filter(|l| l.contains(&prefix)).collect()
}

/// Waits until discovery found every plug and the poller read each one (every row online
/// and judged ok); returns that screen.
async fn all_read(d: &Driver, fleet: &Fleet) -> String {
    d.wait_for("a row per plug, each read and ok", |s| {
        let r = rows(s, fleet);
        // The word, not the glyph beside it: glyphs are the theme's to choose.
        r.len() == PROFILES.len() && r.iter().all(|l| l.split_whitespace().any(|w| w == "ok"))
    })
    .await
}

/// The screen with what varies from run to run replaced: the port, the readings (W, V, A, kWh),
/// the signal strength and the age of each row become `~` (or stay `—` when there is none),
/// and the fleet's total power `~ W`. Everything else (aliases, addresses, models, versions,
/// health, relay, ids) is the simulator's and stable.
fn stable(screen: &str, fleet: &Fleet) -> String {
    // Padded to the port's width, so the borders after it stay where they are.
    let port = format!(":{}", fleet.port());
    let s = screen.replace(&port, &format!("{:<1$}", ":PORT", port.len()));
    let lines: Vec<Vec<char>> = s.lines().map(|l| l.chars().collect()).collect();
    let header = lines
        .iter()
        .find(|l| {
            let t: String = l.iter().collect();
            t.contains("Relay") && t.contains("kWh") && t.contains("Seen")
        })
        .expect("the table header");
    let header: String = header.iter().collect();
    // Each volatile column is right-aligned under its title: it spans from after the previous
    // title's end to its own title's end.
    let mut ends = Vec::new();
    let mut from = 0;
    for title in ["Relay", " W", " V", " A", " kWh", " RSSI", " Seen"] {
        let byte = header[from..].find(title).expect("a column title") + from;
        from = byte + title.len();
        ends.push(header[..from].chars().count());
    }
    let block = {
        let o = fleet.plugs()[0].ip.octets();
        format!("{}.{}.{}.", o[0], o[1], o[2])
    };
    let mut out = Vec::new();
    for l in &lines {
        let text: String = l.iter().collect();
        let mut l = l.clone();
        if text.contains(&block) && !text.contains('│') {
            for w in ends.windows(2) {
                let (start, end) = (w[0], w[1].min(l.len()));
                if start >= end {
                    continue;
                }
                let cell: String = l[start..end].iter().collect();
                let seen = w[1] == *ends.last().expect("ends");
                if seen || cell.chars().any(|c| c.is_ascii_digit()) {
                    l[start..end].iter_mut().for_each(|c| *c = ' ');
                    l[end - 1] = '~';
                }
            }
        }
        let mut t: String = l.into_iter().collect();
        if let Some(i) = t.find(" W (flagged excluded)") {
            let start = t[..i].rfind(' ').map_or(0, |j| j + 1);
            t.replace_range(start..i, "~");
        }
        out.push(t.trim_end().to_owned());
    }
    out.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_appear_then_keys_move_open_filter_and_quit() {
    let fleet = start_fleet(1).await;
    let ips: Vec<String> = fleet.plugs().iter().map(|p| p.ip.to_string()).collect();
    let result = with_app(&fleet, settings(), |d| {
        let fleet = &fleet;
        let ips = &ips;
        async move {
            // Discovery finds every plug and the poller reads them: four rows, each with its
            // address, the metered ones with a reading.
            let s = all_read(&d, fleet).await;
            assert!(ips.iter().all(|ip| s.contains(ip.as_str())), "{s}");
            for (ip, model) in ips.iter().zip(["HS110", "HS100", "HS300", "KP115"]) {
                let row = rows(&s, fleet)
                    .into_iter()
                    .find(|r| r.contains(ip.as_str()))
                    .expect("a row per plug");
                assert!(row.contains(model), "{ip} should be a {model}: {row}");
            }
            insta::assert_snapshot!("fleet", stable(&s, fleet));

            // g selects the first row (the selection follows whichever plug answered first),
            // j the second; Enter opens its detail pane (the HS100's).
            d.key(KeyCode::Char('g'));
            d.key(KeyCode::Char('j'));
            d.key(KeyCode::Enter);
            let s = d
                .wait_for_new("the detail pane of the second plug", |s| {
                    s.contains("HS100")
                        && s.lines().filter(|l| l.contains(ips[1].as_str())).count() >= 2
                })
                .await;
            insta::assert_snapshot!("detail", stable(&s, fleet));

            // Esc closes it; `/` filters by text: only the strip is left.
            d.key(KeyCode::Esc);
            d.key(KeyCode::Char('/'));
            d.type_str("hs300");
            d.key(KeyCode::Enter);
            let s = d
                .wait_for_new("only the strip", |s| {
                    let r = rows(s, fleet);
                    !r.is_empty() && r.iter().all(|l| l.contains(ips[2].as_str()))
                })
                .await;
            assert!(
                rows(&s, fleet).iter().all(|r| !r.contains("HS110")),
                "filtered out: {s}"
            );
            insta::assert_snapshot!("filtered", stable(&s, fleet));

            d.key(KeyCode::Esc);
            d.key(KeyCode::Char('q'));
        }
    })
    .await;
    result.expect("the app ends cleanly on q");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_switches_the_selected_plugs_relay_on_the_simulated_plug() {
    let fleet = start_fleet(2).await;
    let first = fleet.plugs()[0].clone();
    let before = first.relays();
    let ip = first.ip.to_string();
    let result = with_app(&fleet, settings(), |d| {
        let fleet = &fleet;
        let (first, ip) = (&first, &ip);
        let before = before.clone();
        async move {
            let s = all_read(&d, fleet).await;
            assert!(s.contains(ip.as_str()), "{s}");
            // g selects the first row; t toggles its relay through the runtime's write path,
            // to the simulated plug.
            d.key(KeyCode::Char('g'));
            d.key(KeyCode::Char('t'));
            // Off asks (`y` only); on acts at once and `y` is then unbound in the table.
            d.key(KeyCode::Char('y'));
            let deadline = Instant::now() + PATIENCE;
            while first.relays() == before {
                assert!(
                    Instant::now() < deadline,
                    "the relay never changed: {}",
                    d.screen()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(first.relays().len(), 1);
            assert_ne!(first.relays(), before);
            d.key(KeyCode::Char('q'));
        }
    })
    .await;
    result.expect("the app ends cleanly on q");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_the_write_and_leaves_the_plug_alone() {
    let fleet = start_fleet(3).await;
    let first = fleet.plugs()[0].clone();
    let before = first.relays();
    let settings = Settings {
        read_only: true,
        ..settings()
    };
    let result = with_app(&fleet, settings, |d| {
        let fleet = &fleet;
        async move {
            all_read(&d, fleet).await;
            // The title says read-only all along; the refusal is its own message.
            assert!(
                d.screen().contains("READ-ONLY") || d.screen().to_lowercase().contains("read-only")
            );
            d.key(KeyCode::Char('g'));
            d.key(KeyCode::Char('t'));
            d.wait_for_new("the read-only refusal", |s| {
                s.contains("read-only mode: writes are disabled")
            })
            .await;
            d.key(KeyCode::Char('q'));
        }
    })
    .await;
    result.expect("the app ends cleanly on q");
    assert_eq!(
        first.relays(),
        before,
        "read-only must not switch the relay"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_terminal_input_ends_the_app_instead_of_hanging() {
    let fleet = start_fleet(4).await;
    let result = with_app(&fleet, settings(), |d| async move {
        d.wait_for("the first frame", |s| s.contains("TEST")).await;
        d.keys
            .send(Err(std::io::Error::other("the terminal went away")))
            .expect("the app reads keys");
    })
    .await;
    result.expect("input failing is a clean shutdown");
    fleet.shutdown().await;
}
