//! Application state and the pure update function. No I/O: the runtime that turns commands into
//! tasks, and the sources that turn discovery into events, live in `crate::runtime`.
//!
//! Only the UI loop mutates [`App`]; discovery, the poller and write actions send [`Event`]s that
//! carry their data. [`update`] is synchronous and takes `now`, so every transition is a unit test.

pub mod account;
pub mod cells;
pub mod event;
pub mod export;
pub mod firmware;
pub mod fixture;
pub mod keymap;
pub mod leaving;
pub mod mouse;
pub mod quit;
pub mod recording;
pub mod rows;
pub mod settings;
pub mod state;
pub mod update;

pub use event::{ActionKind, Command, Event, SeenInfo, Sighting};
pub use state::{App, Column, Device, Health, Link, Meter, Outlet, RowId, Verdict};
pub use update::update;
