//! Fetching the energy history the plugs keep (`emeter.get_daystat` / `get_monthstat`), gently
//! and never on the poll path: a task of its own ([`run`]) with its own connections, a bounded
//! number of devices at once, the meters of one device (a strip's outlets) one after another
//! with a pause between requests, every request under the client's timeouts. A plug that never
//! answers `get_daystat` costs this task one timeout per request; the poller never waits on it.
//!
//! When to fetch is the app's decision (the fleet model knows what was fetched when); this
//! task only performs [`HistoryJob`]s and reports one [`HistoryReport`] per meter.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::net::client::{Client, ClientConfig, NetError};
use crate::protocol::calendar::DeviceClock;
use crate::protocol::reply::{check_ack, parse_stats, parse_time};
use crate::protocol::{EnergyStat, Request};

/// How the history task behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryConfig {
    /// Connect/reply timeouts (the port comes from each job's address).
    pub client: ClientConfig,
    /// Devices fetched at once.
    pub concurrency: usize,
    /// Pause between two requests to one device.
    pub gap: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::with_timeout(
                crate::protocol::DEFAULT_PORT,
                Duration::from_secs(5),
            ),
            concurrency: 2,
            gap: Duration::from_millis(50),
        }
    }
}

/// What to fetch from one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryJob {
    pub key: String,
    pub addr: SocketAddr,
    /// The meters: `None` = the plug's own, `Some(id)` = a strip outlet (asked through
    /// `context.child_ids`), fetched in this order.
    pub meters: Vec<Option<String>>,
    /// The (year, month) whose days to fetch.
    pub months: Vec<(i32, u32)>,
    /// The years whose months to fetch.
    pub years: Vec<i32>,
}

/// One list fetched (or why not).
pub type Fetched<T> = (T, Result<Vec<EnergyStat>, NetError>);

/// What one meter's history fetch brought.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryReport {
    pub key: String,
    pub addr: SocketAddr,
    pub child: Option<String>,
    pub days: Vec<Fetched<(i32, u32)>>,
    pub months: Vec<Fetched<i32>>,
    /// The plug's clock, asked before its lists (`time.get_time`): its calendar days are
    /// those of its local time. `None` if it did not say or its clock is not a zone's.
    pub clock: Option<DeviceClock>,
}

impl HistoryReport {
    /// The first error of the fetch, if any list failed.
    pub fn first_error(&self) -> Option<&NetError> {
        self.days
            .iter()
            .map(|(_, r)| r)
            .chain(self.months.iter().map(|(_, r)| r))
            .find_map(|r| r.as_ref().err())
    }
}

fn client_for(addr: SocketAddr, cfg: &ClientConfig) -> Client {
    Client::new(
        addr.ip(),
        ClientConfig {
            port: addr.port(),
            ..*cfg
        },
    )
}

async fn stats(client: &Client, req: Request, method: &str) -> Result<Vec<EnergyStat>, NetError> {
    let root = client.call(&req).await?;
    Ok(parse_stats(&root, method)?)
}

/// The plug's clock: `time.get_time` against this machine's clock ([`DeviceClock::learn`]);
/// `Ok(None)` when the answer is no time zone's (a clock never set).
pub async fn device_clock(
    addr: SocketAddr,
    cfg: &ClientConfig,
) -> Result<Option<DeviceClock>, NetError> {
    let root = client_for(addr, cfg).call(&Request::Time).await?;
    let local = parse_time(&root)?;
    let unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    Ok(DeviceClock::learn(local, unix_s))
}

/// Fetches one meter's days and months, one request at a time with `gap` between them (each
/// over a fresh connection, so a request that timed out leaves nothing behind). After a
/// transport failure (timeout, refused) the rest of this meter is not asked: it reports the
/// same error.
pub async fn fetch_meter(
    addr: SocketAddr,
    cfg: &ClientConfig,
    child: Option<&str>,
    months: &[(i32, u32)],
    years: &[i32],
    gap: Duration,
) -> (Vec<Fetched<(i32, u32)>>, Vec<Fetched<i32>>) {
    let client = client_for(addr, cfg);
    let child = child.map(str::to_owned);
    let mut broken: Option<NetError> = None;
    let mut first = true;
    let mut days = Vec::with_capacity(months.len());
    for &(year, month) in months {
        let r = match &broken {
            Some(e) => Err(e.clone()),
            None => {
                if !std::mem::take(&mut first) {
                    tokio::time::sleep(gap).await;
                }
                let req = Request::DayStat {
                    year,
                    month,
                    child: child.clone(),
                };
                stats(&client, req, "get_daystat").await
            }
        };
        if let Err(e) = &r
            && e.is_transport()
        {
            broken = Some(e.clone());
        }
        days.push(((year, month), r));
    }
    let mut out_months = Vec::with_capacity(years.len());
    for &year in years {
        let r = match &broken {
            Some(e) => Err(e.clone()),
            None => {
                if !std::mem::take(&mut first) {
                    tokio::time::sleep(gap).await;
                }
                let req = Request::MonthStat {
                    year,
                    child: child.clone(),
                };
                stats(&client, req, "get_monthstat").await
            }
        };
        if let Err(e) = &r
            && e.is_transport()
        {
            broken = Some(e.clone());
        }
        out_months.push((year, r));
    }
    (days, out_months)
}

