//! The update job: a pure state machine, time passed in (STYLE.md habit 4).
//!
//! ```text
//! Preflight → DownloadRequested → Downloading → Downloaded → FlashRequested → Flashing
//!   → Rebooting → Verifying → (Restoring) → Done
//! any stage → Failed { stage, reason };   Preflight..Downloading → Cancelled
//! ```
//!
//! The runner performs the [`JobEffect`]s the job asks for and feeds each result back as a
//! [`JobInput`]; it calls [`Job::handle`] with [`JobInput::Tick`] whenever [`Job::next_wakeup`]
//! is due. The job ignores inputs it did not ask for, so no order of inputs can make it skip a
//! step. The one invariant that matters: [`JobEffect::Flash`] is emitted at most once, and only
//! right after a `get_download_state` reply that [`DownloadState::is_complete`] accepted and whose
//! completion the file server's byte count does not contradict.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::image::Version;
use super::plan::PlugIdentity;
use crate::net::NetError;
use crate::protocol::{DownloadState, SysInfo};

/// Timing of one job. Every wait is bounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobTimings {
    /// How often `get_download_state` is polled while downloading.
    pub poll_interval: Duration,
    /// Fail the download when neither the plug's ratio nor the bytes served moved for this long.
    pub download_stall: Duration,
    /// Fail the download when it has not completed within this time, progress or not.
    pub download_deadline: Duration,
    /// Longest wait for the result of one request (a safety net; the client has its own timeouts).
    pub request_deadline: Duration,
    /// Multiplies the plug's reported `flash_time`/`reboot_time` (1.0 for real plugs; the
    /// simulator's time scale in tests).
    pub device_time_scale: f64,
    /// Used when the plug reports a `flash_time`/`reboot_time` of 0.
    pub default_flash_time: Duration,
    pub default_reboot_time: Duration,
    /// Extra quiet time after `flash_time + reboot_time` before the first probe (§6.3 step 4).
    pub quiet_margin: Duration,
    /// How often the plug is probed while waiting for it to come back.
    pub verify_poll: Duration,
    /// Fail as "never came back" when it has not answered with the new version this long after
    /// the quiet period.
    pub back_deadline: Duration,
}

impl Default for JobTimings {
    /// PROTOCOL.md §6.3 for real plugs.
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            download_stall: Duration::from_secs(60),
            download_deadline: Duration::from_secs(15 * 60),
            request_deadline: Duration::from_secs(30),
            device_time_scale: 1.0,
            default_flash_time: Duration::from_secs(60),
            default_reboot_time: Duration::from_secs(30),
            quiet_margin: Duration::from_secs(30),
            verify_poll: Duration::from_secs(5),
            back_deadline: Duration::from_secs(5 * 60),
        }
    }
}

/// Where a job is. `Done`, `Failed` and `Cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Preflight,
    DownloadRequested,
    Downloading,
    Downloaded,
    FlashRequested,
    Flashing,
    Rebooting,
    Verifying,
    /// Verified; putting relay states back as they were before.
    Restoring,
    Done,
    Failed,
    Cancelled,
}

impl Stage {
    pub fn is_final(self) -> bool {
        matches!(self, Stage::Done | Stage::Failed | Stage::Cancelled)
    }

    /// Kebab-case name as in JSON (`download-requested`).
    pub fn label(self) -> &'static str {
        match self {
            Stage::Preflight => "preflight",
            Stage::DownloadRequested => "download-requested",
            Stage::Downloading => "downloading",
            Stage::Downloaded => "downloaded",
            Stage::FlashRequested => "flash-requested",
            Stage::Flashing => "flashing",
            Stage::Rebooting => "rebooting",
            Stage::Verifying => "verifying",
            Stage::Restoring => "restoring",
            Stage::Done => "done",
            Stage::Failed => "failed",
            Stage::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    /// Flashed, back with the new version, same identity.
    Updated,
    /// Failed in `stage` for `reason` (plain words).
    Failed { stage: Stage, reason: String },
    /// Cancelled in `stage` (always before the flash was requested).
    Cancelled { stage: Stage },
}

/// What the job asks the runner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEffect {
    /// `system.get_sysinfo` → [`JobInput::SysInfo`].
    ReadSysInfo,
    /// `system.download_firmware` → [`JobInput::DownloadAccepted`].
    RequestDownload { url: String },
    /// `system.get_download_state` (+ the server's byte count) → [`JobInput::DownloadState`].
    ReadDownloadState,
    /// `system.flash_firmware` → [`JobInput::FlashSent`].
    Flash,
    /// `system.set_relay_state` → [`JobInput::RelayRestored`].
    SetRelay { on: bool, child: Option<String> },
}

