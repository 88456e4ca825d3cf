//! The pure update function: `update(&mut App, Event, now) -> Vec<Command>`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Instant;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::assess;
use super::event::{ActionKind, Command, Event, SeenInfo, Sighting};
use super::keymap::{self, Action, Context};
use super::state::{
    App, Confirm, Device, Link, Meter, OFFLINE_AFTER, Outlet, Overlay, RowId, RowRef,
};
use crate::net::poller::{PollReport, Polled};
use crate::protocol::reply::normalise_mac;

/// Applies one event to the state and says what the runtime should do.
pub fn update(app: &mut App, ev: Event, now: Instant) -> Vec<Command> {
    app.now = now;
    let cmds = match ev {
        Event::Key(k) => on_key(app, k, now),
        Event::Resize(_, h) => {
            app.view.page = usize::from(h.saturating_sub(8)).max(1);
            Vec::new()
        }
        Event::Tick => Vec::new(),
        Event::DeviceDiscovered(s) => on_sighting(app, s, now),
        Event::DiscoveryNote(n) => {
            if app.notes.len() == 20 {
                app.notes.pop_front();
            }
            app.notes.push_back(n);
            Vec::new()
        }
        Event::DiscoveryFinished { found } => {
            app.discovering = false;
            app.set_status(format!("discovery pass finished: {found} found"), now);
            Vec::new()
        }
        Event::Polled(r) => on_polled(app, *r, now),
        Event::ActionFinished {
            key,
            child,
            kind,
            result,
        } => {
            let name = app
                .row(&RowId {
                    key: key.clone(),
                    child: child.clone(),
                })
                .map(|r| describe(&r))
                .unwrap_or_else(|| key.clone());
            match result {
                Ok(()) => {
                    app.set_status(format!("{}: {} done", name, kind.label()), now);
                    vec![Command::PollNow(vec![key])]
                }
                Err(e) => {
                    app.set_status(format!("{}: {} failed: {e}", name, kind.label()), now);
                    Vec::new()
                }
            }
        }
        Event::Shutdown(reason) => {
            if let Some(r) = reason {
                app.set_status(r, now);
            }
            app.quit = true;
            vec![Command::Quit]
        }
    };
    fix_selection(app);
    cmds
}

fn describe(r: &RowRef<'_>) -> String {
    let alias = r.alias();
    let ip = r.device.addr.ip();
    match (alias.is_empty(), r.outlet) {
        (true, _) => ip.to_string(),
        (false, Some(_)) => format!("{alias} ({ip} outlet)"),
        (false, None) => format!("{alias} ({ip})"),
    }
}

/// Keeps the selection on a visible row (the first one when it was lost).
fn fix_selection(app: &mut App) {
    let rows = app.rows();
    if app.selected_index(&rows).is_some() {
        return;
    }
    let first = rows.first().map(RowRef::id);
    app.view.selected = first;
    if app.view.selected.is_none() {
        app.view.detail = false;
    }
}

fn context(app: &App) -> Context {
    match app.view.overlay {
        Overlay::Help => Context::Help,
        Overlay::Confirm(_) => Context::Confirm,
        Overlay::None if app.view.editing_filter => Context::Filter,
        Overlay::None => Context::Table,
    }
}

fn on_key(app: &mut App, key: KeyEvent, now: Instant) -> Vec<Command> {
    if key.kind != KeyEventKind::Press {
        return Vec::new();
    }
    let ctx = context(app);
    let Some(binding) = keymap::lookup(ctx, &key) else {
        if ctx == Context::Filter
            && let KeyCode::Char(c) = key.code
            && !key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
            && app.view.filter.chars().count() < 64
        {
            app.view.filter.push(c);
        }
        return Vec::new();
    };
    if binding.writes && app.settings.read_only {
        app.set_status("read-only mode: writes are disabled", now);
        return Vec::new();
    }
    act(app, binding.action, now)
}

