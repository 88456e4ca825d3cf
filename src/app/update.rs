//! The pure update function: `update(&mut App, Event, now) -> Vec<Command>`.

use std::collections::BTreeSet;
use std::time::Instant;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::event::{Command, Event};
use super::keymap::{self, Action, Context};
use super::rows::RowRef;
use super::state::{App, Batch, Column, FirmwareConfirm, FirstRow, Overlay, RowId};
use crate::firmware::job::Stage;
use crate::firmware::runner::{JobEvent, PlugResult};

use actions::{ask_reboot, describe, perform, toggle_relay};
use firmware::{picker_action, start_firmware};
use fleet::{on_polled, on_sighting};
use recording::{on_recording, on_tick, start_recording, toggle_recording};

/// Applies one event to the state and says what the runtime should do.
pub fn update(app: &mut App, ev: Event, now: Instant) -> Vec<Command> {
    app.now = now;
    // The one device a poll report changed, when it changed no other.
    let mut only: Option<String> = None;
    let cmds = match ev {
        Event::Key(k) => {
            let before = app.view.selected.clone();
            let cmds = on_key(app, k, now);
            app.view.chosen |= before.is_some() && app.view.selected != before;
            cmds
        }
        Event::Mouse(m) => {
            super::mouse::on_mouse(app, m, now);
            Vec::new()
        }
        Event::Resize(_, h) => {
            app.view.page = usize::from(h.saturating_sub(8)).max(1);
            Vec::new()
        }
        Event::Tick => on_tick(app),
        Event::Launched => match app.settings.record.clone() {
            Some((path, format)) => start_recording(app, path, format, now),
            None => Vec::new(),
        },
        Event::Recording(ev) => {
            on_recording(app, ev, now);
            Vec::new()
        }
        Event::LogLines(lines) => {
            app.log_lines = lines;
            Vec::new()
        }
        Event::DeviceDiscovered(s) => on_sighting(app, s, now),
        Event::DiscoveryNote(n) => {
            note(app, n, now);
            Vec::new()
        }
        Event::DiscoveryRound {
            round,
            found,
            errors,
        } => {
            for e in errors {
                note(app, format!("discovery: {e}"), now);
            }
            if round == 0 {
                app.discovering = false;
                let msg = format!(
                    "first discovery pass done: {found} {} found",
                    if found == 1 { "reply" } else { "replies" }
                );
                app.set_status(msg, now);
            }
            Vec::new()
        }
        Event::Polled(r) => {
            let key = r.key.clone();
            let (mut cmds, alone) = on_polled(app, *r, now);
            cmds.extend(energy::fetch_due(app, &key, now));
            if alone {
                only = Some(key);
            }
            cmds
        }
        Event::History(r) => {
            energy::on_history(app, *r, now);
            Vec::new()
        }
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
                    if kind == super::state::ActionKind::EraseStats {
                        app.fleet.history_erased(&key, child.as_deref());
                    }
                    app.set_status(format!("{}: {} done", name, kind.label()), now);
                    vec![Command::PollNow(vec![key])]
                }
                Err(e) => {
                    app.set_status(format!("{}: {} failed: {e}", name, kind.label()), now);
                    Vec::new()
                }
            }
        }
        Event::DirListed { dir, result } => {
            if let Overlay::Picker(p) = &mut app.view.overlay
                && p.dir == dir
            {
                p.loading = false;
                match result {
                    Ok(items) => {
                        p.items = items;
                        p.selected = 0;
                        p.error = None;
                    }
                    Err(e) => {
                        // The listing shown must be of `p.dir`: the old one is dropped (← goes
                        // back), so Enter can never open a name from another folder.
                        p.items.clear();
                        p.selected = 0;
                        p.error = Some(e);
                    }
                }
            }
            Vec::new()
        }
        Event::FirmwarePlanned(result) => {
            let source = match &app.view.overlay {
                Overlay::Picker(p) => p.dir.clone(),
                _ => return Vec::new(),
            };
            match result {
                Ok(entries) if !entries.is_empty() => {
                    app.view.overlay =
                        Overlay::FirmwareConfirm(FirmwareConfirm::new(source, entries));
                }
                Ok(_) => {
                    if let Overlay::Picker(p) = &mut app.view.overlay {
                        p.loading = false;
                        p.error = Some("no plug to update".into());
                    }
                }
                Err(e) => {
                    if let Overlay::Picker(p) = &mut app.view.overlay {
                        p.loading = false;
                        p.error = Some(e);
                    }
                }
            }
            Vec::new()
        }
        Event::Job(ev) => {
            let mut cmds = on_job(app, *ev, now);
            cmds.extend(super::quit::after_job(app));
            cmds
        }
        // Signals and quit keys during a firmware batch: app/quit.rs.
        Event::Shutdown(reason) => super::quit::on_signal(app, reason, now),
    };
    fix_selection(app, only.as_deref());
    cmds
}

