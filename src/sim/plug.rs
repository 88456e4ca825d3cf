//! One simulated plug: its identity, its state, and its answer to each request (`respond`), which
//! is plain JSON in, JSON out; sockets live in `server.rs`, the firmware fetch in `firmware.rs`.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::fault::FaultKind;
use super::load::{self, LoadModel};
use super::profile::{self, MeterScheme, Profile};
use crate::firmware::header::ImageHeader;

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
    pub latitude: f64,
    pub longitude: f64,
    pub rssi: i64,
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
            latitude: profile.latitude + (load::unit(seed, 10) - 0.5) * 0.1,
            longitude: profile.longitude + (load::unit(seed, 11) - 0.5) * 0.1,
            rssi: -35 - (load::unit(seed, 12) * 40.0) as i64,
        }
    }

    pub fn has(&self, f: FaultKind) -> bool {
        self.faults.contains(&f)
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
            .get((self.seed % rooms.len().max(1) as u64) as usize)
            .map_or("Room", String::as_str);
        if self.profile.is_strip() {
            format!("{room} strip")
        } else {
            let a = self.appliance_name();
            format!("{room} {}", profile::appliance(&a).label)
        }
    }

    fn appliance_name(&self) -> String {
        let loads = &self.profile.loads;
        loads
            .get(((self.seed >> 8) % loads.len().max(1) as u64) as usize)
            .cloned()
            .unwrap_or_else(|| "lamp".into())
    }
}

/// One outlet (plugs have one, strips several).
#[derive(Debug, Clone)]
pub(crate) struct Outlet {
    pub alias: String,
    pub relay_on: bool,
    pub on_since: f64,
    pub load: LoadModel,
    /// Wh since boot or erase (what `total` reports).
    pub total_wh: f64,
    /// Integrated up to this time.
    pub last_t: f64,
    /// Day number of `day_wh`.
    pub day: i64,
    /// Wh of `day` since the simulator started.
    pub day_wh: f64,
}

impl Outlet {
    fn advance(&mut self, now: f64) {
        if now <= self.last_t {
            return;
        }
        let today = (now / 86_400.0).floor() as i64;
        if today != self.day {
            self.day = today;
            self.day_wh = 0.0;
        }
        if self.relay_on {
            let e = self.load.energy_wh(self.last_t, now);
            self.total_wh += e;
            self.day_wh += e;
        }
        self.last_t = now;
    }

    fn set_relay(&mut self, on: bool, now: f64) {
        self.advance(now);
        if on && !self.relay_on {
            self.on_since = now;
        }
        self.relay_on = on;
    }
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
    Complete {
        header: ImageHeader,
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
}

/// Counters tests (and benches) can read.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub premature_flash_attempts: AtomicU64,
    pub flashes: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    pub downloads_started: AtomicU64,
    pub requests: AtomicU64,
    pub outages: AtomicU64,
}

/// A plug shared between its supervisor, its connections, the broadcast listener and its
/// download task.
#[derive(Debug)]
pub(crate) struct PlugShared {
    pub id: Identity,
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
}

fn err(code: i64, msg: &str) -> Value {
    json!({"err_code": code, "err_msg": msg})
}

fn ok() -> Value {
    json!({"err_code": 0})
}

fn with_ok(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("err_code".into(), json!(0));
    }
    v
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Which outlets a request's `context` selects.
enum Ctx {
    None,
    Children(Vec<usize>),
    Bad,
}

