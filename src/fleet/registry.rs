//! Device identity across discovery sightings (pure; time comes in with the sightings).
//!
//! * One entry per device, merged by MAC, or by device id when the MAC is unknown: a plug that
//!   answers the broadcast and the sweep is one device with two provenances; a strip is one
//!   device with its outlets (its children stay inside its sysinfo).
//! * A device seen at a new address keeps its identity; the old address goes to
//!   `previous_ips` ([`Change::Moved`]). An address now answered by a different device is
//!   reported ([`Change::AddressReused`]).
//! * A legacy (port 9999) sysinfo and a UDP 20002 answer of the same MAC merge; the device's
//!   protocol is `legacy` when it answered on 9999 at all (PROTOCOL.md §8.2: prefer 9999).
//! * Liveness: a device not seen during `offline_after` rounds in a row is marked offline
//!   ([`Change::Offline`]) but kept; seen again, it is back online ([`Change::Online`]).
//!
//! Entries are never removed, so a device's index is stable for the life of the registry.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::protocol::SysInfo;
use crate::protocol::sighting::{DeviceReply, DiscoveryEvent, FoundBy, Sighting};
use crate::protocol::tdp::TdpInfo;

/// Index of a device in [`Registry::devices`] (stable).
pub type DeviceIdx = usize;

/// Everything known about one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Normalised MAC (may be empty if a device sent none).
    pub mac: String,
    /// Every id this device reported (sysinfo `deviceId`, TDP `device_id`).
    pub ids: Vec<String>,
    /// The current address.
    pub ip: IpAddr,
    /// The port it answered on: the legacy port once it answered there, else the TDP port.
    pub port: u16,
    /// Earlier addresses, oldest first, without repeats.
    pub previous_ips: Vec<IpAddr>,
    /// How it was found, sorted, without repeats.
    pub found_by: Vec<FoundBy>,
    /// The latest port-9999 sysinfo.
    pub sysinfo: Option<SysInfo>,
    /// The latest UDP 20002 answer.
    pub tdp: Option<TdpInfo>,
    /// When it became known (ms, the sightings' clock).
    pub first_seen: u64,
    pub last_seen: u64,
    /// Rounds in a row it was not seen.
    pub missed_rounds: u32,
    pub online: bool,
    seen_this_round: bool,
}

impl Device {
    /// `legacy` when it answered on port 9999, else the newer transport (`klap`, …).
    pub fn protocol(&self) -> &'static str {
        match (&self.sysinfo, &self.tdp) {
            (Some(_), _) => "legacy",
            (None, Some(t)) => t.protocol_label(),
            (None, None) => "unknown",
        }
    }

    /// The main id: sysinfo `deviceId`, else the TDP `device_id`.
    pub fn device_id(&self) -> Option<&str> {
        self.sysinfo
            .as_ref()
            .map(|s| s.device_id.as_str())
            .or_else(|| self.tdp.as_ref().and_then(|t| t.device_id.as_deref()))
    }

    pub fn model(&self) -> Option<&str> {
        self.sysinfo
            .as_ref()
            .map(|s| s.model.as_str())
            .or_else(|| self.tdp.as_ref().map(|t| t.model.as_str()))
    }

    pub fn hw_ver(&self) -> Option<&str> {
        self.sysinfo
            .as_ref()
            .map(|s| s.hw_ver.as_str())
            .or_else(|| self.tdp.as_ref().and_then(|t| t.hw_ver.as_deref()))
    }

    pub fn alias(&self) -> Option<&str> {
        self.sysinfo.as_ref().map(|s| s.alias.as_str())
    }

    pub fn sw_ver(&self) -> Option<&str> {
        self.sysinfo.as_ref().map(|s| s.sw_ver.as_str())
    }

    /// Number of outlets (0 for plugs); unknown without a sysinfo.
    pub fn children(&self) -> Option<usize> {
        self.sysinfo.as_ref().map(|s| s.children.len())
    }

    pub fn has_emeter(&self) -> Option<bool> {
        self.sysinfo.as_ref().map(SysInfo::has_emeter)
    }

    /// The `plugfleet discover --json` object.
    pub fn to_json(&self) -> Value {
        let s = self.sysinfo.as_ref();
        json!({
            "ip": self.ip.to_string(),
            "port": self.port,
            "mac": self.mac,
            "device_id": self.device_id(),
            "alias": self.alias(),
            "model": self.model(),
            "hw_ver": self.hw_ver(),
            "sw_ver": self.sw_ver(),
            "hw_id": s.and_then(|s| s.hw_id.as_deref()),
            "fw_id": s.and_then(|s| s.fw_id.as_deref()),
            "oem_id": s.and_then(|s| s.oem_id.as_deref()),
            "has_emeter": self.has_emeter(),
            "children": self.children(),
            "protocol": self.protocol(),
            "device_type": s.and_then(|s| s.device_type.as_deref())
                .or_else(|| self.tdp.as_ref().map(|t| t.device_type.as_str())),
            "http_port": self.tdp.as_ref().and_then(|t| t.http_port),
            "found_by": self.found_by,
            "previous_ips": self.previous_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "online": self.online,
            "t_ms": self.first_seen,
        })
    }

    /// What a user sees change (uptime and signal strength are not part of it).
    fn summary(&self) -> Summary {
        let own = |s: Option<&str>| s.map(str::to_owned);
        Summary {
            alias: own(self.alias()),
            model: own(self.model()),
            hw_ver: own(self.hw_ver()),
            sw_ver: own(self.sw_ver()),
            children: self.children(),
            protocol: self.protocol(),
        }
    }
}

