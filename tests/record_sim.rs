#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recording against the simulator: every reading of a `status` snapshot (a 28 kW plug, a
//! milli-unit plug, a six-outlet strip, a plug without a meter) written by the recording task as
//! JSON lines and as CSV, parsed back and checked against what the simulator answered; a full
//! disk stops recording with a typed report; a full queue drops instead of blocking.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use plugfleet::cmd::args::TargetArgs;
use plugfleet::cmd::status;
use plugfleet::fleet::identity::Names;
use plugfleet::fleet::model::Fleet as Model;
use plugfleet::fleet::plausibility::Verdict;
use plugfleet::record::{
    CSV_HEADER, NotRecorded, QUEUE, ReadingRecord, RecordEvent, RecordFormat, RecordHandle,
    Recorder, unix_ms,
};
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A distinct 127.201.N.2 base per test (and per process, mostly).
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 201, pid.wrapping_mul(13).wrapping_add(n * 3), 2)
}

const PROFILES: [&str; 4] = [
    "hs110-us-hw1",
    "hs110-eu-hw4",
    "hs300-us-hw2",
    "hs100-us-hw2",
];

async fn fleet() -> Fleet {
    let b = base();
    let spec = FleetSpec {
        profiles: PROFILES.iter().map(|s| s.to_string()).collect(),
        faults: vec![(b, FaultKind::Bogus28kw)],
        ..FleetSpec::on_free_port(b, PROFILES.len())
    };
    sim::start(spec).await.expect("fleet starts")
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
    let client = plugfleet::net::ClientConfig::with_timeout(net.port, net.timeout);
    let mut model = Model::new(std::time::Instant::now());
    status::round(&mut model, cfg, client, &Default::default(), names)
        .await
        .unwrap();
    assert_eq!(model.len(), PROFILES.len(), "every plug answered");
    model
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pf-record-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// Writes `recs` through the recording task and waits for its final report.
async fn record_all(path: &PathBuf, format: RecordFormat, recs: &[ReadingRecord]) -> RecordEvent {
    let recorder = Recorder::open_as(path, format).unwrap();
    let (tx, mut rx) = mpsc::channel::<RecordEvent>(4);
    let handle = RecordHandle::spawn(recorder, tx, CancellationToken::new());
    for r in recs {
        handle.record(r.clone()).unwrap();
    }
    handle.stop().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a report")
        .expect("the task reports")
}

/// What the status snapshot read, per (ip, outlet id): (power, voltage, current, total, verdict).
type Expected = Vec<(String, Option<String>, [Option<f64>; 4], Verdict)>;

fn expected(model: &Model) -> Expected {
    let mut out = Vec::new();
    for d in model.by_address() {
        let ip = d.addr.ip().to_string();
        // A strip's own row first: the sum of its outlets with the strip's judgement.
        if d.is_strip()
            && let (Some(sum), Some(a)) = (d.values().0, d.judged.as_ref())
        {
            out.push((
                ip.clone(),
                None,
                [sum.power_w, sum.voltage_v, sum.current_a, sum.total_kwh],
                a.verdict,
            ));
        }
        let meters = d.meter.iter().map(|m| (None, m)).chain(
            d.outlets
                .iter()
                .filter_map(|o| Some((Some(o.id.clone()), o.meter.as_ref()?))),
        );
        for (outlet, m) in meters {
            if let Some((rt, a)) = m.current() {
                out.push((
                    ip.clone(),
                    outlet,
                    [rt.power_w, rt.voltage_v, rt.current_a, rt.total_kwh],
                    a.verdict,
                ));
            }
        }
    }
    out
}

fn check_against_fleet(fleet: &Fleet, recs: &[ReadingRecord], want: &Expected) {
    let plugs = fleet.plugs();
    // 1 bogus plug + 1 milli plug + the strip's own row + 6 outlets; the plug without a
    // meter gives nothing.
    assert_eq!(recs.len(), 9, "{recs:#?}");
    assert_eq!(recs.len(), want.len());
    for (r, (ip, outlet, values, verdict)) in recs.iter().zip(want) {
        assert_eq!(&r.ip, ip);
        assert_eq!(&r.outlet_id, outlet);
        // Equal to the last bit, but for serde_json's float parsing (not correctly rounded
        // for every computed value, e.g. a strip's averaged voltage).
        let got = [r.power_w, r.voltage_v, r.current_a, r.total_kwh];
        for (g, w) in got.iter().zip(values) {
            match (g, w) {
                (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{r:?}"),
                _ => assert_eq!(g, w, "{r:?}"),
            }
        }
        assert_eq!(r.verdict, *verdict, "{r:?}");
        let p = plugs.iter().find(|p| p.ip.to_string() == r.ip).unwrap();
        assert_eq!(r.mac, p.mac);
        assert_eq!(r.device_id, p.device_id);
        assert_eq!(r.model, p.model);
        assert_eq!(r.alias, p.alias);
        assert!(r.unix_ms > 1_600_000_000_000);
    }
    let bogus = &recs[0];
    assert_eq!(bogus.ip, plugs[0].ip.to_string());
    assert_eq!(bogus.verdict, Verdict::Bogus);
    assert!(bogus.power_w.unwrap() >= 28_000.0, "{bogus:?}");
    assert!(
        bogus
            .reasons
            .iter()
            .any(|x| x.contains("is above 1.25 × 1800 W rated (HS110 US)")),
        "{bogus:?}"
    );
    assert_eq!(bogus.scheme, "base");
    assert_eq!(bogus.name.as_deref(), Some("Kettle"), "local name by MAC");
    let milli = &recs[1];
    assert_eq!(milli.scheme, "milli");
    assert_eq!(milli.verdict, Verdict::Ok, "{milli:?}");
    assert_eq!(milli.name, None);
    let strip = &recs[2];
    assert_eq!(
        (strip.ip.clone(), strip.outlet_id.clone()),
        (plugs[2].ip.to_string(), None)
    );
    assert_eq!(strip.model, plugs[2].model);
    let outlets: Vec<&str> = recs[3..]
        .iter()
        .map(|r| r.outlet_id.as_deref().unwrap())
        .collect();
    assert_eq!(outlets, plugs[2].children);
    assert!(recs[3..].iter().all(|r| r.outlet_alias.is_some()));
    // The strip's row sums its outlets.
    let sum: f64 = recs[3..].iter().filter_map(|r| r.power_w).sum();
    assert!((strip.power_w.unwrap() - sum).abs() < 1e-6, "{strip:?}");
}

/// The record rows of the model, as `status --record` writes them.
fn records(model: &Model) -> Vec<ReadingRecord> {
    let now = unix_ms(SystemTime::now());
    model
        .by_address()
        .into_iter()
        .flat_map(|d| plugfleet::record::rows_of(d, now))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_record_parses_back_to_the_simulators_readings() {
    let fleet = fleet().await;
    let names = Names::from_pairs([(fleet.plugs()[0].mac.as_str(), "Kettle")]);
    let model = snapshot(&fleet, &names).await;
    let recs = records(&model);
    let path = tmp("fleet.jsonl");
    let ev = record_all(&path, RecordFormat::from_path(&path), &recs).await;
    assert_eq!(
        ev,
        RecordEvent::Stopped {
            path: path.clone(),
            written: 9,
            dropped: 0
        }
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let back: Vec<ReadingRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    check_against_fleet(&fleet, &back, &expected(&model));
    // The raw JSON keys are the documented ones.
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["verdict"], "bogus");
    assert!(first["outlet_id"].is_null());
    assert!(first["reasons"].is_array());

    // Appending again keeps what was there.
    let ev = record_all(&path, RecordFormat::JsonLines, &recs[..1]).await;
    assert!(matches!(ev, RecordEvent::Stopped { written: 1, .. }));
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 10);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_record_parses_back_with_the_csv_reader() {
    let fleet = fleet().await;
    let names = Names::from_pairs([(fleet.plugs()[0].mac.as_str(), "Kettle")]);
    let model = snapshot(&fleet, &names).await;
    let recs = records(&model);
    let path = tmp("fleet.csv");
    record_all(&path, RecordFormat::from_path(&path), &recs).await;
    // A second session appends rows, not a second header.
    record_all(&path, RecordFormat::Csv, &recs).await;

    let mut rd = csv::Reader::from_path(&path).unwrap();
    assert_eq!(
        rd.headers().unwrap(),
        &csv::StringRecord::from(&CSV_HEADER[..])
    );
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 18);
    let back: Vec<ReadingRecord> = rows[..9]
        .iter()
        .map(|row| ReadingRecord::from_csv_fields(&row.iter().collect::<Vec<_>>()).unwrap())
        .collect();
    check_against_fleet(&fleet, &back, &expected(&model));
    let verdict = CSV_HEADER.iter().position(|h| *h == "verdict").unwrap();
    assert_eq!(&rows[9][verdict], "bogus");
    fleet.shutdown().await;
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_recording_with_a_report_and_the_caller_goes_on() {
    let fleet = fleet().await;
    let model = snapshot(&fleet, &Names::default()).await;
    let recs = records(&model);
    let recorder = Recorder::open_as("/dev/full", RecordFormat::JsonLines).unwrap();
    let (tx, mut rx) = mpsc::channel::<RecordEvent>(4);
    let handle = RecordHandle::spawn(recorder, tx, CancellationToken::new());
    // Enough to overflow the write buffer, so the failure shows on a write, not only the flush.
    let mut taken = 0;
    for _ in 0..200 {
        for r in &recs {
            match handle.record(r.clone()) {
                Ok(()) => taken += 1,
                Err(NotRecorded::Stopped) => break,
                Err(NotRecorded::QueueFull) => {}
            }
        }
    }
    assert!(taken > 0);
    let ev = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a report")
        .expect("the task reports");
    match &ev {
        RecordEvent::Failed { path, error, .. } => {
            assert_eq!(path, &PathBuf::from("/dev/full"));
            assert!(error.contains("/dev/full"), "{error}");
            assert!(error.to_lowercase().contains("space"), "{error}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(
        ev.to_string()
            .starts_with("recording stopped: cannot write record file /dev/full"),
        "{ev}"
    );
    assert_eq!(
        handle.record(recs[0].clone()),
        Err(NotRecorded::Stopped),
        "recording stays stopped"
    );
    assert!(!handle.is_running());
    fleet.shutdown().await;
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    // A single-threaded runtime: the writer task cannot run while this test fills the queue.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let path = tmp("queue.jsonl");
        let (tx, mut rx) = mpsc::channel::<RecordEvent>(4);
        let handle =
            RecordHandle::spawn(Recorder::open(&path).unwrap(), tx, CancellationToken::new());
        let info = plugfleet::protocol::SysInfo::from_result(&serde_json::json!({
            "model": "HS110(EU)", "hw_ver": "1.0", "sw_ver": "1.2.5", "mac": "50:C7:BF:01:02:03",
            "deviceId": "X", "alias": "a", "feature": "TIM:ENE"
        }))
        .unwrap();
        let rt = plugfleet::protocol::Realtime::from_result(
            &serde_json::json!({"power": 1.0, "voltage": 230.0, "current": 0.01, "total": 1.0}),
        )
        .unwrap();
        let rec = ReadingRecord::with_verdict(
            1,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            &info,
            None,
            &rt,
            Verdict::Ok,
            vec![],
        );
        for _ in 0..QUEUE {
            handle.record(rec.clone()).unwrap();
        }
        assert_eq!(handle.record(rec.clone()), Err(NotRecorded::QueueFull));
        assert_eq!(handle.dropped(), 1);
        handle.stop().await.unwrap();
        let ev = rx.recv().await.unwrap();
        assert_eq!(
            ev,
            RecordEvent::Stopped {
                path: path.clone(),
                written: QUEUE as u64,
                dropped: 1
            }
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            QUEUE
        );
    });
}
