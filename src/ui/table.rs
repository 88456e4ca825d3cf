//! The home screen: one row per device (and per outlet of an expanded strip).

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};

use super::theme::{Theme, health_glyph, verdict_glyph};
use super::{age, clean};
use crate::app::cells::{CellsKey, Onscreen};
use crate::app::rows::{RowRef, Values, ids_of};
use crate::app::state::{App, Column, Health, Link, RowId, TableHits, Verdict};
use crate::text::{self, Unit};

/// A hash of `v` (the parts of a [`CellsKey`]).
fn hash_of<T: std::hash::Hash>(v: &T) -> u64 {
    use std::hash::Hasher as _;
    let mut h = std::hash::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// Width of each column.
pub fn width(c: Column) -> u16 {
    match c {
        Column::Mark => 1,
        Column::Health => 9,
        Column::Alias => 18,
        Column::Ip => 15,
        Column::Type => 10,
        Column::Model => 10,
        Column::Hw => 4,
        Column::Sw => 7,
        Column::Ids => 17,
        Column::Relay => 5,
        Column::Bright => 6,
        Column::Watts => 9,
        Column::Trend => 16,
        Column::Volts => 7,
        Column::Amps => 7,
        Column::Kwh => 9,
        Column::Energy => 14,
        Column::Rssi => 4,
        Column::Seen => 5,
        Column::Found => 12,
    }
}

/// Columns dropped first when the terminal is narrow. The wide-screen columns go first: the
/// hardware/firmware ids, the energy history's pair, then the power trend — at 200 columns the
/// extra width goes to them rather than to empty space.
const DROP_ORDER: [Column; 15] = [
    Column::Ids,
    Column::Energy,
    Column::Trend,
    Column::Found,
    Column::Bright,
    Column::Hw,
    Column::Rssi,
    Column::Seen,
    Column::Kwh,
    Column::Amps,
    // The type goes before the version and the volts (a suspect voltage must stay in sight at
    // 80 columns) and before the model: the model names the family too.
    Column::Type,
    Column::Sw,
    Column::Volts,
    Column::Model,
    Column::Relay,
];

/// Cells more than its minimum the alias column must keep for the energy pair to show.
const ENERGY_ALIAS_ROOM: u16 = 16;

/// The widest health cell: `? suspect 59s ago`.
const HEALTH_MAX: u16 = 17;

/// The width of `c` when the health cells need `health` cells.
fn width_with(c: Column, health: u16) -> u16 {
    if c == Column::Health {
        health.clamp(width(c), HEALTH_MAX)
    } else {
        width(c)
    }
}

/// The columns that fit in `avail` cells (one cell of spacing between columns).
pub fn visible_columns(avail: u16) -> Vec<Column> {
    visible_columns_with(avail, width(Column::Health))
}

/// [`visible_columns`] when the health cells need `health` cells.
pub fn visible_columns_with(avail: u16, health: u16) -> Vec<Column> {
    visible_columns_for(avail, health, true)
}

/// [`visible_columns_with`]; the brightness column only when `bright` (a device has one).
pub fn visible_columns_for(avail: u16, health: u16, bright: bool) -> Vec<Column> {
    visible_columns_in(avail, health, bright, true)
}

/// [`visible_columns_for`]; the energy history's column only when `energy` (a device has a
/// day or month total): an all-`—` column is empty space the trend and the ids can use.
pub fn visible_columns_in(avail: u16, health: u16, bright: bool, energy: bool) -> Vec<Column> {
    let mut cols: Vec<Column> = Column::ALL.to_vec();
    if !bright {
        cols.retain(|c| *c != Column::Bright);
    }
    if !energy {
        cols.retain(|c| *c != Column::Energy);
    }
    let need = |cols: &[Column]| -> u16 {
        cols.iter()
            .map(|c| {
                if *c == Column::Alias {
                    ALIAS_MIN
                } else {
                    width_with(*c, health)
                }
            })
            .sum::<u16>()
            + cols.len().saturating_sub(1) as u16
            // The energy pair only when the alias keeps room to breathe (wide screens).
            + if cols.contains(&Column::Energy) { ENERGY_ALIAS_ROOM } else { 0 }
    };
    for drop in DROP_ORDER {
        if need(&cols) <= avail {
            break;
        }
        cols.retain(|c| *c != drop);
    }
    cols
}

/// The narrowest the alias column gets: 12 cells keep the volts in sight at 80 columns while a
/// health cell reads "‼ BOGUS 2s ago" (a suspect neighbour's flagged voltage matters more than
/// two more letters of a name, which the detail pane shows whole).
const ALIAS_MIN: u16 = 12;

/// The widest the alias column grows; past it, the power trend takes the rest.
const ALIAS_MAX: u16 = 40;

/// The width given to `c` when the table is `avail` cells wide: the alias column takes what
/// is left (at least [`ALIAS_MIN`], at most [`ALIAS_MAX`]), and the power trend, when shown, whatever
/// the alias does not.
fn width_in(c: Column, cols: &[Column], avail: u16, health: u16) -> u16 {
    let others = |but: &[Column]| -> u16 {
        cols.iter()
            .filter(|c| !but.contains(c))
            .map(|c| width_with(*c, health) + 1)
            .sum()
    };
    match c {
        Column::Alias => avail
            .saturating_sub(others(&[Column::Alias]))
            .clamp(ALIAS_MIN, ALIAS_MAX),
        Column::Trend => avail
            .saturating_sub(others(&[Column::Alias, Column::Trend]) + ALIAS_MAX)
            .max(width(c)),
        _ => width_with(c, health),
    }
}

/// Recent power as a one-line sparkline (btop-style), newest at the right, scaled to the
/// row's own peak: a flagged or missing reading is the bogus glyph, never a bar (a 28 kW
/// glitch must not flatten the rest).
pub fn sparkline(data: &[Option<u64>], cells: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let data = &data[data.len().saturating_sub(cells)..];
    let max = data.iter().flatten().copied().max().unwrap_or(0);
    let mut out = " ".repeat(cells.saturating_sub(data.len()));
    for v in data {
        match v {
            None => out.push_str(verdict_glyph(Verdict::Bogus)),
            Some(_) if max == 0 => out.push(BARS[0]),
            Some(v) => {
                let i = (*v as f64 / max as f64 * 7.0).round() as usize;
                out.push(BARS[i.min(7)]);
            }
        }
    }
    out
}

/// `text` as a line whose parts matching the filter are highlighted (bold and underlined, so
/// they still show with `NO_COLOR`).
fn highlighted(text: String, filter: &str, theme: &Theme) -> Line<'static> {
    let found = text::find_ci(&text, filter);
    if found.is_empty() {
        return Line::from(text);
    }
    let mut spans = Vec::with_capacity(found.len() * 2 + 1);
    let mut at = 0;
    for r in found {
        if r.start > at {
            spans.push(Span::raw(text[at..r.start].to_owned()));
        }
        spans.push(Span::styled(text[r.clone()].to_owned(), theme.matched()));
        at = r.end;
    }
    if at < text.len() {
        spans.push(Span::raw(text[at..].to_owned()));
    }
    Line::from(spans)
}

