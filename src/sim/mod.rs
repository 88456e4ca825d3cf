//! A faithful plug simulator: simulated Kasa plugs on loopback that a third-party client of the
//! port-9999 protocol cannot tell from real ones. Used by `plugfleet sim`, the demo, the
//! benchmarks and the integration tests.
//!
//! # Shape
//!
//! - [`profile`]: device models as data (`assets/profiles/*.json`, embedded), each shaped on a real
//!   dump from `tests/fixtures/`: HS110(EU) hw 1.0 (float meter, old sysinfo shape), HS110(US)
//!   hw 1.0, HS110(EU) hw 4.0 (milli meter, new shape), KP115(US), HS100(US), HS105(US) (no
//!   meter), HS300(US) (six outlets, per-outlet meter via `context`), KP303(US) (three outlets, no
//!   meter) and HS100(UK) hw 4.1, a newer-protocol (KLAP) plug that refuses port 9999 and only
//!   answers the UDP 20002 discovery probe. `loads.json` lists the appliances plugged into them.
//! - One plug: `identity` (who it is, fixed), `plug` (its shared state, counters and outages),
//!   `outlets` (relay and energy per outlet, the strip's `context.child_ids`), and its answer to
//!   every request, plain JSON in and out: `dispatch` (routing and the small modules), `system`
//!   (sysinfo, relay, alias, reboot), `emeter` (readings, history), `flash` (download and flash).
//! - [`images`]: which firmware images the plugs accept, by SHA-256
//!   (`assets/profiles/images.json`); `fetch`: the plug's own HTTP client; `load`: readings as a
//!   function of time; `server`: the sockets.
//! - [`Fleet`]: N plugs on consecutive 127.x.y.z addresses sharing one port.
//! - [`klap`]: an HTTP server for each newer-protocol plug of a fleet: IOT JSON over KLAP v1 for
//!   HS100(UK) hw 4.1, SMART JSON-RPC over KLAP v2 for KP125M and over AES securePassthrough for
//!   P110 (the SMART profiles are outside the default mixed fleet, see [`profile::extra`]), with
//!   its own faults; [`tls`]: the same server over TLS for a profile whose discovery template
//!   says `is_support_https` (KP125M-HTTPS), with the test-only certificate in `assets/tls/`.
//!
//! # Identity
//!
//! Each plug's MAC is the profile's OUI followed by the last three octets of its address, its
//! `deviceId` (40 hex) a hash of address and model, its alias "`<room> <appliance>`" chosen from
//! the address: stable across restarts, unique across the fleet. Strip outlets are
//! `<deviceId>00`…`<deviceId>05`.
//!
//! # Sockets, and broadcast on loopback
//!
//! Each legacy plug binds a TCP listener and a UDP socket on `PLUG_IP:PORT` (the fleet's port;
//! with port 0 the first plug's TCP bind picks a free port and every other plug reuses it). TCP
//! is framed ([`FrameCodec`](crate::protocol::FrameCodec)): a request whose header and body arrive
//! in separate segments is reassembled, several requests may share a connection, and the plug
//! closes cleanly when the client does (or on a bad frame / non-JSON request, or after 120 s
//! idle). UDP is unframed and answered from the plug's own socket.
//!
//! Linux delivers a datagram sent to `127.255.255.255:PORT` to sockets bound to `0.0.0.0:PORT` or
//! `127.255.255.255:PORT`, **not** to sockets bound to `127.0.0.N:PORT`. So a fleet owns **one**
//! broadcast listener bound to `127.255.255.255:PORT` with `SO_REUSEADDR` (several fleets on the
//! same port can coexist, each hearing every broadcast). The listener hands each datagram to every
//! online plug (minus those with `ignore-broadcast`), and each plug answers **through its own
//! unicast socket**, so the reply's source address is `PLUG_IP:PORT` — exactly what a client on a
//! real LAN sees. Newer-protocol plugs do the same on the TDP port (default 20002): a socket on
//! `PLUG_IP:TDP_PORT` and a shared listener on `127.255.255.255:TDP_PORT`.
//!
//! Plugs are tasks, not threads: one supervisor task per plug (accept, UDP, outages) plus one per
//! open connection; readings are computed lazily from one time source ([`load::now_unix`]), so
//! a 250-plug fleet idles at no cost.
//!
//! # Live behaviour
//!
//! Readings follow the relay and the appliance: duty cycles (a fridge's compressor), a daily
//! rhythm, a slow wobble and noise; voltage near the profile's mains (120/230 V) with drift;
//! current from power and power factor. `total` integrates power on the plug's clock, real time
//! unless [`FleetSpec::clock_rate`] says otherwise (the time scale does not speed up energy, so
//! totals stay physically plausible). `get_daystat`/`get_monthstat`
//! return deterministic history since an install date plus today's measured energy; they
//! survive reboots. Reboot (`system.reboot{delay}`) takes the plug offline — listeners closed, so
//! connections are refused, open connections dropped — for its reboot time, then it is back
//! with `total` reset. Relay (per outlet on strips), alias, LED work; an unknown child id answers
//! -14 "entry not exist", an unknown method -2 "member not support", an unknown or absent module
//! -1 "module not support" (module level).
//!
//! # Firmware
//!
//! `download_firmware{url}` makes the plug fetch `url` for real with a small HTTP/1.1 client
//! (plain http, loopback hosts only — anything else is answered -3 "invalid argument"; the
//! connection comes from the plug's own address; 5 s connect and 15 s read timeouts, 16 MiB
//! cap, throttled to ~96 KiB/s × 1/time-scale so progress is visible). `get_download_state`
//! reports `status` 1 and `ratio` (bytes received / Content-Length × 100) while downloading,
//! `status` 0 and `ratio` 100 once a complete image was accepted, and -7 "unknown error" when
//! no download was started, it failed or the image was refused (as real plugs do).
//!
//! The simulator never parses an image (it does not use the product's `firmware` module): an
//! image is accepted when its SHA-256 is in [`images`] — the demo images of `assets/firmware/`
//! plus [`FleetSpec::images`] — and the entry's model and hardware are the plug's; the entry
//! gives the `sw_ver` the plug reports once flashed. So a bug in the product's header parser
//! cannot make the simulated plug agree with it.
//!
//! `flash_firmware` is refused with -5 "not enough memory" unless such an image is held; every
//! refused attempt is counted ([`PlugHandle::premature_flash_attempts`], [`PlugHandle::stats`]).
//! After a flash the plug goes offline for `flash_time + reboot_time` (scaled, exact) and comes
//! back with the image's `sw_ver`, `total` reset and relays open (restoring them is the
//! updater's job).
//! `flash_time`/`reboot_time` are reported in whole seconds scaled by the time scale (rounded
//! up, at least 1 when the nominal value is not 0).
//!
//! # Time scale
//!
//! `time_scale` multiplies every simulated duration: reboot and flash times, the reboot delay,
//! the download rate (divided), `slow` delays and `flaky` periods. 0.01 = 100× faster.
//! It does not touch the meter: energy accrues on the plug's clock, real time by default.
//!
//! # Clock rate
//!
//! [`FleetSpec::clock_rate`] (a test knob, 1 by default) runs each plug's clock that many times
//! as fast as real time from the fleet's start: readings (duty cycles, noise, drift), the
//! energy counter, `on_time`, the day statistics and the `time` module all follow it, so a
//! test can watch an hour of metering in half a minute. Power and `total` stay consistent on
//! the plug's clock only: whoever judges them over time (the quiet `counter_vs_power` rule)
//! must advance its own clock by the same factor. Timeouts, outages and the time scale's
//! durations stay on real time.
//!
//! # Faults (`--fault IP=KIND`, [`FaultKind`])
//!
//! | kind | behaviour |
//! |---|---|
//! | `bogus-28kw` | every reading reports ~28 kW (V and A stay normal) |
//! | `glitch-28kw` | every third reading reports ~28 kW |
//! | `outlet-glitch-28kw` / `outlet-glitch-28kw:N` | on a strip, outlet N (1-based, default 1) reports ~28 kW at its first reading and every third after; the other outlets read true |
//! | `unit-scale` | milliwatts in the `power` float field (milli profiles lose `power_mw`) |
//! | `hang` | accepts TCP, reads requests, never replies; UDP never answered |
//! | `garbage` | a well-framed reply (or datagram) that is not JSON |
//! | `truncated` | the header announces the reply, half of it follows, then the plug closes; UDP: half a datagram |
//! | `oversized` | the header announces ~2 GB (0x7FFFFFF0), a few bytes follow, then the plug closes (UDP answers normally) |
//! | `slow` / `slow:MS` | replies after 4 s (or MS ms), scaled |
//! | `refuse` | nothing listens on TCP (connection refused); UDP still answers |
//! | `ignore-broadcast` | no answer to broadcast datagrams; unicast works |
//! | `download-drop` | the download stops at half and fails (-7) |
//! | `download-stall` | the download stops at 40 % and stays there, connection held open |
//! | `image-reject` | a complete, accepted image is rejected (as a bad signature): download failed |
//! | `never-back` | after a flash the plug never comes back |
//! | `old-version` | after a flash the plug comes back with its old `sw_ver` |
//! | `hang-after-flash` | after a flash the plug comes back, accepts connections, never replies |
//! | `flaky` | goes offline for 4–8 s every 20–40 s (scaled), comes back unchanged (its outlets kept metering meanwhile) |
//! | `stuck-meter` | power, voltage and current repeat the reading of the moment the relay last closed (the counter still counts) |
//! | `counter-lag` | `total` grows at 30 % of the energy drawn |
//! | `voltage-drift` / `voltage-drift:PCT` | the voltage reads 8 % (or PCT %, −50 to 50) off; current and power stay true |
//! | `phantom-load` | ~4 W (and its current) shows while the relay is off |
//! | `close-after-reply` | closes the TCP connection after every reply (one request per connection) |
//! | `history-glitch` | the energy history holds one bogus day of 600 kWh (yesterday, or today on the 1st; outlet 0 of a strip), in the month figure too; `erase_emeter_stat` clears it |
//! | `hang-daystat` | a request asking for `emeter.get_daystat` is never answered (its connection stays open); everything else is |

