//! Leaving the TUI while a firmware batch runs: every way out (`q`, Ctrl-C, SIGTERM, SIGHUP,
//! SIGQUIT) ends like `plugfleet update` ends on a signal. Nothing new starts, plugs not flashing
//! yet are cancelled, plugs already flashing stay on screen until they are verified and their
//! relays restored, and then the app quits with exit status
//! [`EXIT_INTERRUPTED`](crate::firmware::exits::EXIT_INTERRUPTED).
//!
//! A key asks first ("3 plugs flashing: quitting now still verifies them; q again to quit"); a
//! signal does not (nobody may be there to answer). While draining, another way out says what
//! is still flashing; the [`FORCE_AFTER`](crate::firmware::exits::FORCE_AFTER)th quits at once
//! with [`EXIT_ABANDONED`], leaving those plugs unverified. Without a running batch, `q` quits
//! at once, as before.

use std::time::Instant;

use super::event::Command;
use super::state::App;
use crate::firmware::exits::{DrainStep, EXIT_ABANDONED, EXIT_INTERRUPTED};
use crate::firmware::runner::PlugResult;

pub use super::leaving::{Leaving, Stage};

/// Plugs of the running batch whose flash was requested and that are not finished, and plugs
/// not flashing yet (cancellable), as `(flashing, not yet)`.
fn counts(app: &App) -> Option<(Vec<String>, usize)> {
    let batch = app.firmware.as_ref().filter(|b| b.running())?;
    let mut flashing = Vec::new();
    let mut waiting = 0;
    for (s, _) in &batch.rows {
        if s.stage.is_final() {
            continue;
        }
        if s.can_cancel {
            waiting += 1;
        } else {
            flashing.push(format!("{} ({})", s.ip, s.stage));
        }
    }
    Some((flashing, waiting))
}

/// True while a firmware batch runs (quitting then drains it).
pub fn batch_running(app: &App) -> bool {
    counts(app).is_some()
}

fn quit_now(app: &mut App, exit: u8) -> Vec<Command> {
    app.leaving.exit = exit;
    app.quit = true;
    vec![Command::Quit]
}

/// The question a first quit key asks during a batch.
pub fn ask_message(flashing: &[String], waiting: usize) -> String {
    let cancel = if waiting > 0 {
        format!(" and cancels {waiting} not flashing yet")
    } else {
        String::new()
    };
    if flashing.is_empty() {
        format!(
            "firmware update running: quitting now cancels {waiting} plug(s) not flashing yet; \
             q again to quit"
        )
    } else {
        format!(
            "{} plug(s) flashing: quitting now still verifies them{cancel}; q again to quit",
            flashing.len()
        )
    }
}

fn draining_message(flashing: &[String], left: u32) -> String {
    if flashing.is_empty() {
        return "quitting: cancelling the plugs not flashing yet".to_owned();
    }
    format!(
        "quitting after {} plug(s) are verified and their relays restored: {}; q {left} more \
         time(s) to quit without verifying them",
        flashing.len(),
        flashing.join(", ")
    )
}

fn abandon_message(app: &App, flashing: &[String]) -> String {
    let hosts: Vec<String> = app
        .firmware
        .iter()
        .flat_map(|b| &b.rows)
        .filter(|(s, _)| !s.can_cancel && !s.stage.is_final())
        .map(|(s, _)| format!("--host {}", s.ip))
        .collect();
    format!(
        "quit with {} plug(s) still mid-update: {}; they finish flashing by themselves but were \
         NOT verified and their relays NOT restored; check them with `plugfleet status {}`",
        flashing.len(),
        flashing.join(", "),
        hosts.join(" ")
    )
}

/// One more way out while draining, or the first one of a signal.
fn drain_step(app: &mut App, now: Instant) -> Vec<Command> {
    let (flashing, _) = counts(app).unwrap_or_default();
    match app.leaving.drain.on_exit_request() {
        DrainStep::Cancel => {
            app.leaving.stage = Stage::Draining;
            // The progress stays visible until the flashing plugs are done.
            app.view.progress = true;
            let left = crate::firmware::exits::FORCE_AFTER - 1;
            app.set_status(draining_message(&flashing, left), now);
            vec![Command::CancelUpdate]
        }
        DrainStep::KeepWaiting { left } => {
            app.set_status(draining_message(&flashing, left), now);
            Vec::new()
        }
        DrainStep::Abandon => {
            if flashing.is_empty() {
                return quit_now(app, EXIT_INTERRUPTED);
            }
            app.leaving.farewell = Some(abandon_message(app, &flashing));
            quit_now(app, EXIT_ABANDONED)
        }
    }
}