/// Keeps a discovery note (bounded) and shows it in the status bar.
fn note(app: &mut App, n: String, now: Instant) {
    if app.notes.len() == 20 {
        app.notes.pop_front();
    }
    app.set_status(n.clone(), now);
    app.notes.push_back(n);
}

/// Keeps the selection on a visible row (the first one when it was lost, and row 1 until
/// the user moves the cursor). `only`: the one device this event changed, if it changed no
/// other — then row 1 is found by comparing it with the last row 1 alone, not by a pass over
/// the fleet, while the view it was found under holds ([`FirstRow`]).
fn fix_selection(app: &mut App, only: Option<&str>) {
    if !app.view.chosen {
        let known = only.and_then(|changed| {
            let memo = app.view.first_row.as_ref()?;
            let on_it = app
                .view
                .selected
                .as_ref()
                .is_some_and(|s| s.child.is_none() && s.key == memo.key);
            (on_it && memo.holds(app)).then(|| app.first_row_after(&memo.key, changed))?
        });
        if known
            .as_ref()
            .is_some_and(|k| app.view.first_row.as_ref().is_some_and(|m| m.key == *k))
        {
            // Row 1 stays row 1 (and selected): nothing to note.
            return;
        }
        let first = match known {
            Some(first) => Some(first),
            None => app.first_row().map(|r| r.device.key.clone()),
        };
        match first {
            Some(key) => {
                app.view.first_row = Some(FirstRow::of(app, key.clone()));
                app.view.selected = Some(RowId { key, child: None });
                return;
            }
            None => app.view.first_row = None,
        }
    }
    if app
        .view
        .selected
        .as_ref()
        .is_some_and(|id| app.is_visible(id))
    {
        return;
    }
    let rows = app.rows();
    let first = rows.first().map(RowRef::id);
    app.view.selected = first;
    if app.view.selected.is_none() {
        app.view.detail = false;
    }
}

