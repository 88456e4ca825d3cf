//! Writes the user asks for (relay, reboot): which rows they apply to, the confirmation, the
//! commands.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::app::event::{ActionKind, Command};
use crate::app::rows::RowRef;
use crate::app::state::{App, Confirm, Overlay, RowId};

pub(super) fn describe(r: &RowRef<'_>) -> String {
    let alias = r.alias();
    let ip = r.device.addr.ip();
    match (alias.is_empty(), r.outlet) {
        (true, _) => ip.to_string(),
        (false, Some(_)) => format!("{alias} ({ip} outlet)"),
        (false, None) => format!("{alias} ({ip})"),
    }
}

/// What `rows` are, counted by kind in order of first appearance, for a dialog's title:
/// "1 plug", "6 outlets", "2 plugs, 1 bulb and 3 outlets". An outlet is an outlet whatever
/// its strip is; a device is named by its kind (plug, strip, bulb …).
pub(super) fn counted(rows: &[RowRef<'_>]) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for r in rows {
        let noun = match r.outlet {
            Some(_) => "outlet",
            None => match r.device.kind() {
                crate::protocol::Kind::Lightstrip => "light strip",
                crate::protocol::Kind::Unknown => "device",
                k => k.label(),
            },
        };
        match counts.iter_mut().find(|(n, _)| *n == noun) {
            Some((_, c)) => *c += 1,
            None => counts.push((noun, 1)),
        }
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(noun, n)| format!("{n} {}", crate::text::plural(*n, noun)))
        .collect();
    match parts.split_last() {
        None => "0 devices".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The rows an action applies to: the marked ones, else the selected one.
pub(super) fn action_rows(app: &App) -> Vec<RowId> {
    if app.view.marked.is_empty() {
        app.view.selected.iter().cloned().collect()
    } else {
        app.view.marked.iter().cloned().collect()
    }
}

pub(super) fn toggle_relay(app: &mut App, now: Instant) -> Vec<Command> {
    let mut rows = Vec::new();
    let mut skipped = 0;
    for id in action_rows(app) {
        match app.row(&id) {
            Some(r) if r.device.is_online() && r.relay().is_some() => rows.push(r),
            _ => skipped += 1,
        }
    }
    if rows.is_empty() {
        app.set_status(
            "nothing to toggle: select or mark an online plug or outlet (a strip's relays are per outlet)",
            now,
        );
        return Vec::new();
    }
    let on = !rows.iter().all(|r| r.relay() == Some(true));
    let kind = if on {
        ActionKind::RelayOn
    } else {
        ActionKind::RelayOff
    };
    // Rows already in the target state are left out: the list is what will change.
    let (rows, same): (Vec<RowRef<'_>>, Vec<RowRef<'_>>) =
        rows.into_iter().partition(|r| r.relay() != Some(on));
    let ids: Vec<RowId> = rows.iter().map(RowRef::id).collect();
    // Switching one plug on acts at once; off always asks (a fridge or a router is one key
    // away), as does any batch.
    if on && ids.len() == 1 && skipped == 0 && same.is_empty() {
        return perform(app, kind, &ids, now);
    }
    let to = if on { "on" } else { "off" };
    let from = if on { "off" } else { "on" };
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| format!("{}  {from} → {to}", describe(r)))
        .collect();
    if !same.is_empty() {
        lines.push(format!("({} already {to}: left alone)", same.len()));
    }
    if skipped > 0 {
        lines.push(format!(
            "({skipped} marked rows skipped: offline or no relay)"
        ));
    }
    app.view.overlay = Overlay::Confirm(Confirm {
        kind,
        rows: ids,
        what: counted(&rows),
        lines,
    });
    Vec::new()
}

pub(super) fn ask_reboot(app: &mut App, now: Instant) {
    let keys: BTreeSet<String> = action_rows(app).into_iter().map(|r| r.key).collect();
    let rows: Vec<RowRef<'_>> = keys
        .iter()
        .filter_map(|k| app.row(&RowId::device(k)))
        .filter(|r| r.device.is_online())
        .collect();
    if rows.is_empty() {
        app.set_status("nothing to reboot: select or mark an online device", now);
        return;
    }
    let ids = rows.iter().map(RowRef::id).collect();
    let what = counted(&rows);
    let lines = rows
        .iter()
        .map(|r| {
            format!(
                "{}  {}  {}",
                describe(r),
                r.device.model(),
                r.device.sw_version()
            )
        })
        .collect();
    app.view.overlay = Overlay::Confirm(Confirm {
        kind: ActionKind::Reboot,
        rows: ids,
        what,
        lines,
    });
}

pub(super) fn perform(
    app: &mut App,
    kind: ActionKind,
    rows: &[RowId],
    now: Instant,
) -> Vec<Command> {
    if app.settings.read_only {
        app.set_status("read-only mode: writes are disabled", now);
        return Vec::new();
    }
    let cmds: Vec<Command> = rows
        .iter()
        .filter_map(|id| {
            let d = app.fleet.devices.get(&id.key)?;
            // An outlet is a relay; a whole device is switched the way its family is.
            let switching = match id.child {
                Some(_) => crate::protocol::Switching::Relay,
                None => d.kind().switching(),
            };
            Some(Command::Act {
                key: id.key.clone(),
                addr: d.addr,
                child: id.child.clone(),
                kind,
                switching,
            })
        })
        .collect();
    app.set_status(
        format!("{}: sent to {} device(s)…", kind.label(), cmds.len()),
        now,
    );
    cmds
}
