//! Who and what a simulated plug is: address, profile, MAC, deviceId, faults and time scale,
//! fixed for its life and derived from the address so it is stable across restarts.

use std::net::Ipv4Addr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::fault::FaultKind;
use super::load;
use super::profile::{self, Profile};

/// Who and what a plug is; fixed for its life.
#[derive(Debug)]
pub(crate) struct Identity {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub tdp_port: u16,
    pub profile: &'static Profile,
    pub mac: String,
    pub device_id: String,
    pub hw_id: String,
    pub oem_id: String,
    pub seed: u64,
    pub faults: Vec<FaultKind>,
    pub time_scale: f64,
    /// Seconds the plug's clock advances per real second ([`super::FleetSpec::clock_rate`]).
    pub clock_rate: f64,
    /// Unix time at which the plug's clock and real time agree (the fleet's start).
    pub clock_epoch: f64,
    /// The plug's local time minus UTC ([`super::FleetSpec::utc_offset_s`]): its clock reads
    /// local time, so its calendar days (statistics, `get_time`) are local days.
    pub utc_offset_s: i64,
    pub latitude: f64,
    pub longitude: f64,
    pub rssi: i64,
    /// Rooms skipped from the seed's own, so two plugs of one fleet do not share an alias
    /// ([`unique_aliases`]).
    pub room_shift: u64,
    /// A number after the alias ("Kitchen fridge 2") when every room is taken; 0 = none.
    pub alias_number: u32,
}

impl Identity {
    pub fn new(
        ip: Ipv4Addr,
        port: u16,
        tdp_port: u16,
        profile: &'static Profile,
        faults: Vec<FaultKind>,
        time_scale: f64,
    ) -> Self {
        let o = ip.octets();
        let seed = load::mix(u64::from(u32::from(ip)) ^ 0x504C_5547);
        let hex = |s: &str| hex::encode(Sha256::digest(s.as_bytes())).to_ascii_uppercase();
        let mac = format!("{}:{:02X}:{:02X}:{:02X}", profile.mac_oui, o[1], o[2], o[3]);
        let device_id = hex(&format!("plugfleet-sim device {ip} {}", profile.model()))[..40].into();
        let hw_id = hex(&format!("hwId {} {}", profile.model(), profile.hw_ver()))[..32].into();
        let oem_id = hex(&format!("oemId {}", profile.model()))[..32].into();
        Self {
            ip,
            port,
            tdp_port,
            profile,
            mac,
            device_id,
            hw_id,
            oem_id,
            seed,
            faults,
            time_scale,
            clock_rate: 1.0,
            clock_epoch: 0.0,
            utc_offset_s: 0,
            latitude: profile.latitude + (load::unit(seed, 10) - 0.5) * 0.1,
            longitude: profile.longitude + (load::unit(seed, 11) - 0.5) * 0.1,
            rssi: -35 - (load::unit(seed, 12) * 40.0) as i64,
            room_shift: 0,
            alias_number: 0,
        }
    }

    pub fn has(&self, f: FaultKind) -> bool {
        self.faults.contains(&f)
    }

    /// The plug's clock (Unix seconds) at real Unix time `real`: real time at clock rate 1,
    /// otherwise running `clock_rate` times as fast from the fleet's start.
    pub fn clock(&self, real: f64) -> f64 {
        let local = self.utc_offset_s as f64;
        if self.clock_rate == 1.0 {
            return real + local;
        }
        self.clock_epoch + (real - self.clock_epoch) * self.clock_rate + local
    }

    /// The `slow` fault's delay, scaled.
    pub fn slow_delay(&self) -> Option<Duration> {
        self.faults
            .iter()
            .find_map(FaultKind::slow_delay)
            .map(|d| self.scaled(d))
    }

    /// A simulated duration in real time (capped at a day).
    pub fn scaled(&self, nominal: Duration) -> Duration {
        let s = (nominal.as_secs_f64() * self.time_scale).clamp(0.0, 86_400.0);
        Duration::from_secs_f64(s)
    }

