//! plugfleet: discover, watch and locally update a fleet of TP-Link Kasa smart plugs.
//!
//! Layers, lowest first; a module imports only its own layer's module or lower ones
//! (`tests/architecture.rs` checks it, and that no files import each other in a cycle):
//!
//! 0. `text` (the one sanitiser, unit formatters, glyphs)
//! 1. `protocol` (pure wire format, discovery results)
//! 2. `config`, `logging`
//! 3. `net` (sockets: client, discovery, poller)
//! 4. `fleet` (the one fleet model: identity, liveness, readings and their judgement; never
//!    imports `net`)
//! 5. `firmware` (images, update state machine, runner, file server), `sim` (simulated plugs)
//! 6. `app` (pure: state, event → update → commands)
//! 7. `record`, `metrics` (views of the model, their writer and server)
//! 8. `runtime` (turns commands into tasks; owns the terminal and the event loop)
//! 9. `ui` (drawing)
//! 10. `bench`
//! 11. `cmd`, `cli` (only `main`, `cli` and `cmd` import `cmd`; only `main` imports `cli`)

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

// Integrations (issue 6): recording readings, Prometheus metrics (local names by MAC are the
// fleet model's: `fleet::identity`).
pub mod metrics;
pub mod record;