/// A meter value in its column: never cut — a value too wide for the column takes a shorter
/// honest form ([`text::fmt_cell`]: `233.53`, `1.25 MW`) and keeps its glyph.
fn num(v: Option<f64>, col: Column, verdict: Verdict, theme: &Theme, dim: bool) -> Cell<'static> {
    let (unit, decimals) = match col {
        Column::Volts => (Unit::Volt, 1),
        Column::Amps => (Unit::Amp, 3),
        Column::Kwh => (Unit::KilowattHour, 3),
        _ => (Unit::Watt, 1),
    };
    match v {
        None => Cell::from(Line::from("—").right_aligned()).style(theme.dim()),
        Some(x) => {
            // One cell of the column is the glyph's (a space when the value is plausible).
            let room = usize::from(width(col)).saturating_sub(1);
            let text = format!(
                "{}{}",
                text::fmt_cell(x, unit, decimals, room),
                verdict_glyph(verdict)
            );
            let style = if verdict != Verdict::Ok {
                theme.verdict(verdict)
            } else if dim {
                theme.dim()
            } else {
                Style::new()
            };
            Cell::from(Line::from(text).right_aligned()).style(style)
        }
    }
}

fn found_label(s: &str) -> &str {
    match s {
        "broadcast" => "bcast",
        other => other,
    }
}

