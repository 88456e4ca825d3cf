//! The poller: refreshes readings of every tracked plug on an interval, with bounded
//! concurrency, a timeout per request, backoff for failing devices, and one kept connection per
//! device ([`crate::net::pool`]) over which one request per cycle reads sysinfo and the meter (a
//! strip's outlets are read one after another over it, gently). One slow plug never delays the
//! others: each device has its own due time and at most one poll in flight.
//!
//! [`Schedule`] is the pure part (time passed in); [`run`] is the task that performs the polls
//! and sends a [`PollReport`] per poll over the app's event channel.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use crate::net::client::{ClientConfig, Connection, NetError, Stage};
use crate::net::pool::{DeviceId, Kept, Link, Pool, PoolStats};
use crate::protocol::codec::encode_frame;
use crate::protocol::lite::JsonView;
use crate::protocol::reply::parse_lite;
use crate::protocol::reply::unsupported_code;
use crate::protocol::{Realtime, Request, SysInfo};

/// How the poller behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollConfig {
    pub interval: Duration,
    /// Polls in flight at once across the fleet.
    pub concurrency: usize,
    /// Connect/reply timeouts (the port comes from each target).
    pub client: ClientConfig,
    /// Longest wait between retries of a failing device.
    pub max_backoff: Duration,
    /// Keep one connection per device across polls (false: a fresh connection per poll).
    pub keep_connections: bool,
    /// At most this many sockets open at once; the least recently used idle one is closed first.
    pub max_open: usize,
    /// Pause between two requests to one strip (strips are fragile).
    pub strip_gap: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            concurrency: 16,
            client: ClientConfig::with_timeout(
                crate::protocol::DEFAULT_PORT,
                Duration::from_secs(3),
            ),
            max_backoff: Duration::from_secs(30),
            keep_connections: true,
            max_open: 4096,
            strip_gap: DEFAULT_STRIP_GAP,
        }
    }
}

/// Default pause between two requests to one strip.
pub const DEFAULT_STRIP_GAP: Duration = Duration::from_millis(5);

/// A device to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub key: String,
    pub addr: SocketAddr,
}

/// Instructions from the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Track(Target),
    Untrack(String),
    /// Poll these now (empty = every tracked device), even if backing off.
    PollNow(Vec<String>),
    /// Track a newer-protocol (KLAP/AES) device: polled over one kept session with its
    /// transport and dialect ([`crate::net::newer`]) instead of port 9999.
    TrackNewer(Target, Box<crate::net::newer::NewerSpec>),
}

/// What one successful poll read.
#[derive(Debug, Clone, PartialEq)]
pub struct Polled {
    pub sysinfo: SysInfo,
    /// The plug's meter (`None` when it has none or is a strip).
    pub realtime: Option<Result<Realtime, NetError>>,
    /// A metered strip's outlets, by full child id.
    pub outlets: Vec<(String, Result<Realtime, NetError>)>,
}

impl From<crate::net::newer::Polled> for Polled {
    fn from(p: crate::net::newer::Polled) -> Self {
        Polled {
            sysinfo: p.sysinfo,
            realtime: p.realtime,
            outlets: p.outlets,
        }
    }
}