fn context(app: &App) -> Context {
    match app.view.overlay {
        Overlay::Help => Context::Help,
        Overlay::Confirm(_) | Overlay::FirmwareConfirm(_) => Context::Confirm,
        Overlay::Picker(_) => Context::Picker,
        Overlay::Log { .. } => Context::Log,
        Overlay::Account(_) => Context::Account,
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
        if ctx == Context::Account
            && let KeyCode::Char(c) = key.code
            && !key
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
        {
            account::type_char(app, c);
        } else if ctx == Context::Filter
            && let KeyCode::Char(c) = key.code
            && !key
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
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
        Action::Quit => return super::quit::on_quit_key(app, now),
        Action::Up | Action::Down if matches!(app.view.overlay, Overlay::Picker(_)) => {
            if let Overlay::Picker(p) = &mut app.view.overlay {
                let last = p.items.len().saturating_sub(1);
                p.selected = if action == Action::Up {
                    p.selected.saturating_sub(1)
                } else {
                    (p.selected + 1).min(last)
                };
            }
        }
        Action::ToggleRecording => return toggle_recording(app, now),
        Action::EnterAccount => account::open(app),
        Action::AccountNext => return account::enter(app, now),
        Action::AccountBackspace => account::backspace(app),
        Action::ShowLog => {
            app.view.overlay = Overlay::Log { scroll: 0 };
            return vec![Command::ReadLog];
        }
        Action::CloseLog => app.view.overlay = Overlay::None,
        Action::Up | Action::Down | Action::Top | Action::Bottom
            if matches!(app.view.overlay, Overlay::Log { .. }) =>
        {
            let max = u16::try_from(app.log_lines.len().saturating_sub(1)).unwrap_or(u16::MAX);
            if let Overlay::Log { scroll } = &mut app.view.overlay {
                *scroll = match action {
                    Action::Up => scroll.saturating_add(1).min(max),
                    Action::Down => scroll.saturating_sub(1),
                    Action::Top => max,
                    _ => 0,
                };
            }
        }
        Action::Up if app.view.overlay == Overlay::Help => {
            app.view.help_scroll = app.view.help_scroll.saturating_sub(1);
        }
        Action::Down if app.view.overlay == Overlay::Help => {
            app.view.help_scroll = app.view.help_scroll.saturating_add(1).min(60);
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
        Action::SortNext | Action::SortPrev | Action::SortReverse | Action::SortBy(_) => {
            match action {
                Action::SortNext | Action::SortPrev => {
                    let step = |c: Column| {
                        if matches!(action, Action::SortNext) {
                            c.next()
                        } else {
                            c.prev()
                        }
                    };
                    // The brightness column is shown (and sorted by) only when a device has one;
                    // the power trend sorts as the power does, so s/S pass it by.
                    let bright = app.fleet.devices.values().any(|d| d.brightness().is_some());
                    let mut c = step(app.view.sort);
                    while (c == Column::Bright && !bright) || c == Column::Trend {
                        c = step(c);
                    }
                    app.view.sort = c;
                }
                Action::SortBy(col) => app.view.sort_by(col),
                _ => app.view.descending = !app.view.descending,
            }
            app.set_status(super::mouse::sort_status(app), now);
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
        Action::EraseStats => energy::ask_erase(app, now),
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
        Action::StartFirmware => return start_firmware(app, now),
        Action::ToggleProgress => {
            if app.firmware.is_some() {
                app.view.progress = !app.view.progress;
            } else {
                app.set_status("no firmware update yet (U starts one)", now);
            }
        }
        Action::CancelUpdate => {
            if let Some(b) = app.firmware.as_ref().filter(|b| b.running()) {
                let msg = super::firmware::cancel_message(b);
                app.set_status(msg, now);
                return vec![Command::CancelUpdate];
            }
            app.set_status("no firmware update running", now);
        }
        Action::PickerOpen | Action::PickerParent | Action::PickerChooseFolder => {
            return picker_action(app, action);
        }
        Action::ToggleForce => super::firmware::toggle_force(app, now),
        Action::AllowDowngrade => super::firmware::allow_downgrade(app, now),
        Action::CloseHelp | Action::Cancel => {
            if matches!(
                app.view.overlay,
                Overlay::Confirm(_)
                    | Overlay::FirmwareConfirm(_)
                    | Overlay::Picker(_)
                    | Overlay::Account(_)
            ) {
                app.set_status("cancelled", now);
            }
            app.view.overlay = Overlay::None;
        }
        Action::Confirm => match std::mem::take(&mut app.view.overlay) {
            Overlay::Confirm(c) => return perform(app, c.kind, &c.rows, now),
            Overlay::FirmwareConfirm(c) => {
                if c.downgrade_prompt {
                    // `y` never answers the downgrade question: only a second `D` does.
                    app.view.overlay = Overlay::FirmwareConfirm(c);
                    app.set_status(
                        "answer the downgrade question first: D allows the downgrade, \
                         n/Esc cancels",
                        now,
                    );
                    return Vec::new();
                }
                if app.settings.read_only {
                    app.set_status("read-only mode: writes are disabled", now);
                    return Vec::new();
                }
                let n = c.updating();
                if n == 0 {
                    app.set_status("nothing to update: every plug is blocked or skipped", now);
                    return Vec::new();
                }
                app.firmware = Some(Batch {
                    started: Some(now),
                    ..Batch::default()
                });
                app.view.progress = true;
                app.set_status(format!("firmware update of {n} plug(s) started"), now);
                return vec![Command::StartUpdate(c)];
            }
            other => app.view.overlay = other,
        },
    }
    Vec::new()
}

fn on_job(app: &mut App, ev: JobEvent, now: Instant) -> Vec<Command> {
    let batch = app.firmware.get_or_insert_with(Batch::default);
    match ev {
        JobEvent::BatchStarted { serving, .. } => batch.serving = serving,
        JobEvent::Transition { snapshot, .. } if snapshot.stage == Stage::Done => {
            // Verified: read it again at once so the table shows the new sw_ver.
            let ip = snapshot.ip;
            batch.upsert(snapshot, now);
            app.fleet.set_updating(ip, false, now);
            return app
                .fleet
                .devices
                .values()
                .filter(|d| d.addr.ip() == ip)
                .map(|d| Command::PollNow(vec![d.key.clone()]))
                .collect();
        }
        JobEvent::Transition { snapshot, .. } | JobEvent::Progress { snapshot } => {
            // From the flash request until verified the plug may not answer: "updating".
            let flashing = matches!(
                snapshot.stage,
                Stage::FlashRequested | Stage::Flashing | Stage::Rebooting | Stage::Verifying
            );
            let (ip, fin) = (snapshot.ip, snapshot.stage.is_final());
            batch.upsert(snapshot, now);
            if flashing || fin {
                app.fleet.set_updating(ip, flashing, now);
            }
        }
        JobEvent::CancelRefused { ip, reason } => {
            app.set_status(format!("{ip}: not cancelled: {reason}"), now);
        }
        JobEvent::BatchFinished { report } => {
            let msg = format!(
                "firmware update finished: {} updated, {} failed, {} skipped, {} cancelled",
                report.count(PlugResult::Updated),
                report.count(PlugResult::Failed),
                report.count(PlugResult::Skipped),
                report.count(PlugResult::Cancelled)
            );
            let keys = super::firmware::devices_in(app, &report);
            if let Some(batch) = &mut app.firmware {
                batch.finished = Some(report);
            }
            app.set_status(msg, now);
            // Read the plugs again at once: the table shows the new sw_ver without waiting.
            return vec![Command::PollNow(keys)];
        }
    }
    Vec::new()
}

fn move_selection(app: &mut App, delta: isize) {
    app.move_selection(delta);
}

mod account;
mod actions;
mod energy;
mod firmware;
mod fleet;
pub use fleet::newer_spec;
mod recording;
#[cfg(test)]
mod tests;
