//! One simulated plug's shared state: what it is ([`Identity`]), what it holds now
//! ([`PlugState`]: alias, version, outlets, the firmware download), its counters, and its
//! outages (going offline and coming back). The answers to requests are in `dispatch.rs`
//! (routing), `system.rs` (sysinfo, relay, alias, reboot), `emeter.rs` (readings and history) and
//! `flash.rs` (download and flash); the sockets in `server.rs`.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::fault::FaultKind;
use super::identity::Identity;
use super::images::{Accepted, KnownImage};
use super::load::{self, LoadModel};
use super::outlets::Outlet;
use super::profile;

/// Why a plug goes offline for a while.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cause {
    /// `system.reboot`: back with `total` reset.
    Reboot,
    /// `system.reset`: factory reset, then as a reboot.
    Reset,
    /// `flash_firmware`: back with the image's `sw_ver` (and relays off).
    Flash { sw_ver: String },
    /// The `flaky` fault: back as it was.
    Flaky,
}

/// A request to the plug's supervisor to go offline.
#[derive(Debug, Clone)]
pub(crate) struct Outage {
    /// Stay online this long first (real time, already scaled).
    pub after: Duration,
    /// Then stay offline this long (real time, already scaled).
    pub down: Duration,
    pub cause: Cause,
}

/// Where the firmware download stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Download {
    None,
    Running {
        id: u64,
        received: u64,
        len: Option<u64>,
    },
    Failed {
        reason: String,
    },
    /// A complete image the plug accepted (found in its list of signed images).
    Complete {
        image: KnownImage,
    },
}

#[derive(Debug)]
pub(crate) struct PlugState {
    pub alias: String,
    pub sw_ver: String,
    pub led_off: bool,
    pub outlets: Vec<Outlet>,
    pub download: Download,
    pub download_id: u64,
    pub readings: u64,
    pub start_day: i64,
    pub start_frac: f64,
    /// First day with statistics (install or last erase).
    pub stats_floor: i64,
    /// The `history-glitch` fault's bogus day (outlet 0), until the statistics are erased.
    pub glitch_day: Option<i64>,
    /// Dimmers and lights: brightness in percent (scales the load's power).
    pub brightness: u8,
}

/// Counters tests (and benches) can read.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub premature_flash_attempts: AtomicU64,
    pub flashes: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    pub downloads_started: AtomicU64,
    pub downloads_completed: AtomicU64,
    pub downloads_failed: AtomicU64,
    pub images_rejected: AtomicU64,
    pub connections: AtomicU64,
    pub datagrams: AtomicU64,
    pub requests: AtomicU64,
    pub outages: AtomicU64,
}

/// A snapshot of one plug's [`Counters`] (or of a whole fleet's, summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlugStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// UDP datagrams received (unicast and broadcast, answered or not).
    pub datagrams: u64,
    /// Request objects answered (TCP and UDP).
    pub requests: u64,
    /// `download_firmware` requests accepted.
    pub downloads_started: u64,
    /// Downloads that ended with an accepted image.
    pub downloads_completed: u64,
    /// Downloads that ended short (connection, HTTP or size failure).
    pub downloads_failed: u64,
    /// Complete downloads refused: unknown digest, wrong target or `image-reject`.
    pub images_rejected: u64,
    /// Firmware bytes received over HTTP.
    pub bytes_downloaded: u64,
    /// `flash_firmware` requests accepted.
    pub flashes: u64,
    /// `flash_firmware` requests refused because no complete, accepted image was held.
    pub premature_flash_attempts: u64,
    /// Times the plug went offline (reboot, flash, flaky).
    pub outages: u64,
}

