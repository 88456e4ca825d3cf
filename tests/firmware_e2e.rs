#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end against simulated plugs on loopback: the runner, the file server and the job
//! together; every firmware fault; zero premature flash attempts.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use plugfleet::firmware::header::ImageHeader;
use plugfleet::firmware::image::ImageInfo;
use plugfleet::firmware::job::{JobTimings, Stage};
use plugfleet::firmware::plan::{self, PlanEntry, Verdict};
use plugfleet::firmware::runner::{
    BatchHandle, BatchReport, JobEvent, PlugResult, RunnerConfig, run_batch,
};
use plugfleet::net::{Client, ClientConfig};
use plugfleet::sim::{FaultKind, Fleet, FleetSpec, KnownImage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const PROFILE: &str = "hs110-us-hw1";
const IMAGE_NAME: &str = "hs110v1_us_1.2.9_Build_220101_Rel.101010.bin";
const NEW_SW: &str = "1.2.9 Build 220101 Rel.101010";

/// A distinct 127.x.y.0/24 block per fleet (other tests run in parallel).
fn base() -> Ipv4Addr {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::process::id();
    Ipv4Addr::new(
        127,
        150 + (p % 50) as u8,
        (n * 7 + p / 50 % 7) as u8 % 250,
        2,
    )
}

fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "plugfleet-fw-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A valid image for HS110(US) hw 1 in a fresh temp dir.
fn image_bytes() -> Vec<u8> {
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
    ImageHeader::new("HS110", "1", "US", "1.2.9", "220101", "101010").build(&payload)
}

fn image_file(dir: &Path) -> PathBuf {
    let path = dir.join(IMAGE_NAME);
    std::fs::write(&path, image_bytes()).unwrap();
    path
}

/// The simulated plugs accept the test image (as if signed by their vendor).
fn accepted() -> Vec<KnownImage> {
    vec![KnownImage::for_bytes(
        &image_bytes(),
        "HS110(US)",
        "1",
        NEW_SW,
    )]
}

async fn fleet(count: usize, faults: Vec<(usize, FaultKind)>) -> Fleet {
    let b = base();
    let mut spec = FleetSpec::on_free_port(b, count);
    spec.profiles = vec![PROFILE.into()];
    spec.time_scale = 0.01;
    spec.images = accepted();
    spec.faults = faults
        .into_iter()
        .map(|(i, f)| (Ipv4Addr::from(u32::from(b) + i as u32), f))
        .collect();
    Fleet::start(spec).await.unwrap()
}

fn client_cfg(port: u16) -> ClientConfig {
    ClientConfig {
        port,
        connect_timeout: Duration::from_millis(300),
        reply_timeout: Duration::from_millis(600),
        ..ClientConfig::default()
    }
}

fn config(port: u16, journal: Option<PathBuf>) -> RunnerConfig {
    RunnerConfig {
        client: client_cfg(port),
        timings: JobTimings {
            poll_interval: Duration::from_millis(20),
            download_stall: Duration::from_millis(1500),
            download_deadline: Duration::from_secs(30),
            request_deadline: Duration::from_secs(5),
            device_time_scale: 1.0,
            default_flash_time: Duration::from_millis(500),
            default_reboot_time: Duration::from_millis(500),
            quiet_margin: Duration::from_millis(50),
            verify_poll: Duration::from_millis(50),
            back_deadline: Duration::from_secs(3),
        },
        concurrency: 4,
        canary: false,
        stop_on_failure: false,
        force: false,
        serve_addr: None,
        serve_port: 0,
        journal,
    }
}

async fn plan_for(fleet: &Fleet, image: &Path) -> Vec<PlanEntry> {
    let img = Arc::new(ImageInfo::load(image).unwrap());
    let mut plugs = Vec::new();
    for p in fleet.plugs() {
        let s = Client::new(p.addr(), client_cfg(fleet.port()))
            .sysinfo()
            .await
            .unwrap();
        plugs.push((p.addr(), s));
    }
    plan::plan(&plugs, &[img])
}

async fn run(entries: Vec<PlanEntry>, cfg: RunnerConfig) -> (BatchReport, Vec<JobEvent>) {
    let (report, events, _) = run_with(entries, cfg, |_, _| {}).await;
    (report, events)
}

/// Runs a batch; `on_event` sees every event with the batch handle (to cancel).
async fn run_with(
    entries: Vec<PlanEntry>,
    cfg: RunnerConfig,
    on_event: impl Fn(&JobEvent, &BatchHandle) + Send + 'static,
) -> (BatchReport, Vec<JobEvent>, BatchHandle) {
    let (tx, mut rx) = mpsc::channel::<JobEvent>(64);
    let handle = BatchHandle::new(CancellationToken::new(), entries.iter().map(|e| e.plug.ip));
    let h2 = handle.clone();
    let collector = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(ev) = rx.recv().await {
            on_event(&ev, &h2);
            all.push(ev);
        }
        all
    });
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        run_batch(entries, cfg, tx, handle.clone()),
    )
    .await
    .expect("batch bounded in time")
    .unwrap();
    let events = collector.await.unwrap();
    (report, events, handle)
}