mod dispatch;
mod emeter;
mod error;
pub mod fault;
mod fetch;
mod flash;
mod identity;
pub mod images;
pub mod klap;
mod light;
pub mod load;
mod outlets;
mod plug;
pub mod profile;
mod reply;
mod server;
mod smart_children;
mod system;
pub mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::SimError;
pub use fault::{FaultKind, UnknownFault};
pub use fetch::{UrlError, parse_url};
pub use images::KnownImage;
pub use plug::PlugStats;
pub use profile::{MeterScheme, Profile};
pub use server::LOOPBACK_BROADCAST;

use identity::Identity;
use images::Accepted;
use plug::PlugShared;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSpec {
    /// Address of the first plug; the others follow consecutively. Must be in 127.0.0.0/8.
    pub base: Ipv4Addr,
    pub count: usize,
    /// Port of every plug (0 = pick one free port for the whole fleet).
    pub port: u16,
    /// UDP discovery port of newer-protocol plugs (0 = pick a free one).
    pub tdp_port: u16,
    /// Profile names, cycled over the plugs; empty = the default mixed fleet.
    pub profiles: Vec<String>,
    /// Multiplies every simulated duration (0.01 = 100× faster).
    pub time_scale: f64,
    /// Seconds the plugs' clock advances per real second; 1 (the default) is real time. The
    /// readings, the energy counter, `on_time` and the `time` module all run on this clock, so
    /// power and `total` stay consistent with each other on it. A test knob, not on the
    /// command line: at 100, ten minutes of energy pass in six real seconds, and a client
    /// judging the readings over time must advance its own clock by the same factor (a client
    /// on real time sees every counter run 100× too fast). See "Clock rate" above.
    pub clock_rate: f64,
    /// The plugs' time zone: their local time minus UTC, in seconds (−12 h … +14 h; 0 = UTC,
    /// the default). A real plug keeps its day and month statistics and answers `time.get_time`
    /// in the owner's local time; so do these, on the same clock.
    pub utc_offset_s: i64,
    pub faults: Vec<(Ipv4Addr, FaultKind)>,
    /// Images the plugs accept besides the demo images of `assets/profiles/images.json`
    /// (tests and benches that build their own).
    pub images: Vec<KnownImage>,
}

