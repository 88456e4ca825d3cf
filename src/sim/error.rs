//! Why a fleet could not start.

use std::net::SocketAddr;

/// Why a fleet could not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// The spec itself is wrong (a usage error).
    #[error("{0}")]
    Invalid(String),
    #[error("{proto} address {addr} is already in use (another simulator or program?)")]
    AddrInUse {
        addr: SocketAddr,
        proto: &'static str,
    },
    #[error("address {addr} is not available on this machine")]
    AddrNotAvailable { addr: SocketAddr },
    #[error("cannot bind {proto} {addr}: {msg}")]
    Io {
        addr: SocketAddr,
        proto: &'static str,
        msg: String,
    },
}
