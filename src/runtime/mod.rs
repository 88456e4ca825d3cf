//! The runtime: owns the terminal and the event channel, runs the UI loop (wait for one event,
//! drain what else is queued, update, draw once, at most `MAX_FPS` times a second), and turns
//! [`Command`]s into tasks: the poller, write actions (bounded), file-picker listings, and
//! whatever sources the caller starts (discovery).
//!
//! It sits above the pure `app` (state + update) and below `ui`: the caller passes the draw
//! function (`cmd::tui` passes `ui::render`), so nothing here depends on how a frame looks.
//!
//! Its I/O is injected: the terminal (any ratatui [`Backend`]; tests pass `TestBackend`), the
//! key source ([`Io::keys`]: crossterm's event stream for the real terminal, a channel in
//! tests) and the sources of devices ([`Io::sources`]: discovery of the real network, or of a
//! simulated fleet on loopback). `tests/app_inprocess.rs` runs the whole app this way.

pub mod pacer;
pub mod sources;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{Stream, StreamExt as _};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event as ct;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::event::{ActionKind, Command, DirItem, Event};
use crate::app::quit::Leaving;
use crate::app::state::App;
use crate::app::update::update;
use crate::firmware::exits::ExitSignals;
use crate::firmware::runner::{BatchHandle, JobEvent, spawn_batch};
use crate::net::client::{Client, ClientConfig};
use crate::net::history::{self, HistoryConfig, HistoryReport};
use crate::net::poller::{self, Control, PollConfig, PollReport, Target};
use crate::protocol::{Request, Switching};
use crate::runtime::pacer::Pacer;

/// Capacity of the one event channel every source sends into.
pub const EVENT_QUEUE: usize = 1024;
/// At most this many events are applied before a frame is drawn.
const DRAIN_MAX: usize = 512;
/// Frame-rate cap.
pub const MAX_FPS: u32 = 30;
/// Write actions (relay, reboot) in flight at once.
const ACTION_CONCURRENCY: usize = 4;

impl From<JobEvent> for Event {
    fn from(e: JobEvent) -> Self {
        Event::Job(Box::new(e))
    }
}

/// Reads a directory for the file picker: folders first, then files; hidden entries skipped.
fn list_dir(dir: &std::path::Path) -> Result<Vec<DirItem>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut items: Vec<DirItem> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                return None;
            }
            let meta = e.metadata().ok()?;
            if !crate::app::firmware::listed(&name, meta.is_dir()) {
                return None;
            }
            Some(DirItem {
                name,
                is_dir: meta.is_dir(),
                size: meta.len(),
            })
        })
        .take(2000)
        .collect();
    items.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    Ok(items)
}

impl From<PollReport> for Event {
    fn from(r: PollReport) -> Self {
        Event::Polled(Box::new(r))
    }
}

impl From<HistoryReport> for Event {
    fn from(r: HistoryReport) -> Self {
        Event::History(Box::new(r))
    }
}

/// Energy history jobs waiting for the history task; more are dropped (and asked again by the
/// model within the hour).
const HISTORY_QUEUE: usize = 256;

/// What the runtime needs besides the app.
pub struct Setup {
    pub poll: PollConfig,
    /// Timeouts for write actions (the port comes from each device).
    pub client: ClientConfig,
    /// Where metrics snapshots are published for the `--metrics` server, if one runs.
    pub metrics: Option<tokio::sync::watch::Sender<crate::metrics::MetricsSnapshot>>,
}

impl From<crate::record::RecordEvent> for Event {
    fn from(e: crate::record::RecordEvent) -> Self {
        Event::Recording(e)
    }
}

/// Opens the record file (creating its folder) and starts the writer task.
fn start_recorder(
    path: &std::path::Path,
    format: crate::record::RecordFormat,
    tx: &mpsc::Sender<Event>,
    token: &CancellationToken,
) -> Result<crate::record::RecordHandle, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let rec = crate::record::Recorder::open_as(path, format).map_err(|e| e.to_string())?;
    tracing::info!("recording readings to {}", path.display());
    Ok(crate::record::RecordHandle::spawn(
        rec,
        tx.clone(),
        token.clone(),
    ))
}

/// Starts sources of events (discovery…) on the given channel; they must stop when the token
/// is cancelled. Tasks put in the set are watched: a panic ends the app.
pub type Sources = Box<dyn FnOnce(mpsc::Sender<Event>, CancellationToken, &mut JoinSet<()>) + Send>;

