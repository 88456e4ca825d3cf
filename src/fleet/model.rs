//! The fleet model (pure): every device once, fed by discovery sightings and poll reports with
//! `now` passed in. The TUI's `App` holds one; `plugfleet status` builds one from a discovery
//! pass and a poll round; the JSON lines, the text table, `--record` rows and `/metrics` are
//! views of it.
//!
//! Per device it owns:
//! - identity ([`crate::fleet::identity`]): merged in [`Fleet::observe`] only; an address
//!   change keeps the entry (marks, history) and remembers `previous_ips`; two devices reporting
//!   one MAC stay two, each with a [`Device::conflict`] note;
//! - how it was found (every way), liveness ([`Link`], since when; a plug being flashed is
//!   [`Link::Updating`], not failing);
//! - its meters ([`Meter`]) with their history, and the judgement of the device as a whole
//!   ([`Device::judged`]): a plug's meter's, or a strip's total checked against the strip's
//!   rating plus one line per flagged outlet ([`crate::fleet::judge`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::fleet::energy::EnergyHistory;
use crate::fleet::identity::{Names, legacy_key, newer_key, valid_mac};
use crate::fleet::meter::quiet_reason;
use crate::fleet::meter::{Check, Meter, ValueFlags, Verdict};
use crate::fleet::plausibility::{Assessment, Rule};
use crate::fleet::quiet::{Finding, QuietRule, QuietRules};
use crate::fleet::ratings::{Limits, Overrides};
use crate::fleet::reading::Reading;
use crate::protocol::access::{Access, Refusal};
use crate::protocol::tdp::TdpInfo;
use crate::protocol::{Realtime, SysInfo};

/// Consecutive failed polls before a device is shown offline.
pub const OFFLINE_AFTER: u32 = 3;

/// What a device said when it was found.
#[derive(Debug, Clone, PartialEq)]
pub enum SeenInfo {
    /// A legacy plug answered `get_sysinfo` on port 9999.
    Legacy(Box<SysInfo>),
    /// Only the newer (KLAP/AES) discovery on UDP 20002 answered.
    Newer(Box<TdpInfo>),
}

/// A device was found (by discovery, or by the first poll of a `--host`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub ip: IpAddr,
    pub port: u16,
    /// How it was found: `broadcast`, `host`, `sweep`, `udp20002`.
    pub found_by: String,
    pub info: SeenInfo,
}

impl From<crate::protocol::sighting::Sighting> for Sighting {
    fn from(s: crate::protocol::sighting::Sighting) -> Self {
        use crate::protocol::sighting::DeviceReply;
        Self {
            ip: s.ip,
            port: s.port,
            found_by: s.found_by.as_str().to_owned(),
            info: match s.reply {
                DeviceReply::Legacy(sys) => SeenInfo::Legacy(Box::new(sys)),
                DeviceReply::Newer(tdp) => SeenInfo::Newer(Box::new(tdp)),
            },
        }
    }
}

/// The hasher of [`Device`]'s change fingerprint: every word folded in by a rotate, an xor and
/// a multiply by an odd constant (the rustc / Firefox "Fx" step). Each step is a bijection of
/// the state for a given word and of the word for a given state, so two inputs that differ in
/// one word never hash alike. Several times cheaper than SipHash for the ~100 words hashed
/// after every poll; not for maps keyed by what others choose.
#[derive(Debug, Default)]
struct Fold(u64);

