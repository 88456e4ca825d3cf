//! Deterministic fleets for snapshot tests, unit tests and the TUI benchmark: built by feeding
//! real events (sightings, poll reports) through [`update`], so they exercise the real path.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::event::{Event, SeenInfo, Sighting};
use super::state::{App, Settings};
use super::update::update;
use crate::net::NetError;
use crate::net::poller::{PollReport, Polled};
use crate::protocol::tdp::TdpInfo;
use crate::protocol::{Realtime, SysInfo};

/// The identity of fixture plug `n`.
pub fn device_id(n: u32) -> String {
    format!("8006{n:036X}")
}

pub fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 77, (n >> 8) as u8, n as u8))
}

pub fn addr(n: u32) -> SocketAddr {
    SocketAddr::new(ip(n), 9999)
}

/// A fixture plug's sysinfo.
#[derive(Debug, Clone)]
pub struct Plug {
    pub n: u32,
    pub alias: String,
    pub model: &'static str,
    pub hw: &'static str,
    pub sw: &'static str,
    pub emeter: bool,
    pub relay: bool,
    pub outlets: Vec<(&'static str, bool)>,
}

impl Plug {
    pub fn new(
        n: u32,
        alias: &str,
        model: &'static str,
        hw: &'static str,
        sw: &'static str,
    ) -> Self {
        Self {
            n,
            alias: alias.to_owned(),
            model,
            hw,
            sw,
            emeter: true,
            relay: true,
            outlets: Vec::new(),
        }
    }

    pub fn sysinfo_json(&self) -> Value {
        let mut v = json!({
            "sw_ver": self.sw,
            "hw_ver": self.hw,
            "model": self.model,
            "dev_name": if self.emeter { "Smart Wi-Fi Plug With Energy Monitoring" } else { "Smart Wi-Fi Plug" },
            "mic_type": "IOT.SMARTPLUGSWITCH",
            "feature": if self.emeter { "TIM:ENE" } else { "TIM" },
            "mac": format!("50:C7:BF:00:{:02X}:{:02X}", (self.n >> 8) as u8, self.n as u8),
            "deviceId": device_id(self.n),
            "hwId": "A0E3CC8F5C1166B27A16D56BE262A6D3",
            "oemId": "FDD18403D5E8DB3613009C820963E018",
            "alias": self.alias,
            "rssi": -40 - (self.n % 30) as i64,
            "led_off": 0,
            "updating": 0,
            "err_code": 0,
        });
        if self.outlets.is_empty() {
            v["relay_state"] = json!(u8::from(self.relay));
            v["on_time"] = json!(if self.relay { 3600 } else { 0 });
        } else {
            v["children"] = Value::Array(
                self.outlets
                    .iter()
                    .enumerate()
                    .map(|(i, (alias, on))| {
                        json!({"id": format!("{i:02}"), "alias": alias, "state": u8::from(*on), "on_time": 0})
                    })
                    .collect(),
            );
            v["child_num"] = json!(self.outlets.len());
        }
        v
    }