impl Default for FleetSpec {
    fn default() -> Self {
        Self {
            base: Ipv4Addr::new(127, 0, 0, 2),
            count: profile::all().len(),
            port: crate::protocol::DEFAULT_PORT,
            tdp_port: crate::protocol::tdp::TDP_PORT,
            profiles: Vec::new(),
            time_scale: 1.0,
            clock_rate: 1.0,
            utc_offset_s: 0,
            faults: Vec::new(),
            images: Vec::new(),
        }
    }
}

impl FleetSpec {
    /// `count` plugs from `base` on a free port (and free TDP port), default mixed profiles.
    pub fn on_free_port(base: Ipv4Addr, count: usize) -> Self {
        Self {
            base,
            count,
            port: 0,
            tdp_port: 0,
            ..Self::default()
        }
    }

    /// The addresses the plugs will have.
    pub fn addresses(&self) -> Result<Vec<Ipv4Addr>, SimError> {
        if !self.base.is_loopback() {
            return Err(SimError::Invalid(format!(
                "base address {} is not a loopback address (127.0.0.0/8); the simulator only runs on loopback",
                self.base
            )));
        }
        if self.count == 0 || self.count > 65_536 {
            return Err(SimError::Invalid(format!(
                "plug count must be between 1 and 65536, not {}",
                self.count
            )));
        }
        let first = u32::from(self.base);
        let last = first.checked_add(self.count as u32 - 1);
        match last {
            Some(l) if l < u32::from(LOOPBACK_BROADCAST) => {}
            _ => {
                return Err(SimError::Invalid(format!(
                    "{} plugs from {} do not fit below {LOOPBACK_BROADCAST}",
                    self.count, self.base
                )));
            }
        }
        Ok((0..self.count as u32)
            .map(|i| Ipv4Addr::from(first + i))
            .collect())
    }