    /// A nominal duration as the plug reports it: whole scaled seconds, at least 1 if non-zero.
    pub fn reported_secs(&self, nominal_s: u64) -> u64 {
        if nominal_s == 0 {
            return 0;
        }
        ((nominal_s as f64 * self.time_scale).ceil() as u64).max(1)
    }

    pub fn child_id(&self, index: usize) -> String {
        format!("{}{index:02}", self.device_id)
    }

    /// A plausible alias: `<room> <appliance>` or `<room> strip`.
    pub fn default_alias(&self) -> String {
        let rooms = profile::rooms();
        let room = rooms
            .get((self.seed.wrapping_add(self.room_shift) % rooms.len().max(1) as u64) as usize)
            .map_or("Room", String::as_str);
        let alias = if self.profile.is_strip() {
            format!("{room} strip")
        } else {
            let a = self.appliance_name();
            format!("{room} {}", profile::appliance(&a).label)
        };
        match self.alias_number {
            0 => alias,
            n => format!("{alias} {n}"),
        }
    }

    pub fn appliance_name(&self) -> String {
        let loads = &self.profile.loads;
        loads
            .get(((self.seed >> 8) % loads.len().max(1) as u64) as usize)
            .cloned()
            .unwrap_or_else(|| "lamp".into())
    }
}

/// Gives every plug of a fleet its own alias, as an owner would name them: another room for
/// the same appliance first, then a number ("Kitchen fridge 2"). Bounded: at most one pass over
/// the rooms per plug, then numbers.
pub(crate) fn unique_aliases(ids: &mut [Identity]) {
    let rooms = profile::rooms().len().max(1) as u64;
    let mut taken = std::collections::HashSet::new();
    for id in ids.iter_mut() {
        let free = (0..rooms).find(|&shift| {
            id.room_shift = shift;
            !taken.contains(&id.default_alias())
        });
        if free.is_none() {
            id.room_shift = 0;
            id.alias_number = 2;
            while taken.contains(&id.default_alias()) {
                id.alias_number += 1;
            }
        }
        taken.insert(id.default_alias());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plug_of_a_fleet_has_its_own_alias() {
        let p = profile::find("hs110-eu-hw1").expect("profile");
        let strip = profile::find("hs300-us-hw2").expect("profile");
        let mut ids: Vec<Identity> = (0..300u32)
            .map(|i| {
                let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 9, 0, 2)) + i);
                let prof = if i % 7 == 0 { strip } else { p };
                Identity::new(ip, 9999, 20002, prof, vec![], 1.0)
            })
            .collect();
        let before: std::collections::HashSet<String> =
            ids.iter().map(Identity::default_alias).collect();
        assert!(before.len() < ids.len(), "the seeds alone repeat names");
        let first = ids[0].default_alias();
        unique_aliases(&mut ids);
        let after: std::collections::HashSet<String> =
            ids.iter().map(Identity::default_alias).collect();
        assert_eq!(after.len(), ids.len());
        // The first plug keeps its seed's name; names stay '<room> <appliance>[ n]'.
        assert_eq!(ids[0].default_alias(), first);
        assert!(ids.iter().any(|i| i.alias_number >= 2));
    }

    #[test]
    fn the_clock_runs_at_its_rate_from_the_epoch() {
        let p = profile::find("hs110-eu-hw1").expect("profile");
        let mut id = Identity::new(Ipv4Addr::new(127, 0, 0, 2), 9999, 20002, p, vec![], 1.0);
        assert_eq!(id.clock(1_700_000_123.5), 1_700_000_123.5);
        id.clock_rate = 600.0;
        id.clock_epoch = 1_700_000_000.0;
        assert_eq!(id.clock(1_700_000_000.0), 1_700_000_000.0);
        // One real second is ten minutes on the plug's clock.
        assert_eq!(id.clock(1_700_000_001.0), 1_700_000_600.0);
    }
}
