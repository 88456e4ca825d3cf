#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The update state machine: every transition, every timeout, the cancel rules, and the property
//! that no sequence of inputs leads to a flash without a completed download.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use plugfleet::firmware::image::Version;
use plugfleet::firmware::job::{Job, JobEffect, JobInput, JobSpec, JobTimings, Outcome, Stage};
use plugfleet::firmware::plan::PlugIdentity;
use plugfleet::net::{NetError, Stage as NetStage};
use plugfleet::protocol::{DownloadState, SysInfo};
use proptest::prelude::*;
use serde_json::json;

const LEN: u64 = 10_000;
const OLD: &str = "1.1.1 Build 160725 Rel.164033";
const NEW: &str = "1.2.3 Build 171016 Rel.100427";

fn sysinfo(sw_ver: &str, relay: i64) -> Box<SysInfo> {
    Box::new(
        SysInfo::from_result(&json!({
            "model": "HS110(US)", "hw_ver": "1.0", "sw_ver": sw_ver,
            "mac": "50:C7:BF:00:00:01", "deviceId": "D1", "alias": "kettle",
            "relay_state": relay, "updating": 0, "err_code": 0
        }))
        .unwrap(),
    )
}

fn t() -> JobTimings {
    JobTimings {
        poll_interval: Duration::from_secs(1),
        download_stall: Duration::from_secs(60),
        download_deadline: Duration::from_secs(600),
        request_deadline: Duration::from_secs(30),
        device_time_scale: 1.0,
        default_flash_time: Duration::from_secs(60),
        default_reboot_time: Duration::from_secs(30),
        quiet_margin: Duration::from_secs(30),
        verify_poll: Duration::from_secs(5),
        back_deadline: Duration::from_secs(300),
    }
}

fn spec() -> JobSpec {
    JobSpec {
        plug: PlugIdentity::from_sysinfo(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), &sysinfo(OLD, 1)),
        url: "http://127.0.0.1:1/fw/t/x.bin".into(),
        image_len: LEN,
        image_sha256: "00".into(),
        expected: Version::parse(NEW),
        protocol_change: None,
    }
}

fn state(status: i64, ratio: u8) -> DownloadState {
    DownloadState {
        status,
        ratio,
        flash_time_s: 66,
        reboot_time_s: 20,
    }
}

fn ds(status: i64, ratio: u8, served: Option<u64>) -> JobInput {
    JobInput::DownloadState {
        result: Ok(state(status, ratio)),
        served,
    }
}

fn timeout() -> NetError {
    NetError::Timeout {
        stage: NetStage::Reply,
        after: Duration::from_secs(1),
    }
}

fn device(code: i64) -> NetError {
    NetError::Device {
        code,
        msg: "unknown error".into(),
    }
}

/// Drives a job and keeps the clock.
struct H {
    job: Job,
    now: Instant,
}

impl H {
    fn new() -> H {
        let now = Instant::now();
        H {
            job: Job::new(spec(), t(), now),
            now,
        }
    }
    fn at(&mut self, secs: f64) {
        self.now += Duration::from_secs_f64(secs);
    }
    fn feed(&mut self, i: JobInput) -> Vec<JobEffect> {
        self.job.handle(i, self.now)
    }
    fn tick(&mut self) -> Vec<JobEffect> {
        self.feed(JobInput::Tick)
    }
    fn failed(&self) -> (Stage, String) {
        match self.job.outcome() {
            Some(Outcome::Failed { stage, reason }) => (*stage, reason.clone()),
            o => panic!("not failed: {o:?} in {:?}", self.job.stage()),
        }
    }
    /// To `Downloading` with nothing pending.
    fn downloading() -> H {
        let mut h = H::new();
        assert_eq!(h.job.start(h.now), vec![JobEffect::ReadSysInfo]);
        let e = h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1))));
        assert!(matches!(e[..], [JobEffect::RequestDownload { .. }]));
        assert!(h.feed(JobInput::DownloadAccepted(Ok(()))).is_empty());
        assert_eq!(h.job.stage(), Stage::Downloading);
        h
    }
    /// To `FlashRequested`.
    fn flash_requested() -> H {
        let mut h = H::downloading();
        h.at(1.0);
        assert_eq!(h.tick(), vec![JobEffect::ReadDownloadState]);
        assert_eq!(h.feed(ds(1, 100, Some(LEN))), vec![]);
        h.at(1.0);
        assert_eq!(h.tick(), vec![JobEffect::ReadDownloadState]);
        assert_eq!(h.feed(ds(0, 100, Some(LEN))), vec![JobEffect::Flash]);
        assert_eq!(h.job.stage(), Stage::FlashRequested);
        h
    }
    /// To `Verifying` with a sysinfo pending.
    fn verifying() -> H {
        let mut h = H::flash_requested();
        h.feed(JobInput::FlashSent(Ok(())));
        h.at(66.0);
        h.tick();
        h.at(20.0 + 30.0);
        assert_eq!(h.tick(), vec![JobEffect::ReadSysInfo]);
        assert_eq!(h.job.stage(), Stage::Verifying);
        h
    }
}