/// The result of polling one device once.
#[derive(Debug, Clone, PartialEq)]
pub struct PollReport {
    pub key: String,
    pub addr: SocketAddr,
    pub outcome: Result<Polled, NetError>,
    /// Consecutive failed polls of this device, this one included (0 after a success).
    pub misses: u32,
    pub elapsed: Duration,
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    addr: SocketAddr,
    next_due: Instant,
    misses: u32,
    in_flight: bool,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

/// Per-device due times, misses and backoff. Pure: time is passed in. Idle devices sit in a
/// queue ordered by due time, so every event costs O(log n), not a scan of the fleet; devices
/// are slots addressed by [`DeviceId`], so a poll's start and end neither hash nor compare
/// nor copy its key (the key is looked up only when the app tracks or untracks a device).
#[derive(Debug, Clone)]
pub struct Schedule {
    interval: Duration,
    max_backoff: Duration,
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashMap<String, u32>,
    /// `(next_due, slot)` of every device with no poll in flight.
    queue: BTreeSet<(Instant, u32)>,
}

impl Schedule {
    pub fn new(interval: Duration, max_backoff: Duration) -> Self {
        Self {
            interval,
            max_backoff: max_backoff.max(interval),
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            queue: BTreeSet::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn entry_mut(&mut self, id: DeviceId) -> Option<&mut Entry> {
        let slot = self.slots.get_mut(id.index())?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.entry.as_mut()
    }

    /// The id of a tracked device.
    pub fn id(&self, key: &str) -> Option<DeviceId> {
        let idx = *self.index.get(key)?;
        Some(DeviceId::new(idx, self.slots[idx as usize].generation))
    }

    /// Starts tracking a device (due at once), or updates its address.
    pub fn track(&mut self, t: Target, now: Instant) -> DeviceId {
        if let Some(id) = self.id(&t.key) {
            if let Some(e) = self.entry_mut(id) {
                e.addr = t.addr;
            }
            return id;
        }
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.entry = Some(Entry {
            key: t.key.clone(),
            addr: t.addr,
            next_due: now,
            misses: 0,
            in_flight: false,
        });
        self.index.insert(t.key, idx);
        self.queue.insert((now, idx));
        DeviceId::new(idx, slot.generation)
    }

    /// Stops tracking a device; returns the id it had.
    pub fn untrack(&mut self, key: &str) -> Option<DeviceId> {
        let idx = self.index.remove(key)?;
        let slot = &mut self.slots[idx as usize];
        let id = DeviceId::new(idx, slot.generation);
        if let Some(e) = slot.entry.take() {
            if !e.in_flight {
                self.queue.remove(&(e.next_due, idx));
            }
        }
        // A poll still running for it finishes into nothing.
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(idx);
        Some(id)
    }

    /// Makes the given devices (all when empty) due now.
    pub fn poll_now(&mut self, keys: &[String], now: Instant) {
        for (idx, slot) in self.slots.iter_mut().enumerate() {
            let Some(e) = slot.entry.as_mut() else {
                continue;
            };
            if (keys.is_empty() || keys.contains(&e.key)) && e.next_due > now {
                if !e.in_flight {
                    self.queue.remove(&(e.next_due, idx as u32));
                    self.queue.insert((now, idx as u32));
                }
                e.next_due = now;
            }
        }
    }

    /// The devices due at `now` that have no poll in flight, earliest first; they are marked
    /// in flight.
    pub fn take_due(&mut self, now: Instant) -> Vec<Target> {
        self.take_due_max(now, usize::MAX)
    }

    /// [`Self::take_due`], at most `max` of them (the others stay due, first in line).
    pub fn take_due_max(&mut self, now: Instant, max: usize) -> Vec<Target> {
        self.take_due_ids(now, max)
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// [`Self::take_due_max`] with each device's id, for [`Self::finished_id`].
    pub fn take_due_ids(&mut self, now: Instant, max: usize) -> Vec<(DeviceId, Target)> {
        let mut due = Vec::new();
        while due.len() < max && self.queue.first().is_some_and(|(at, _)| *at <= now) {
            let Some((_, idx)) = self.queue.pop_first() else {
                break;
            };
            let slot = &mut self.slots[idx as usize];
            if let Some(e) = slot.entry.as_mut() {
                e.in_flight = true;
                let id = DeviceId::new(idx, slot.generation);
                due.push((
                    id,
                    Target {
                        key: e.key.clone(),
                        addr: e.addr,
                    },
                ));
            }
        }
        due
    }

    /// Records the end of a poll; returns the consecutive misses (0 after a success).
    pub fn finished(&mut self, key: &str, ok: bool, now: Instant) -> u32 {
        match self.id(key) {
            Some(id) => self.finished_id(id, ok, now),
            None => 0,
        }
    }

    /// [`Self::finished`] by id: a device untracked since (and maybe tracked again, into a new
    /// generation) is left alone, and 0 returned.
    pub fn finished_id(&mut self, id: DeviceId, ok: bool, now: Instant) -> u32 {
        let (interval, max_backoff) = (self.interval, self.max_backoff);
        let Some(e) = self.entry_mut(id) else {
            return 0;
        };
        if !e.in_flight {
            // Not taken by a poll (a caller's stray report): already queued.
            return e.misses;
        }
        e.in_flight = false;
        if ok {
            e.misses = 0;
            // Keep the device's phase (due, due + interval, …) rather than drifting by each
            // poll's duration: a fleet tracked together stays one burst per cycle, so the UI
            // draws one frame for it. A poll that ran past its next slot starts a new phase.
            let next = e.next_due + interval;
            e.next_due = if next > now { next } else { now + interval };
        } else {
            e.misses = e.misses.saturating_add(1);
            e.next_due = now + backoff(interval, max_backoff, e.misses);
        }
        let (due, misses) = (e.next_due, e.misses);
        self.queue.insert((due, id.index() as u32));
        misses
    }

    /// Wait after the `misses`-th consecutive failure: interval, 2×, 4×… up to the cap.
    pub fn backoff(&self, misses: u32) -> Duration {
        backoff(self.interval, self.max_backoff, misses)
    }

    /// When the next idle device becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }
}

fn backoff(interval: Duration, max: Duration, misses: u32) -> Duration {
    let factor = 1u32 << misses.saturating_sub(1).min(10);
    (interval * factor).min(max)
}

/// `{"system":{"get_sysinfo":{}},"emeter":{"get_realtime":{}}}`: both in one exchange.
const COMBINED: &str = r#"{"system":{"get_sysinfo":{}},"emeter":{"get_realtime":{}}}"#;

/// The request frames every poll sends, encrypted once per process.
fn combined_frame() -> &'static [u8] {
    static F: OnceLock<Vec<u8>> = OnceLock::new();
    F.get_or_init(|| encode_frame(COMBINED.as_bytes()))
}

/// The combined request of a bulb or light strip: its meter is `smartlife.iot.common.emeter`.
const COMBINED_LIGHT: &str =
    r#"{"system":{"get_sysinfo":{}},"smartlife.iot.common.emeter":{"get_realtime":{}}}"#;

fn combined_light_frame() -> &'static [u8] {
    static F: OnceLock<Vec<u8>> = OnceLock::new();
    F.get_or_init(|| encode_frame(COMBINED_LIGHT.as_bytes()))
}

fn sysinfo_frame() -> &'static [u8] {
    static F: OnceLock<Vec<u8>> = OnceLock::new();
    F.get_or_init(|| Request::SysInfo.encode_tcp())
}

/// One exchange over the link's kept connection, or a fresh one. A kept connection the plug
/// has closed since (some firmware closes idle connections or after every reply) is replaced
/// transparently, once, and counted. On a transport error the connection is dropped: a late
/// reply must never be read as the answer to the next request.
async fn exchange(
    link: &mut Link,
    addr: SocketAddr,
    cfg: &ClientConfig,
    frame: &[u8],
    stats: &Arc<PoolStats>,
) -> Result<Bytes, NetError> {
    if let Some(k) = link.conn.as_mut() {
        match k.conn.exchange_frame(frame).await {
            Ok(v) => return Ok(v),
            Err(NetError::Reset) => {
                link.conn = None;
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                link.conn = None;
                return Err(e);
            }
        }
    }
    let mut fresh = Kept::new(Connection::connect(addr.ip(), cfg).await?, stats);
    let r = fresh.conn.exchange_frame(frame).await;
    if r.is_ok() {
        link.conn = Some(fresh);
    }
    r
}

/// Polls one device over a fresh connection, closed at the end: sysinfo and the meter in one
/// request, or for a metered strip sysinfo then each outlet's meter, one after another over the
/// same connection. Bounded by `cfg`'s timeouts, and overall by a budget of (2 + outlets)
/// reply timeouts for the outlets.
pub async fn poll_device(addr: SocketAddr, cfg: &ClientConfig) -> Result<Polled, NetError> {
    let stats = Arc::new(PoolStats::default());
    poll_link(&mut Link::default(), addr, cfg, DEFAULT_STRIP_GAP, &stats).await
}

/// Polls one device over its [`Link`] (kept connection and what the last poll learnt): one
/// request for a plug (`system.get_sysinfo` + `emeter.get_realtime`; a plug without a meter
/// answers the meter part with an error, which is ignored); a strip is asked sysinfo, then
/// each outlet's reading with at most one request in flight and `gap` between requests.
pub async fn poll_link(
    link: &mut Link,
    addr: SocketAddr,
    cfg: &ClientConfig,
    gap: Duration,
    stats: &Arc<PoolStats>,
) -> Result<Polled, NetError> {
    poll_gated(link, addr, cfg, gap, stats, None).await
}

/// Waits for one of the poller's concurrency permits (none to wait for without a semaphore).
async fn permit(permits: Option<&Semaphore>) -> Option<SemaphorePermit<'_>> {
    match permits {
        // The semaphore lives as long as the poller and is never closed.
        Some(s) => s.acquire().await.ok(),
        None => None,
    }
}

