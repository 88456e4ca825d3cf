//! Faults a simulated plug can be given (`--fault IP=KIND`). Each is documented in `sim/mod.rs`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Nominal reply delay of the `slow` fault (scaled by the time scale).
pub const DEFAULT_SLOW_MS: u32 = 4000;

/// One misbehaviour of one plug. Named in kebab-case (`bogus-28kw`, `slow`, `slow:1500`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// Every reading shows ~28 kW.
    Bogus28kw,
    /// Every third reading shows ~28 kW, the others are normal.
    Glitch28kw,
    /// One outlet of a strip (1-based `outlet`) glitches: its first reading and every third
    /// after show ~28 kW; the other outlets read true.
    OutletGlitch28kw { outlet: u8 },
    /// Milliwatts in the `power` float field (1000× too high when read as watts).
    UnitScale,
    /// Accepts the connection and reads the request, never replies.
    Hang,
    /// Replies with a well-framed payload that is not JSON.
    Garbage,
    /// The length header announces the whole reply, fewer bytes follow, then the plug closes.
    Truncated,
    /// The length header announces ~2 GB.
    Oversized,
    /// Replies after a delay (nominal milliseconds, scaled by the time scale).
    Slow { nominal_ms: u32 },
    /// TCP connections are refused (nothing listens); UDP still answers.
    Refuse,
    /// Does not answer broadcast datagrams (unicast still works).
    IgnoreBroadcast,
    /// The firmware download stops midway and the download fails.
    DownloadDrop,
    /// The firmware download stops progressing but keeps its connection open.
    DownloadStall,
    /// A complete image is rejected (as if its signature did not verify).
    ImageReject,
    /// After flashing the plug never comes back.
    NeverBack,
    /// After flashing the plug comes back with its old `sw_ver`.
    OldVersion,
    /// After flashing the plug comes back, accepts connections but never replies.
    HangAfterFlash,
    /// Goes offline now and then (listeners closed for a while), comes back by itself.
    Flaky,
    /// The meter is stuck: power, voltage and current repeat the values of the moment the relay
    /// last closed, to the last digit (the counter still counts).
    StuckMeter,
    /// The energy counter grows at [`COUNTER_LAG_FRACTION`] of the power drawn.
    CounterLag,
    /// The voltage sensor reads `pct` percent off (current and power stay true).
    VoltageDrift { pct: i8 },
    /// A small load shows while the relay is off.
    PhantomLoad,
    /// Closes the TCP connection after every reply (firmware that serves one request per
    /// connection): a client keeping connections must reconnect each time.
    CloseAfterReply,
    /// The energy history holds one bogus day ([`HISTORY_GLITCH_KWH`]): yesterday, or today on
    /// the first of a month (so it is always in this month's day list); erasing the
    /// statistics clears it.
    HistoryGlitch,
    /// Never answers a request that asks for `emeter.get_daystat` (the connection stays open,
    /// unanswered); every other request is answered.
    HangDaystat,
}

/// The `counter-lag` fault: the share of the energy drawn that the counter shows.
pub const COUNTER_LAG_FRACTION: f64 = 0.3;
/// The `voltage-drift` fault's percentage without parameter.
pub const DEFAULT_DRIFT_PCT: i8 = 8;
/// The `phantom-load` fault's watts (± a little noise) with the relay off.
pub const PHANTOM_W: f64 = 4.0;
/// The `history-glitch` fault's bogus day, in kWh.
pub const HISTORY_GLITCH_KWH: f64 = 600.0;

impl FaultKind {
    /// Every fault, with `slow` at its default delay.
    pub const ALL: [FaultKind; 25] = [
        FaultKind::Bogus28kw,
        FaultKind::Glitch28kw,
        FaultKind::OutletGlitch28kw { outlet: 1 },
        FaultKind::UnitScale,
        FaultKind::Hang,
        FaultKind::Garbage,
        FaultKind::Truncated,
        FaultKind::Oversized,
        FaultKind::Slow {
            nominal_ms: DEFAULT_SLOW_MS,
        },
        FaultKind::Refuse,
        FaultKind::IgnoreBroadcast,
        FaultKind::DownloadDrop,
        FaultKind::DownloadStall,
        FaultKind::ImageReject,
        FaultKind::NeverBack,
        FaultKind::OldVersion,
        FaultKind::HangAfterFlash,
        FaultKind::Flaky,
        FaultKind::StuckMeter,
        FaultKind::CounterLag,
        FaultKind::VoltageDrift {
            pct: DEFAULT_DRIFT_PCT,
        },
        FaultKind::PhantomLoad,
        FaultKind::CloseAfterReply,
        FaultKind::HistoryGlitch,
        FaultKind::HangDaystat,
    ];

