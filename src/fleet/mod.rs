//! Pure state of the fleet: device identity and merging, readings history, plausibility.
pub mod registry;