#[derive(PartialEq)]
struct Summary {
    alias: Option<String>,
    model: Option<String>,
    hw_ver: Option<String>,
    sw_ver: Option<String>,
    children: Option<usize>,
    protocol: &'static str,
}

/// What an observation changed, for the UI or the `discover` printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A device not known before.
    Added { idx: DeviceIdx },
    /// A known device answered a probe of another kind.
    NewProvenance { idx: DeviceIdx, found_by: FoundBy },
    /// Its alias, model, versions or number of outlets changed (or a first sysinfo arrived
    /// for a device known only by UDP 20002).
    Updated { idx: DeviceIdx },
    /// Same device, new address.
    Moved {
        idx: DeviceIdx,
        from: IpAddr,
        to: IpAddr,
    },
    /// `ip` used to be `previous`'s address and is now answered by `now` (another MAC).
    AddressReused {
        ip: IpAddr,
        previous: DeviceIdx,
        now: DeviceIdx,
    },
    /// Seen again after having been marked offline.
    Online { idx: DeviceIdx },
    /// Missed `offline_after` rounds in a row.
    Offline { idx: DeviceIdx },
}

/// The set of known devices.
#[derive(Debug, Clone)]
pub struct Registry {
    devices: Vec<Device>,
    offline_after: u32,
    rounds: u64,
}

