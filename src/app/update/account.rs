//! The credentials prompt's logic (`c`): the account typed in is kept in the settings for this
//! session only, and every newer-protocol device is re-tracked with it.

use std::time::Instant;

use crate::app::account::{AccountPrompt, Field};
use crate::app::event::Command;
use crate::app::state::{App, Overlay};

/// `c`: opens the prompt (on any row, or none).
pub(super) fn open(app: &mut App) {
    app.view.editing_filter = false;
    app.view.overlay = Overlay::Account(AccountPrompt::new());
}

/// A printable key typed while the prompt is open.
pub(super) fn type_char(app: &mut App, c: char) {
    if let Overlay::Account(p) = &mut app.view.overlay {
        p.error = None;
        p.push(c);
    }
}

pub(super) fn backspace(app: &mut App) {
    if let Overlay::Account(p) = &mut app.view.overlay {
        p.error = None;
        p.backspace();
    }
}

/// Enter: from the user name on to the password; on the password the account is taken for
/// this session and every newer-protocol device is re-tracked with it (read at once).
pub(super) fn enter(app: &mut App, now: Instant) -> Vec<Command> {
    let Overlay::Account(p) = &mut app.view.overlay else {
        return Vec::new();
    };
    match p.field {
        Field::Username => {
            if p.username.trim().is_empty() {
                p.error = Some("the account's e-mail is needed (Esc cancels)");
            } else {
                p.error = None;
                p.field = Field::Password;
            }
            Vec::new()
        }
        Field::Password => {
            let Overlay::Account(p) = std::mem::take(&mut app.view.overlay) else {
                return Vec::new();
            };
            app.settings.account = Some(p.into_credentials());
            let cmds = retrack_newer(app);
            let msg = match cmds.len() {
                0 => "account set for this session (no newer-protocol plug seen yet)".to_owned(),
                1 => "account set for this session: reading 1 newer-protocol plug".to_owned(),
                n => format!("account set for this session: reading {n} newer-protocol plugs"),
            };
            app.set_status(msg, now);
            cmds
        }
    }
}

/// The commands that track every newer-protocol device again, with the account now in the
/// settings (the poller drops a session made with other credentials and reads it at once).
pub(super) fn retrack_newer(app: &App) -> Vec<Command> {
    app.fleet
        .devices
        .values()
        .filter_map(|d| {
            let spec = super::fleet::newer_spec(app, &d.key)?;
            Some(Command::TrackNewer {
                key: d.key.clone(),
                addr: d.addr,
                spec: Box::new(spec),
            })
        })
        .collect()
}
