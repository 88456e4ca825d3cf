//! Starting a firmware update from the TUI: the targets, the file picker, the plan request.

use std::collections::BTreeSet;
use std::time::Instant;

use super::actions::action_rows;
use crate::app::event::Command;
use crate::app::keymap::Action;
use crate::app::state::{App, Batch, Overlay, Picker};

pub(super) fn start_firmware(app: &mut App, now: Instant) -> Vec<Command> {
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
                .is_some_and(|d| d.is_online() && d.sysinfo.is_some() && d.access.is_none())
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
                "{left} marked device(s) left out: offline, or newer-protocol (not updatable locally: cloud-only firmware on this protocol)"
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

pub(super) fn picker_action(app: &mut App, action: Action) -> Vec<Command> {
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
        // Never a newer-protocol plug: local images are for port 9999 only.
        .filter(|d| d.access.is_none())
        .filter_map(|d| d.sysinfo.clone().map(|s| (d.addr.ip(), s)))
        .collect();
    // The plan lists plugs in address order, as the table does by default.
    plugs.sort_by_key(|(ip, _)| *ip);
    vec![Command::PlanFirmware {
        path: chosen,
        plugs,
    }]
}
