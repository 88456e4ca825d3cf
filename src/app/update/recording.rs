//! Recording (the record key, `--record` at launch, the writer's reports) and the once-a-second
//! tick (metrics publishing, the log pane).

use std::time::Instant;

use crate::app::event::Command;
use crate::app::state::{App, Overlay};

/// Once a second: publish metrics when something changed, refresh an open log pane.
pub(super) fn on_tick(app: &mut App) -> Vec<Command> {
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

pub(super) fn start_recording(
    app: &mut App,
    path: std::path::PathBuf,
    format: crate::app::recording::RecordFormat,
    now: Instant,
) -> Vec<Command> {
    app.recording = crate::app::state::Recording {
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
pub(super) fn toggle_recording(app: &mut App, now: Instant) -> Vec<Command> {
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
        let f = crate::app::recording::RecordFormat::from_path(&p);
        (p, f)
    });
    start_recording(app, path, format, now)
}

pub(super) fn on_recording(app: &mut App, ev: crate::app::recording::RecordEvent, now: Instant) {
    use crate::app::recording::RecordEvent;
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