impl Fold {
    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for Fold {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for c in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.word(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            // The length apart from the bytes: "a" and "a\0" differ.
            self.word(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.word(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.word(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.word(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.word(i as u64);
    }
}

/// One outlet of a strip.
#[derive(Debug, Clone, Default)]
pub struct Outlet {
    /// Full child id (parent deviceId + index): the outlet's identity.
    pub id: String,
    pub alias: String,
    pub relay_on: bool,
    pub meter: Option<Meter>,
    /// The energy history the outlet keeps (issue 16, [`crate::fleet::energy`]).
    pub energy: EnergyHistory,
}

/// Whether a device answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Link {
    /// Seen, not polled yet.
    Pending,
    Online,
    /// Failing, not yet offline: misses so far.
    Failing(u32),
    Offline(String),
    /// Being flashed: not answering is expected, not a failure.
    Updating,
}

/// The one-glance state of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    Ok,
    Pending,
    Updating,
    /// Answers, but its meter gave no reading (timeout, device error): never "ok".
    NoReading,
    Suspect,
    Failing,
    Bogus,
    Offline,
    /// Speaks only the newer (KLAP/AES) protocol: listed, not pollable on 9999.
    Newer,
    /// A newer-protocol device that needs the TP-Link account (none configured).
    NeedsCredentials,
    /// A newer-protocol device that refuses the account given.
    AuthFailed,
}

impl Health {
    pub fn label(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Pending => "new",
            Health::Updating => "updating",
            Health::NoReading => "no data",
            Health::Suspect => "suspect",
            Health::Failing => "failing",
            Health::Bogus => "BOGUS",
            Health::Offline => "offline",
            Health::Newer => "klap",
            Health::NeedsCredentials => "needs creds",
            Health::AuthFailed => "auth failed",
        }
    }

    /// The health of an answering device's meter with this verdict.
    fn of(v: Verdict, no_reading: bool) -> Health {
        match v {
            Verdict::Ok if no_reading => Health::NoReading,
            Verdict::Ok => Health::Ok,
            Verdict::Suspect => Health::Suspect,
            Verdict::Bogus => Health::Bogus,
        }
    }
}

/// A device of the fleet.
#[derive(Debug, Clone)]
pub struct Device {
    /// Identity ([`crate::fleet::identity`]): deviceId (legacy) or `mac:<MAC>` (newer-protocol
    /// devices).
    pub key: String,
    pub addr: SocketAddr,
    /// Every way it was found.
    pub found_by: BTreeSet<String>,
    pub sysinfo: Option<SysInfo>,
    pub tdp: Option<TdpInfo>,
    pub meter: Option<Meter>,
    pub outlets: Vec<Outlet>,
    pub link: Link,
    /// When the link last changed state.
    pub link_since: Instant,
    pub last_seen: Option<Instant>,
    pub first_seen: Instant,
    pub last_error: Option<String>,
    /// The address before the last move.
    pub previous_addr: Option<SocketAddr>,
    /// Every earlier address, oldest first, without repeats.
    pub previous_ips: Vec<IpAddr>,
    /// The local name from the config, which wins over the device's alias.
    pub local_name: Option<String>,
    /// Another device reports the same MAC (kept apart; this says with whom).
    pub conflict: Option<String>,
    /// The judgement of the device as a whole after its last poll: a plug's meter's, a strip's
    /// total and outlets ([`crate::fleet::judge::device`]). `None` without a current reading.
    pub judged: Option<Assessment>,
    /// The rating its readings are judged against (the model's, with config overrides).
    pub limits: Option<Limits>,
    /// The last firmware change seen: (from version, to version, when). The meters' history
    /// is split there ([`Meter::split_at_update`]).
    pub updated: Option<(String, String, Instant)>,
    /// The fleet-voltage finding of the last poll round ([`Fleet::judge_voltages`]).
    pub voltage_finding: Option<Finding>,
    /// [`Device::judged`] before the quiet findings were merged into it.
    pub judged_engine: Option<Assessment>,
    /// How a newer-protocol device is read (from its UDP 20002 reply); `None` = port 9999.
    pub access: Option<Access>,
    /// Why a newer-protocol device answered but gave nothing (no credentials, wrong ones,
    /// unsupported); cleared by a successful poll.
    pub refusal: Option<Refusal>,
    /// The energy history the plug keeps (issue 16, [`crate::fleet::energy`]); a strip's is
    /// per outlet, its own only says when it was last asked.
    pub energy: EnergyHistory,
    /// The change generation: bumped when something a view shows of the device changes
    /// ([`Device::generation`]), not on a poll that read the same thing again.
    generation: u64,
    /// The hash of what the views show, as of the last [`Device::refresh`].
    shown: u64,
    /// Readings recorded by its meters (each a point of the power history, the sparkline).
    points: u64,
    /// The plug's clock (asked with its energy history): its calendar days are those of its
    /// local time. `None` until it said; dates then fall back to UTC.
    pub clock: Option<crate::protocol::calendar::DeviceClock>,
}

impl Device {
    fn new(key: String, addr: SocketAddr, link: Link, now: Instant) -> Self {
        Self {
            key,
            addr,
            found_by: BTreeSet::new(),
            sysinfo: None,
            tdp: None,
            meter: None,
            outlets: Vec::new(),
            link,
            link_since: now,
            last_seen: None,
            first_seen: now,
            last_error: None,
            previous_addr: None,
            previous_ips: Vec::new(),
            local_name: None,
            conflict: None,
            judged: None,
            limits: None,
            updated: None,
            voltage_finding: None,
            judged_engine: None,
            access: None,
            refusal: None,
            energy: EnergyHistory::default(),
            generation: 0,
            shown: 0,
            points: 0,
            clock: None,
        }
    }

    /// The change generation: it moves when something a view shows of the device changes —
    /// a displayed value (at the table's precision: 0.1 W, 0.1 V, 0.001 A, 0.001 kWh) or its
    /// flag, the relay, health and verdict, a finding or reason, identity, address, link and
    /// since when, an error, the energy history — and stays put when a poll reads the same
    /// again. Not in it: the power history (each reading is a point: [`Device::points`]) and
    /// ages, which are drawn from `now` (`last_seen`, how long ago a sticky verdict was read).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Readings its meters recorded: each one a new point of the power history.
    pub fn points(&self) -> u64 {
        self.points
    }

    /// Re-hashes what the views show and moves the generation if it changed. Every mutator
    /// of [`Fleet`] calls it for the devices it touched.
    pub fn refresh(&mut self) {
        let shown = self.fingerprint();
        if shown != self.shown || self.generation == 0 {
            self.shown = shown;
            self.generation += 1;
        }
    }

    /// What the views show of the device, hashed ([`Device::generation`]).
    fn fingerprint(&self) -> u64 {
        fn val(h: &mut Fold, v: Option<f64>, decimals: i32) {
            // The displayed value: rounded as the table rounds it.
            v.map(|x| (x * 10f64.powi(decimals)).round() as i64).hash(h);
        }
        fn meter(h: &mut Fold, m: &Meter) {
            let r = m.values();
            val(h, r.and_then(|r| r.power_w), 1);
            val(h, r.and_then(|r| r.voltage_v), 1);
            val(h, r.and_then(|r| r.current_a), 3);
            val(h, r.and_then(|r| r.total_kwh), 3);
            let f = m.check.flags;
            (f.power, f.voltage, f.current, f.total).hash(h);
            (m.check.verdict, m.recent, m.recent_at, m.no_reading()).hash(h);
            m.check.reasons.hash(h);
            m.quiet.len().hash(h);
            m.flagged().hash(h);
            (m.updated_at, m.findings.len()).hash(h);
        }
        fn energy(h: &mut Fold, e: &EnergyHistory) {
            (
                e.fetched,
                &e.error,
                e.days.len(),
                e.months.len(),
                e.months_as_of,
            )
                .hash(h);
        }
        let mut h = Fold::default();
        (
            &self.key,
            self.addr,
            &self.found_by,
            self.alias(),
            self.own_alias(),
        )
            .hash(&mut h);
        (self.model(), self.hw_ver(), self.sw_version(), self.mac()).hash(&mut h);
        (self.device_id(), self.protocol(), self.kind(), self.relay()).hash(&mut h);
        (self.brightness(), self.rssi(), self.has_emeter()).hash(&mut h);
        if let Some(s) = &self.sysinfo {
            (&s.hw_id, &s.fw_id, s.updating).hash(&mut h);
        }
        (
            &self.link,
            self.link_since,
            &self.last_error,
            &self.previous_ips,
        )
            .hash(&mut h);
        (&self.local_name, &self.conflict, &self.updated).hash(&mut h);
        (self.health(), self.verdict(), self.flagged()).hash(&mut h);
        if let Some(a) = &self.judged {
            (a.verdict, a.reasons.len()).hash(&mut h);
            for r in &a.reasons {
                (r.severity, &r.text).hash(&mut h);
            }
        }
        let (r, f) = self.values();
        val(&mut h, r.and_then(|r| r.power_w), 1);
        val(&mut h, r.and_then(|r| r.voltage_v), 1);
        val(&mut h, r.and_then(|r| r.current_a), 3);
        val(&mut h, r.and_then(|r| r.total_kwh), 3);
        (f.power, f.voltage, f.current, f.total).hash(&mut h);
        if let Some(m) = &self.meter {
            meter(&mut h, m);
        }
        for o in &self.outlets {
            (&o.id, &o.alias, o.relay_on).hash(&mut h);
            if let Some(m) = &o.meter {
                meter(&mut h, m);
            }
            energy(&mut h, &o.energy);
        }
        energy(&mut h, &self.energy);
        // The plug's own calendar, which its day and month figures follow.
        self.clock.map(|c| c.utc_offset_s).hash(&mut h);
        if let Some(r) = &self.refusal {
            r.to_string().hash(&mut h);
        }
        if let Some(a) = &self.access {
            format!("{a:?}").hash(&mut h);
        }
        self.voltage_finding.as_ref().map(|f| &f.text).hash(&mut h);
        h.finish()
    }

    /// Before `sys` replaces the sysinfo: a changed firmware version splits the history.
    fn note_version(&mut self, sys: &SysInfo, now: Instant) {
        let Some(old) = &self.sysinfo else {
            return;
        };
        if old.version().is_empty() || old.version() == sys.version() {
            return;
        }
        self.updated = Some((old.version().to_owned(), sys.version().to_owned(), now));
        for m in self
            .meter
            .iter_mut()
            .chain(self.outlets.iter_mut().filter_map(|o| o.meter.as_mut()))
        {
            m.split_at_update(now);
        }
        // The old firmware's judgement is not the new one's.
        self.judged = None;
    }

    pub fn is_newer(&self) -> bool {
        self.sysinfo.is_none() && self.tdp.is_some()
    }

    pub fn is_strip(&self) -> bool {
        !self.outlets.is_empty()
    }

    /// The local name, else the device's alias (a camera's or hub's `device_name` when it is
    /// known by its UDP 20002 reply alone).
    /// The date on the plug's calendar at Unix time `unix_s` (its energy history's "today"):
    /// by its own clock when known, else UTC.
    pub fn date_at(&self, unix_s: i64) -> crate::fleet::energy::Date {
        self.clock.unwrap_or_default().date_at(unix_s)
    }

    pub fn alias(&self) -> &str {
        if let Some(n) = &self.local_name {
            return n;
        }
        match (&self.sysinfo, &self.tdp) {
            (Some(s), _) => &s.alias,
            (None, Some(t)) => t.device_name.as_deref().unwrap_or(""),
            _ => "",
        }
    }

    /// The alias the device itself reports.
    pub fn own_alias(&self) -> &str {
        self.sysinfo
            .as_ref()
            .map(|s| s.alias.as_str())
            .unwrap_or("")
    }

    pub fn model(&self) -> &str {
        match (&self.sysinfo, &self.tdp) {
            (Some(s), _) => &s.model,
            (None, Some(t)) => &t.model,
            _ => "",
        }
    }

    pub fn hw_ver(&self) -> &str {
        match (&self.sysinfo, &self.tdp) {
            (Some(s), _) => &s.hw_ver,
            (None, Some(t)) => t.hw_ver.as_deref().unwrap_or(""),
            _ => "",
        }
    }

    /// The firmware version: sysinfo's, else the UDP 20002 reply's `firmware_version`.
    pub fn sw_version(&self) -> &str {
        match (&self.sysinfo, &self.tdp) {
            (Some(s), _) => s.version(),
            (None, Some(t)) => t.version().unwrap_or(""),
            _ => "",
        }
    }

    pub fn mac(&self) -> &str {
        match (&self.sysinfo, &self.tdp) {
            (Some(s), _) => &s.mac,
            (None, Some(t)) => &t.mac,
            _ => "",
        }
    }

    /// The device id: sysinfo `deviceId`, else the UDP 20002 `device_id`.
    pub fn device_id(&self) -> Option<&str> {
        self.sysinfo
            .as_ref()
            .map(|s| s.device_id.as_str())
            .or_else(|| self.tdp.as_ref().and_then(|t| t.device_id.as_deref()))
    }

    /// `legacy` when it answered on port 9999, else the newer transport (`klap`, …).
    pub fn protocol(&self) -> &'static str {
        match (&self.sysinfo, &self.tdp) {
            (Some(_), Some(t)) if self.access.is_some() => t.protocol_label(),
            (Some(_), _) => "legacy",
            (None, Some(t)) => t.protocol_label(),
            (None, None) => "unknown",
        }
    }

    /// On or off: the relay, or a bulb's / light strip's `on_off`.
    pub fn relay(&self) -> Option<bool> {
        self.sysinfo.as_ref().and_then(SysInfo::is_on)
    }

    /// What the device is: from its sysinfo, else its UDP 20002 reply
    /// ([`crate::protocol::Kind`]).
    pub fn kind(&self) -> crate::protocol::Kind {
        match (&self.sysinfo, &self.tdp) {
            (Some(s), _) => s.kind(),
            (None, Some(t)) => t.kind(),
            (None, None) => crate::protocol::Kind::Unknown,
        }
    }

    /// A dimmer's or light's brightness in percent.
    pub fn brightness(&self) -> Option<u8> {
        self.sysinfo.as_ref().and_then(SysInfo::brightness_pct)
    }

    pub fn rssi(&self) -> Option<i64> {
        self.sysinfo.as_ref().and_then(|s| s.rssi)
    }

    /// Has a meter: `feature` has `ENE`; a bulb or light strip (which lists no features) is
    /// assumed to until a poll found none (its meter module answered "not supported").
    pub fn has_emeter(&self) -> Option<bool> {
        let s = self.sysinfo.as_ref()?;
        if s.kind().is_light() && self.link != Link::Pending {
            return Some(self.meter.is_some());
        }
        Some(s.has_emeter())
    }

    /// The device's verdict: its judgement, or worse if one of its meters read worse in the
    /// last [`crate::fleet::meter::STICKY`].
    pub fn verdict(&self) -> Verdict {
        let judged = self.judged.as_ref().map_or(Verdict::Ok, |a| a.verdict);
        self.meters().map(|m| m.recent).fold(judged, Verdict::max)
    }

    /// The device-level check (a strip's includes its total against the strip's rating).
    pub fn check(&self) -> Check {
        self.judged.as_ref().map(Check::from).unwrap_or_default()
    }

    pub fn meters(&self) -> impl Iterator<Item = &Meter> {
        self.meter
            .iter()
            .chain(self.outlets.iter().filter_map(|o| o.meter.as_ref()))
    }

    /// Why a meter of this device gave no reading on the last poll, if one did not.
    pub fn no_reading(&self) -> Option<&str> {
        self.meters().find_map(Meter::no_reading)
    }

    /// Flagged readings across all meters of the device.
    pub fn flagged(&self) -> u64 {
        self.meters().map(Meter::flagged).sum()
    }

    /// `iot` or `smart` for a device read over a newer transport, `iot` for port 9999.
    pub fn dialect(&self) -> &'static str {
        self.access.map_or("iot", |a| a.dialect.as_str())
    }

