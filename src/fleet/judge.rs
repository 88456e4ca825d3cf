//! The judgement of a device as a whole, in one place for every view: a plug is judged by its
//! meter's last reading ([`plug`]); a strip by each outlet's reading (checked against the
//! strip's rating) plus the sum of its outlets against the strip's rating
//! ([`crate::fleet::plausibility::strip_total`]), one line per flagged outlet
//! ([`crate::fleet::plausibility::strip_summary`]) — [`strip`].
//!
//! A meter without a current reading (the last read failed) is not judged "ok": it has no
//! assessment, and the views say "no reading" with its reason.

use crate::fleet::meter::Meter;
use crate::fleet::plausibility::{Assessment, strip_summary, strip_total};
use crate::fleet::ratings::Limits;
use crate::fleet::reading::Reading;

/// A plug: its meter's current assessment, `None` without a current reading.
pub fn plug(m: &Meter) -> Option<Assessment> {
    m.current().map(|(_, a)| a.clone())
}

/// A strip, from its outlets (alias, meter) against the strip's rating `limits`; `None` when
/// no outlet has a current reading.
pub fn strip<'a>(
    limits: &Limits,
    outlets: impl IntoIterator<Item = (&'a str, &'a Meter)>,
) -> Option<Assessment> {
    let read: Vec<(Reading, &Assessment, &str)> = outlets
        .into_iter()
        .filter_map(|(alias, m)| {
            let (r, a) = m.current()?;
            Some((Reading::from(r), a, alias))
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::fleet::ratings::limits_for;
    use crate::fleet::verdict::Verdict;
    use crate::protocol::Realtime;

    fn read(limits: &Limits, p: f64) -> Meter {
        let mut m = Meter::default();
        let rt = Realtime::from_result(&serde_json::json!({
            "power": p, "voltage": 120.0, "current": p / 114.0, "total": 1.0
        }))
        .expect("reading");
        m.record(limits, rt, Instant::now(), 0);
        m
    }

    #[test]
    fn a_strip_is_judged_by_its_total_and_no_reading_is_not_ok() {
        let l = limits_for("HS300(US)");
        let outlets: Vec<Meter> = (0..6).map(|_| read(&l, 400.0)).collect();
        let a = strip(&l, outlets.iter().map(|m| ("x", m))).expect("read");
        assert_eq!(a.verdict, Verdict::Bogus);
        assert!(a.reasons[0].text.starts_with("strip total 2400 W"), "{a:?}");
        let a = strip(&l, outlets.iter().take(3).map(|m| ("x", m))).expect("read");
        assert_eq!(a.verdict, Verdict::Ok);
        let mut failed = read(&l, 10.0);
        failed.failed("timed out".into());
        assert_eq!(plug(&failed), None);
        assert_eq!(strip(&l, [("x", &failed)]), None);
    }
}