fn stages_of(events: &[JobEvent], ip: IpAddr) -> Vec<Stage> {
    events
        .iter()
        .filter_map(|e| match e {
            JobEvent::Transition { snapshot, .. } if snapshot.ip == ip => Some(snapshot.stage),
            _ => None,
        })
        .collect()
}

fn assert_no_premature_flash(fleet: &Fleet) {
    for p in fleet.plugs() {
        assert_eq!(p.premature_flash_attempts(), 0, "{}", p.ip);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_plug_is_updated_and_verified() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(1, vec![]).await;
    let plug = fleet.plugs()[0].clone();
    let before = plug.current_sw_ver();
    assert_ne!(before, NEW_SW);
    // The relay is on before the update (a simulated plug starts on or off depending on its
    // address); the fresh firmware boots with it open, so the job must restore it.
    Client::new(plug.addr(), client_cfg(fleet.port()))
        .set_relay(true, None)
        .await
        .unwrap();
    let entries = plan_for(&fleet, &image).await;
    assert_eq!(entries[0].verdict(), &Verdict::Compatible);
    let journal = dir.join("journal.jsonl");
    let (report, events) = run(entries, config(fleet.port(), Some(journal.clone()))).await;

    let r = &report.plugs[0];
    assert_eq!(r.result, PlugResult::Updated, "{r:?}");
    assert_eq!(r.from, before);
    assert_eq!(r.now.as_deref(), Some(NEW_SW));
    assert!(report.all_updated());
    assert_eq!(plug.current_sw_ver(), NEW_SW);
    assert_eq!(plug.flashes(), 1);
    assert_no_premature_flash(&fleet);
    let len = std::fs::metadata(&image).unwrap().len();
    assert_eq!(r.served.bytes, len, "the server saw the whole file go out");
    assert_eq!(plug.bytes_downloaded(), len);

    assert_eq!(
        stages_of(&events, plug.addr()),
        vec![
            Stage::DownloadRequested,
            Stage::Downloading,
            Stage::Downloaded,
            Stage::FlashRequested,
            Stage::Flashing,
            Stage::Rebooting,
            Stage::Verifying,
            Stage::Restoring,
            Stage::Done
        ]
    );
    assert!(matches!(
        events.first(),
        Some(JobEvent::BatchStarted { plugs: 1, .. })
    ));
    assert!(matches!(
        events.last(),
        Some(JobEvent::BatchFinished { .. })
    ));
    // The relay (on before) was put back after the reboot opened it.
    assert_eq!(plug.relays(), vec![true]);

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[0]["stage"], "download-requested");
    assert_eq!(lines[8]["stage"], "done");
    assert_eq!(lines[8]["ip"], plug.ip.to_string());
    assert_eq!(lines[8]["mac"], plug.mac);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_20_with_a_concurrency_limit() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(20, vec![]).await;
    let entries = plan_for(&fleet, &image).await;
    let (report, events) = run(entries, config(fleet.port(), None)).await;
    assert_eq!(report.plugs.len(), 20);
    for r in &report.plugs {
        assert_eq!(r.result, PlugResult::Updated, "{r:?}");
    }
    for p in fleet.plugs() {
        assert_eq!(p.current_sw_ver(), NEW_SW, "{}", p.ip);
        assert_eq!(p.flashes(), 1, "{}", p.ip);
    }
    assert_no_premature_flash(&fleet);
    // Never more than 4 jobs between their first and their last transition.
    let mut active = std::collections::HashSet::new();
    let mut peak = 0;
    for e in &events {
        if let JobEvent::Transition { snapshot, .. } = e {
            if snapshot.stage.is_final() {
                active.remove(&snapshot.ip);
            } else {
                active.insert(snapshot.ip);
            }
            peak = peak.max(active.len());
        }
    }
    assert!(peak <= 4, "peak concurrency {peak}");
    assert!(peak >= 2, "jobs ran concurrently (peak {peak})");
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_firmware_fault_fails_its_plug_while_the_others_finish() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let faults = [
        FaultKind::ImageReject,
        FaultKind::DownloadDrop,
        FaultKind::DownloadStall,
        FaultKind::NeverBack,
        FaultKind::OldVersion,
        FaultKind::HangAfterFlash,
    ];
    let fleet = fleet(9, faults.iter().enumerate().map(|(i, f)| (i, *f)).collect()).await;
    let entries = plan_for(&fleet, &image).await;
    let mut cfg = config(fleet.port(), None);
    cfg.concurrency = 9;
    let (report, _) = run(entries, cfg).await;
    let by_ip = |i: usize| {
        report
            .plugs
            .iter()
            .find(|r| r.ip == fleet.plugs()[i].addr())
            .unwrap()
    };
    let expect = |i: usize, stage: Stage, needle: &str| {
        let r = by_ip(i);
        assert_eq!(r.result, PlugResult::Failed, "{:?}: {r:?}", faults[i]);
        assert_eq!(r.stage, Some(stage), "{:?}: {r:?}", faults[i]);
        let e = r.error.as_deref().unwrap_or("");
        assert!(e.contains(needle), "{:?}: {e}", faults[i]);
    };
    expect(0, Stage::Downloading, "failed download");
    expect(1, Stage::Downloading, "failed download");
    expect(2, Stage::Downloading, "download stalled at");
    expect(3, Stage::Verifying, "did not come back");
    expect(4, Stage::Verifying, "old firmware");
    expect(5, Stage::Verifying, "did not come back");
    for i in 6..9 {
        assert_eq!(by_ip(i).result, PlugResult::Updated, "{:?}", by_ip(i));
        assert_eq!(fleet.plugs()[i].current_sw_ver(), NEW_SW);
    }
    // Download faults never reach a flash.
    for (p, f) in fleet.plugs().iter().zip(&faults).take(3) {
        assert_eq!(p.flashes(), 0, "{f:?}");
    }
    assert!(!report.all_updated());
    assert_no_premature_flash(&fleet);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_canary_stops_the_batch_before_it_starts() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(4, vec![(0, FaultKind::OldVersion)]).await;
    let entries = plan_for(&fleet, &image).await;
    let mut cfg = config(fleet.port(), None);
    cfg.canary = true;
    let (report, _) = run(entries, cfg).await;
    assert_eq!(report.plugs[0].result, PlugResult::Failed);
    for (i, r) in report.plugs.iter().enumerate().skip(1) {
        assert_eq!(r.result, PlugResult::Skipped, "{r:?}");
        assert!(r.error.as_deref().unwrap_or("").contains("canary"));
        assert_eq!(fleet.plugs()[i].downloads_started(), 0, "untouched");
    }
    assert_no_premature_flash(&fleet);

    // A healthy canary lets the rest go.
    let fleet2 = self::fleet(3, vec![]).await;
    let entries = plan_for(&fleet2, &image).await;
    let mut cfg = config(fleet2.port(), None);
    cfg.canary = true;
    let (report, _) = run(entries, cfg).await;
    assert!(report.all_updated(), "{report:?}");
    fleet.shutdown().await;
    fleet2.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_on_failure_starts_no_more_plugs() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(5, vec![(0, FaultKind::ImageReject)]).await;
    let entries = plan_for(&fleet, &image).await;
    let mut cfg = config(fleet.port(), None);
    cfg.concurrency = 1;
    cfg.stop_on_failure = true;
    let (report, _) = run(entries, cfg).await;
    assert_eq!(report.plugs[0].result, PlugResult::Failed);
    for (i, r) in report.plugs.iter().enumerate().skip(1) {
        assert_eq!(r.result, PlugResult::Skipped, "{r:?}");
        assert_eq!(fleet.plugs()[i].downloads_started(), 0);
    }
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_plugs_are_never_touched() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let b = base();
    let mut spec = FleetSpec::on_free_port(b, 2);
    spec.profiles = vec![PROFILE.into(), "hs105-us-hw1".into()];
    spec.time_scale = 0.01;
    spec.images = accepted();
    let fleet = Fleet::start(spec).await.unwrap();
    let entries = plan_for(&fleet, &image).await;
    assert!(entries[1].verdict().is_blocked());
    let (report, _) = run(entries, config(fleet.port(), None)).await;
    assert_eq!(report.plugs[0].result, PlugResult::Updated);
    assert_eq!(report.plugs[1].result, PlugResult::Skipped);
    assert_eq!(fleet.plugs()[1].downloads_started(), 0);
    assert_eq!(fleet.plugs()[1].flashes(), 0);
    assert_no_premature_flash(&fleet);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_the_download_never_flashes() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(1, vec![(0, FaultKind::DownloadStall)]).await;
    let entries = plan_for(&fleet, &image).await;
    let mut cfg = config(fleet.port(), None);
    cfg.timings.download_stall = Duration::from_secs(60);
    let (report, _, _) = run_with(entries, cfg, |ev, h| {
        if let JobEvent::Transition { snapshot, .. } = ev
            && snapshot.stage == Stage::Downloading
        {
            h.cancel(snapshot.ip);
        }
    })
    .await;
    let r = &report.plugs[0];
    assert_eq!(r.result, PlugResult::Cancelled, "{r:?}");
    assert_eq!(fleet.plugs()[0].flashes(), 0);
    assert_no_premature_flash(&fleet);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_after_the_flash_request_is_refused() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(1, vec![]).await;
    let entries = plan_for(&fleet, &image).await;
    let (report, events, _) = run_with(entries, config(fleet.port(), None), |ev, h| {
        if let JobEvent::Transition { snapshot, .. } = ev
            && snapshot.stage == Stage::Flashing
        {
            h.cancel(snapshot.ip);
        }
    })
    .await;
    assert_eq!(report.plugs[0].result, PlugResult::Updated);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, JobEvent::CancelRefused { .. })),
        "the UI is told why"
    );
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_outlet_states_are_restored_after_the_reboot() {
    let dir = temp_dir();
    let img =
        ImageHeader::new("HS300", "2", "US", "1.0.20", "230101", "120000").build(&[3u8; 30_000]);
    let image = dir.join("hs300v2_us_1.0.20_Build_230101_Rel.120000.bin");
    let b = base();
    let mut spec = FleetSpec::on_free_port(b, 1);
    spec.profiles = vec!["hs300-us-hw2".into()];
    spec.time_scale = 0.01;
    spec.images = vec![KnownImage::for_bytes(
        &img,
        "HS300(US)",
        "2",
        "1.0.20 Build 230101 Rel.120000",
    )];
    std::fs::write(&image, img).unwrap();
    let fleet = Fleet::start(spec).await.unwrap();
    let plug = fleet.plugs()[0].clone();
    // A mix of on and off outlets.
    let c = Client::new(plug.addr(), client_cfg(fleet.port()));
    for (i, id) in plug.children.iter().enumerate() {
        c.set_relay(i % 2 == 0, Some(id)).await.unwrap();
    }
    let before = plug.relays();
    assert!(before.contains(&true) && before.contains(&false));
    let entries = plan_for(&fleet, &image).await;
    assert_eq!(entries[0].verdict(), &Verdict::Compatible);
    let (report, _) = run(entries, config(fleet.port(), None)).await;
    assert_eq!(report.plugs[0].result, PlugResult::Updated, "{report:?}");
    assert_eq!(plug.current_sw_ver(), "1.0.20 Build 230101 Rel.120000");
    assert_eq!(plug.relays(), before, "outlets as they were");
    assert!(
        report.plugs[0]
            .warnings
            .iter()
            .all(|w| !w.contains("restore"))
    );
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plug_listed_twice_is_updated_once() {
    let dir = temp_dir();
    let image = image_file(&dir);
    let fleet = fleet(1, vec![]).await;
    let mut entries = plan_for(&fleet, &image).await;
    entries.push(entries[0].clone());
    let (report, _) = run(entries, config(fleet.port(), None)).await;
    assert_eq!(report.plugs[0].result, PlugResult::Updated);
    assert_eq!(report.plugs[1].result, PlugResult::Skipped);
    assert_eq!(fleet.plugs()[0].flashes(), 1);
    assert_eq!(fleet.plugs()[0].downloads_started(), 1);
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