/// [`poll_link`], holding one of `permits` only while a request is on the wire: a strip gives
/// its permit back for every gap between two of its requests, so a fleet of strips never
/// holds the fleet's concurrency slots while sleeping.
async fn poll_gated(
    link: &mut Link,
    addr: SocketAddr,
    cfg: &ClientConfig,
    gap: Duration,
    stats: &Arc<PoolStats>,
    permits: Option<&Semaphore>,
) -> Result<Polled, NetError> {
    let cfg = ClientConfig {
        port: addr.port(),
        ..*cfg
    };
    let held = permit(permits).await;
    let simple = link.strip || link.no_meter;
    let frame = if simple {
        sysinfo_frame()
    } else if link.light {
        combined_light_frame()
    } else {
        combined_frame()
    };
    let payload = exchange(link, addr, &cfg, frame, stats).await?;
    let root = parse_lite(&payload)?;
    let sysinfo = SysInfo::from_lite_reply(&root)?;
    // A light whose meter module answered "not supported" is asked sysinfo alone from then on.
    let light_without_meter = link.light && link.no_meter;
    link.strip = !sysinfo.children.is_empty();
    link.no_meter = !sysinfo.has_emeter();
    // A bulb's meter module differs; one found by the plug request is asked on its own once.
    let asked_light = link.light;
    link.light = sysinfo.kind().is_light();
    if link.light && light_without_meter {
        link.no_meter = true;
        return Ok(Polled {
            realtime: None,
            outlets: Vec::new(),
            sysinfo,
        });
    }
    let mut polled = Polled {
        realtime: None,
        outlets: Vec::new(),
        sysinfo,
    };
    if !polled.sysinfo.has_emeter() {
        return Ok(polled);
    }
    if !link.strip {
        // Asked sysinfo alone (a strip or meterless at the last poll), or a responder that
        // answered only the first module: ask the meter on its own.
        let module = polled.sysinfo.meter_module();
        let read = if simple || asked_light != link.light || root.get(module).is_none() {
            let req = if link.light {
                Request::LightRealtime
            } else {
                Request::realtime(None)
            };
            let r = exchange(link, addr, &cfg, &req.encode_tcp(), stats).await;
            r.and_then(|p| Ok(Realtime::from_lite_reply_in(&parse_lite(&p)?, module)?))
        } else {
            Realtime::from_lite_reply_in(&root, module).map_err(NetError::from)
        };
        polled.realtime = match read {
            // A bulb lists no features: one without a meter says so with -1/-2001, and is
            // shown as having none (not as failing), and asked sysinfo alone from then on.
            Err(NetError::Device { code, .. }) if link.light && unsupported_code(code) => {
                link.no_meter = true;
                None
            }
            r => Some(r),
        };
        return Ok(polled);
    }
    drop(root);
    drop(payload);
    drop(held);
    let same = link.outlet_frames.len() == polled.sysinfo.children.len()
        && link
            .outlet_frames
            .iter()
            .zip(&polled.sysinfo.children)
            .all(|((id, _), c)| *id == c.id);
    if !same {
        link.outlet_frames = polled
            .sysinfo
            .children
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    Request::realtime(Some(&c.id)).encode_tcp().into(),
                )
            })
            .collect();
    }
    let budget = cfg.reply_timeout * (2 + polled.sysinfo.children.len() as u32);
    let read = async {
        for i in 0..link.outlet_frames.len() {
            let (id, frame) = link.outlet_frames[i].clone();
            tokio::time::sleep(gap).await;
            let held = permit(permits).await;
            let r = exchange(link, addr, &cfg, &frame, stats).await;
            drop(held);
            polled.outlets.push((
                id,
                r.and_then(|p| Ok(Realtime::from_lite_reply(&parse_lite(&p)?)?)),
            ));
        }
    };
    if timeout(budget, read).await.is_err() {
        link.conn = None;
        return Err(NetError::Timeout {
            stage: Stage::Reply,
            after: budget,
        });
    }
    Ok(polled)
}

/// Polls a newer-protocol device over its kept session in `sessions` (made on the first poll,
/// and again when how to reach it changed): one handshake per session, not per poll, and the
/// same session the app's writes to the device use.
pub async fn poll_newer(
    sessions: &crate::net::newer::Sessions,
    key: &str,
    addr: SocketAddr,
    spec: &crate::net::newer::NewerSpec,
    cfg: &ClientConfig,
    stats: &Arc<PoolStats>,
) -> Result<Polled, NetError> {
    let (r, made) = sessions.poll(key, addr.ip(), spec, cfg.reply_timeout).await;
    stats.handshakes.fetch_add(made, Ordering::Relaxed);
    r.map(Polled::from)
}

/// A finished poll: the device, its link (handed back to the pool), the outcome, the time taken.
type Job = (DeviceId, Target, Link, Result<Polled, NetError>, Duration);

/// One poll of `t`, from the moment it is due (the latency includes waiting for a permit).
async fn poll_job(
    id: DeviceId,
    t: Target,
    mut link: Link,
    newer: Option<(
        Arc<crate::net::newer::NewerSpec>,
        &crate::net::newer::Sessions,
    )>,
    cfg: &PollConfig,
    stats: &Arc<PoolStats>,
    permits: &Semaphore,
) -> Job {
    let started = Instant::now();
    let outcome = match newer {
        Some((spec, sessions)) => {
            // One request per poll over the session: the permit is held for the whole of it.
            let _held = permit(Some(permits)).await;
            // Boxed: a KLAP/AES session's future is ~4× a legacy poll's, and every poll's
            // future is as large as its largest branch (moved into the poll set each time).
            Box::pin(poll_newer(
                sessions,
                &t.key,
                t.addr,
                &spec,
                &cfg.client,
                stats,
            ))
            .await
        }
        None => {
            poll_gated(
                &mut link,
                t.addr,
                &cfg.client,
                cfg.strip_gap,
                stats,
                Some(permits),
            )
            .await
        }
    };
    if !cfg.keep_connections {
        link.conn = None;
    }
    (id, t, link, outcome, started.elapsed())
}

