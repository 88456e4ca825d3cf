//! Runs update jobs against real plugs: starts the file server, drives each [`Job`] with a
//! [`Client`] and real time, and reports progress as [`JobEvent`]s.
//!
//! - Concurrency limit (default 4), an optional canary (one plug first; the rest only after it
//!   verified), and stop-on-first-failure as an option; otherwise a failure on one plug never
//!   stops the others.
//! - Every transition is appended to a JSON-lines journal.
//! - `flash_firmware` is sent only when the job asks for it, and the runner checks once more that
//!   the last download state it fed the job was complete (belt and braces over the job's own
//!   invariant).

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::image::ImageInfo;
use super::job::{
    Job, JobEffect, JobInput, JobSnapshot, JobSpec, JobTimings, Outcome, Stage, Transition,
};
use super::plan::PlanEntry;
use super::server::{FileServer, ServedStats, ServerError, local_addr_for};
use crate::net::client::Connection;
use crate::net::{Client, ClientConfig, NetError};
use crate::protocol::{DownloadState, Request};

/// Default number of plugs updated at once.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub client: ClientConfig,
    pub timings: JobTimings,
    /// Plugs updated at once (at least 1).
    pub concurrency: usize,
    /// Update one plug first; the rest only once it verified.
    pub canary: bool,
    /// After the first failure start no more plugs and cancel those still cancellable.
    pub stop_on_failure: bool,
    /// The explicit override for verdicts that need one (unknown target, same version).
    pub force: bool,
    /// The address the plugs fetch the image from (default: per plug, the local address that
    /// routes to it).
    pub serve_addr: Option<IpAddr>,
    /// The port to serve on (0 = ephemeral).
    pub serve_port: u16,
    /// Where transitions are appended (JSON lines); `None` = no journal.
    pub journal: Option<PathBuf>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            timings: JobTimings::default(),
            concurrency: DEFAULT_CONCURRENCY,
            canary: false,
            stop_on_failure: false,
            force: false,
            serve_addr: None,
            serve_port: 0,
            journal: default_journal_path(),
        }
    }
}

/// `<platform data dir>/plugfleet/journal.jsonl` (on Linux `$XDG_DATA_HOME/plugfleet/` or
/// `~/.local/share/plugfleet/`).
pub fn default_journal_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "plugfleet").map(|d| d.data_dir().join("journal.jsonl"))
}

/// How one plug's update ended, for reports and `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlugResult {
    Updated,
    Failed,
    Cancelled,
    /// Not attempted: blocked verdict, canary failed, or stopped after a failure.
    Skipped,
}

/// The final word on one plug.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlugReport {
    pub ip: IpAddr,
    pub alias: String,
    pub model: String,
    pub mac: String,
    pub result: PlugResult,
    /// `sw_ver` before.
    pub from: String,
    /// The version expected (`?` when unknown).
    pub to: String,
    /// `sw_ver` reported after the update, when verified.
    pub now: Option<String>,
    /// The stage it failed or was cancelled in.
    pub stage: Option<Stage>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    pub image: Option<String>,
    pub served: ServedStats,
    #[serde(serialize_with = "ser_secs")]
    pub elapsed: Duration,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// The whole batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchReport {
    pub plugs: Vec<PlugReport>,
    #[serde(serialize_with = "ser_secs")]
    pub elapsed: Duration,
}

impl BatchReport {
    pub fn count(&self, r: PlugResult) -> usize {
        self.plugs.iter().filter(|p| p.result == r).count()
    }

    /// True when every plug was updated and verified (exit status 0).
    pub fn all_updated(&self) -> bool {
        !self.plugs.is_empty() && self.plugs.iter().all(|p| p.result == PlugResult::Updated)
    }
}

/// Progress of a batch, sent over `mpsc::Sender<E> where E: From<JobEvent>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum JobEvent {
    /// The file server listens; the batch starts.
    BatchStarted {
        plugs: usize,
        serving: Vec<SocketAddr>,
    },
    /// A job changed stage (also the final stage).
    Transition {
        from: Stage,
        note: Option<String>,
        snapshot: JobSnapshot,
    },
    /// Ratio or served bytes changed (sent only on change).
    Progress { snapshot: JobSnapshot },
    /// A cancel arrived after the flash was requested; the update goes on.
    CancelRefused { ip: IpAddr, reason: String },
    /// The batch ended (the server has stopped).
    BatchFinished { report: BatchReport },
}