/// What the runner tells the job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobInput {
    /// Time passed; due polls and deadlines are handled.
    Tick,
    SysInfo(Result<Box<SysInfo>, NetError>),
    DownloadAccepted(Result<(), NetError>),
    /// A `get_download_state` result with the bytes the file server sent to this plug so far
    /// (`None` when not known).
    DownloadState {
        result: Result<DownloadState, NetError>,
        served: Option<u64>,
    },
    FlashSent(Result<(), NetError>),
    RelayRestored(Result<(), NetError>),
    /// The user asks to stop. Refused once the flash was requested (see [`Job::cancel_refusal`]).
    Cancel,
}

/// What the job needs to know about its update.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSpec {
    /// The plug as the plan saw it; pre-flight and verification compare against it.
    pub plug: PlugIdentity,
    /// Where the plug fetches the image.
    pub url: String,
    pub image_len: u64,
    pub image_sha256: String,
    /// The version the plug must report afterwards. `None` only for a forced image of unknown
    /// target: then any version different from the current one is accepted.
    pub expected: Option<Version>,
    /// Set when the image is a version known to move this model to the authenticated protocol
    /// (§8.3): a plug that never comes back on port 9999 is then reported with that hint.
    pub protocol_change: Option<String>,
}

/// One stage change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub from: Stage,
    pub to: Stage,
    /// Why (for failures) or what happened (e.g. "plug flashes by itself").
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    SysInfo,
    Download,
    State,
    Flash,
    Relay,
}

/// A per-plug progress snapshot: what the progress pane draws for one row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobSnapshot {
    pub ip: std::net::IpAddr,
    pub alias: String,
    pub model: String,
    /// Current `sw_ver` before the update.
    pub from: String,
    /// The version expected afterwards (short form), `?` when unknown.
    pub to: String,
    pub stage: Stage,
    /// The plug's own download ratio (0–100) once it reported one.
    pub ratio: Option<u8>,
    /// Bytes the file server sent to this plug (independent of the plug's ratio).
    pub served_bytes: Option<u64>,
    pub image_len: u64,
    #[serde(serialize_with = "ser_secs")]
    pub elapsed: Duration,
    /// A rough estimate; `None` when there is nothing to base it on.
    #[serde(serialize_with = "ser_opt_secs")]
    pub expected_remaining: Option<Duration>,
    pub can_cancel: bool,
    /// The outcome once final.
    pub outcome: Option<Outcome>,
    /// Non-fatal remarks (no reply to the flash request, relay not restored, …).
    pub warnings: Vec<String>,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

fn ser_opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_secs(d, s),
        None => s.serialize_none(),
    }
}