/// The health cell: glyph and label, and when the verdict comes from an earlier reading than
/// the one shown (a glitch keeps the row flagged for a while), how long ago that was:
/// `‼ BOGUS 42s ago`, so a BOGUS row with no flagged value in sight is not a riddle.
pub fn health_text(app: &App, r: &RowRef<'_>, health: Health) -> String {
    // A device known by its UDP 20002 reply alone shows its transport (`klap`, `aes`, `https`).
    let label = match health {
        Health::Newer if r.device.protocol() != "tdp" => r.device.protocol(),
        h => h.label(),
    };
    let base = format!("{} {}", health_glyph(health), label);
    if !matches!(health, Health::Suspect | Health::Bogus) {
        return base;
    }
    match r.sticky() {
        Some((_, at)) => {
            let a = match age(app.now.saturating_duration_since(at)).as_str() {
                "now" => "1s".to_owned(),
                a => a.to_owned(),
            };
            format!("{base} {a} ago")
        }
        None => base,
    }
}

/// What a row's cells share, computed once per row.
pub struct RowFacts {
    pub health: Health,
    pub stale: bool,
    pub values: Values,
    /// Cells for the alias (text past it ends in `…`) and for the power trend.
    pub alias_w: usize,
    pub trend_w: usize,
}

impl RowFacts {
    pub fn of(r: &RowRef<'_>) -> Self {
        Self {
            health: r.health(),
            stale: matches!(r.device.link, Link::Offline(_)),
            values: r.values(),
            alias_w: usize::from(ALIAS_MAX),
            trend_w: usize::from(width(Column::Trend)),
        }
    }
}