    fn check(&self) -> Result<(Vec<Ipv4Addr>, Vec<&'static Profile>), SimError> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0 && self.time_scale <= 1000.0) {
            return Err(SimError::Invalid(format!(
                "time scale must be more than 0 and at most 1000, not {}",
                self.time_scale
            )));
        }
        if !(self.clock_rate.is_finite() && self.clock_rate > 0.0 && self.clock_rate <= 10_000.0) {
            return Err(SimError::Invalid(format!(
                "clock rate must be more than 0 and at most 10000, not {}",
                self.clock_rate
            )));
        }
        if !(-12 * 3600..=14 * 3600).contains(&self.utc_offset_s) {
            return Err(SimError::Invalid(format!(
                "UTC offset must be between -12:00 and +14:00, not {} s",
                self.utc_offset_s
            )));
        }
        let addrs = self.addresses()?;
        let profiles: Vec<&'static Profile> = if self.profiles.is_empty() {
            profile::all().iter().collect()
        } else {
            self.profiles
                .iter()
                .map(|n| {
                    profile::find(n).ok_or_else(|| {
                        SimError::Invalid(format!(
                            "unknown profile `{}` (known: {})",
                            n.chars().take(64).collect::<String>(),
                            profile::names().join(", ")
                        ))
                    })
                })
                .collect::<Result<_, _>>()?
        };
        if profiles.is_empty() {
            return Err(SimError::Invalid("no profiles available".into()));
        }
        for (ip, f) in &self.faults {
            if !addrs.contains(ip) {
                return Err(SimError::Invalid(format!(
                    "fault {f} is for {ip}, which is not one of the fleet's addresses ({} to {})",
                    addrs[0],
                    addrs[addrs.len() - 1]
                )));
            }
        }
        Ok((addrs, profiles))
    }
}

/// One simulated plug as seen from outside: what it was started as, plus live counters.
#[derive(Debug, Clone, Serialize)]
pub struct PlugHandle {
    pub ip: Ipv4Addr,
    /// The fleet's port (a newer-protocol plug refuses it; see `tdp_port`).
    pub port: u16,
    pub model: String,
    pub hw_ver: String,
    /// `sw_ver` at start (see [`PlugHandle::current_sw_ver`]).
    pub sw_ver: String,
    pub mac: String,
    pub device_id: String,
    pub alias: String,
    /// `legacy` for port-9999 plugs, `klap` for the newer protocol.
    pub protocol: String,
    pub faults: Vec<FaultKind>,
    pub profile: String,
    /// UDP discovery port of a newer-protocol plug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tdp_port: Option<u16>,
    /// Full ids of a strip's outlets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    #[serde(skip)]
    shared: Arc<PlugShared>,
}

impl PlugHandle {
    /// Every counter of this plug.
    pub fn stats(&self) -> PlugStats {
        self.shared.counters.snapshot()
    }

    /// `flash_firmware` requests refused because no complete, accepted image was held.
    pub fn premature_flash_attempts(&self) -> u64 {
        self.shared
            .counters
            .premature_flash_attempts
            .load(Ordering::Relaxed)
    }

    /// Accepted flashes.
    pub fn flashes(&self) -> u64 {
        self.shared.counters.flashes.load(Ordering::Relaxed)
    }