#[test]
fn happy_path_through_every_stage() {
    let mut h = H::new();
    assert_eq!(h.job.stage(), Stage::Preflight);
    assert_eq!(h.job.start(h.now), vec![JobEffect::ReadSysInfo]);
    // Asking again while the answer is pending does nothing.
    assert!(h.tick().is_empty());
    let e = h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1))));
    assert_eq!(e, vec![JobEffect::RequestDownload { url: spec().url }]);
    assert_eq!(h.job.stage(), Stage::DownloadRequested);
    assert!(h.feed(JobInput::DownloadAccepted(Ok(()))).is_empty());
    assert_eq!(h.job.stage(), Stage::Downloading);
    // Not yet due.
    assert!(h.tick().is_empty());
    assert_eq!(h.job.next_wakeup(), Some(h.now + Duration::from_secs(1)));
    h.at(1.0);
    assert_eq!(h.tick(), vec![JobEffect::ReadDownloadState]);
    assert!(h.feed(ds(1, 40, Some(4_000))).is_empty());
    let snap = h.job.snapshot(h.now);
    assert_eq!(snap.ratio, Some(40));
    assert_eq!(snap.served_bytes, Some(4_000));
    assert!((snap.fraction() - 0.4).abs() < 1e-9);
    assert!(snap.expected_remaining.is_some());
    assert!(snap.can_cancel);
    h.at(1.0);
    assert_eq!(h.tick(), vec![JobEffect::ReadDownloadState]);
    assert_eq!(h.feed(ds(0, 100, Some(LEN))), vec![JobEffect::Flash]);
    let tr: Vec<_> = h.job.take_transitions().iter().map(|t| t.to).collect();
    assert_eq!(
        tr,
        vec![
            Stage::DownloadRequested,
            Stage::Downloading,
            Stage::Downloaded,
            Stage::FlashRequested
        ]
    );
    assert!(h.feed(JobInput::FlashSent(Ok(()))).is_empty());
    assert_eq!(h.job.stage(), Stage::Flashing);
    // Quiet: nothing is sent while flashing.
    h.at(65.0);
    assert!(h.tick().is_empty());
    assert_eq!(h.job.stage(), Stage::Flashing);
    h.at(1.0);
    assert!(h.tick().is_empty());
    assert_eq!(h.job.stage(), Stage::Rebooting);
    h.at(49.0);
    assert!(h.tick().is_empty(), "quiet margin not over yet");
    h.at(1.0);
    assert_eq!(h.tick(), vec![JobEffect::ReadSysInfo]);
    assert_eq!(h.job.stage(), Stage::Verifying);
    assert!(h.feed(JobInput::SysInfo(Ok(sysinfo(NEW, 1)))).is_empty());
    assert_eq!(h.job.stage(), Stage::Done);
    assert_eq!(h.job.outcome(), Some(&Outcome::Updated));
    assert_eq!(h.job.flash_requests(), 1);
    assert_eq!(h.job.next_wakeup(), None);
    let tr: Vec<_> = h.job.take_transitions().iter().map(|t| t.to).collect();
    assert_eq!(
        tr,
        vec![
            Stage::Flashing,
            Stage::Rebooting,
            Stage::Verifying,
            Stage::Done
        ]
    );
    assert_eq!(h.job.snapshot(h.now).fraction(), 1.0);
    // Final: nothing more happens.
    h.at(1000.0);
    assert!(h.tick().is_empty());
    assert!(h.feed(JobInput::Cancel).is_empty());
    assert_eq!(h.job.stage(), Stage::Done);
}

