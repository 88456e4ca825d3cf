//! Every way out of a firmware update, handled alike: SIGINT, SIGTERM, SIGHUP and SIGQUIT on
//! unix (on Windows the console's Ctrl-C, Ctrl-Break, close and shutdown events, taken as
//! SIGINT, SIGQUIT, SIGHUP and SIGTERM; Ctrl-C alone elsewhere) arrive as one stream of
//! [`ExitSignal`]s, and [`Drain`] decides what each one (or a quit in the TUI) means while plugs
//! are being updated.
//!
//! The rule (README, "Exit status of `update`"): the first way out stops starting plugs and
//! cancels those not yet flashing, while plugs already flashing are seen through to verified and
//! their relays restored, then the summary is printed and the exit status is
//! [`EXIT_INTERRUPTED`]. A second one only says what is still flashing and keeps waiting. The
//! [`FORCE_AFTER`]th ends the run at once with [`EXIT_ABANDONED`], naming the plugs left
//! unverified: the plugs finish flashing by themselves, but nobody checks them or puts their
//! relays back.

use std::fmt;

/// Exit status after a signal or a quit during a batch that was drained: every plug that had
/// started flashing was verified (or failed), the others cancelled (128 + SIGINT, as shells do).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Exit status when the run was abandoned with plugs still flashing (the
/// [`FORCE_AFTER`]th signal).
pub const EXIT_ABANDONED: u8 = 3;

/// The signal (or quit) that abandons plugs still flashing.
pub const FORCE_AFTER: u32 = 3;

/// A request from outside to end the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP (the terminal went away).
    Hangup,
    /// SIGQUIT (Ctrl-\).
    Quit,
}

impl ExitSignal {
    pub fn name(self) -> &'static str {
        match self {
            ExitSignal::Interrupt => "SIGINT",
            ExitSignal::Terminate => "SIGTERM",
            ExitSignal::Hangup => "SIGHUP",
            ExitSignal::Quit => "SIGQUIT",
        }
    }
}

impl fmt::Display for ExitSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The process's exit signals as one stream. Once installed, none of them ends the process by
/// itself any more: the owner must act on every one it receives.
pub struct ExitSignals {
    #[cfg(unix)]
    unix: [(ExitSignal, tokio::signal::unix::Signal); 4],
    #[cfg(windows)]
    windows: WindowsEvents,
}

/// The console events of Windows that end a program. Windows kills the process a few seconds
/// after a close, logoff or shutdown event whatever the handler does: the drain gets that long.
#[cfg(windows)]
struct WindowsEvents {
    c: tokio::signal::windows::CtrlC,
    brk: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
    shutdown: tokio::signal::windows::CtrlShutdown,
}

impl ExitSignals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                unix: [
                    (ExitSignal::Interrupt, signal(SignalKind::interrupt())?),
                    (ExitSignal::Terminate, signal(SignalKind::terminate())?),
                    (ExitSignal::Hangup, signal(SignalKind::hangup())?),
                    (ExitSignal::Quit, signal(SignalKind::quit())?),
                ],
            })
        }
        #[cfg(windows)]
        {
            use tokio::signal::windows as w;
            Ok(Self {
                windows: WindowsEvents {
                    c: w::ctrl_c()?,
                    brk: w::ctrl_break()?,
                    close: w::ctrl_close()?,
                    shutdown: w::ctrl_shutdown()?,
                },
            })
        }
        #[cfg(not(any(unix, windows)))]
        {
            Ok(Self {})
        }
    }

    /// The next signal.
    pub async fn recv(&mut self) -> ExitSignal {
        #[cfg(unix)]
        {
            let [(a, s1), (b, s2), (c, s3), (d, s4)] = &mut self.unix;
            tokio::select! {
                _ = s1.recv() => *a,
                _ = s2.recv() => *b,
                _ = s3.recv() => *c,
                _ = s4.recv() => *d,
            }
        }
        #[cfg(windows)]
        {
            let w = &mut self.windows;
            tokio::select! {
                _ = w.c.recv() => ExitSignal::Interrupt,
                _ = w.brk.recv() => ExitSignal::Quit,
                _ = w.close.recv() => ExitSignal::Hangup,
                _ = w.shutdown.recv() => ExitSignal::Terminate,
            }
        }
        #[cfg(not(any(unix, windows)))]
        {
            // Without a Ctrl-C handler there is nothing to wait for: never resolve.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            ExitSignal::Interrupt
        }
    }
}

/// What a way out means now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainStep {
    /// The first: stop starting plugs, cancel those not yet flashing, wait for the rest.
    Cancel,
    /// A later one: keep waiting for the plugs still flashing; `left` more abandon them.
    KeepWaiting { left: u32 },
    /// The [`FORCE_AFTER`]th: stop waiting.
    Abandon,
}

/// Counts the ways out during a batch (signals, or quits in the TUI).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drain {
    count: u32,
}

impl Drain {
    /// Records one more way out and says what it means.
    pub fn on_exit_request(&mut self) -> DrainStep {
        self.count = self.count.saturating_add(1);
        match self.count {
            1 => DrainStep::Cancel,
            n if n >= FORCE_AFTER => DrainStep::Abandon,
            n => DrainStep::KeepWaiting {
                left: FORCE_AFTER - n,
            },
        }
    }

    /// True once any way out was asked for.
    pub fn interrupted(&self) -> bool {
        self.count > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_way_out_cancels_later_ones_wait_and_the_third_abandons() {
        let mut d = Drain::default();
        assert!(!d.interrupted());
        assert_eq!(d.on_exit_request(), DrainStep::Cancel);
        assert!(d.interrupted());
        assert_eq!(d.on_exit_request(), DrainStep::KeepWaiting { left: 1 });
        assert_eq!(d.on_exit_request(), DrainStep::Abandon);
        assert_eq!(d.on_exit_request(), DrainStep::Abandon);
    }

    #[test]
    fn signal_names() {
        assert_eq!(ExitSignal::Hangup.to_string(), "SIGHUP");
        assert_eq!(ExitSignal::Quit.name(), "SIGQUIT");
    }
}