fn act(app: &mut App, action: Action, now: Instant) -> Vec<Command> {
    match action {
        Action::Quit => {
            app.quit = true;
            return vec![Command::Quit];
        }
        Action::Up if app.view.overlay == Overlay::Help => {
            app.view.help_scroll = app.view.help_scroll.saturating_sub(1);
        }
        Action::Down if app.view.overlay == Overlay::Help => {
            app.view.help_scroll = app.view.help_scroll.saturating_add(1).min(200);
        }
        Action::Up => move_selection(app, -1),
        Action::Down => move_selection(app, 1),
        Action::PageUp => move_selection(app, -(app.view.page.max(1) as isize)),
        Action::PageDown => move_selection(app, app.view.page.max(1) as isize),
        Action::Top => move_selection(app, isize::MIN / 2),
        Action::Bottom => move_selection(app, isize::MAX / 2),
        Action::ToggleDetail => app.view.detail = !app.view.detail && app.selected().is_some(),
        Action::Back => {
            if app.view.detail {
                app.view.detail = false;
            } else if !app.view.filter.is_empty() {
                app.view.filter.clear();
            } else if app.view.flagged_only {
                app.view.flagged_only = false;
            }
        }
        Action::StartFilter => app.view.editing_filter = true,
        Action::FilterAccept => app.view.editing_filter = false,
        Action::FilterClear => {
            app.view.filter.clear();
            app.view.editing_filter = false;
        }
        Action::FilterBackspace => {
            app.view.filter.pop();
        }
        Action::Mark => {
            if let Some(id) = app.view.selected.clone() {
                if !app.view.marked.remove(&id) {
                    app.view.marked.insert(id);
                }
                move_selection(app, 1);
            }
        }
        Action::MarkAllVisible => {
            let ids: Vec<RowId> = app.rows().iter().map(RowRef::id).collect();
            if !ids.is_empty() && ids.iter().all(|i| app.view.marked.contains(i)) {
                for i in &ids {
                    app.view.marked.remove(i);
                }
                app.set_status(format!("unmarked {} rows", ids.len()), now);
            } else {
                let n = ids.len();
                app.view.marked.extend(ids);
                app.set_status(format!("marked {n} visible rows"), now);
            }
        }
        Action::ClearMarks => app.view.marked.clear(),
        Action::FlaggedOnly => {
            app.view.flagged_only = !app.view.flagged_only;
            let msg = if app.view.flagged_only {
                "showing flagged rows only (f: show all)"
            } else {
                "showing all rows"
            };
            app.set_status(msg, now);
        }
        Action::SortNext | Action::SortPrev | Action::SortReverse => {
            match action {
                Action::SortNext => app.view.sort = app.view.sort.next(),
                Action::SortPrev => app.view.sort = app.view.sort.prev(),
                _ => app.view.descending = !app.view.descending,
            }
            let dir = if app.view.descending { "descending" } else { "ascending" };
            app.set_status(format!("sorted by {} ({dir})", app.view.sort.name()), now);
        }
        Action::Expand => {
            if let Some(sel) = app.selected()
                && sel.outlet.is_none()
                && sel.device.is_strip()
            {
                let key = sel.device.key.clone();
                app.view.expanded.insert(key);
            }
        }
        Action::Collapse => {
            if let Some(sel) = app.view.selected.clone() {
                app.view.expanded.remove(&sel.key);
                app.view.selected = Some(RowId::device(&sel.key));
            }
        }
        Action::ToggleRelay => return toggle_relay(app, now),
        Action::Reboot => ask_reboot(app, now),
        Action::Refresh => {
            let keys: BTreeSet<String> = app.view.marked.iter().map(|r| r.key.clone()).collect();
            let msg = if keys.is_empty() {
                "refreshing every device now".to_owned()
            } else {
                format!("refreshing {} marked devices now", keys.len())
            };
            app.set_status(msg, now);
            return vec![Command::PollNow(keys.into_iter().collect())];
        }
        Action::Help => {
            app.view.help_scroll = 0;
            app.view.overlay = Overlay::Help;
        }
        Action::CloseHelp | Action::Cancel => {
            if matches!(app.view.overlay, Overlay::Confirm(_)) {
                app.set_status("cancelled", now);
            }
            app.view.overlay = Overlay::None;
        }
        Action::Confirm => {
            let Overlay::Confirm(c) = std::mem::take(&mut app.view.overlay) else {
                return Vec::new();
            };
            return perform(app, c.kind, &c.rows, now);
        }
    }
    Vec::new()
}