    /// Firmware bytes received over HTTP, all downloads together.
    pub fn bytes_downloaded(&self) -> u64 {
        self.shared
            .counters
            .bytes_downloaded
            .load(Ordering::Relaxed)
    }

    /// `download_firmware` requests accepted.
    pub fn downloads_started(&self) -> u64 {
        self.shared
            .counters
            .downloads_started
            .load(Ordering::Relaxed)
    }

    /// Requests answered (TCP and UDP).
    pub fn requests(&self) -> u64 {
        self.shared.counters.requests.load(Ordering::Relaxed)
    }

    /// Times the plug went offline (reboot, flash, flaky).
    pub fn outages(&self) -> u64 {
        self.shared.counters.outages.load(Ordering::Relaxed)
    }

    /// The `sw_ver` the plug reports now.
    pub fn current_sw_ver(&self) -> String {
        self.shared.lock().sw_ver.clone()
    }

    /// The alias the plug reports now.
    pub fn current_alias(&self) -> String {
        self.shared.lock().alias.clone()
    }

    /// Relay state of each outlet (one for plugs).
    pub fn relays(&self) -> Vec<bool> {
        self.shared
            .lock()
            .outlets
            .iter()
            .map(|o| o.relay_on)
            .collect()
    }

    /// Listening (false while rebooting, flashing or flaky-offline).
    pub fn is_online(&self) -> bool {
        self.shared.online.load(Ordering::SeqCst)
    }

    pub fn addr(&self) -> IpAddr {
        IpAddr::V4(self.ip)
    }

    pub fn has_meter(&self) -> bool {
        self.shared.id.profile.has_meter()
    }

    pub fn is_legacy(&self) -> bool {
        self.shared.id.profile.is_legacy()
    }

    /// Flash and reboot time as `get_download_state` reports them (scaled seconds).
    pub fn reported_flash_reboot_s(&self) -> (u64, u64) {
        let p = self.shared.id.profile;
        (
            self.shared.id.reported_secs(p.flash_time_s),
            self.shared.id.reported_secs(p.reboot_time_s),
        )
    }
}

/// A running simulated fleet. Dropping it stops the plugs (use [`Fleet::shutdown`] to wait).
#[derive(Debug)]
pub struct Fleet {
    plugs: Vec<PlugHandle>,
    port: u16,
    tdp_port: u16,
    time_scale: f64,
    token: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts a fleet (same as [`Fleet::start`]); for the demo, benches and tests.
pub async fn start(spec: FleetSpec) -> Result<Fleet, SimError> {
    Fleet::start(spec).await
}

impl Fleet {
    /// Binds every plug and starts serving. Must run inside a tokio runtime.
    pub async fn start(spec: FleetSpec) -> Result<Fleet, SimError> {
        let (addrs, profiles) = spec.check()?;
        let picking = spec.port == 0 || spec.tdp_port == 0;
        let mut last = None;
        for _ in 0..if picking { 12 } else { 1 } {
            match Self::try_start(&spec, &addrs, &profiles) {
                Ok(f) => return Ok(f),
                Err(e @ SimError::AddrInUse { .. }) if picking => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| SimError::Invalid("could not find a free port".into())))
    }

