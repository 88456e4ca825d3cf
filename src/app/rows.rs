//! The table's rows, resolved from the fleet model and the view: which devices and outlets are
//! shown (filter, flagged only, expanded strips), in which order (the sort column), what each
//! row shows, and the fleet totals of the summary line. The one function per view that turns
//! the model into what the TUI draws.

use std::collections::HashMap;
use std::time::Instant;

use crate::app::state::{App, Column, RowId};
use crate::fleet::meter::{Meter, ValueFlags, Verdict};
use crate::fleet::model::{Device, Health, Link, Outlet};

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

    /// The row is flagged by an earlier reading, not its current one (kept for
    /// [`crate::fleet::meter::STICKY`]): that verdict and when it was read. `None` when the
    /// current reading carries the row's verdict.
    pub fn sticky(&self) -> Option<(Verdict, Instant)> {
        match self.outlet {
            Some(o) => o.meter.as_ref()?.sticky(),
            None => {
                let d = self.device;
                let current = d.judged.as_ref().map_or(Verdict::Ok, |a| a.verdict);
                let shown = d.verdict();
                if shown <= current {
                    return None;
                }
                d.meters()
                    .filter(|m| m.recent == shown)
                    .filter_map(|m| m.recent_at)
                    .max()
                    .map(|at| (shown, at))
            }
        }
    }

    /// The meter whose earlier reading flags the row (see [`RowRef::sticky`]).
    pub fn sticky_meter(&self) -> Option<&Meter> {
        let (v, at) = self.sticky()?;
        self.device
            .meters()
            .find(|m| m.recent == v && m.recent_at == Some(at))
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
    /// Found over the newer protocol's UDP 20002 probe but not read (no sysinfo).
    pub newer: usize,
    pub marked: usize,
    /// (version, count), most used first.
    pub versions: Vec<(String, usize)>,
    pub power_w: f64,
}

impl App {
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
            Column::Type => a.kind().cmp(&b.kind()),
            Column::Model => a.model().cmp(b.model()),
            Column::Hw => a.hw_ver().cmp(b.hw_ver()),
            Column::Sw => version_key(a.sw_version()).cmp(&version_key(b.sw_version())),
            Column::Relay => b.relay().cmp(&a.relay()),
            Column::Bright => num(a.brightness().map(f64::from), b.brightness().map(f64::from)),
            Column::Watts | Column::Trend => {
                let (va, vb) = vals();
                num(va.power, vb.power)
            }
            Column::Ids => ids_of(a).cmp(&ids_of(b)),
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
            Column::Energy => {
                let e = |r: &RowRef<'_>| {
                    crate::fleet::stats::today_and_month(
                        r.device,
                        r.outlet.map(|o| o.id.as_str()),
                        crate::app::export::today_of(self, r.device, self.now),
                    )
                    .map(|(t, _, _)| t)
                };
                num(e(&ra), e(&rb))
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
            if self.device_shown(d) {
                out.push(parent);
                out.extend(children);
            }
        }
        out
    }

    /// Is the device's own row in the table (it or one of its outlets matches the filter, and it
    /// is flagged when only flagged rows are shown)?
    fn device_shown(&self, d: &Device) -> bool {
        let parent = RowRef {
            device: d,
            outlet: None,
        };
        let an_outlet_matches = || {
            d.outlets.iter().any(|o| {
                self.row_matches(&RowRef {
                    device: d,
                    outlet: Some(o),
                })
            })
        };
        (self.row_matches(&parent) || an_outlet_matches())
            && (!self.view.flagged_only || parent.is_flagged())
    }

    /// The first row of [`Self::rows`] without sorting or building the list: one pass over the
    /// fleet (the selection is kept on it after every event until the user moves the cursor).
    pub fn first_row(&self) -> Option<RowRef<'_>> {
        self.fleet
            .devices
            .values()
            .filter(|d| self.device_shown(d))
            .min_by(|a, b| self.sort_cmp(a, b))
            .map(|d| RowRef {
                device: d,
                outlet: None,
            })
    }

    /// [`App::first_row`]'s device after a change of device `changed` alone, `first` being row 1
    /// before it: `changed` when it is shown and now sorts before `first`, else `first`. `None`
    /// when that takes the full pass (`first` itself changed, or is gone).
    pub fn first_row_after(&self, first: &str, changed: &str) -> Option<String> {
        if first == changed {
            return None;
        }
        let f = self.fleet.get(first)?;
        let ahead = self.fleet.get(changed).is_some_and(|c| {
            self.device_shown(c) && self.sort_cmp(c, f) == std::cmp::Ordering::Less
        });
        Some(if ahead { changed } else { first }.to_owned())
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

    /// Moves the selection `delta` rows (clamped to the first and last row).
    pub fn move_selection(&mut self, delta: isize) {
        let rows = self.rows();
        if rows.is_empty() {
            return;
        }
        let cur = self.selected_index(&rows).unwrap_or(0) as isize;
        let next = cur.saturating_add(delta).clamp(0, rows.len() as isize - 1) as usize;
        let id = rows[next].id();
        self.view.selected = Some(id);
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
        let mut versions: HashMap<&str, usize> = HashMap::new();
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
                *versions.entry(sys.version()).or_default() += 1;
            }
            if d.is_online() {
                s.power_w += d
                    .meters()
                    .filter(|m| m.check.verdict == Verdict::Ok)
                    .filter_map(|m| m.values().and_then(|r| r.power_w))
                    .sum::<f64>();
            }
        }
        let mut v: Vec<(String, usize)> = versions
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
        v.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| version_key(&a.0).cmp(&version_key(&b.0)))
        });
        s.versions = v;
        s
    }
}

/// A device's hardware and firmware ids (`hwId`, `fwId`), empty when unknown.
pub fn ids_of(d: &Device) -> (&str, &str) {
    match &d.sysinfo {
        Some(s) => (
            s.hw_id.as_deref().unwrap_or(""),
            s.fw_id.as_deref().unwrap_or(""),
        ),
        None => ("", ""),
    }
}

/// `1.2.10` sorts after `1.2.9`.
pub fn version_key(v: &str) -> Vec<u64> {
    v.split('.')
        .map(|p| p.trim().parse().unwrap_or(0))
        .collect()
}
