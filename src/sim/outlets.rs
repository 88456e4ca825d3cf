//! A plug's outlets (one for plugs, several for strips): relay state and the energy each one has
//! drawn, and which outlets a request's `context.child_ids` selects.

use serde_json::{Map, Value};

use super::identity::Identity;
use super::load::LoadModel;

/// One outlet (plugs have one, strips several).
#[derive(Debug, Clone)]
pub(crate) struct Outlet {
    pub alias: String,
    pub relay_on: bool,
    pub on_since: f64,
    pub load: LoadModel,
    /// Wh since boot or erase (what `total` reports).
    pub total_wh: f64,
    /// Integrated up to this time.
    pub last_t: f64,
    /// Day number of `day_wh`.
    pub day: i64,
    /// Wh of `day` since the simulator started.
    pub day_wh: f64,
    /// Readings of this outlet so far (the `outlet-glitch-28kw` fault counts them).
    pub readings: u64,
}

impl Outlet {
    pub fn advance(&mut self, now: f64) {
        if now <= self.last_t {
            return;
        }
        let today = (now / 86_400.0).floor() as i64;
        if today != self.day {
            self.day = today;
            self.day_wh = 0.0;
        }
        if self.relay_on {
            let e = self.load.energy_wh(self.last_t, now);
            self.total_wh += e;
            self.day_wh += e;
        }
        self.last_t = now;
    }

    pub fn set_relay(&mut self, on: bool, now: f64) {
        self.advance(now);
        if on && !self.relay_on {
            self.on_since = now;
        }
        self.relay_on = on;
    }
}

/// Which outlets a request's `context` selects.
pub(crate) enum Ctx {
    None,
    Children(Vec<usize>),
    Bad,
}

/// Which outlets a request's `context` selects on a plug: `Ctx::None` on a plug without
/// outlets (the context is ignored, as real plugs do) or without a `context`.
pub(crate) fn context(id: &Identity, root: &Map<String, Value>) -> Ctx {
    let Some(c) = root.get("context") else {
        return Ctx::None;
    };
    if !id.profile.is_strip() {
        return Ctx::None;
    }
    let Some(ids) = c.get("child_ids").and_then(Value::as_array) else {
        return Ctx::Bad;
    };
    let n = id.profile.outlets.len();
    let mut idx = Vec::new();
    for v in ids {
        let Some(s) = v.as_str() else {
            return Ctx::Bad;
        };
        let found = (0..n).find(|&i| {
            s.eq_ignore_ascii_case(&id.child_id(i)) || (s.len() <= 2 && s.parse::<usize>() == Ok(i))
        });
        match found {
            Some(i) => idx.push(i),
            None => return Ctx::Bad,
        }
    }
    if idx.is_empty() {
        Ctx::Bad
    } else {
        Ctx::Children(idx)
    }
}
