//! The port-9999 protocol, pure: cipher, framing, typed requests and replies, and the UDP 20002
//! probe of newer devices; the newer transports' crypto and framing (`klap`, `aes_passthrough`),
//! how to reach a newer device (`access`) and the SMART JSON-RPC dialect (`smart`).
//! Nothing here does I/O.

pub mod access;
pub mod aes_passthrough;
pub mod calendar;
pub mod cipher;
pub mod codec;
pub mod kind;
pub mod klap;
pub mod lite;
pub mod reply;
pub mod request;
pub mod sighting;
pub mod smart;
pub mod tdp;

pub use codec::{DEFAULT_MAX_FRAME, FrameCodec, FrameError};
pub use kind::{Kind, Switching};
pub use reply::{
    ChildInfo, DownloadState, EnergyStat, LightState, Realtime, ReplyError, SysInfo, UnitScheme,
    normalise_mac, split_model,
};
pub use request::Request;

/// The legacy protocol's TCP and UDP port.
pub const DEFAULT_PORT: u16 = 9999;
