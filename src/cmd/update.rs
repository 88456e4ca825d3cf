//! `plugfleet update`: update plugs' firmware from a local image or a folder of images, headless.
//!
//! Finds the named plugs (one discovery pass over `--host/--sweep/--target`), matches the
//! image(s) (each plug gets its best match), shows the plan, asks for confirmation on a terminal
//! (refuses without one unless `--yes`), then runs the batch and prints every transition (and,
//! on a terminal, a heartbeat every 15 s while a plug is offline flashing or rebooting).
//!
//! Exit status: 0 when every plug was updated and verified; 1 when one was not (or nothing to
//! do, or the confirmation was declined); 2 for a usage or config error; 130
//! ([`EXIT_INTERRUPTED`]) after SIGINT, SIGTERM, SIGHUP or SIGQUIT during the batch: no more
//! plugs started, those not flashing cancelled, those flashing seen through to verified and
//! their relays restored, the summary printed; 3 ([`EXIT_ABANDONED`]) after the third such
//! signal, which stops waiting for plugs still flashing (they are named, unverified).

use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cmd::args::{TargetArgs, UsageError, discovery_config, parse_seconds};
use crate::config::Config;
use crate::firmware::exits::{
    Drain, DrainStep, EXIT_ABANDONED, EXIT_INTERRUPTED, ExitSignal, ExitSignals,
};
use crate::firmware::image::{self, ImageInfo};
use crate::firmware::job::{JobTimings, Stage};
use crate::firmware::plan::{self, PlanEntry, Policy};
use crate::firmware::runner::{self, BatchHandle, BatchReport, JobEvent, PlugResult, RunnerConfig};
use crate::net::ClientConfig;
use crate::net::discovery::{self, DiscoveryConfig};
use crate::protocol::SysInfo;
use crate::protocol::sighting::{DeviceReply, DiscoveryEvent};

/// Writes a line to stdout, ignoring a closed pipe: `update --json | head` must not end the
/// process while plugs are flashing (`println!` would panic).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// The same for stderr.
macro_rules! err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

#[derive(Debug, Clone, Args, Default)]
#[command(
    after_help = "Checked before an image is served: a regular file (a symlink only to a regular \
file inside the chosen folder; FIFOs and devices are refused unopened), its size within the \
model family's bounds ([firmware.size_limits] in the config file), a recognised structure \
(plugfleet demo header, TP-Link v1 or RTOS header, U-Boot uImage, squashfs, LZMA), whether the \
SHA-256 is on the known list ([[firmware.known]]), then the target and version.\n\
Verdicts: compatible and protocol-change images are flashed after confirmation; downgrade only \
with --allow-downgrade (--yes and --force never cover it); unknown-target, same-version and \
unrecognised-content only with --force; refused, size-out-of-bounds, wrong-target, corrupt and \
above-ceiling ([firmware.max_version]) never. flash_firmware is sent only after a complete, \
error-free download. Exit status 0 only if every plug was updated and verified."
)]
pub struct UpdateArgs {
    /// A firmware image, or a folder of images (each plug gets its best match).
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub firmware: PathBuf,

    #[command(flatten)]
    pub net: TargetArgs,

    /// Plugs updated at once [default: `[firmware] concurrency` of the config file, else 4].
    #[arg(long, value_name = "N", value_parser = parse_concurrency)]
    pub concurrency: Option<usize>,

    /// Update one plug first; the others only after it came back verified.
    #[arg(long)]
    pub canary: bool,

    /// After the first failure, start no more plugs (and cancel those not yet flashing).
    #[arg(long)]
    pub stop_on_failure: bool,

    /// The local address the plugs download from (default: the one that routes to each plug).
    #[arg(long, value_name = "IP")]
    pub serve_addr: Option<IpAddr>,

    /// Do not ask: update every plug the plan allows (never a downgrade without
    /// --allow-downgrade).
    #[arg(long)]
    pub yes: bool,

    /// Allow flashing an older version than the plug runs (like fwupd's --allow-older).
    /// Without it a downgrade is skipped, whatever --yes or --force say.
    #[arg(long)]
    pub allow_downgrade: bool,

    /// One JSON object per line per transition, and a final object per plug.
    #[arg(long)]
    pub json: bool,

    /// Append transitions to this journal (JSON lines) instead of the default in the data
    /// directory.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// Keep no journal.
    #[arg(long, conflicts_with = "journal")]
    pub no_journal: bool,

    #[command(flatten)]
    pub tuning: Box<Tuning>,
}

