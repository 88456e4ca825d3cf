//! One module per command: its flags and its entry point. `main.rs` only dispatches.

pub mod args;
pub mod bench;
pub mod completions;
pub mod config;
pub mod demo;
pub mod discover;
pub mod history;
pub mod man;
pub mod sim;
pub mod status;
pub mod tui;
pub mod update;