/// How long a finished poll's report waits for others to share its hand-over (see
/// [`run_with_stats`]); invisible at a UI's frame rate.
pub const BATCH_LINGER: Duration = Duration::from_millis(4);
/// At most this many reports wait for one hand-over.
pub const BATCH_MAX: usize = 128;

/// How far [`flush_batch`] got.
enum Flushed {
    All,
    /// The consumer's queue is full; the rest stays queued, in order.
    Full,
    Closed,
}

/// Sends the queued reports back to back while the consumer's queue takes them.
fn flush_batch<E>(tx: &mpsc::Sender<E>, pending: &mut VecDeque<E>) -> Flushed {
    while let Some(report) = pending.pop_front() {
        match tx.try_send(report) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(report)) => {
                pending.push_front(report);
                return Flushed::Full;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Flushed::Closed,
        }
    }
    Flushed::All
}

/// Runs the poller until `token` is cancelled or the app's channel closes.
pub async fn run<E>(
    cfg: PollConfig,
    ctl: mpsc::Receiver<Control>,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
) where
    E: From<PollReport> + Send + 'static,
{
    run_with_stats(cfg, ctl, tx, token, Arc::new(PoolStats::default())).await;
}

/// [`run_with_stats`] with a store of newer-protocol sessions of its own.
pub async fn run_with_stats<E>(
    cfg: PollConfig,
    ctl: mpsc::Receiver<Control>,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
    stats: Arc<PoolStats>,
) where
    E: From<PollReport> + Send + 'static,
{
    let sessions = crate::net::newer::Sessions::new();
    run_with_sessions(cfg, ctl, tx, token, stats, sessions).await;
}

/// The poller on a thread of its own, driven by a single-threaded runtime: see
/// [`spawn_thread`].
pub struct PollerThread {
    done: tokio::sync::oneshot::Receiver<std::thread::Result<()>>,
}

impl PollerThread {
    /// Waits until the poller has stopped (its token cancelled or the app's channel closed)
    /// and its runtime is gone, with every socket it had; a panic in the poller is resumed here,
    /// so a task awaiting this reports it as its own.
    pub async fn join(self) {
        if let Ok(Err(panic)) = self.done.await {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Starts [`run_with_sessions`] on a thread of its own with a single-threaded tokio runtime:
/// every poll, every socket and every timer of the poller live on that one thread, which
/// sleeps in one `epoll_wait` for all of them. On the app's two-worker runtime the poller's
/// task was woken by whichever worker held the I/O driver and one worker woke the other
/// (a futex call and a context switch each time); here nothing crosses threads but the
/// batched hand-over of reports, and drawing a frame never delays a poll. The newer-protocol
/// `sessions` are shared as before (a session's socket serves whichever runtime awaits it).
pub fn spawn_thread<E>(
    cfg: PollConfig,
    ctl: mpsc::Receiver<Control>,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
    stats: Arc<PoolStats>,
    sessions: crate::net::newer::Sessions,
) -> std::io::Result<PollerThread>
where
    E: From<PollReport> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done_tx, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("plugfleet-poller".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rt.block_on(run_with_sessions(cfg, ctl, tx, token, stats, sessions));
            }));
            // The runtime goes first: its sockets are closed by the time `join` returns.
            drop(rt);
            let _ = done_tx.send(r);
        })?;
    Ok(PollerThread { done })
}

