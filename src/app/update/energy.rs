//! The energy history in the app (issue 16): asking the history task for what the fleet model
//! says is due after each poll, taking in what it fetched, and the erase (`e` in the detail
//! pane): a confirmation that shows what will be lost, then the write — refused read-only.

use std::time::Instant;

use crate::app::event::{ActionKind, Command};
use crate::app::rows::RowRef;
use crate::app::state::{App, Confirm, Overlay, RowId};
use crate::fleet::energy::{Date, EnergyHistory};
use crate::fleet::reading::Field;
use crate::fleet::stats::metered;
use crate::net::history::{HistoryJob, HistoryReport};

use super::actions::describe;

/// Today on the app's clock (UTC days, as the plugs of the simulator keep them).
pub fn today_at(app: &App, now: Instant) -> Date {
    let ms = crate::app::export::unix_ms_at(app, now);
    Date::from_unix(i64::try_from(ms / 1000).unwrap_or(0))
}

/// History fetches the model says are due (first seen, hourly, after a counter reset).
pub(super) fn fetch_due(app: &mut App, now: Instant) -> Vec<Command> {
    let today = today_at(app, now);
    app.fleet
        .history_due(today, now)
        .into_iter()
        .map(|d| {
            Command::FetchHistory(HistoryJob {
                key: d.key,
                addr: d.addr,
                meters: d.meters,
                months: d.months,
                years: d.years,
            })
        })
        .collect()
}

/// One meter's fetch goes to the fleet model.
pub(super) fn on_history(app: &mut App, r: HistoryReport, now: Instant) {
    if let Some(e) = r.first_error() {
        tracing::info!(addr = %r.addr, child = ?r.child, "energy history: {e}");
    }
    let today = today_at(app, now);
    let text = |e: crate::net::NetError| e.to_string();
    app.fleet.apply_history(
        &r.key,
        r.addr,
        r.child.as_deref(),
        r.days
            .into_iter()
            .map(|(p, x)| (p, x.map_err(text)))
            .collect(),
        r.months
            .into_iter()
            .map(|(p, x)| (p, x.map_err(text)))
            .collect(),
        today,
        now,
    );
    app.metrics_dirty = true;
}

/// What one meter's erase loses, in words.
pub fn loss(h: &EnergyHistory, today: Date) -> String {
    let days: Vec<f64> = h
        .days
        .iter()
        .filter(|(d, _)| (d.year, d.month) == (today.year, today.month))
        .map(|(_, v)| *v)
        .collect();
    let months: Vec<f64> = h
        .months
        .iter()
        .filter(|((y, _), _)| *y == today.year)
        .map(|(_, v)| *v)
        .collect();
    if h.is_empty() {
        return "no history fetched yet: whatever it keeps".into();
    }
    format!(
        "this month {} days ({}), this year {} months ({})",
        days.len(),
        Field::Total.fmt(days.iter().filter(|v| v.is_finite()).sum()),
        months.len(),
        Field::Total.fmt(months.iter().filter(|v| v.is_finite()).sum()),
    )
}

/// `e`: asks to erase the energy statistics of the row in the detail pane — a plug, one
/// outlet, or every outlet of a strip — listing what each loses.
pub(super) fn ask_erase(app: &mut App, now: Instant) {
    if !app.view.detail {
        app.set_status(
            "open the detail pane (Enter) to erase a plug's energy history",
            now,
        );
        return;
    }
    let Some(sel) = app.selected() else {
        return;
    };
    let today = today_at(app, now);
    let d = sel.device;
    if !d.is_online() || metered(d).is_empty() {
        app.set_status(
            "nothing to erase: select an online plug with a meter (it keeps the history)",
            now,
        );
        return;
    }
    let mut rows: Vec<RowId> = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    match sel.outlet {
        Some(o) => {
            rows.push(sel.id());
            lines.push(format!("{}  {}", describe(&sel), loss(&o.energy, today)));
        }
        None if d.is_strip() => {
            for o in &d.outlets {
                let r = RowRef {
                    device: d,
                    outlet: Some(o),
                };
                rows.push(r.id());
                lines.push(format!("{}  {}", describe(&r), loss(&o.energy, today)));
            }
        }
        None => {
            rows.push(sel.id());
            lines.push(format!("{}  {}", describe(&sel), loss(&d.energy, today)));
        }
    }
    lines.push("every day and month is erased for good (the plug keeps no copy)".into());
    app.view.overlay = Overlay::Confirm(Confirm {
        kind: ActionKind::EraseStats,
        rows,
        lines,
    });
}