    pub fn sysinfo(&self) -> SysInfo {
        SysInfo::from_result(&self.sysinfo_json())
            .unwrap_or_else(|e| panic!("fixture sysinfo: {e}"))
    }
}

/// A reading in base units.
pub fn reading(p: f64, v: f64, a: f64, kwh: f64) -> Realtime {
    Realtime::from_result(
        &json!({"power": p, "voltage": v, "current": a, "total": kwh, "err_code": 0}),
    )
    .unwrap_or_else(|e| panic!("fixture reading: {e}"))
}

pub fn sighting(p: &Plug, found_by: &str) -> Event {
    Event::DeviceDiscovered(Sighting {
        ip: ip(p.n),
        port: 9999,
        found_by: found_by.into(),
        info: SeenInfo::Legacy(Box::new(p.sysinfo())),
    })
}

pub fn polled(p: &Plug, meter: Option<Realtime>, outlets: Vec<Realtime>) -> Event {
    let sys = p.sysinfo();
    let outlets = sys
        .children
        .iter()
        .zip(outlets)
        .map(|(c, r)| (c.id.clone(), Ok(r)))
        .collect();
    Event::Polled(Box::new(PollReport {
        key: device_id(p.n),
        addr: addr(p.n),
        outcome: Ok(Polled {
            sysinfo: sys,
            realtime: meter.map(Ok),
            outlets,
        }),
        misses: 0,
        elapsed: Duration::from_millis(3),
    }))
}

pub fn failed(p: &Plug, misses: u32) -> Event {
    Event::Polled(Box::new(PollReport {
        key: device_id(p.n),
        addr: addr(p.n),
        outcome: Err(NetError::Refused),
        misses,
        elapsed: Duration::from_millis(1),
    }))
}

pub fn newer(n: u32, model: &str) -> Event {
    Event::DeviceDiscovered(Sighting {
        ip: ip(n),
        port: 20002,
        found_by: "udp20002".into(),
        info: SeenInfo::Newer(Box::new(TdpInfo {
            device_type: "IOT.SMARTPLUGSWITCH".into(),
            model: model.into(),
            hw_ver: Some("4.1".into()),
            mac: format!("50-C7-BF-00-{:02X}-{:02X}", (n >> 8) as u8, n as u8),
            device_id: Some(device_id(n)),
            ip: Some(ip(n).to_string()),
            encrypt_type: Some("KLAP".into()),
            http_port: Some(80),
            new_klap: false,
            ..Default::default()
        })),
    })
}

/// The mixed fleet of the snapshots: healthy plugs, a 28 kW glitch, the unit-scale bug, a
/// plug without meter, a strip with three outlets (one suspect), an offline plug and a
/// newer-protocol plug. Returns the app and the time of the last event.
pub fn mixed_fleet(settings: Settings, t0: Instant) -> (App, Instant) {
    let mut app = App::new(settings, t0);
    let mut now = t0;
    let kitchen = Plug::new(
        1,
        "kitchen",
        "HS110(EU)",
        "4.0",
        "1.0.4 Build 191111 Rel.143500",
    );
    let heater = Plug::new(
        2,
        "garage heater",
        "HS110(US)",
        "1.0",
        "1.1.1 Build 170417 Rel.165206",
    );
    let desk = Plug::new(
        3,
        "office desk",
        "HS110(EU)",
        "2.0",
        "1.5.4 Build 180815 Rel.121440",
    );
    let mut lamp = Plug::new(
        4,
        "hall lamp",
        "HS100(US)",
        "2.0",
        "1.5.6 Build 191118 Rel.140307",
    );
    lamp.emeter = false;
    lamp.relay = false;
    let mut strip = Plug::new(
        5,
        "rack strip",
        "HS300(US)",
        "2.0",
        "1.0.12 Build 220121 Rel.175814",
    );
    strip.outlets = vec![("router", true), ("nas", true), ("printer", false)];
    let porch = Plug::new(
        6,
        "porch",
        "KP115(US)",
        "1.0",
        "1.0.21 Build 210524 Rel.161309",
    );
    let plugs = [&kitchen, &heater, &desk, &lamp, &strip, &porch];
    for (i, p) in plugs.iter().enumerate() {
        let how = if i == 2 { "sweep" } else { "broadcast" };
        update(&mut app, sighting(p, how), now);
    }
    update(&mut app, newer(7, "HS100(UK)"), now);
    for round in 0..8u32 {
        now += Duration::from_secs(2);
        let k = f64::from(round);
        update(
            &mut app,
            polled(&kitchen, Some(reading(61.2 + k, 230.8, 0.45, 16.3)), vec![]),
            now,
        );
        let heater_w = if round == 6 {
            28_041.6
        } else {
            1480.0 + k * 3.0
        };
        update(
            &mut app,
            polled(&heater, Some(reading(heater_w, 121.3, 12.4, 3.2)), vec![]),
            now,
        );
        let desk_w = if round < 5 { 61.7 } else { 61_753.0 };
        update(
            &mut app,
            polled(&desk, Some(reading(desk_w, 230.6, 0.2678, 8.8)), vec![]),
            now,
        );
        update(&mut app, polled(&lamp, None, vec![]), now);
        let outlets = vec![
            reading(9.1, 120.1, 0.09, 1.2),
            reading(35.5, 120.3, 0.31, 4.5),
            reading(0.0, if round >= 6 { 171.0 } else { 120.2 }, 0.0, 0.1),
        ];
        update(&mut app, polled(&strip, None, outlets), now);
        if round < 2 {
            update(
                &mut app,
                polled(&porch, Some(reading(4.0, 119.7, 0.05, 0.7)), vec![]),
                now,
            );
        } else {
            update(&mut app, failed(&porch, round - 1), now);
        }
    }
    // The heater's glitch was one reading; the last one is bogus again to show it.
    now += Duration::from_secs(1);
    update(
        &mut app,
        polled(&heater, Some(reading(28_041.6, 121.3, 12.4, 3.2)), vec![]),
        now,
    );
    (app, now)
}

/// `n` plugs for the benchmark: HS110(EU), every tenth an HS300 with four outlets.
pub fn big_fleet_plugs(n: u32) -> Vec<Plug> {
    (0..n)
        .map(|i| {
            let mut p = Plug::new(
                i + 1,
                &format!("plug {i:03}"),
                "HS110(EU)",
                "4.0",
                "1.0.4 Build 191111 Rel.143500",
            );
            if i % 10 == 9 {
                p.model = "HS300(US)";
                p.outlets = vec![("a", true), ("b", true), ("c", false), ("d", true)];
            }
            p
        })
        .collect()
}

/// One poll report per plug, with plausible readings varying by `round`.
pub fn round_events(plugs: &[Plug], round: u32) -> Vec<Event> {
    plugs
        .iter()
        .map(|p| {
            let w = 40.0 + f64::from((p.n * 7 + round) % 50);
            if p.outlets.is_empty() {
                polled(p, Some(reading(w, 230.0, w / 230.0, 10.0)), vec![])
            } else {
                let r = reading(w / 4.0, 120.0, w / 480.0, 1.0);
                polled(p, None, vec![r.clone(), r.clone(), r.clone(), r])
            }
        })
        .collect()
}

/// `n` healthy metered plugs (every tenth a 4-outlet strip), each polled `rounds` times.
pub fn big_fleet(n: u32, rounds: u32, t0: Instant) -> (App, Instant) {
    let mut app = App::new(Settings::default(), t0);
    let mut now = t0;
    let plugs = big_fleet_plugs(n);
    for p in &plugs {
        update(&mut app, sighting(p, "sweep"), now);
    }
    let events = round_events(&plugs, 0);
    for _ in 0..rounds {
        now += Duration::from_secs(1);
        for ev in events.iter().cloned() {
            update(&mut app, ev, now);
        }
    }
    (app, now)
}
