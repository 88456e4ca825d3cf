//! The pure update function: `update(&mut App, Event, now) -> Vec<Command>`.

use std::collections::BTreeSet;
use std::time::Instant;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::event::{ActionKind, Command, Event, Sighting};
use super::keymap::{self, Action, Context};
use super::state::{App, Batch, Confirm, FirmwareConfirm, Overlay, Picker, RowId, RowRef};
use crate::firmware::job::Stage;
use crate::firmware::runner::{JobEvent, PlugResult};
use crate::net::poller::PollReport;

/// Applies one event to the state and says what the runtime should do.
pub fn update(app: &mut App, ev: Event, now: Instant) -> Vec<Command> {
    app.now = now;
    let cmds = match ev {
        Event::Key(k) => on_key(app, k, now),
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
    fix_selection(app);
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
        Action::SortNext | Action::SortPrev | Action::SortReverse => {
            match action {
                Action::SortNext => app.view.sort = app.view.sort.next(),
                Action::SortPrev => app.view.sort = app.view.sort.prev(),
                _ => app.view.descending = !app.view.descending,
            }
            let dir = if app.view.descending {
                "descending"
            } else {
                "ascending"
            };
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
                Overlay::Confirm(_) | Overlay::FirmwareConfirm(_) | Overlay::Picker(_)
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

fn start_firmware(app: &mut App, now: Instant) -> Vec<Command> {
    if app.firmware.as_ref().is_some_and(Batch::running) {
        app.set_status("a firmware update is already running (p shows it)", now);
        return Vec::new();
    }
    let keys: BTreeSet<String> = action_rows(app).into_iter().map(|r| r.key).collect();
    let asked = keys.len();
    let targets: Vec<String> = keys
        .into_iter()
        .filter(|k| {
            app.fleet
                .devices
                .get(k)
                .is_some_and(|d| d.is_online() && d.sysinfo.is_some())
        })
        .collect();
    if targets.is_empty() {
        app.set_status("nothing to update: select or mark online plugs", now);
        return Vec::new();
    }
    if targets.len() < asked {
        let left = asked - targets.len();
        app.set_status(
            format!(
                "{left} marked device(s) left out: offline, or newer-protocol (not updatable over port 9999)"
            ),
            now,
        );
    }
    let dir = app.settings.firmware_dir.clone();
    app.view.overlay = Overlay::Picker(Picker {
        dir: dir.clone(),
        items: Vec::new(),
        selected: 0,
        loading: true,
        error: None,
        targets,
    });
    vec![Command::ListDir(dir)]
}

fn picker_action(app: &mut App, action: Action) -> Vec<Command> {
    let Overlay::Picker(p) = &mut app.view.overlay else {
        return Vec::new();
    };
    if p.loading {
        return Vec::new();
    }
    let chosen = match action {
        Action::PickerParent => {
            let parent = p
                .dir
                .canonicalize()
                .ok()
                .and_then(|d| d.parent().map(|x| x.to_path_buf()))
                .unwrap_or_else(|| p.dir.join(".."));
            p.dir = parent.clone();
            p.loading = true;
            return vec![Command::ListDir(parent)];
        }
        Action::PickerChooseFolder => p.dir.clone(),
        _ => match p.items.get(p.selected) {
            Some(item) if item.is_dir => {
                let d = p.dir.join(&item.name);
                p.dir = d.clone();
                p.loading = true;
                return vec![Command::ListDir(d)];
            }
            Some(item) => p.dir.join(&item.name),
            None => return Vec::new(),
        },
    };
    p.loading = true;
    // Remembered for the session: the picker opens here next time.
    app.settings.firmware_dir = p.dir.clone();
    let targets = p.targets.clone();
    let mut plugs: Vec<_> = targets
        .iter()
        .filter_map(|k| app.fleet.devices.get(k))
        .filter_map(|d| d.sysinfo.clone().map(|s| (d.addr.ip(), s)))
        .collect();
    // The plan lists plugs in address order, as the table does by default.
    plugs.sort_by_key(|(ip, _)| *ip);
    vec![Command::PlanFirmware {
        path: chosen,
        plugs,
    }]
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
        lines.push(format!(
            "({skipped} marked rows skipped: offline or no relay)"
        ));
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
            let d = app.fleet.devices.get(&id.key)?;
            Some(Command::Act {
                key: id.key.clone(),
                addr: d.addr,
                child: id.child.clone(),
                kind,
            })
        })
        .collect();
    app.set_status(
        format!("{}: sent to {} device(s)…", kind.label(), cmds.len()),
        now,
    );
    cmds
}

/// A sighting goes to the fleet model, which decides identity; a new or moved device is
/// (re)tracked by the poller.
fn on_sighting(app: &mut App, s: Sighting, now: Instant) -> Vec<Command> {
    app.metrics_dirty = true;
    app.fleet
        .observe(s, &app.settings.names, now)
        .map(|t| Command::Track {
            key: t.key,
            addr: t.addr,
        })
        .into_iter()
        .collect()
}

/// Once a second: publish metrics when something changed, refresh an open log pane.
fn on_tick(app: &mut App) -> Vec<Command> {
    let mut cmds = Vec::new();
    if app.metrics_dirty && app.settings.metrics_url.is_some() {
        app.metrics_dirty = false;
        cmds.push(Command::PublishMetrics);
    }
    if matches!(app.view.overlay, Overlay::Log { .. }) {
        cmds.push(Command::ReadLog);
    }
    cmds
}

fn start_recording(
    app: &mut App,
    path: std::path::PathBuf,
    format: crate::record::RecordFormat,
    now: Instant,
) -> Vec<Command> {
    app.recording = super::state::Recording {
        path: Some(path.clone()),
        active: true,
        count: 0,
        error: None,
    };
    app.set_status(format!("recording readings to {}", path.display()), now);
    vec![Command::StartRecording { path, format }]
}

/// The record key: stop a running recording, else start one (`--record`'s file, else the
/// default file in the data directory).
fn toggle_recording(app: &mut App, now: Instant) -> Vec<Command> {
    if app.recording.active {
        app.recording.active = false;
        let path = app
            .recording
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        app.set_status(
            format!(
                "recording stopped: {} readings in {path}",
                app.recording.count
            ),
            now,
        );
        return vec![Command::StopRecording];
    }
    let (path, format) = app.settings.record.clone().unwrap_or_else(|| {
        let p = app.settings.record_default.clone();
        let f = crate::record::RecordFormat::from_path(&p);
        (p, f)
    });
    start_recording(app, path, format, now)
}

fn on_recording(app: &mut App, ev: crate::record::RecordEvent, now: Instant) {
    use crate::record::RecordEvent;
    match &ev {
        RecordEvent::Failed { path, error, .. } => {
            // Only the current recording's failure stops it (an older task may report late).
            if app.recording.active && app.recording.path.as_ref() == Some(path) {
                app.recording.active = false;
                app.recording.error = Some(error.clone());
            }
            app.set_status(ev.to_string(), now);
        }
        RecordEvent::Stopped { .. } => {
            if !app.recording.active {
                app.set_status(ev.to_string(), now);
            }
        }
    }
}

/// A poll report goes to the fleet model (liveness, readings judged); what it read is
/// recorded while recording, a jump is re-read at once.
fn on_polled(app: &mut App, r: PollReport, now: Instant) -> Vec<Command> {
    app.metrics_dirty = true;
    let key = r.key.clone();
    let applied = app.fleet.apply_poll(
        super::event::poll_of(r),
        &app.settings.ratings,
        &app.settings.names,
        now,
    );
    let mut cmds = Vec::new();
    if let Some(t) = applied.track {
        cmds.push(Command::Track {
            key: t.key,
            addr: t.addr,
        });
    }
    if applied.reread {
        // The engine saw a jump: read again at once to confirm or dismiss it.
        cmds.push(Command::PollNow(vec![key.clone()]));
    }
    if app.recording.active
        && let Some(d) = app.fleet.get(&key)
    {
        let unix_ms = super::export::unix_ms_at(app, now);
        let records = crate::record::rows_for(d, &applied.read, unix_ms);
        if !records.is_empty() {
            app.recording.count += records.len() as u64;
            cmds.push(Command::Record(records));
        }
    }
    cmds
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::app::fixture::{self, Plug, device_id, mixed_fleet};
    use crate::app::state::{Column, Health, OFFLINE_AFTER, Settings};
    use ratatui::crossterm::event::KeyEventState;

    fn key(app: &mut App, code: KeyCode, now: Instant) -> Vec<Command> {
        update(
            app,
            Event::Key(KeyEvent::new(code, KeyModifiers::NONE)),
            now,
        )
    }

    fn chars(app: &mut App, s: &str, now: Instant) -> Vec<Command> {
        s.chars()
            .flat_map(|c| key(app, KeyCode::Char(c), now))
            .collect()
    }

    fn fleet() -> (App, Instant) {
        mixed_fleet(Settings::default(), Instant::now())
    }

    fn visible_aliases(app: &App) -> Vec<String> {
        app.rows().iter().map(|r| r.alias().to_owned()).collect()
    }

    #[test]
    fn only_key_presses_act() {
        let (mut app, now) = fleet();
        let release = KeyEvent {
            code: KeyCode::Char('q'),
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Release,
            state: KeyEventState::NONE,
        };
        assert!(update(&mut app, Event::Key(release), now).is_empty());
        assert!(!app.quit);
        assert_eq!(key(&mut app, KeyCode::Char('q'), now), vec![Command::Quit]);
        assert!(app.quit);
    }

    #[test]
    fn a_sighting_tracks_the_device_and_identity_follows_the_device_id() {
        let now = Instant::now();
        let mut app = App::new(Settings::default(), now);
        let p = Plug::new(1, "a", "HS110(EU)", "4.0", "1.0.4");
        let cmds = update(&mut app, fixture::sighting(&p, "broadcast"), now);
        assert_eq!(
            cmds,
            vec![Command::Track {
                key: device_id(1),
                addr: fixture::addr(1)
            }]
        );
        // Seen again by a sweep at the same address: no new tracking, provenance added.
        assert!(update(&mut app, fixture::sighting(&p, "sweep"), now).is_empty());
        // Seen at a new address: same device, tracked at the new address.
        let Event::DeviceDiscovered(mut s) = fixture::sighting(&p, "host") else {
            unreachable!()
        };
        s.ip = fixture::ip(42);
        let cmds = update(&mut app, Event::DeviceDiscovered(s), now);
        assert_eq!(app.fleet.devices.len(), 1);
        let d = &app.fleet.devices[&device_id(1)];
        assert_eq!(d.previous_addr, Some(fixture::addr(1)));
        assert_eq!(d.found_by.len(), 3);
        assert!(matches!(&cmds[..], [Command::Track { addr, .. }] if *addr == fixture::addr(42)));
    }

    #[test]
    fn a_newer_protocol_sighting_merges_into_the_legacy_device_with_that_mac() {
        let now = Instant::now();
        let mut app = App::new(Settings::default(), now);
        update(&mut app, fixture::newer(3, "HS103(US)"), now);
        assert_eq!(
            app.fleet.devices.values().next().unwrap().health(),
            Health::Newer
        );
        let p = Plug::new(3, "both", "HS103(US)", "5.0", "1.1.3");
        update(&mut app, fixture::sighting(&p, "broadcast"), now);
        assert_eq!(app.fleet.devices.len(), 1);
        let d = &app.fleet.devices[&device_id(3)];
        assert!(d.tdp.is_some() && d.sysinfo.is_some());
        assert!(d.found_by.contains("udp20002") && d.found_by.contains("broadcast"));
        // And the other way round: a later TDP reply does not add a second row.
        update(&mut app, fixture::newer(3, "HS103(US)"), now);
        assert_eq!(app.fleet.devices.len(), 1);
    }

    #[test]
    fn misses_make_a_device_failing_then_offline_and_a_reply_brings_it_back() {
        let now = Instant::now();
        let mut app = App::new(Settings::default(), now);
        let p = Plug::new(1, "a", "HS110(EU)", "4.0", "1.0.4");
        update(&mut app, fixture::sighting(&p, "host"), now);
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Pending);
        update(&mut app, fixture::failed(&p, 1), now);
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Failing);
        update(&mut app, fixture::failed(&p, OFFLINE_AFTER), now);
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Offline);
        let r = fixture::reading(10.0, 230.0, 0.1, 1.0);
        update(&mut app, fixture::polled(&p, Some(r), vec![]), now);
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Ok);
    }

    #[test]
    fn readings_are_assessed_and_flag_counts_kept() {
        let (app, _) = fleet();
        let heater = &app.fleet.devices[&device_id(2)];
        assert_eq!(heater.health(), Health::Bogus);
        assert_eq!(heater.flagged(), 2);
        let desk = &app.fleet.devices[&device_id(3)];
        assert!(desk.meter.as_ref().unwrap().check.reasons[0].contains("unit-scale"));
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Ok);
        assert_eq!(app.summary().flagged, 3);
    }

    #[test]
    fn filter_narrows_and_escape_clears() {
        let (mut app, now) = fleet();
        chars(&mut app, "/hs110", now);
        assert!(app.view.editing_filter);
        key(&mut app, KeyCode::Enter, now);
        assert_eq!(
            visible_aliases(&app),
            ["kitchen", "garage heater", "office desk"]
        );
        // Typing q in the table now quits, not filters.
        key(&mut app, KeyCode::Esc, now);
        assert_eq!(app.rows().len(), 7);
        chars(&mut app, "/nas", now);
        key(&mut app, KeyCode::Enter, now);
        // An outlet match shows its strip, expanded or not.
        assert_eq!(visible_aliases(&app), ["rack strip"]);
    }

    #[test]
    fn flagged_only_and_marks() {
        let (mut app, now) = fleet();
        chars(&mut app, "f", now);
        assert_eq!(
            visible_aliases(&app),
            ["garage heater", "office desk", "rack strip"]
        );
        chars(&mut app, "a", now);
        assert_eq!(app.view.marked.len(), 3);
        chars(&mut app, "a", now);
        assert!(app.view.marked.is_empty());
        chars(&mut app, "f", now);
        chars(&mut app, " ", now);
        chars(&mut app, " ", now);
        assert_eq!(app.view.marked.len(), 2, "space marks and moves down");
        chars(&mut app, "u", now);
        assert!(app.view.marked.is_empty());
    }

    #[test]
    fn sorting_by_power_descending_puts_the_glitch_first() {
        let (mut app, now) = fleet();
        while app.view.sort != Column::Watts {
            chars(&mut app, "s", now);
        }
        chars(&mut app, "o", now);
        assert_eq!(visible_aliases(&app)[..2], ["office desk", "garage heater"]);
        chars(&mut app, "S", now);
        assert_eq!(app.view.sort, Column::Relay);
    }

    #[test]
    fn strips_expand_and_collapse() {
        let (mut app, now) = fleet();
        chars(&mut app, "jjjj", now);
        assert_eq!(app.selected().unwrap().alias(), "rack strip");
        key(&mut app, KeyCode::Right, now);
        assert_eq!(app.rows().len(), 10);
        chars(&mut app, "jj", now);
        assert_eq!(app.selected().unwrap().alias(), "nas");
        key(&mut app, KeyCode::Left, now);
        assert_eq!(app.rows().len(), 7);
        assert_eq!(app.selected().unwrap().alias(), "rack strip");
    }

    #[test]
    fn one_toggle_acts_at_once_several_ask_and_enter_never_confirms() {
        let (mut app, now) = fleet();
        let cmds = chars(&mut app, "t", now);
        assert!(matches!(
            &cmds[..],
            [Command::Act {
                kind: ActionKind::RelayOff,
                child: None,
                ..
            }]
        ));
        chars(&mut app, "  ", now);
        assert!(chars(&mut app, "t", now).is_empty());
        assert!(matches!(app.view.overlay, Overlay::Confirm(_)));
        assert!(key(&mut app, KeyCode::Enter, now).is_empty());
        assert!(matches!(app.view.overlay, Overlay::Confirm(_)));
        let cmds = chars(&mut app, "y", now);
        assert_eq!(cmds.len(), 2);
        assert_eq!(app.view.overlay, Overlay::None);
        // Cancelling sends nothing.
        chars(&mut app, "t", now);
        assert!(chars(&mut app, "n", now).is_empty());
        assert_eq!(app.view.overlay, Overlay::None);
    }

    #[test]
    fn a_strip_outlet_is_toggled_with_its_child_id() {
        let (mut app, now) = fleet();
        chars(&mut app, "jjjj", now);
        key(&mut app, KeyCode::Right, now);
        chars(&mut app, "j", now);
        let cmds = chars(&mut app, "t", now);
        let want = format!("{}00", device_id(5));
        assert!(
            matches!(&cmds[..], [Command::Act { child: Some(c), kind: ActionKind::RelayOff, .. }] if *c == want)
        );
    }

    #[test]
    fn reboot_always_asks() {
        let (mut app, now) = fleet();
        assert!(chars(&mut app, "R", now).is_empty());
        let Overlay::Confirm(c) = &app.view.overlay else {
            panic!("no dialog")
        };
        assert_eq!(c.kind, ActionKind::Reboot);
        let cmds = chars(&mut app, "y", now);
        assert!(matches!(
            &cmds[..],
            [Command::Act {
                kind: ActionKind::Reboot,
                ..
            }]
        ));
    }

    #[test]
    fn read_only_sends_no_write_and_says_so() {
        let settings = Settings {
            read_only: true,
            ..Settings::default()
        };
        let (mut app, now) = mixed_fleet(settings, Instant::now());
        assert!(chars(&mut app, "t", now).is_empty());
        assert!(app.status().unwrap().contains("read-only"));
        assert!(chars(&mut app, "R", now).is_empty());
        assert_eq!(app.view.overlay, Overlay::None);
        // Even a dialog opened some other way cannot produce a write.
        app.view.overlay = Overlay::Confirm(Confirm {
            kind: ActionKind::Reboot,
            rows: vec![RowId::device(&device_id(1))],
            lines: vec![],
        });
        assert!(chars(&mut app, "y", now).is_empty());
        // Refresh is a read: allowed.
        assert_eq!(chars(&mut app, "r", now), vec![Command::PollNow(vec![])]);
    }

    #[test]
    fn an_action_result_is_reported_and_a_success_polls_again() {
        let (mut app, now) = fleet();
        let later = now + Duration::from_secs(1);
        let cmds = update(
            &mut app,
            Event::ActionFinished {
                key: device_id(1),
                child: None,
                kind: ActionKind::RelayOff,
                result: Ok(()),
            },
            later,
        );
        assert_eq!(cmds, vec![Command::PollNow(vec![device_id(1)])]);
        assert!(app.status().unwrap().contains("kitchen"));
        update(
            &mut app,
            Event::ActionFinished {
                key: device_id(1),
                child: None,
                kind: ActionKind::Reboot,
                result: Err("timed out".into()),
            },
            later,
        );
        assert!(app.status().unwrap().contains("failed: timed out"));
        // Status messages expire.
        update(&mut app, Event::Tick, later + Duration::from_secs(60));
        assert!(app.status().is_none());
    }

    #[test]
    fn navigation_stays_in_bounds_and_the_selection_survives_a_filter() {
        let (mut app, now) = fleet();
        key(&mut app, KeyCode::End, now);
        key(&mut app, KeyCode::Down, now);
        assert_eq!(app.selected_index(&app.rows()), Some(6));
        key(&mut app, KeyCode::Home, now);
        key(&mut app, KeyCode::Up, now);
        assert_eq!(app.selected_index(&app.rows()), Some(0));
        chars(&mut app, "/desk", now);
        assert_eq!(app.selected().unwrap().alias(), "office desk");
        key(&mut app, KeyCode::Enter, now);
        key(&mut app, KeyCode::Enter, now);
        assert!(app.view.detail);
        key(&mut app, KeyCode::Esc, now);
        assert!(!app.view.detail);
    }

    #[test]
    fn another_device_at_a_tracked_address_is_not_mistaken_for_it() {
        let now = Instant::now();
        let mut app = App::new(Settings::default(), now);
        let a = Plug::new(1, "a", "HS110(EU)", "4.0", "1.0.4");
        update(&mut app, fixture::sighting(&a, "host"), now);
        let mut b = Plug::new(2, "b", "HS110(EU)", "4.0", "1.0.4");
        b.n = 2;
        let Event::Polled(mut rep) = fixture::polled(&b, None, vec![]) else {
            unreachable!()
        };
        rep.key = device_id(1);
        rep.addr = fixture::addr(1);
        let cmds = update(&mut app, Event::Polled(rep), now);
        assert_eq!(app.fleet.devices.len(), 2);
        assert_eq!(app.fleet.devices[&device_id(1)].health(), Health::Offline);
        assert!(matches!(&cmds[..], [Command::Track { key, .. }] if *key == device_id(2)));
    }
}
#[cfg(test)]
mod fw_tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::app::event::DirItem;
    use crate::app::fixture::{device_id, mixed_fleet};
    use crate::app::state::Settings;
    use crate::firmware::job::{JobSnapshot, Outcome, Stage};

    fn key(app: &mut App, c: KeyCode, now: Instant) -> Vec<Command> {
        update(app, Event::Key(KeyEvent::new(c, KeyModifiers::NONE)), now)
    }

    fn images() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/firmware")
    }

    /// The plan for the marked plugs, as the runtime would compute it.
    fn plan_for(cmd: &Command) -> Vec<crate::firmware::plan::PlanEntry> {
        let Command::PlanFirmware { path, plugs } = cmd else {
            panic!("not a plan command: {cmd:?}")
        };
        let imgs: Vec<_> = crate::firmware::image::load_path(path)
            .unwrap()
            .into_iter()
            .map(Arc::new)
            .collect();
        crate::firmware::plan::plan(plugs, &imgs)
    }

    fn snapshot(ip: std::net::IpAddr, stage: Stage, outcome: Option<Outcome>) -> JobSnapshot {
        JobSnapshot {
            ip,
            alias: "garage heater".into(),
            model: "HS110(US)".into(),
            from: "1.1.1 Build 170417 Rel.165206".into(),
            to: "1.2.3".into(),
            stage,
            ratio: Some(40),
            served_bytes: Some(40_000),
            image_len: 100_000,
            elapsed: Duration::from_secs(3),
            expected_remaining: Some(Duration::from_secs(70)),
            can_cancel: true,
            outcome,
            warnings: vec![],
        }
    }

    #[test]
    fn pick_a_folder_confirm_with_y_and_follow_the_batch() {
        let settings = Settings {
            firmware_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets"),
            ..Settings::default()
        };
        let (mut app, now) = mixed_fleet(settings, Instant::now());
        // The garage heater (HS110(US) hw 1.0) is the second row.
        key(&mut app, KeyCode::Char('j'), now);
        let cmds = update(
            &mut app,
            Event::Key(KeyEvent::new(KeyCode::Char('U'), KeyModifiers::SHIFT)),
            now,
        );
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets");
        assert_eq!(cmds, vec![Command::ListDir(dir.clone())]);
        update(
            &mut app,
            Event::DirListed {
                dir: dir.clone(),
                result: Ok(vec![DirItem {
                    name: "firmware".into(),
                    is_dir: true,
                    size: 0,
                }]),
            },
            now,
        );
        assert_eq!(
            key(&mut app, KeyCode::Enter, now),
            vec![Command::ListDir(images())]
        );
        update(
            &mut app,
            Event::DirListed {
                dir: images(),
                result: Ok(vec![]),
            },
            now,
        );
        let cmds = key(&mut app, KeyCode::Char('.'), now);
        let entries = plan_for(&cmds[0]);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].plug.ip, crate::app::fixture::ip(2));
        update(&mut app, Event::FirmwarePlanned(Ok(entries)), now);
        let Overlay::FirmwareConfirm(c) = &app.view.overlay else {
            panic!("no confirm dialog")
        };
        assert_eq!(c.updating(), 1);
        // Enter never confirms; y does.
        assert!(key(&mut app, KeyCode::Enter, now).is_empty());
        let cmds = key(&mut app, KeyCode::Char('y'), now);
        assert!(matches!(&cmds[..], [Command::StartUpdate(_)]));
        assert!(app.view.progress);
        let ip = crate::app::fixture::ip(2);
        update(
            &mut app,
            Event::Job(Box::new(JobEvent::Progress {
                snapshot: snapshot(ip, Stage::Downloading, None),
            })),
            now,
        );
        assert_eq!(app.firmware.as_ref().unwrap().rows.len(), 1);
        assert_eq!(
            key(&mut app, KeyCode::Char('x'), now),
            vec![Command::CancelUpdate]
        );
        update(
            &mut app,
            Event::Job(Box::new(JobEvent::Transition {
                from: Stage::Downloading,
                note: None,
                snapshot: snapshot(ip, Stage::Done, Some(Outcome::Updated)),
            })),
            now,
        );
        let b = app.firmware.as_ref().unwrap();
        assert_eq!(b.rows.len(), 1);
        assert_eq!(b.rows[0].0.stage, Stage::Done);
        let _ = device_id(2);
    }

    #[test]
    fn read_only_never_starts_a_firmware_update() {
        let settings = Settings {
            read_only: true,
            ..Settings::default()
        };
        let (mut app, now) = mixed_fleet(settings, Instant::now());
        let cmds = update(
            &mut app,
            Event::Key(KeyEvent::new(KeyCode::Char('U'), KeyModifiers::SHIFT)),
            now,
        );
        assert!(cmds.is_empty());
        assert_eq!(app.view.overlay, Overlay::None);
        // A plan dialog reached some other way still cannot start a batch.
        app.view.overlay = Overlay::FirmwareConfirm(FirmwareConfirm::new(images(), vec![]));
        assert!(key(&mut app, KeyCode::Char('y'), now).is_empty());
    }

    #[test]
    fn a_blocked_plan_starts_nothing() {
        let (mut app, now) = mixed_fleet(Settings::default(), Instant::now());
        // The kitchen plug is an HS110(EU) hw 4.0; the HS300 image cannot match it.
        let plugs = vec![(
            crate::app::fixture::ip(1),
            app.fleet.devices[&device_id(1)].sysinfo.clone().unwrap(),
        )];
        let entries = plan_for(&Command::PlanFirmware {
            path: images().join("hs300v2_us_1.0.13_Build_230517_Rel.140855.bin"),
            plugs,
        });
        assert!(entries[0].verdict().is_blocked());
        app.view.overlay = Overlay::FirmwareConfirm(FirmwareConfirm::new(images(), entries));
        assert!(key(&mut app, KeyCode::Char('y'), now).is_empty());
        assert!(app.firmware.is_none());
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;
    use crate::app::fixture::{self, Plug, device_id};
    use crate::app::state::Settings;

    #[test]
    fn a_local_name_follows_the_mac_across_an_address_change() {
        let settings = Settings {
            names: crate::fleet::identity::Names::from_pairs([(
                "50-c7-bf-00-00-01",
                "Kitchen kettle",
            )]),
            ..Settings::default()
        };
        let now = Instant::now();
        let mut app = App::new(settings, now);
        let p = Plug::new(1, "HS110 alias", "HS110(EU)", "4.0", "1.0.4");
        update(&mut app, fixture::sighting(&p, "broadcast"), now);
        assert_eq!(app.fleet.devices[&device_id(1)].alias(), "Kitchen kettle");
        let Event::DeviceDiscovered(mut s) = fixture::sighting(&p, "sweep") else {
            unreachable!()
        };
        s.ip = fixture::ip(99);
        update(&mut app, Event::DeviceDiscovered(s), now);
        assert_eq!(app.fleet.devices.len(), 1);
        assert_eq!(app.fleet.devices[&device_id(1)].alias(), "Kitchen kettle");
    }
}

