//! The application state: the devices as the UI knows them, and the view (sorting, filter,
//! marks, selection, overlays). Mutated only by [`crate::app::update`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

pub use super::settings::Settings;
use crate::firmware::job::JobSnapshot;
use crate::firmware::plan::PlanEntry;
use crate::firmware::runner::BatchReport;
pub use crate::fleet::meter::{Check, FINDINGS_LEN, Meter, STICKY, ValueFlags, Verdict};
pub use crate::fleet::model::{Device, Fleet, Health, Link, OFFLINE_AFTER, Outlet};
use std::path::PathBuf;

/// A write the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    RelayOn,
    RelayOff,
    Reboot,
}

impl ActionKind {
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::RelayOn => "turn on",
            ActionKind::RelayOff => "turn off",
            ActionKind::Reboot => "reboot",
        }
    }
}

/// One entry of a directory, for the firmware file picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirItem {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
}

/// A table row: a device, or one outlet of a strip.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowId {
    pub key: String,
    pub child: Option<String>,
}

impl RowId {
    pub fn device(key: &str) -> Self {
        Self {
            key: key.to_owned(),
            child: None,
        }
    }
}

/// The table's columns, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Mark,
    Health,
    Alias,
    Ip,
    Model,
    Hw,
    Sw,
    Relay,
    Watts,
    Volts,
    Amps,
    Kwh,
    Rssi,
    Seen,
    Found,
}

impl Column {
    pub const ALL: [Column; 15] = [
        Column::Mark,
        Column::Health,
        Column::Alias,
        Column::Ip,
        Column::Model,
        Column::Hw,
        Column::Sw,
        Column::Relay,
        Column::Watts,
        Column::Volts,
        Column::Amps,
        Column::Kwh,
        Column::Rssi,
        Column::Seen,
        Column::Found,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Mark => "✓",
            Column::Health => "Health",
            Column::Alias => "Alias",
            Column::Ip => "IP",
            Column::Model => "Model",
            Column::Hw => "HW",
            Column::Sw => "SW",
            Column::Relay => "Relay",
            Column::Watts => "W",
            Column::Volts => "V",
            Column::Amps => "A",
            Column::Kwh => "kWh",
            Column::Rssi => "RSSI",
            Column::Seen => "Seen",
            Column::Found => "Found by",
        }
    }

    /// A name for the status bar ("sorted by …").
    pub fn name(self) -> &'static str {
        match self {
            Column::Mark => "mark",
            Column::Health => "health",
            Column::Alias => "alias",
            Column::Ip => "IP",
            Column::Model => "model",
            Column::Hw => "hardware version",
            Column::Sw => "software version",
            Column::Relay => "relay",
            Column::Watts => "power",
            Column::Volts => "voltage",
            Column::Amps => "current",
            Column::Kwh => "energy",
            Column::Rssi => "RSSI",
            Column::Seen => "last seen",
            Column::Found => "found by",
        }
    }

    pub fn next(self) -> Column {
        let i = Column::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Column::ALL[(i + 1) % Column::ALL.len()]
    }

    pub fn prev(self) -> Column {
        let i = Column::ALL.iter().position(|c| *c == self).unwrap_or(0);
        Column::ALL[(i + Column::ALL.len() - 1) % Column::ALL.len()]
    }
}

/// A pending confirmation: what will happen to which rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    pub kind: ActionKind,
    pub rows: Vec<RowId>,
    /// One line per row for the dialog ("kitchen 127.0.0.5 HS110(EU) on → off").
    pub lines: Vec<String>,
}

/// The firmware file picker.
#[derive(Debug, Clone, PartialEq)]
pub struct Picker {
    pub dir: PathBuf,
    pub items: Vec<DirItem>,
    pub selected: usize,
    pub loading: bool,
    pub error: Option<String>,
    /// The devices (keys) the update is for.
    pub targets: Vec<String>,
}