/// Timing overrides for tests and simulated fleets (hidden from `--help`).
#[derive(Debug, Clone, Args, Default)]
pub struct Tuning {
    /// Download-state and verification poll interval (tests and simulated fleets).
    #[arg(long, hide = true, value_parser = parse_seconds, value_name = "SECONDS")]
    pub poll_interval: Option<Duration>,

    /// Quiet margin after flash + reboot before the first probe (tests and simulated fleets).
    #[arg(long, hide = true, value_parser = parse_seconds, value_name = "SECONDS")]
    pub quiet_margin: Option<Duration>,

    /// How long to wait for a plug to come back after its reboot.
    #[arg(long, hide = true, value_parser = parse_seconds, value_name = "SECONDS")]
    pub back_deadline: Option<Duration>,

    /// Fail a download that made no progress for this long.
    #[arg(long, hide = true, value_parser = parse_seconds, value_name = "SECONDS")]
    pub stall: Option<Duration>,
}

fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` must be a whole number from 1 to 256")),
    }
}

/// Device-supplied text, made safe for a terminal: control characters replaced, length capped.
fn clean(s: &str) -> String {
    crate::text::printable(s, 48)
}

/// Runs with the config file named by the global `--config` (`named`), else the one at its
/// default location (its `[firmware]` ceilings and concurrency apply).
pub fn run(args: UpdateArgs, named: Option<std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = match named {
        Some(path) => Config::load(&path, true).map_err(|e| UsageError(e.to_string()))?,
        None => match crate::config::default_path() {
            Ok(path) => Config::load(&path, false).map_err(|e| UsageError(e.to_string()))?,
            Err(_) => Config::default(),
        },
    };
    run_with_config(args, &cfg)
}

/// Runs with an already loaded config.
pub fn run_with_config(args: UpdateArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    let policy = load_policy(cfg)?;
    if !args.net.is_explicit() {
        return Err(UsageError(
            "name the plugs to update with --host ADDR, --sweep CIDR or --target BROADCAST \
             (repeatable): update never acts on every plug it can hear"
                .into(),
        )
        .into());
    }
    let discovery = discovery_config(&args.net)?;
    let images = image::load_path(&args.firmware).map_err(|e| UsageError(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut args = args;
    if args.concurrency.is_none() {
        args.concurrency = cfg.firmware.concurrency.filter(|n| (1..=256).contains(n));
    }
    rt.block_on(run_async(args, images, policy, discovery))
}

/// The `[firmware]` rules the plan applies: ceilings, size bounds, the known-hash allowlist.
fn load_policy(cfg: &Config) -> anyhow::Result<Policy> {
    Policy::from_config(&cfg.firmware).map_err(|e| UsageError(format!("config: {e}")).into())
}

/// The plan for the plugs found, with the downgrade consent when `--allow-downgrade` was given.
fn make_plan(
    plugs: &[(IpAddr, SysInfo)],
    images: &[Arc<ImageInfo>],
    policy: &Policy,
    args: &UpdateArgs,
) -> Vec<PlanEntry> {
    let mut entries = plan::plan_in(plugs, images, policy);
    if args.allow_downgrade {
        plan::allow_downgrades(&mut entries, args.net.force);
    }
    entries
}

fn runner_config(args: &UpdateArgs, client: ClientConfig) -> RunnerConfig {
    let mut timings = JobTimings::default();
    if let Some(p) = args.tuning.poll_interval {
        timings.poll_interval = p;
        timings.verify_poll = p;
    }
    if let Some(m) = args.tuning.quiet_margin {
        timings.quiet_margin = m;
    }
    if let Some(b) = args.tuning.back_deadline {
        timings.back_deadline = b;
    }
    if let Some(s) = args.tuning.stall {
        timings.download_stall = s;
    }
    RunnerConfig {
        client,
        timings,
        concurrency: args.concurrency.unwrap_or(runner::DEFAULT_CONCURRENCY),
        canary: args.canary,
        stop_on_failure: args.stop_on_failure,
        force: args.net.force,
        serve_addr: args.serve_addr,
        serve_port: 0,
        journal: if args.no_journal {
            None
        } else {
            args.journal.clone().or_else(runner::default_journal_path)
        },
    }
}

/// One discovery pass: every legacy plug that answered (one entry per MAC, in order of
/// arrival), and what cannot be updated: named hosts that did not answer, and devices that
/// speak only the newer, authenticated protocol.
async fn find_plugs(
    cfg: DiscoveryConfig,
    hosts: &[IpAddr],
) -> anyhow::Result<(Vec<(IpAddr, SysInfo)>, Vec<(IpAddr, String)>)> {
    let timeout = cfg.timeout;
    let (tx, mut rx) = mpsc::channel::<DiscoveryEvent>(256);
    let task = discovery::spawn(cfg, tx, CancellationToken::new());
    let mut plugs: Vec<(IpAddr, SysInfo)> = Vec::new();
    let mut newer: Vec<(IpAddr, String)> = Vec::new();
    while let Some(ev) = rx.recv().await {
        if let DiscoveryEvent::Found(s) = ev {
            match s.reply {
                DeviceReply::Legacy(info) => {
                    if !plugs.iter().any(|(_, p)| p.mac == info.mac) {
                        plugs.push((s.ip, info));
                    }
                }
                DeviceReply::Newer(t) => {
                    if !newer.iter().any(|(ip, _)| *ip == s.ip) {
                        newer.push((
                            s.ip,
                            format!(
                                "not updatable locally (cloud-only firmware on this protocol): {} \
                                 speaks only the authenticated protocol ({}), not port 9999",
                                t.model,
                                t.protocol_label()
                            ),
                        ));
                    }
                }
            }
        }
    }
    task.await??;
    let mut unreachable: Vec<(IpAddr, String)> = Vec::new();
    for h in hosts {
        let seen = plugs.iter().any(|(ip, _)| ip == h) || newer.iter().any(|(ip, _)| ip == h);
        if !seen && !unreachable.iter().any(|(ip, _)| ip == h) {
            unreachable.push((*h, format!("unreachable: no answer within {timeout:?}")));
        }
    }
    // Newer-protocol devices are not ours to update; report them like unreachable ones.
    unreachable.extend(
        newer
            .into_iter()
            .filter(|(ip, _)| !plugs.iter().any(|(p, _)| p == ip)),
    );
    Ok((plugs, unreachable))
}

async fn run_async(
    args: UpdateArgs,
    images: Vec<ImageInfo>,
    policy: Policy,
    discovery: DiscoveryConfig,
) -> anyhow::Result<ExitCode> {
    let client_cfg = ClientConfig::with_timeout(args.net.port, args.net.timeout);
    let images: Vec<Arc<ImageInfo>> = images.into_iter().map(Arc::new).collect();
    let mut out = Output {
        json: args.json,
        shown: Default::default(),
    };

    // Find the plugs (one discovery pass over the named hosts, sweeps and broadcast targets).
    let (plugs, unreachable) = find_plugs(discovery, &args.net.hosts).await?;
    let entries = make_plan(&plugs, &images, &policy, &args);

    out.plan(&images, &entries, &unreachable, args.net.force);
    let to_update = entries
        .iter()
        .filter(|e| e.will_update(args.net.force))
        .count();
    if to_update == 0 {
        out.note("nothing to update");
        let report = BatchReport {
            plugs: Vec::new(),
            elapsed: Duration::ZERO,
        };
        out.finals(&report, &entries, &unreachable, args.net.force);
        return Ok(ExitCode::FAILURE);
    }
    if !args.yes {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return Err(UsageError(
                "refusing to update without confirmation: no terminal to ask on (review the plan, \
                 then pass --yes)"
                    .into(),
            )
            .into());
        }
        if !confirm(to_update)? {
            out.note("cancelled: nothing was changed");
            return Ok(ExitCode::FAILURE);
        }
    }

    let cfg = runner_config(&args, client_cfg);
    let mut watch = Watch::new(cfg.timings.back_deadline, std::io::stderr().is_terminal());
    // From here on no signal ends the process by itself: each one is a way out of the batch.
    let mut signals = ExitSignals::install()?;
    let (tx, mut rx) = mpsc::channel::<JobEvent>(256);
    let token = CancellationToken::new();
    let handle = BatchHandle::new(token.clone(), entries.iter().map(|e| e.plug.ip));
    let batch = tokio::spawn(runner::run_batch(entries.clone(), cfg, tx, handle.clone()));
    let mut drain = Drain::default();
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    // One progress bar per plug on a terminal's stderr (hidden when piped); every line printed
    // meanwhile goes out with the bars out of the way.
    let bars = crate::cmd::progress::PlugBars::new(
        &entries
            .iter()
            .filter(|e| e.will_update(args.net.force))
            .map(|e| (e.plug.ip, e.plug.alias.clone()))
            .collect::<Vec<_>>(),
    );
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => {
                    watch.observe(&ev, Instant::now());
                    bars.suspend(|| out.event(&ev));
                    bars.event(&ev);
                }
                None => break,
            },
            sig = signals.recv() => match drain.on_exit_request() {
                DrainStep::Cancel => {
                    bars.suspend(|| out.note(&cancel_note(sig, &watch.in_flight())));
                    handle.cancel_all();
                }
                DrainStep::KeepWaiting { left } => {
                    bars.suspend(|| out.note(&waiting_note(sig, &watch.in_flight(), left)));
                }
                DrainStep::Abandon => {
                    let left = watch.in_flight();
                    bars.clear();
                    out.note(&abandon_note(sig, &left));
                    return Ok(ExitCode::from(if left.is_empty() {
                        EXIT_INTERRUPTED
                    } else {
                        EXIT_ABANDONED
                    }));
                }
            },
            _ = beat.tick(), if watch.heartbeat => {
                for (ip, line) in watch.due(Instant::now()) {
                    // The plug's bar says it too, and keeps moving while the plug is away.
                    bars.beat(ip, &line);
                    bars.suspend(|| out.note(&line));
                }
            }
        }
    }
    let report = batch.await??;
    bars.clear();
    out.finals(&report, &entries, &unreachable, args.net.force);
    if drain.interrupted() {
        out.note(&format!(
            "interrupted: {} updated, {} cancelled or not started, {} failed; exit status {}",
            report.count(PlugResult::Updated),
            report.count(PlugResult::Cancelled) + report.count(PlugResult::Skipped),
            report.count(PlugResult::Failed),
            EXIT_INTERRUPTED
        ));
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    let ok = unreachable.is_empty() && report.all_updated() && report.plugs.len() == entries.len();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `127.0.0.5 (rebooting), 127.0.0.6 (flashing)`.
fn list_in_flight(plugs: &[(IpAddr, Stage)]) -> String {
    let v: Vec<String> = plugs
        .iter()
        .map(|(ip, st)| format!("{ip} ({st})"))
        .collect();
    v.join(", ")
}

/// What the first way out does.
fn cancel_note(sig: ExitSignal, in_flight: &[(IpAddr, Stage)]) -> String {
    let rest = if in_flight.is_empty() {
        "no plug is flashing".to_owned()
    } else {
        format!(
            "{} plug(s) already flashing run to their end, verified and with their relays \
             restored (interrupting them could brick them): {}",
            in_flight.len(),
            list_in_flight(in_flight)
        )
    };
    format!(
        "{sig}: stopping: no more plugs are started and those not flashing yet are cancelled; {rest}"
    )
}

/// Width of the plan's VERDICT column: the longest verdict label, so the IMAGE column lines up.
const VERDICT_W: usize = 20;

/// What a later way out says.
fn waiting_note(sig: ExitSignal, in_flight: &[(IpAddr, Stage)], left: u32) -> String {
    if in_flight.is_empty() {
        return format!("{sig}: already stopping; finishing the summary");
    }
    format!(
        "{sig}: still waiting for {} plug(s) to be verified and their relays restored: {}; {left} more to stop waiting and leave them unverified",
        in_flight.len(),
        list_in_flight(in_flight)
    )
}

/// What the last way out leaves behind.
fn abandon_note(sig: ExitSignal, in_flight: &[(IpAddr, Stage)]) -> String {
    if in_flight.is_empty() {
        return format!("{sig}: stopped; no plug was flashing");
    }
    let check: Vec<String> = in_flight
        .iter()
        .map(|(ip, _)| format!("--host {ip}"))
        .collect();
    format!(
        "{sig}: abandoned {} plug(s) mid-update: {}; they finish flashing by themselves but were NOT verified and their relays NOT restored; check them with `plugfleet status {}`",
        in_flight.len(),
        list_in_flight(in_flight),
        check.join(" ")
    )
}

/// How often a plug that is flashing or rebooting is reported on a terminal.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// `127.0.0.5: rebooting, 45 s of ≤ 300 s`: how long since the flash began, and the longest the
/// update waits for the plug to come back before calling it failed.
pub fn heartbeat_line(ip: IpAddr, stage: Stage, elapsed: Duration, bound: Duration) -> String {
    format!(
        "{ip}: {stage}, {} s of ≤ {} s",
        elapsed.as_secs(),
        bound.as_secs_f64().ceil() as u64
    )
}

/// A plug past the point of no return (its flash was requested), not finished yet.
#[derive(Debug, Clone)]
struct Flight {
    stage: Stage,
    /// When the flash began (first seen past the point of no return).
    since: Instant,
    /// The longest wait from `since`: flash, reboot and quiet time, then the back deadline.
    bound: Duration,
    next_beat: Instant,
}

/// Follows the batch's events: which plugs cannot be cancelled any more (for the messages on a
/// signal), and the heartbeat lines while they are offline.
#[derive(Debug)]
pub struct Watch {
    back_deadline: Duration,
    /// Heartbeat lines only on a terminal (a pipe or a log file gets the transitions only).
    pub heartbeat: bool,
    flights: std::collections::BTreeMap<IpAddr, Flight>,
}

impl Watch {
    pub fn new(back_deadline: Duration, stderr_is_terminal: bool) -> Self {
        Self {
            back_deadline,
            heartbeat: stderr_is_terminal,
            flights: Default::default(),
        }
    }

    pub fn observe(&mut self, ev: &JobEvent, now: Instant) {
        let JobEvent::Transition { snapshot: s, .. } = ev else {
            return;
        };
        if s.stage.is_final() || s.can_cancel {
            self.flights.remove(&s.ip);
            return;
        }
        let back_deadline = self.back_deadline;
        let f = self.flights.entry(s.ip).or_insert_with(|| Flight {
            stage: s.stage,
            since: now,
            bound: Duration::ZERO,
            next_beat: now + HEARTBEAT,
        });
        f.stage = s.stage;
        if f.bound.is_zero() && matches!(s.stage, Stage::Flashing | Stage::Rebooting) {
            // Measured from the flash: what is left of flash + reboot + quiet time, then the
            // deadline for coming back.
            f.bound = now.saturating_duration_since(f.since)
                + s.expected_remaining.unwrap_or_default()
                + back_deadline;
        }
    }

    /// Plugs that can no longer be cancelled, with their stage.
    pub fn in_flight(&self) -> Vec<(IpAddr, Stage)> {
        self.flights.iter().map(|(ip, f)| (*ip, f.stage)).collect()
    }

    /// Heartbeat lines due at `now` (none when stderr is not a terminal): every [`HEARTBEAT`]
    /// for each plug that is flashing, rebooting or being waited for.
    pub fn due(&mut self, now: Instant) -> Vec<(IpAddr, String)> {
        if !self.heartbeat {
            return Vec::new();
        }
        let mut lines = Vec::new();
        for (ip, f) in &mut self.flights {
            let offline = matches!(
                f.stage,
                Stage::Flashing | Stage::Rebooting | Stage::Verifying
            );
            if offline && now >= f.next_beat {
                while f.next_beat <= now {
                    f.next_beat += HEARTBEAT;
                }
                let bound = if f.bound.is_zero() {
                    self.back_deadline
                } else {
                    f.bound
                };
                lines.push((
                    *ip,
                    heartbeat_line(*ip, f.stage, now.saturating_duration_since(f.since), bound),
                ));
            }
        }
        lines
    }
}

fn confirm(n: usize) -> anyhow::Result<bool> {
    let mut err = std::io::stderr();
    write!(
        err,
        "\nUpdate the firmware of {n} plug(s)? Their power drops while they reboot.\n\
         Type `yes` to go on (anything else cancels): "
    )?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

/// Where and how to print.
struct Output {
    json: bool,
    /// Per plug, the last download ratio printed (human mode prints every 25 %).
    shown: std::collections::HashMap<IpAddr, u8>,
}

impl Output {
    /// Human text goes to stdout, or to stderr when stdout carries JSON.
    fn human(&self, line: &str) {
        if self.json {
            err!("{line}");
        } else {
            out!("{line}");
        }
    }

    fn note(&self, line: &str) {
        err!("plugfleet: {line}");
    }

    fn plan(
        &self,
        images: &[Arc<ImageInfo>],
        entries: &[PlanEntry],
        unreachable: &[(IpAddr, String)],
        force: bool,
    ) {
        if self.json {
            self.plan_json(images, entries, force);
        }
        self.human(&format!("Images ({}):", images.len()));
        for i in images {
            self.human(&format!("  {}", clean_long(&i.describe())));
        }
        self.human("Plan:");
        // Fixed columns laid out by display width (comfy-table): a long or wide-character
        // alias is cut with `…` in its own column and never shifts the others.
        let row = |cells: [String; 7]| {
            format!(
                "  {}",
                crate::cmd::table::fixed_row(&cells, &[15, 16, 10, 4, 18, VERDICT_W as u16, 90])
            )
        };
        self.human(&row([
            "PLUG".into(),
            "ALIAS".into(),
            "MODEL".into(),
            "HW".into(),
            "VERSION".into(),
            "VERDICT".into(),
            "IMAGE".into(),
        ]));
        for e in entries {
            let (from, to) = e.versions();
            let mark = if e.will_update(force) {
                ""
            } else {
                " (skipped)"
            };
            let image = e
                .image
                .as_ref()
                .map(|i| clean_long(&i.file_name))
                .unwrap_or_else(|| "-".into());
            self.human(&row([
                e.plug.ip.to_string(),
                clean(&e.plug.alias),
                clean(&e.plug.model),
                clean(&e.plug.hw_ver),
                format!("{} → {}", clean(&from), clean(&to)),
                e.verdict().label().to_owned(),
                format!("{image}{mark}"),
            ]));
            if e.awaits_downgrade_consent(force) {
                self.human(&format!(
                    "      downgrade {} → {}: skipped (pass --allow-downgrade to allow it; --yes \
                     and --force do not)",
                    clean(&from),
                    clean(&to)
                ));
            } else if e.assessment.downgrade && e.will_update(force) {
                self.human(&format!(
                    "      DOWNGRADE ALLOWED (--allow-downgrade): {} → {}",
                    clean(&from),
                    clean(&to)
                ));
            }
            // (A downgrade was explained just above.)
            if !matches!(
                e.verdict(),
                plan::Verdict::Compatible | plan::Verdict::Downgrade
            ) {
                let forced = force && e.will_update(force) && e.verdict().needs_override();
                self.human(&format!(
                    "      {}{}",
                    if forced { "OVERRIDE (--force): " } else { "" },
                    clean_long(&e.verdict().explain())
                ));
            }
            if let Some(ch) = &e.assessment.checks {
                self.human(&format!("      checked: {}", clean_long(&ch.summary())));
            }
            for n in &e.assessment.notes {
                self.human(&format!("      note: {}", clean_long(n)));
            }
        }
        for (ip, err) in unreachable {
            self.human(&format!("  {ip:<15} {}", clean_long(err)));
        }
    }

    /// `--json`: the plan as one line before any transition: every image as inspected and, per
    /// plug, the verdict, what was checked and whether it will be updated.
    fn plan_json(&self, images: &[Arc<ImageInfo>], entries: &[PlanEntry], force: bool) {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("will_update".into(), json!(e.will_update(force)));
                }
                v
            })
            .collect();
        let images: Vec<serde_json::Value> = images
            .iter()
            .map(|i| serde_json::to_value(i.as_ref()).unwrap_or_default())
            .collect();
        out!("{}", json!({ "plan": rows, "images": images }));
    }

    fn event(&mut self, ev: &JobEvent) {
        match ev {
            JobEvent::BatchStarted { plugs, serving } => {
                let addrs: Vec<String> = serving.iter().map(ToString::to_string).collect();
                self.note(&format!(
                    "updating {plugs} plug(s); serving the image on {}",
                    addrs.join(", ")
                ));
            }
            JobEvent::Transition {
                from,
                note,
                snapshot: s,
            } => {
                if self.json {
                    let v = json!({
                        "ip": s.ip,
                        "stage": s.stage,
                        "from_stage": from,
                        "ratio": s.ratio,
                        "served_bytes": s.served_bytes,
                        "image_bytes": s.image_len,
                        "elapsed_s": s.elapsed.as_secs_f64(),
                        "note": note,
                    });
                    out!("{v}");
                } else {
                    let extra = match (s.ratio, s.served_bytes) {
                        (Some(r), Some(b)) => format!(" [{r}%, {b}/{} bytes served]", s.image_len),
                        (None, Some(b)) => format!(" [{b}/{} bytes served]", s.image_len),
                        _ => String::new(),
                    };
                    let note = note
                        .as_deref()
                        .map(|n| format!(": {}", clean_long(n)))
                        .unwrap_or_default();
                    out!(
                        "{:<15} {:<16} {} → {}{extra}{note}",
                        s.ip,
                        clean(&s.alias),
                        from,
                        s.stage
                    );
                }
            }
            JobEvent::CancelRefused { ip, reason } => self.note(&format!("{ip}: {reason}")),
            JobEvent::Progress { snapshot: s } if !self.json => {
                if let (Some(r), crate::firmware::job::Stage::Downloading) = (s.ratio, s.stage) {
                    let last = self.shown.entry(s.ip).or_insert(0);
                    if r >= last.saturating_add(25) && r < 100 {
                        *last = r - r % 25;
                        out!(
                            "{:<15} {:<16} downloading {r}% [{}/{} bytes served]",
                            s.ip,
                            clean(&s.alias),
                            s.served_bytes.unwrap_or(0),
                            s.image_len
                        );
                    }
                }
            }
            JobEvent::Progress { .. } | JobEvent::BatchFinished { .. } => {}
        }
    }

    fn finals(
        &self,
        report: &BatchReport,
        entries: &[PlanEntry],
        unreachable: &[(IpAddr, String)],
        force: bool,
    ) {
        let mut rows: Vec<serde_json::Value> = Vec::new();
        for p in &report.plugs {
            rows.push(json!({
                "ip": p.ip,
                "result": p.result,
                "from": p.from,
                "to": p.to,
                "now": p.now,
                "error": p.error,
                "stage": p.stage,
                "warnings": p.warnings,
                "image": p.image,
                "served_bytes": p.served.bytes,
                "elapsed_s": p.elapsed.as_secs_f64(),
            }));
        }
        // Plugs of the plan the batch never saw (nothing to update at all).
        for e in entries {
            if !report.plugs.iter().any(|p| p.ip == e.plug.ip) {
                let (_, to) = e.versions();
                let why = if e.will_update(force) {
                    "not started".to_owned()
                } else {
                    format!("not updated: {}", e.verdict().explain())
                };
                rows.push(json!({
                    "ip": e.plug.ip, "result": PlugResult::Skipped, "from": e.plug.sw_ver,
                    "to": to, "error": why,
                }));
            }
        }
        for (ip, err) in unreachable {
            rows.push(json!({
                "ip": ip, "result": PlugResult::Failed, "from": null, "to": null,
                "error": err, "stage": "preflight",
            }));
        }
        if self.json {
            for r in &rows {
                out!("{r}");
            }
            return;
        }
        out!("\nSummary:");
        for r in &rows {
            let s = |k: &str| r[k].as_str().map(clean_long).unwrap_or_default();
            match r["result"].as_str() {
                Some("updated") => out!(
                    "  {:<15} updated  {} → {}",
                    s("ip"),
                    s("from"),
                    r["now"].as_str().map(clean_long).unwrap_or_else(|| s("to"))
                ),
                other => out!(
                    "  {:<15} {:<8} {}",
                    s("ip"),
                    other.unwrap_or("unknown"),
                    s("error")
                ),
            }
        }
        let n = rows.len();
        let ok = rows.iter().filter(|r| r["result"] == "updated").count();
        out!("{ok} of {n} plug(s) updated and verified.");
    }
}

fn clean_long(s: &str) -> String {
    crate::text::printable(s, 200)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::job::JobSnapshot;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn moved(ip: IpAddr, from: Stage, stage: Stage, remaining: Option<Duration>) -> JobEvent {
        JobEvent::Transition {
            from,
            note: None,
            snapshot: JobSnapshot {
                ip,
                alias: "Kettle".into(),
                model: "HS110(US)".into(),
                from: "1.2.6".into(),
                to: "1.2.9".into(),
                stage,
                ratio: None,
                served_bytes: None,
                image_len: 1000,
                elapsed: Duration::ZERO,
                expected_remaining: remaining,
                can_cancel: matches!(
                    stage,
                    Stage::Preflight
                        | Stage::DownloadRequested
                        | Stage::Downloading
                        | Stage::Downloaded
                ),
                outcome: None,
                warnings: Vec::new(),
            },
        }
    }

    #[test]
    fn the_heartbeat_line_says_how_long_of_how_long_at_most() {
        assert_eq!(
            heartbeat_line(
                ip(5),
                Stage::Rebooting,
                Duration::from_millis(45_900),
                Duration::from_secs(300)
            ),
            "127.0.0.5: rebooting, 45 s of ≤ 300 s"
        );
    }

    #[test]
    fn on_a_terminal_a_plug_offline_gets_a_line_every_15_s_and_none_after_it_is_done() {
        let t0 = Instant::now();
        let mut w = Watch::new(Duration::from_secs(300), true);
        w.observe(
            &moved(ip(5), Stage::Downloaded, Stage::Downloading, None),
            t0,
        );
        assert!(
            w.in_flight().is_empty(),
            "a download can still be cancelled"
        );
        w.observe(
            &moved(ip(5), Stage::Downloaded, Stage::FlashRequested, None),
            t0,
        );
        // Flash 60 s + reboot 30 s + quiet 30 s left when it started flashing.
        let flash = moved(
            ip(5),
            Stage::FlashRequested,
            Stage::Flashing,
            Some(Duration::from_secs(120)),
        );
        w.observe(&flash, t0);
        assert_eq!(w.in_flight(), vec![(ip(5), Stage::Flashing)]);
        assert!(w.due(t0 + Duration::from_secs(14)).is_empty());
        assert_eq!(
            w.due(t0 + Duration::from_secs(15)),
            vec![(ip(5), "127.0.0.5: flashing, 15 s of ≤ 420 s".to_owned())]
        );
        assert!(
            w.due(t0 + Duration::from_secs(16)).is_empty(),
            "not again at once"
        );
        w.observe(
            &moved(ip(5), Stage::Flashing, Stage::Rebooting, None),
            t0 + Duration::from_secs(60),
        );
        assert_eq!(
            w.due(t0 + Duration::from_secs(61)),
            vec![(ip(5), "127.0.0.5: rebooting, 61 s of ≤ 420 s".to_owned())],
            "one line, not one per missed beat"
        );
        w.observe(
            &moved(ip(5), Stage::Rebooting, Stage::Verifying, None),
            t0 + Duration::from_secs(120),
        );
        assert_eq!(
            w.due(t0 + Duration::from_secs(121)),
            vec![(ip(5), "127.0.0.5: verifying, 121 s of ≤ 420 s".to_owned())]
        );
        w.observe(
            &moved(ip(5), Stage::Verifying, Stage::Done, None),
            t0 + Duration::from_secs(130),
        );
        assert!(w.in_flight().is_empty());
        assert!(w.due(t0 + Duration::from_secs(200)).is_empty());
    }

    #[test]
    fn without_a_terminal_there_is_no_heartbeat_but_the_plugs_in_flight_are_known() {
        let t0 = Instant::now();
        let mut w = Watch::new(Duration::from_secs(300), false);
        assert!(!w.heartbeat);
        w.observe(
            &moved(ip(5), Stage::FlashRequested, Stage::Rebooting, None),
            t0,
        );
        w.observe(
            &moved(ip(6), Stage::Preflight, Stage::Downloading, None),
            t0,
        );
        assert!(w.due(t0 + Duration::from_secs(600)).is_empty());
        assert_eq!(w.in_flight(), vec![(ip(5), Stage::Rebooting)]);
    }

    #[test]
    fn every_verdict_label_fits_the_plan_column() {
        // Found by QA: "size-out-of-bounds" and "unrecognised-content" pushed IMAGE out of line.
        use plan::Verdict as V;
        let r = || String::from("r");
        for v in [
            V::Compatible,
            V::ProtocolChange { reason: r() },
            V::Downgrade,
            V::SameVersion,
            V::UnknownTarget { reason: r() },
            V::WrongTarget { reason: r() },
            V::AboveCeiling { reason: r() },
            V::Corrupt { reason: r() },
            V::UnrecognisedContent { reason: r() },
            V::SizeOutOfBounds { reason: r() },
            V::Refused { reason: r() },
        ] {
            assert!(v.label().chars().count() <= VERDICT_W, "{}", v.label());
        }
    }

    #[test]
    fn the_signal_notes_name_the_plugs_still_flashing() {
        let flying = [(ip(5), Stage::Rebooting)];
        let n = cancel_note(ExitSignal::Terminate, &flying);
        assert!(n.starts_with("SIGTERM: stopping"), "{n}");
        assert!(n.contains("127.0.0.5 (rebooting)"), "{n}");
        assert!(cancel_note(ExitSignal::Hangup, &[]).ends_with("no plug is flashing"));
        let n = waiting_note(ExitSignal::Interrupt, &flying, 1);
        assert!(n.contains("still waiting for 1 plug(s)"), "{n}");
        assert!(n.contains("1 more to stop waiting"), "{n}");
        for n in [
            cancel_note(ExitSignal::Terminate, &flying),
            waiting_note(ExitSignal::Quit, &flying, 1),
            abandon_note(ExitSignal::Hangup, &flying),
        ] {
            assert!(!n.contains("  "), "a run of spaces in {n:?}");
        }
        let n = abandon_note(ExitSignal::Quit, &flying);
        assert!(n.contains("NOT verified"), "{n}");
        assert!(n.contains("plugfleet status --host 127.0.0.5"), "{n}");
    }
}