impl PlugStats {
    pub fn add(&mut self, o: &PlugStats) {
        self.connections += o.connections;
        self.datagrams += o.datagrams;
        self.requests += o.requests;
        self.downloads_started += o.downloads_started;
        self.downloads_completed += o.downloads_completed;
        self.downloads_failed += o.downloads_failed;
        self.images_rejected += o.images_rejected;
        self.bytes_downloaded += o.bytes_downloaded;
        self.flashes += o.flashes;
        self.premature_flash_attempts += o.premature_flash_attempts;
        self.outages += o.outages;
    }
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> PlugStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PlugStats {
            connections: g(&self.connections),
            datagrams: g(&self.datagrams),
            requests: g(&self.requests),
            downloads_started: g(&self.downloads_started),
            downloads_completed: g(&self.downloads_completed),
            downloads_failed: g(&self.downloads_failed),
            images_rejected: g(&self.images_rejected),
            bytes_downloaded: g(&self.bytes_downloaded),
            flashes: g(&self.flashes),
            premature_flash_attempts: g(&self.premature_flash_attempts),
            outages: g(&self.outages),
        }
    }
}

/// A plug shared between its supervisor, its connections, the broadcast listener and its
/// download task.
#[derive(Debug)]
pub(crate) struct PlugShared {
    pub id: Identity,
    /// The images this plug accepts (shared by the fleet).
    pub accepted: Arc<Accepted>,
    state: Mutex<PlugState>,
    pub counters: Counters,
    pub online: AtomicBool,
    /// Accepts and reads but never answers (`hang`, or `hang-after-flash` after a flash).
    pub hanging: AtomicBool,
    /// The unicast UDP socket while online (the broadcast listener answers through it).
    pub udp: Mutex<Option<Arc<UdpSocket>>>,
    pub ctl: mpsc::UnboundedSender<Outage>,
    /// Bumped each time the plug goes offline: open connections end.
    pub epoch: watch::Sender<u64>,
    pub token: CancellationToken,
    /// The port its simulated KLAP/AES HTTP server really listens on (0 = none started yet:
    /// the discovery reply keeps the profile's `http_port`).
    pub http_port: AtomicU16,
}

