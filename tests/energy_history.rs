#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The energy history the plugs keep (issue 16): both unit schemes decoded from real replies,
//! `plugfleet history --json` against the simulator with and without the `history-glitch`
//! fault (every day with its verdict), the CSV text form, `--erase` refused read-only and done
//! only after `y`, and a plug that hangs on `get_daystat` still polled while its history fetch
//! waits.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use plugfleet::fleet::energy::EnergyHistory;
use plugfleet::fleet::ratings::limits_for;
use plugfleet::fleet::verdict::Verdict;
use plugfleet::net::client::ClientConfig;
use plugfleet::net::history::{self, HistoryConfig, HistoryJob, HistoryReport};
use plugfleet::net::poller::{self, Control, PollConfig, PollReport, Target};
use plugfleet::protocol::reply::parse_stats;
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/stats")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn both_unit_schemes_decode_from_real_replies() {
    // Float scheme: `energy` in kWh.
    let days = parse_stats(&fixture("HS110_float_daystat.json"), "get_daystat").unwrap();
    assert_eq!(days.len(), 14);
    assert_eq!(
        (days[0].year, days[0].month, days[0].day),
        (2021, 11, Some(1))
    );
    assert!((days[0].energy_kwh - 1.172).abs() < 1e-9);
    assert!((days[13].energy_kwh - 0.9).abs() < 1e-9);
    let months = parse_stats(&fixture("HS110_float_monthstat.json"), "get_monthstat").unwrap();
    assert_eq!(months.len(), 11);
    assert_eq!(months[1].day, None);
    assert!((months[1].energy_kwh - 168.62).abs() < 1e-9);
    // Integer scheme: `energy_wh` in Wh, read as kWh.
    let milli = parse_stats(&fixture("milli_daystat.json"), "get_daystat").unwrap();
    assert_eq!(milli.len(), 2);
    assert_eq!(milli[1].day, Some(7));
    assert!((milli[0].energy_kwh - 0.842).abs() < 1e-9);
    assert!((milli[1].energy_kwh - 1.142).abs() < 1e-9);

    // Judged: real replies are plausible for an HS110 — November's 14 days add up to its month
    // figure (15.866 vs 15.867 kWh: rounding), February 2021's 168.62 kWh is a lot but well
    // under 1800 W × 672 h.
    let us = limits_for("HS110(US)");
    let mut h = EnergyHistory::default();
    h.set_days(2021, 11, &days);
    h.set_months(2021, &months);
    assert!(
        h.judged_days(&us, None)
            .iter()
            .all(|e| e.verdict == Verdict::Ok)
    );
    let judged = h.judged_months(&us, Some(2021));
    assert_eq!(judged.len(), 11);
    assert!(
        judged.iter().all(|e| e.verdict == Verdict::Ok),
        "{judged:?}"
    );
    // A month figure the days do not add up to is suspect.
    let mut off = months.clone();
    off[10].energy_kwh = 16.0;
    h.set_months(2021, &off);
    let nov = h.judged_months(&us, Some(2021)).pop().unwrap();
    assert_eq!(nov.verdict, Verdict::Suspect, "{nov:?}");
    assert_eq!(
        nov.texts(),
        vec!["the days add up to 15.866 kWh, the month says 16.000 kWh"]
    );
    // An entry of the wrong type is not 0 kWh: it is flagged as not a number.
    let odd = serde_json::json!({"emeter":{"get_daystat":{"day_list":[
        {"year":2021,"month":2,"day":6,"energy_wh":"842"}],"err_code":0}}});
    let list = parse_stats(&odd, "get_daystat").unwrap();
    assert!(list[0].energy_kwh.is_nan());
    let mut h = EnergyHistory::default();
    h.set_days(2021, 2, &list);
    assert_eq!(h.judged_days(&us, None)[0].verdict, Verdict::Bogus);
}

/// A distinct 127.<pid-derived>.<n>.2 base per test.
fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 69, 10 + (std::process::id() % 200) as u8, 2 + 8 * n)
}

async fn fleet(profiles: &[&str], faults: &[(usize, FaultKind)]) -> Fleet {
    fleet_in_zone(profiles, faults, 0).await
}

async fn fleet_in_zone(
    profiles: &[&str],
    faults: &[(usize, FaultKind)],
    utc_offset_s: i64,
) -> Fleet {
    let b = base();
    let spec = FleetSpec {
        utc_offset_s,
        profiles: profiles.iter().map(|s| s.to_string()).collect(),
        faults: faults
            .iter()
            .map(|(i, f)| (Ipv4Addr::from(u32::from(b) + *i as u32), *f))
            .collect(),
        ..FleetSpec::on_free_port(b, profiles.len())
    };
    sim::start(spec).await.expect("fleet starts")
}

