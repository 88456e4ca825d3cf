#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The energy history in the whole app, in-process (runtime, update, drawing; a `TestBackend`
//! terminal, keys through a channel) on simulated plugs: the glitching plug's poisoned day is
//! flagged in the detail pane's chart; `e` erases only after `y`, read-only refuses.
//!
//! Every wait is on a condition of the screen or of the simulated plug, bounded only to stop a
//! hang; nothing asserts how long anything took.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plugfleet::app::state::{App, Settings};
use plugfleet::net::client::{Client, ClientConfig};
use plugfleet::net::discovery::DiscoveryConfig;
use plugfleet::net::poller::PollConfig;
use plugfleet::protocol::Request;
use plugfleet::protocol::reply::parse_stats;
use plugfleet::runtime::sources::discovery_source;
use plugfleet::runtime::{self, Io, Keys, Setup};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec, SimError};
use plugfleet::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{Event as CtEvent, KeyCode, KeyEvent, KeyModifiers};
use tokio::sync::mpsc;
use tokio::time::Instant;

const PATIENCE: Duration = Duration::from_secs(30);
const WIDTH: u16 = 200;
const HEIGHT: u16 = 50;

/// One metered plug with the `history-glitch` fault, on 127.68.<block>.2.
async fn start_plug(block: u8) -> Fleet {
    start_faulty(block, FaultKind::HistoryGlitch).await
}

/// One metered plug with `fault`, on 127.68.<block>.2.
async fn start_faulty(block: u8, fault: FaultKind) -> Fleet {
    let base = Ipv4Addr::new(127, 68, block, 2);
    let mut last = None;
    for _ in 0..8 {
        let spec = FleetSpec {
            profiles: vec!["hs110-us-hw1".into()],
            faults: vec![(base, fault)],
            ..FleetSpec::on_free_port(base, 1)
        };
        match sim::start(spec).await {
            Ok(f) => return f,
            Err(e @ SimError::AddrInUse { .. }) => last = Some(e),
            Err(e) => panic!("fleet at {base}: {e}"),
        }
    }
    panic!("no free port for the fleet at {base}: {last:?}");
}

struct Driver {
    keys: mpsc::UnboundedSender<std::io::Result<CtEvent>>,
    screen: Arc<Mutex<String>>,
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

    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

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

    async fn wait_for_new(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let seen = *self.frames.lock().unwrap();
        self.wait_for(what, |s| *self.frames.lock().unwrap() > seen && cond(s))
            .await
    }
}

fn settings(read_only: bool) -> Settings {
    Settings {
        interval: Duration::from_millis(500),
        color: false,
        read_only,
        label: Some("TEST".into()),
        status_ttl: Duration::from_secs(3600),
        // The app's calendar is the machine's, as the simulated plug's is.
        epoch_unix_ms: plugfleet::record::unix_ms(std::time::SystemTime::now()),
        ..Settings::default()
    }
}

async fn with_app<F, Fut>(fleet: &Fleet, settings: Settings, script: F)
where
    F: FnOnce(Driver) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    with_app_timeout(fleet, settings, Duration::from_secs(2), script).await;
}

/// [`with_app`] with `writes` as the timeout of write actions and history fetches.
async fn with_app_timeout<F, Fut>(fleet: &Fleet, settings: Settings, writes: Duration, script: F)
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
        client: ClientConfig::with_timeout(fleet.port(), writes),
        metrics: None,
    };
    let discovery = DiscoveryConfig {
        hosts: fleet.plugs().iter().map(|p| p.ip).collect(),
        port: fleet.port(),
        tdp_port: fleet.tdp_port(),
        timeout: Duration::from_secs(1),
        ..DiscoveryConfig::default()
    };
    assert!(discovery.hosts.iter().all(Ipv4Addr::is_loopback));
    let io = Io {
        keys,
        sources: discovery_source(discovery, Duration::from_secs(30)),
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
    let mut result = None;
    tokio::select! {
        r = &mut run => result = Some(r),
        () = &mut script => {}
    }
    match result {
        Some(r) => r.expect("the app ran"),
        None => tokio::time::timeout(PATIENCE, run)
            .await
            .expect("the app quits after the script")
            .expect("the app ran"),
    }
}

