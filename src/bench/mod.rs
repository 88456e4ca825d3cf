//! Benchmarks that print figures (run by `plugfleet bench`).

pub mod cpu;
pub mod discovery;
pub mod firmware;
pub mod floor;
pub mod newer;
pub mod poll;
pub mod sim_child;
pub mod tui;