fn move_selection(app: &mut App, delta: isize) {
    let rows = app.rows();
    if rows.is_empty() {
        return;
    }
    let cur = app.selected_index(&rows).unwrap_or(0) as isize;
    let next = cur.saturating_add(delta).clamp(0, rows.len() as isize - 1) as usize;
    let id = rows[next].id();
    app.view.selected = Some(id);
}

/// The rows an action applies to: the marked ones, else the selected one.
fn action_rows(app: &App) -> Vec<RowId> {
    if app.view.marked.is_empty() {
        app.view.selected.iter().cloned().collect()
    } else {
        app.view.marked.iter().cloned().collect()
    }
}

fn toggle_relay(app: &mut App, now: Instant) -> Vec<Command> {
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
    let ids: Vec<RowId> = rows.iter().map(RowRef::id).collect();
    if ids.len() == 1 && skipped == 0 {
        return perform(app, kind, &ids, now);
    }
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| {
            let from = if r.relay() == Some(true) { "on" } else { "off" };
            let to = if on { "on" } else { "off" };
            format!("{}  {from} → {to}", describe(r))
        })
        .collect();
    if skipped > 0 {
        lines.push(format!("({skipped} marked rows skipped: offline or no relay)"));
    }
    app.view.overlay = Overlay::Confirm(Confirm {
        kind,
        rows: ids,
        lines,
    });
    Vec::new()
}

fn ask_reboot(app: &mut App, now: Instant) {
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
    let lines = rows
        .iter()
        .map(|r| format!("{}  {}  {}", describe(r), r.device.model(), r.device.sw_version()))
        .collect();
    app.view.overlay = Overlay::Confirm(Confirm {
        kind: ActionKind::Reboot,
        rows: ids,
        lines,
    });
}

fn perform(app: &mut App, kind: ActionKind, rows: &[RowId], now: Instant) -> Vec<Command> {
    if app.settings.read_only {
        app.set_status("read-only mode: writes are disabled", now);
        return Vec::new();
    }
    let cmds: Vec<Command> = rows
        .iter()
        .filter_map(|id| {
            let d = app.devices.get(&id.key)?;
            Some(Command::Act {
                key: id.key.clone(),
                addr: d.addr,
                child: id.child.clone(),
                kind,
            })
        })
        .collect();
    app.set_status(format!("{}: sent to {} device(s)…", kind.label(), cmds.len()), now);
    cmds
}

fn outlets_from(sys: &crate::protocol::SysInfo, old: &[Outlet]) -> Vec<Outlet> {
    sys.children
        .iter()
        .map(|c| {
            let meter = old.iter().find(|o| o.id == c.id).and_then(|o| o.meter.clone());
            Outlet {
                id: c.id.clone(),
                alias: c.alias.clone(),
                relay_on: c.relay_on,
                meter,
            }
        })
        .collect()
}