impl PlugShared {
    pub fn new(
        id: Identity,
        accepted: Arc<Accepted>,
        ctl: mpsc::UnboundedSender<Outage>,
        token: CancellationToken,
        now: f64,
    ) -> Self {
        let p = id.profile;
        let mains = p.mains_v;
        let mk = |i: usize, alias: String, appliance: &str| {
            let seed = load::mix(id.seed ^ (i as u64 + 1));
            let on = load::unit(seed, 20) < 0.85;
            let load = LoadModel::new(profile::appliance(appliance), seed, mains);
            // Up for 1–30 days, with the energy that implies.
            let uptime_s = 86_400.0 * (1.0 + load::unit(seed, 21) * 29.0);
            // (An outlet that is off now was on for part of that time.)
            let share = if on { 1.0 } else { 0.3 };
            let total_wh =
                load.mean_w() * uptime_s / 3600.0 * share * (0.7 + 0.3 * load::unit(seed, 22));
            Outlet {
                alias,
                relay_on: on,
                on_since: now - uptime_s,
                load,
                total_wh,
                last_t: now,
                day: (now / 86_400.0).floor() as i64,
                day_wh: 0.0,
                readings: 0,
            }
        };
        let outlets = if p.is_strip() {
            p.outlets
                .iter()
                .enumerate()
                .map(|(i, o)| mk(i, o.alias.clone(), &o.load))
                .collect()
        } else {
            vec![mk(0, String::new(), &id.appliance_name())]
        };
        let start_day = (now / 86_400.0).floor() as i64;
        let state = PlugState {
            alias: id.default_alias(),
            sw_ver: p.sw_ver().to_owned(),
            led_off: false,
            outlets,
            download: Download::None,
            download_id: 0,
            readings: 0,
            start_day,
            start_frac: (now / 86_400.0).fract(),
            stats_floor: start_day - 200 - (id.seed % 400) as i64,
            glitch_day: id
                .has(FaultKind::HistoryGlitch)
                .then(|| glitch_day(start_day)),
            brightness: p.initial_brightness(),
        };
        let (epoch, _) = watch::channel(0);
        Self {
            id,
            accepted,
            state: Mutex::new(state),
            counters: Counters::default(),
            online: AtomicBool::new(false),
            hanging: AtomicBool::new(false),
            udp: Mutex::new(None),
            ctl,
            epoch,
            token,
            http_port: AtomicU16::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PlugState> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters to a simulator; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `hang-daystat` fault: this request is never answered.
    pub fn hangs_on(&self, req: &Value) -> bool {
        self.id.has(FaultKind::HangDaystat)
            && req
                .get("emeter")
                .is_some_and(|e| e.get("get_daystat").is_some())
    }

    /// Now on the plug's clock (real time unless the fleet's clock rate says otherwise): what
    /// every request is answered at.
    pub fn now(&self) -> f64 {
        self.id.clock(super::load::now_unix())
    }

    pub fn is_hanging(&self) -> bool {
        self.hanging.load(Ordering::Relaxed) || self.id.has(FaultKind::Hang)
    }

    pub(crate) fn schedule_outage(&self, o: Outage) {
        let _ = self.ctl.send(o);
    }

    /// Going offline: a download in progress is lost.
    pub fn went_offline(&self, now: f64) {
        let mut st = self.lock();
        st.download_id += 1;
        if matches!(st.download, Download::Running { .. }) {
            st.download = Download::None;
        }
        for o in &mut st.outlets {
            o.advance(now);
        }
    }

    /// Coming back after an outage.
    pub fn came_back(&self, cause: &Cause, now: f64) {
        let mut st = self.lock();
        let reboot = !matches!(cause, Cause::Flaky);
        if reboot {
            for o in &mut st.outlets {
                // Nothing was drawn while the plug was down (rebooting or flashing). A `flaky`
                // outage is the network's: the outlets stayed on and kept metering, so the
                // energy since going offline is counted at the next reading.
                o.last_t = now;
                o.total_wh = 0.0;
                if o.relay_on {
                    o.on_since = now;
                }
            }
            st.download = Download::None;
        }
        match cause {
            Cause::Flash { sw_ver } => {
                if !self.id.has(FaultKind::OldVersion) {
                    st.sw_ver = sw_ver.clone();
                }
                // A fresh firmware boots with its relays open.
                for o in &mut st.outlets {
                    o.relay_on = false;
                }
                if self.id.has(FaultKind::HangAfterFlash) {
                    self.hanging.store(true, Ordering::Relaxed);
                }
            }
            Cause::Reset => {
                st.alias = self.id.default_alias();
                for o in &mut st.outlets {
                    o.relay_on = false;
                }
            }
            Cause::Reboot | Cause::Flaky => {}
        }
    }

    /// The UDP 20002 discovery reply of a newer-protocol plug.
    pub fn tdp_reply(&self, serial: u32) -> Option<Vec<u8>> {
        let mut r = self.id.profile.discovery.clone()?;
        let set = |r: &mut Map<String, Value>, k: &str, v: Value| {
            r.insert(k.into(), v);
        };
        set(&mut r, "ip", json!(self.id.ip.to_string()));
        set(&mut r, "mac", json!(self.id.mac.replace(':', "-")));
        set(
            &mut r,
            "device_id",
            json!(self.id.device_id[..32].to_string()),
        );
        set(&mut r, "owner", json!(self.id.oem_id));
        // The real HTTP port, so a client on loopback reaches the simulated server.
        let http = self.http_port.load(Ordering::Relaxed);
        if http != 0
            && let Some(schm) = r.get_mut("mgt_encrypt_schm").and_then(Value::as_object_mut)
        {
            schm.insert("http_port".into(), json!(http));
        }
        if r.contains_key("device_name") {
            let alias = self.lock().alias.clone();
            set(&mut r, "device_name", json!(alias));
        }
        let body = json!({"error_code": 0, "result": r});
        let bytes = serde_json::to_vec(&body).ok()?;
        Some(crate::protocol::tdp::encode_packet(&bytes, 0, serial))
    }
}

/// The `history-glitch` day for a plug started on day `today`: yesterday, unless that was in
/// the previous month (then today), so the bogus day is always in this month's day list.
pub(crate) fn glitch_day(today: i64) -> i64 {
    let (_, m_today, _) = super::load::civil_from_days(today);
    let (_, m_before, _) = super::load::civil_from_days(today - 1);
    if m_today == m_before {
        today - 1
    } else {
        today
    }
}
