//! The calendar, one copy for every layer: [`Date`] (proleptic Gregorian, days since
//! 1970-01-01 both ways, H. Hinnant's algorithms) and the clock a plug keeps
//! ([`DeviceTime`] from `time.get_time`, [`DeviceClock`]: how far its local time is from UTC).
//!
//! A plug keeps its energy history by its own calendar day — the owner's time zone, set by the
//! Kasa app — not by UTC. "Today" for a plug is therefore the date on the plug's clock.

use std::fmt;

use serde::Serialize;

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    pub fn new(year: i32, month: u32, day: u32) -> Self {
        Self { year, month, day }
    }

    /// The UTC date of a Unix time in seconds.
    pub fn from_unix(secs: i64) -> Self {
        Self::from_days(secs.div_euclid(86_400))
    }

    /// The date of day number `z` (days since 1970-01-01).
    pub fn from_days(z: i64) -> Self {
        // Howard Hinnant's civil_from_days.
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Self { year, month, day }
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The month before this date's month: (year, month).
    pub fn month_before(year: i32, month: u32) -> (i32, u32) {
        if month <= 1 {
            (year - 1, 12)
        } else {
            (year, month - 1)
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Days in a month of the Gregorian calendar (0 for a month that is not 1–12).
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// A plug's local wall-clock time as `time.get_time` reports it (no zone, no offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTime {
    pub date: Date,
    /// Seconds since the plug's local midnight.
    pub secs: u32,
}

impl DeviceTime {
    /// The local time read as if it were UTC, in seconds since the epoch: subtract the real
    /// Unix time of the same moment to get the plug's offset from UTC.
    pub fn as_if_utc(self) -> i64 {
        self.date.days() * 86_400 + i64::from(self.secs)
    }
}

/// How a plug's clock relates to UTC: its local time minus UTC, in seconds. Learnt from one
/// `get_time` answer against this machine's clock, rounded to the quarter hour (every zone's
/// offset is a multiple of 15 minutes), and only when it is a real zone's (within −12 h …
/// +14 h): a plug whose clock was never set (after a power cut without internet it may say
/// 2016) tells nothing about its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DeviceClock {
    pub utc_offset_s: i64,
}

impl DeviceClock {
    pub const MIN_OFFSET_S: i64 = -12 * 3600;
    pub const MAX_OFFSET_S: i64 = 14 * 3600;

    /// The clock of a plug that said `local` at Unix time `unix_s` (this machine's clock);
    /// `None` when the difference is not a time zone's.
    pub fn learn(local: DeviceTime, unix_s: i64) -> Option<Self> {
        let raw = local.as_if_utc() - unix_s;
        let q = 900;
        let rounded = (raw + q / 2).div_euclid(q) * q;
        (Self::MIN_OFFSET_S..=Self::MAX_OFFSET_S)
            .contains(&rounded)
            .then_some(Self {
                utc_offset_s: rounded,
            })
    }

    /// The plug's calendar date at Unix time `unix_s`.
    pub fn date_at(self, unix_s: i64) -> Date {
        Date::from_unix(unix_s + self.utc_offset_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_know_their_months() {
        for z in [-800_000, -1, 0, 1, 19_000, 20_788, 2_000_000] {
            assert_eq!(Date::from_days(z).days(), z, "{z}");
        }
        assert_eq!(Date::from_days(0), Date::new(1970, 1, 1));
        assert_eq!(Date::from_unix(1_796_083_200), Date::new(2026, 12, 1));
        assert_eq!(Date::from_unix(-1), Date::new(1969, 12, 31));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2026, 13), 0);
        assert_eq!(Date::month_before(2026, 1), (2025, 12));
        assert_eq!(Date::new(2026, 3, 7).to_string(), "2026-03-07");
    }

    #[test]
    fn a_plug_clock_gives_the_plug_s_date() {
        // 2026-12-01 03:30 UTC; the plug in California says 2026-11-30 19:30:04.
        let unix = Date::new(2026, 12, 1).days() * 86_400 + 3 * 3600 + 1800;
        let local = DeviceTime {
            date: Date::new(2026, 11, 30),
            secs: 19 * 3600 + 1800 + 4,
        };
        let c = DeviceClock::learn(local, unix).expect("a zone");
        assert_eq!(c.utc_offset_s, -8 * 3600);
        assert_eq!(c.date_at(unix), Date::new(2026, 11, 30));
        assert_eq!(DeviceClock::default().date_at(unix), Date::new(2026, 12, 1));
        // India (+5:30), Nepal (+5:45), the Line Islands (+14).
        for off in [5 * 3600 + 1800, 5 * 3600 + 2700, 14 * 3600, -12 * 3600] {
            let t = DeviceTime {
                date: Date::from_unix(unix + off),
                secs: (unix + off).rem_euclid(86_400) as u32,
            };
            assert_eq!(
                DeviceClock::learn(t, unix).map(|c| c.utc_offset_s),
                Some(off)
            );
        }
        // A clock never set (2016) or a day ahead is no zone.
        let unset = DeviceTime {
            date: Date::new(2016, 1, 1),
            secs: 0,
        };
        assert_eq!(DeviceClock::learn(unset, unix), None);
        let ahead = DeviceTime {
            date: Date::new(2026, 12, 2),
            secs: 12 * 3600,
        };
        assert_eq!(DeviceClock::learn(ahead, unix), None);
    }
}