/// Why a batch could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Server(#[from] ServerError),
    // The cause is in the message and not a `source`, so `{:#}` does not print it twice.
    #[error("cannot open the journal {path}: {cause}")]
    Journal {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// Cancels one plug's job or the whole batch (each job still refuses once its flash was
/// requested).
#[derive(Debug, Clone)]
pub struct BatchHandle {
    all: CancellationToken,
    per_plug: Arc<HashMap<IpAddr, CancellationToken>>,
}

impl BatchHandle {
    /// A handle for `plugs` under `all` (cancelling `all` cancels every job).
    pub fn new(all: CancellationToken, plugs: impl IntoIterator<Item = IpAddr>) -> Self {
        let per_plug = plugs
            .into_iter()
            .map(|ip| (ip, all.child_token()))
            .collect();
        Self {
            all,
            per_plug: Arc::new(per_plug),
        }
    }

    pub fn cancel(&self, ip: IpAddr) {
        if let Some(t) = self.per_plug.get(&ip) {
            t.cancel();
        }
    }

    pub fn cancel_all(&self) {
        self.all.cancel();
    }

    fn token(&self, ip: IpAddr) -> CancellationToken {
        self.per_plug
            .get(&ip)
            .cloned()
            .unwrap_or_else(|| self.all.child_token())
    }
}

/// The JSON-lines journal.
struct Journal {
    file: Option<Mutex<std::fs::File>>,
}

#[derive(Serialize)]
struct JournalLine<'a> {
    ts_ms: u128,
    ip: IpAddr,
    mac: &'a str,
    device_id: &'a str,
    model: &'a str,
    image: &'a str,
    sha256: &'a str,
    from_version: &'a str,
    to_version: &'a str,
    from: Stage,
    stage: Stage,
    note: Option<&'a str>,
    ratio: Option<u8>,
    served_bytes: Option<u64>,
}