/// The plan of a firmware update, waiting for `y`.
#[derive(Debug, Clone)]
pub struct FirmwareConfirm {
    pub source: PathBuf,
    pub entries: Vec<PlanEntry>,
    /// The explicit override (`--force` of `plugfleet update`): unknown-target and
    /// same-version plugs are updated too. Never for blocked ones.
    pub force: bool,
    /// The downgrade question is showing (after a first `D`; a second `D` allows it). The
    /// consent itself is recorded in the entries ([`PlanEntry::allow_downgrade`]).
    pub downgrade_prompt: bool,
}

impl PartialEq for FirmwareConfirm {
    fn eq(&self, other: &Self) -> bool {
        let key = |e: &PlanEntry| (e.plug.ip, e.image.as_ref().map(|i| i.file_name.clone()));
        self.source == other.source
            && self.force == other.force
            && self.downgrade_prompt == other.downgrade_prompt
            && self.downgrade_allowed() == other.downgrade_allowed()
            && self
                .entries
                .iter()
                .map(key)
                .eq(other.entries.iter().map(key))
    }
}

impl FirmwareConfirm {
    /// A new plan to confirm: no override, no downgrade consent.
    pub fn new(source: PathBuf, entries: Vec<PlanEntry>) -> Self {
        Self {
            source,
            entries,
            force: false,
            downgrade_prompt: false,
        }
    }

    /// Whether the downgrade consent was given (a second `D`).
    pub fn downgrade_allowed(&self) -> bool {
        self.entries.iter().any(|e| e.allow_downgrade)
    }

    /// Plugs that will be updated (with the override when it is on).
    pub fn updating(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.will_update(self.force))
            .count()
    }

    /// Whether the override would change anything (some plug needs it).
    pub fn override_applies(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.image.is_some() && e.verdict().needs_override())
    }
}

/// A firmware batch as the progress pane shows it.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// One row per plug, in plan order, with when its last snapshot arrived (elapsed and
    /// remaining time keep moving between snapshots).
    pub rows: Vec<(JobSnapshot, Instant)>,
    pub serving: Vec<SocketAddr>,
    pub finished: Option<BatchReport>,
    pub started: Option<Instant>,
}

impl Batch {
    pub fn upsert(&mut self, snap: JobSnapshot, now: Instant) {
        match self.rows.iter_mut().find(|(r, _)| r.ip == snap.ip) {
            Some(r) => *r = (snap, now),
            None => self.rows.push((snap, now)),
        }
    }

    pub fn running(&self) -> bool {
        self.finished.is_none()
    }
}

/// What covers the table.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Overlay {
    #[default]
    None,
    Help,
    Confirm(Confirm),
    Picker(Picker),
    FirmwareConfirm(FirmwareConfirm),
    /// The recent log lines; `scroll` = lines up from the newest (0 follows new lines).
    Log {
        scroll: u16,
    },
}

/// How the user looks at the fleet.
#[derive(Debug, Clone)]
pub struct View {
    pub sort: Column,
    pub descending: bool,
    pub filter: String,
    pub editing_filter: bool,
    pub flagged_only: bool,
    pub selected: Option<RowId>,
    pub expanded: BTreeSet<String>,
    pub marked: BTreeSet<RowId>,
    pub detail: bool,
    pub overlay: Overlay,
    pub status: Option<(String, Instant)>,
    /// Rows in one page of the table (from the terminal height, on resize).
    pub page: usize,
    /// First line shown of the help screen.
    pub help_scroll: u16,
    /// The firmware progress pane is shown.
    pub progress: bool,
}

impl Default for View {
    fn default() -> Self {
        Self {
            sort: Column::Ip,
            descending: false,
            filter: String::new(),
            editing_filter: false,
            flagged_only: false,
            selected: None,
            expanded: BTreeSet::new(),
            marked: BTreeSet::new(),
            detail: false,
            overlay: Overlay::None,
            status: None,
            page: 10,
            help_scroll: 0,
            progress: false,
        }
    }
}