/// `q` or Ctrl-C.
pub fn on_quit_key(app: &mut App, now: Instant) -> Vec<Command> {
    let Some((flashing, waiting)) = counts(app) else {
        let exit = app.leaving.exit;
        return quit_now(app, exit);
    };
    match app.leaving.stage {
        Stage::Asked(at) if now.saturating_duration_since(at) <= app.settings.status_ttl => {
            drain_step(app, now)
        }
        Stage::Staying | Stage::Asked(_) => {
            app.leaving.stage = Stage::Asked(now);
            app.set_status(ask_message(&flashing, waiting), now);
            Vec::new()
        }
        Stage::Draining => drain_step(app, now),
    }
}

/// SIGINT, SIGTERM, SIGHUP or SIGQUIT (or the terminal's input failing, `reason`): no question
/// during a batch, straight to the drain.
pub fn on_signal(app: &mut App, reason: Option<String>, now: Instant) -> Vec<Command> {
    if counts(app).is_none() {
        if let Some(r) = reason {
            app.set_status(r, now);
        }
        let exit = app.leaving.exit;
        return quit_now(app, exit);
    }
    if let Some(r) = &reason {
        // A terminal that is gone keeps failing: that is one way out, not one per failed read.
        if app.leaving.stage == Stage::Draining {
            return Vec::new();
        }
        app.set_status(r.clone(), now);
    }
    drain_step(app, now)
}