impl Journal {
    fn open(path: Option<&Path>) -> Result<Journal, RunError> {
        let Some(path) = path else {
            return Ok(Journal { file: None });
        };
        let err = |cause| RunError::Journal {
            path: path.to_owned(),
            cause,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        Ok(Journal {
            file: Some(Mutex::new(f)),
        })
    }

    fn append(&self, spec: &JobSpec, image: &str, t: &Transition, snap: &JobSnapshot) {
        let Some(f) = &self.file else { return };
        let line = JournalLine {
            ts_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
            ip: spec.plug.ip,
            mac: &spec.plug.mac,
            device_id: &spec.plug.device_id,
            model: &spec.plug.model,
            image,
            sha256: &spec.image_sha256,
            from_version: &spec.plug.sw_ver,
            to_version: &snap.to,
            from: t.from,
            stage: t.to,
            note: t.note.as_deref(),
            ratio: snap.ratio,
            served_bytes: snap.served_bytes,
        };
        let Ok(mut text) = serde_json::to_vec(&line) else {
            return;
        };
        text.push(b'\n');
        let mut g = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = g.write_all(&text).and_then(|()| g.flush()) {
            tracing::warn!("journal write failed: {e}");
        }
    }
}

/// What every job of a batch shares.
struct Shared<E> {
    cfg: RunnerConfig,
    tx: mpsc::Sender<E>,
    server: FileServer,
    journal: Journal,
    /// Set on the first failure when stop-on-failure is on.
    stop: CancellationToken,
}

async fn emit<E: From<JobEvent>>(tx: &mpsc::Sender<E>, ev: JobEvent) {
    // A closed receiver (UI gone) must not stop an update half-way: keep going silently.
    let _ = tx.send(E::from(ev)).await;
}

fn report_from_entry(entry: &PlanEntry, result: PlugResult, error: String) -> PlugReport {
    let (_, to) = entry.versions();
    PlugReport {
        ip: entry.plug.ip,
        alias: entry.plug.alias.clone(),
        model: entry.plug.model.clone(),
        mac: entry.plug.mac.clone(),
        result,
        from: entry.plug.sw_ver.clone(),
        to,
        now: None,
        stage: None,
        error: Some(error),
        warnings: Vec::new(),
        image: entry.image.as_ref().map(|i| i.file_name.clone()),
        served: ServedStats::default(),
        elapsed: Duration::ZERO,
    }
}

/// Runs the batch to its end. Entries that must not be updated (blocked verdict, or one that
/// needs `force` without it) are reported as skipped and never touched.
pub async fn run_batch<E>(
    entries: Vec<PlanEntry>,
    cfg: RunnerConfig,
    tx: mpsc::Sender<E>,
    handle: BatchHandle,
) -> Result<BatchReport, RunError>
where
    E: From<JobEvent> + Send + 'static,
{
    let started = Instant::now();
    let mut reports: Vec<Option<PlugReport>> = vec![None; entries.len()];
    let mut runnable = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let duplicate = entries[..i]
            .iter()
            .any(|o| o.plug.ip == e.plug.ip || o.plug.mac == e.plug.mac);
        if duplicate {
            reports[i] = Some(report_from_entry(
                e,
                PlugResult::Skipped,
                "not updated: the same plug is listed twice".into(),
            ));
            continue;
        }
        match &e.image {
            Some(img) if e.will_update(cfg.force) => runnable.push((i, img.clone())),
            _ => {
                reports[i] = Some(report_from_entry(
                    e,
                    PlugResult::Skipped,
                    format!("not updated: {}", e.verdict().explain()),
                ));
            }
        }
    }
    if runnable.is_empty() {
        let report = BatchReport {
            plugs: reports.into_iter().flatten().collect(),
            elapsed: started.elapsed(),
        };
        emit(
            &tx,
            JobEvent::BatchFinished {
                report: report.clone(),
            },
        )
        .await;
        return Ok(report);
    }

