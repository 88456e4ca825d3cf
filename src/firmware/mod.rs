//! Firmware: image inspection and matching, the update job (a pure state machine), its runner,
//! and the embedded file server.

pub mod header;
pub mod image;
pub mod job;
pub mod plan;
pub mod runner;
pub mod server;
