//! A bounded ring of recent readings of one meter (a plug or one outlet of a strip): the baseline
//! for the jump and unit-scale rules, the data of the TUI's sparklines.
//!
//! Memory-conscious: a sample is 24 bytes (values as `f32`, NaN for "absent"; the time as `u32`
//! milliseconds after the ring's base time; verdict and flags as bytes), and the ring never
//! allocates more than its capacity. 250 plugs × 10 minutes at 1 s ≈ 3.6 MB.

use crate::fleet::reading::{Flags, Reading};
use crate::fleet::verdict::Verdict;

/// 10 minutes at one reading per second.
pub const DEFAULT_CAPACITY: usize = 600;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    dt_ms: u32,
    power: f32,
    voltage: f32,
    current: f32,
    total: f32,
    verdict: u8,
    flags: u8,
}

fn pack(v: Option<f64>) -> f32 {
    v.map_or(f32::NAN, |v| v as f32)
}

fn unpack(v: f32) -> Option<f64> {
    (!v.is_nan()).then_some(f64::from(v))
}

fn verdict_code(v: Verdict) -> u8 {
    match v {
        Verdict::Ok => 0,
        Verdict::Suspect => 1,
        Verdict::Bogus => 2,
    }
}

fn verdict_of(code: u8) -> Verdict {
    match code {
        0 => Verdict::Ok,
        1 => Verdict::Suspect,
        _ => Verdict::Bogus,
    }
}

/// One stored reading, as handed out by [`History::iter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The caller's millisecond timestamp of the reading.
    pub t_ms: u64,
    /// The values, rounded to `f32`.
    pub reading: Reading,
    pub verdict: Verdict,
    pub flags: Flags,
}

/// The ring.
#[derive(Debug, Clone)]
pub struct History {
    base_ms: u64,
    cap: usize,
    buf: Vec<Sample>,
    /// Index of the oldest sample once the ring is full.
    head: usize,
}

impl Default for History {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl History {
    /// An empty ring that keeps the last `capacity` readings (at least one). Nothing is
    /// allocated until the first reading.
    pub fn new(capacity: usize) -> Self {
        Self {
            base_ms: 0,
            cap: capacity.max(1),
            buf: Vec::new(),
            head: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
    }

    /// Heap bytes held by the ring (for the memory benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<Sample>()
    }

    /// Size of one stored sample in bytes.
    pub const fn sample_bytes() -> usize {
        std::mem::size_of::<Sample>()
    }

    /// Appends a reading taken at `t_ms`, dropping the oldest when full. Timestamps are expected
    /// not to go backwards; one that does is stored as if taken at the newest time.
    pub fn push(&mut self, t_ms: u64, reading: &Reading, verdict: Verdict, flags: Flags) {
        if self.buf.is_empty() {
            self.base_ms = t_ms;
            self.head = 0;
        }
        let t_ms = t_ms.max(self.latest_ms().unwrap_or(t_ms));
        if t_ms - self.base_ms > u64::from(u32::MAX) {
            self.rebase(t_ms);
        }
        let sample = Sample {
            dt_ms: u32::try_from(t_ms - self.base_ms).unwrap_or(u32::MAX),
            power: pack(reading.power_w),
            voltage: pack(reading.voltage_v),
            current: pack(reading.current_a),
            total: pack(reading.total_kwh),
            verdict: verdict_code(verdict),
            flags: flags.bits(),
        };
        if self.buf.len() < self.cap {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(self.cap);
            }
            self.buf.push(sample);
        } else {
            self.buf[self.head] = sample;
            self.head = (self.head + 1) % self.cap;
        }
    }

    /// Moves the base time forward so that `t_ms` fits in a `u32` offset; samples older than
    /// ~49 days before `t_ms` are dropped.
    fn rebase(&mut self, t_ms: u64) {
        let floor = t_ms - u64::from(u32::MAX);
        let kept: Vec<(u64, Sample)> = self
            .samples()
            .map(|s| (self.base_ms + u64::from(s.dt_ms), *s))
            .filter(|(abs, _)| *abs >= floor)
            .collect();
        self.base_ms = kept.first().map_or(t_ms, |(abs, _)| *abs);
        self.buf.clear();
        self.head = 0;
        for (abs, mut s) in kept {
            s.dt_ms = u32::try_from(abs - self.base_ms).unwrap_or(u32::MAX);
            self.buf.push(s);
        }
    }

    fn samples(&self) -> impl DoubleEndedIterator<Item = &Sample> {
        let (newer, older) = self.buf.split_at(self.head);
        older.iter().chain(newer.iter())
    }

    fn entry(&self, s: &Sample) -> Entry {
        Entry {
            t_ms: self.base_ms + u64::from(s.dt_ms),
            reading: Reading {
                power_w: unpack(s.power),
                voltage_v: unpack(s.voltage),
                current_a: unpack(s.current),
                total_kwh: unpack(s.total),
            },
            verdict: verdict_of(s.verdict),
            flags: Flags::from_bits(s.flags),
        }
    }

