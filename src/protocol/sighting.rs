//! What discovery finds, as plain data: who answered ([`Sighting`]), what it said
//! ([`DeviceReply`]), how it was found ([`FoundBy`]) and the engine's reports
//! ([`DiscoveryEvent`]). Below both `net` (which produces them) and `fleet` (which merges them
//! into devices), so neither has to import the other. No I/O.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::protocol::SysInfo;
use crate::protocol::tdp::TdpInfo;

/// A discovery reply datagram larger than this is hostile (a six-outlet strip's sysinfo is
/// about 1.5 KB). The engine's receive buffer is larger than any datagram, so the real length is always
/// known.
pub const MAX_REPLY_DATAGRAM: usize = 16 * 1024;

/// How a device was found. Serialised lowercase (`"broadcast"`, `"host"`, `"sweep"`,
/// `"udp20002"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    /// Answered the UDP 9999 broadcast.
    Broadcast,
    /// Answered a unicast probe (UDP, or the TCP fallback) to a known host.
    Host,
    /// Answered the framed sysinfo request of the TCP sweep.
    Sweep,
    /// Answered the UDP 20002 (TDP) probe of newer-protocol devices.
    Udp20002,
}

impl FoundBy {
    pub fn as_str(self) -> &'static str {
        match self {
            FoundBy::Broadcast => "broadcast",
            FoundBy::Host => "host",
            FoundBy::Sweep => "sweep",
            FoundBy::Udp20002 => "udp20002",
        }
    }
}

impl std::fmt::Display for FoundBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a device said about itself. (Not boxed: events are few and moved whole, and the
/// agreed shape is `Legacy(SysInfo)`.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "info", rename_all = "lowercase")]
pub enum DeviceReply {
    /// A port-9999 sysinfo (legacy XOR protocol).
    Legacy(SysInfo),
    /// A UDP 20002 discovery answer (newer KLAP/AES transport).
    Newer(TdpInfo),
}

impl DeviceReply {
    /// Normalised MAC (`AA:BB:CC:DD:EE:FF`).
    pub fn mac(&self) -> &str {
        match self {
            DeviceReply::Legacy(s) => &s.mac,
            DeviceReply::Newer(t) => &t.mac,
        }
    }

    /// The device id (`deviceId` of sysinfo or `device_id` of TDP — different formats).
    pub fn device_id(&self) -> Option<&str> {
        match self {
            DeviceReply::Legacy(s) => Some(&s.device_id),
            DeviceReply::Newer(t) => t.device_id.as_deref(),
        }
    }

    pub fn model(&self) -> &str {
        match self {
            DeviceReply::Legacy(s) => &s.model,
            DeviceReply::Newer(t) => &t.model,
        }
    }

    /// `legacy`, or the newer transport's label (`klap`, `klap-v2`, `aes`, `tdp`).
    pub fn protocol(&self) -> &'static str {
        match self {
            DeviceReply::Legacy(_) => "legacy",
            DeviceReply::Newer(t) => t.protocol_label(),
        }
    }
}

/// One decoded answer of one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sighting {
    /// The address the reply came from.
    pub ip: IpAddr,
    /// The port the reply came from (the probed port: `port` or `tdp_port`).
    pub port: u16,
    pub found_by: FoundBy,
    /// Milliseconds since the run started (the discovery engine was started).
    pub at: u64,
    pub reply: DeviceReply,
}

/// Why an incoming reply was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HostileReason {
    #[error("datagram of {len} bytes is larger than {MAX_REPLY_DATAGRAM}")]
    Oversized { len: usize },
    #[error("not JSON after decoding: {detail}")]
    NotJson { detail: String },
    #[error("JSON of the wrong shape: {detail}")]
    WrongShape { detail: String },
    #[error("device error {code}: {msg}")]
    DeviceError { code: i64, msg: String },
    #[error("reply from port {got}, probed port {expected}")]
    WrongPort { expected: u16, got: u16 },
    #[error("unsolicited reply from an address that was not probed")]
    Unsolicited,
    #[error("bad reply: {detail}")]
    BadFrame { detail: String },
}

/// What the engine reports. See the module documentation for the order of events.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum DiscoveryEvent {
    /// A device answered (sent as soon as the reply is decoded).
    Found(Sighting),
    /// A reply that was counted and ignored.
    Hostile {
        from: SocketAddr,
        reason: HostileReason,
    },
    /// One pass is over: every device that was going to answer in it has been reported. This is
    /// the unit of liveness (the fleet model marks devices missing N rounds in a row offline).
    RoundDone {
        /// 0 for the first pass, then 1, 2, …
        round: u64,
        /// Distinct (address, provenance) sightings in this pass.
        found: usize,
        /// Hostile replies in this pass.
        hostile: usize,
        /// Sends that failed (e.g. "255.255.255.255:9999: network unreachable").
        send_errors: Vec<String>,
        /// Milliseconds since the run started.
        at: u64,
    },
    /// The run is over (the last event).
    Finished {
        /// Number of passes completed.
        rounds: u64,
        /// `Found` events sent, over all passes.
        found: usize,
        /// `Hostile` replies, over all passes.
        hostile: usize,
        /// True when it ended because the token was cancelled.
        cancelled: bool,
        /// Why the engine could not go on (it could not open a socket); the task returns the
        /// same error.
        error: Option<String>,
        at: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_by_serialises_lowercase() {
        assert_eq!(
            serde_json::to_string(&[FoundBy::Broadcast, FoundBy::Udp20002]).unwrap(),
            r#"["broadcast","udp20002"]"#
        );
    }
}
