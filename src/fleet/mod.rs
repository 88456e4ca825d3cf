//! Pure state of the fleet: device identity and merging, readings history, plausibility.

pub mod history;
pub mod plausibility;
pub mod quiet;
pub mod ratings;
pub mod reading;
pub mod registry;