/// [`run`], counting connections in `stats` (open sockets, connects, reconnects, evictions,
/// handshakes), with the newer-protocol devices' sessions kept in `sessions` (shared with
/// whatever else writes to those devices, so each device keeps one session).
///
/// Every poll is a future driven by this one task (no task spawned per poll, no wake-up
/// crossing threads to hand a result back); each makes progress on its own socket's
/// readiness, so a hanging plug never delays the others. Reports the app's channel cannot
/// take at once wait in a local queue, so a slow consumer never stalls the polls in flight
/// (their reply timeouts keep running); while that queue holds a report per tracked device no
/// new poll starts. At most 4 × `concurrency` polls are alive at once; the rest stay due in
/// the schedule, first in line.
///
/// Reports are handed over in batches: a finished poll's report waits up to [`BATCH_LINGER`]
/// for the others finishing with it (at most [`BATCH_MAX`], or until no poll is left in
/// flight), then the batch goes out back to back. A consumer on another thread is then woken
/// once per batch, not once per report: that wake-up (a futex call each side and a context
/// switch) had cost more than reading a plug's reply.
pub async fn run_with_sessions<E>(
    cfg: PollConfig,
    mut ctl: mpsc::Receiver<Control>,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
    stats: Arc<PoolStats>,
    sessions: crate::net::newer::Sessions,
) where
    E: From<PollReport> + Send + 'static,
{
    let mut schedule = Schedule::new(cfg.interval, cfg.max_backoff);
    let mut pool = Pool::new(cfg.max_open, stats.clone());
    let permits = Semaphore::new(cfg.concurrency.max(1));
    // Polls started and not finished: the permits bound requests on the wire, this bounds the
    // polls alive at once (a strip between two requests holds no permit), so a fleet due at
    // the same instant waits in the schedule's queue, not as thousands of live futures.
    let started_max = cfg.concurrency.max(1).saturating_mul(4);
    let mut polls = FuturesUnordered::new();
    let mut pending: VecDeque<E> = VecDeque::new();
    let mut ctl_open = true;
    // Newer-protocol devices, by key: how to reach them.
    // (Shared with each poll: a poll takes a reference count, not a copy of the account.)
    let mut newer: HashMap<String, Arc<crate::net::newer::NewerSpec>> = HashMap::new();
    let sleep = tokio::time::sleep_until(Instant::now() + cfg.interval);
    tokio::pin!(sleep);
    // When the batch in `pending` goes out (armed by its first report).
    let flush = tokio::time::sleep_until(Instant::now() + cfg.interval);
    tokio::pin!(flush);
    let mut flush_armed = false;
    // The consumer's queue was full at the last try: wait for room (`reserve`), not the timer.
    let mut blocked = false;
    loop {
        let room = started_max.saturating_sub(polls.len());
        let may_start = pending.len() <= schedule.len() && room > 0;
        if may_start {
            for (id, t) in schedule.take_due_ids(Instant::now(), room) {
                let link = pool.checkout(id, t.addr);
                let spec = if newer.is_empty() {
                    None
                } else {
                    newer.get(&t.key).map(|s| (s.clone(), &sessions))
                };
                polls.push(poll_job(id, t, link, spec, &cfg, &stats, &permits));
            }
        }
        let wake = schedule.next_due();
        if let Some(at) = wake {
            if sleep.deadline() != at {
                sleep.as_mut().reset(at);
            }
        }
        tokio::select! {
            _ = token.cancelled() => break,
            c = ctl.recv(), if ctl_open => match c {
                Some(Control::Track(t)) => {
                    if newer.remove(&t.key).is_some() {
                        sessions.remove(&t.key);
                    }
                    schedule.track(t, Instant::now());
                }
                Some(Control::TrackNewer(t, spec)) => {
                    newer.insert(t.key.clone(), Arc::from(spec));
                    schedule.track(t, Instant::now());
                }
                Some(Control::Untrack(k)) => {
                    if newer.remove(&k).is_some() {
                        sessions.remove(&k);
                    }
                    if let Some(id) = schedule.untrack(&k) {
                        pool.remove(id);
                    }
                }
                Some(Control::PollNow(keys)) => schedule.poll_now(&keys, Instant::now()),
                None => ctl_open = false,
            },
            Some((id, Target { key, addr }, link, outcome, elapsed)) = polls.next(), if !polls.is_empty() => {
                pool.checkin(id, link);
                let misses = schedule.finished_id(id, outcome.is_ok(), Instant::now());
                if let Err(e) = &outcome {
                    tracing::debug!(%addr, misses, "poll failed: {e}");
                }
                pending.push_back(E::from(PollReport { key, addr, outcome, misses, elapsed }));
                // While blocked, the `reserve` arm hands them over as room appears.
                if blocked {
                } else if pending.len() >= BATCH_MAX || polls.is_empty() {
                    flush_armed = false;
                    match flush_batch(&tx, &mut pending) {
                        Flushed::All => {}
                        Flushed::Full => blocked = true,
                        Flushed::Closed => break,
                    }
                } else if !flush_armed {
                    flush_armed = true;
                    flush.as_mut().reset(Instant::now() + BATCH_LINGER);
                }
            }
            _ = &mut flush, if flush_armed && !blocked => {
                flush_armed = false;
                match flush_batch(&tx, &mut pending) {
                    Flushed::All => {}
                    Flushed::Full => blocked = true,
                    Flushed::Closed => break,
                }
            }
            permit = tx.reserve(), if blocked => match (permit, pending.pop_front()) {
                (Ok(permit), report) => {
                    if let Some(report) = report {
                        permit.send(report);
                    }
                    match flush_batch(&tx, &mut pending) {
                        Flushed::All => blocked = false,
                        Flushed::Full => {}
                        Flushed::Closed => break,
                    }
                }
                (Err(_), _) => break,
            },
            _ = &mut sleep, if may_start && wake.is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(k: &str, port: u16) -> Target {
        Target {
            key: k.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn new_devices_are_due_at_once_and_not_twice_while_in_flight() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(2), Duration::from_secs(30));
        s.track(target("a", 1), t0);
        s.track(target("b", 1), t0);
        assert_eq!(s.take_due(t0).len(), 2);
        assert!(s.take_due(t0 + Duration::from_secs(10)).is_empty());
        assert_eq!(s.finished("a", true, t0), 0);
        assert!(s.take_due(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(s.take_due(t0 + Duration::from_secs(2)).len(), 1);
    }

    #[test]
    fn take_due_max_leaves_the_rest_first_in_line() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(1), Duration::from_secs(30));
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            s.track(target(k, 1), t0 + Duration::from_millis(i as u64));
        }
        let now = t0 + Duration::from_millis(5);
        let keys = |v: Vec<Target>| v.into_iter().map(|t| t.key).collect::<Vec<_>>();
        assert_eq!(keys(s.take_due_max(now, 2)), vec!["a", "b"]);
        assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(2)));
        assert_eq!(keys(s.take_due_max(now, 2)), vec!["c"]);
        assert!(s.take_due_max(now, 2).is_empty());
    }

    #[test]
    fn a_success_keeps_the_phase_and_a_late_one_starts_a_new_one() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::new(Duration::from_secs(1), Duration::from_secs(30));
        s.track(target("a", 1), t0);
        s.take_due(t0);
        s.finished("a", true, t0 + ms(300));
        assert_eq!(
            s.next_due(),
            Some(t0 + ms(1000)),
            "due + interval, not finish + interval"
        );
        s.take_due(t0 + ms(1000));
        s.finished("a", true, t0 + ms(2500));
        assert_eq!(
            s.next_due(),
            Some(t0 + ms(3500)),
            "past its slot: a new phase"
        );
    }

    #[test]
    fn failures_back_off_and_a_success_resets() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(2), Duration::from_secs(30));
        s.track(target("a", 1), t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert_eq!(s.take_due(now).len(), 1);
            let m = s.finished("a", false, now);
            let due = s.next_due().unwrap();
            waits.push((m, due - now));
            now = due;
        }
        let secs: Vec<u64> = waits.iter().map(|(_, d)| d.as_secs()).collect();
        assert_eq!(secs, vec![2, 4, 8, 16, 30, 30]);
        assert_eq!(waits.last().unwrap().0, 6);
        s.take_due(now);
        assert_eq!(s.finished("a", true, now), 0);
        assert_eq!(s.next_due().unwrap() - now, Duration::from_secs(2));
    }

    #[test]
    fn poll_now_overrides_backoff_and_track_updates_the_address() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(2), Duration::from_secs(30));
        s.track(target("a", 1), t0);
        s.take_due(t0);
        s.finished("a", false, t0);
        s.track(target("a", 2), t0);
        s.poll_now(&[], t0);
        let due = s.take_due(t0);
        assert_eq!(due, vec![target("a", 2)]);
        s.untrack("a");
        assert!(s.is_empty());
    }

    #[test]
    fn a_poll_ending_after_its_device_was_untracked_touches_nothing() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(1), Duration::from_secs(30));
        s.track(target("a", 1), t0);
        let (old, _) = s.take_due_ids(t0, 1).remove(0);
        assert_eq!(s.untrack("a"), Some(old));
        // The slot is reused, under a new generation.
        let new = s.track(target("b", 1), t0);
        assert_eq!(new.index(), old.index());
        assert_ne!(new, old);
        assert_eq!(s.finished_id(old, false, t0), 0);
        assert_eq!(
            s.take_due(t0),
            vec![target("b", 1)],
            "b is due, not backed off"
        );
        assert_eq!(s.finished_id(new, false, t0), 1);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn the_pool_never_hands_a_slots_old_link_to_its_new_device() {
        let mut pool = Pool::new(8, Arc::new(PoolStats::default()));
        let addr = SocketAddr::from(([127, 0, 0, 1], 9999));
        let (a, b) = (DeviceId::new(0, 0), DeviceId::new(0, 1));
        let mut link = pool.checkout(a, addr);
        link.strip = true;
        pool.checkin(a, link);
        assert!(pool.checkout(a, addr).strip, "a's own link comes back");
        assert!(!pool.checkout(b, addr).strip, "b starts afresh");
        // a's poll ends after b took the slot: its link is dropped, b's is not replaced.
        pool.checkin(
            a,
            Link {
                strip: true,
                ..Link::default()
            },
        );
        pool.checkin(b, Link::default());
        assert!(!pool.checkout(b, addr).strip);
    }

    #[test]
    fn a_poll_future_stays_small() {
        // Every poll's future is moved into the poll set; it is as large as its largest
        // branch, so a rarely taken large one (a newer-protocol session) must stay boxed.
        let stats = Arc::new(PoolStats::default());
        let cfg = PollConfig::default();
        let permits = Semaphore::new(1);
        let f = poll_job(
            DeviceId::new(0, 0),
            target("a", 1),
            Link::default(),
            None,
            &cfg,
            &stats,
            &permits,
        );
        let size = std::mem::size_of_val(&f);
        assert!(size <= 4096, "a poll's future is {size} bytes");
    }

    mod loopback {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use serde_json::{Value, json};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpListener;

        use super::super::*;
        use crate::protocol::cipher;
        use crate::protocol::codec::encode_frame;

        #[derive(Clone, Copy, PartialEq)]
        enum Mode {
            Normal,
            CloseAfterReply,
            Hang,
        }

        struct Responder {
            addr: SocketAddr,
            connections: Arc<AtomicUsize>,
            requests: Arc<AtomicUsize>,
            open: Arc<AtomicUsize>,
        }

        fn sysinfo(outlets: usize) -> Value {
            let mut v = json!({"model":"HS300(US)","hw_ver":"2.0","sw_ver":"1.0.12 Build 1 Rel.1",
                "mac":"50:C7:BF:00:00:01","deviceId":"DEV","alias":"x","feature":"TIM:ENE","err_code":0});
            if outlets == 0 {
                v["relay_state"] = json!(1);
            } else {
                v["children"] = (0..outlets)
                    .map(|i| json!({"id": format!("{i:02}"), "alias": format!("o{i}"), "state": 1}))
                    .collect();
            }
            v
        }

        /// Answers every module of `req`, as the firmware does; a plug (no outlets) whose
        /// `meter` is false answers the meter part with an error.
        fn answer(req: &Value, outlets: usize, meter: bool) -> Value {
            let mut out = json!({});
            if req.pointer("/system/get_sysinfo").is_some() {
                let mut info = sysinfo(outlets);
                if !meter {
                    info["feature"] = json!("TIM");
                }
                out["system"] = json!({ "get_sysinfo": info });
            }
            if req.pointer("/emeter/get_realtime").is_some() {
                if !meter {
                    out["emeter"] = json!({"err_code": -1, "err_msg": "module not support"});
                    return out;
                }
                let child = req
                    .pointer("/context/child_ids/0")
                    .and_then(Value::as_str)
                    .map(|c| c[c.len() - 2..].parse::<u64>().unwrap_or(99));
                let p = 1000 * (child.unwrap_or(0) + 1);
                out["emeter"] = json!({"get_realtime":{"power_mw": p, "voltage_mv": 120000, "current_ma": 10, "total_wh": 5, "err_code": 0}});
            }
            out
        }

        async fn start(outlets: usize, mode: Mode) -> Responder {
            start_with(outlets, mode, true).await
        }

        async fn start_with(outlets: usize, mode: Mode, meter: bool) -> Responder {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let connections = Arc::new(AtomicUsize::new(0));
            let requests = Arc::new(AtomicUsize::new(0));
            let open = Arc::new(AtomicUsize::new(0));
            let (c, r, o) = (connections.clone(), requests.clone(), open.clone());
            tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    c.fetch_add(1, Ordering::SeqCst);
                    let (r, o) = (r.clone(), o.clone());
                    o.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        loop {
                            let mut hdr = [0u8; 4];
                            if s.read_exact(&mut hdr).await.is_err() {
                                break;
                            }
                            let mut body = vec![0u8; u32::from_be_bytes(hdr) as usize];
                            if s.read_exact(&mut body).await.is_err() {
                                break;
                            }
                            r.fetch_add(1, Ordering::SeqCst);
                            if mode == Mode::Hang {
                                // Hold the connection until the client gives up.
                                let mut sink = [0u8; 1];
                                let _ = s.read(&mut sink).await;
                                break;
                            }
                            let req: Value =
                                serde_json::from_slice(&cipher::decrypt(&body)).unwrap();
                            let reply = answer(&req, outlets, meter).to_string();
                            if s.write_all(&encode_frame(reply.as_bytes())).await.is_err() {
                                break;
                            }
                            if mode == Mode::CloseAfterReply {
                                break;
                            }
                        }
                        o.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
            Responder {
                addr,
                connections,
                requests,
                open,
            }
        }

        fn client() -> ClientConfig {
            ClientConfig {
                connect_timeout: Duration::from_millis(500),
                reply_timeout: Duration::from_millis(300),
                ..ClientConfig::default()
            }
        }

        #[tokio::test]
        async fn a_strip_is_read_per_outlet_over_one_connection() {
            let r = start(4, Mode::Normal).await;
            let p = poll_device(r.addr, &client()).await.unwrap();
            assert_eq!(p.outlets.len(), 4);
            let watts: Vec<f64> = p
                .outlets
                .iter()
                .map(|(_, x)| x.as_ref().unwrap().power_w.unwrap())
                .collect();
            assert_eq!(watts, vec![1.0, 2.0, 3.0, 4.0]);
            assert!(p.outlets[2].0.ends_with("02"));
            assert_eq!(r.connections.load(Ordering::SeqCst), 1);
            assert_eq!(r.requests.load(Ordering::SeqCst), 5);
        }

        #[tokio::test]
        async fn a_plug_is_read_with_one_request() {
            let r = start(0, Mode::Normal).await;
            let p = poll_device(r.addr, &client()).await.unwrap();
            assert_eq!(p.realtime.unwrap().unwrap().power_w, Some(1.0));
            assert_eq!(p.sysinfo.model, "HS300(US)");
            assert_eq!(r.connections.load(Ordering::SeqCst), 1);
            assert_eq!(r.requests.load(Ordering::SeqCst), 1);
        }

        #[tokio::test]
        async fn a_plug_without_a_meter_keeps_its_sysinfo() {
            let r = start_with(0, Mode::Normal, false).await;
            let p = poll_device(r.addr, &client()).await.unwrap();
            assert_eq!(p.sysinfo.alias, "x");
            assert_eq!(p.realtime, None);
            assert_eq!(r.requests.load(Ordering::SeqCst), 1);
        }

        /// A short interval; timeouts generous enough that a loaded machine never makes a
        /// healthy plug fail (these tests count connections).
        fn fast(client: ClientConfig) -> PollConfig {
            PollConfig {
                interval: Duration::from_millis(30),
                concurrency: 4,
                client: ClientConfig {
                    connect_timeout: Duration::from_secs(3),
                    reply_timeout: Duration::from_secs(3),
                    ..client
                },
                max_backoff: Duration::from_millis(200),
                strip_gap: Duration::from_millis(1),
                ..PollConfig::default()
            }
        }

        /// Runs the poller over `targets` until `n` reports came; returns them and the stats
        /// after the poller stopped.
        async fn poll_n(
            cfg: PollConfig,
            targets: Vec<(&str, SocketAddr)>,
            n: usize,
        ) -> (Vec<PollReport>, Arc<PoolStats>) {
            let (ctl_tx, ctl_rx) = mpsc::channel(8);
            let (tx, mut rx) = mpsc::channel::<PollReport>(64);
            let token = CancellationToken::new();
            let stats = Arc::new(PoolStats::default());
            let task = tokio::spawn(run_with_stats(
                cfg,
                ctl_rx,
                tx,
                token.clone(),
                stats.clone(),
            ));
            for (key, addr) in targets {
                ctl_tx
                    .send(Control::Track(Target {
                        key: key.into(),
                        addr,
                    }))
                    .await
                    .unwrap();
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut reports = Vec::new();
            while reports.len() < n {
                let rep = tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .unwrap()
                    .unwrap();
                reports.push(rep);
            }
            token.cancel();
            task.await.unwrap();
            (reports, stats)
        }

        #[tokio::test]
        async fn a_plug_that_closes_after_each_reply_is_read_every_cycle() {
            let r = start(0, Mode::CloseAfterReply).await;
            let (reports, stats) = poll_n(fast(client()), vec![("c", r.addr)], 5).await;
            for rep in &reports {
                let p = rep.outcome.as_ref().unwrap();
                assert_eq!(p.realtime.clone().unwrap().unwrap().power_w, Some(1.0));
                assert_eq!(rep.misses, 0);
            }
            // Every poll after the first found its kept connection closed and reconnected.
            assert!(stats.reconnects() >= 4, "{stats:?}");
            assert!(r.connections.load(Ordering::SeqCst) >= 5);
            assert_eq!(stats.open(), 0, "sockets left open");
        }

        #[tokio::test]
        async fn connections_are_kept_across_cycles_for_plugs_and_strips() {
            let plug = start(0, Mode::Normal).await;
            let strip = start(3, Mode::Normal).await;
            let (reports, stats) = poll_n(
                fast(client()),
                vec![("p", plug.addr), ("s", strip.addr)],
                10,
            )
            .await;
            let strip_polls = reports.iter().filter(|r| r.key == "s").count();
            for rep in &reports {
                let p = rep.outcome.as_ref().unwrap();
                if rep.key == "s" {
                    let w: Vec<f64> = p
                        .outlets
                        .iter()
                        .map(|(_, x)| x.as_ref().unwrap().power_w.unwrap())
                        .collect();
                    assert_eq!(w, vec![1.0, 2.0, 3.0]);
                } else {
                    assert!(p.outlets.is_empty());
                    assert_eq!(p.realtime.clone().unwrap().unwrap().power_w, Some(1.0));
                }
            }
            assert!(strip_polls >= 2);
            assert_eq!(plug.connections.load(Ordering::SeqCst), 1);
            assert_eq!(strip.connections.load(Ordering::SeqCst), 1);
            assert_eq!(stats.connects(), 2);
            assert_eq!(stats.reconnects(), 0);
            // The plug: one request per poll (a poll may have been cut by the stop).
            let plug_polls = reports.len() - strip_polls;
            let n = plug.requests.load(Ordering::SeqCst);
            assert!(
                n == plug_polls || n == plug_polls + 1,
                "{n} vs {plug_polls}"
            );
            // The strip: sysinfo then its 3 outlets, every poll.
            let n = strip.requests.load(Ordering::SeqCst);
            assert!(n >= 4 * strip_polls && n <= 4 * (strip_polls + 1), "{n}");
            assert_eq!(stats.open(), 0, "sockets left open");
        }

        #[tokio::test]
        async fn fresh_connections_when_not_kept() {
            let plug = start(0, Mode::Normal).await;
            let cfg = PollConfig {
                keep_connections: false,
                ..fast(client())
            };
            let (reports, stats) = poll_n(cfg, vec![("p", plug.addr)], 3).await;
            assert!(reports.iter().all(|r| r.outcome.is_ok()));
            assert!(plug.connections.load(Ordering::SeqCst) >= 3);
            assert_eq!(stats.reconnects(), 0);
            assert_eq!(stats.open(), 0);
        }

        #[tokio::test]
        async fn the_socket_cap_evicts_the_least_recently_used() {
            let a = start(0, Mode::Normal).await;
            let b = start(0, Mode::Normal).await;
            let c = start(0, Mode::Normal).await;
            let cfg = PollConfig {
                max_open: 1,
                concurrency: 1,
                ..fast(client())
            };
            let (reports, stats) =
                poll_n(cfg, vec![("a", a.addr), ("b", b.addr), ("c", c.addr)], 9).await;
            assert!(reports.iter().all(|r| r.outcome.is_ok()));
            for k in ["a", "b", "c"] {
                assert!(reports.iter().filter(|r| r.key == k).count() >= 2, "{k}");
            }
            assert!(stats.evictions() >= 3, "{stats:?}");
            assert_eq!(stats.reconnects(), 0, "an evicted link connects afresh");
            assert_eq!(stats.open(), 0);
        }

        #[tokio::test]
        async fn a_hanging_plug_times_out_and_never_delays_the_others() {
            let good = start(0, Mode::Normal).await;
            let hang = start(0, Mode::Hang).await;
            let cfg = PollConfig {
                interval: Duration::from_millis(50),
                concurrency: 4,
                client: client(),
                max_backoff: Duration::from_millis(200),
                ..PollConfig::default()
            };
            let (ctl_tx, ctl_rx) = mpsc::channel(8);
            let (tx, mut rx) = mpsc::channel::<PollReport>(64);
            let token = CancellationToken::new();
            let task = tokio::spawn(run(cfg, ctl_rx, tx, token.clone()));
            ctl_tx
                .send(Control::Track(Target {
                    key: "hang".into(),
                    addr: hang.addr,
                }))
                .await
                .unwrap();
            ctl_tx
                .send(Control::Track(Target {
                    key: "good".into(),
                    addr: good.addr,
                }))
                .await
                .unwrap();
            let mut good_before_hang = 0;
            let mut hang_misses = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while hang_misses.len() < 3 {
                let rep = tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .unwrap()
                    .unwrap();
                match rep.key.as_str() {
                    "good" => {
                        assert!(rep.outcome.is_ok());
                        if hang_misses.is_empty() {
                            good_before_hang += 1;
                        }
                    }
                    _ => {
                        assert!(
                            matches!(rep.outcome, Err(NetError::Timeout { .. })),
                            "{:?}",
                            rep.outcome
                        );
                        hang_misses.push(rep.misses);
                    }
                }
            }
            // 300 ms reply timeout vs a 50 ms interval: the good plug was read several times.
            assert!(
                good_before_hang >= 3,
                "good plug read {good_before_hang} times"
            );
            assert_eq!(hang_misses, vec![1, 2, 3]);
            token.cancel();
            task.await.unwrap();
            // No connection left open once the poller stopped.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while hang.open.load(Ordering::SeqCst) + good.open.load(Ordering::SeqCst) > 0 {
                assert!(tokio::time::Instant::now() < deadline, "sockets leaked");
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        #[tokio::test]
        async fn a_strip_gives_its_permit_back_between_requests() {
            // One permit for the fleet and long gaps between a strip's requests: the plug is
            // polled in those gaps, so it is read several times before the strip's poll ends.
            let strip = start(3, Mode::Normal).await;
            let plug = start(0, Mode::Normal).await;
            let cfg = PollConfig {
                concurrency: 1,
                strip_gap: Duration::from_millis(150),
                ..fast(client())
            };
            let (reports, _) = poll_n(cfg, vec![("s", strip.addr), ("p", plug.addr)], 6).await;
            let first_strip = reports.iter().position(|r| r.key == "s");
            let plug_before = reports
                .iter()
                .take(first_strip.unwrap_or(reports.len()))
                .filter(|r| r.key == "p")
                .count();
            assert!(
                plug_before >= 3,
                "plug read {plug_before} times before the strip"
            );
            assert!(reports.iter().all(|r| r.outcome.is_ok()));
        }

        #[tokio::test]
        async fn a_slow_consumer_with_room_for_one_still_gets_every_device() {
            // Reports go out in batches; a consumer whose queue holds one report is full at
            // almost every hand-over, so the poller waits for room (and keeps polling) and
            // must still hand every device's reports over, never stalling for good.
            let plugs = [
                start(0, Mode::Normal).await,
                start(0, Mode::Normal).await,
                start(2, Mode::Normal).await,
            ];
            let (ctl_tx, ctl_rx) = mpsc::channel(8);
            let (tx, mut rx) = mpsc::channel::<PollReport>(1);
            let token = CancellationToken::new();
            let stats = Arc::new(PoolStats::default());
            let task = tokio::spawn(run_with_stats(
                fast(client()),
                ctl_rx,
                tx,
                token.clone(),
                stats.clone(),
            ));
            for (i, p) in plugs.iter().enumerate() {
                ctl_tx
                    .send(Control::Track(Target {
                        key: format!("k{i}"),
                        addr: p.addr,
                    }))
                    .await
                    .unwrap();
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let mut per_key: HashMap<String, usize> = HashMap::new();
            for _ in 0..12 {
                let rep = tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .unwrap()
                    .unwrap();
                assert!(rep.outcome.is_ok(), "{:?}", rep.outcome);
                *per_key.entry(rep.key).or_default() += 1;
                // Slower than the 30 ms interval: the poller's queue fills behind us.
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            token.cancel();
            task.await.unwrap();
            assert_eq!(per_key.len(), 3, "{per_key:?}");
            assert!(per_key.values().all(|&n| n >= 2), "{per_key:?}");
            // Every report handed over stands for one poll: none duplicated, none invented.
            let plug_requests: usize = plugs[..2]
                .iter()
                .map(|p| p.requests.load(Ordering::SeqCst))
                .sum();
            assert!(plug_requests >= per_key["k0"] + per_key["k1"]);
            assert_eq!(stats.open(), 0, "sockets left open");
        }

        #[tokio::test]
        async fn a_refused_port_is_a_quick_typed_error() {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            drop(l);
            let e = poll_device(addr, &client()).await.unwrap_err();
            assert_eq!(e, NetError::Refused);
        }
    }
}
