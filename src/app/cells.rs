//! The table's rows kept between frames ([`RowCells`]) and what the last frame's table showed
//! ([`Onscreen`]): written by the drawing code (which only reads the app otherwise), read by
//! the table itself and by the UI loop's pacer. Generic over the row id so that it imports
//! nothing of `app::state` (which holds one in its view).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use ratatui::widgets::Row;

/// What a row's cells were formatted from. Equal keys draw equal cells: the device's
/// `Device::generation`, its power-history points when the trend is drawn, everything of the
/// view the cells depend on (columns and widths, filter, marks, expanded strips, theme, the day
/// of the energy column) and the texts drawn from `now` (ages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellsKey {
    pub generation: u64,
    /// `Device::points` when the power trend is drawn, else 0.
    pub points: u64,
    /// A hash of the view's part: layout, filter, marked, expanded, theme, day.
    pub view: u64,
    /// A hash of the row's texts drawn from `now` (the health cell's `42s ago`, the seen age).
    pub ages: u64,
}

/// Rows whose cells were formatted once and are reused while their [`CellsKey`] holds: the
/// table formats a row when it changed, not every frame. Only the rows of the last frame are
/// kept. Written by the drawing code (which only reads the app otherwise); a clone starts
/// empty.
#[derive(Debug)]
pub struct RowCells<K>(Mutex<CellsInner<K>>);

#[derive(Debug)]
struct CellsInner<K> {
    rows: HashMap<K, (CellsKey, Row<'static>)>,
    formatted: u64,
    reused: u64,
    onscreen: Option<Onscreen>,
}

/// What the last frame's table showed, as far as the UI loop's pacer needs to know whether a
/// change can be seen (`runtime::pacer`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Onscreen {
    /// The devices with a row (their own or an outlet's) in the table.
    pub keys: std::collections::HashSet<String>,
    /// Of those, the ones whose seen age is not what a poll now would show ("now"): a poll
    /// of one changes its row.
    pub seen_aged: std::collections::HashSet<String>,
    /// The power trend is drawn (a new point of the power history changes the row).
    pub trend: bool,
    /// The earliest time an age drawn on a row reads differently (a seen age, a health
    /// cell's `42s ago`).
    pub ages_change: Option<Instant>,
    /// The quarter hour (unix ms ÷ 15 min) the energy column was drawn in, when it is drawn: a
    /// plug's own day turns on a quarter hour of UTC (every zone's offset is a multiple of it).
    pub quarter: Option<u64>,
}

impl<K> Default for RowCells<K> {
    fn default() -> Self {
        Self(Mutex::new(CellsInner {
            rows: HashMap::new(),
            formatted: 0,
            reused: 0,
            onscreen: None,
        }))
    }
}

impl<K> Clone for RowCells<K> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<K: Hash + Eq + Clone> RowCells<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, CellsInner<K>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The row of `id` formatted under `key`: the kept one when its key is `key`, else
    /// `make()`, kept for the next frame.
    pub fn row(&self, id: &K, key: CellsKey, make: impl FnOnce() -> Row<'static>) -> Row<'static> {
        let mut g = self.lock();
        if let Some((k, row)) = g.rows.get(id)
            && *k == key
        {
            let row = row.clone();
            g.reused += 1;
            return row;
        }
        let row = make();
        g.formatted += 1;
        g.rows.insert(id.clone(), (key, row.clone()));
        row
    }

    /// Forgets the rows not drawn in the last frame (`drawn`).
    pub fn keep_only(&self, drawn: &[K]) {
        let mut g = self.lock();
        if g.rows.len() > drawn.len() {
            let keep: std::collections::HashSet<&K> = drawn.iter().collect();
            g.rows.retain(|id, _| keep.contains(id));
        }
    }

    /// Forgets every row.
    pub fn clear(&self) {
        let mut g = self.lock();
        g.rows.clear();
        g.onscreen = None;
    }

    /// What the frame just drawn shows of the table (`None`: no table).
    pub fn set_onscreen(&self, o: Option<Onscreen>) {
        self.lock().onscreen = o;
    }

    /// What the last frame showed of the table, if it drew one.
    pub fn onscreen(&self) -> Option<Onscreen> {
        self.lock().onscreen.clone()
    }

    /// Rows formatted and rows reused so far.
    pub fn counts(&self) -> (u64, u64) {
        let g = self.lock();
        (g.formatted, g.reused)
    }

    /// Rows kept.
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(k: &str) -> String {
        k.into()
    }

    fn key(generation: u64) -> CellsKey {
        CellsKey {
            generation,
            points: 0,
            view: 7,
            ages: 0,
        }
    }

    #[test]
    fn a_row_is_formatted_once_per_key_and_only_drawn_rows_are_kept() {
        let cells = RowCells::default();
        let made = std::cell::Cell::new(0);
        let draw = |k: &str, key: CellsKey| {
            cells.row(&id(k), key, || {
                made.set(made.get() + 1);
                Row::new(vec![format!("{k} {}", key.generation)])
            })
        };
        let first = draw("a", key(1));
        assert_eq!(draw("a", key(1)), first, "reused as it was");
        draw("b", key(1));
        assert_eq!(made.get(), 2);
        assert_ne!(
            draw("a", key(2)),
            first,
            "a new generation is formatted again"
        );
        draw("a", CellsKey { ages: 1, ..key(2) });
        draw("a", CellsKey { view: 8, ..key(2) });
        draw(
            "a",
            CellsKey {
                points: 3,
                ..key(2)
            },
        );
        assert_eq!(made.get(), 6);
        assert_eq!(cells.counts(), (6, 1));
        cells.keep_only(&[id("a")]);
        assert_eq!(cells.len(), 1);
        cells.clear();
        assert!(cells.is_empty());
    }
}