/// Terminal input: crossterm events (keys, resizes; the rest is ignored), or the error that
/// ended input. The stream ending means no more input (the app keeps running).
pub type Keys = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<ct::Event>> + Send>>;

/// The real terminal's input: crossterm's event stream.
pub fn terminal_keys() -> Keys {
    Box::pin(ct::EventStream::new())
}

/// What the runtime talks to besides the terminal.
pub struct Io {
    /// Terminal input.
    pub keys: Keys,
    /// Sources of devices (discovery), started with the app.
    pub sources: Sources,
    /// Handle SIGINT, SIGTERM, SIGHUP and SIGQUIT as ways out. The real terminal wants it; a
    /// test in a shared process does not (the handlers would stay installed for the whole test
    /// binary).
    pub signals: bool,
}

impl Io {
    /// The real terminal's keys and signals, with `sources`.
    pub fn terminal(sources: Sources) -> Self {
        Io {
            keys: terminal_keys(),
            sources,
            signals: true,
        }
    }
}

/// Forwards terminal input into the event channel until cancelled or input ends.
async fn forward_keys(mut keys: Keys, tx: mpsc::Sender<Event>, token: CancellationToken) {
    loop {
        let next = tokio::select! {
            _ = token.cancelled() => return,
            n = keys.next() => n,
        };
        let ev = match next {
            // No more input ever (a terminal that hung up): like an error, a way out (during a
            // firmware batch it drains the batch; `app::quit` counts it once).
            None => {
                let _ = tx
                    .send(Event::Shutdown(Some("terminal input ended".into())))
                    .await;
                return;
            }
            Some(Ok(ct::Event::Key(k))) => Event::Key(k),
            Some(Ok(ct::Event::Resize(w, h))) => Event::Resize(w, h),
            // Only arrives with mouse capture on (not with `--no-mouse`).
            Some(Ok(ct::Event::Mouse(m))) => Event::Mouse(m),
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                let _ = tx
                    .send(Event::Shutdown(Some(format!("terminal input: {e}"))))
                    .await;
                return;
            }
        };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}

/// Sends `Shutdown` on every SIGINT, SIGTERM, SIGHUP and SIGQUIT until `token` is cancelled
/// (Ctrl-C in raw mode arrives as a key instead). Each one is a way out: the app quits at once
/// without a firmware batch, and drains a running one (`app::quit`), so the terminal is restored
/// on every signal and no flash is abandoned on the first.
async fn forward_signals(
    mut signals: ExitSignals,
    tx: mpsc::Sender<Event>,
    token: CancellationToken,
) {
    loop {
        let sig = tokio::select! {
            _ = token.cancelled() => return,
            sig = signals.recv() => sig,
        };
        tracing::warn!("{sig}: leaving");
        if tx.send(Event::Shutdown(None)).await.is_err() {
            return;
        }
    }
}

async fn perform(
    cfg: ClientConfig,
    addr: SocketAddr,
    child: Option<String>,
    kind: ActionKind,
    switching: Switching,
) -> Result<(), String> {
    let client = Client::new(
        addr.ip(),
        ClientConfig {
            port: addr.port(),
            ..cfg
        },
    );
    let r = match kind {
        ActionKind::RelayOn | ActionKind::RelayOff => {
            let on = kind == ActionKind::RelayOn;
            let req = Request::set_power(switching, on, child.as_deref());
            client.call(&req).await.map(drop)
        }
        ActionKind::Reboot => client.reboot(1).await,
        ActionKind::EraseStats => {
            crate::net::history::erase_stats(addr, &client.cfg, child.as_deref()).await
        }
    };
    r.map_err(|e| e.to_string())
}

/// A write to a newer-protocol device through its dialect, over the session the poller keeps
/// for it (`sessions` is the poller's store: a second session would cost a handshake and
/// could end the poller's). Rebooting is not offered over these transports.
async fn perform_newer(
    sessions: &crate::net::newer::Sessions,
    (key, addr): (&str, SocketAddr),
    cfg: ClientConfig,
    spec: crate::net::newer::NewerSpec,
    child: Option<String>,
    kind: ActionKind,
) -> Result<(), String> {
    let timeout = cfg.reply_timeout;
    let switch = |on| sessions.set_relay(key, addr.ip(), &spec, timeout, on, child.as_deref());
    let r = match kind {
        ActionKind::RelayOn => switch(true).await,
        ActionKind::RelayOff => switch(false).await,
        ActionKind::Reboot | ActionKind::EraseStats => {
            return Err(format!(
                "{} is not supported over the newer protocol",
                kind.label()
            ));
        }
    };
    r.map_err(|e| e.to_string())
}