    // Serve each chosen image once, under its file name (made unique); listen where the plugs
    // can reach us.
    let mut images: Vec<(Arc<ImageInfo>, String)> = Vec::new();
    for (_, img) in &runnable {
        if images.iter().any(|(i, _)| i.path == img.path) {
            continue;
        }
        let mut name = img.file_name.clone();
        let mut k = 1;
        while images.iter().any(|(_, n)| *n == name) {
            k += 1;
            name = format!("{k}-{}", img.file_name);
        }
        images.push((img.clone(), name));
    }
    let serve_name = |img: &ImageInfo| {
        images
            .iter()
            .find(|(i, _)| i.path == img.path)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    // One secret URL per plug, answering only that plug's address: bytes served are that
    // plug's own fetches.
    let server = FileServer::per_plug(
        runnable
            .iter()
            .map(|(i, img)| (entries[*i].plug.ip, serve_name(img), img.bytes.clone())),
    )?;
    let mut local_for: HashMap<IpAddr, IpAddr> = HashMap::new();
    let mut no_route: HashMap<IpAddr, String> = HashMap::new();
    let mut bind: Vec<SocketAddr> = Vec::new();
    for (i, _) in &runnable {
        let ip = entries[*i].plug.ip;
        let local = match cfg.serve_addr {
            Some(a) => a,
            None => match local_addr_for(ip) {
                Ok(a) => a,
                Err(e) => {
                    no_route.insert(ip, e.to_string());
                    continue;
                }
            },
        };
        local_for.insert(ip, local);
        let sa = SocketAddr::new(local, cfg.serve_port);
        if !bind.contains(&sa) {
            bind.push(sa);
        }
    }
    let running = server.spawn(&bind).await?;
    let journal = Journal::open(cfg.journal.as_deref())?;
    emit(
        &tx,
        JobEvent::BatchStarted {
            plugs: runnable.len(),
            serving: running.addrs().to_vec(),
        },
    )
    .await;

    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        tx: tx.clone(),
        server: running.files().clone(),
        journal,
        stop: CancellationToken::new(),
    });

    let mut queue: Vec<(usize, JobSpec, String)> = Vec::new();
    for (i, img) in &runnable {
        let e = &entries[*i];
        let local = local_for.get(&e.plug.ip).copied();
        let url = local.and_then(|l| running.url_for(l, &e.plug.ip.to_string()));
        let Some(url) = url else {
            let why = no_route
                .get(&e.plug.ip)
                .cloned()
                .unwrap_or_else(|| "internal error: no URL for this plug's image".into());
            let mut r = report_from_entry(e, PlugResult::Failed, why);
            r.stage = Some(Stage::Preflight);
            reports[*i] = Some(r);
            continue;
        };
        let spec = JobSpec {
            plug: e.plug.clone(),
            url,
            image_len: img.size,
            image_sha256: img.sha256.clone(),
            expected: e.assessment.to.clone(),
            protocol_change: match e.verdict() {
                super::plan::Verdict::ProtocolChange { reason } => Some(reason.clone()),
                _ => None,
            },
        };
        queue.push((*i, spec, img.file_name.clone()));
    }

    let mut queue = queue.into_iter();
    // The canary runs alone first.
    if cfg.canary
        && let Some((i, spec, name)) = queue.next()
    {
        let token = handle.token(spec.plug.ip);
        let r = drive(shared.clone(), spec, name, token).await;
        let ok = r.result == PlugResult::Updated;
        let canary_ip = r.ip;
        reports[i] = Some(r);
        if !ok {
            for (j, spec, _) in queue.by_ref() {
                reports[j] = Some(report_from_entry(
                    &entries[j],
                    PlugResult::Skipped,
                    format!(
                        "not started: the canary {canary_ip} did not update (of {})",
                        spec.plug.ip
                    ),
                ));
            }
        }
    }

    let sem = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let mut set: JoinSet<(usize, PlugReport)> = JoinSet::new();
    let mut not_started = Vec::new();
    for (i, spec, name) in queue {
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => p,
            _ = shared.stop.cancelled() => { not_started.push(i); continue; }
            _ = handle.all.cancelled() => { not_started.push(i); continue; }
        };
        let Ok(permit) = permit else {
            not_started.push(i);
            continue;
        };
        if shared.stop.is_cancelled() || handle.all.is_cancelled() {
            not_started.push(i);
            continue;
        }
        let token = handle.token(spec.plug.ip);
        let sh = shared.clone();
        set.spawn(async move {
            let r = drive(sh, spec, name, token).await;
            drop(permit);
            (i, r)
        });
    }
    while let Some(res) = set.join_next().await {
        match res {
            Ok((i, r)) => reports[i] = Some(r),
            Err(e) => tracing::error!("update task ended abnormally: {e}"),
        }
    }
    for i in not_started {
        let why = if handle.all.is_cancelled() {
            "not started: the batch was cancelled"
        } else {
            "not started: stopped after a failure (--stop-on-failure)"
        };
        reports[i] = Some(report_from_entry(
            &entries[i],
            PlugResult::Skipped,
            why.into(),
        ));
    }
    running.shutdown().await;
    let report = BatchReport {
        plugs: reports
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| {
                    report_from_entry(
                        &entries[i],
                        PlugResult::Failed,
                        "the update task ended abnormally".into(),
                    )
                })
            })
            .collect(),
        elapsed: started.elapsed(),
    };
    emit(
        &tx,
        JobEvent::BatchFinished {
            report: report.clone(),
        },
    )
    .await;
    Ok(report)
}

/// Spawns [`run_batch`] and returns a handle to cancel plugs or the batch.
pub fn spawn_batch<E>(
    entries: Vec<PlanEntry>,
    cfg: RunnerConfig,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
) -> (
    BatchHandle,
    tokio::task::JoinHandle<Result<BatchReport, RunError>>,
)
where
    E: From<JobEvent> + Send + 'static,
{
    let handle = BatchHandle::new(token, entries.iter().map(|e| e.plug.ip));
    let h = handle.clone();
    let task = tokio::spawn(run_batch(entries, cfg, tx, h));
    (handle, task)
}

