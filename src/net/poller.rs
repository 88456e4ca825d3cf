//! The poller: refreshes readings of every tracked plug on an interval, with bounded
//! concurrency, a timeout per request, backoff for failing devices, and one connection per poll
//! (a strip's outlets are read one after another over it, gently). One slow plug never delays
//! the others: each device has its own due time and at most one poll in flight.
//!
//! [`Schedule`] is the pure part (time passed in); [`run`] is the task that performs the polls
//! and sends a [`PollReport`] per poll over the app's event channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use crate::net::client::{ClientConfig, Connection, NetError, Stage};
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
}

impl Default for PollConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            concurrency: 16,
            client: ClientConfig::with_timeout(crate::protocol::DEFAULT_PORT, Duration::from_secs(3)),
            max_backoff: Duration::from_secs(30),
        }
    }
}

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
    addr: SocketAddr,
    next_due: Instant,
    misses: u32,
    in_flight: bool,
}

/// Per-device due times, misses and backoff. Pure: time is passed in.
#[derive(Debug, Clone)]
pub struct Schedule {
    interval: Duration,
    max_backoff: Duration,
    entries: HashMap<String, Entry>,
}

impl Schedule {
    pub fn new(interval: Duration, max_backoff: Duration) -> Self {
        Self {
            interval,
            max_backoff: max_backoff.max(interval),
            entries: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Starts tracking a device (due at once), or updates its address.
    pub fn track(&mut self, t: Target, now: Instant) {
        self.entries
            .entry(t.key)
            .and_modify(|e| e.addr = t.addr)
            .or_insert(Entry {
                addr: t.addr,
                next_due: now,
                misses: 0,
                in_flight: false,
            });
    }

    pub fn untrack(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Makes the given devices (all when empty) due now.
    pub fn poll_now(&mut self, keys: &[String], now: Instant) {
        for (k, e) in self.entries.iter_mut() {
            if keys.is_empty() || keys.contains(k) {
                e.next_due = e.next_due.min(now);
            }
        }
    }

    /// The devices due at `now` that have no poll in flight; they are marked in flight.
    pub fn take_due(&mut self, now: Instant) -> Vec<Target> {
        let mut due: Vec<_> = self
            .entries
            .iter_mut()
            .filter(|(_, e)| !e.in_flight && e.next_due <= now)
            .map(|(k, e)| {
                e.in_flight = true;
                (e.next_due, Target {
                    key: k.clone(),
                    addr: e.addr,
                })
            })
            .collect();
        due.sort_by_key(|(at, t)| (*at, t.key.clone()));
        due.into_iter().map(|(_, t)| t).collect()
    }

    /// Records the end of a poll; returns the consecutive misses (0 after a success).
    pub fn finished(&mut self, key: &str, ok: bool, now: Instant) -> u32 {
        let (interval, max_backoff) = (self.interval, self.max_backoff);
        let Some(e) = self.entries.get_mut(key) else {
            return 0;
        };
        e.in_flight = false;
        if ok {
            e.misses = 0;
            e.next_due = now + self.interval;
        } else {
            e.misses = e.misses.saturating_add(1);
            e.next_due = now + backoff(interval, max_backoff, e.misses);
        }
        e.misses
    }

    /// Wait after the `misses`-th consecutive failure: interval, 2×, 4×… up to the cap.
    pub fn backoff(&self, misses: u32) -> Duration {
        backoff(self.interval, self.max_backoff, misses)
    }

    /// When the next idle device becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| !e.in_flight)
            .map(|e| e.next_due)
            .min()
    }
}

fn backoff(interval: Duration, max: Duration, misses: u32) -> Duration {
    let factor = 1u32 << misses.saturating_sub(1).min(10);
    (interval * factor).min(max)
}

/// One exchange over `conn`, reconnecting once if the plug closed the connection after its
/// previous reply (some firmware does).
async fn call_on(
    conn: &mut Option<Connection<TcpStream>>,
    addr: SocketAddr,
    cfg: &ClientConfig,
    req: &Request,
) -> Result<serde_json::Value, NetError> {
    if let Some(c) = conn.as_mut() {
        match c.call(req).await {
            Err(NetError::Reset) => {}
            other => return other,
        }
    }
    let mut fresh = Connection::connect(addr.ip(), cfg).await?;
    let r = fresh.call(req).await;
    *conn = Some(fresh);
    r
}

/// Polls one device: sysinfo, then its meter, or each outlet's meter of a metered strip, one
/// after another over one connection. Bounded by `cfg`'s timeouts, and overall by a budget of
/// (2 + outlets) reply timeouts.
pub async fn poll_device(addr: SocketAddr, cfg: &ClientConfig) -> Result<Polled, NetError> {
    let cfg = ClientConfig {
        port: addr.port(),
        ..*cfg
    };
    let mut conn = Some(Connection::connect(addr.ip(), &cfg).await?);
    let sysinfo = SysInfo::from_reply(&call_on(&mut conn, addr, &cfg, &Request::SysInfo).await?)?;
    let mut polled = Polled {
        realtime: None,
        outlets: Vec::new(),
        sysinfo,
    };
    if !polled.sysinfo.has_emeter() {
        return Ok(polled);
    }
    let budget = cfg.reply_timeout * (2 + polled.sysinfo.children.len() as u32);
    let read = async {
        if polled.sysinfo.children.is_empty() {
            let r = call_on(&mut conn, addr, &cfg, &Request::realtime(None)).await;
            polled.realtime = Some(r.and_then(|v| Ok(Realtime::from_reply(&v)?)));
        } else {
            let ids: Vec<String> = polled.sysinfo.children.iter().map(|c| c.id.clone()).collect();
            for id in ids {
                let r = call_on(&mut conn, addr, &cfg, &Request::realtime(Some(&id))).await;
                polled
                    .outlets
                    .push((id, r.and_then(|v| Ok(Realtime::from_reply(&v)?))));
            }
        }
    };
    if timeout(budget, read).await.is_err() {
        return Err(NetError::Timeout {
            stage: Stage::Reply,
            after: budget,
        });
    }
    Ok(polled)
}

/// Runs the poller until `token` is cancelled or the app's channel closes.
pub async fn run<E>(
    cfg: PollConfig,
    mut ctl: mpsc::Receiver<Control>,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
) where
    E: From<PollReport> + Send + 'static,
{
    let mut schedule = Schedule::new(cfg.interval, cfg.max_backoff);
    let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let mut jobs: JoinSet<(String, SocketAddr, Result<Polled, NetError>, Duration)> =
        JoinSet::new();
    let mut ctl_open = true;
    loop {
        for t in schedule.take_due(Instant::now()) {
            let permits = permits.clone();
            let client = cfg.client;
            let token = token.clone();
            jobs.spawn(async move {
                let started = Instant::now();
                let outcome = tokio::select! {
                    _ = token.cancelled() => Err(NetError::Io("cancelled".into())),
                    outcome = async {
                        let _permit = permits.acquire_owned().await;
                        poll_device(t.addr, &client).await
                    } => outcome,
                };
                (t.key, t.addr, outcome, started.elapsed())
            });
        }
        let wake = schedule
            .next_due()
            .unwrap_or_else(|| Instant::now() + cfg.interval);
        tokio::select! {
            _ = token.cancelled() => break,
            c = ctl.recv(), if ctl_open => match c {
                Some(Control::Track(t)) => schedule.track(t, Instant::now()),
                Some(Control::Untrack(k)) => schedule.untrack(&k),
                Some(Control::PollNow(keys)) => schedule.poll_now(&keys, Instant::now()),
                None => ctl_open = false,
            },
            Some(done) = jobs.join_next(), if !jobs.is_empty() => {
                let Ok((key, addr, outcome, elapsed)) = done else {
                    // A poll task panicked: that is a bug, not a device failure.
                    tracing::error!("a poll task failed: {done:?}");
                    break;
                };
                let misses = schedule.finished(&key, outcome.is_ok(), Instant::now());
                if let Err(e) = &outcome {
                    tracing::debug!(%addr, misses, "poll failed: {e}");
                }
                let report = PollReport { key, addr, outcome, misses, elapsed };
                tokio::select! {
                    _ = token.cancelled() => break,
                    sent = tx.send(E::from(report)) => if sent.is_err() { break },
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    jobs.shutdown().await;
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
}
