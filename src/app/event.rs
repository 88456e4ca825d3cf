//! Events (facts that happened, carrying their data) and commands (what the runtime should do).

use std::net::{IpAddr, SocketAddr};

use ratatui::crossterm::event::KeyEvent;

use crate::net::poller::PollReport;
use crate::protocol::{SysInfo, tdp::TdpInfo};

/// What a device said when it was found.
#[derive(Debug, Clone, PartialEq)]
pub enum SeenInfo {
    /// A legacy plug answered `get_sysinfo` on port 9999.
    Legacy(Box<SysInfo>),
    /// Only the newer (KLAP/AES) discovery on UDP 20002 answered.
    Newer(Box<TdpInfo>),
}

/// A device was found (by discovery, or by the first poll of a `--host`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub ip: IpAddr,
    pub port: u16,
    /// How it was found: `broadcast`, `host`, `sweep`, `udp20002`.
    pub found_by: String,
    pub info: SeenInfo,
}

/// A write the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    RelayOn,
    RelayOff,
    Reboot,
}

impl ActionKind {
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::RelayOn => "turn on",
            ActionKind::RelayOff => "turn off",
            ActionKind::Reboot => "reboot",
        }
    }
}

/// Everything the UI loop reacts to.
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
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
    /// A write finished.
    ActionFinished {
        key: String,
        child: Option<String>,
        kind: ActionKind,
        result: Result<(), String>,
    },
    /// SIGINT/SIGTERM, or a fatal background failure: leave cleanly.
    Shutdown(Option<String>),
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
    /// Poll these devices now (empty = all).
    PollNow(Vec<String>),
    /// A write on one device (`child` = outlet id on strips).
    Act {
        key: String,
        addr: SocketAddr,
        child: Option<String>,
        kind: ActionKind,
    },
}