/// After every firmware event: quits once the batch being drained finished.
pub fn after_job(app: &mut App) -> Vec<Command> {
    if app.leaving.stage == Stage::Draining && counts(app).is_none() && !app.quit {
        if let Some(r) = app.firmware.as_ref().and_then(|b| b.finished.as_ref()) {
            app.leaving.farewell = Some(format!(
                "firmware update interrupted: {} updated and verified, {} failed, {} cancelled or \
                 not started",
                r.count(PlugResult::Updated),
                r.count(PlugResult::Failed),
                r.count(PlugResult::Cancelled) + r.count(PlugResult::Skipped)
            ));
        }
        return quit_now(app, EXIT_INTERRUPTED);
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::app::event::Event;
    use crate::app::state::{Batch, Settings};
    use crate::app::update;
    use crate::firmware::job::{JobSnapshot, Stage as JobStage};
    use crate::firmware::runner::{BatchReport, JobEvent};

    fn snap(last: u8, stage: JobStage) -> JobSnapshot {
        JobSnapshot {
            ip: IpAddr::from([127, 0, 0, last]),
            alias: format!("plug {last}"),
            model: "HS110(US)".into(),
            from: "1.2.6".into(),
            to: "1.2.9".into(),
            stage,
            ratio: None,
            served_bytes: None,
            image_len: 1000,
            elapsed: Duration::ZERO,
            expected_remaining: None,
            can_cancel: matches!(
                stage,
                JobStage::Preflight
                    | JobStage::DownloadRequested
                    | JobStage::Downloading
                    | JobStage::Downloaded
            ),
            outcome: None,
            warnings: Vec::new(),
        }
    }

    /// An app with a running batch: three plugs past their flash, one downloading, one done.
    fn app_in_batch(now: Instant) -> App {
        let mut app = App::new(Settings::default(), now);
        let mut b = Batch::default();
        for (i, st) in [
            JobStage::Flashing,
            JobStage::Rebooting,
            JobStage::Verifying,
            JobStage::Downloading,
            JobStage::Done,
        ]
        .into_iter()
        .enumerate()
        {
            b.upsert(snap(5 + i as u8, st), now);
        }
        app.firmware = Some(b);
        app
    }

    fn q(app: &mut App, now: Instant) -> Vec<Command> {
        update(
            app,
            Event::Key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE)),
            now,
        )
    }

    fn status(app: &App) -> String {
        app.view
            .status
            .as_ref()
            .map(|(s, _)| s.clone())
            .unwrap_or_default()
    }

    fn finish(app: &mut App, now: Instant) -> Vec<Command> {
        let report = BatchReport {
            plugs: Vec::new(),
            elapsed: Duration::ZERO,
        };
        update(
            app,
            Event::Job(Box::new(JobEvent::BatchFinished { report })),
            now,
        )
    }

    #[test]
    fn without_a_batch_q_quits_at_once_with_status_0() {
        let now = Instant::now();
        let mut app = App::new(Settings::default(), now);
        assert_eq!(q(&mut app, now), vec![Command::Quit]);
        assert!(app.quit);
        assert_eq!(app.leaving.exit_status(), 0);
        // A finished batch is no reason to wait either.
        let mut app = app_in_batch(now);
        finish(&mut app, now);
        assert_eq!(q(&mut app, now), vec![Command::Quit]);
    }

    #[test]
    fn during_a_batch_q_asks_then_drains_and_quits_interrupted_when_the_batch_ends() {
        let t0 = Instant::now();
        let mut app = app_in_batch(t0);
        assert!(q(&mut app, t0).is_empty(), "the first q only asks");
        assert!(!app.quit);
        assert_eq!(
            status(&app),
            "3 plug(s) flashing: quitting now still verifies them and cancels 1 not flashing \
             yet; q again to quit"
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(q(&mut app, t1), vec![Command::CancelUpdate]);
        assert!(
            !app.quit,
            "the app stays until the flashing plugs are verified"
        );
        assert!(app.view.progress, "with the progress visible");
        assert_eq!(app.leaving.stage, Stage::Draining);
        let s = status(&app);
        assert!(
            s.contains("127.0.0.5 (flashing), 127.0.0.6 (rebooting), 127.0.0.7 (verifying)"),
            "{s}"
        );
        assert!(s.contains("q 2 more time(s)"), "{s}");
        // Progress keeps arriving; nothing quits yet.
        let ev = JobEvent::Transition {
            from: JobStage::Verifying,
            note: None,
            snapshot: snap(7, JobStage::Restoring),
        };
        assert!(update(&mut app, Event::Job(Box::new(ev)), t1).is_empty());
        assert!(!app.quit);
        assert_eq!(
            finish(&mut app, t1 + Duration::from_secs(9)).last(),
            Some(&Command::Quit)
        );
        assert!(app.quit);
        assert_eq!(app.leaving.exit_status(), EXIT_INTERRUPTED);
        assert_eq!(
            app.leaving.farewell(),
            Some(
                "firmware update interrupted: 0 updated and verified, 0 failed, 0 cancelled or not started"
            )
        );
    }

    #[test]
    fn a_late_second_q_asks_again_instead_of_quitting() {
        let t0 = Instant::now();
        let mut app = app_in_batch(t0);
        q(&mut app, t0);
        let late = t0 + app.settings.status_ttl + Duration::from_secs(1);
        assert!(q(&mut app, late).is_empty());
        assert_eq!(app.leaving.stage, Stage::Asked(late));
    }

    #[test]
    fn more_quits_while_draining_say_what_is_flashing_and_the_last_abandons() {
        let t0 = Instant::now();
        let mut app = app_in_batch(t0);
        q(&mut app, t0);
        q(&mut app, t0);
        assert!(q(&mut app, t0).is_empty());
        assert!(
            status(&app).contains("q 1 more time(s)"),
            "{}",
            status(&app)
        );
        assert_eq!(q(&mut app, t0), vec![Command::Quit]);
        assert!(app.quit);
        assert_eq!(app.leaving.exit_status(), EXIT_ABANDONED);
        let f = app.leaving.farewell().expect("says what was abandoned");
        assert!(
            f.starts_with("quit with 3 plug(s) still mid-update: 127.0.0.5 (flashing)"),
            "{f}"
        );
        assert!(
            f.ends_with("`plugfleet status --host 127.0.0.5 --host 127.0.0.6 --host 127.0.0.7`"),
            "{f}"
        );
    }

    #[test]
    fn a_signal_during_a_batch_drains_without_asking() {
        let t0 = Instant::now();
        let mut app = app_in_batch(t0);
        let cmds = update(&mut app, Event::Shutdown(None), t0);
        assert_eq!(cmds, vec![Command::CancelUpdate]);
        assert_eq!(app.leaving.stage, Stage::Draining);
        // A second signal keeps waiting, a q counts as one more way out.
        assert!(update(&mut app, Event::Shutdown(None), t0).is_empty());
        assert_eq!(q(&mut app, t0), vec![Command::Quit]);
        assert_eq!(app.leaving.exit_status(), EXIT_ABANDONED);

        // A failing terminal starts the drain once; its repeated failures do not abandon.
        let mut app = app_in_batch(t0);
        let gone = || Event::Shutdown(Some("terminal input: EIO".into()));
        assert_eq!(update(&mut app, gone(), t0), vec![Command::CancelUpdate]);
        for _ in 0..5 {
            assert!(update(&mut app, gone(), t0).is_empty());
        }
        assert!(!app.quit);
        assert_eq!(finish(&mut app, t0).last(), Some(&Command::Quit));
        assert_eq!(app.leaving.exit_status(), EXIT_INTERRUPTED);

        // Without a batch a signal quits at once, with its reason shown.
        let mut app = App::new(Settings::default(), t0);
        let cmds = update(
            &mut app,
            Event::Shutdown(Some("terminal input: gone".into())),
            t0,
        );
        assert_eq!(cmds, vec![Command::Quit]);
        assert_eq!(app.leaving.exit_status(), 0);
        assert_eq!(status(&app), "terminal input: gone");
    }

    #[test]
    fn nothing_flashing_yet_is_said_so() {
        assert_eq!(
            ask_message(&[], 2),
            "firmware update running: quitting now cancels 2 plug(s) not flashing yet; q again \
             to quit"
        );
    }
}
