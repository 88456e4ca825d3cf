//! Pure state of the fleet: the one fleet model ([`model`]) with identity ([`identity`]),
//! meters ([`meter`]) and the judgement of every reading ([`plausibility`], [`judge`]);
//! readings history and ratings.

pub mod energy;
pub mod history;
pub mod identity;
pub mod judge;
pub mod meter;
pub mod model;
pub mod plausibility;
pub mod quiet;
pub mod ratings;
pub mod reading;
pub mod stats;
pub mod verdict;
pub mod watch;