/// Drives one job to its end.
async fn drive<E>(
    sh: Arc<Shared<E>>,
    spec: JobSpec,
    image_name: String,
    cancel: CancellationToken,
) -> PlugReport
where
    E: From<JobEvent> + Send + 'static,
{
    let client = Client::new(spec.plug.ip, sh.cfg.client);
    let mut poll = PollLink::new(client);
    let ip = spec.plug.ip;
    let mut job = Job::new(spec.clone(), sh.cfg.timings, Instant::now());
    let mut last_sent: Option<(Stage, Option<u8>, Option<u64>)> = None;
    let mut cancel_handled = false;
    // The last download state the runner fed the job: Flash is only sent if it was complete.
    let mut last_state_complete = false;
    let mut effects = std::collections::VecDeque::from(job.start(Instant::now()));
    publish(&sh, &mut job, &image_name, &mut last_sent).await;
    loop {
        while let Some(effect) = effects.pop_front() {
            if job.is_final() {
                break;
            }
            let input = match effect {
                JobEffect::ReadSysInfo => JobInput::SysInfo(client.sysinfo().await.map(Box::new)),
                JobEffect::RequestDownload { url } => {
                    JobInput::DownloadAccepted(client.download_firmware(&url).await)
                }
                JobEffect::ReadDownloadState => {
                    let result = poll.download_state().await;
                    let served = Some(sh.server.key_stats(&ip.to_string()).bytes);
                    last_state_complete = result.as_ref().is_ok_and(|s| s.is_complete());
                    JobInput::DownloadState { result, served }
                }
                JobEffect::Flash => {
                    if !last_state_complete {
                        // Unreachable by the job's invariant; never flash on doubt.
                        tracing::error!("{ip}: flash asked without a complete download");
                        JobInput::FlashSent(Err(NetError::Reply(
                            "internal: flash refused without a complete download".into(),
                        )))
                    } else {
                        JobInput::FlashSent(client.flash_firmware().await)
                    }
                }
                JobEffect::SetRelay { on, child } => {
                    JobInput::RelayRestored(client.set_relay(on, child.as_deref()).await)
                }
            };
            // A cancel that arrived meanwhile is applied before the result, so a download that
            // completes in the same moment is not flashed.
            if cancel.is_cancelled() && !cancel_handled {
                cancel_handled = true;
                handle_cancel(&sh, &mut job, ip).await;
                publish(&sh, &mut job, &image_name, &mut last_sent).await;
                if job.is_final() {
                    break;
                }
            }
            effects.extend(job.handle(input, Instant::now()));
            if job.stage() != Stage::Downloading {
                // Never hold a connection into the flash and reboot.
                poll.conn = None;
            }
            if shared_stop(&sh, &cancel) && !cancel_handled && job.can_cancel() {
                cancel_handled = true;
                job.handle(JobInput::Cancel, Instant::now());
            }
            publish(&sh, &mut job, &image_name, &mut last_sent).await;
        }
        if job.is_final() {
            break;
        }
        let wake = job
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + sh.cfg.timings.poll_interval);
        let wake = tokio::time::Instant::from_std(wake);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {
                effects.extend(job.handle(JobInput::Tick, Instant::now()));
            }
            _ = cancel.cancelled(), if !cancel_handled => {
                cancel_handled = true;
                handle_cancel(&sh, &mut job, ip).await;
            }
            _ = sh.stop.cancelled(), if !cancel_handled && job.can_cancel() => {
                cancel_handled = true;
                job.handle(JobInput::Cancel, Instant::now());
            }
        }
        publish(&sh, &mut job, &image_name, &mut last_sent).await;
    }
    let snap = job.snapshot(Instant::now());
    if sh.cfg.stop_on_failure && matches!(job.outcome(), Some(Outcome::Failed { .. })) {
        sh.stop.cancel();
    }
    let (result, stage, error) = match job.outcome() {
        Some(Outcome::Updated) => (PlugResult::Updated, None, None),
        Some(Outcome::Failed { stage, reason }) => {
            (PlugResult::Failed, Some(*stage), Some(reason.clone()))
        }
        Some(Outcome::Cancelled { stage }) => {
            let why = if sh.stop.is_cancelled() && !cancel.is_cancelled() {
                "cancelled: another plug failed (--stop-on-failure)"
            } else {
                "cancelled by the user"
            };
            (PlugResult::Cancelled, Some(*stage), Some(why.to_owned()))
        }
        None => (
            PlugResult::Failed,
            Some(job.stage()),
            Some("the job ended without an outcome".into()),
        ),
    };
    PlugReport {
        ip,
        alias: spec.plug.alias.clone(),
        model: spec.plug.model.clone(),
        mac: spec.plug.mac.clone(),
        result,
        from: spec.plug.sw_ver.clone(),
        to: snap.to.clone(),
        now: job.after().map(|s| s.sw_ver.clone()),
        stage,
        error,
        warnings: job.warnings().to_vec(),
        image: Some(image_name),
        served: sh.server.key_stats(&ip.to_string()),
        elapsed: snap.elapsed,
    }
}