    pub fn health(&self) -> Health {
        match &self.refusal {
            Some(Refusal::NeedsCredentials) => return Health::NeedsCredentials,
            Some(Refusal::AuthFailed) => return Health::AuthFailed,
            // Listed as a newer-protocol device (its row names the protocol); the detail pane
            // and JSON say why it is not read.
            Some(Refusal::Unsupported(_)) | None => {}
        }
        if self.is_newer() {
            return Health::Newer;
        }
        match &self.link {
            Link::Offline(_) => Health::Offline,
            Link::Pending => Health::Pending,
            Link::Failing(_) => Health::Failing,
            Link::Updating => Health::Updating,
            Link::Online => Health::of(self.verdict(), self.no_reading().is_some()),
        }
    }

    /// The health of one outlet's row.
    pub fn outlet_health(&self, o: &Outlet) -> Health {
        match self.health() {
            Health::Ok | Health::Suspect | Health::Bogus | Health::NoReading => match &o.meter {
                Some(m) => Health::of(m.verdict(), m.no_reading().is_some()),
                None => Health::Ok,
            },
            h => h,
        }
    }

    pub fn is_online(&self) -> bool {
        matches!(self.link, Link::Online | Link::Failing(_))
    }

    /// The values a row shows: a plug's current reading, a strip's outlets summed
    /// (python-kasa's way: power, current and total added, voltage averaged), each with how
    /// bad it is by the device's judgement.
    pub fn values(&self) -> (Option<Reading>, ValueFlags) {
        let flags = self.check().flags;
        if self.is_strip() {
            let read: Vec<Reading> = self
                .outlets
                .iter()
                .filter_map(|o| o.meter.as_ref()?.values())
                .collect();
            if read.is_empty() {
                return (None, ValueFlags::default());
            }
            return (Some(Reading::strip_sum(read.iter())), flags);
        }
        match self.meter.as_ref().and_then(Meter::values) {
            Some(r) => (Some(r), flags),
            None => (None, ValueFlags::default()),
        }
    }