/// The largest day of this month the plug itself reports now.
async fn max_day_kwh(fleet: &Fleet) -> f64 {
    let plug = &fleet.plugs()[0];
    let today = plugfleet::protocol::calendar::Date::from_unix(unix_now());
    let client = Client::new(
        plug.ip.into(),
        ClientConfig::with_timeout(fleet.port(), Duration::from_secs(2)),
    );
    let root = client
        .call(&Request::DayStat {
            year: today.year,
            month: today.month,
            child: None,
        })
        .await
        .expect("daystat");
    parse_stats(&root, "get_daystat")
        .expect("days")
        .iter()
        .map(|e| e.energy_kwh)
        .fold(0.0, f64::max)
}

/// The chart rows: lines of the detail pane under the "30 days" caption.
fn chart_block(screen: &str) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("30 days from"))
        .expect("the day chart's caption");
    lines[at + 1..(at + 5).min(lines.len())].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_glitching_plugs_poisoned_day_is_flagged_in_the_chart_and_erased_only_after_y() {
    let fleet = start_plug(1).await;
    let bogus = plugfleet::text::glyph::BOGUS;
    assert!(
        max_day_kwh(&fleet).await >= 600.0,
        "the sim holds the glitch"
    );
    with_app(&fleet, settings(false), |d| async move {
        d.wait_for("the plug read", |s| s.contains("127.68.1.2"))
            .await;
        d.key(KeyCode::Enter);
        let s = d
            .wait_for("the energy history with its flagged day", |s| {
                s.contains("energy history today") && s.contains("30 days from")
            })
            .await;
        // The poisoned day: its bar carries the bogus glyph, and its line says why.
        assert!(chart_block(&s).contains(bogus), "{s}");
        let flagged = s
            .lines()
            .find(|l| l.contains(&format!("{bogus} 20")) && l.contains("kWh in 24 h"))
            .unwrap_or_else(|| panic!("a flagged day line:\n{s}"));
        assert!(flagged.contains("600."), "{flagged}");
        assert!(s.contains("12 months from"), "{s}");
        // A wide table shows kWh today / this month, flagged by the history's verdict.
        let row = s
            .lines()
            .find(|l| l.contains("127.68.1.2") && !l.contains("address"))
            .expect("the plug's row");
        assert!(s.contains("kWh day/month"), "{s}");
        let cell = row
            .split_whitespace()
            .find(|w| w.contains('/') && w.contains(bogus))
            .unwrap_or_else(|| panic!("a flagged today/month cell in {row}"));
        let month: f64 = cell
            .split('/')
            .nth(1)
            .and_then(|m| m.trim_end_matches(bogus).parse().ok())
            .expect("the month's kWh");
        assert!(month >= 600.0, "{cell}");

        // `e` asks and says what will be lost; `n` leaves the history alone.
        d.key(KeyCode::Char('e'));
        let s = d
            .wait_for_new("the erase question", |s| s.contains("erased for good"))
            .await;
        assert!(s.contains("this month") && s.contains("days ("), "{s}");
        d.key(KeyCode::Char('n'));
        d.wait_for_new("the question closed", |s| !s.contains("erased for good"))
            .await;
        // Enter does not confirm either.
        d.key(KeyCode::Char('e'));
        d.wait_for_new("the question again", |s| s.contains("erased for good"))
            .await;
        d.key(KeyCode::Enter);
        d.key(KeyCode::Esc);
        d.wait_for_new("cancelled", |s| !s.contains("erased for good"))
            .await;
        d.key(KeyCode::Char('q'));
    })
    .await;
    assert!(
        max_day_kwh(&fleet).await >= 600.0,
        "n, Enter and Esc erased nothing"
    );
    with_app(&fleet, settings(false), |d| async move {
        d.wait_for("the plug read", |s| s.contains("127.68.1.2"))
            .await;
        d.key(KeyCode::Enter);
        d.wait_for("the flagged chart", |s| {
            s.contains("30 days from") && chart_block(s).contains(bogus)
        })
        .await;
        d.key(KeyCode::Char('e'));
        d.wait_for_new("the erase question", |s| s.contains("erased for good"))
            .await;
        d.key(KeyCode::Char('y'));
        d.wait_for("erased", |s| s.contains("erase energy statistics done"))
            .await;
        // Fetched again after the erase: the glitch is gone from the chart.
        d.wait_for("the clean chart", |s| {
            s.contains("30 days from") && !chart_block(s).contains(bogus)
        })
        .await;
        d.key(KeyCode::Char('q'));
    })
    .await;
    assert!(max_day_kwh(&fleet).await < 100.0, "y erased the history");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_the_erase() {
    let fleet = start_plug(2).await;
    with_app(&fleet, settings(true), |d| async move {
        d.wait_for("the plug read", |s| s.contains("127.68.2.2"))
            .await;
        d.key(KeyCode::Enter);
        d.wait_for("the chart", |s| s.contains("30 days from"))
            .await;
        d.key(KeyCode::Char('e'));
        let s = d
            .wait_for_new("the refusal", |s| s.contains("read-only mode"))
            .await;
        assert!(
            !s.contains("erased for good"),
            "no question in read-only mode"
        );
        // Not even a `y` typed blind does anything.
        d.key(KeyCode::Char('y'));
        d.key(KeyCode::Char('q'));
    })
    .await;
    assert!(max_day_kwh(&fleet).await >= 600.0, "nothing was erased");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_glitching_plug_shows_its_poisoned_day_in_the_chart() {
    let base = Ipv4Addr::new(127, 68, 4, 2);
    let mut fleet = None;
    for _ in 0..8 {
        match sim::start(plugfleet::cmd::demo::demo_spec(base)).await {
            Ok(f) => {
                fleet = Some(f);
                break;
            }
            Err(SimError::AddrInUse { .. }) => continue,
            Err(e) => panic!("demo fleet: {e}"),
        }
    }
    let fleet = fleet.expect("the demo fleet starts");
    let glitchy = fleet.plugs()[1].ip;
    assert!(fleet.plugs()[1].faults.contains(&FaultKind::HistoryGlitch));
    let ip = glitchy.to_string();
    with_app(&fleet, settings(false), |d| async move {
        d.wait_for("the glitching plug read", |s| s.contains(&ip))
            .await;
        d.key(KeyCode::Char('/'));
        for c in ip.chars() {
            d.key(KeyCode::Char(c));
        }
        d.key(KeyCode::Enter);
        d.key(KeyCode::Enter);
        let s = d
            .wait_for("its chart with the poisoned day", |s| {
                s.contains("30 days from") && chart_block(s).contains(plugfleet::text::glyph::BOGUS)
            })
            .await;
        assert!(
            s.lines()
                .any(|l| l.contains("kWh in 24 h is more than") && l.contains("600.")),
            "{s}"
        );
        d.key(KeyCode::Char('q'));
    })
    .await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plug_hanging_on_daystat_keeps_being_polled_in_the_app() {
    let fleet = start_faulty(5, FaultKind::HangDaystat).await;
    let plug = fleet.plugs()[0].clone();
    // The history fetch waits a minute for its answer; the polls (every 0.5 s) go on meanwhile.
    with_app_timeout(
        &fleet,
        settings(false),
        Duration::from_secs(60),
        |d| async move {
            d.wait_for("the plug read", |s| s.contains("127.68.5.2"))
                .await;
            d.key(KeyCode::Enter);
            let first = plug.stats().requests;
            let deadline = Instant::now() + PATIENCE;
            while plug.stats().requests < first + 5 {
                assert!(Instant::now() < deadline, "polls stopped:\n{}", d.screen());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let s = d.screen();
            assert!(s.contains("Seen") && s.contains("127.68.5.2"), "{s}");
            assert!(
                !s.contains("energy history"),
                "the daystat request was answered:\n{s}"
            );
            d.key(KeyCode::Char('q'));
        },
    )
    .await;
    fleet.shutdown().await;
}

/// Now by this machine's clock, in Unix seconds (the simulated plugs' clock, on UTC).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