/// The cell of `col` for row `r`.
pub fn cell<'a>(app: &App, r: &RowRef<'_>, f: &RowFacts, col: Column, theme: &Theme) -> Cell<'a> {
    let d = r.device;
    let health = f.health;
    let stale = f.stale;
    let values = f.values;
    // Text the filter can match: the matched parts are highlighted.
    let text = |s: String| Cell::from(highlighted(s, &app.view.filter, theme));
    match col {
        Column::Mark => {
            if app.view.marked.contains(&r.id()) {
                Cell::from("✓").style(theme.marked())
            } else {
                Cell::from(" ")
            }
        }
        Column::Health => Cell::from(health_text(app, r, health)).style(theme.health(health)),
        Column::Alias => match r.outlet {
            Some(o) => {
                let last = d.outlets.last().is_some_and(|l| l.id == o.id);
                let branch = if last { "└" } else { "├" };
                text(format!(
                    "{branch} {}",
                    clean(&o.alias, f.alias_w.saturating_sub(2))
                ))
            }
            None if d.is_strip() => {
                let arrow = if app.view.expanded.contains(&d.key) {
                    "▾"
                } else {
                    "▸"
                };
                text(format!(
                    "{arrow} {}",
                    clean(d.alias(), f.alias_w.saturating_sub(2))
                ))
            }
            None => text(clean(d.alias(), f.alias_w)),
        },
        Column::Ip => {
            if r.outlet.is_some() {
                let idx = r.outlet.map(|o| o.id.len().saturating_sub(2)).unwrap_or(0);
                let id = r.outlet.map(|o| &o.id[idx..]).unwrap_or("");
                Cell::from(format!("  outlet {}", clean(id, 4))).style(theme.dim())
            } else {
                text(d.addr.ip().to_string())
            }
        }
        Column::Type if r.outlet.is_some() => Cell::from("outlet").style(theme.dim()),
        Column::Type => text(d.kind().label().to_owned()),
        Column::Bright if r.outlet.is_some() => Cell::from(""),
        Column::Bright => match d.brightness() {
            // Off: the brightness it comes on with, dimmed.
            Some(b) if !r.relay().unwrap_or(true) => {
                Cell::from(Line::from(format!("{b}%")).right_aligned()).style(theme.dim())
            }
            Some(b) => Cell::from(Line::from(format!("{b}%")).right_aligned()),
            None => Cell::from(Line::from("—").right_aligned()).style(theme.dim()),
        },
        Column::Model if r.outlet.is_some() => Cell::from(""),
        Column::Model => text(clean(d.model(), usize::from(width(col)))),
        Column::Hw if r.outlet.is_some() => Cell::from(""),
        Column::Hw => text(clean(d.hw_ver(), usize::from(width(col)))),
        Column::Sw if r.outlet.is_some() => Cell::from(""),
        Column::Sw => {
            if d.sw_version().is_empty() {
                Cell::from("—").style(theme.dim())
            } else {
                text(clean(d.sw_version(), usize::from(width(col))))
            }
        }
        Column::Ids if r.outlet.is_some() => Cell::from(""),
        Column::Ids => match ids_of(d) {
            ("", "") => Cell::from("—").style(theme.dim()),
            (hw, fw) => {
                // The first hex digits of each (`…` says the rest is in the detail pane).
                let short = |s: &str| {
                    if s.is_empty() {
                        "—".to_owned()
                    } else {
                        clean(s, 8)
                    }
                };
                text(format!("{}/{}", short(hw), short(fw)))
            }
        },
        Column::Trend => match r.meter() {
            Some(m) => {
                let data = m.power_sparkline(f.trend_w);
                Cell::from(sparkline(&data, f.trend_w)).style(theme.sparkline())
            }
            None => Cell::from(""),
        },
        Column::Relay => match r.relay() {
            Some(true) => Cell::from("on"),
            Some(false) => Cell::from("off").style(theme.dim()),
            None if d.is_strip() && r.outlet.is_none() => {
                let on = d.outlets.iter().filter(|o| o.relay_on).count();
                Cell::from(format!("{on}/{}", d.outlets.len()))
            }
            None => Cell::from("—").style(theme.dim()),
        },
        Column::Watts => num(values.power, col, values.flags.power, theme, stale),
        Column::Volts => num(values.voltage, col, values.flags.voltage, theme, stale),
        Column::Amps => num(values.current, col, values.flags.current, theme, stale),
        Column::Kwh => num(values.total, col, values.flags.total, theme, stale),
        Column::Energy => {
            let today = crate::app::export::today_of(app, d, app.now);
            match crate::fleet::stats::today_and_month(d, r.outlet.map(|o| o.id.as_str()), today) {
                Some((t, m, v)) => Cell::from(
                    Line::from(vec![
                        Span::raw(format!("{t:.2}/{m:.1}")),
                        Span::styled(verdict_glyph(v), theme.verdict(v)),
                    ])
                    .right_aligned(),
                ),
                None => Cell::from(Line::from("— ").right_aligned()).style(theme.dim()),
            }
        }
        Column::Rssi if r.outlet.is_some() => Cell::from(""),
        Column::Rssi => match d.rssi() {
            Some(v) => Cell::from(Line::from(v.to_string()).right_aligned()),
            None => Cell::from(Line::from("—").right_aligned()).style(theme.dim()),
        },
        Column::Seen if r.outlet.is_some() => Cell::from(""),
        Column::Seen => match d.last_seen {
            Some(t) => {
                let s = age(app.now.saturating_duration_since(t));
                let style = if health == Health::Offline || health == Health::Failing {
                    theme.dim()
                } else {
                    Style::new()
                };
                Cell::from(Line::from(s).right_aligned()).style(style)
            }
            None => Cell::from(Line::from("—").right_aligned()).style(theme.dim()),
        },
        Column::Found if r.outlet.is_some() => Cell::from(""),
        Column::Found => text(
            d.found_by
                .iter()
                .map(|s| found_label(s))
                .collect::<Vec<_>>()
                .join("+"),
        ),
    }
}