/// Recording of readings (`--record`, or the record key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recording {
    /// The file of the current or last recording.
    pub path: Option<PathBuf>,
    pub active: bool,
    /// Readings sent to the writer since this recording started.
    pub count: u64,
    /// Why the last recording stopped on its own (a write error).
    pub error: Option<String>,
}

/// The whole application state.
#[derive(Debug, Clone)]
pub struct App {
    pub settings: Settings,
    /// The fleet model: every device, its identity, liveness, readings and their judgement.
    pub fleet: Fleet,
    pub view: View,
    /// Discovery still running.
    pub discovering: bool,
    pub started: Instant,
    /// The time of the last event handled (drawing uses it for ages).
    pub now: Instant,
    pub quit: bool,
    /// Leaving while a firmware batch runs (`app::quit`), and the exit status decided.
    pub leaving: super::leaving::Leaving,
    /// Notes from discovery (hostile replies …), newest last, bounded.
    pub notes: VecDeque<String>,
    /// The current or last firmware batch.
    pub firmware: Option<Batch>,
    pub recording: Recording,
    /// Readings or liveness changed since metrics were last published.
    pub metrics_dirty: bool,
    /// The last copy of the recent log lines (oldest first), for the log pane.
    pub log_lines: Vec<String>,
}

/// One visible row, resolved.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    pub device: &'a Device,
    pub outlet: Option<&'a Outlet>,
}

impl RowRef<'_> {
    pub fn id(&self) -> RowId {
        RowId {
            key: self.device.key.clone(),
            child: self.outlet.map(|o| o.id.clone()),
        }
    }

    pub fn meter(&self) -> Option<&Meter> {
        match self.outlet {
            Some(o) => o.meter.as_ref(),
            None => self.device.meter.as_ref(),
        }
    }

    pub fn alias(&self) -> &str {
        match self.outlet {
            Some(o) => &o.alias,
            None => self.device.alias(),
        }
    }

    pub fn relay(&self) -> Option<bool> {
        match self.outlet {
            Some(o) => Some(o.relay_on),
            None => self.device.relay(),
        }
    }

    pub fn health(&self) -> Health {
        match self.outlet {
            Some(o) => self.device.outlet_health(o),
            None => self.device.health(),
        }
    }

    /// Flagged: the last reading is suspect or bogus (for a strip: its judgement, its total
    /// against the strip's rating included).
    pub fn is_flagged(&self) -> bool {
        match self.outlet {
            Some(_) => self.meter().is_some_and(|m| m.verdict() != Verdict::Ok),
            None => self.device.verdict() != Verdict::Ok,
        }
    }

    /// Values shown for W / V / A / kWh: a strip's parent row sums its outlets (voltage
    /// averaged) and marks what the strip's judgement flags.
    pub fn values(&self) -> Values {
        let (r, flags) = match self.outlet {
            None => self.device.values(),
            Some(o) => match o
                .meter
                .as_ref()
                .and_then(|m| Some((m.values()?, m.check.flags)))
            {
                Some((r, f)) => (Some(r), f),
                None => (None, ValueFlags::default()),
            },
        };
        match r {
            Some(r) => Values {
                power: r.power_w,
                voltage: r.voltage_v,
                current: r.current_a,
                total: r.total_kwh,
                flags,
            },
            None => Values::default(),
        }
    }
}

/// The readings shown on a row.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Values {
    pub power: Option<f64>,
    pub voltage: Option<f64>,
    pub current: Option<f64>,
    pub total: Option<f64>,
    pub flags: ValueFlags,
}

/// Fleet totals for the summary line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub devices: usize,
    pub online: usize,
    pub offline: usize,
    pub flagged: usize,
    pub newer: usize,
    pub marked: usize,
    /// (version, count), most used first.
    pub versions: Vec<(String, usize)>,
    pub power_w: f64,
}