impl JobSnapshot {
    /// The download ratio as a fraction in `0.0..=1.0` (safe for ratatui's `Gauge`): the plug's
    /// ratio when known, else the share of bytes served; 1.0 once past the download.
    pub fn fraction(&self) -> f64 {
        let f = match self.stage {
            Stage::Preflight | Stage::DownloadRequested | Stage::Downloading => {
                match (self.ratio, self.served_bytes) {
                    (Some(r), _) => f64::from(r) / 100.0,
                    (None, Some(b)) if self.image_len > 0 => b as f64 / self.image_len as f64,
                    _ => 0.0,
                }
            }
            Stage::Failed | Stage::Cancelled => f64::from(self.ratio.unwrap_or(0)) / 100.0,
            _ => 1.0,
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// One plug's update.
#[derive(Debug, Clone)]
pub struct Job {
    spec: JobSpec,
    t: JobTimings,
    stage: Stage,
    started: Instant,
    stage_since: Instant,
    pending: Option<(Pending, Instant)>,
    next_poll: Instant,
    ratio: Option<u8>,
    served: Option<u64>,
    last_progress: Instant,
    download_started: Option<Instant>,
    flash_time: Duration,
    reboot_time: Duration,
    /// End of Flashing / of the quiet period / of the wait for the plug to come back.
    flash_until: Option<Instant>,
    quiet_until: Option<Instant>,
    back_until: Option<Instant>,
    flash_effects: u32,
    before: Option<SysInfo>,
    after: Option<SysInfo>,
    restore: Vec<(Option<String>, bool)>,
    warnings: Vec<String>,
    outcome: Option<Outcome>,
    transitions: Vec<Transition>,
}

impl Job {
    /// A job in `Preflight`; call [`Job::start`] (or `handle(Tick)`) to get its first effect.
    pub fn new(spec: JobSpec, timings: JobTimings, now: Instant) -> Job {
        Job {
            spec,
            t: timings,
            stage: Stage::Preflight,
            started: now,
            stage_since: now,
            pending: None,
            next_poll: now,
            ratio: None,
            served: None,
            last_progress: now,
            download_started: None,
            flash_time: Duration::ZERO,
            reboot_time: Duration::ZERO,
            flash_until: None,
            quiet_until: None,
            back_until: None,
            flash_effects: 0,
            before: None,
            after: None,
            restore: Vec::new(),
            warnings: Vec::new(),
            outcome: None,
            transitions: Vec::new(),
        }
    }

    pub fn start(&mut self, now: Instant) -> Vec<JobEffect> {
        self.handle(JobInput::Tick, now)
    }

    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    pub fn is_final(&self) -> bool {
        self.stage.is_final()
    }

    /// The plug's sysinfo from pre-flight and after verification.
    pub fn before(&self) -> Option<&SysInfo> {
        self.before.as_ref()
    }

    pub fn after(&self) -> Option<&SysInfo> {
        self.after.as_ref()
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// How many times this job asked for `flash_firmware` (0 or 1).
    pub fn flash_requests(&self) -> u32 {
        self.flash_effects
    }

    /// Stage changes since the last call (for the journal and events).
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.transitions)
    }

    /// Cancelling is possible until the flash is requested.
    pub fn can_cancel(&self) -> bool {
        matches!(
            self.stage,
            Stage::Preflight | Stage::DownloadRequested | Stage::Downloading | Stage::Downloaded
        )
    }

    /// Why a cancel is refused now (for the UI), `None` when it is possible or the job ended.
    pub fn cancel_refusal(&self) -> Option<&'static str> {
        if self.can_cancel() || self.is_final() {
            None
        } else {
            Some(
                "the flash was already requested: interrupting the plug now could leave it \
                 unbootable, so the update runs to its end",
            )
        }
    }

    /// When the runner should call `handle(Tick)` next.
    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.is_final() {
            return None;
        }
        let mut due = Vec::with_capacity(3);
        if let Some((_, since)) = self.pending {
            due.push(since + self.t.request_deadline);
        }
        match self.stage {
            Stage::Downloading => {
                if self.pending.is_none() {
                    due.push(self.next_poll);
                }
                due.push(self.last_progress + self.t.download_stall);
            }
            Stage::Flashing => due.extend(self.flash_until),
            Stage::Rebooting => due.extend(self.quiet_until),
            Stage::Verifying => {
                if self.pending.is_none() {
                    due.push(self.next_poll);
                }
                due.extend(self.back_until);
            }
            _ => {
                if self.pending.is_none() {
                    due.push(self.stage_since);
                }
            }
        }
        due.into_iter().min()
    }

    /// The progress snapshot at `now`.
    pub fn snapshot(&self, now: Instant) -> JobSnapshot {
        let p = &self.spec.plug;
        JobSnapshot {
            ip: p.ip,
            alias: p.alias.clone(),
            model: p.model.clone(),
            from: p.sw_ver.clone(),
            to: self
                .spec
                .expected
                .as_ref()
                .map(Version::short)
                .unwrap_or_else(|| "unknown".into()),
            stage: self.stage,
            ratio: self.ratio,
            served_bytes: self.served,
            image_len: self.spec.image_len,
            elapsed: now.saturating_duration_since(self.started),
            expected_remaining: self.expected_remaining(now),
            can_cancel: self.can_cancel(),
            outcome: self.outcome.clone(),
            warnings: self.warnings.clone(),
        }
    }

    fn scaled(&self, d: Duration) -> Duration {
        let s = self.t.device_time_scale;
        if s.is_finite() && s > 0.0 {
            d.mul_f64(s.min(1e6))
        } else {
            d
        }
    }

    fn device_time(&self, reported_s: u64, default: Duration) -> Duration {
        if reported_s == 0 {
            default
        } else {
            self.scaled(Duration::from_secs(reported_s.min(3600)))
        }
    }