    fn try_start(
        spec: &FleetSpec,
        addrs: &[Ipv4Addr],
        profiles: &[&'static Profile],
    ) -> Result<Fleet, SimError> {
        let pick = |i: usize| profiles[i % profiles.len()];
        let first_legacy = (0..addrs.len()).find(|&i| pick(i).is_legacy());
        let first_newer = (0..addrs.len()).find(|&i| !pick(i).is_legacy());
        let mut port = spec.port;
        if port == 0 {
            let ip = first_legacy.map_or(addrs[0], |i| addrs[i]);
            let probe = server::bind_tcp(SocketAddr::from((ip, 0)))?;
            port = probe
                .local_addr()
                .map_err(|e| SimError::Io {
                    addr: SocketAddr::from((ip, 0)),
                    proto: "tcp",
                    msg: e.to_string(),
                })?
                .port();
        }
        let mut tdp_port = spec.tdp_port;
        if tdp_port == 0 {
            tdp_port = match first_newer {
                Some(i) => {
                    let a = SocketAddr::from((addrs[i], 0));
                    server::bind_udp(a)?
                        .local_addr()
                        .map_err(|e| SimError::Io {
                            addr: a,
                            proto: "udp",
                            msg: e.to_string(),
                        })?
                        .port()
                }
                None => port,
            };
        }

        let token = CancellationToken::new();
        let now = load::now_unix();
        let fault_of = |ip: Ipv4Addr| {
            let mut v: Vec<FaultKind> = spec
                .faults
                .iter()
                .filter(|(a, _)| *a == ip)
                .map(|(_, f)| *f)
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let accepted = Arc::new(Accepted::new(spec.images.clone()));
        let mut shared = Vec::with_capacity(addrs.len());
        let mut bound = Vec::with_capacity(addrs.len());
        let mut ids: Vec<Identity> = addrs
            .iter()
            .enumerate()
            .map(|(i, &ip)| {
                let mut id =
                    Identity::new(ip, port, tdp_port, pick(i), fault_of(ip), spec.time_scale);
                id.clock_rate = spec.clock_rate;
                id.clock_epoch = now;
                id.utc_offset_s = spec.utc_offset_s;
                id
            })
            .collect();
        identity::unique_aliases(&mut ids);
        for id in ids {
            let (tx, rx) = mpsc::unbounded_channel();
            let plug = Arc::new(PlugShared::new(
                id,
                accepted.clone(),
                tx,
                token.child_token(),
                now,
            ));
            let sockets = server::bind_plug(&plug)?;
            shared.push(plug);
            bound.push((sockets, rx));
        }
        let legacy: Vec<Arc<PlugShared>> = shared
            .iter()
            .filter(|p| p.id.profile.is_legacy())
            .cloned()
            .collect();
        let newer: Vec<Arc<PlugShared>> = shared
            .iter()
            .filter(|p| !p.id.profile.is_legacy())
            .cloned()
            .collect();
        let bcast = if legacy.is_empty() {
            None
        } else {
            Some(server::bind_broadcast(port)?)
        };
        let tdp_bcast = if newer.is_empty() {
            None
        } else {
            Some(server::bind_broadcast(tdp_port)?)
        };

        // Everything is bound: start serving.
        let mut tasks = Vec::new();
        for (plug, (sockets, rx)) in shared.iter().zip(bound) {
            tasks.push(tokio::spawn(server::run_plug(plug.clone(), sockets, rx)));
        }
        if let Some(s) = bcast {
            tasks.push(tokio::spawn(server::run_broadcast(
                s,
                legacy,
                token.clone(),
            )));
        }
        if let Some(s) = tdp_bcast {
            tasks.push(tokio::spawn(server::run_tdp_broadcast(
                s,
                newer,
                token.clone(),
            )));
        }
        let plugs = shared
            .into_iter()
            .map(|s| {
                let p = s.id.profile;
                let st = s.lock();
                PlugHandle {
                    ip: s.id.ip,
                    port,
                    model: p.model().to_owned(),
                    hw_ver: p.hw_ver().to_owned(),
                    sw_ver: st.sw_ver.clone(),
                    mac: s.id.mac.clone(),
                    device_id: s.id.device_id.clone(),
                    alias: st.alias.clone(),
                    protocol: p.protocol.clone(),
                    faults: s.id.faults.clone(),
                    profile: p.name.clone(),
                    tdp_port: (!p.is_legacy()).then_some(tdp_port),
                    children: (0..p.outlets.len()).map(|i| s.id.child_id(i)).collect(),
                    shared: {
                        drop(st);
                        s.clone()
                    },
                }
            })
            .collect();
        Ok(Fleet {
            plugs,
            port,
            tdp_port,
            time_scale: spec.time_scale,
            token,
            tasks,
        })
    }

    pub fn plugs(&self) -> &[PlugHandle] {
        &self.plugs
    }

    /// The plug at `ip`.
    pub fn plug(&self, ip: Ipv4Addr) -> Option<&PlugHandle> {
        self.plugs.iter().find(|p| p.ip == ip)
    }

    /// The port every plug listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The UDP discovery port of newer-protocol plugs.
    pub fn tdp_port(&self) -> u16 {
        self.tdp_port
    }

    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    /// Every plug's counters summed.
    pub fn stats(&self) -> PlugStats {
        let mut t = PlugStats::default();
        for p in &self.plugs {
            t.add(&p.stats());
        }
        t
    }

    /// A token cancelled when the fleet stops.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Stops every plug and waits (at most a few seconds) for their tasks to end.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        let tasks = std::mem::take(&mut self.tasks);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