    /// Rebuilds the device's judgement with its meters' quiet findings (a strip's prefixed by the
    /// outlet's alias) and its last fleet-voltage finding, as suspect reasons.
    pub fn merge_quiet(&mut self) {
        let d = self;
        let mut extra = Vec::new();
        if let Some(m) = &d.meter {
            extra.extend(m.quiet.iter().map(|f| quiet_reason(f, "")));
        }
        for o in &d.outlets {
            if let Some(m) = &o.meter {
                let prefix = format!("{}: ", o.alias);
                extra.extend(m.quiet.iter().map(|f| quiet_reason(f, &prefix)));
            }
        }
        if let Some(f) = &d.voltage_finding {
            extra.push(quiet_reason(f, ""));
        }
        // The engine's own judgement of the last poll is kept as it is (verdict, reasons, flagged
        // cells); the quiet reasons are added on top of it, replacing those merged before.
        if !d
            .judged
            .as_ref()
            .is_some_and(|a| a.reasons.iter().any(|r| r.rule == Rule::Quiet))
        {
            d.judged_engine = d.judged.clone();
        }
        if extra.is_empty() && d.judged_engine.is_none() {
            d.judged = None;
            return;
        }
        let mut a = d
            .judged_engine
            .clone()
            .unwrap_or_else(|| Assessment::from_reasons(Vec::new()));
        for r in &extra {
            if let Some(f) = r.field {
                a.flagged.insert(f);
            }
            a.verdict = a.verdict.max(r.severity);
        }
        a.reasons.extend(extra);
        d.judged = Some(a);
    }

    fn set_link(&mut self, link: Link, now: Instant) {
        if std::mem::discriminant(&self.link) != std::mem::discriminant(&link) {
            self.link_since = now;
        }
        self.link = link;
    }

    fn move_to(&mut self, addr: SocketAddr) -> bool {
        if self.addr == addr {
            return false;
        }
        let from = self.addr;
        self.previous_ips
            .retain(|p| *p != from.ip() && *p != addr.ip());
        if from.ip() != addr.ip() {
            self.previous_ips.push(from.ip());
        }
        self.previous_addr = Some(from);
        self.addr = addr;
        true
    }

    fn set_outlets(&mut self, sys: &SysInfo) {
        // The same outlets again, each id once (every poll of a strip): updated in place, their
        // meters' histories not copied. Otherwise each outlet takes the first kept one of its id.
        let same = self.outlets.len() == sys.children.len()
            && self
                .outlets
                .iter()
                .zip(&sys.children)
                .enumerate()
                .all(|(i, (o, c))| {
                    o.id == c.id && self.outlets[..i].iter().all(|earlier| earlier.id != o.id)
                });
        if same {
            for (o, c) in self.outlets.iter_mut().zip(&sys.children) {
                if o.alias != c.alias {
                    o.alias.clone_from(&c.alias);
                }
                o.relay_on = c.relay_on;
            }
            return;
        }
        let old = std::mem::take(&mut self.outlets);
        self.outlets = sys
            .children
            .iter()
            .map(|c| Outlet {
                id: c.id.clone(),
                alias: c.alias.clone(),
                relay_on: c.relay_on,
                meter: old
                    .iter()
                    .find(|o| o.id == c.id)
                    .and_then(|o| o.meter.clone()),
                energy: old
                    .iter()
                    .find(|o| o.id == c.id)
                    .map(|o| o.energy.clone())
                    .unwrap_or_default(),
            })
            .collect();
    }
}

/// One poll of one device, as the model takes it: the poller's report with its errors as
/// text (the model is pure and knows no sockets).
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    pub key: String,
    pub addr: SocketAddr,
    /// Consecutive failed polls of this device, this one included (0 after a success).
    pub misses: u32,
    pub outcome: Result<PollRead, String>,
    /// A newer-protocol device refused to be read (the `outcome` error says so in words).
    pub refusal: Option<Refusal>,
}

/// What one successful poll read.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRead {
    pub sysinfo: SysInfo,
    /// The plug's meter (`None` when it has none or is a strip); `Err` = why it gave no
    /// reading.
    pub realtime: Option<Result<Realtime, String>>,
    /// A metered strip's outlets, by full child id.
    pub outlets: Vec<(String, Result<Realtime, String>)>,
}

