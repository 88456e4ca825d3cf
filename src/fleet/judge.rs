//! The judgement of a device as a whole, in one place for every view: a plug is judged by its
//! meter's last reading; a strip by each outlet's reading (checked against the strip's rating)
//! plus the sum of its outlets against the strip's rating
//! ([`crate::fleet::plausibility::strip_total`]), one line per flagged outlet
//! ([`crate::fleet::plausibility::strip_summary`]).
//!
//! A meter without a current reading (the last read failed) is not judged "ok": it has no
//! assessment, and the views say "no reading" with its reason.

use crate::fleet::model::Device;
use crate::fleet::plausibility::{Assessment, strip_summary, strip_total};
use crate::fleet::reading::Reading;

/// The device-level assessment, `None` when no meter has a current reading.
pub fn device(d: &Device) -> Option<Assessment> {
    if !d.is_strip() {
        return d.meter.as_ref()?.current().map(|(_, a)| a.clone());
    }
    let limits = d.limits.as_ref()?;
    let read: Vec<(Reading, &Assessment, &str)> = d
        .outlets
        .iter()
        .filter_map(|o| {
            let (r, a) = o.meter.as_ref()?.current()?;
            Some((Reading::from(r), a, o.alias.as_str()))
        })
        .collect();
    if read.is_empty() {
        return None;
    }
    let total = strip_total(limits, read.iter().map(|(r, a, _)| (r, *a)));
    Some(strip_summary(
        &total,
        read.iter().map(|(_, a, name)| (*name, *a)),
    ))
}
