//! Sockets: the device client, discovery, the poller, and the KLAP and AES clients (`klap`, `aes`)
//! and the kept session per newer-protocol device (`newer`); the plain-or-TLS stream under KLAP
//! (`tls`).

pub mod aes;
pub mod client;
pub mod discovery;
pub mod history;
pub mod klap;
pub mod newer;
pub mod poller;
pub mod pool;
pub mod tls;

pub use client::{Client, ClientConfig, NetError, Stage};