/// The poller should (re)start polling this device at this address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub key: String,
    pub addr: SocketAddr,
}

/// What a poll report changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// The meters read successfully this time (`None` = the plug's own, `Some(id)` = that
    /// outlet), judged.
    pub read: Vec<Option<String>>,
    /// A meter saw a jump: read again at once to confirm or dismiss it.
    pub reread: bool,
    /// Another device answered at the polled address: track it.
    pub track: Option<Track>,
    /// Devices other than the polled one may have changed (another device answered at the
    /// polled address and was merged as a sighting).
    pub others: bool,
}

/// The key of a named host that did not answer (no identity known): `host:<IP>`.
pub fn unanswered_key(ip: IpAddr) -> String {
    format!("host:{ip}")
}

/// Every device, by key.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub devices: HashMap<String, Device>,
    /// The model's clock origin: readings are stamped with milliseconds since then.
    pub started: Instant,
    /// The config's `[plausibility]`: the quiet rules every poll is judged by.
    pub rules: QuietRules,
    /// Quiet findings so far, by rule (one per meter and poll that raised it).
    pub quiet_counts: BTreeMap<QuietRule, u64>,
    /// When [`Fleet::judge_voltages`] last ran.
    pub voltages_at: Option<Instant>,
}

impl Fleet {
    pub fn new(now: Instant) -> Self {
        Self {
            devices: HashMap::new(),
            started: now,
            rules: QuietRules::default(),
            quiet_counts: BTreeMap::new(),
            voltages_at: None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Device> {
        self.devices.get(key)
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Every device in address order (then key): the order of the headless views.
    pub fn by_address(&self) -> Vec<&Device> {
        let mut v: Vec<&Device> = self.devices.values().collect();
        v.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.key.cmp(&b.key)));
        v
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// A named host (`--host`) that did not answer: an offline entry keyed by its address
    /// ([`unanswered_key`]) with why, so every view lists it. Replaced by the real device as
    /// soon as one is seen there; nothing is added when a device of the model is already at
    /// that address.
    pub fn unanswered(&mut self, addr: SocketAddr, error: String, now: Instant) {
        if self
            .devices
            .values()
            .any(|d| d.addr.ip() == addr.ip() && d.sysinfo.is_some())
        {
            return;
        }
        let key = unanswered_key(addr.ip());
        let d = self
            .devices
            .entry(key.clone())
            .or_insert_with(|| Device::new(key, addr, Link::Offline(error.clone()), now));
        d.found_by.insert("host".into());
        if d.link != Link::Offline(error.clone()) {
            d.set_link(Link::Offline(error.clone()), now);
        }
        d.last_error = Some(error);
        d.refresh();
    }

    /// The device listed at `ip`'s address-only entry was seen elsewhere: the one that now
    /// has `ip` among its earlier addresses (the same plug answering at a second address).
    pub fn same_device_as(&self, ip: IpAddr) -> Option<&Device> {
        self.by_address()
            .into_iter()
            .find(|d| d.addr.ip() != ip && d.previous_ips.contains(&ip))
    }

    /// Merges one sighting: the one place where identity is decided. Returns what to poll.
    pub fn observe(&mut self, s: Sighting, names: &Names, now: Instant) -> Option<Track> {
        let ip = s.ip;
        let track = self.merge_sighting(s, names, now);
        // The devices it can have touched: the one at that address (and one that left it), and
        // those with a MAC conflict note.
        for d in self.devices.values_mut().filter(|d| {
            d.addr.ip() == ip
                || d.conflict.is_some()
                || d.generation == 0
                || d.previous_addr.is_some_and(|a| a.ip() == ip)
        }) {
            d.refresh();
        }
        track
    }

    fn merge_sighting(&mut self, s: Sighting, names: &Names, now: Instant) -> Option<Track> {
        let addr = SocketAddr::new(s.ip, s.port);
        self.devices.remove(&unanswered_key(s.ip));
        match s.info {
            SeenInfo::Newer(tdp) => {
                let mac = valid_mac(&tdp.mac);
                // A device that also answers on 9999 is listed once, as legacy.
                if let Some(mac) = &mac
                    && let Some(d) = self
                        .devices
                        .values_mut()
                        .find(|d| d.sysinfo.is_some() && valid_mac(d.mac()).as_ref() == Some(mac))
                {
                    d.found_by.insert(s.found_by);
                    d.tdp = Some(*tdp);
                    return None;
                }
                let key = newer_key(&tdp.mac, tdp.device_id.as_deref(), s.ip);
                let d = self
                    .devices
                    .entry(key.clone())
                    .or_insert_with(|| Device::new(key, addr, Link::Online, now));
                let moved = d.move_to(addr);
                d.found_by.insert(s.found_by);
                d.local_name = mac.and_then(|m| names.name_for(&m).map(str::to_owned));
                let access = Access::from_tdp(&tdp);
                d.tdp = Some(*tdp);
                d.last_seen = Some(now);
                match access {
                    Ok(a) => {
                        let fresh = d.access.is_none();
                        d.access = Some(a);
                        if matches!(d.refusal, Some(Refusal::Unsupported(_))) {
                            d.refusal = None;
                        }
                        // Polled over its newer transport at the address it was found at.
                        (fresh || moved).then(|| Track {
                            key: d.key.clone(),
                            addr: d.addr,
                        })
                    }
                    Err(r) => {
                        d.access = None;
                        d.refusal = Some(r);
                        None
                    }
                }
            }
            SeenInfo::Legacy(sys) => {
                let key = legacy_key(&sys.device_id, &sys.mac, s.ip);
                // A newer-protocol entry of the same device merges into this one.
                let newer: Vec<String> = [
                    valid_mac(&sys.mac).map(|m| format!("mac:{m}")),
                    Some(format!("id:{}", sys.device_id)),
                ]
                .into_iter()
                .flatten()
                .filter(|k| *k != key)
                .collect();
                let merged: Vec<Device> = newer
                    .iter()
                    .filter_map(|k| self.devices.remove(k))
                    .collect();
                let d = self
                    .devices
                    .entry(key.clone())
                    .or_insert_with(|| Device::new(key.clone(), addr, Link::Pending, now));
                d.local_name = names.name_for(&sys.mac).map(str::to_owned);
                for m in merged {
                    d.found_by.extend(m.found_by);
                    d.tdp = m.tdp.or(d.tdp.take());
                    d.first_seen = d.first_seen.min(m.first_seen);
                }
                d.found_by.insert(s.found_by);
                let moved = d.move_to(addr);
                let fresh = d.sysinfo.is_none();
                d.set_outlets(&sys);
                d.note_version(&sys, now);
                if sys.has_emeter() && sys.children.is_empty() && d.meter.is_none() {
                    d.meter = Some(Meter::default());
                }
                if sys.has_emeter() {
                    for o in d.outlets.iter_mut().filter(|o| o.meter.is_none()) {
                        o.meter = Some(Meter::default());
                    }
                }
                d.sysinfo = Some(*sys);
                d.last_seen = Some(now);
                if matches!(d.link, Link::Offline(_)) {
                    d.set_link(Link::Pending, now);
                }
                self.note_conflicts(&key);
                (fresh || moved).then_some(Track { key, addr })
            }
        }
    }

    /// Two port-9999 devices reporting one valid MAC are two devices: each says so.
    fn note_conflicts(&mut self, key: &str) {
        let Some(d) = self.devices.get(key) else {
            return;
        };
        let Some(mac) = valid_mac(d.mac()) else {
            return;
        };
        let others: Vec<(String, String)> = self
            .devices
            .values()
            .filter(|o| o.key != key && o.sysinfo.is_some())
            .filter(|o| valid_mac(o.mac()).as_ref() == Some(&mac))
            .map(|o| (o.key.clone(), format!("{} at {}", o.model(), o.addr.ip())))
            .collect();
        if others.is_empty() {
            return;
        }
        let me = format!("{} at {}", d.model(), d.addr.ip());
        let list: Vec<&str> = others.iter().map(|(_, w)| w.as_str()).collect();
        let text = format!("MAC {mac} is also reported by {}", list.join(", "));
        if let Some(d) = self.devices.get_mut(key) {
            d.conflict = Some(text);
        }
        for (k, _) in others {
            if let Some(o) = self.devices.get_mut(&k) {
                o.conflict = Some(format!("MAC {mac} is also reported by {me}"));
            }
        }
    }

    /// Marks the devices at `ip` as being flashed (or no longer).
    pub fn set_updating(&mut self, ip: IpAddr, updating: bool, now: Instant) {
        for d in self.devices.values_mut().filter(|d| d.addr.ip() == ip) {
            if updating {
                d.set_link(Link::Updating, now);
            } else if d.link == Link::Updating {
                d.set_link(Link::Pending, now);
            }
            d.refresh();
        }
    }

    /// Applies one poll report: liveness, sysinfo, every meter's reading judged, then the
    /// device as a whole. `ratings` gives the rating of a model (config overrides included).
    pub fn apply_poll(
        &mut self,
        r: Poll,
        ratings: &Overrides,
        names: &Names,
        now: Instant,
    ) -> Applied {
        let key = r.key.clone();
        let out = self.apply_poll_to(r, ratings, names, now);
        if let Some(d) = self.devices.get_mut(&key) {
            d.points += out.read.len() as u64;
            d.refresh();
        }
        out
    }

    fn apply_poll_to(
        &mut self,
        r: Poll,
        ratings: &Overrides,
        names: &Names,
        now: Instant,
    ) -> Applied {
        let now_ms = self.ms(now);
        let Some(d) = self.devices.get_mut(&r.key) else {
            return Applied::default();
        };
        if d.addr != r.addr {
            // A poll of an address the device has since left.
            return Applied::default();
        }
        match r.outcome {
            // A newer-protocol device that answered and refused: reachable, not failing.
            Err(e) if r.refusal.is_some() => {
                d.last_error = Some(e);
                d.refusal = r.refusal;
                d.last_seen = Some(now);
                d.set_link(Link::Online, now);
                Applied::default()
            }
            Err(e) => {
                let link = if d.link == Link::Updating {
                    Link::Updating
                } else if r.misses >= OFFLINE_AFTER {
                    Link::Offline(e.clone())
                } else {
                    Link::Failing(r.misses)
                };
                d.last_error = Some(e);
                d.set_link(link, now);
                Applied::default()
            }
            // (A newer-protocol device's identity is its UDP 20002 reply's; its session is
            // with the device that proved the credentials.)
            Ok(p)
                if d.access.is_none()
                    && legacy_key(&p.sysinfo.device_id, &p.sysinfo.mac, r.addr.ip()) != d.key =>
            {
                // Someone else answers at this address now: the tracked device is gone from it.
                let msg = format!(
                    "another device ({}) answers at {}",
                    p.sysinfo.device_id, r.addr
                );
                d.set_link(Link::Offline(msg.clone()), now);
                d.last_error = Some(msg);
                let s = Sighting {
                    ip: r.addr.ip(),
                    port: r.addr.port(),
                    found_by: d
                        .found_by
                        .iter()
                        .next()
                        .cloned()
                        .unwrap_or_else(|| "host".into()),
                    info: SeenInfo::Legacy(Box::new(p.sysinfo)),
                };
                Applied {
                    track: self.observe(s, names, now),
                    others: true,
                    ..Applied::default()
                }
            }
            Ok(p) => {
                d.refusal = None;
                let quiet = (&self.rules, &mut self.quiet_counts);
                record_poll(d, p, ratings, quiet, now, now_ms)
            }
        }
    }
}

/// Records a successful poll.
fn record_poll(
    d: &mut Device,
    p: PollRead,
    ratings: &Overrides,
    (rules, counts): (&QuietRules, &mut BTreeMap<QuietRule, u64>),
    now: Instant,
    now_ms: u64,
) -> Applied {
    let updating = d.link == Link::Updating && p.sysinfo.updating;
    if !updating {
        d.set_link(Link::Online, now);
    }
    d.last_seen = Some(now);
    d.last_error = None;
    d.set_outlets(&p.sysinfo);
    // A light lists no features: one whose meter module answered "not supported" (the poller
    // then reports no reading at all) has no meter.
    if p.realtime.is_none() && p.sysinfo.kind().is_light() {
        d.meter = None;
    }
    // Before this poll's readings are recorded: they are the new firmware's.
    d.note_version(&p.sysinfo, now);
    let limits = d
        .limits
        .get_or_insert_with(|| ratings.limits_for(&p.sysinfo.model))
        .clone();
    let mut out = Applied::default();
    // (No MAC to normalise after every poll when the config names no resistive load.)
    let resistive = !rules.power_factor.resistive.is_empty() && rules.is_resistive(&p.sysinfo.mac);
    let mut apply = |m: &mut Meter, rt: Result<Realtime, String>, relay: Option<bool>| match rt {
        Ok(reading) => {
            m.record(&limits, reading, now, now_ms);
            for f in m.judge_quiet(relay, now, now_ms, rules, resistive) {
                *counts.entry(f.rule).or_default() += 1;
            }
            out.reread |= m.check.reread;
            true
        }
        Err(e) => {
            m.failed(e);
            false
        }
    };
    if let Some(rt) = p.realtime
        && apply(
            d.meter.get_or_insert_with(Meter::default),
            rt,
            // A light's on/off stands in for the relay (the quiet rules ask it).
            p.sysinfo.is_on(),
        )
    {
        out.read.push(None);
    }
    for (id, rt) in p.outlets {
        if let Some(o) = d.outlets.iter_mut().find(|o| o.id == id)
            && apply(
                o.meter.get_or_insert_with(Meter::default),
                rt,
                Some(o.relay_on),
            )
        {
            out.read.push(Some(id));
        }
    }
    d.sysinfo = Some(p.sysinfo);
    d.judged = if d.is_strip() {
        d.limits.as_ref().and_then(|l| {
            crate::fleet::judge::strip(
                l,
                d.outlets
                    .iter()
                    .filter_map(|o| Some((o.alias.as_str(), o.meter.as_ref()?))),
            )
        })
    } else {
        d.meter.as_ref().and_then(crate::fleet::judge::plug)
    };
    d.merge_quiet();
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sys(model: &str, mac: &str, id: &str) -> SysInfo {
        SysInfo::from_result(&serde_json::json!({
            "model": model, "hw_ver": "1.0", "sw_ver": "1.2.6 Build 200727 Rel.121701",
            "mac": mac, "deviceId": id, "alias": "a", "feature": "TIM:ENE", "relay_state": 1,
        }))
        .expect("sysinfo")
    }

    fn seen(ip: &str, info: SysInfo) -> Sighting {
        Sighting {
            ip: ip.parse().expect("ip"),
            port: 9999,
            found_by: "host".into(),
            info: SeenInfo::Legacy(Box::new(info)),
        }
    }

    fn failed(key: &str, addr: SocketAddr, misses: u32) -> Poll {
        Poll {
            key: key.into(),
            addr,
            misses,
            outcome: Err("connection refused".into()),
            refusal: None,
        }
    }

    fn bulb(id: &str, power_mw: Option<i64>) -> (SysInfo, Option<Result<Realtime, String>>) {
        let s = SysInfo::from_result(&serde_json::json!({
            "model": "KL130(EU)", "hw_ver": "1.0", "sw_ver": "1.8.8 Build 190613 Rel.123436",
            "mic_mac": format!("1C3BF30000{:02X}", id.len() + id.as_bytes()[1] as usize), "deviceId": id, "alias": "b", "mic_type": "IOT.SMARTBULB",
            "light_state": {"on_off": 1, "brightness": 80, "color_temp": 2700},
        }))
        .expect("bulb");
        let rt = power_mw.map(|mw| {
            Ok(
                Realtime::from_result(&serde_json::json!({"power_mw": mw, "err_code": 0}))
                    .expect("reading"),
            )
        });
        (s, rt)
    }

    fn reading(key: &str, addr: SocketAddr, relay: u8, watts: f64) -> Poll {
        let mut s = sys("HS110(US)", "50:C7:BF:00:09:21", key);
        s.relay_on = Some(relay != 0);
        Poll {
            key: key.into(),
            addr,
            misses: 0,
            outcome: Ok(PollRead {
                sysinfo: s,
                realtime: Some(Ok(Realtime::from_result(&serde_json::json!({
                    "power": watts, "voltage": 120.0, "current": watts / 120.0, "total": 1.0,
                }))
                .expect("reading"))),
                outlets: Vec::new(),
            }),
            refusal: None,
        }
    }

    #[test]
    fn the_fingerprint_hasher_tells_apart_inputs_one_word_apart() {
        let of = |v: &dyn Fn(&mut Fold)| {
            let mut h = Fold::default();
            v(&mut h);
            h.finish()
        };
        let base = of(&|h| (1u64, 2u64, 3u64, "plug", 230.5f64.to_bits()).hash(h));
        for (i, other) in [
            of(&|h| (1u64, 2u64, 4u64, "plug", 230.5f64.to_bits()).hash(h)),
            of(&|h| (0u64, 2u64, 3u64, "plug", 230.5f64.to_bits()).hash(h)),
            of(&|h| (1u64, 2u64, 3u64, "plus", 230.5f64.to_bits()).hash(h)),
            of(&|h| (1u64, 2u64, 3u64, "plug", 230.4f64.to_bits()).hash(h)),
        ]
        .into_iter()
        .enumerate()
        {
            assert_ne!(base, other, "case {i}");
        }
        // Short strings of different lengths, and a string vs its prefix.
        assert_ne!(of(&|h| "a".hash(h)), of(&|h| "a\0".hash(h)));
        assert_ne!(of(&|h| "ab".hash(h)), of(&|h| "a".hash(h)));
        assert_ne!(of(&|h| "".hash(h)), of(&|h| 0u8.hash(h)));
        assert_eq!(
            base,
            of(&|h| (1u64, 2u64, 3u64, "plug", 230.5f64.to_bits()).hash(h))
        );
    }

    #[test]
    fn the_generation_moves_only_when_something_shown_changes() {
        let t0 = Instant::now();
        let mut f = Fleet::new(t0);
        let t = f
            .observe(
                seen("127.0.9.21", sys("HS110(US)", "50:C7:BF:00:09:21", "G1")),
                &Names::default(),
                t0,
            )
            .expect("tracked");
        let gen_of = |f: &Fleet| f.get("G1").map(|d| (d.generation(), d.points()));
        let (seen_gen, _) = gen_of(&f).expect("listed");
        assert!(seen_gen > 0, "a device starts with a generation");
        let mut at = t0;
        let mut poll = |f: &mut Fleet, relay: u8, watts: f64| {
            at += Duration::from_secs(1);
            f.apply_poll(
                reading("G1", t.addr, relay, watts),
                &Overrides::default(),
                &Names::default(),
                at,
            );
            gen_of(f).expect("listed")
        };
        let (g1, p1) = poll(&mut f, 1, 60.0);
        assert!(g1 > seen_gen, "first reading");
        let (g2, p2) = poll(&mut f, 1, 60.0);
        assert_eq!(g2, g1, "the same reading a second later: same generation");
        assert_eq!(p2, p1 + 1, "but a new point of the power history");
        let (g3, _) = poll(&mut f, 1, 60.04);
        assert_eq!(g3, g1, "60.04 W is drawn as 60.0 W, as before");
        let (g4, _) = poll(&mut f, 1, 61.0);
        assert!(g4 > g3, "a changed watt value");
        let (g5, _) = poll(&mut f, 1, 61.0);
        assert_eq!(g5, g4);
        let (g6, _) = poll(&mut f, 0, 61.0);
        assert!(g6 > g5, "the relay turned off");
        f.apply_poll(
            failed("G1", t.addr, 1),
            &Overrides::default(),
            &Names::default(),
            at + Duration::from_secs(1),
        );
        let (g7, p7) = gen_of(&f).expect("listed");
        assert!(g7 > g6, "a failed poll changes the health");
        f.set_updating(t.addr.ip(), true, at);
        assert!(gen_of(&f).expect("listed").0 > g7, "being flashed");
        assert_eq!(gen_of(&f).expect("listed").1, p7, "no reading, no point");
    }

    #[test]
    fn bulbs_are_judged_like_plugs_against_their_rating() {
        let t0 = Instant::now();
        let mut f = Fleet::new(t0);
        for (id, mw, ip) in [
            ("B1", Some(10_800), "127.0.9.11"),
            ("B2", Some(500_000), "127.0.9.12"),
            ("B3", None, "127.0.9.13"),
        ] {
            let (s, rt) = bulb(id, mw);
            let t = f
                .observe(seen(ip, s.clone()), &Names::default(), t0)
                .expect("tracked");
            assert_eq!(
                f.get(id).and_then(Device::has_emeter),
                Some(true),
                "assumed"
            );
            f.apply_poll(
                Poll {
                    key: id.into(),
                    addr: t.addr,
                    misses: 0,
                    outcome: Ok(PollRead {
                        sysinfo: s,
                        realtime: rt,
                        outlets: Vec::new(),
                    }),
                    refusal: None,
                },
                &Overrides::default(),
                &Names::default(),
                t0 + Duration::from_secs(1),
            );
        }
        let ok = f.get("B1").expect("b1");
        assert_eq!(ok.kind(), crate::protocol::Kind::Bulb);
        assert_eq!((ok.relay(), ok.brightness()), (Some(true), Some(80)));
        assert_eq!(ok.health(), Health::Ok);
        let hot = f.get("B2").expect("b2");
        assert_eq!(hot.health(), Health::Bogus);
        let why = hot
            .judged
            .as_ref()
            .map(|a| a.texts().join("; "))
            .unwrap_or_default();
        assert!(why.contains("10 W rated (KL130 EU)"), "{why}");
        // Its meter module answered "not supported": no meter, not a failing one.
        let none = f.get("B3").expect("b3");
        assert_eq!(none.has_emeter(), Some(false));
        assert_eq!((none.health(), none.no_reading()), (Health::Ok, None));
    }

    #[test]
    fn liveness_fails_then_goes_offline_with_the_reason_and_since_when() {
        let t0 = Instant::now();
        let mut f = Fleet::new(t0);
        let t = f
            .observe(
                seen("127.0.9.1", sys("HS110(US)", "50:C7:BF:00:09:01", "D1")),
                &Names::default(),
                t0,
            )
            .expect("tracked");
        assert_eq!(f.get("D1").map(|d| d.link.clone()), Some(Link::Pending));
        let t1 = t0 + Duration::from_secs(2);
        f.apply_poll(
            failed("D1", t.addr, 1),
            &Overrides::default(),
            &Names::default(),
            t1,
        );
        let d = f.get("D1").expect("d");
        assert_eq!((d.link.clone(), d.link_since), (Link::Failing(1), t1));
        let t2 = t1 + Duration::from_secs(2);
        f.apply_poll(
            failed("D1", t.addr, 2),
            &Overrides::default(),
            &Names::default(),
            t2,
        );
        assert_eq!(
            f.get("D1").map(|d| d.link_since),
            Some(t1),
            "still failing since t1"
        );
        let t3 = t2 + Duration::from_secs(2);
        f.apply_poll(
            failed("D1", t.addr, OFFLINE_AFTER),
            &Overrides::default(),
            &Names::default(),
            t3,
        );
        let d = f.get("D1").expect("d");
        assert_eq!(d.link, Link::Offline("connection refused".into()));
        assert_eq!((d.link_since, d.health()), (t3, Health::Offline));
    }

    #[test]
    fn a_plug_being_flashed_is_updating_not_failing() {
        let t0 = Instant::now();
        let mut f = Fleet::new(t0);
        let t = f
            .observe(
                seen("127.0.9.2", sys("HS110(US)", "50:C7:BF:00:09:02", "D2")),
                &Names::default(),
                t0,
            )
            .expect("tracked");
        f.set_updating(t.addr.ip(), true, t0);
        for misses in 1..=OFFLINE_AFTER + 2 {
            f.apply_poll(
                failed("D2", t.addr, misses),
                &Overrides::default(),
                &Names::default(),
                t0,
            );
        }
        let d = f.get("D2").expect("d");
        assert_eq!(
            (d.link.clone(), d.health()),
            (Link::Updating, Health::Updating)
        );
        f.set_updating(t.addr.ip(), false, t0);
        assert_eq!(f.get("D2").map(|d| d.link.clone()), Some(Link::Pending));
    }

    #[test]
    fn a_named_host_that_did_not_answer_is_offline_until_a_device_is_seen_there() {
        let t0 = Instant::now();
        let mut f = Fleet::new(t0);
        let at: SocketAddr = "127.0.9.3:9999".parse().expect("addr");
        f.unanswered(at, "no answer".into(), t0);
        let d = f.get(&unanswered_key(at.ip())).expect("listed");
        assert_eq!((d.health(), d.is_online()), (Health::Offline, false));
        assert_eq!(d.last_error.as_deref(), Some("no answer"));
        f.observe(
            seen("127.0.9.3", sys("HS110(US)", "50:C7:BF:00:09:03", "D3")),
            &Names::default(),
            t0,
        );
        assert_eq!(f.len(), 1, "replaced by the device");
        assert!(f.get("D3").is_some());
        f.unanswered(at, "no answer".into(), t0);
        assert_eq!(f.len(), 1, "a device is at that address");
    }
}