impl App {
    pub fn new(settings: Settings, now: Instant) -> Self {
        Self {
            settings,
            fleet: Fleet::new(now),
            view: View::default(),
            discovering: true,
            started: now,
            now,
            quit: false,
            leaving: Default::default(),
            notes: VecDeque::new(),
            firmware: None,
            recording: Recording::default(),
            metrics_dirty: false,
            log_lines: Vec::new(),
        }
    }

    fn row_matches(&self, r: &RowRef<'_>) -> bool {
        let f = self.view.filter.trim().to_lowercase();
        if f.is_empty() {
            return true;
        }
        let d = r.device;
        let hay = [
            r.alias(),
            d.alias(),
            d.model(),
            d.hw_ver(),
            d.sw_version(),
            d.mac(),
            &d.key,
            r.health().label(),
        ];
        hay.iter().any(|h| h.to_lowercase().contains(&f))
            || d.addr.ip().to_string().contains(&f)
            || d.found_by.iter().any(|s| s.contains(&f))
    }

    fn sort_cmp(&self, a: &Device, b: &Device) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let ra = RowRef {
            device: a,
            outlet: None,
        };
        let rb = RowRef {
            device: b,
            outlet: None,
        };
        let desc = self.view.descending;
        // Missing values sort last in either direction (the reversal below is undone).
        let num = |x: Option<f64>, y: Option<f64>| -> Ordering {
            let missing_last = |o: Ordering| if desc { o.reverse() } else { o };
            match (x, y) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => missing_last(Ordering::Less),
                (None, Some(_)) => missing_last(Ordering::Greater),
                (None, None) => Ordering::Equal,
            }
        };
        let vals = || (ra.values(), rb.values());
        let ord = match self.view.sort {
            Column::Mark => self
                .view
                .marked
                .contains(&ra.id())
                .cmp(&self.view.marked.contains(&rb.id()))
                .reverse(),
            Column::Health => b.health().cmp(&a.health()),
            Column::Alias => a.alias().to_lowercase().cmp(&b.alias().to_lowercase()),
            Column::Ip => a.addr.cmp(&b.addr),
            Column::Model => a.model().cmp(b.model()),
            Column::Hw => a.hw_ver().cmp(b.hw_ver()),
            Column::Sw => version_key(a.sw_version()).cmp(&version_key(b.sw_version())),
            Column::Relay => b.relay().cmp(&a.relay()),
            Column::Watts => {
                let (va, vb) = vals();
                num(va.power, vb.power)
            }
            Column::Volts => {
                let (va, vb) = vals();
                num(va.voltage, vb.voltage)
            }
            Column::Amps => {
                let (va, vb) = vals();
                num(va.current, vb.current)
            }
            Column::Kwh => {
                let (va, vb) = vals();
                num(va.total, vb.total)
            }
            Column::Rssi => num(a.rssi().map(|x| x as f64), b.rssi().map(|x| x as f64)),
            Column::Seen => b.last_seen.cmp(&a.last_seen),
            Column::Found => a.found_by.cmp(&b.found_by),
        };
        let ord = if self.view.descending {
            ord.reverse()
        } else {
            ord
        };
        ord.then_with(|| a.addr.cmp(&b.addr))
            .then_with(|| a.key.cmp(&b.key))
    }

    /// The rows of the table, in order: sorted devices, each expanded strip followed by its
    /// outlets; filtered and restricted to flagged rows when asked.
    pub fn rows(&self) -> Vec<RowRef<'_>> {
        let mut devs: Vec<&Device> = self.fleet.devices.values().collect();
        devs.sort_by(|a, b| self.sort_cmp(a, b));
        let mut out = Vec::with_capacity(devs.len());
        for d in devs {
            let parent = RowRef {
                device: d,
                outlet: None,
            };
            let outlets = || {
                d.outlets.iter().map(|o| RowRef {
                    device: d,
                    outlet: Some(o),
                })
            };
            let an_outlet_matches = outlets().any(|r| self.row_matches(&r));
            let children: Vec<RowRef<'_>> = if self.view.expanded.contains(&d.key) {
                d.outlets
                    .iter()
                    .map(|o| RowRef {
                        device: d,
                        outlet: Some(o),
                    })
                    .filter(|r| self.row_matches(r) || self.row_matches(&parent))
                    .filter(|r| !self.view.flagged_only || r.is_flagged())
                    .collect()
            } else {
                Vec::new()
            };
            let parent_shown = (self.row_matches(&parent) || an_outlet_matches)
                && (!self.view.flagged_only || parent.is_flagged());
            if parent_shown {
                out.push(parent);
                out.extend(children);
            }
        }
        out
    }

    /// Is this row shown in the table (without building the whole list)?
    pub fn is_visible(&self, id: &RowId) -> bool {
        let Some(r) = self.row(id) else {
            return false;
        };
        let parent = RowRef {
            device: r.device,
            outlet: None,
        };
        let outlet_matches = || {
            r.device.outlets.iter().any(|o| {
                self.row_matches(&RowRef {
                    device: r.device,
                    outlet: Some(o),
                })
            })
        };
        let parent_shown = (self.row_matches(&parent) || outlet_matches())
            && (!self.view.flagged_only || parent.is_flagged());
        match r.outlet {
            None => parent_shown,
            Some(_) => {
                parent_shown
                    && self.view.expanded.contains(&r.device.key)
                    && (self.row_matches(&r) || self.row_matches(&parent))
                    && (!self.view.flagged_only || r.is_flagged())
            }
        }
    }

    /// Index of the selected row among `rows`, if it is visible.
    pub fn selected_index(&self, rows: &[RowRef<'_>]) -> Option<usize> {
        let sel = self.view.selected.as_ref()?;
        rows.iter()
            .position(|r| r.device.key == sel.key && r.outlet.map(|o| &o.id) == sel.child.as_ref())
    }

    pub fn row(&self, id: &RowId) -> Option<RowRef<'_>> {
        let device = self.fleet.devices.get(&id.key)?;
        let outlet = match &id.child {
            Some(c) => Some(device.outlets.iter().find(|o| &o.id == c)?),
            None => None,
        };
        Some(RowRef { device, outlet })
    }

    /// The selected row, if any and if it still exists.
    pub fn selected(&self) -> Option<RowRef<'_>> {
        self.view.selected.as_ref().and_then(|id| self.row(id))
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            devices: self.fleet.devices.len(),
            marked: self.view.marked.len(),
            ..Summary::default()
        };
        let mut versions: HashMap<String, usize> = HashMap::new();
        for d in self.fleet.devices.values() {
            if d.is_newer() {
                s.newer += 1;
            } else if d.is_online() {
                s.online += 1;
            } else if matches!(d.link, Link::Offline(_)) {
                s.offline += 1;
            }
            if d.verdict() != Verdict::Ok && d.is_online() {
                s.flagged += 1;
            }
            if let Some(sys) = &d.sysinfo {
                *versions.entry(sys.version().to_owned()).or_default() += 1;
            }
            if d.is_online() {
                s.power_w += d
                    .meters()
                    .filter(|m| m.check.verdict == Verdict::Ok)
                    .filter_map(|m| m.values().and_then(|r| r.power_w))
                    .sum::<f64>();
            }
        }
        let mut v: Vec<(String, usize)> = versions.into_iter().collect();
        v.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| version_key(&a.0).cmp(&version_key(&b.0)))
        });
        s.versions = v;
        s
    }

    /// The status message, if still fresh.
    pub fn status(&self) -> Option<&str> {
        self.view
            .status
            .as_ref()
            .filter(|(_, at)| self.now.saturating_duration_since(*at) < self.settings.status_ttl)
            .map(|(m, _)| m.as_str())
    }

    pub fn set_status(&mut self, msg: impl Into<String>, now: Instant) {
        self.view.status = Some((msg.into(), now));
    }
}

/// `1.2.10` sorts after `1.2.9`.
pub fn version_key(v: &str) -> Vec<u64> {
    v.split('.')
        .map(|p| p.trim().parse().unwrap_or(0))
        .collect()
}
