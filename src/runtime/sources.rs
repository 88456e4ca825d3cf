//! Sources of devices for the runtime: the adapter between discovery and the app's events.

use std::time::Duration;

use tokio::task::JoinSet;

use super::Sources;
use crate::app::event::{Event, SeenInfo, Sighting};
use crate::net::discovery::{self, DiscoveryConfig};
use crate::protocol::sighting::{DeviceReply, DiscoveryEvent};

impl From<DiscoveryEvent> for Event {
    fn from(ev: DiscoveryEvent) -> Self {
        match ev {
            DiscoveryEvent::Found(s) => Event::DeviceDiscovered(Sighting {
                ip: s.ip,
                port: s.port,
                found_by: s.found_by.as_str().to_owned(),
                info: match s.reply {
                    DeviceReply::Legacy(sys) => SeenInfo::Legacy(Box::new(sys)),
                    DeviceReply::Newer(tdp) => SeenInfo::Newer(Box::new(tdp)),
                },
            }),
            DiscoveryEvent::Hostile { from, reason } => {
                Event::DiscoveryNote(format!("ignored a reply from {from}: {reason}"))
            }
            DiscoveryEvent::RoundDone {
                round,
                found,
                send_errors,
                ..
            } => Event::DiscoveryRound {
                round,
                found,
                errors: send_errors,
            },
            DiscoveryEvent::Finished { .. } => Event::Tick,
        }
    }
}

/// How often discovery runs again while the TUI is open (new plugs, changed addresses).
pub fn rediscovery_interval(poll_interval: Duration) -> Duration {
    (poll_interval * 10).max(Duration::from_secs(15))
}

/// Discovery as a source of the TUI's events, repeated every `every`.
pub fn discovery_source(cfg: DiscoveryConfig, every: Duration) -> Sources {
    Box::new(move |tx, token, tasks: &mut JoinSet<()>| {
        tasks.spawn(async move {
            let fail = tx.clone();
            match discovery::spawn_continuous(cfg, every, tx, token).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = fail
                        .send(Event::DiscoveryNote(format!("discovery stopped: {e}")))
                        .await;
                }
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        });
    })
}

/// The sources for `plugfleet`: discovery with `cfg` (built from the shared target flags by
/// `cmd`), repeated while the TUI runs at the rediscovery pace of the poll `interval`.
pub fn discovery(cfg: DiscoveryConfig, interval: Duration) -> Sources {
    discovery_source(cfg, rediscovery_interval(interval))
}
