//! When the UI loop draws: only after something that can change the screen was applied, and at
//! most once per frame of the frame-rate cap. A burst of poll reports (a whole fleet answering
//! within a few milliseconds of each other) is one frame, not one per report; a second with no
//! event draws nothing. Pure: time is passed in. `bench poll` drives the same pacer.

use std::time::Duration;

use tokio::time::Instant;

use crate::app::event::Event;

/// The draw policy of the UI loop.
#[derive(Debug, Clone)]
pub struct Pacer {
    frame: Duration,
    last: Option<Instant>,
    dirty: bool,
}

impl Pacer {
    /// At most one frame per `frame`; the first frame is due at once.
    pub fn new(frame: Duration) -> Self {
        Self {
            frame,
            last: None,
            dirty: true,
        }
    }

    /// Notes an event that was applied; returns whether it can change what is drawn.
    pub fn applied(&mut self, ev: &Event) -> bool {
        let visible = changes_screen(ev);
        self.dirty |= visible;
        visible
    }

    /// Something outside the events changed the screen (a resize, the first frame).
    pub fn invalidate(&mut self) {
        self.dirty = true;
    }

    /// The earliest time the next frame may be drawn (now, if none was drawn yet).
    pub fn next_frame(&self, now: Instant) -> Instant {
        self.last.map_or(now, |t| (t + self.frame).max(now))
    }

    /// Draw now? Only with a change pending and the frame budget spent.
    pub fn should_draw(&self, now: Instant) -> bool {
        self.dirty && self.last.is_none_or(|t| now >= t + self.frame)
    }

    /// A change is waiting for its frame.
    pub fn pending(&self) -> bool {
        self.dirty
    }

    /// A frame was drawn at `now`.
    pub fn drawn(&mut self, now: Instant) {
        self.dirty = false;
        self.last = Some(now);
    }
}

/// Events that never change the screen by themselves: `Launched` only starts what the command
/// line asked for (whatever that changes arrives as its own event).
fn changes_screen(ev: &Event) -> bool {
    !matches!(ev, Event::Launched)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(33);

    #[test]
    fn a_burst_is_one_frame_and_a_quiet_spell_none() {
        let t0 = Instant::now();
        let mut p = Pacer::new(FRAME);
        assert!(p.should_draw(t0), "the first frame is due at once");
        p.drawn(t0);
        assert!(
            !p.should_draw(t0 + Duration::from_secs(5)),
            "nothing changed"
        );
        // 250 reports within 10 ms: no frame until the budget is spent, then one.
        for i in 0..250u64 {
            let at = t0 + FRAME + Duration::from_micros(40 * i);
            p.applied(&Event::Tick);
            if i == 0 {
                assert!(p.should_draw(at));
                p.drawn(at);
            } else {
                assert!(!p.should_draw(at), "report {i} drew a second frame");
            }
        }
        let trailing = p.next_frame(t0 + FRAME);
        assert_eq!(trailing, t0 + FRAME + FRAME);
        assert!(p.pending());
        assert!(p.should_draw(trailing));
        p.drawn(trailing);
        assert!(!p.pending());
    }

    #[test]
    fn launched_alone_draws_nothing() {
        let t0 = Instant::now();
        let mut p = Pacer::new(FRAME);
        p.drawn(t0);
        assert!(!p.applied(&Event::Launched));
        assert!(!p.should_draw(t0 + FRAME));
        assert!(p.applied(&Event::Tick));
        assert!(p.should_draw(t0 + FRAME));
        p.invalidate();
        assert!(p.pending());
    }
}