    /// Readings from the oldest to the newest (`.rev()` for newest first).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Entry> + '_ {
        self.samples().map(|s| self.entry(s))
    }

    /// The newest reading.
    pub fn latest(&self) -> Option<Entry> {
        self.iter().next_back()
    }

    fn latest_ms(&self) -> Option<u64> {
        self.latest().map(|e| e.t_ms)
    }

    /// Power of the last `n` readings, oldest first, in whole watts for a sparkline: `None`
    /// where power was absent or flagged (a 28 kW glitch must not flatten the chart).
    pub fn power_sparkline(&self, n: usize) -> Vec<Option<u64>> {
        let skip = self.len().saturating_sub(n);
        self.iter()
            .skip(skip)
            .map(|e| {
                if e.flags.contains(crate::fleet::reading::Field::Power) {
                    None
                } else {
                    e.reading.power_w.map(|p| p.max(0.0).round() as u64)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::reading::Field;

    fn r(p: f64) -> Reading {
        Reading::new(p, 120.0, p / 120.0, 1.0)
    }

    #[test]
    fn keeps_the_last_capacity_readings_in_order() {
        let mut h = History::new(3);
        assert!(h.is_empty() && h.latest().is_none());
        for i in 0..5u64 {
            h.push(1000 + i * 1000, &r(i as f64), Verdict::Ok, Flags::NONE);
        }
        assert_eq!(h.len(), 3);
        let ts: Vec<u64> = h.iter().map(|e| e.t_ms).collect();
        assert_eq!(ts, vec![3000, 4000, 5000]);
        let ps: Vec<f64> = h.iter().rev().filter_map(|e| e.reading.power_w).collect();
        assert_eq!(ps, vec![4.0, 3.0, 2.0]);
        assert_eq!(h.latest().map(|e| e.t_ms), Some(5000));
    }

    #[test]
    fn stores_absent_values_verdicts_and_flags() {
        let mut h = History::new(4);
        let reading = Reading {
            power_w: Some(28000.0),
            ..Reading::default()
        };
        let flags: Flags = [Field::Power].into_iter().collect();
        h.push(7, &reading, Verdict::Bogus, flags);
        let e = h.latest().expect("one");
        assert_eq!(e.reading.power_w, Some(28000.0));
        assert_eq!(e.reading.voltage_v, None);
        assert_eq!(e.verdict, Verdict::Bogus);
        assert!(e.flags.contains(Field::Power));
    }

    #[test]
    fn sparkline_skips_flagged_power() {
        let mut h = History::new(10);
        h.push(0, &r(50.0), Verdict::Ok, Flags::NONE);
        h.push(
            1,
            &r(28000.0),
            Verdict::Bogus,
            [Field::Power].into_iter().collect(),
        );
        h.push(2, &r(60.4), Verdict::Ok, Flags::NONE);
        assert_eq!(h.power_sparkline(10), vec![Some(50), None, Some(60)]);
        assert_eq!(h.power_sparkline(1), vec![Some(60)]);
    }

    #[test]
    fn is_compact_and_bounded() {
        assert_eq!(History::sample_bytes(), 24);
        let mut h = History::default();
        assert_eq!(h.heap_bytes(), 0);
        for i in 0..2000u64 {
            h.push(i * 1000, &r(1.0), Verdict::Ok, Flags::NONE);
        }
        assert_eq!(h.len(), DEFAULT_CAPACITY);
        assert_eq!(h.heap_bytes(), DEFAULT_CAPACITY * 24);
        // 250 plugs × 10 minutes at 1 s.
        assert!(250 * h.heap_bytes() < 4 * 1024 * 1024);
    }

    #[test]
    fn long_gaps_rebase_the_compact_timestamps() {
        let mut h = History::new(4);
        h.push(1_000, &r(1.0), Verdict::Ok, Flags::NONE);
        h.push(2_000, &r(2.0), Verdict::Ok, Flags::NONE);
        let far = 1_000 + u64::from(u32::MAX) + 500;
        h.push(far, &r(3.0), Verdict::Ok, Flags::NONE);
        let ts: Vec<u64> = h.iter().map(|e| e.t_ms).collect();
        assert_eq!(ts, vec![2_000, far]);
        let much_later = far + 10 * u64::from(u32::MAX);
        h.push(much_later, &r(4.0), Verdict::Ok, Flags::NONE);
        assert_eq!(
            h.iter().map(|e| e.t_ms).collect::<Vec<_>>(),
            vec![much_later]
        );
    }

    #[test]
    fn time_going_backwards_is_clamped() {
        let mut h = History::new(4);
        h.push(5_000, &r(1.0), Verdict::Ok, Flags::NONE);
        h.push(4_000, &r(2.0), Verdict::Ok, Flags::NONE);
        assert_eq!(h.latest().map(|e| e.t_ms), Some(5_000));
    }
}
