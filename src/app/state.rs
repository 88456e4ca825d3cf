//! The application state: the devices as the UI knows them, and the view (sorting, filter,
//! marks, selection, overlays). Mutated only by [`crate::app::update`].

use std::collections::{BTreeSet, VecDeque};
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
    /// `emeter.erase_emeter_stat`: the plug's (outlet's) day and month statistics.
    EraseStats,
}

impl ActionKind {
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::RelayOn => "turn on",
            ActionKind::RelayOff => "turn off",
            ActionKind::Reboot => "reboot",
            ActionKind::EraseStats => "erase energy statistics",
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
    /// What the device is (plug, strip, switch, dimmer, bulb, lightstrip, camera, hub).
    Type,
    Model,
    Hw,
    Sw,
    /// Hardware and firmware ids (`hwId`/`fwId`, their first hex digits): wide screens only.
    Ids,
    Relay,
    /// A dimmer's or light's brightness: shown only when a device has one.
    Bright,
    Watts,
    /// The row's recent power as a sparkline (btop-style): wide screens only.
    Trend,
    Volts,
    Amps,
    Kwh,
    /// kWh today / this month from the energy history (wide screens only).
    Energy,
    Rssi,
    Seen,
    Found,
}

impl Column {
    pub const ALL: [Column; 20] = [
        Column::Mark,
        Column::Health,
        Column::Alias,
        Column::Ip,
        Column::Type,
        Column::Model,
        Column::Hw,
        Column::Sw,
        Column::Ids,
        Column::Relay,
        Column::Bright,
        Column::Watts,
        Column::Trend,
        Column::Volts,
        Column::Amps,
        Column::Kwh,
        Column::Energy,
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
            Column::Type => "Type",
            Column::Model => "Model",
            Column::Hw => "HW",
            Column::Sw => "SW",
            Column::Ids => "HW id/FW id",
            Column::Relay => "Relay",
            Column::Bright => "Bright",
            Column::Watts => "W",
            Column::Trend => "Power trend",
            Column::Volts => "V",
            Column::Amps => "A",
            Column::Kwh => "kWh",
            Column::Energy => "kWh day/month",
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
            Column::Type => "type",
            Column::Model => "model",
            Column::Hw => "hardware version",
            Column::Sw => "software version",
            Column::Ids => "hardware/firmware id",
            Column::Relay => "relay",
            Column::Bright => "brightness",
            Column::Watts => "power",
            Column::Trend => "power trend",
            Column::Volts => "voltage",
            Column::Amps => "current",
            Column::Kwh => "energy",
            Column::Energy => "energy today",
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
    /// What the rows are, counted for the title ("2 plugs and 6 outlets", "1 bulb").
    pub what: String,
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
    /// The credentials prompt (`c`): the TP-Link account for this session.
    Account(crate::app::account::AccountPrompt),
}

/// Where the last frame drew the table: the header line, the first body line and the rows
/// shown in order, each column's first cell and width.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableHits {
    pub header_y: u16,
    pub body_y: u16,
    /// The rows drawn, top to bottom.
    pub rows: Vec<RowId>,
    /// `(column, x, width)` of each column drawn, left to right.
    pub cols: Vec<(Column, u16, u16)>,
}

impl TableHits {
    /// The column whose cells (or the gap after them) cover `x`.
    pub fn column_at(&self, x: u16) -> Option<Column> {
        self.cols
            .iter()
            .find(|(_, cx, w)| x >= *cx && x <= cx.saturating_add(*w))
            .map(|(c, _, _)| *c)
    }

    /// The row drawn at line `y`.
    pub fn row_at(&self, y: u16) -> Option<&RowId> {
        let i = usize::from(y.checked_sub(self.body_y)?);
        self.rows.get(i)
    }
}

/// The table's place in the last frame, written by the drawing code (which only reads the
/// app otherwise), read by the mouse handling (`app::mouse`). Cloning copies the current value.
#[derive(Debug, Default)]
pub struct Drawn(std::sync::Mutex<Option<TableHits>>);

impl Drawn {
    pub fn set(&self, hits: Option<TableHits>) {
        match self.0.lock() {
            Ok(mut g) => *g = hits,
            Err(p) => *p.into_inner() = hits,
        }
    }

    pub fn get(&self) -> Option<TableHits> {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl Clone for Drawn {
    fn clone(&self) -> Self {
        Drawn(std::sync::Mutex::new(self.get()))
    }
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
    /// The user has moved the cursor: until then it stays on row 1, whichever plug answered
    /// first.
    pub chosen: bool,
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
    /// Where the last frame drew the table, for the mouse (`app::mouse`).
    pub drawn: Drawn,
    /// The table rows formatted by the last frame, reused while unchanged
    /// ([`crate::app::cells::RowCells`]).
    pub cells: crate::app::cells::RowCells<RowId>,
    /// Row 1 as the selection last found it, and under which view ([`FirstRow`]).
    pub first_row: Option<FirstRow>,
}

/// The device of row 1 as `app::update` last found it, with what of the view decides which
/// row is first. While that holds, a poll report that changed one other device is compared
/// with this row alone ([`App::first_row_after`]) instead of a pass over the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstRow {
    pub key: String,
    sort: Column,
    descending: bool,
    filter: String,
    flagged_only: bool,
    devices: usize,
}

impl FirstRow {
    pub fn of(app: &App, key: String) -> Self {
        let v = &app.view;
        Self {
            key,
            sort: v.sort,
            descending: v.descending,
            filter: v.filter.clone(),
            flagged_only: v.flagged_only,
            devices: app.fleet.len(),
        }
    }

    /// The view still orders and filters the rows as when this was found, the fleet has as
    /// many devices, and the order is one of the devices alone (not of the clock, as the
    /// energy column's day is, nor of the marks).
    pub fn holds(&self, app: &App) -> bool {
        let v = &app.view;
        self.sort == v.sort
            && !matches!(self.sort, Column::Energy | Column::Mark)
            && self.descending == v.descending
            && self.filter == v.filter
            && self.flagged_only == v.flagged_only
            && self.devices == app.fleet.len()
    }
}

impl View {
    /// Sort by `col`: a new column sorts ascending, the sorted one reverses (k9s, bottom).
    pub fn sort_by(&mut self, col: Column) {
        if self.sort == col {
            self.descending = !self.descending;
        } else {
            self.sort = col;
            self.descending = false;
        }
    }
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
            chosen: false,
            expanded: BTreeSet::new(),
            marked: BTreeSet::new(),
            detail: false,
            overlay: Overlay::None,
            status: None,
            page: 10,
            help_scroll: 0,
            progress: false,
            drawn: Default::default(),
            cells: Default::default(),
            first_row: None,
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

impl App {
    pub fn new(settings: Settings, now: Instant) -> Self {
        let mut fleet = Fleet::new(now);
        fleet.rules = settings.plausibility.clone();
        Self {
            settings,
            fleet,
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
