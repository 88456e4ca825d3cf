//! Discovery events folded into the one fleet model (`fleet::model::Fleet`), the way
//! `plugfleet discover` does, with the look-ups the discovery tests need. Shared by the
//! discovery tests (`#[path = "common/seen.rs"] mod seen;`).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use plugfleet::fleet::identity::{Names, valid_mac};
use plugfleet::fleet::model::{Device, Fleet};
use plugfleet::net::discovery::{DiscoveryEvent, FoundBy};

/// The model fed with every sighting of a discovery run.
pub struct Seen {
    pub fleet: Fleet,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            fleet: Fleet::new(Instant::now()),
        }
    }
}

impl Seen {
    /// Folds one event in (only sightings change the model).
    pub fn apply(&mut self, ev: &DiscoveryEvent) {
        if let DiscoveryEvent::Found(s) = ev {
            self.fleet
                .observe(s.clone().into(), &Names::default(), Instant::now());
        }
    }

    pub fn len(&self) -> usize {
        self.fleet.len()
    }

    pub fn devices(&self) -> Vec<&Device> {
        self.fleet.by_address()
    }

    pub fn by_mac(&self, mac: &str) -> Option<&Device> {
        let want = valid_mac(mac);
        self.fleet
            .devices
            .values()
            .find(|d| want.is_some() && valid_mac(d.mac()) == want)
    }

    pub fn by_ip(&self, ip: IpAddr) -> Option<&Device> {
        self.fleet.devices.values().find(|d| d.addr.ip() == ip)
    }
}

/// The provenance set the model keeps, for comparing with a list of ways.
pub fn ways(list: &[FoundBy]) -> BTreeSet<String> {
    list.iter().map(|f| f.as_str().to_owned()).collect()
}