    fn expected_remaining(&self, now: Instant) -> Option<Duration> {
        let after_download = || {
            self.device_time(0, self.t.default_flash_time)
                + self.device_time(0, self.t.default_reboot_time)
                + self.t.quiet_margin
        };
        match self.stage {
            Stage::Downloading => {
                let r = u32::from(self.ratio?);
                if r == 0 {
                    return None;
                }
                let spent = now.saturating_duration_since(self.download_started?);
                let left = spent.mul_f64(f64::from(100u32.saturating_sub(r)) / f64::from(r));
                Some(left + after_download())
            }
            Stage::Downloaded | Stage::FlashRequested => {
                Some(self.flash_time + self.reboot_time + self.t.quiet_margin)
            }
            Stage::Flashing | Stage::Rebooting => Some(
                self.quiet_until
                    .map(|q| q.saturating_duration_since(now))
                    .unwrap_or_default(),
            ),
            Stage::Done | Stage::Failed | Stage::Cancelled => Some(Duration::ZERO),
            _ => None,
        }
    }

    fn go(&mut self, to: Stage, now: Instant, note: Option<String>) {
        if self.stage == to {
            return;
        }
        self.transitions.push(Transition {
            from: self.stage,
            to,
            note,
        });
        self.stage = to;
        self.stage_since = now;
    }

    fn fail(&mut self, now: Instant, reason: impl Into<String>) -> Vec<JobEffect> {
        let reason = reason.into();
        let stage = self.stage;
        self.pending = None;
        self.outcome = Some(Outcome::Failed {
            stage,
            reason: reason.clone(),
        });
        self.go(Stage::Failed, now, Some(reason));
        Vec::new()
    }

    fn ask(&mut self, p: Pending, effect: JobEffect, now: Instant) -> Vec<JobEffect> {
        self.pending = Some((p, now));
        vec![effect]
    }

    /// Takes the pending request if `p` is the one outstanding.
    fn answered(&mut self, p: Pending) -> bool {
        if self.pending.is_some_and(|(q, _)| q == p) {
            self.pending = None;
            true
        } else {
            false
        }
    }

    /// Feeds one input; returns the effects to perform, in order.
    pub fn handle(&mut self, input: JobInput, now: Instant) -> Vec<JobEffect> {
        if self.is_final() {
            return Vec::new();
        }
        match input {
            JobInput::Tick => self.tick(now),
            JobInput::Cancel => {
                if self.can_cancel() {
                    let stage = self.stage;
                    self.pending = None;
                    self.outcome = Some(Outcome::Cancelled { stage });
                    self.go(Stage::Cancelled, now, Some("cancelled by the user".into()));
                }
                Vec::new()
            }
            JobInput::SysInfo(r) => {
                if !self.answered(Pending::SysInfo) {
                    return Vec::new();
                }
                match self.stage {
                    Stage::Preflight => self.preflight(r, now),
                    Stage::Verifying => self.verify(r, now),
                    _ => Vec::new(),
                }
            }
            JobInput::DownloadAccepted(r) => {
                if self.stage != Stage::DownloadRequested || !self.answered(Pending::Download) {
                    return Vec::new();
                }
                match r {
                    Ok(()) => {}
                    Err(e @ NetError::Device { .. }) => {
                        return self.fail(now, format!("the plug refused the download: {e}"));
                    }
                    Err(e) => self.warnings.push(format!(
                        "no clear reply to download_firmware ({e}); watching the download state"
                    )),
                }
                self.download_started = Some(now);
                self.last_progress = now;
                self.next_poll = now + self.t.poll_interval;
                self.go(Stage::Downloading, now, None);
                Vec::new()
            }
            JobInput::DownloadState { result, served } => {
                if self.stage != Stage::Downloading || !self.answered(Pending::State) {
                    return Vec::new();
                }
                self.download_state(result, served, now)
            }
            JobInput::FlashSent(r) => {
                if self.stage != Stage::FlashRequested || !self.answered(Pending::Flash) {
                    return Vec::new();
                }
                match r {
                    Ok(()) => self.start_flashing(now, None),
                    Err(e @ NetError::Device { .. }) => {
                        self.fail(now, format!("the plug refused to flash: {e}"))
                    }
                    // Expected: the plug is busy writing flash and drops the connection.
                    Err(e) => self.start_flashing(
                        now,
                        Some(format!(
                            "no reply to flash_firmware ({e}): the plug is busy"
                        )),
                    ),
                }
            }
            JobInput::RelayRestored(r) => {
                if self.stage != Stage::Restoring || !self.answered(Pending::Relay) {
                    return Vec::new();
                }
                if let Err(e) = r {
                    self.warnings
                        .push(format!("could not restore a relay state: {e}"));
                }
                self.next_restore(now)
            }
        }
    }