/// Runs the UI until the user quits, a signal arrives, or a background task fails.
/// `terminal` is any backend; `io` brings the keys and the devices; `draw` renders one frame
/// of the app (`ui::render`). The exit status is dropped: see [`run_to_exit`].
pub async fn run<B, D>(
    terminal: &mut Terminal<B>,
    app: App,
    setup: Setup,
    io: Io,
    draw: D,
) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    D: FnMut(&mut ratatui::Frame, &App),
{
    run_to_exit(terminal, app, setup, io, draw)
        .await
        .map(|_| ())
}

/// [`run`], returning how the app left: its exit status (0, or
/// [`EXIT_INTERRUPTED`](crate::firmware::exits::EXIT_INTERRUPTED) after leaving during a
/// firmware batch that was drained, or `EXIT_ABANDONED`) and what to say once the terminal is
/// restored (`app::quit`).
pub async fn run_to_exit<B, D>(
    terminal: &mut Terminal<B>,
    mut app: App,
    setup: Setup,
    io: Io,
    mut draw: D,
) -> anyhow::Result<Leaving>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    D: FnMut(&mut ratatui::Frame, &App),
{
    // First of all, before any task runs: from here on a signal is an event, never the end of
    // the process with the terminal left raw. (Not in tests that share a process: `io.signals`.)
    let signals = if io.signals {
        ExitSignals::install()
            .inspect_err(|e| tracing::warn!("cannot handle signals: {e}"))
            .ok()
    } else {
        None
    };
    let token = CancellationToken::new();
    let _cancel_on_exit = token.clone().drop_guard();
    let (tx, mut rx) = mpsc::channel::<Event>(EVENT_QUEUE);
    // Unbounded on purpose: the UI loop must never wait on the poller while the poller waits
    // on the UI loop; control messages are bounded by user actions and devices found.
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel::<Control>();
    let (ctl_bridge_tx, ctl_bridge_rx) = mpsc::channel::<Control>(64);

    let mut tasks: JoinSet<()> = JoinSet::new();
    // The energy history has its own task and connections: never on the poll path.
    let (hist_tx, hist_rx) = mpsc::channel(HISTORY_QUEUE);
    tasks.spawn(history::run(
        HistoryConfig {
            client: setup.client,
            ..HistoryConfig::default()
        },
        hist_rx,
        tx.clone(),
        token.child_token(),
    ));
    // The newer-protocol devices' sessions: the poller's, which writes reuse.
    let sessions = crate::net::newer::Sessions::new();
    // The poller has a thread of its own: a frame being drawn never delays a poll.
    let poll_thread = poller::spawn_thread(
        setup.poll,
        ctl_bridge_rx,
        tx.clone(),
        token.child_token(),
        Arc::new(crate::net::pool::PoolStats::default()),
        sessions.clone(),
    )?;
    tasks.spawn(poll_thread.join());
    {
        // Forward the unbounded control queue into the poller's bounded one.
        let token = token.clone();
        let mut ctl_rx = ctl_rx;
        tasks.spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = token.cancelled() => return,
                    m = ctl_rx.recv() => m,
                };
                let Some(msg) = msg else { return };
                tokio::select! {
                    _ = token.cancelled() => return,
                    r = ctl_bridge_tx.send(msg) => if r.is_err() { return },
                }
            }
        });
    }
    {
        let (tx, token) = (tx.clone(), token.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => if tx.send(Event::Tick).await.is_err() { return },
                }
            }
        });
    }
    {
        if let Some(signals) = signals {
            tasks.spawn(forward_signals(signals, tx.clone(), token.clone()));
        }
    }
    (io.sources)(tx.clone(), token.child_token(), &mut tasks);
    tasks.spawn(forward_keys(io.keys, tx.clone(), token.clone()));

    let permits = Arc::new(Semaphore::new(ACTION_CONCURRENCY));
    let mut fw_batch: Option<BatchHandle> = None;
    let mut recorder: Option<crate::record::RecordHandle> = None;
    // First event: start what the command line asked for (`--record`).
    let _ = tx.try_send(Event::Launched);
    let mut actions: JoinSet<()> = JoinSet::new();
    let frame = Duration::from_secs(1) / MAX_FPS;

    let size = terminal.size().context("reading the terminal size")?;
    update(
        &mut app,
        Event::Resize(size.width, size.height),
        std::time::Instant::now(),
    );
    terminal.draw(|f| draw(f, &app)).context("drawing")?;
    // Draws only after a change that can be seen, at most once per frame.
    let mut pacer = Pacer::new(frame);
    pacer.drawn_app(Instant::now(), &app);

    // False once drawing failed during a firmware batch.
    let mut screen = true;
    let result = 'ui: loop {
        let first = tokio::select! {
            ev = rx.recv() => Some(ev),
            // A change applied before its frame was due: draw it now.
            _ = tokio::time::sleep_until(pacer.next_frame(Instant::now())), if pacer.pending() => None,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Err(e) if e.is_panic() => break 'ui Err(anyhow::anyhow!("a background task panicked: {e}")),
                    _ => continue,
                }
            }
            Some(done) = actions.join_next(), if !actions.is_empty() => {
                match done {
                    Err(e) if e.is_panic() => break 'ui Err(anyhow::anyhow!("an action task panicked: {e}")),
                    _ => continue,
                }
            }
        };
        let mut batch = Vec::new();
        match first {
            Some(Some(ev)) => batch.push(ev),
            Some(None) => break Ok(app.leaving.clone()),
            None => {}
        }
        // Drain what else is queued, and wait out the rest of the frame budget for more.
        let deadline = pacer.next_frame(Instant::now());
        while !batch.is_empty() && batch.len() < DRAIN_MAX {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) if Instant::now() < deadline => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(ev)) => batch.push(ev),
                        _ => break,
                    }
                }
                Err(_) => break,
            }
        }
        for ev in batch {
            // Applied with `update`; the pacer notes whether the screen changes.
            let cmds = pacer.update(&mut app, ev, std::time::Instant::now());
            for cmd in cmds {
                match cmd {
                    Command::Quit => {}
                    Command::ListDir(dir) => {
                        let tx = tx.clone();
                        actions.spawn(async move {
                            let d = dir.clone();
                            let result = tokio::task::spawn_blocking(move || list_dir(&d))
                                .await
                                .unwrap_or_else(|e| Err(e.to_string()));
                            let _ = tx.send(Event::DirListed { dir, result }).await;
                        });
                    }
                    Command::PlanFirmware { path, plugs } => {
                        let tx = tx.clone();
                        let policy = app.settings.firmware.policy.clone();
                        actions.spawn(async move {
                            let result = tokio::task::spawn_blocking(move || {
                                crate::app::firmware::plan_from(&path, &plugs, &policy)
                            })
                            .await
                            .unwrap_or_else(|e| Err(e.to_string()));
                            let _ = tx.send(Event::FirmwarePlanned(result)).await;
                        });
                    }
                    Command::StartUpdate(plan) => {
                        if app.settings.read_only {
                            tracing::error!("firmware update refused in read-only mode");
                            continue;
                        }
                        let cfg = app
                            .settings
                            .firmware
                            .runner_config(setup.client, plan.force);
                        let (handle, task) =
                            spawn_batch(plan.entries, cfg, tx.clone(), token.child_token());
                        fw_batch = Some(handle);
                        let tx = tx.clone();
                        actions.spawn(async move {
                            match task.await {
                                Ok(Ok(_)) => {}
                                Ok(Err(e)) => {
                                    let _ = tx
                                        .send(Event::DiscoveryNote(format!(
                                            "firmware update could not start: {e}"
                                        )))
                                        .await;
                                }
                                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                                Err(_) => {}
                            }
                        });
                    }
                    Command::StartRecording { path, format } => {
                        if let Some(old) = recorder.take() {
                            drop(old.stop());
                        }
                        match start_recorder(&path, format, &tx, &token) {
                            Ok(h) => recorder = Some(h),
                            Err(error) => {
                                tracing::error!("recording not started: {error}");
                                let ev = crate::record::RecordEvent::Failed {
                                    path,
                                    error,
                                    written: 0,
                                    dropped: 0,
                                };
                                let tx = tx.clone();
                                actions.spawn(async move {
                                    let _ = tx.send(Event::Recording(ev)).await;
                                });
                            }
                        }
                    }
                    Command::Record { key, read, unix_ms } => {
                        if let (Some(h), Some(d)) = (&recorder, app.fleet.get(&key)) {
                            // The rows are a view of the model (the verdicts every view shows).
                            // Never waits: a full queue drops (and counts) the reading; a
                            // stopped writer reports why on its own.
                            for r in crate::record::rows_for(d, &read, unix_ms) {
                                if h.record(r).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    Command::StopRecording => {
                        if let Some(h) = recorder.take() {
                            drop(h.stop());
                        }
                    }
                    Command::PublishMetrics => {
                        if let Some(m) = &setup.metrics {
                            m.send_replace(crate::metrics::view::snapshot(&app.fleet, app.now));
                        }
                    }
                    Command::ReadLog => {
                        // A full queue only delays the copy to the next tick.
                        let _ = tx.try_send(Event::LogLines(crate::logging::recent()));
                    }
                    Command::CancelUpdate => {
                        if let Some(h) = &fw_batch {
                            h.cancel_all();
                        }
                    }
                    Command::Track { key, addr } => {
                        let _ = ctl_tx.send(Control::Track(Target { key, addr }));
                    }
                    Command::TrackNewer { key, addr, spec } => {
                        let _ = ctl_tx.send(Control::TrackNewer(Target { key, addr }, spec));
                    }
                    Command::PollNow(keys) => {
                        let _ = ctl_tx.send(Control::PollNow(keys));
                    }
                    Command::FetchHistory(job) => {
                        if hist_tx.try_send(job).is_err() {
                            tracing::warn!("energy history queue full: a fetch was dropped");
                        }
                    }
                    Command::Act {
                        key,
                        addr,
                        child,
                        kind,
                        switching,
                    } => {
                        if app.settings.read_only {
                            tracing::error!(%addr, ?kind, "write refused in read-only mode");
                            continue;
                        }
                        tracing::info!(%addr, ?child, ?kind, "write");
                        let newer = crate::app::update::newer_spec(&app, &key);
                        let (tx, permits, cfg) = (tx.clone(), permits.clone(), setup.client);
                        let (token, sessions) = (token.clone(), sessions.clone());
                        actions.spawn(async move {
                            let result = tokio::select! {
                                _ = token.cancelled() => return,
                                r = async {
                                    let _permit = permits.acquire_owned().await;
                                    match newer {
                                        Some(spec) => perform_newer(&sessions, (&key, addr), cfg, spec, child.clone(), kind).await,
                                        None => perform(cfg, addr, child.clone(), kind, switching).await,
                                    }
                                } => r,
                            };
                            let _ = tx
                                .send(Event::ActionFinished {
                                    key,
                                    child,
                                    kind,
                                    result,
                                })
                                .await;
                        });
                    }
                }
            }
            if app.quit {
                break 'ui Ok(app.leaving.clone());
            }
        }
        pacer.settle(&app, tokio::time::Instant::now());
        if screen && pacer.should_draw(Instant::now()) {
            if let Err(e) = terminal.draw(|f| draw(f, &app)) {
                if !crate::app::quit::batch_running(&app) {
                    break 'ui Err(anyhow::Error::from(e).context("drawing"));
                }
                // The terminal went away (SIGHUP) mid-update: never abandon a flash for a
                // screen; the batch runs on and the app quits once it is drained.
                tracing::warn!(
                    "drawing failed ({e}); the firmware update goes on without a screen"
                );
                screen = false;
            }
            pacer.drawn_app(Instant::now(), &app);
        }
        if !screen {
            // Nothing to draw on: no frame is ever pending.
            pacer.drawn(Instant::now());
        }
    };
    if let Some(h) = recorder.take() {
        // What is queued reaches the file before we go.
        let _ = tokio::time::timeout(Duration::from_secs(3), h.stop()).await;
    }
    token.cancel();
    actions.shutdown().await;
    // Background tasks stop on the token; do not wait long for stragglers.
    let _ = tokio::time::timeout(Duration::from_secs(2), tasks.shutdown()).await;
    result
}