#[test]
fn preflight_failures() {
    let mut h = H::new();
    h.job.start(h.now);
    h.feed(JobInput::SysInfo(Err(NetError::Refused)));
    assert_eq!(h.failed().0, Stage::Preflight);

    let mut h = H::new();
    h.job.start(h.now);
    let mut busy = sysinfo(OLD, 1);
    busy.updating = true;
    h.feed(JobInput::SysInfo(Ok(busy)));
    assert!(h.failed().1.contains("already updating"));

    let mut h = H::new();
    h.job.start(h.now);
    let mut other = sysinfo(OLD, 1);
    other.mac = "50:C7:BF:00:00:99".into();
    h.feed(JobInput::SysInfo(Ok(other)));
    assert!(h.failed().1.contains("different device"));

    let mut h = H::new();
    h.job.start(h.now);
    let mut other = sysinfo(OLD, 1);
    other.hw_ver = "4.0".into();
    h.feed(JobInput::SysInfo(Ok(other)));
    assert!(h.failed().1.contains("hw 4.0"));

    // No answer at all within the request deadline.
    let mut h = H::new();
    h.job.start(h.now);
    h.at(30.0);
    assert!(h.tick().is_empty());
    assert_eq!(h.failed().0, Stage::Preflight);
}

#[test]
fn download_request_refused_or_unanswered() {
    let mut h = H::new();
    h.job.start(h.now);
    h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1))));
    h.feed(JobInput::DownloadAccepted(Err(device(-3))));
    let (stage, reason) = h.failed();
    assert_eq!(stage, Stage::DownloadRequested);
    assert!(reason.contains("refused the download"), "{reason}");

    // No reply (seen on 2020 firmware): watch the state instead.
    let mut h = H::new();
    h.job.start(h.now);
    h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1))));
    h.feed(JobInput::DownloadAccepted(Err(timeout())));
    assert_eq!(h.job.stage(), Stage::Downloading);
    assert_eq!(h.job.warnings().len(), 1);

    // The runner never delivered a result.
    let mut h = H::new();
    h.job.start(h.now);
    h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1))));
    h.at(30.0);
    h.tick();
    assert_eq!(h.failed().0, Stage::DownloadRequested);
}

#[test]
fn download_errors_fail_without_flashing() {
    // -7: the plug has no (successful) download.
    let mut h = H::downloading();
    h.at(1.0);
    h.tick();
    let e = h.feed(JobInput::DownloadState {
        result: Err(device(-7)),
        served: Some(100),
    });
    assert!(e.is_empty());
    let (stage, reason) = h.failed();
    assert_eq!(stage, Stage::Downloading);
    assert!(reason.contains("-7"), "{reason}");

    // status 6.
    let mut h = H::downloading();
    h.at(1.0);
    h.tick();
    assert!(h.feed(ds(6, 100, Some(LEN))).is_empty());
    assert!(h.failed().1.contains("status 6"));
    assert_eq!(h.job.flash_requests(), 0);
}

#[test]
fn complete_ratio_contradicted_by_the_server_count_is_not_flashed() {
    let mut h = H::downloading();
    h.at(1.0);
    h.tick();
    assert!(h.feed(ds(0, 100, Some(LEN - 1))).is_empty());
    let (stage, reason) = h.failed();
    assert_eq!(stage, Stage::Downloading);
    assert!(reason.contains("9999 of 10000"), "{reason}");
    assert_eq!(h.job.flash_requests(), 0);
}

#[test]
fn ratio_below_100_or_still_downloading_is_not_complete() {
    let mut h = H::downloading();
    for (status, ratio) in [(1, 99), (1, 100), (0, 99), (0, 0)] {
        h.at(1.0);
        assert_eq!(h.tick(), vec![JobEffect::ReadDownloadState]);
        assert!(h.feed(ds(status, ratio, Some(LEN))).is_empty());
        assert_eq!(h.job.stage(), Stage::Downloading);
    }
}

