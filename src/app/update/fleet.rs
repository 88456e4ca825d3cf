//! Discovery sightings and poll reports go to the fleet model, the one place that decides
//! identity and judges readings; what it read is recorded while recording.

use std::time::Instant;

use crate::app::event::{Command, Sighting};
use crate::app::state::App;
use crate::net::poller::PollReport;

/// A sighting goes to the fleet model, which decides identity; a new or moved device is
/// (re)tracked by the poller.
pub(super) fn on_sighting(app: &mut App, s: Sighting, now: Instant) -> Vec<Command> {
    app.metrics_dirty = true;
    app.fleet
        .observe(s, &app.settings.names, now)
        .map(|t| track(app, t))
        .into_iter()
        .collect()
}

/// How to reach device `key` over its newer transport (with the configured account), if it is
/// read that way.
pub fn newer_spec(app: &App, key: &str) -> Option<crate::net::newer::NewerSpec> {
    let d = app.fleet.get(key)?;
    Some(crate::net::newer::NewerSpec {
        access: d.access?,
        model: d.tdp.as_ref()?.model.clone(),
        account: app.settings.account.clone(),
    })
}

/// The command that (re)tracks a device: over its newer transport (with the account) when
/// it speaks only that, else on port 9999.
fn track(app: &App, t: crate::fleet::model::Track) -> Command {
    match newer_spec(app, &t.key) {
        Some(spec) => Command::TrackNewer {
            key: t.key,
            addr: t.addr,
            spec: Box::new(spec),
        },
        None => Command::Track {
            key: t.key,
            addr: t.addr,
        },
    }
}

/// A poll report goes to the fleet model (liveness, readings judged); what it read is
/// recorded while recording, a jump is re-read at once. Also says whether the polled device is
/// the only one that can have changed (not when another device answered at its address, the
/// fleet grew or shrank, or the round's voltage comparison ran over every device).
pub(super) fn on_polled(app: &mut App, r: PollReport, now: Instant) -> (Vec<Command>, bool) {
    app.metrics_dirty = true;
    let key = r.key.clone();
    let devices = app.fleet.len();
    let applied = app.fleet.apply_poll(
        crate::app::event::poll_of(r),
        &app.settings.ratings,
        &app.settings.names,
        now,
    );
    // Voltage against the fleet, once per poll round.
    let voltages = app.fleet.voltages_at;
    app.fleet.judge_voltages_due(now, app.settings.interval);
    let alone = !applied.others
        && applied.track.is_none()
        && app.fleet.len() == devices
        && app.fleet.voltages_at == voltages;
    let mut cmds = Vec::new();
    if let Some(t) = applied.track {
        cmds.push(track(app, t));
    }
    if applied.reread {
        // The engine saw a jump: read again at once to confirm or dismiss it.
        cmds.push(Command::PollNow(vec![key.clone()]));
    }
    if app.recording.active && !applied.read.is_empty() {
        app.recording.count += applied.read.len() as u64;
        cmds.push(Command::Record {
            key,
            read: applied.read,
            unix_ms: crate::app::export::unix_ms_at(app, now),
        });
    }
    (cmds, alone)
}