    fn tick(&mut self, now: Instant) -> Vec<JobEffect> {
        // A request that never produced a result (the runner's safety net).
        if let Some((p, since)) = self.pending
            && now.saturating_duration_since(since) >= self.t.request_deadline
        {
            self.pending = None;
            let after = self.t.request_deadline;
            match p {
                Pending::SysInfo if self.stage == Stage::Preflight => {
                    return self.fail(now, format!("the plug did not answer within {after:?}"));
                }
                Pending::Download => {
                    return self.fail(
                        now,
                        format!("no answer to download_firmware within {after:?}"),
                    );
                }
                Pending::Flash => {
                    return self.start_flashing(
                        now,
                        Some(format!("no answer to flash_firmware within {after:?}")),
                    );
                }
                Pending::Relay => {
                    self.warnings
                        .push(format!("no answer restoring a relay within {after:?}"));
                    return self.next_restore(now);
                }
                Pending::SysInfo | Pending::State => {}
            }
        }
        match self.stage {
            Stage::Preflight if self.pending.is_none() => {
                self.ask(Pending::SysInfo, JobEffect::ReadSysInfo, now)
            }
            Stage::Downloading => {
                if now.saturating_duration_since(self.last_progress) >= self.t.download_stall {
                    let at = self.ratio.unwrap_or(0);
                    let served = self
                        .served
                        .map(|b| format!(", {b} of {} bytes served", self.spec.image_len))
                        .unwrap_or_default();
                    return self.fail(
                        now,
                        format!(
                            "download stalled at {at}%{served}: no progress for {:?}",
                            self.t.download_stall
                        ),
                    );
                }
                if self
                    .download_started
                    .is_some_and(|s| now.saturating_duration_since(s) >= self.t.download_deadline)
                {
                    return self.fail(
                        now,
                        format!("download not complete after {:?}", self.t.download_deadline),
                    );
                }
                if self.pending.is_none() && now >= self.next_poll {
                    return self.ask(Pending::State, JobEffect::ReadDownloadState, now);
                }
                Vec::new()
            }
            Stage::Flashing => {
                if self.flash_until.is_some_and(|u| now >= u) {
                    self.go(Stage::Rebooting, now, None);
                    return self.tick(now);
                }
                Vec::new()
            }
            Stage::Rebooting => {
                if self.quiet_until.is_some_and(|u| now >= u) {
                    self.back_until = Some(now + self.t.back_deadline);
                    self.next_poll = now;
                    self.go(Stage::Verifying, now, None);
                    return self.tick(now);
                }
                Vec::new()
            }
            Stage::Verifying => {
                if self.back_until.is_some_and(|u| now >= u) {
                    let hint = match &self.spec.protocol_change {
                        Some(why) => format!(
                            "; this version is known to change the protocol ({why}): the plug \
                             may now answer only on TCP 80 / UDP 20002"
                        ),
                        None => String::new(),
                    };
                    return self.fail(
                        now,
                        format!(
                            "the plug did not come back with the new firmware within {:?} \
                             after flashing and rebooting{hint}",
                            self.t.back_deadline
                        ),
                    );
                }
                if self.pending.is_none() && now >= self.next_poll {
                    return self.ask(Pending::SysInfo, JobEffect::ReadSysInfo, now);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn preflight(&mut self, r: Result<Box<SysInfo>, NetError>, now: Instant) -> Vec<JobEffect> {
        let s = match r {
            Ok(s) => s,
            Err(e) => return self.fail(now, format!("the plug did not answer sysinfo: {e}")),
        };
        let p = &self.spec.plug;
        if s.device_id != p.device_id || s.mac != p.mac {
            let msg = format!(
                "a different device answers at this address (mac {}, planned {})",
                s.mac, p.mac
            );
            return self.fail(now, msg);
        }
        if s.model != p.model || s.hw_ver != p.hw_ver {
            let msg = format!(
                "the plug now reports {} hw {}, planned for {} hw {}",
                s.model, s.hw_ver, p.model, p.hw_ver
            );
            return self.fail(now, msg);
        }
        if s.updating {
            return self.fail(now, "the plug is already updating");
        }
        self.before = Some(*s);
        self.go(Stage::DownloadRequested, now, None);
        let url = self.spec.url.clone();
        self.ask(Pending::Download, JobEffect::RequestDownload { url }, now)
    }

    fn download_state(
        &mut self,
        result: Result<DownloadState, NetError>,
        served: Option<u64>,
        now: Instant,
    ) -> Vec<JobEffect> {
        self.next_poll = now + self.t.poll_interval;
        if let Some(b) = served
            && self.served.is_none_or(|old| b > old)
        {
            self.served = Some(b);
            self.last_progress = now;
        }
        let s = match result {
            Ok(s) => s,
            Err(e @ NetError::Device { .. }) => {
                return self.fail(now, format!("the plug reported a failed download: {e}"));
            }
            // Transport trouble while downloading: keep polling; stall detection decides.
            Err(_) => return Vec::new(),
        };
        if self.ratio.is_none_or(|r| s.ratio > r) {
            self.last_progress = now;
        }
        self.ratio = Some(s.ratio);
        if s.status == DownloadState::ERROR {
            return self.fail(
                now,
                format!(
                    "the plug reported a download error (status {}) at {}%",
                    s.status, s.ratio
                ),
            );
        }
        if !s.is_complete() {
            return Vec::new();
        }
        if let Some(b) = self.served
            && b < self.spec.image_len
        {
            return self.fail(
                now,
                format!(
                    "the plug reports a complete download but the server sent only {b} of {} \
                     bytes: not flashing",
                    self.spec.image_len
                ),
            );
        }
        self.flash_time = self.device_time(s.flash_time_s, self.t.default_flash_time);
        self.reboot_time = self.device_time(s.reboot_time_s, self.t.default_reboot_time);
        self.go(Stage::Downloaded, now, None);
        if s.status == DownloadState::FLASHING {
            // The plug flashes by itself once the download succeeded (§6.3 step 3).
            return self.start_flashing(now, Some("the plug started flashing by itself".into()));
        }
        self.go(Stage::FlashRequested, now, None);
        self.flash_effects += 1;
        self.ask(Pending::Flash, JobEffect::Flash, now)
    }

    fn start_flashing(&mut self, now: Instant, note: Option<String>) -> Vec<JobEffect> {
        if let Some(n) = &note {
            self.warnings.push(n.clone());
        }
        self.flash_until = Some(now + self.flash_time);
        self.quiet_until = Some(now + self.flash_time + self.reboot_time + self.t.quiet_margin);
        self.go(Stage::Flashing, now, note);
        Vec::new()
    }

    fn verify(&mut self, r: Result<Box<SysInfo>, NetError>, now: Instant) -> Vec<JobEffect> {
        self.next_poll = now + self.t.verify_poll;
        let s = match r {
            Ok(s) => s,
            // Still rebooting: keep probing until the deadline.
            Err(_) => return Vec::new(),
        };
        let p = &self.spec.plug;
        if s.device_id != p.device_id || s.mac != p.mac {
            let msg = format!(
                "a different device answers at this address after the reboot (mac {}, \
                 expected {})",
                s.mac, p.mac
            );
            return self.fail(now, msg);
        }
        if s.updating {
            return Vec::new();
        }
        let version_ok = match &self.spec.expected {
            Some(want) => Version::parse(&s.sw_ver).is_some_and(|got| {
                if want.build.is_some() {
                    got == *want
                } else {
                    got.cmp_numbers(want).is_eq()
                }
            }),
            None => s.sw_ver != p.sw_ver,
        };
        if !version_ok {
            let want = self
                .spec
                .expected
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "a new version".into());
            let msg = if s.sw_ver == p.sw_ver {
                format!(
                    "the plug came back with its old firmware {} (expected {want}): the flash \
                     did not take",
                    s.sw_ver
                )
            } else {
                format!("the plug came back with {} (expected {want})", s.sw_ver)
            };
            return self.fail(now, msg);
        }
        // Relay states to put back as they were before.
        if let Some(b) = &self.before {
            if let (Some(was), Some(is)) = (b.relay_on, s.relay_on)
                && was != is
            {
                self.restore.push((None, was));
            }
            for c in &b.children {
                if let Some(now_c) = s.children.iter().find(|x| x.id == c.id)
                    && now_c.relay_on != c.relay_on
                {
                    self.restore.push((Some(c.id.clone()), c.relay_on));
                }
            }
        }
        self.after = Some(*s);
        if !self.restore.is_empty() {
            self.go(Stage::Restoring, now, None);
        }
        self.next_restore(now)
    }

    fn next_restore(&mut self, now: Instant) -> Vec<JobEffect> {
        match self.restore.pop() {
            Some((child, on)) => self.ask(Pending::Relay, JobEffect::SetRelay { on, child }, now),
            None => {
                self.outcome = Some(Outcome::Updated);
                self.go(Stage::Done, now, None);
                Vec::new()
            }
        }
    }
}
