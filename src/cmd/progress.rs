//! Progress for long headless work (`indicatif`), drawn on stderr only when stderr is a
//! terminal: the sweep's addresses in `discover`, one bar per plug in `update` with a heartbeat
//! while a plug flashes and reboots. Piped or redirected, nothing of it is written (the tests
//! run piped and check), so logs and `--json` consumers get only the lines they always got.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::net::IpAddr;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::firmware::job::Stage;
use crate::firmware::runner::JobEvent;

/// Whether progress is drawn at all: stderr is a terminal.
pub fn wanted() -> bool {
    std::io::stderr().is_terminal()
}

fn target() -> ProgressDrawTarget {
    if wanted() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█▉▊▋▌▍▎▏ ")
}

/// The sweep of `total` addresses: position from `done` (addresses settled), updated by a
/// steady tick until [`ProgressBar::finish_and_clear`]. `found` goes in the message.
pub fn sweep_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target());
    bar.set_style(style(
        "{spinner} sweeping {bar:30} {pos}/{len} addresses · {msg} · {elapsed}",
    ));
    bar.set_message("0 found");
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A spinner for work without a count (listening for broadcast replies).
pub fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target());
    bar.set_style(style("{spinner} {msg} · {elapsed}"));
    bar.set_message(msg.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// One bar per plug of a firmware batch: the download's share served, then the stage; while a
/// plug flashes and reboots (offline, minutes) the bar keeps moving and says for how long.
pub struct PlugBars {
    multi: MultiProgress,
    bars: BTreeMap<IpAddr, ProgressBar>,
}

impl PlugBars {
    /// Bars for `plugs` (ip, label), hidden unless stderr is a terminal.
    pub fn new(plugs: &[(IpAddr, String)]) -> Self {
        let multi = MultiProgress::with_draw_target(target());
        let mut bars = BTreeMap::new();
        for (ip, label) in plugs {
            let bar = multi.add(ProgressBar::new(100));
            bar.set_style(style(
                "{spinner} {prefix:32} {bar:20} {pos:>3}% {msg} · {elapsed}",
            ));
            bar.set_prefix(format!(
                "{ip} {}",
                crate::text::clip(&crate::text::sanitize(label), 16)
            ));
            bar.set_message("waiting");
            bar.enable_steady_tick(Duration::from_millis(200));
            bars.insert(*ip, bar);
        }
        Self { multi, bars }
    }

    /// Runs `f` (printing a line) with the bars out of the way, so lines and bars never mix.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// Follows the batch.
    pub fn event(&self, ev: &JobEvent) {
        let (s, stage) = match ev {
            JobEvent::Transition { snapshot: s, .. } | JobEvent::Progress { snapshot: s } => {
                (s, s.stage)
            }
            _ => return,
        };
        let Some(bar) = self.bars.get(&s.ip) else {
            return;
        };
        if let Some(r) = s.ratio {
            bar.set_position(u64::from(r.min(100)));
        }
        if stage.is_final() {
            if stage == Stage::Done {
                bar.set_position(100);
            }
            bar.finish_with_message(stage.label());
        } else {
            bar.set_message(stage.label());
        }
    }

    /// A heartbeat for a plug that is offline flashing or rebooting: `rebooting, 42 s of at
    /// most 180 s`.
    pub fn beat(&self, ip: IpAddr, line: &str) {
        if let Some(bar) = self.bars.get(&ip) {
            bar.set_message(line.to_owned());
        }
    }

    /// Takes the bars off the screen.
    pub fn clear(&self) {
        for b in self.bars.values() {
            b.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
