#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A slow UI: the poller's reports wait while the consumer is paused, and that wait is bounded
//! — once about one report per tracked plug is waiting, no new poll starts — and nothing is
//! lost: when the consumer reads again, every plug's last report is of its state now, not of
//! its state before the pause (no stale value left on screen). 250 simulated plugs on
//! loopback, a 50 ms interval, a consumer paused for 40 intervals.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use plugfleet::net::ClientConfig;
use plugfleet::net::client::Client;
use plugfleet::net::poller::{Control, PollConfig, PollReport, Target, run};
use plugfleet::protocol::{Request, Switching};
use plugfleet::sim::{self, FleetSpec};
use tokio_util::sync::CancellationToken;

const PLUGS: usize = 250;
/// The app's channel, kept small so that the poller's own queue is what is tested.
const QUEUE: usize = 16;
const INTERVAL: Duration = Duration::from_millis(50);

fn base() -> Ipv4Addr {
    let pid = (std::process::id() % 200) as u8;
    Ipv4Addr::new(127, 208, pid, 2)
}

async fn recv(rx: &mut tokio::sync::mpsc::Receiver<PollReport>) -> PollReport {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("reports keep coming")
        .expect("poller alive")
}

/// The relay state a report says.
fn relay_of(rep: &PollReport) -> bool {
    let read = rep
        .outcome
        .as_ref()
        .unwrap_or_else(|e| panic!("{}: {e}", rep.key));
    read.sysinfo.relay_on.expect("a relay")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_consumer_bounds_the_queue_and_sees_every_plug_fresh_after() {
    let spec = FleetSpec {
        profiles: vec!["hs110-us-hw1".into()],
        ..FleetSpec::on_free_port(base(), PLUGS)
    };
    let fleet = sim::start(spec).await.expect("fleet starts");
    let port = fleet.port();
    let client = ClientConfig::with_timeout(port, Duration::from_secs(2));
    let cfg = PollConfig {
        interval: INTERVAL,
        client,
        ..PollConfig::default()
    };
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::channel(PLUGS);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PollReport>(QUEUE);
    let token = CancellationToken::new();
    let task = tokio::spawn(run(cfg, ctl_rx, tx, token.clone()));
    for p in fleet.plugs() {
        ctl_tx
            .send(Control::Track(Target {
                key: p.addr().to_string(),
                addr: SocketAddr::new(p.addr(), port),
            }))
            .await
            .unwrap();
    }
    let requests = || fleet.plugs().iter().map(|p| p.requests()).sum::<u64>();

    // Every plug read a few times, as a UI that keeps up reads them.
    let mut last: HashMap<String, bool> = HashMap::new();
    let mut reads: HashMap<String, u32> = HashMap::new();
    while reads.len() < PLUGS || reads.values().any(|n| *n < 3) {
        let rep = recv(&mut rx).await;
        last.insert(rep.key.clone(), relay_of(&rep));
        *reads.entry(rep.key.clone()).or_default() += 1;
    }

    // The consumer stops reading for 40 intervals. Meanwhile every plug's relay is flipped.
    let before = requests();
    let switch = ClientConfig::with_timeout(port, Duration::from_secs(2));
    let mut want: HashMap<String, bool> = HashMap::new();
    for p in fleet.plugs() {
        let key = p.addr().to_string();
        let on = !last[&key];
        Client::new(p.addr(), switch)
            .call(&Request::set_power(Switching::Relay, on, None))
            .await
            .expect("switched");
        want.insert(key, on);
    }
    tokio::time::sleep(INTERVAL * 40).await;
    let during = requests() - before - PLUGS as u64;
    // Unbounded, 40 intervals would be 10,000 polls, each report kept. The poller stops once
    // about a report per plug waits: what it polled is at most that, the channel and the polls
    // alive at once (4 × concurrency) before and after.
    let bound = (PLUGS + 1 + QUEUE + 2 * 4 * PollConfig::default().concurrency) as u64;
    assert!(
        during <= bound,
        "{during} polls while the consumer was paused (bound {bound})"
    );
    tokio::time::sleep(INTERVAL * 10).await;
    let later = requests() - before - PLUGS as u64;
    assert_eq!(
        later, during,
        "no poll starts while a report per plug is waiting"
    );

    // Reading again: the waiting reports first (some of them from before the switch), then
    // fresh ones; soon every plug's last report says what its relay is now.
    let mut fresh = 0;
    while last.iter().any(|(k, on)| want[k] != *on) {
        let rep = recv(&mut rx).await;
        last.insert(rep.key.clone(), relay_of(&rep));
        fresh += 1;
        assert!(fresh < 20 * PLUGS, "stale relays after {fresh} reports");
    }
    for p in fleet.plugs() {
        assert_eq!(
            p.relays(),
            vec![want[&p.addr().to_string()]],
            "{}",
            p.addr()
        );
    }
    eprintln!("{during} polls while paused (bound {bound}); {fresh} reports until all fresh");
    token.cancel();
    task.await.unwrap();
    fleet.shutdown().await;
}