    /// The kebab-case name without parameter.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Bogus28kw => "bogus-28kw",
            FaultKind::Glitch28kw => "glitch-28kw",
            FaultKind::OutletGlitch28kw { .. } => "outlet-glitch-28kw",
            FaultKind::UnitScale => "unit-scale",
            FaultKind::Hang => "hang",
            FaultKind::Garbage => "garbage",
            FaultKind::Truncated => "truncated",
            FaultKind::Oversized => "oversized",
            FaultKind::Slow { .. } => "slow",
            FaultKind::Refuse => "refuse",
            FaultKind::IgnoreBroadcast => "ignore-broadcast",
            FaultKind::DownloadDrop => "download-drop",
            FaultKind::DownloadStall => "download-stall",
            FaultKind::ImageReject => "image-reject",
            FaultKind::NeverBack => "never-back",
            FaultKind::OldVersion => "old-version",
            FaultKind::HangAfterFlash => "hang-after-flash",
            FaultKind::Flaky => "flaky",
            FaultKind::StuckMeter => "stuck-meter",
            FaultKind::CounterLag => "counter-lag",
            FaultKind::VoltageDrift { .. } => "voltage-drift",
            FaultKind::PhantomLoad => "phantom-load",
            FaultKind::CloseAfterReply => "close-after-reply",
            FaultKind::HistoryGlitch => "history-glitch",
            FaultKind::HangDaystat => "hang-daystat",
        }
    }

    /// The `voltage-drift` factor on the voltage reading (1.08 for `voltage-drift:8`).
    pub fn voltage_factor(&self) -> Option<f64> {
        match self {
            FaultKind::VoltageDrift { pct } => Some(1.0 + f64::from(*pct) / 100.0),
            _ => None,
        }
    }

    /// The `slow` delay at time scale 1.
    pub fn slow_delay(&self) -> Option<Duration> {
        match self {
            FaultKind::Slow { nominal_ms } => Some(Duration::from_millis(u64::from(*nominal_ms))),
            _ => None,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Slow { nominal_ms } if *nominal_ms != DEFAULT_SLOW_MS => {
                write!(f, "slow:{nominal_ms}")
            }
            FaultKind::VoltageDrift { pct } if *pct != DEFAULT_DRIFT_PCT => {
                write!(f, "voltage-drift:{pct}")
            }
            FaultKind::OutletGlitch28kw { outlet } => write!(f, "outlet-glitch-28kw:{outlet}"),
            other => f.write_str(other.name()),
        }
    }
}

impl serde::Serialize for FaultKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An unknown fault name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault `{given}` (known: {known})")]
pub struct UnknownFault {
    pub given: String,
    pub known: String,
}

impl FromStr for FaultKind {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Self, UnknownFault> {
        let s = s.trim();
        let unknown = || UnknownFault {
            given: s.chars().take(64).collect(),
            known: FaultKind::ALL
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
                + " (slow:MS sets the delay, voltage-drift:PCT the drift, -50 to 50, not 0, \
                   outlet-glitch-28kw:N the outlet, 1 to 16)",
        };
        if let Some(ms) = s.strip_prefix("slow:") {
            let nominal_ms: u32 = ms.parse().map_err(|_| unknown())?;
            if nominal_ms == 0 || nominal_ms > 600_000 {
                return Err(unknown());
            }
            return Ok(FaultKind::Slow { nominal_ms });
        }
        if let Some(n) = s.strip_prefix("outlet-glitch-28kw:") {
            let outlet: u8 = n.parse().map_err(|_| unknown())?;
            if !(1..=16).contains(&outlet) {
                return Err(unknown());
            }
            return Ok(FaultKind::OutletGlitch28kw { outlet });
        }
        if let Some(pct) = s.strip_prefix("voltage-drift:") {
            let pct: i8 = pct.parse().map_err(|_| unknown())?;
            if pct == 0 || !(-50..=50).contains(&pct) {
                return Err(unknown());
            }
            return Ok(FaultKind::VoltageDrift { pct });
        }
        FaultKind::ALL
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .copied()
            .ok_or_else(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in FaultKind::ALL {
            assert_eq!(f.to_string().parse::<FaultKind>(), Ok(f));
        }
        assert_eq!(
            "slow:1500".parse::<FaultKind>(),
            Ok(FaultKind::Slow { nominal_ms: 1500 })
        );
        assert_eq!(
            FaultKind::Slow { nominal_ms: 1500 }.to_string(),
            "slow:1500"
        );
        assert!("slow:0".parse::<FaultKind>().is_err());
        assert!("slow:abc".parse::<FaultKind>().is_err());
        assert_eq!(
            "voltage-drift:-6".parse::<FaultKind>(),
            Ok(FaultKind::VoltageDrift { pct: -6 })
        );
        assert_eq!(
            FaultKind::VoltageDrift { pct: -6 }.to_string(),
            "voltage-drift:-6"
        );
        assert_eq!(
            "voltage-drift".parse::<FaultKind>(),
            Ok(FaultKind::VoltageDrift { pct: 8 })
        );
        for bad in [
            "voltage-drift:0",
            "voltage-drift:51",
            "voltage-drift:x",
            "voltage-drift:",
        ] {
            assert!(bad.parse::<FaultKind>().is_err(), "{bad}");
        }
        assert_eq!(
            "outlet-glitch-28kw:3".parse::<FaultKind>(),
            Ok(FaultKind::OutletGlitch28kw { outlet: 3 })
        );
        assert_eq!(
            "outlet-glitch-28kw".parse::<FaultKind>(),
            Ok(FaultKind::OutletGlitch28kw { outlet: 1 })
        );
        for bad in [
            "outlet-glitch-28kw:0",
            "outlet-glitch-28kw:17",
            "outlet-glitch-28kw:x",
        ] {
            assert!(bad.parse::<FaultKind>().is_err(), "{bad}");
        }
        let e = "melt".parse::<FaultKind>().expect_err("unknown");
        assert!(e.to_string().contains("bogus-28kw"), "{e}");
    }
}
