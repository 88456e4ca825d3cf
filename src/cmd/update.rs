//! `plugfleet update`: update plugs' firmware from a local image or a folder of images, headless.
//!
//! Finds the named plugs (one discovery pass over `--host/--sweep/--target`), matches the
//! image(s) (each plug gets its best match), shows the plan, asks for confirmation on a terminal
//! (refuses without one unless `--yes`), then runs the batch and prints every transition. Exit
//! status 0 only if every plug was updated and verified.

use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cmd::args::{TargetArgs, UsageError, discovery_config, parse_seconds};
use crate::config::Config;
use crate::firmware::image::{self, ImageInfo};
use crate::firmware::job::JobTimings;
use crate::firmware::plan::{self, Ceilings, PlanEntry};
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
    after_help = "Verdicts: compatible, protocol-change and downgrade images are flashed after \
confirmation; unknown-target and same-version only with --force; wrong-target, corrupt and \
above-ceiling ([firmware.max_version] in the config file) never. flash_firmware is sent only \
after a complete, error-free download. Exit status 0 only if every plug was updated and verified."
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

    /// Do not ask: update every plug the plan allows.
    #[arg(long)]
    pub yes: bool,

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
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(48)
        .collect();
    if s.chars().count() > 48 {
        out.push('…');
    }
    out
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
    let ceilings = Ceilings::new(
        cfg.firmware
            .max_version
            .iter()
            .map(|(m, v)| (m.as_str(), v.as_str())),
    )
    .map_err(|e| UsageError(format!("config: {e}")))?;
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
    rt.block_on(run_async(args, images, ceilings, discovery))
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
                                "not updatable: {} speaks only the authenticated protocol ({}), \
                                 not port 9999",
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
    ceilings: Ceilings,
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
    let entries = plan::plan_with(&plugs, &images, &ceilings);

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
    let (tx, mut rx) = mpsc::channel::<JobEvent>(256);
    let token = CancellationToken::new();
    let handle = BatchHandle::new(token.clone(), entries.iter().map(|e| e.plug.ip));
    let batch = tokio::spawn(runner::run_batch(entries.clone(), cfg, tx, handle.clone()));
    let mut interrupted = false;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => out.event(&ev),
                None => break,
            },
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                out.note("interrupt: cancelling plugs that are not flashing yet; plugs already \
                          flashing run to their end (interrupting them could brick them)");
                handle.cancel_all();
            }
        }
    }
    let report = batch.await??;
    out.finals(&report, &entries, &unreachable, args.net.force);
    let ok = unreachable.is_empty() && report.all_updated() && report.plugs.len() == entries.len();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
        self.human(&format!("Images ({}):", images.len()));
        for i in images {
            self.human(&format!("  {}", clean_long(&i.describe())));
        }
        self.human("Plan:");
        self.human(&format!(
            "  {:<15} {:<16} {:<10} {:<4} {:<18} {:<16} IMAGE",
            "PLUG", "ALIAS", "MODEL", "HW", "VERSION", "VERDICT"
        ));
        for e in entries {
            let (from, to) = e.versions();
            let mark = if e.will_update(force) {
                ""
            } else {
                " (skipped)"
            };
            self.human(&format!(
                "  {:<15} {:<16} {:<10} {:<4} {:<18} {:<16} {}{}",
                e.plug.ip,
                clean(&e.plug.alias),
                clean(&e.plug.model),
                clean(&e.plug.hw_ver),
                format!("{} → {}", clean(&from), clean(&to)),
                e.verdict().label(),
                e.image
                    .as_ref()
                    .map(|i| clean_long(&i.file_name))
                    .unwrap_or_else(|| "-".into()),
                mark
            ));
            if e.verdict() != &plan::Verdict::Compatible {
                self.human(&format!("      {}", clean_long(&e.verdict().explain())));
            }
            for n in &e.assessment.notes {
                self.human(&format!("      note: {}", clean_long(n)));
            }
        }
        for (ip, err) in unreachable {
            self.human(&format!("  {ip:<15} {}", clean_long(err)));
        }
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
                    other.unwrap_or("?"),
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
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(200)
        .collect()
}