/// What the table of this frame shows, for the pacer: its devices, which seen ages a poll
/// would change, whether the trend is drawn, when the next drawn age changes.
fn onscreen(app: &App, window: &[RowRef<'_>], cols: &[Column]) -> Onscreen {
    let seen = cols.contains(&Column::Seen);
    let mut o = Onscreen {
        trend: cols.contains(&Column::Trend),
        quarter: cols
            .contains(&Column::Energy)
            .then(|| crate::app::export::unix_ms_at(app, app.now) / 900_000),
        ..Onscreen::default()
    };
    let mut soonest: Option<std::time::Duration> = None;
    let mut until = |d: std::time::Duration| {
        let left = super::format::age_lasts(d);
        soonest = Some(soonest.map_or(left, |s| s.min(left)));
    };
    for r in window {
        let d = r.device;
        o.keys.insert(d.key.clone());
        if seen
            && r.outlet.is_none()
            && let Some(t) = d.last_seen
        {
            let since = app.now.saturating_duration_since(t);
            until(since);
            if age(since) != age(std::time::Duration::ZERO) {
                o.seen_aged.insert(d.key.clone());
            }
        }
        if matches!(r.health(), Health::Suspect | Health::Bogus)
            && let Some((_, at)) = r.sticky()
        {
            until(app.now.saturating_duration_since(at));
        }
    }
    o.ages_change = soonest.map(|s| app.now + s);
    o
}

/// The table's title counts devices (outlets of collapsed strips are not "hidden rows"):
/// `12 devices`, `3 of 12 devices` when filtered, `12 devices, 21 rows with outlets`.
pub fn row_count(rows: &[RowRef<'_>], devices: usize) -> String {
    let shown = rows.iter().filter(|r| r.outlet.is_none()).count();
    let noun = if devices == 1 { "device" } else { "devices" };
    let mut s = if shown == devices {
        format!("{devices} {noun}")
    } else {
        format!("{shown} of {devices} {noun}")
    };
    if rows.len() > shown {
        s.push_str(&format!(", {} rows with outlets", rows.len()));
    }
    s
}

pub fn render_table(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let rows = app.rows();
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(theme.border())
        .title(Span::styled(
            format!(
                " {} · sort: {} {} ",
                row_count(&rows, app.fleet.devices.len()),
                app.view.sort.name(),
                if app.view.descending { "▼" } else { "▲" }
            ),
            theme.dim(),
        ));
    if rows.is_empty() {
        app.view.drawn.set(None);
        app.view.cells.clear();
        let msg = if app.fleet.devices.is_empty() {
            if app.discovering {
                vec![
                    Line::raw(""),
                    Line::styled("  Looking for plugs…", theme.title()),
                    Line::raw(""),
                    Line::styled(
                        "  Broadcast, known hosts and sweeps are probed; plugs appear here as they answer.",
                        theme.dim(),
                    ),
                    Line::styled(
                        "  Nothing yet? Try --host ADDR or --sweep CIDR (broadcast may not cross VLANs).",
                        theme.dim(),
                    ),
                ]
            } else {
                vec![
                    Line::raw(""),
                    Line::styled("  No plugs found.", theme.title()),
                    Line::styled(
                        "  Try --host ADDR or --sweep CIDR (broadcast may not cross VLANs).",
                        theme.dim(),
                    ),
                ]
            }
        } else if app.view.flagged_only {
            vec![
                Line::raw(""),
                Line::styled("  No flagged readings right now.", theme.title()),
                Line::styled("  f shows every row again.", theme.dim()),
            ]
        } else {
            vec![
                Line::raw(""),
                Line::styled("  No row matches the filter.", theme.title()),
                Line::styled("  Esc clears it.", theme.dim()),
            ]
        };
        frame.render_widget(Paragraph::new(Text::from(msg)).block(block), area);
        return;
    }
    // Only the rows that fit are built: the window keeps the selection in view.
    let body_h = usize::from(area.height.saturating_sub(2)).max(1);
    let selected = app.selected_index(&rows);
    let offset = match selected {
        Some(i) if i >= body_h => i + 1 - body_h,
        _ => 0,
    };
    let window = &rows[offset..rows.len().min(offset + body_h)];
    // The health cells' texts: their width sizes the column, and their ages are part of what
    // a kept row was formatted from.
    let health_texts: Vec<String> = window
        .iter()
        .map(|r| health_text(app, r, r.health()))
        .collect();
    let health_w = health_texts
        .iter()
        .map(|t| Line::from(t.as_str()).width())
        .max()
        .map_or(width(Column::Health), |w| {
            u16::try_from(w).unwrap_or(HEALTH_MAX)
        });
    let bright = app.fleet.devices.values().any(|d| d.brightness().is_some());
    let energy = app
        .fleet
        .devices
        .values()
        .any(crate::fleet::stats::has_energy);
    let cols = visible_columns_in(area.width, health_w, bright, energy);
    let col_w: Vec<u16> = cols
        .iter()
        .map(|c| width_in(*c, &cols, area.width, health_w))
        .collect();
    let w_of = |c: Column| {
        cols.iter()
            .position(|x| *x == c)
            .map_or(0, |i| usize::from(col_w[i]))
    };
    let (alias_w, trend_w) = (w_of(Column::Alias), w_of(Column::Trend));
    // Where each column and row lands, for the mouse: the same layout the table uses.
    let table_area = Rect {
        y: area.y.saturating_add(1),
        height: area.height.saturating_sub(1),
        ..area
    };
    let spots = Layout::horizontal(col_w.iter().map(|w| Constraint::Length(*w)))
        .flex(Flex::Start)
        .spacing(1)
        .split(table_area);
    app.view.drawn.set(Some(TableHits {
        header_y: table_area.y,
        body_y: table_area.y.saturating_add(1),
        rows: window.iter().map(RowRef::id).collect(),
        cols: cols
            .iter()
            .zip(spots.iter())
            .map(|(c, r)| (*c, r.x, r.width))
            .collect(),
    }));
    let header = Row::new(cols.iter().map(|c| {
        let mut t = c.title().to_owned();
        if *c == app.view.sort {
            t.push(if app.view.descending { '▼' } else { '▲' });
        }
        let right = matches!(
            c,
            Column::Bright
                | Column::Watts
                | Column::Volts
                | Column::Amps
                | Column::Kwh
                | Column::Rssi
                | Column::Seen
        );
        if right {
            Cell::from(Line::from(t).right_aligned())
        } else {
            Cell::from(t)
        }
    }))
    .style(theme.header());
    // Each row is formatted once per change ([`RowCells`]): the key says what its cells were
    // made from, and an equal key draws the kept row.
    let view_key = hash_of(&(&cols, &col_w, &app.view.filter, app.settings.color));
    let energy_drawn = cols.contains(&Column::Energy);
    let trend = cols.contains(&Column::Trend);
    let seen = cols.contains(&Column::Seen);
    let ids: Vec<RowId> = window.iter().map(RowRef::id).collect();
    let body: Vec<Row<'static>> = window
        .iter()
        .zip(&ids)
        .zip(&health_texts)
        .map(|((r, id), health)| {
            let d = r.device;
            let seen_age = seen
                .then_some(d.last_seen)
                .flatten()
                .map(|t| age(app.now.saturating_duration_since(t)));
            let key = CellsKey {
                generation: d.generation(),
                points: if trend { d.points() } else { 0 },
                view: hash_of(&(
                    view_key,
                    app.view.marked.contains(id),
                    app.view.expanded.contains(&d.key),
                    // The plug's own day, which its energy cell is of.
                    energy_drawn.then(|| crate::app::export::today_of(app, d, app.now)),
                )),
                ages: hash_of(&(health, seen_age)),
            };
            app.view.cells.row(id, key, || {
                let mut facts = RowFacts::of(r);
                facts.alias_w = alias_w;
                facts.trend_w = trend_w;
                let row = Row::new(cols.iter().map(|c| cell(app, r, &facts, *c, theme)));
                if matches!(d.link, Link::Offline(_)) {
                    row.style(theme.dim())
                } else {
                    row
                }
            })
        })
        .collect();
    app.view.cells.keep_only(&ids);
    app.view
        .cells
        .set_onscreen(Some(onscreen(app, window, &cols)));
    let widths = col_w.iter().map(|w| Constraint::Length(*w));
    let table = Table::new(body, widths)
        .header(header)
        .block(block)
        .flex(Flex::Start)
        .column_spacing(1)
        .row_highlight_style(theme.selected());
    let mut state = TableState::default().with_selected(selected.map(|i| i - offset));
    frame.render_stateful_widget(table, area, &mut state);
}
