//! The home screen: one row per device (and per outlet of an expanded strip).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};

use super::theme::{Theme, health_glyph, verdict_glyph};
use super::{age, clean};
use crate::app::rows::{RowRef, Values};
use crate::app::state::{App, Column, Health, Link, Verdict};
use crate::text::{self, Unit};

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
        Column::Relay => 5,
        Column::Bright => 6,
        Column::Watts => 9,
        Column::Volts => 7,
        Column::Amps => 7,
        Column::Kwh => 9,
        Column::Energy => 14,
        Column::Rssi => 4,
        Column::Seen => 5,
        Column::Found => 12,
    }
}

/// Columns dropped first when the terminal is narrow (the energy history's pair first: it
/// shows on wide screens only).
const DROP_ORDER: [Column; 13] = [
    Column::Energy,
    Column::Found,
    Column::Bright,
    Column::Hw,
    Column::Rssi,
    Column::Seen,
    Column::Kwh,
    Column::Amps,
    Column::Sw,
    Column::Volts,
    // The type goes before the model: the model names the family too.
    Column::Type,
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
    let mut cols: Vec<Column> = Column::ALL.to_vec();
    if !bright {
        cols.retain(|c| *c != Column::Bright);
    }
    let need = |cols: &[Column]| -> u16 {
        cols.iter()
            .map(|c| {
                if *c == Column::Alias {
                    14
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

/// The width given to `c` when the table is `avail` cells wide: the alias column takes what
/// is left (at least 14).
fn width_in(c: Column, cols: &[Column], avail: u16, health: u16) -> u16 {
    if c != Column::Alias {
        return width_with(c, health);
    }
    let others: u16 = cols
        .iter()
        .filter(|c| **c != Column::Alias)
        .map(|c| width_with(*c, health) + 1)
        .sum();
    avail.saturating_sub(others).clamp(14, 40)
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
}

impl RowFacts {
    pub fn of(r: &RowRef<'_>) -> Self {
        Self {
            health: r.health(),
            stale: matches!(r.device.link, Link::Offline(_)),
            values: r.values(),
        }
    }
}

/// The cell of `col` for row `r`.
pub fn cell<'a>(app: &App, r: &RowRef<'_>, f: &RowFacts, col: Column, theme: &Theme) -> Cell<'a> {
    let d = r.device;
    let health = f.health;
    let stale = f.stale;
    let values = f.values;
    let text = |s: String| Cell::from(s);
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
                text(format!("{branch} {}", clean(&o.alias, 40)))
            }
            None if d.is_strip() => {
                let arrow = if app.view.expanded.contains(&d.key) {
                    "▾"
                } else {
                    "▸"
                };
                text(format!("{arrow} {}", clean(d.alias(), 40)))
            }
            None => text(clean(d.alias(), 40)),
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
        Column::Model => text(clean(d.model(), 16)),
        Column::Hw if r.outlet.is_some() => Cell::from(""),
        Column::Hw => text(clean(d.hw_ver(), 8)),
        Column::Sw if r.outlet.is_some() => Cell::from(""),
        Column::Sw => {
            if d.sw_version().is_empty() {
                Cell::from("—").style(theme.dim())
            } else {
                text(clean(d.sw_version(), 12))
            }
        }
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
            let today = crate::app::export::today_at(app, app.now);
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
    let health_w = window
        .iter()
        .map(|r| Line::from(health_text(app, r, r.health())).width())
        .max()
        .map_or(width(Column::Health), |w| {
            u16::try_from(w).unwrap_or(HEALTH_MAX)
        });
    let bright = app.fleet.devices.values().any(|d| d.brightness().is_some());
    let cols = visible_columns_for(area.width, health_w, bright);
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
    let body = window.iter().map(|r| {
        let facts = RowFacts::of(r);
        let row = Row::new(cols.iter().map(|c| cell(app, r, &facts, *c, theme)));
        if matches!(r.device.link, Link::Offline(_)) {
            row.style(theme.dim())
        } else {
            row
        }
    });
    let widths = cols
        .iter()
        .map(|c| Constraint::Length(width_in(*c, &cols, area.width, health_w)));
    let table = Table::new(body, widths)
        .header(header)
        .block(block)
        .column_spacing(1)
        .row_highlight_style(theme.selected());
    let mut state = TableState::default().with_selected(selected.map(|i| i - offset));
    frame.render_stateful_widget(table, area, &mut state);
}