impl Registry {
    /// `offline_after`: rounds in a row a device may be missing before it is marked offline
    /// (3 is what tplink-smarthome-api uses; at least 1).
    pub fn new(offline_after: u32) -> Self {
        Self {
            devices: Vec::new(),
            offline_after: offline_after.max(1),
            rounds: 0,
        }
    }

    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    pub fn get(&self, idx: DeviceIdx) -> Option<&Device> {
        self.devices.get(idx)
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Rounds ended so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    pub fn find_by_mac(&self, mac: &str) -> Option<DeviceIdx> {
        let mac = crate::protocol::normalise_mac(mac);
        if mac.is_empty() {
            return None;
        }
        self.devices.iter().position(|d| d.mac == mac)
    }

    /// The device whose current address is `ip`.
    pub fn find_by_ip(&self, ip: IpAddr) -> Option<DeviceIdx> {
        self.devices.iter().position(|d| d.ip == ip)
    }

    /// Feeds one discovery event: `Found` → [`Registry::observe`], `RoundDone` →
    /// [`Registry::end_round`], anything else changes nothing.
    pub fn apply(&mut self, ev: &DiscoveryEvent) -> Vec<Change> {
        match ev {
            DiscoveryEvent::Found(s) => self.observe(s),
            DiscoveryEvent::RoundDone { .. } => self.end_round(),
            _ => Vec::new(),
        }
    }

    fn find(&self, reply: &DeviceReply) -> Option<DeviceIdx> {
        let mac = reply.mac();
        if !mac.is_empty() {
            if let Some(i) = self.devices.iter().position(|d| d.mac == mac) {
                return Some(i);
            }
        }
        let id = reply.device_id().filter(|id| !id.is_empty())?;
        self.devices
            .iter()
            .position(|d| d.ids.iter().any(|x| x == id) && (d.mac.is_empty() || mac.is_empty()))
    }

    /// Merges one sighting.
    pub fn observe(&mut self, s: &Sighting) -> Vec<Change> {
        let mut changes = Vec::new();
        let idx = match self.find(&s.reply) {
            Some(idx) => idx,
            None => {
                let idx = self.devices.len();
                self.devices.push(Device {
                    mac: s.reply.mac().to_owned(),
                    ids: Vec::new(),
                    ip: s.ip,
                    port: s.port,
                    previous_ips: Vec::new(),
                    found_by: Vec::new(),
                    sysinfo: None,
                    tdp: None,
                    first_seen: s.at,
                    last_seen: s.at,
                    missed_rounds: 0,
                    online: true,
                    seen_this_round: true,
                });
                if let Some(prev) = self.other_at(s.ip, idx) {
                    changes.push(Change::AddressReused {
                        ip: s.ip,
                        previous: prev,
                        now: idx,
                    });
                }
                changes.push(Change::Added { idx });
                idx
            }
        };
        let added = matches!(changes.last(), Some(Change::Added { .. }));
        let mut moved_to = None;
        {
            let d = &mut self.devices[idx];
            if d.ip != s.ip {
                let from = d.ip;
                d.previous_ips.retain(|p| *p != from && *p != s.ip);
                d.previous_ips.push(from);
                d.ip = s.ip;
                moved_to = Some((from, s.ip));
                changes.push(Change::Moved {
                    idx,
                    from,
                    to: s.ip,
                });
            }
            if let Some(id) = s.reply.device_id().filter(|id| !id.is_empty()) {
                if !d.ids.iter().any(|x| x == id) {
                    d.ids.push(id.to_owned());
                }
            }
            if d.mac.is_empty() && !s.reply.mac().is_empty() {
                s.reply.mac().clone_into(&mut d.mac);
            }
            if !d.found_by.contains(&s.found_by) {
                d.found_by.push(s.found_by);
                d.found_by.sort();
                if !added {
                    changes.push(Change::NewProvenance {
                        idx,
                        found_by: s.found_by,
                    });
                }
            }
            let before = d.summary();
            match &s.reply {
                DeviceReply::Legacy(info) => {
                    d.sysinfo = Some(info.clone());
                    d.port = s.port;
                }
                DeviceReply::Newer(info) => {
                    d.tdp = Some(info.clone());
                    if d.sysinfo.is_none() {
                        d.port = s.port;
                    }
                }
            }
            let same = before == d.summary();
            if !added && !same {
                changes.push(Change::Updated { idx });
            }
            d.last_seen = d.last_seen.max(s.at);
            d.missed_rounds = 0;
            d.seen_this_round = true;
            if !d.online {
                d.online = true;
                changes.push(Change::Online { idx });
            }
        }
        if let Some(prev) = moved_to.and_then(|(_, to)| self.other_at(to, idx)) {
            changes.push(Change::AddressReused {
                ip: s.ip,
                previous: prev,
                now: idx,
            });
        }
        changes
    }

    /// Another device whose current address is `ip`.
    fn other_at(&self, ip: IpAddr, not: DeviceIdx) -> Option<DeviceIdx> {
        self.devices
            .iter()
            .enumerate()
            .find(|(i, d)| *i != not && d.ip == ip)
            .map(|(i, _)| i)
    }

    /// One round (discovery pass) is over: devices not seen in it miss one more round; those
    /// that reach `offline_after` go offline.
    pub fn end_round(&mut self) -> Vec<Change> {
        self.rounds += 1;
        let mut changes = Vec::new();
        for (idx, d) in self.devices.iter_mut().enumerate() {
            if d.seen_this_round {
                d.seen_this_round = false;
                continue;
            }
            d.missed_rounds = d.missed_rounds.saturating_add(1);
            if d.online && d.missed_rounds >= self.offline_after {
                d.online = false;
                changes.push(Change::Offline { idx });
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// The replies of `net::discovery::loopback`'s fake plugs, built here: the fleet model's
    /// tests do not import `net`.
    struct FakePlug {
        sysinfo: Value,
        tdp: Option<Value>,
    }

    /// A MAC derived from `n` (`50:C7:BF:nn:nn:nn`).
    fn mac_of(n: u32) -> String {
        let b = n.to_be_bytes();
        format!("50:C7:BF:{:02X}:{:02X}:{:02X}", b[1], b[2], b[3])
    }

    impl FakePlug {
        fn legacy(_ip: Ipv4Addr, n: u32) -> Self {
            let sysinfo = json!({
                "sw_ver": "1.0.4 Build 191111 Rel.143500", "hw_ver": "4.0", "model": "HS110(EU)",
                "deviceId": format!("80060000000000000000000000000000{n:08X}"),
                "oemId": "1998A14DAA86E4E001FD7CAF42868B5E",
                "hwId": "2448AB56FB7E126DE5CF876F84D8ADD2",
                "fwId": "00000000000000000000000000000000", "rssi": -60,
                "alias": format!("plug {n}"), "dev_name": "Smart Wi-Fi Plug With Energy Monitoring",
                "mic_type": "IOT.SMARTPLUGSWITCH", "feature": "TIM:ENE", "mac": mac_of(n),
                "updating": 0, "led_off": 0, "relay_state": 1, "on_time": 1234,
                "latitude_i": 0, "longitude_i": 0, "status": "new", "err_code": 0
            });
            Self { sysinfo, tdp: None }
        }

        fn strip(ip: Ipv4Addr, n: u32, outlets: u32) -> Self {
            let mut p = Self::legacy(ip, n);
            let id = format!("80060000000000000000000000000000{n:08X}");
            let children: Vec<Value> = (0..outlets)
                .map(|i| json!({"id": format!("{id}{i:02}"), "state": 1, "alias": format!("outlet {i}"), "on_time": 10, "next_action": {"type": -1}}))
                .collect();
            if let Some(o) = p.sysinfo.as_object_mut() {
                o.insert("model".into(), json!("HS300(US)"));
                o.insert("hw_ver".into(), json!("1.0"));
                o.insert("sw_ver".into(), json!("1.0.21 Build 210524 Rel.161309"));
                o.insert("child_num".into(), json!(outlets));
                o.insert("children".into(), Value::Array(children));
                o.remove("relay_state");
            }
            p
        }

        fn newer(ip: Ipv4Addr, n: u32) -> Self {
            Self {
                sysinfo: Value::Null,
                tdp: Some(json!({
                    "device_id": format!("{n:032X}"), "device_model": "HS100(UK)",
                    "device_type": "IOT.SMARTPLUGSWITCH", "factory_default": false,
                    "hw_ver": "4.1", "ip": ip.to_string(), "mac": mac_of(n).replace(':', "-"),
                    "mgt_encrypt_schm": {"encrypt_type": "KLAP", "http_port": 80, "is_support_https": false},
                    "owner": "00000000000000000000000000000000"
                })),
            }
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 9, 0, last))
    }

    fn legacy(n: u32, at_ip: IpAddr, by: FoundBy, at: u64) -> Sighting {
        let p = FakePlug::legacy(Ipv4Addr::LOCALHOST, n);
        let info = SysInfo::from_result(&p.sysinfo).unwrap();
        Sighting {
            ip: at_ip,
            port: 9999,
            found_by: by,
            at,
            reply: DeviceReply::Legacy(info),
        }
    }

    fn strip(n: u32, at_ip: IpAddr, by: FoundBy) -> Sighting {
        let p = FakePlug::strip(Ipv4Addr::LOCALHOST, n, 6);
        Sighting {
            ip: at_ip,
            port: 9999,
            found_by: by,
            at: 5,
            reply: DeviceReply::Legacy(SysInfo::from_result(&p.sysinfo).unwrap()),
        }
    }

    fn newer(n: u32, at_ip: IpAddr) -> Sighting {
        let p = FakePlug::newer(Ipv4Addr::LOCALHOST, n);
        let json = serde_json::json!({"error_code": 0, "result": p.tdp.unwrap()}).to_string();
        let info = crate::protocol::tdp::decode_reply(&crate::protocol::tdp::encode_packet(
            json.as_bytes(),
            0,
            0,
        ))
        .unwrap();
        Sighting {
            ip: at_ip,
            port: 20002,
            found_by: FoundBy::Udp20002,
            at: 7,
            reply: DeviceReply::Newer(info),
        }
    }

    #[test]
    fn first_sighting_adds_a_device() {
        let mut r = Registry::new(3);
        let c = r.observe(&legacy(1, ip(1), FoundBy::Broadcast, 12));
        assert_eq!(c, vec![Change::Added { idx: 0 }]);
        let d = &r.devices()[0];
        assert_eq!(d.mac, "50:C7:BF:00:00:01");
        assert_eq!(d.found_by, vec![FoundBy::Broadcast]);
        assert_eq!(d.first_seen, 12);
        assert_eq!(d.protocol(), "legacy");
        assert_eq!(d.to_json()["t_ms"], 12);
        assert_eq!(d.to_json()["children"], 0);
        assert_eq!(d.to_json()["has_emeter"], true);
    }

    #[test]
    fn broadcast_and_sweep_merge_into_one_device_with_two_provenances() {
        let mut r = Registry::new(3);
        r.observe(&legacy(1, ip(1), FoundBy::Broadcast, 10));
        let c = r.observe(&legacy(1, ip(1), FoundBy::Sweep, 20));
        assert_eq!(
            c,
            vec![Change::NewProvenance {
                idx: 0,
                found_by: FoundBy::Sweep
            }]
        );
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.devices()[0].found_by,
            vec![FoundBy::Broadcast, FoundBy::Sweep]
        );
        assert_eq!(
            r.devices()[0].first_seen,
            10,
            "t_ms is when it became known"
        );
        // The same provenance again changes nothing.
        assert!(r.observe(&legacy(1, ip(1), FoundBy::Sweep, 30)).is_empty());
        assert_eq!(
            r.devices()[0].to_json()["found_by"],
            serde_json::json!(["broadcast", "sweep"])
        );
    }

    #[test]
    fn a_strip_is_one_device_with_its_outlets() {
        let mut r = Registry::new(3);
        r.observe(&strip(4, ip(4), FoundBy::Broadcast));
        r.observe(&strip(4, ip(4), FoundBy::Host));
        assert_eq!(r.len(), 1);
        assert_eq!(r.devices()[0].children(), Some(6));
        assert_eq!(r.devices()[0].to_json()["children"], 6);
    }

    #[test]
    fn different_macs_are_different_devices() {
        let mut r = Registry::new(3);
        r.observe(&legacy(1, ip(1), FoundBy::Broadcast, 1));
        r.observe(&legacy(2, ip(2), FoundBy::Broadcast, 2));
        assert_eq!(r.len(), 2);
        assert_eq!(r.find_by_mac("50-c7-bf-00-00-02"), Some(1));
        assert_eq!(r.find_by_ip(ip(1)), Some(0));
    }

    #[test]
    fn an_ip_change_keeps_identity_and_records_the_old_address() {
        let mut r = Registry::new(3);
        r.observe(&legacy(1, ip(1), FoundBy::Broadcast, 1));
        let c = r.observe(&legacy(1, ip(7), FoundBy::Broadcast, 2));
        assert_eq!(
            c,
            vec![Change::Moved {
                idx: 0,
                from: ip(1),
                to: ip(7)
            }]
        );
        assert_eq!(r.len(), 1);
        let d = &r.devices()[0];
        assert_eq!(d.ip, ip(7));
        assert_eq!(d.previous_ips, vec![ip(1)]);
        // Moving back keeps one entry per earlier address.
        r.observe(&legacy(1, ip(1), FoundBy::Broadcast, 3));
        assert_eq!(r.devices()[0].previous_ips, vec![ip(7)]);
    }

    #[test]
    fn an_address_answered_by_another_mac_is_reported() {
        let mut r = Registry::new(3);
        r.observe(&legacy(1, ip(1), FoundBy::Host, 1));
        let c = r.observe(&legacy(2, ip(1), FoundBy::Host, 2));
        assert_eq!(
            c,
            vec![
                Change::AddressReused {
                    ip: ip(1),
                    previous: 0,
                    now: 1
                },
                Change::Added { idx: 1 }
            ]
        );
        // And when a known device moves onto an address another one held.
        r.observe(&legacy(3, ip(3), FoundBy::Host, 3));
        let c = r.observe(&legacy(3, ip(1), FoundBy::Host, 4));
        assert!(c.contains(&Change::AddressReused {
            ip: ip(1),
            previous: 0,
            now: 2
        }));
    }

    #[test]
    fn newer_protocol_device_is_listed_with_its_protocol() {
        let mut r = Registry::new(3);
        r.observe(&newer(9, ip(9)));
        let d = &r.devices()[0];
        assert_eq!(d.protocol(), "klap");
        assert_eq!(d.model(), Some("HS100(UK)"));
        assert_eq!(d.port, 20002);
        let j = d.to_json();
        assert_eq!(j["protocol"], "klap");
        assert_eq!(j["found_by"], serde_json::json!(["udp20002"]));
        assert!(j["sw_ver"].is_null());
        assert!(j["children"].is_null(), "unknown without a sysinfo");
    }

    #[test]
    fn legacy_and_tdp_answers_of_one_mac_merge_and_legacy_wins() {
        let mut r = Registry::new(3);
        r.observe(&newer(5, ip(5)));
        let c = r.observe(&legacy(5, ip(5), FoundBy::Sweep, 9));
        assert!(c.contains(&Change::NewProvenance {
            idx: 0,
            found_by: FoundBy::Sweep
        }));
        assert!(c.contains(&Change::Updated { idx: 0 }));
        let d = &r.devices()[0];
        assert_eq!(r.len(), 1);
        assert_eq!(d.protocol(), "legacy");
        assert_eq!(d.port, 9999);
        assert_eq!(d.ids.len(), 2, "both id formats remembered");
        // A later TDP answer does not take the port back.
        r.observe(&newer(5, ip(5)));
        assert_eq!(r.devices()[0].port, 9999);
    }

    #[test]
    fn merges_by_device_id_when_the_mac_is_missing() {
        let mut r = Registry::new(3);
        let mut a = legacy(1, ip(1), FoundBy::Broadcast, 1);
        if let DeviceReply::Legacy(s) = &mut a.reply {
            s.mac.clear();
        }
        r.observe(&a);
        r.observe(&legacy(1, ip(1), FoundBy::Sweep, 2));
        assert_eq!(r.len(), 1);
        assert_eq!(r.devices()[0].mac, "50:C7:BF:00:00:01");
    }

    #[test]
    fn alias_change_is_an_update() {
        let mut r = Registry::new(3);
        r.observe(&legacy(1, ip(1), FoundBy::Broadcast, 1));
        let mut s = legacy(1, ip(1), FoundBy::Broadcast, 2);
        if let DeviceReply::Legacy(i) = &mut s.reply {
            i.alias = "kettle".into();
            i.on_time = Some(99);
        }
        assert_eq!(r.observe(&s), vec![Change::Updated { idx: 0 }]);
        assert_eq!(r.devices()[0].alias(), Some("kettle"));
        // Only a changing uptime is not an update.
        if let DeviceReply::Legacy(i) = &mut s.reply {
            i.on_time = Some(100);
        }
        assert!(r.observe(&s).is_empty());
    }

    #[test]
    fn missing_n_rounds_in_a_row_goes_offline_but_is_kept() {
        let mut r = Registry::new(3);
        r.observe(&legacy(1, ip(1), FoundBy::Broadcast, 1));
        r.observe(&legacy(2, ip(2), FoundBy::Broadcast, 1));
        assert!(r.end_round().is_empty(), "both seen in round 1");
        for round in 0..3 {
            r.observe(&legacy(2, ip(2), FoundBy::Broadcast, 10 + round));
            let c = r.end_round();
            if round < 2 {
                assert!(c.is_empty(), "round {round}: {c:?}");
            } else {
                assert_eq!(c, vec![Change::Offline { idx: 0 }]);
            }
        }
        assert_eq!(r.len(), 2);
        assert!(!r.devices()[0].online);
        assert_eq!(r.devices()[0].missed_rounds, 3);
        assert!(r.devices()[1].online);
        // Offline is reported once.
        assert!(
            r.end_round()
                .iter()
                .all(|c| *c != Change::Offline { idx: 0 })
        );
        // Back again.
        let c = r.observe(&legacy(1, ip(1), FoundBy::Broadcast, 99));
        assert_eq!(c, vec![Change::Online { idx: 0 }]);
        assert_eq!(r.devices()[0].missed_rounds, 0);
        assert!(r.devices()[0].online);
    }

    #[test]
    fn a_miss_then_a_sighting_resets_the_count() {
        let mut r = Registry::new(2);
        r.observe(&legacy(1, ip(1), FoundBy::Broadcast, 1));
        r.end_round();
        r.end_round(); // missed 1
        r.observe(&legacy(1, ip(1), FoundBy::Broadcast, 2));
        r.end_round(); // seen
        assert!(r.end_round().is_empty()); // missed 1
        assert_eq!(r.end_round(), vec![Change::Offline { idx: 0 }]);
    }

    proptest::proptest! {
        /// Whatever the order of sightings: one device per MAC, its address the last one seen,
        /// its provenances the union of what was seen, earlier addresses without repeats and
        /// never the current one, `first_seen` the time of its first sighting, and `legacy` as soon
        /// as it answered on port 9999.
        #[test]
        fn merging_invariants(seq in proptest::collection::vec((1u32..6, 1u8..5, 0usize..4, 0u64..1000), 1..60)) {
            let kinds = [FoundBy::Broadcast, FoundBy::Host, FoundBy::Sweep, FoundBy::Udp20002];
            let mut r = Registry::new(2);
            let mut last_ip = std::collections::HashMap::new();
            let mut by = std::collections::HashMap::<u32, std::collections::BTreeSet<FoundBy>>::new();
            let mut first = std::collections::HashMap::new();
            for (n, last, k, at) in seq {
                let s = if kinds[k] == FoundBy::Udp20002 {
                    let mut s = newer(n, ip(last));
                    s.at = at;
                    s
                } else {
                    legacy(n, ip(last), kinds[k], at)
                };
                r.observe(&s);
                last_ip.insert(n, ip(last));
                by.entry(n).or_default().insert(kinds[k]);
                first.entry(n).or_insert(at);
                if at % 7 == 0 {
                    r.end_round();
                }
            }
            proptest::prop_assert_eq!(r.len(), last_ip.len());
            for (n, want_ip) in &last_ip {
                let d = &r.devices()[r.find_by_mac(&mac_of(*n)).unwrap()];
                proptest::prop_assert_eq!(d.ip, *want_ip);
                let got: std::collections::BTreeSet<FoundBy> = d.found_by.iter().copied().collect();
                proptest::prop_assert_eq!(&got, &by[n]);
                proptest::prop_assert_eq!(got.len(), d.found_by.len());
                proptest::prop_assert!(!d.previous_ips.contains(&d.ip));
                let uniq: std::collections::HashSet<_> = d.previous_ips.iter().collect();
                proptest::prop_assert_eq!(uniq.len(), d.previous_ips.len());
                proptest::prop_assert_eq!(d.first_seen, first[n]);
                let legacy_seen = by[n].iter().any(|b| *b != FoundBy::Udp20002);
                proptest::prop_assert_eq!(d.protocol() == "legacy", legacy_seen);
            }
        }
    }

    #[test]
    fn apply_routes_events() {
        let mut r = Registry::new(1);
        let c = r.apply(&DiscoveryEvent::Found(legacy(1, ip(1), FoundBy::Host, 1)));
        assert_eq!(c, vec![Change::Added { idx: 0 }]);
        let done = DiscoveryEvent::RoundDone {
            round: 0,
            found: 1,
            hostile: 0,
            send_errors: vec![],
            at: 5,
        };
        assert!(r.apply(&done).is_empty());
        assert_eq!(r.apply(&done), vec![Change::Offline { idx: 0 }]);
        assert_eq!(r.rounds(), 2);
    }
}
