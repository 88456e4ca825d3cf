//! plugfleet: discover, watch and locally update a fleet of TP-Link Kasa smart plugs.
//!
//! Layers, one way: `protocol` (pure) → `net` (sockets) → `fleet` (pure state of devices and
//! readings) → `app` (event → update → commands) → `ui` (drawing). `sim` is a faithful plug
//! simulator used by tests, the demo and the benchmarks; `firmware` holds image inspection, the
//! update state machine, its runner and the embedded file server.

pub mod app;
pub mod bench;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod firmware;
pub mod fleet;
pub mod logging;
pub mod net;
pub mod protocol;
pub mod sim;
pub mod text;
pub mod ui;

// Integrations (issue 6): local names by MAC, recording readings, Prometheus metrics.
pub mod identity;
pub mod metrics;
pub mod record;