#[test]
fn unknown_server_count_still_requires_a_complete_state() {
    let mut h = H::downloading();
    h.at(1.0);
    h.tick();
    assert_eq!(h.feed(ds(0, 100, None)), vec![JobEffect::Flash]);
}

#[test]
fn download_stall_times_out() {
    let mut h = H::downloading();
    // Bytes flowing until 10 s keep it alive …
    for i in 1..=10 {
        h.at(1.0);
        assert_eq!(h.tick(), vec![JobEffect::ReadDownloadState]);
        h.feed(ds(1, 10, Some(i * 100)));
    }
    // … then nothing moves for 60 s.
    for _ in 0..59 {
        h.at(1.0);
        if h.tick() == vec![JobEffect::ReadDownloadState] {
            h.feed(ds(1, 10, Some(1_000)));
        }
        assert_eq!(h.job.stage(), Stage::Downloading);
    }
    h.at(1.0);
    h.tick();
    let (stage, reason) = h.failed();
    assert_eq!(stage, Stage::Downloading);
    assert!(reason.contains("stalled at 10%"), "{reason}");
    assert!(reason.contains("1000 of 10000 bytes"), "{reason}");
}

#[test]
fn served_bytes_count_as_progress_and_transport_errors_are_tolerated() {
    let mut h = H::downloading();
    for i in 1..=100u64 {
        h.at(1.0);
        if h.tick() == vec![JobEffect::ReadDownloadState] {
            // The plug's ratio is stuck (or unreadable) but the server keeps sending.
            let result = if i % 2 == 0 {
                Ok(state(1, 5))
            } else {
                Err(timeout())
            };
            h.feed(JobInput::DownloadState {
                result,
                served: Some(i * 10),
            });
        }
    }
    assert_eq!(h.job.stage(), Stage::Downloading);
}

#[test]
fn transport_errors_alone_end_in_a_stall() {
    let mut h = H::downloading();
    for _ in 0..61 {
        h.at(1.0);
        if h.tick() == vec![JobEffect::ReadDownloadState] {
            h.feed(JobInput::DownloadState {
                result: Err(NetError::Reset),
                served: None,
            });
        }
    }
    assert!(h.failed().1.contains("stalled at 0%"));
}

#[test]
fn download_deadline_even_with_progress() {
    let mut h = H::downloading();
    let mut served = 0;
    for _ in 0..600 {
        h.at(1.0);
        if h.tick() == vec![JobEffect::ReadDownloadState] {
            served += 1;
            h.feed(ds(1, 50, Some(served)));
        }
    }
    let (stage, reason) = h.failed();
    assert_eq!(stage, Stage::Downloading);
    assert!(reason.contains("not complete after"), "{reason}");
}

#[test]
fn a_plug_that_flashes_by_itself_gets_no_flash_request() {
    let mut h = H::downloading();
    h.at(1.0);
    h.tick();
    assert!(h.feed(ds(2, 100, Some(LEN))).is_empty());
    assert_eq!(h.job.stage(), Stage::Flashing);
    assert_eq!(h.job.flash_requests(), 0);
}

#[test]
fn flash_refused_or_unanswered() {
    let mut h = H::flash_requested();
    h.feed(JobInput::FlashSent(Err(device(-5))));
    let (stage, reason) = h.failed();
    assert_eq!(stage, Stage::FlashRequested);
    assert!(reason.contains("refused to flash"), "{reason}");

    // A reset is expected: the plug is busy writing flash.
    let mut h = H::flash_requested();
    h.feed(JobInput::FlashSent(Err(NetError::Reset)));
    assert_eq!(h.job.stage(), Stage::Flashing);

    // No result at all within the request deadline: assume it flashes; never ask twice.
    let mut h = H::flash_requested();
    h.at(30.0);
    assert!(h.tick().is_empty());
    assert_eq!(h.job.stage(), Stage::Flashing);
    assert_eq!(h.job.flash_requests(), 1);
}

