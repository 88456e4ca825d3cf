//! The runtime: turns commands into tasks and feeds events back to the UI loop.
