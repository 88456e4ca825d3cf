//! Sockets: the device client, discovery, and the poller.

pub mod client;
pub mod discovery;
pub mod poller;

pub use client::{Client, ClientConfig, NetError, Stage};
