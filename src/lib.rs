//! plugfleet: discover, watch and locally update a fleet of TP-Link Kasa smart plugs.
//!
//! Layers, lowest first; a module imports only its own layer's module or lower ones
//! (`tests/architecture.rs` checks it, and that no files import each other in a cycle):
//!
//! 0. `protocol` (pure wire format, discovery results), `text` (sanitiser, unit formatters)
//! 1. `config`, `logging`
//! 2. `net` (sockets: client, discovery, poller)
//! 3. `fleet` (pure state of devices and readings; never imports `net`), `identity`
//! 4. `firmware` (images, update state machine, runner, file server), `sim` (simulated plugs)
//! 5. `app` (pure: state, event → update → commands)
//! 6. `record`, `metrics` (views of the model, their writer and server)
//! 7. `runtime` (turns commands into tasks; owns the terminal and the event loop)
//! 8. `ui` (drawing)
//! 9. `bench`
//! 10. `cmd`, `cli` (only `main`, `cli` and `cmd` import `cmd`; only `main` imports `cli`)

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
pub mod runtime;
pub mod sim;
pub mod text;
pub mod ui;

// Integrations (issue 6): local names by MAC, recording readings, Prometheus metrics.
pub mod identity;
pub mod metrics;
pub mod record;
