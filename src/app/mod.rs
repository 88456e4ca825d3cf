//! Application state, the pure update function and the runtime that turns commands into tasks.
