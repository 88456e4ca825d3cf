//! How believable a reading is, and readings counted per verdict: the vocabulary shared by the
//! history ring and the plausibility engine (kept below both so neither imports the other).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How believable a reading is. Ordered: `Ok < Suspect < Bogus`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Ok,
    Suspect,
    Bogus,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Suspect => "suspect",
            Verdict::Bogus => "bogus",
        }
    }

    /// The marker drawn next to a flagged value (readable without colour): none, `?`, `‼`
    /// (the one table, [`crate::text::glyph`]).
    pub fn glyph(self) -> &'static str {
        use crate::text::glyph;
        match self {
            Verdict::Ok => glyph::VERDICT_OK,
            Verdict::Suspect => glyph::SUSPECT,
            Verdict::Bogus => glyph::BOGUS,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Readings counted per verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    pub ok: u64,
    pub suspect: u64,
    pub bogus: u64,
}

impl Counts {
    pub fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Ok => self.ok += 1,
            Verdict::Suspect => self.suspect += 1,
            Verdict::Bogus => self.bogus += 1,
        }
    }

    /// Suspect + bogus.
    pub fn flagged(&self) -> u64 {
        self.suspect + self.bogus
    }

    pub fn total(&self) -> u64 {
        self.ok + self.suspect + self.bogus
    }
}
