//! Sockets: the device client, discovery, and the poller.

pub mod client;
pub mod discovery;
pub mod poller;
pub mod pool;

pub use client::{Client, ClientConfig, NetError, Stage};