#[cfg(test)]
mod export_tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::app::fixture::{self, Plug, device_id, reading};
    use crate::app::state::{Settings, Verdict};
    use crate::record::{ReadingRecord, RecordEvent, RecordFormat};

    const EPOCH: u64 = 1_795_621_649_000;

    fn press(app: &mut App, code: KeyCode, now: Instant) -> Vec<Command> {
        update(
            app,
            Event::Key(KeyEvent::new(code, KeyModifiers::NONE)),
            now,
        )
    }

    fn records(cmds: &[Command]) -> Vec<ReadingRecord> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Record(r) => Some(r.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn kettle() -> Plug {
        Plug::new(1, "kettle", "HS110(US)", "1.0", "1.2.6")
    }

    fn strip() -> Plug {
        let mut s = Plug::new(2, "strip", "HS300(US)", "2.0", "1.0.12");
        s.outlets = vec![("lamp", true), ("radio", true)];
        s
    }

    /// Two devices found; the kettle has a local name.
    fn found(settings: Settings) -> (App, Instant) {
        let t0 = Instant::now();
        let settings = Settings {
            names: crate::fleet::identity::Names::from_pairs([("50:C7:BF:00:00:01", "Kettle")]),
            epoch_unix_ms: EPOCH,
            record_default: PathBuf::from("/data/plugfleet/readings-2026-11-25.jsonl"),
            ..settings
        };
        let mut app = App::new(settings, t0);
        update(&mut app, fixture::sighting(&kettle(), "broadcast"), t0);
        update(&mut app, fixture::sighting(&strip(), "broadcast"), t0);
        (app, t0)
    }

    #[test]
    fn judged_readings_become_record_commands_only_while_recording() {
        let (mut app, t0) = found(Settings::default());
        let now = t0 + Duration::from_millis(1500);
        let bogus = fixture::polled(&kettle(), Some(reading(28_000.0, 120.0, 0.2, 1.0)), vec![]);
        assert!(records(&update(&mut app, bogus.clone(), now)).is_empty());

        let cmds = press(&mut app, KeyCode::Char('w'), now);
        assert_eq!(
            cmds,
            vec![Command::StartRecording {
                path: PathBuf::from("/data/plugfleet/readings-2026-11-25.jsonl"),
                format: RecordFormat::JsonLines,
            }]
        );
        assert!(app.recording.active);
        assert!(
            app.status()
                .is_some_and(|s| s.contains("readings-2026-11-25"))
        );

        let recs = records(&update(&mut app, bogus.clone(), now));
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(r.verdict, Verdict::Bogus);
        assert!(!r.reasons.is_empty());
        assert_eq!(r.power_w, Some(28_000.0));
        assert_eq!(r.name.as_deref(), Some("Kettle"));
        assert_eq!(r.alias, "kettle");
        assert_eq!(r.ip, fixture::ip(1).to_string());
        assert_eq!(r.unix_ms, EPOCH + 1500, "stamped from the time passed in");
        assert_eq!(r.outlet_id, None);

        // A strip: its own row (sum and judgement, no outlet id), then one record per outlet
        // read, with the outlet's id and alias.
        let polled = fixture::polled(
            &strip(),
            None,
            vec![
                reading(10.0, 120.0, 0.09, 1.0),
                reading(20.0, 120.0, 0.17, 2.0),
            ],
        );
        let recs = records(&update(&mut app, polled, now));
        assert_eq!(recs.len(), 3);
        assert_eq!(
            (recs[0].outlet_id.clone(), recs[0].power_w),
            (None, Some(30.0))
        );
        assert_eq!(recs[2].outlet_alias.as_deref(), Some("radio"));
        assert_eq!(recs[2].power_w, Some(20.0));
        assert!(recs.iter().all(|r| r.verdict == Verdict::Ok));
        assert_eq!(app.recording.count, 4);

        // A failed poll records nothing.
        assert!(records(&update(&mut app, fixture::failed(&kettle(), 1), now)).is_empty());

        assert_eq!(
            press(&mut app, KeyCode::Char('w'), now),
            vec![Command::StopRecording]
        );
        assert!(!app.recording.active);
        assert!(records(&update(&mut app, bogus, now)).is_empty());
    }

    #[test]
    fn record_flag_starts_at_launch_and_a_write_error_stops_with_the_reason() {
        let (mut app, now) = found(Settings::default());
        assert!(update(&mut app, Event::Launched, now).is_empty());

        let path = PathBuf::from("/tmp/day.csv");
        let (mut app, now) = found(Settings {
            record: Some((path.clone(), RecordFormat::Csv)),
            ..Settings::default()
        });
        assert_eq!(
            update(&mut app, Event::Launched, now),
            vec![Command::StartRecording {
                path: path.clone(),
                format: RecordFormat::Csv,
            }]
        );
        // A late failure of some other file does not stop this recording.
        update(
            &mut app,
            Event::Recording(RecordEvent::Failed {
                path: "/tmp/old.jsonl".into(),
                error: "old".into(),
                written: 0,
                dropped: 0,
            }),
            now,
        );
        assert!(app.recording.active);
        update(
            &mut app,
            Event::Recording(RecordEvent::Failed {
                path: path.clone(),
                error: "cannot write record file /tmp/day.csv: No space left on device".into(),
                written: 4,
                dropped: 0,
            }),
            now,
        );
        assert!(!app.recording.active);
        assert!(
            app.recording
                .error
                .as_deref()
                .is_some_and(|e| e.contains("No space left"))
        );
        assert!(app.status().is_some_and(|s| s.contains("No space left")));
        assert!(!app.quit, "the app keeps running");
        let p = fixture::polled(&kettle(), Some(reading(100.0, 120.0, 0.9, 1.0)), vec![]);
        assert!(records(&update(&mut app, p, now)).is_empty());
        // The key starts again, on the --record file.
        let cmds = press(&mut app, KeyCode::Char('w'), now);
        assert!(matches!(&cmds[..], [Command::StartRecording { path: p, .. }] if *p == path));
        assert_eq!(app.recording.error, None);
    }

    #[test]
    fn the_log_key_opens_a_pane_refreshed_on_ticks() {
        let (mut app, now) = found(Settings::default());
        assert!(!update(&mut app, Event::Tick, now).contains(&Command::ReadLog));
        assert_eq!(
            press(&mut app, KeyCode::Char('L'), now),
            vec![Command::ReadLog]
        );
        assert_eq!(app.view.overlay, Overlay::Log { scroll: 0 });
        let lines: Vec<String> = (0..5).map(|i| format!("line {i}")).collect();
        update(&mut app, Event::LogLines(lines), now);
        assert_eq!(app.log_lines.len(), 5);
        assert!(update(&mut app, Event::Tick, now).contains(&Command::ReadLog));
        // Table keys do not act under the pane; scrolling stays within the lines.
        assert!(press(&mut app, KeyCode::Char('w'), now).is_empty());
        assert!(!app.recording.active);
        press(&mut app, KeyCode::Char('k'), now);
        assert_eq!(app.view.overlay, Overlay::Log { scroll: 1 });
        press(&mut app, KeyCode::Char('g'), now);
        assert_eq!(app.view.overlay, Overlay::Log { scroll: 4 });
        press(&mut app, KeyCode::Up, now);
        assert_eq!(app.view.overlay, Overlay::Log { scroll: 4 });
        press(&mut app, KeyCode::Char('G'), now);
        assert_eq!(app.view.overlay, Overlay::Log { scroll: 0 });
        press(&mut app, KeyCode::Esc, now);
        assert_eq!(app.view.overlay, Overlay::None);
        assert!(!update(&mut app, Event::Tick, now).contains(&Command::ReadLog));
        press(&mut app, KeyCode::Char('L'), now);
        press(&mut app, KeyCode::Char('L'), now);
        assert_eq!(app.view.overlay, Overlay::None, "L closes it again");
    }

    #[test]
    fn metrics_are_published_on_a_tick_after_a_change_only() {
        let (mut app, now) = found(Settings::default());
        let p = fixture::polled(&kettle(), Some(reading(28_000.0, 120.0, 0.2, 1.0)), vec![]);
        update(&mut app, p.clone(), now);
        assert!(
            !update(&mut app, Event::Tick, now).contains(&Command::PublishMetrics),
            "no --metrics, nothing published"
        );
        let (mut app, now) = found(Settings {
            metrics_url: Some("http://127.0.0.1:9/metrics".into()),
            ..Settings::default()
        });
        update(&mut app, p.clone(), now);
        assert_eq!(
            update(&mut app, Event::Tick, now),
            vec![Command::PublishMetrics]
        );
        assert!(
            update(&mut app, Event::Tick, now).is_empty(),
            "nothing changed"
        );
        update(&mut app, p, now);
        assert_eq!(
            update(&mut app, Event::Tick, now),
            vec![Command::PublishMetrics]
        );

        // What the metrics view is built from: the model's judgement and counts.
        let k = app.fleet.get(&device_id(1)).expect("kettle");
        assert_eq!(k.local_name.as_deref(), Some("Kettle"));
        assert!(k.is_online());
        assert_eq!(k.judged.as_ref().map(|a| a.verdict), Some(Verdict::Bogus));
        let m = k.meter.as_ref().expect("meter");
        assert_eq!(m.values().and_then(|r| r.power_w), Some(28_000.0));
        assert_eq!(m.counts().bogus, 2);
        let s = app.fleet.get(&device_id(2)).expect("strip");
        assert_eq!(s.outlets.len(), 2);
        assert!(
            s.outlets
                .iter()
                .all(|o| o.meter.as_ref().is_none_or(|m| m.current().is_none())),
            "not read yet"
        );
        assert_eq!(s.judged, None);
        assert_eq!(
            app.fleet.devices[&device_id(1)]
                .meter
                .as_ref()
                .map(|m| m.readings()),
            Some(2)
        );
    }
}