#[test]
fn device_times_are_scaled() {
    let mut h = H::new();
    h.job = Job::new(
        spec(),
        JobTimings {
            device_time_scale: 0.01,
            quiet_margin: Duration::ZERO,
            ..t()
        },
        h.now,
    );
    h.job.start(h.now);
    h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1))));
    h.feed(JobInput::DownloadAccepted(Ok(())));
    h.at(1.0);
    h.tick();
    h.feed(ds(0, 100, Some(LEN)));
    h.feed(JobInput::FlashSent(Ok(())));
    // 66 s × 0.01 then 20 s × 0.01.
    h.at(0.66);
    h.tick();
    assert_eq!(h.job.stage(), Stage::Rebooting);
    h.at(0.2);
    assert_eq!(h.tick(), vec![JobEffect::ReadSysInfo]);
}

#[test]
fn never_back_times_out() {
    let mut h = H::verifying();
    h.feed(JobInput::SysInfo(Err(timeout())));
    for _ in 0..59 {
        h.at(5.0);
        if h.tick() == vec![JobEffect::ReadSysInfo] {
            h.feed(JobInput::SysInfo(Err(NetError::Refused)));
        }
        assert_eq!(h.job.stage(), Stage::Verifying);
    }
    h.at(5.0);
    h.tick();
    let (stage, reason) = h.failed();
    assert_eq!(stage, Stage::Verifying);
    assert!(reason.contains("did not come back"), "{reason}");
    assert_eq!(h.job.flash_requests(), 1, "never flashed again");
}

#[test]
fn back_with_the_old_version_fails() {
    let mut h = H::verifying();
    h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1))));
    let (stage, reason) = h.failed();
    assert_eq!(stage, Stage::Verifying);
    assert!(reason.contains("old firmware"), "{reason}");
}

#[test]
fn back_with_another_version_or_identity_fails() {
    let mut h = H::verifying();
    h.feed(JobInput::SysInfo(Ok(sysinfo(
        "1.2.4 Build 171016 Rel.100427",
        1,
    ))));
    assert!(h.failed().1.contains("came back with 1.2.4"));

    let mut h = H::verifying();
    let mut other = sysinfo(NEW, 1);
    other.device_id = "D2".into();
    h.feed(JobInput::SysInfo(Ok(other)));
    assert!(h.failed().1.contains("different device"));
}

#[test]
fn still_updating_keeps_polling() {
    let mut h = H::verifying();
    let mut busy = sysinfo(NEW, 1);
    busy.updating = true;
    assert!(h.feed(JobInput::SysInfo(Ok(busy))).is_empty());
    assert_eq!(h.job.stage(), Stage::Verifying);
    h.at(5.0);
    assert_eq!(h.tick(), vec![JobEffect::ReadSysInfo]);
    h.feed(JobInput::SysInfo(Ok(sysinfo(NEW, 1))));
    assert_eq!(h.job.outcome(), Some(&Outcome::Updated));
}

#[test]
fn relay_state_is_restored_after_the_reboot() {
    let mut h = H::verifying();
    // Was on before; came back off.
    let e = h.feed(JobInput::SysInfo(Ok(sysinfo(NEW, 0))));
    assert_eq!(
        e,
        vec![JobEffect::SetRelay {
            on: true,
            child: None
        }]
    );
    assert_eq!(h.job.stage(), Stage::Restoring);
    h.feed(JobInput::RelayRestored(Ok(())));
    assert_eq!(h.job.outcome(), Some(&Outcome::Updated));
    assert!(h.job.warnings().is_empty());

    // A failed restore is a warning, not a failed update.
    let mut h = H::verifying();
    h.feed(JobInput::SysInfo(Ok(sysinfo(NEW, 0))));
    h.feed(JobInput::RelayRestored(Err(NetError::Reset)));
    assert_eq!(h.job.outcome(), Some(&Outcome::Updated));
    assert_eq!(h.job.warnings().len(), 1);

    // Unanswered restore.
    let mut h = H::verifying();
    h.feed(JobInput::SysInfo(Ok(sysinfo(NEW, 0))));
    h.at(30.0);
    h.tick();
    assert_eq!(h.job.outcome(), Some(&Outcome::Updated));
}