fn cli_args(fleet: &Fleet, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "history".to_string(),
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
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Runs `plugfleet` with `args`, `stdin` typed in (then closed).
async fn run(args: Vec<String>, stdin: &str) -> Output {
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plugfleet"))
            .args(&args)
            .env_remove("PLUGFLEET_READ_ONLY")
            .env_remove("PLUGFLEET_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A plug keeps its statistics by its own calendar (the owner's zone, set by the Kasa app):
/// "this month" and "today" are the plug's, learnt from its `get_time`, not this machine's UTC
/// date. The zone is picked so that the plug's date is not the UTC date now (a day behind in
/// the UTC morning, a day ahead from midday) with at least half an hour to its midnight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_follows_the_plug_s_own_calendar_day() {
    let now = unix_now();
    let utc_hour = now.rem_euclid(86_400) as f64 / 3600.0;
    let offset = if utc_hour < 11.5 {
        -12 * 3600
    } else {
        13 * 3600
    };
    let f = fleet_in_zone(&["hs110-us-hw1", "hs300-us-hw2"], &[], offset).await;
    let utc = plugfleet::protocol::calendar::Date::from_unix(now);
    let local = plugfleet::protocol::calendar::Date::from_unix(now + offset);
    assert_ne!(utc, local, "the zone was picked to differ");

    let out = run(cli_args(&f, &["--json"]), "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = lines(&out);
    let ip = |i: usize| f.plugs()[i].ip.to_string();
    for i in [0, 1] {
        let mine: Vec<&Value> = rows.iter().filter(|r| r["ip"] == ip(i)).collect();
        assert!(!mine.is_empty(), "{rows:?}");
        assert!(
            mine.iter()
                .all(|r| r["year"] == local.year && r["month"] == local.month),
            "this month is the plug's: {mine:?}"
        );
        let last = mine.iter().filter_map(|r| r["day"].as_u64()).max();
        assert_eq!(last, Some(u64::from(local.day)), "today is the plug's");
    }
    // One per day of the plug's month so far, per meter.
    assert_eq!(
        rows.iter().filter(|r| r["ip"] == ip(0)).count(),
        local.day as usize
    );
    assert_eq!(
        rows.iter().filter(|r| r["ip"] == ip(1)).count(),
        6 * local.day as usize
    );
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_json_lists_every_day_with_its_verdict_and_flags_the_glitch() {
    let f = fleet(
        &["hs110-us-hw1", "hs110-eu-hw4", "hs300-us-hw2"],
        &[(0, FaultKind::HistoryGlitch)],
    )
    .await;
    let today = plugfleet::protocol::calendar::Date::from_unix(unix_now());
    let out = run(cli_args(&f, &["--json"]), "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = lines(&out);
    let keys: Vec<&str> = [
        "ip", "mac", "child_id", "year", "month", "day", "kwh", "verdict", "reasons",
    ]
    .to_vec();
    for r in &rows {
        let obj = r.as_object().unwrap();
        assert_eq!(
            obj.keys().map(String::as_str).collect::<Vec<_>>().len(),
            keys.len(),
            "{r}"
        );
        for k in &keys {
            assert!(obj.contains_key(*k), "{k} in {r}");
        }
        assert_eq!(r["year"], today.year);
        assert_eq!(r["month"], today.month);
    }
    // Every day of this month so far, per plug and per strip outlet.
    let ip = |i: usize| f.plugs()[i].ip.to_string();
    let of = |i: usize| rows.iter().filter(|r| r["ip"] == ip(i)).collect::<Vec<_>>();
    let days = today.day as usize;
    assert_eq!(of(0).len(), days);
    assert_eq!(of(1).len(), days);
    assert_eq!(of(2).len(), 6 * days, "six outlets");
    let outlets: std::collections::BTreeSet<&str> = of(2)
        .iter()
        .map(|r| r["child_id"].as_str().unwrap())
        .collect();
    assert_eq!(outlets.len(), 6);
    assert!(of(0).iter().all(|r| r["child_id"].is_null()));
    // The glitch: one bogus day of ~600 kWh on the faulty plug, named by the rating rule.
    let bad: Vec<&Value> = of(0).into_iter().filter(|r| r["verdict"] != "ok").collect();
    assert_eq!(bad.len(), 1, "{rows:?}");
    assert_eq!(bad[0]["verdict"], "bogus");
    assert!(bad[0]["kwh"].as_f64().unwrap() >= 600.0);
    let reasons = bad[0]["reasons"].as_array().unwrap();
    assert!(
        reasons[0]
            .as_str()
            .unwrap()
            .contains("more than 1800 W rated can draw"),
        "{reasons:?}"
    );
    // Without the fault every day is ok.
    for i in [1, 2] {
        assert!(
            of(i)
                .iter()
                .all(|r| r["verdict"] == "ok" && r["reasons"] == serde_json::json!([])),
            "{:?}",
            of(i)
        );
    }

    // The year's months: this month carries the glitch, judged over the days it has had.
    let out = run(
        cli_args(&f, &["--json", "--year", &today.year.to_string()]),
        "",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let months = lines(&out);
    let this = months
        .iter()
        .find(|r| r["ip"] == ip(0) && r["month"] == today.month)
        .unwrap();
    assert!(this["day"].is_null());
    assert_eq!(this["verdict"], "bogus", "{this}");
    assert!(
        months
            .iter()
            .filter(|r| r["ip"] != ip(0))
            .all(|r| r["verdict"] == "ok")
    );

    // The text form is CSV with a header.
    let out = run(cli_args(&f, &[]), "").await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, keys);
    let recs: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), rows.len());
    assert!(
        recs.iter()
            .any(|x| &x[7] == "bogus" && x[8].contains("rated"))
    );
    f.shutdown().await;
}

async fn max_day(f: &Fleet) -> f64 {
    let out = run(cli_args(f, &["--json"]), "").await;
    lines(&out)
        .iter()
        .map(|r| r["kwh"].as_f64().unwrap())
        .fold(0.0, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_is_refused_read_only_and_done_only_after_y() {
    let f = fleet(&["hs110-us-hw1"], &[(0, FaultKind::HistoryGlitch)]).await;
    assert!(max_day(&f).await >= 600.0);
    let out = run(cli_args(&f, &["--erase", "--read-only"]), "y\n").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("read-only"), "{}", stderr(&out));
    assert!(max_day(&f).await >= 600.0, "refused read-only");
    for answer in ["", "n\n", "yes\n", "\n", "yy\n"] {
        let out = run(cli_args(&f, &["--erase"]), answer).await;
        assert_eq!(out.status.code(), Some(1), "{answer:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("this month") && err.contains("cancelled"),
            "{err}"
        );
        assert!(max_day(&f).await >= 600.0, "{answer:?} erased nothing");
    }
    let out = run(cli_args(&f, &["--erase"]), "y\n").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("statistics erased"));
    assert!(max_day(&f).await < 100.0, "erased after y");
    // --erase needs named hosts.
    let out = run(
        vec![
            "history".into(),
            "--erase".into(),
            "--port".into(),
            f.port().to_string(),
        ],
        "y\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    f.shutdown().await;
}

/// What the two tasks sent, in order.
#[derive(Debug)]
enum Ev {
    Poll(Box<PollReport>),
    History(Box<HistoryReport>),
}

impl From<PollReport> for Ev {
    fn from(r: PollReport) -> Self {
        Ev::Poll(Box::new(r))
    }
}

impl From<HistoryReport> for Ev {
    fn from(r: HistoryReport) -> Self {
        Ev::History(Box::new(r))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plug_hanging_on_daystat_still_gets_its_polls() {
    let f = fleet(&["hs110-us-hw1"], &[(0, FaultKind::HangDaystat)]).await;
    let plug = f.plugs()[0].ip;
    let addr = std::net::SocketAddr::new(plug.into(), f.port());
    let (tx, mut rx) = mpsc::channel::<Ev>(64);
    let token = CancellationToken::new();
    let (ctl_tx, ctl_rx) = mpsc::channel(8);
    let (job_tx, job_rx) = mpsc::channel(8);
    let client = ClientConfig::with_timeout(f.port(), Duration::from_secs(2));
    let poll = tokio::spawn(poller::run(
        PollConfig {
            interval: Duration::from_millis(100),
            client,
            ..PollConfig::default()
        },
        ctl_rx,
        tx.clone(),
        token.clone(),
    ));
    // The history fetch waits far longer than the polls need: while it waits, polls go on.
    let hist = tokio::spawn(history::run(
        HistoryConfig {
            client: ClientConfig::with_timeout(f.port(), Duration::from_secs(120)),
            ..HistoryConfig::default()
        },
        job_rx,
        tx,
        token.clone(),
    ));
    let today = plugfleet::protocol::calendar::Date::from_unix(unix_now());
    job_tx
        .send(HistoryJob {
            key: "P".into(),
            addr,
            meters: vec![None],
            months: vec![(today.year, today.month)],
            years: vec![today.year],
        })
        .await
        .unwrap();
    // The history request is on its way before the first poll.
    tokio::time::sleep(Duration::from_millis(50)).await;
    ctl_tx
        .send(Control::Track(Target {
            key: "P".into(),
            addr,
        }))
        .await
        .unwrap();
    let mut readings = 0;
    while readings < 5 {
        let ev = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("no hang")
            .expect("tasks run");
        match ev {
            Ev::Poll(r) => {
                let p = r.outcome.expect("the plug answers its polls");
                assert!(p.realtime.expect("metered").is_ok());
                readings += 1;
            }
            Ev::History(r) => panic!("the daystat request was answered: {r:?}"),
        }
    }
    token.cancel();
    poll.await.unwrap();
    hist.await.unwrap();
    f.shutdown().await;
}

/// Now by this machine's clock, in Unix seconds (the simulated plugs' clock, on UTC).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
