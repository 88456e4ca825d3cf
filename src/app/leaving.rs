//! The leaving state the app keeps (`App::leaving`), below both the state and the logic of
//! leaving (`app::quit`), so neither imports the other for it.

use std::time::Instant;

use crate::firmware::exits::Drain;
#[allow(unused_imports)]
use crate::firmware::exits::{EXIT_ABANDONED, EXIT_INTERRUPTED};

/// Where leaving stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stage {
    /// Not leaving.
    #[default]
    Staying,
    /// A quit key was pressed during a batch at this time: the next one (within the status
    /// time) starts the drain.
    Asked(Instant),
    /// Waiting for the plugs already flashing; the app quits when the batch finishes.
    Draining,
}

/// The leaving state kept in [`App`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leaving {
    pub stage: Stage,
    pub(super) drain: Drain,
    /// The exit status decided (0 when none was).
    pub(super) exit: u8,
    /// What to say on stderr once the terminal is restored.
    pub(super) farewell: Option<String>,
}

impl Leaving {
    /// The process exit status once the app quit: 0, [`EXIT_INTERRUPTED`] after a drained
    /// batch, [`EXIT_ABANDONED`] when plugs were left flashing.
    pub fn exit_status(&self) -> u8 {
        self.exit
    }

    /// The line for stderr after the terminal is restored, when leaving interrupted a batch
    /// (its outcome) or abandoned plugs (which ones, and how to check them).
    pub fn farewell(&self) -> Option<&str> {
        self.farewell.as_deref()
    }
}