fn on_sighting(app: &mut App, s: Sighting, now: Instant) -> Vec<Command> {
    let addr = SocketAddr::new(s.ip, s.port);
    match s.info {
        SeenInfo::Newer(tdp) => {
            let mac = normalise_mac(&tdp.mac);
            // A device that also answers on 9999 is listed once, as legacy.
            if let Some(d) = app.devices.values_mut().find(|d| d.mac() == mac) {
                d.found_by.insert(s.found_by);
                if d.is_newer() {
                    d.tdp = Some(*tdp);
                    d.last_seen = Some(now);
                } else {
                    d.tdp = Some(*tdp);
                }
                return Vec::new();
            }
            let key = format!("mac:{mac}");
            app.devices.insert(key.clone(), Device {
                key,
                addr,
                found_by: BTreeSet::from([s.found_by]),
                sysinfo: None,
                tdp: Some(*tdp),
                meter: None,
                outlets: Vec::new(),
                link: Link::Online,
                last_seen: Some(now),
                first_seen: now,
                last_error: None,
                previous_addr: None,
            });
            Vec::new()
        }
        SeenInfo::Legacy(sys) => {
            let key = sys.device_id.clone();
            // A newer-protocol entry with the same MAC is the same device: merge into this one.
            let newer_key = format!("mac:{}", sys.mac);
            let merged = app.devices.remove(&newer_key);
            let d = app.devices.entry(key.clone()).or_insert_with(|| Device {
                key: key.clone(),
                addr,
                found_by: BTreeSet::new(),
                sysinfo: None,
                tdp: None,
                meter: None,
                outlets: Vec::new(),
                link: Link::Pending,
                last_seen: None,
                first_seen: now,
                last_error: None,
                previous_addr: None,
            });
            if let Some(m) = merged {
                d.found_by.extend(m.found_by);
                d.tdp = m.tdp;
            }
            d.found_by.insert(s.found_by);
            let moved = d.addr != addr;
            if moved {
                d.previous_addr = Some(d.addr);
                d.addr = addr;
            }
            let fresh = d.sysinfo.is_none();
            d.outlets = outlets_from(&sys, &d.outlets);
            if sys.has_emeter() && sys.children.is_empty() && d.meter.is_none() {
                d.meter = Some(Meter::default());
            }
            if sys.has_emeter() {
                for o in d.outlets.iter_mut().filter(|o| o.meter.is_none()) {
                    o.meter = Some(Meter::default());
                }
            }
            d.sysinfo = Some(*sys);
            d.last_seen = Some(now);
            if matches!(d.link, Link::Offline(_)) {
                d.link = Link::Pending;
            }
            if fresh || moved {
                vec![Command::Track { key, addr }]
            } else {
                Vec::new()
            }
        }
    }
}

fn on_polled(app: &mut App, r: PollReport, now: Instant) -> Vec<Command> {
    let Some(d) = app.devices.get_mut(&r.key) else {
        return Vec::new();
    };
    if d.addr != r.addr {
        // A poll of an address the device has since left.
        return Vec::new();
    }
    match r.outcome {
        Err(e) => {
            d.last_error = Some(e.to_string());
            d.link = if r.misses >= OFFLINE_AFTER {
                Link::Offline(e.to_string())
            } else {
                Link::Failing(r.misses)
            };
            Vec::new()
        }
        Ok(p) if p.sysinfo.device_id != d.key => {
            // Someone else answers at this address now: the tracked device is gone from it.
            let msg = format!("another device ({}) answers at {}", p.sysinfo.device_id, r.addr);
            d.link = Link::Offline(msg.clone());
            d.last_error = Some(msg);
            let s = Sighting {
                ip: r.addr.ip(),
                port: r.addr.port(),
                found_by: d.found_by.iter().next().cloned().unwrap_or_else(|| "host".into()),
                info: SeenInfo::Legacy(Box::new(p.sysinfo)),
            };
            on_sighting(app, s, now)
        }
        Ok(p) => {
            record_poll(d, p, now);
            Vec::new()
        }
    }
}

fn record_poll(d: &mut Device, p: Polled, now: Instant) {
    d.link = Link::Online;
    d.last_seen = Some(now);
    d.last_error = None;
    d.outlets = outlets_from(&p.sysinfo, &d.outlets);
    let model = p.sysinfo.model.clone();
    if let Some(rt) = p.realtime {
        let m = d.meter.get_or_insert_with(Meter::default);
        match rt {
            Ok(reading) => {
                let check = assess::assess(&model, &reading, m.reading.as_ref());
                m.record(reading, check, now);
            }
            Err(e) => m.error = Some(e.to_string()),
        }
    }
    for (id, rt) in p.outlets {
        let Some(o) = d.outlets.iter_mut().find(|o| o.id == id) else {
            continue;
        };
        let m = o.meter.get_or_insert_with(Meter::default);
        match rt {
            Ok(reading) => {
                let check = assess::assess(&model, &reading, m.reading.as_ref());
                m.record(reading, check, now);
            }
            Err(e) => m.error = Some(e.to_string()),
        }
    }
    d.sysinfo = Some(p.sysinfo);
}
