//! Sockets: the device client, discovery, the poller, and the KLAP and AES clients (`klap`, `aes`,
//! over the kept-alive HTTP/1.1 of `http`) and the kept session per newer-protocol device
//! (`newer`).

pub mod aes;
pub mod client;
pub mod discovery;
pub mod history;
pub mod http;
pub mod klap;
pub mod newer;
pub mod poller;
pub mod pool;

pub use client::{Client, ClientConfig, NetError, Stage};