/// The download-state poll over one kept-open connection (as python-kasa does), reconnecting
/// after any error: with 50 plugs polled several times a second, a fresh TCP connection per poll
/// is most of the cost. Every other request goes through [`Client`] on a fresh connection.
struct PollLink {
    client: Client,
    conn: Option<Connection<tokio::net::TcpStream>>,
}

impl PollLink {
    fn new(client: Client) -> Self {
        Self { client, conn: None }
    }

    async fn download_state(&mut self) -> Result<DownloadState, NetError> {
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self
                .conn
                .insert(Connection::connect(self.client.ip, &self.client.cfg).await?),
        };
        let reply = conn.call(&Request::GetDownloadState).await;
        let parsed = reply.and_then(|root| Ok(DownloadState::from_reply(&root)?));
        // A device error came over an intact connection; anything else may have left it in an
        // unknown state (a late reply would be read as the next answer): drop it.
        if parsed
            .as_ref()
            .is_err_and(|e| !matches!(e, NetError::Device { .. }))
        {
            self.conn = None;
        }
        parsed
    }
}

fn shared_stop<E>(sh: &Shared<E>, own: &CancellationToken) -> bool {
    sh.stop.is_cancelled() && !own.is_cancelled()
}

async fn handle_cancel<E: From<JobEvent>>(sh: &Shared<E>, job: &mut Job, ip: IpAddr) {
    job.handle(JobInput::Cancel, Instant::now());
    if let Some(reason) = job.cancel_refusal() {
        emit(
            &sh.tx,
            JobEvent::CancelRefused {
                ip,
                reason: reason.to_owned(),
            },
        )
        .await;
    }
}

/// Journals and sends the transitions since the last call, and a progress event when the ratio
/// or the bytes served changed.
async fn publish<E: From<JobEvent>>(
    sh: &Shared<E>,
    job: &mut Job,
    image: &str,
    last: &mut Option<(Stage, Option<u8>, Option<u64>)>,
) {
    let now = Instant::now();
    let transitions = job.take_transitions();
    let mut snap = job.snapshot(now);
    if snap.served_bytes.is_none() && job.stage() == Stage::Downloading {
        snap.served_bytes = Some(sh.server.key_stats(&job.spec().plug.ip.to_string()).bytes);
    }
    for t in &transitions {
        // Each transition carries the snapshot as of now, with the stage it moved to.
        let mut s = snap.clone();
        s.stage = t.to;
        if !t.to.is_final() {
            s.outcome = None;
        }
        sh.journal.append(job.spec(), image, t, &s);
        emit(
            &sh.tx,
            JobEvent::Transition {
                from: t.from,
                note: t.note.clone(),
                snapshot: s,
            },
        )
        .await;
    }
    let key = (snap.stage, snap.ratio, snap.served_bytes);
    if transitions.is_empty() && last.as_ref() != Some(&key) {
        emit(&sh.tx, JobEvent::Progress { snapshot: snap }).await;
    }
    *last = Some(key);
}