#[test]
fn cancel_is_possible_until_the_flash_is_requested() {
    // Preflight.
    let mut h = H::new();
    h.job.start(h.now);
    assert!(h.job.can_cancel());
    h.feed(JobInput::Cancel);
    assert_eq!(
        h.job.outcome(),
        Some(&Outcome::Cancelled {
            stage: Stage::Preflight
        })
    );
    // A late answer changes nothing.
    assert!(h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1)))).is_empty());
    assert_eq!(h.job.stage(), Stage::Cancelled);

    // Download requested.
    let mut h = H::new();
    h.job.start(h.now);
    h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1))));
    h.feed(JobInput::Cancel);
    assert_eq!(h.job.stage(), Stage::Cancelled);

    // Downloading; a complete state arriving after the cancel is never flashed.
    let mut h = H::downloading();
    h.at(1.0);
    h.tick();
    h.feed(JobInput::Cancel);
    assert!(h.feed(ds(0, 100, Some(LEN))).is_empty());
    assert_eq!(h.job.stage(), Stage::Cancelled);
    assert_eq!(h.job.flash_requests(), 0);

    // From the flash request on: refused, with a reason for the UI.
    let mut h = H::flash_requested();
    assert!(!h.job.can_cancel());
    assert!(h.job.cancel_refusal().is_some());
    h.feed(JobInput::Cancel);
    assert_eq!(h.job.stage(), Stage::FlashRequested);
    h.feed(JobInput::FlashSent(Ok(())));
    h.feed(JobInput::Cancel);
    assert_eq!(h.job.stage(), Stage::Flashing);
    let mut h = H::verifying();
    h.feed(JobInput::Cancel);
    assert_eq!(h.job.stage(), Stage::Verifying);
    assert!(!h.job.snapshot(h.now).can_cancel);
}

#[test]
fn unrequested_inputs_are_ignored() {
    let mut h = H::new();
    // Nothing was asked yet.
    assert!(h.feed(ds(0, 100, Some(LEN))).is_empty());
    assert!(h.feed(JobInput::FlashSent(Ok(()))).is_empty());
    assert!(h.feed(JobInput::DownloadAccepted(Ok(()))).is_empty());
    assert_eq!(h.job.stage(), Stage::Preflight);
    // In Downloading, a state reply without a pending request is ignored.
    let mut h = H::downloading();
    assert!(h.feed(ds(0, 100, Some(LEN))).is_empty());
    assert_eq!(h.job.stage(), Stage::Downloading);
    assert_eq!(h.job.flash_requests(), 0);
}

#[test]
fn fraction_is_always_within_0_and_1() {
    let mut h = H::downloading();
    h.at(1.0);
    h.tick();
    h.feed(ds(1, 0, Some(LEN * 3)));
    let s = h.job.snapshot(h.now);
    assert!((0.0..=1.0).contains(&s.fraction()));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["stage"], "downloading");
    assert_eq!(json["served_bytes"], LEN * 3);
}

#[test]
fn version_without_build_compares_numbers_only() {
    let mut h = H::new();
    let mut sp = spec();
    sp.expected = Version::parse("1.2.3");
    h.job = Job::new(sp, t(), h.now);
    h.job.start(h.now);
    h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1))));
    h.feed(JobInput::DownloadAccepted(Ok(())));
    h.at(1.0);
    h.tick();
    h.feed(ds(0, 100, None));
    h.feed(JobInput::FlashSent(Ok(())));
    h.at(1000.0);
    h.tick();
    h.tick();
    h.feed(JobInput::SysInfo(Ok(sysinfo(NEW, 1))));
    assert_eq!(h.job.outcome(), Some(&Outcome::Updated));
}

// ---- the property ----

fn arb_net_error() -> impl Strategy<Value = NetError> {
    prop_oneof![
        Just(NetError::Refused),
        Just(NetError::Reset),
        Just(timeout()),
        (-10i64..0).prop_map(device),
    ]
}

fn arb_state() -> impl Strategy<Value = DownloadState> {
    (
        prop_oneof![Just(0i64), Just(1), Just(2), Just(6), -3i64..10],
        prop_oneof![Just(100u8), Just(99), 0u8..=100],
        0u64..100,
        0u64..100,
    )
        .prop_map(|(status, ratio, f, r)| DownloadState {
            status,
            ratio,
            flash_time_s: f,
            reboot_time_s: r,
        })
}