impl PlugShared {
    pub fn new(
        id: Identity,
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
        };
        let (epoch, _) = watch::channel(0);
        Self {
            id,
            state: Mutex::new(state),
            counters: Counters::default(),
            online: AtomicBool::new(false),
            hanging: AtomicBool::new(false),
            udp: Mutex::new(None),
            ctl,
            epoch,
            token,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PlugState> {
        // A panic while holding the lock cannot leave the state half-written in a way that
        // matters to a simulator; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_hanging(&self) -> bool {
        self.hanging.load(Ordering::Relaxed) || self.id.has(FaultKind::Hang)
    }

    /// Answers one request object (all modules and methods in it).
    pub fn respond(self: &Arc<Self>, req: &Value, now: f64) -> Value {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let Some(root) = req.as_object() else {
            return json!({"err_code": -1, "err_msg": "module not support"});
        };
        let ctx = self.context(root);
        let mut out = Map::new();
        for (module, methods) in root {
            if module == "context" {
                continue;
            }
            let reply = match methods.as_object() {
                None => err(-3, "invalid argument"),
                Some(methods) => self.module(module, methods, &ctx, now),
            };
            out.insert(module.clone(), reply);
        }
        Value::Object(out)
    }

    fn context(&self, root: &Map<String, Value>) -> Ctx {
        let Some(c) = root.get("context") else {
            return Ctx::None;
        };
        if !self.id.profile.is_strip() {
            return Ctx::None;
        }
        let Some(ids) = c.get("child_ids").and_then(Value::as_array) else {
            return Ctx::Bad;
        };
        let n = self.id.profile.outlets.len();
        let mut idx = Vec::new();
        for v in ids {
            let Some(s) = v.as_str() else {
                return Ctx::Bad;
            };
            let found = (0..n).find(|&i| {
                s.eq_ignore_ascii_case(&self.id.child_id(i))
                    || (s.len() <= 2 && s.parse::<usize>() == Ok(i))
            });
            match found {
                Some(i) => idx.push(i),
                None => return Ctx::Bad,
            }
        }
        if idx.is_empty() {
            Ctx::Bad
        } else {
            Ctx::Children(idx)
        }
    }

    fn module(
        self: &Arc<Self>,
        module: &str,
        methods: &Map<String, Value>,
        ctx: &Ctx,
        now: f64,
    ) -> Value {
        let p = self.id.profile;
        let supported = match module {
            "system" | "time" | "cnCloud" | "schedule" | "count_down" | "anti_theft" | "netif" => {
                true
            }
            "emeter" => p.has_meter(),
            "smartlife.iot.smartpowerstrip.manage" => p.is_strip(),
            _ => false,
        };
        if !supported {
            return err(-1, "module not support");
        }
        let mut out = Map::new();
        for (method, args) in methods {
            let r = match module {
                "system" => self.system(method, args, ctx, now),
                "emeter" => self.emeter(method, args, ctx, now),
                "time" => time_module(method, now),
                "cnCloud" => match method.as_str() {
                    "get_info" => json!({"binded": 0, "cld_connection": 0, "fwDlPage": "",
                        "fwNotifyType": 0, "illegalType": 0, "server": "n-devs.tplinkcloud.com",
                        "stopConnect": 0, "tcspInfo": "", "tcspStatus": 0, "username": "",
                        "err_code": 0}),
                    // No cloud connection: what a KP105 without cloud answers.
                    "get_intl_fw_list" => err(-7, "unknown error"),
                    _ => err(-2, "member not support"),
                },
                "schedule" | "count_down" | "anti_theft" => match method.as_str() {
                    "get_rules" => {
                        json!({"rule_list": [], "version": 2, "enable": 0, "err_code": 0})
                    }
                    "get_next_action" if module == "schedule" => json!({"type": -1, "err_code": 0}),
                    _ => err(-2, "member not support"),
                },
                "netif" => match method.as_str() {
                    "get_stainfo" => json!({"ssid": "plugfleet-sim", "key_type": 3,
                        "rssi": self.id.rssi, "err_code": 0}),
                    _ => err(-2, "member not support"),
                },
                _ => match method.as_str() {
                    "get_relationship" => {
                        let slots: Vec<Value> = (0..p.outlets.len())
                            .map(|i| json!({"child_id": self.id.child_id(i), "hw_slot": i}))
                            .collect();
                        json!({"child_num": slots.len(), "slots": slots, "err_code": 0})
                    }
                    _ => err(-2, "member not support"),
                },
            };
            out.insert(method.clone(), r);
        }
        Value::Object(out)
    }

    fn system(self: &Arc<Self>, method: &str, args: &Value, ctx: &Ctx, now: f64) -> Value {
        match method {
            "get_sysinfo" => self.sysinfo(now),
            "set_relay_state" => {
                let Some(on) = args.get("state").and_then(Value::as_i64) else {
                    return err(-3, "invalid argument");
                };
                let mut st = self.lock();
                let targets = match ctx {
                    Ctx::Bad => return err(-14, "entry not exist"),
                    Ctx::Children(ix) => ix.clone(),
                    Ctx::None => (0..st.outlets.len()).collect(),
                };
                for i in targets {
                    if let Some(o) = st.outlets.get_mut(i) {
                        o.set_relay(on != 0, now);
                    }
                }
                ok()
            }
            "set_dev_alias" => {
                let Some(alias) = args.get("alias").and_then(Value::as_str) else {
                    return err(-3, "invalid argument");
                };
                if alias.chars().count() > 64 {
                    return err(-3, "invalid argument");
                }
                let mut st = self.lock();
                match ctx {
                    Ctx::Bad => return err(-14, "entry not exist"),
                    Ctx::Children(ix) => {
                        for &i in ix {
                            if let Some(o) = st.outlets.get_mut(i) {
                                o.alias = alias.to_owned();
                            }
                        }
                    }
                    Ctx::None => st.alias = alias.to_owned(),
                }
                ok()
            }
            "set_led_off" => {
                let Some(off) = args.get("off").and_then(Value::as_i64) else {
                    return err(-3, "invalid argument");
                };
                self.lock().led_off = off != 0;
                ok()
            }
            "reboot" | "reset" => {
                let delay = args.get("delay").and_then(Value::as_u64).unwrap_or(1);
                let cause = if method == "reset" {
                    Cause::Reset
                } else {
                    Cause::Reboot
                };
                self.schedule_outage(Outage {
                    after: self.id.scaled(Duration::from_secs(delay.min(3600))),
                    down: self
                        .id
                        .scaled(Duration::from_secs(self.id.profile.reboot_time_s)),
                    cause,
                });
                ok()
            }
            "download_firmware" => self.start_download(args),
            "get_download_state" => self.download_state(),
            "flash_firmware" => self.flash(),
            _ => err(-2, "member not support"),
        }
    }

    pub(crate) fn schedule_outage(&self, o: Outage) {
        let _ = self.ctl.send(o);
    }

    /// The `get_sysinfo` object: the profile's template with this plug's identity and state.
    pub fn sysinfo(&self, now: f64) -> Value {
        let p = self.id.profile;
        let mut s = p.sysinfo.clone();
        let st = self.lock();
        let mut set = |k: &str, v: Value| {
            if s.contains_key(k) {
                s.insert(k.into(), v);
            }
        };
        set("alias", json!(st.alias));
        set("deviceId", json!(self.id.device_id));
        set("hwId", json!(self.id.hw_id));
        set("oemId", json!(self.id.oem_id));
        set("mac", json!(self.id.mac));
        set("sw_ver", json!(st.sw_ver));
        set("led_off", json!(u8::from(st.led_off)));
        set("updating", json!(0));
        let jitter = (load::unit(self.id.seed, (now / 5.0) as u64) * 5.0) as i64 - 2;
        set("rssi", json!(self.id.rssi + jitter));
        set("latitude", json!(round(self.id.latitude, 6)));
        set("longitude", json!(round(self.id.longitude, 6)));
        set(
            "latitude_i",
            json!((self.id.latitude * 10_000.0).round() as i64),
        );
        set(
            "longitude_i",
            json!((self.id.longitude * 10_000.0).round() as i64),
        );
        let on_time = |o: &Outlet| {
            if o.relay_on {
                (now - o.on_since).max(0.0) as i64
            } else {
                0
            }
        };
        if p.is_strip() {
            let children: Vec<Value> = st
                .outlets
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    json!({"id": self.id.child_id(i), "state": u8::from(o.relay_on),
                        "alias": o.alias, "on_time": on_time(o), "next_action": {"type": -1}})
                })
                .collect();
            s.insert("child_num".into(), json!(children.len()));
            s.insert("children".into(), Value::Array(children));
        } else if let Some(o) = st.outlets.first() {
            set("relay_state", json!(u8::from(o.relay_on)));
            set("on_time", json!(on_time(o)));
        }
        s.insert("err_code".into(), json!(0));
        Value::Object(s)
    }

    fn outlet_index(&self, ctx: &Ctx) -> Result<usize, Value> {
        match ctx {
            Ctx::Bad => Err(err(-14, "entry not exist")),
            Ctx::Children(ix) => Ok(ix.first().copied().unwrap_or(0)),
            // A strip's parent-level reading looks like one outlet's (PROTOCOL.md §5.4).
            Ctx::None => Ok(0),
        }
    }

    fn emeter(&self, method: &str, args: &Value, ctx: &Ctx, now: f64) -> Value {
        let i = match self.outlet_index(ctx) {
            Ok(i) => i,
            Err(e) => return e,
        };
        match method {
            "get_realtime" => self.realtime(i, now),
            "get_daystat" => {
                let (Some(y), Some(m)) = (
                    args.get("year").and_then(Value::as_i64),
                    args.get("month").and_then(Value::as_u64),
                ) else {
                    return err(-3, "invalid argument");
                };
                if !(1..=12).contains(&m) || !(1970..=9999).contains(&y) {
                    return err(-3, "invalid argument");
                }
                self.daystat(i, y, m as u32, now)
            }
            "get_monthstat" => {
                let Some(y) = args.get("year").and_then(Value::as_i64) else {
                    return err(-3, "invalid argument");
                };
                if !(1970..=9999).contains(&y) {
                    return err(-3, "invalid argument");
                }
                self.monthstat(i, y, now)
            }
            "erase_emeter_stat" => {
                let mut st = self.lock();
                let today = (now / 86_400.0).floor() as i64;
                st.stats_floor = today;
                st.start_day = today;
                st.start_frac = 0.0;
                for o in &mut st.outlets {
                    o.advance(now);
                    o.total_wh = 0.0;
                    o.day_wh = 0.0;
                }
                ok()
            }
            "get_vgain_igain" => json!({"vgain": 13462, "igain": 16835, "err_code": 0}),
            _ => err(-2, "member not support"),
        }
    }

    /// One reading of outlet `i`, with the reading faults applied.
    fn realtime(&self, i: usize, now: f64) -> Value {
        let p = self.id.profile;
        let mut st = self.lock();
        st.readings += 1;
        let n = st.readings;
        let Some(o) = st.outlets.get_mut(i) else {
            return err(-14, "entry not exist");
        };
        o.advance(now);
        let volts = o.load.voltage_v(now);
        let mut watts = if o.relay_on { o.load.power_w(now) } else { 0.0 };
        let amps = o.load.current_a(watts, volts);
        let total_wh = o.total_wh;
        drop(st);
        if self.id.has(FaultKind::Bogus28kw) || (self.id.has(FaultKind::Glitch28kw) && n % 3 == 0) {
            watts = 28_000.0 + load::unit(self.id.seed, n) * 400.0;
        }
        let unit_scale = self.id.has(FaultKind::UnitScale);
        let mut r = match p.meter {
            MeterScheme::Float => json!({
                "voltage": round(volts, 6), "current": round(amps, 6),
                "power": round(watts, 6), "total": round(total_wh / 1000.0, 3),
            }),
            _ => json!({
                "voltage_mv": (volts * 1000.0).round() as i64,
                "current_ma": (amps * 1000.0).round() as i64,
                "power_mw": (watts * 1000.0).round() as i64,
                "total_wh": total_wh.floor() as i64,
            }),
        };
        if let Some(obj) = r.as_object_mut() {
            if unit_scale {
                // The firmware bug: milliwatts in the watts field.
                obj.remove("power_mw");
                obj.insert("power".into(), json!(round(watts * 1000.0, 3)));
            }
            if p.slot_id {
                obj.insert("slot_id".into(), json!(i));
            }
        }
        with_ok(r)
    }

    /// Energy of outlet `i` on day number `day`, or None when the plug has no data for it.
    fn day_energy_kwh(&self, st: &mut PlugState, i: usize, day: i64, now: f64) -> Option<f64> {
        let today = (now / 86_400.0).floor() as i64;
        if day < st.stats_floor || day > today {
            return None;
        }
        let start_day = st.start_day;
        let start_frac = st.start_frac;
        let o = st.outlets.get_mut(i)?;
        if day < today {
            return Some(o.load.day_kwh(day));
        }
        o.advance(now);
        let before = if start_day == today {
            o.load.day_kwh(day) * start_frac
        } else {
            0.0
        };
        Some(before + o.day_wh / 1000.0)
    }

    fn energy_entry(&self, y: i64, m: u32, d: Option<u32>, kwh: f64) -> Value {
        let mut e = json!({"year": y, "month": m});
        if let Some(obj) = e.as_object_mut() {
            if let Some(d) = d {
                obj.insert("day".into(), json!(d));
            }
            match self.id.profile.meter {
                MeterScheme::Float => obj.insert("energy".into(), json!(round(kwh, 3))),
                _ => obj.insert("energy_wh".into(), json!((kwh * 1000.0).round() as i64)),
            };
        }
        e
    }

    fn daystat(&self, i: usize, y: i64, m: u32, now: f64) -> Value {
        let mut st = self.lock();
        let first = load::days_from_civil(y, m, 1);
        let mut list = Vec::new();
        for d in 1..=load::days_in_month(y, m) {
            if let Some(kwh) = self.day_energy_kwh(&mut st, i, first + i64::from(d) - 1, now) {
                list.push(self.energy_entry(y, m, Some(d), kwh));
            }
        }
        json!({"day_list": list, "err_code": 0})
    }

    fn monthstat(&self, i: usize, y: i64, now: f64) -> Value {
        let mut st = self.lock();
        let mut list = Vec::new();
        for m in 1..=12u32 {
            let first = load::days_from_civil(y, m, 1);
            let mut sum = None;
            for d in 0..i64::from(load::days_in_month(y, m)) {
                if let Some(kwh) = self.day_energy_kwh(&mut st, i, first + d, now) {
                    *sum.get_or_insert(0.0) += kwh;
                }
            }
            if let Some(kwh) = sum {
                list.push(self.energy_entry(y, m, None, kwh));
            }
        }
        json!({"month_list": list, "err_code": 0})
    }

    fn start_download(self: &Arc<Self>, args: &Value) -> Value {
        let Some(url) = args.get("url").and_then(Value::as_str) else {
            return err(-3, "invalid argument");
        };
        let Ok(target) = super::firmware::parse_url(url) else {
            // Not plain HTTP to a loopback address: the simulator never leaves loopback.
            return err(-3, "invalid argument");
        };
        let id = {
            let mut st = self.lock();
            st.download_id += 1;
            let id = st.download_id;
            st.download = Download::Running {
                id,
                received: 0,
                len: None,
            };
            id
        };
        self.counters
            .downloads_started
            .fetch_add(1, Ordering::Relaxed);
        tokio::spawn(super::firmware::download(self.clone(), id, target));
        ok()
    }

    fn download_state(&self) -> Value {
        let p = self.id.profile;
        let flash = self.id.reported_secs(p.flash_time_s);
        let reboot = self.id.reported_secs(p.reboot_time_s);
        match &self.lock().download {
            Download::None | Download::Failed { .. } => err(-7, "unknown error"),
            Download::Running { received, len, .. } => {
                let ratio = match len {
                    Some(l) if *l > 0 => ((received.saturating_mul(100)) / l).min(99),
                    _ => 0,
                };
                json!({"status": 1, "ratio": ratio, "flash_time": flash,
                    "reboot_time": reboot, "err_code": 0})
            }
            Download::Complete { .. } => json!({"status": 0, "ratio": 100,
                "flash_time": flash, "reboot_time": reboot, "err_code": 0}),
        }
    }

    fn flash(&self) -> Value {
        let header = {
            let mut st = self.lock();
            match &st.download {
                Download::Complete { header } => {
                    let h = header.clone();
                    st.download = Download::None;
                    Some(h)
                }
                _ => None,
            }
        };
        let Some(header) = header else {
            self.counters
                .premature_flash_attempts
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(ip = %self.id.ip, "flash_firmware refused: no complete, valid image");
            return err(-5, "not enough memory");
        };
        self.counters.flashes.fetch_add(1, Ordering::Relaxed);
        let p = self.id.profile;
        self.schedule_outage(Outage {
            // Let the reply leave first.
            after: self.id.scaled(Duration::from_millis(200)),
            down: self
                .id
                .scaled(Duration::from_secs(p.flash_time_s + p.reboot_time_s)),
            cause: Cause::Flash {
                sw_ver: header.sw_ver(),
            },
        });
        ok()
    }

    /// Records download progress; false when this download is no longer the current one.
    pub fn download_progress(&self, id: u64, received: u64, len: Option<u64>) -> bool {
        let mut st = self.lock();
        match &mut st.download {
            Download::Running { id: cur, .. } if *cur == id => {
                st.download = Download::Running { id, received, len };
                true
            }
            _ => false,
        }
    }

    /// Records the end of a download.
    pub fn download_done(&self, id: u64, result: Result<ImageHeader, String>) {
        let mut st = self.lock();
        if !matches!(&st.download, Download::Running { id: cur, .. } if *cur == id) {
            return;
        }
        st.download = match result {
            Ok(header) => Download::Complete { header },
            Err(reason) => {
                tracing::info!(ip = %self.id.ip, %reason, "firmware download failed");
                Download::Failed { reason }
            }
        };
    }

    /// Is download `id` still the current one?
    pub fn download_current(&self, id: u64) -> bool {
        matches!(&self.lock().download, Download::Running { id: cur, .. } if *cur == id)
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
        for o in &mut st.outlets {
            // Nothing was drawn while the plug was down.
            o.last_t = now;
        }
        let reboot = !matches!(cause, Cause::Flaky);
        if reboot {
            for o in &mut st.outlets {
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
        let body = json!({"error_code": 0, "result": r});
        let bytes = serde_json::to_vec(&body).ok()?;
        Some(crate::protocol::tdp::encode_packet(&bytes, 0, serial))
    }
}

fn time_module(method: &str, now: f64) -> Value {
    match method {
        "get_time" => {
            let day = (now / 86_400.0).floor() as i64;
            let (y, m, d) = load::civil_from_days(day);
            let s = now.rem_euclid(86_400.0) as u64;
            json!({"year": y, "month": m, "mday": d, "hour": s / 3600,
                "min": (s / 60) % 60, "sec": s % 60, "err_code": 0})
        }
        "get_timezone" => json!({"index": 39, "err_code": 0}),
        _ => err(-2, "member not support"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 1_750_000_000.0;

    fn plug(profile: &str, faults: &[FaultKind]) -> Arc<PlugShared> {
        let p = profile::find(profile).expect("profile");
        let id = Identity::new(
            Ipv4Addr::new(127, 9, 9, 9),
            9999,
            20002,
            p,
            faults.to_vec(),
            0.01,
        );
        let (tx, _rx) = mpsc::unbounded_channel();
        Arc::new(PlugShared::new(id, tx, CancellationToken::new(), T0))
    }

    fn call(p: &Arc<PlugShared>, req: Value, now: f64) -> Value {
        p.respond(&req, now)
    }

    fn realtime(p: &Arc<PlugShared>, now: f64) -> crate::protocol::Realtime {
        crate::protocol::Realtime::from_reply(&call(p, json!({"emeter":{"get_realtime":{}}}), now))
            .expect("realtime")
    }

    #[test]
    fn readings_follow_the_relay_and_total_grows() {
        let p = plug("kp115-us-hw1", &[]);
        call(&p, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        let a = realtime(&p, T0 + 1.0);
        assert!(a.power_w.expect("w") > 0.0);
        assert!((110.0..130.0).contains(&a.voltage_v.expect("v")));
        let b = realtime(&p, T0 + 1.0 + 3600.0);
        let grown = b.total_kwh.expect("t") - a.total_kwh.expect("t");
        let mean = p.lock().outlets[0].load.mean_w();
        assert!(grown > 0.0 && grown < 3.0 * mean / 1000.0 + 0.01, "{grown}");
        call(
            &p,
            json!({"system":{"set_relay_state":{"state":0}}}),
            T0 + 3602.0,
        );
        let c = realtime(&p, T0 + 7200.0);
        assert_eq!(c.power_w, Some(0.0));
        assert_eq!(c.current_a, Some(0.0));
        assert!(c.voltage_v.expect("v") > 100.0);
        assert!((c.total_kwh.expect("t") - b.total_kwh.expect("t")).abs() < 0.005);
        let info = crate::protocol::SysInfo::from_reply(&call(
            &p,
            json!({"system":{"get_sysinfo":{}}}),
            T0 + 7200.0,
        ))
        .expect("sysinfo");
        assert_eq!(info.relay_on, Some(false));
        assert_eq!(info.on_time, Some(0));
    }

    #[test]
    fn schemes_follow_the_profile() {
        use crate::protocol::UnitScheme;
        assert_eq!(
            realtime(&plug("hs110-eu-hw1", &[]), T0).scheme,
            UnitScheme::Base
        );
        assert_eq!(
            realtime(&plug("hs110-eu-hw4", &[]), T0).scheme,
            UnitScheme::Milli
        );
        let r = call(
            &plug("hs105-us-hw1", &[]),
            json!({"emeter":{"get_realtime":{}}}),
            T0,
        );
        assert_eq!(
            r,
            json!({"emeter":{"err_code":-1,"err_msg":"module not support"}})
        );
    }

    #[test]
    fn old_and_new_sysinfo_shapes() {
        let old = call(
            &plug("hs110-eu-hw1", &[]),
            json!({"system":{"get_sysinfo":{}}}),
            T0,
        );
        let s = &old["system"]["get_sysinfo"];
        assert!(s["type"].is_string() && s["fwId"].is_string() && s["latitude"].is_f64());
        assert!(s.get("latitude_i").is_none() && s.get("mic_type").is_none());
        let new = call(
            &plug("hs110-eu-hw4", &[]),
            json!({"system":{"get_sysinfo":{}}}),
            T0,
        );
        let s = &new["system"]["get_sysinfo"];
        assert!(s["mic_type"].is_string() && s["latitude_i"].is_i64() && s["status"] == "new");
        assert_eq!(s["deviceId"].as_str().expect("id").len(), 40);
    }

    #[test]
    fn reading_faults() {
        let p = plug("hs110-eu-hw4", &[FaultKind::Bogus28kw]);
        assert!(realtime(&p, T0).power_w.expect("w") >= 28_000.0);
        let p = plug("hs110-eu-hw4", &[FaultKind::Glitch28kw]);
        call(&p, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        let w: Vec<f64> = (0..6)
            .map(|i| realtime(&p, T0 + f64::from(i)).power_w.expect("w"))
            .collect();
        assert_eq!(w.iter().filter(|x| **x >= 28_000.0).count(), 2, "{w:?}");
        let p = plug("hs110-eu-hw4", &[FaultKind::UnitScale]);
        call(&p, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        let r = realtime(&p, T0 + 1.0);
        assert!(r.raw.get("power").is_some() && r.raw.get("power_mw").is_none());
        let p2 = plug("hs110-eu-hw4", &[]);
        call(&p2, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        let ok = realtime(&p2, T0 + 1.0);
        let ratio = r.power_w.expect("w") / ok.power_w.expect("w");
        assert!((999.0..1001.0).contains(&ratio), "{ratio}");
    }

    #[test]
    fn strips_answer_per_outlet() {
        let p = plug("hs300-us-hw2", &[]);
        let id3 = p.id.child_id(3);
        let r = call(
            &p,
            json!({"context":{"child_ids":[id3]},"system":{"set_relay_state":{"state":0}}}),
            T0,
        );
        assert_eq!(r["system"]["set_relay_state"]["err_code"], 0);
        let info = crate::protocol::SysInfo::from_reply(&call(
            &p,
            json!({"system":{"get_sysinfo":{}}}),
            T0,
        ))
        .expect("sysinfo");
        assert_eq!(info.children.len(), 6);
        assert!(!info.children[3].relay_on);
        let rt = call(
            &p,
            json!({"context":{"child_ids":[p.id.child_id(3)]},"emeter":{"get_realtime":{}}}),
            T0 + 1.0,
        );
        let rt = crate::protocol::Realtime::from_reply(&rt).expect("rt");
        assert_eq!(rt.slot_id, Some(3));
        assert_eq!(rt.power_w, Some(0.0));
        let bad = call(
            &p,
            json!({"context":{"child_ids":["NOPE"]},"emeter":{"get_realtime":{}}}),
            T0,
        );
        assert_eq!(bad["emeter"]["get_realtime"]["err_code"], -14);
        assert_eq!(bad["emeter"]["get_realtime"]["err_msg"], "entry not exist");
        let alias = call(
            &p,
            json!({"context":{"child_ids":["01"]},"system":{"set_dev_alias":{"alias":"TV"}}}),
            T0,
        );
        assert_eq!(alias["system"]["set_dev_alias"]["err_code"], 0);
        assert_eq!(p.lock().outlets[1].alias, "TV");
    }

    #[test]
    fn unknown_methods_and_modules() {
        let p = plug("hs100-us-hw2", &[]);
        let r = call(
            &p,
            json!({"system":{"frobnicate":{}},"smartlife.iot.dimmer":{"x":{}}}),
            T0,
        );
        assert_eq!(r["system"]["frobnicate"]["err_code"], -2);
        assert_eq!(r["system"]["frobnicate"]["err_msg"], "member not support");
        assert_eq!(r["smartlife.iot.dimmer"]["err_code"], -1);
        let r = call(&p, json!({"system":{"set_relay_state":{"state":"on"}}}), T0);
        assert_eq!(r["system"]["set_relay_state"]["err_code"], -3);
    }

    #[test]
    fn stats_are_plausible() {
        let p = plug("hs110-eu-hw4", &[]);
        let now = T0;
        let (y, m, d) = load::civil_from_days((now / 86_400.0).floor() as i64);
        let r = call(
            &p,
            json!({"emeter":{"get_daystat":{"year":y,"month":m}}}),
            now,
        );
        let days = crate::protocol::reply::parse_stats(&r, "get_daystat").expect("days");
        assert_eq!(days.len(), d as usize, "every day of this month so far");
        assert!(
            days.iter()
                .all(|e| e.energy_kwh >= 0.0 && e.energy_kwh < 100.0)
        );
        assert!(r["emeter"]["get_daystat"]["day_list"][0]["energy_wh"].is_i64());
        let r = call(&p, json!({"emeter":{"get_monthstat":{"year":y}}}), now);
        let months = crate::protocol::reply::parse_stats(&r, "get_monthstat").expect("m");
        assert!(!months.is_empty() && months.len() <= m as usize);
        let r = call(
            &p,
            json!({"emeter":{"get_daystat":{"year":y + 1,"month":1}}}),
            now,
        );
        assert_eq!(r["emeter"]["get_daystat"]["day_list"], json!([]));
        let float = plug("hs110-eu-hw1", &[]);
        let r = call(
            &float,
            json!({"emeter":{"get_daystat":{"year":y,"month":m}}}),
            now,
        );
        assert!(r["emeter"]["get_daystat"]["day_list"][0]["energy"].is_f64());
    }

    #[test]
    fn premature_flash_is_refused_and_counted() {
        let p = plug("hs110-us-hw1", &[]);
        let r = call(&p, json!({"system":{"flash_firmware":{}}}), T0);
        assert_eq!(r["system"]["flash_firmware"]["err_code"], -5);
        assert_eq!(
            p.counters.premature_flash_attempts.load(Ordering::Relaxed),
            1
        );
        let r = call(&p, json!({"system":{"get_download_state":{}}}), T0);
        assert_eq!(r["system"]["get_download_state"]["err_code"], -7);
        let r = call(
            &p,
            json!({"system":{"download_firmware":{"url":"http://10.0.0.5/x.bin"}}}),
            T0,
        );
        assert_eq!(r["system"]["download_firmware"]["err_code"], -3);
    }

    #[test]
    fn coming_back_resets_total_and_applies_the_flash() {
        let p = plug("kp115-us-hw1", &[]);
        call(&p, json!({"system":{"set_relay_state":{"state":1}}}), T0);
        assert!(realtime(&p, T0 + 3600.0).total_kwh.expect("t") > 0.0);
        p.went_offline(T0 + 3600.0);
        p.came_back(
            &Cause::Flash {
                sw_ver: "1.0.22 Build 240418 Rel.102311".into(),
            },
            T0 + 3700.0,
        );
        assert_eq!(realtime(&p, T0 + 3700.0).total_kwh, Some(0.0));
        assert_eq!(p.lock().sw_ver, "1.0.22 Build 240418 Rel.102311");
        let old = plug("kp115-us-hw1", &[FaultKind::OldVersion]);
        old.came_back(
            &Cause::Flash {
                sw_ver: "9.9.9 Build 1 Rel.1".into(),
            },
            T0,
        );
        assert_eq!(old.lock().sw_ver, old.id.profile.sw_ver());
    }

    #[test]
    fn reported_times_are_scaled_and_rounded_up() {
        let p = plug("hs110-us-hw1", &[]);
        assert_eq!(p.id.reported_secs(0), 0);
        assert_eq!(p.id.reported_secs(20), 1);
        assert_eq!(p.id.reported_secs(250), 3);
        assert_eq!(
            p.id.scaled(Duration::from_secs(20)),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn identities_are_unique_per_address() {
        let p = profile::find("hs110-eu-hw1").expect("p");
        let a = Identity::new(Ipv4Addr::new(127, 0, 0, 2), 1, 1, p, vec![], 1.0);
        let b = Identity::new(Ipv4Addr::new(127, 0, 0, 3), 1, 1, p, vec![], 1.0);
        assert_ne!(a.mac, b.mac);
        assert_ne!(a.device_id, b.device_id);
        assert_eq!(a.mac, "50:C7:BF:00:00:02");
        assert_eq!(a.hw_id, b.hw_id, "same hardware SKU");
    }
}
