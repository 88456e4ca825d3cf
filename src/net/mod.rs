//! Sockets: the device client, discovery, the poller, and the KLAP and AES clients (`klap`, `aes`,
//! over the kept-alive HTTP/1.1 of `http`, on the plain-or-TLS stream of `tls`) and the kept
//! session per newer-protocol device (`newer`).

pub mod aes;
pub mod client;
pub mod discovery;
pub mod history;
pub mod http;
pub mod klap;
pub mod newer;
pub mod poller;
pub mod pool;
pub mod tls;

pub use client::{Client, ClientConfig, NetError, Stage};