fn arb_input() -> impl Strategy<Value = JobInput> {
    let sys = prop_oneof![Just(OLD), Just(NEW), Just("9.9.9")]
        .prop_map(|v| sysinfo(v, 1))
        .boxed();
    prop_oneof![
        3 => Just(JobInput::Tick),
        1 => Just(JobInput::Cancel),
        2 => prop_oneof![sys.prop_map(Ok), arb_net_error().prop_map(Err)]
            .prop_map(JobInput::SysInfo),
        2 => prop_oneof![Just(Ok(())), arb_net_error().prop_map(Err)]
            .prop_map(JobInput::DownloadAccepted),
        5 => (
            prop_oneof![arb_state().prop_map(Ok), arb_net_error().prop_map(Err)],
            prop_oneof![Just(None), Just(Some(LEN)), (0u64..(2 * LEN)).prop_map(Some)],
        )
            .prop_map(|(result, served)| JobInput::DownloadState { result, served }),
        2 => prop_oneof![Just(Ok(())), arb_net_error().prop_map(Err)]
            .prop_map(JobInput::FlashSent),
        1 => prop_oneof![Just(Ok(())), arb_net_error().prop_map(Err)]
            .prop_map(JobInput::RelayRestored),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever arrives in whatever order at whatever time: `Flash` is emitted at most once,
    /// only from `Downloading`, and only in response to a download state that is complete and
    /// error-free and not contradicted by the bytes served.
    #[test]
    fn no_flash_without_a_completed_download(
        steps in proptest::collection::vec((arb_input(), 0u64..40_000), 1..120)
    ) {
        let start = Instant::now();
        let mut now = start;
        let mut job = Job::new(spec(), t(), now);
        let mut flashes = 0;
        for (input, advance_ms) in steps {
            now += Duration::from_millis(advance_ms);
            let before = job.stage();
            let served_total = job.snapshot(now).served_bytes;
            let effects = job.handle(input.clone(), now);
            let n = effects.iter().filter(|e| **e == JobEffect::Flash).count();
            if n > 0 {
                flashes += n;
                prop_assert_eq!(before, Stage::Downloading);
                match &input {
                    JobInput::DownloadState { result: Ok(s), served } => {
                        prop_assert!(s.is_complete(), "flash after incomplete state {:?}", s);
                        prop_assert!(s.status != DownloadState::ERROR);
                        // The server's count only grows: the job keeps the highest it saw.
                        let counted = (*served).max(served_total);
                        prop_assert!(counted.is_none_or(|b| b >= LEN), "served {:?}", counted);
                    }
                    other => prop_assert!(false, "flash in response to {:?}", other),
                }
            }
            prop_assert!(flashes <= 1, "flash requested twice");
            prop_assert_eq!(job.flash_requests() as usize, flashes);
            let f = job.snapshot(now).fraction();
            prop_assert!((0.0..=1.0).contains(&f));
        }
    }
}

/// A result of the kind the effect asked for, chosen by `pick`.
fn answer(effect: &JobEffect, pick: u8, state: &DownloadState, served: Option<u64>) -> JobInput {
    let err = || match pick % 4 {
        0 => NetError::Refused,
        1 => NetError::Reset,
        2 => timeout(),
        _ => device(-7),
    };
    let ok = pick % 3 != 0;
    match effect {
        JobEffect::ReadSysInfo => JobInput::SysInfo(if ok {
            Ok(sysinfo(if pick % 2 == 0 { OLD } else { NEW }, 1))
        } else {
            Err(err())
        }),
        JobEffect::RequestDownload { .. } => {
            JobInput::DownloadAccepted(if ok { Ok(()) } else { Err(err()) })
        }
        JobEffect::ReadDownloadState => JobInput::DownloadState {
            result: if pick % 5 == 0 {
                Err(err())
            } else {
                Ok(state.clone())
            },
            served,
        },
        JobEffect::Flash => JobInput::FlashSent(if ok { Ok(()) } else { Err(err()) }),
        JobEffect::SetRelay { .. } => JobInput::RelayRestored(if ok { Ok(()) } else { Err(err()) }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The same invariant with a runner that answers exactly what the job asks (so most runs
    /// get far): a flash is asked for only right after a complete, error-free download state,
    /// at most once, and never after a cancel.
    #[test]
    fn a_faithful_runner_never_flashes_early(
        steps in proptest::collection::vec(
            (any::<u8>(), arb_state(), prop_oneof![Just(None), Just(Some(LEN)), (0u64..(2 * LEN)).prop_map(Some)], 0u64..5_000, any::<bool>()),
            1..80,
        )
    ) {
        let mut now = Instant::now();
        let mut job = Job::new(spec(), t(), now);
        let mut queue: Vec<JobEffect> = job.start(now);
        let mut flashes = 0;
        let mut cancelled = false;
        for (pick, state, served, advance_ms, cancel) in steps {
            if cancel && pick % 16 == 0 {
                let could = job.can_cancel();
                job.handle(JobInput::Cancel, now);
                cancelled |= could;
            }
            let effects = match queue.pop() {
                Some(effect) => {
                    let input = answer(&effect, pick, &state, served);
                    let tracked = job.snapshot(now).served_bytes;
                    let out = job.handle(input.clone(), now);
                    if out.contains(&JobEffect::Flash) {
                        prop_assert!(!cancelled, "flash after a cancel");
                        match &input {
                            JobInput::DownloadState { result: Ok(s), served } => {
                                prop_assert!(s.is_complete() && s.status != DownloadState::ERROR);
                                prop_assert!((*served).max(tracked).is_none_or(|b| b >= LEN));
                            }
                            other => prop_assert!(false, "flash after {:?}", other),
                        }
                    }
                    out
                }
                None => {
                    now += Duration::from_millis(advance_ms);
                    job.handle(JobInput::Tick, now)
                }
            };
            flashes += effects.iter().filter(|e| **e == JobEffect::Flash).count();
            prop_assert!(flashes <= 1);
            queue.extend(effects);
        }
    }
}

#[test]
fn zero_reported_times_use_the_defaults() {
    let mut h = H::downloading();
    h.at(1.0);
    h.tick();
    let e = h.feed(JobInput::DownloadState {
        result: Ok(DownloadState {
            status: 0,
            ratio: 100,
            flash_time_s: 0,
            reboot_time_s: 0,
        }),
        served: Some(LEN),
    });
    assert_eq!(e, vec![JobEffect::Flash]);
    h.feed(JobInput::FlashSent(Ok(())));
    // default_flash_time 60 s, then default_reboot_time 30 s + quiet margin 30 s.
    h.at(59.0);
    h.tick();
    assert_eq!(h.job.stage(), Stage::Flashing);
    h.at(1.0);
    h.tick();
    assert_eq!(h.job.stage(), Stage::Rebooting);
    h.at(59.0);
    assert!(h.tick().is_empty());
    h.at(1.0);
    assert_eq!(h.tick(), vec![JobEffect::ReadSysInfo]);
    let s = h.job.snapshot(h.now);
    assert!(!s.can_cancel);
    assert_eq!(s.expected_remaining, None);
}

#[test]
fn never_back_after_a_protocol_changing_version_says_so() {
    let mut h = H::new();
    let mut sp = spec();
    sp.protocol_change = Some("moves to KLAP".into());
    h.job = Job::new(sp, t(), h.now);
    h.job.start(h.now);
    h.feed(JobInput::SysInfo(Ok(sysinfo(OLD, 1))));
    h.feed(JobInput::DownloadAccepted(Ok(())));
    h.at(1.0);
    h.tick();
    h.feed(ds(0, 100, Some(LEN)));
    h.feed(JobInput::FlashSent(Err(NetError::Reset)));
    for _ in 0..200 {
        h.at(5.0);
        if h.tick() == vec![JobEffect::ReadSysInfo] {
            h.feed(JobInput::SysInfo(Err(NetError::Refused)));
        }
    }
    let (stage, reason) = h.failed();
    assert_eq!(stage, Stage::Verifying);
    assert!(
        reason.contains("moves to KLAP") && reason.contains("UDP 20002"),
        "{reason}"
    );
}
