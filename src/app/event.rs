//! Events (facts that happened, carrying their data) and commands (what the runtime should do).

use std::net::{IpAddr, SocketAddr};

use ratatui::crossterm::event::{KeyEvent, MouseEvent};

use crate::app::state::FirmwareConfirm;
pub use crate::app::state::{ActionKind, DirItem};
use crate::firmware::plan::PlanEntry;
use crate::firmware::runner::JobEvent;
use crate::net::history::{HistoryJob, HistoryReport};
use crate::net::poller::PollReport;
use crate::protocol::SysInfo;

pub use crate::fleet::model::{SeenInfo, Sighting};

/// The poller's report as the fleet model takes it (errors as their text).
pub fn poll_of(r: PollReport) -> crate::fleet::model::Poll {
    let text = |e: crate::net::NetError| e.to_string();
    let refusal = r.outcome.as_ref().err().and_then(|e| e.refusal().cloned());
    crate::fleet::model::Poll {
        refusal,
        key: r.key,
        addr: r.addr,
        misses: r.misses,
        outcome: r
            .outcome
            .map(|p| crate::fleet::model::PollRead {
                sysinfo: p.sysinfo,
                realtime: p.realtime.map(|x| x.map_err(text)),
                outlets: p
                    .outlets
                    .into_iter()
                    .map(|(id, x)| (id, x.map_err(text)))
                    .collect(),
            })
            .map_err(text),
    }
}

/// Everything the UI loop reacts to.
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
    /// A mouse event (only with mouse capture on: not with `--no-mouse`).
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// About once a second: ages "last seen", expires status messages.
    Tick,
    DeviceDiscovered(Sighting),
    /// A discovery source reported something worth showing (a hostile reply, a finished pass).
    DiscoveryNote(String),
    /// A discovery pass ended (`round` 0 is the first).
    DiscoveryRound {
        round: u64,
        found: usize,
        /// Sends that failed (unreachable broadcast address…).
        errors: Vec<String>,
    },
    /// One poll of one device finished (readings or an error).
    Polled(Box<PollReport>),
    /// One meter's energy history was fetched (or why not).
    History(Box<HistoryReport>),
    /// A write finished.
    ActionFinished {
        key: String,
        child: Option<String>,
        kind: ActionKind,
        result: Result<(), String>,
    },
    /// A directory was read for the file picker.
    DirListed {
        dir: std::path::PathBuf,
        result: Result<Vec<DirItem>, String>,
    },
    /// Images were inspected and matched to the chosen plugs.
    FirmwarePlanned(Result<Vec<PlanEntry>, String>),
    /// Progress of a firmware batch.
    Job(Box<JobEvent>),
    /// SIGINT/SIGTERM, or a fatal background failure: leave cleanly.
    Shutdown(Option<String>),
    /// The runtime is up (sent once, first): start what the command line asked for.
    Launched,
    /// The recording task ended (a write error, or stopped as asked).
    Recording(crate::app::recording::RecordEvent),
    /// A copy of the recent log lines, oldest first.
    LogLines(Vec<String>),
}

/// What the runtime should do after an update.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Quit,
    /// Start polling a device (or update its address).
    Track {
        key: String,
        addr: SocketAddr,
    },
    /// Start polling a newer-protocol device over its KLAP/AES session.
    TrackNewer {
        key: String,
        addr: SocketAddr,
        spec: Box<crate::net::newer::NewerSpec>,
    },
    /// Poll these devices now (empty = all).
    PollNow(Vec<String>),
    /// Read a directory for the file picker.
    ListDir(std::path::PathBuf),
    /// Inspect the image file or folder and match it to these plugs.
    PlanFirmware {
        path: std::path::PathBuf,
        plugs: Vec<(IpAddr, SysInfo)>,
    },
    /// Start the confirmed firmware batch.
    StartUpdate(FirmwareConfirm),
    /// Cancel the firmware batch (jobs past the flash request go on).
    CancelUpdate,
    /// A write on one device (`child` = outlet id on strips).
    Act {
        key: String,
        addr: SocketAddr,
        child: Option<String>,
        kind: ActionKind,
        /// How the device is switched (a relay, a bulb's or a light strip's light service).
        switching: crate::protocol::Switching,
    },
    /// Open the file and start the recording task (stopping any running one).
    StartRecording {
        path: std::path::PathBuf,
        format: crate::app::recording::RecordFormat,
    },
    /// Hand the readings a poll just read to the recording task: the record rows of device
    /// `key`'s meters in `read` (`None` = the plug's own, `Some(id)` = that outlet), stamped
    /// `unix_ms` (the runtime builds them from the model: `crate::record::rows_for`).
    Record {
        key: String,
        read: Vec<Option<String>>,
        unix_ms: u64,
    },
    /// Stop the recording task (it writes what is queued first).
    StopRecording,
    /// Publish a metrics snapshot of the app state.
    PublishMetrics,
    /// Read the recent log lines (answered with `Event::LogLines`).
    ReadLog,
    /// Fetch a device's energy history on the history task (never on the poll path).
    FetchHistory(HistoryJob),
}