/// Erases one meter's statistics (`emeter.erase_emeter_stat`, of `child` on strips). The caller
/// has asked for and received the user's confirmation, and is not in read-only mode.
pub async fn erase_stats(
    addr: SocketAddr,
    cfg: &ClientConfig,
    child: Option<&str>,
) -> Result<(), NetError> {
    let req = Request::EraseStats {
        child: child.map(str::to_owned),
    };
    let root = client_for(addr, cfg).call(&req).await?;
    check_ack(&root, "emeter", "erase_emeter_stat")?;
    Ok(())
}

/// Performs one job: the plug's clock ([`clock_of`]), then its meters ([`fetch_meters`]).
pub async fn fetch_job(job: &HistoryJob, cfg: &HistoryConfig) -> Vec<HistoryReport> {
    let clock = clock_of(job.addr, &cfg.client).await;
    tokio::time::sleep(cfg.gap).await;
    fetch_meters(job, cfg, clock).await
}

/// [`device_clock`], with a plug that does not tell its time (or whose clock is no zone's)
/// as `None`: its lists are fetched all the same, and dated by UTC.
pub async fn clock_of(addr: SocketAddr, cfg: &ClientConfig) -> Option<DeviceClock> {
    match device_clock(addr, cfg).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%addr, "plug clock: {e}");
            None
        }
    }
}

/// The job's meters one after another, a report per meter, each carrying `clock`.
pub async fn fetch_meters(
    job: &HistoryJob,
    cfg: &HistoryConfig,
    clock: Option<DeviceClock>,
) -> Vec<HistoryReport> {
    let mut out = Vec::with_capacity(job.meters.len());
    for (i, child) in job.meters.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(cfg.gap).await;
        }
        let (days, months) = fetch_meter(
            job.addr,
            &cfg.client,
            child.as_deref(),
            &job.months,
            &job.years,
            cfg.gap,
        )
        .await;
        out.push(HistoryReport {
            key: job.key.clone(),
            addr: job.addr,
            child: child.clone(),
            days,
            months,
            clock,
        });
    }
    out
}

/// The history task: performs the jobs it receives (at most `concurrency` devices at once; a
/// job for a device whose fetch is still running is dropped) and sends one report per meter,
/// until `token` is cancelled or the job channel closes.
pub async fn run<E>(
    cfg: HistoryConfig,
    mut jobs: mpsc::Receiver<HistoryJob>,
    tx: mpsc::Sender<E>,
    token: CancellationToken,
) where
    E: From<HistoryReport> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let mut running: JoinSet<String> = JoinSet::new();
    let mut busy: HashSet<String> = HashSet::new();
    let mut open = true;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(key) = done {
                    busy.remove(&key);
                }
            }
            job = jobs.recv(), if open => {
                let Some(job) = job else {
                    open = false;
                    if running.is_empty() {
                        break;
                    }
                    continue;
                };
                if !busy.insert(job.key.clone()) {
                    tracing::debug!(key = %job.key, "history fetch already running");
                    continue;
                }
                let (permits, tx, token) = (permits.clone(), tx.clone(), token.clone());
                running.spawn(async move {
                    let key = job.key.clone();
                    tokio::select! {
                        _ = token.cancelled() => {}
                        () = async {
                            let Ok(_permit) = permits.acquire_owned().await else { return };
                            for r in fetch_job(&job, &cfg).await {
                                if tx.send(E::from(r)).await.is_err() {
                                    return;
                                }
                            }
                        } => {}
                    }
                    key
                });
            }
            else => break,
        }
        if !open && running.is_empty() {
            break;
        }
    }
    running.shutdown().await;
}
