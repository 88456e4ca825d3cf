//! What leaves the TUI for recording and monitoring: the record rows and the metrics series
//! are views of the fleet model (`crate::record::rows_for`, `crate::metrics::view::snapshot`,
//! built above the app); this adds the app's wall clock and the default record file.

use std::time::Instant;

use super::state::App;

/// Milliseconds since the Unix epoch at `now`, on the app's clock (`epoch_unix_ms` at start).
pub fn unix_ms_at(app: &App, now: Instant) -> u64 {
    let since = now.saturating_duration_since(app.started).as_millis();
    app.settings
        .epoch_unix_ms
        .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
}

/// Today for the plug `d` at the app's `now`: the date on the plug's own calendar
/// ([`Device::date_at`]), which its energy history follows.
pub fn today_of(
    app: &App,
    d: &crate::fleet::model::Device,
    now: Instant,
) -> crate::fleet::energy::Date {
    d.date_at(i64::try_from(unix_ms_at(app, now) / 1000).unwrap_or(0))
}

/// `readings-YYYY-MM-DD.jsonl` (UTC date of `unix_ms`).
pub fn default_record_name(unix_ms: u64) -> String {
    let date =
        crate::protocol::calendar::Date::from_unix(i64::try_from(unix_ms / 1000).unwrap_or(0));
    format!("readings-{date}.jsonl")
}

/// Where the record key writes without `--record`: the data directory
/// (`~/.local/share/plugfleet/` on Linux), else the current directory.
pub fn default_record_path(unix_ms: u64) -> std::path::PathBuf {
    let name = default_record_name(unix_ms);
    match directories::ProjectDirs::from("", "", "plugfleet") {
        Some(d) => d.data_dir().join(name),
        None => std::path::PathBuf::from(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_record_names_carry_the_utc_date() {
        assert_eq!(default_record_name(0), "readings-1970-01-01.jsonl");
        // 2026-11-25T15:47:29Z
        assert_eq!(
            default_record_name(1_795_621_649_000),
            "readings-2026-11-25.jsonl"
        );
        // 2024-02-29 (a leap day), 2000-03-01
        assert_eq!(
            default_record_name(1_709_208_000_000),
            "readings-2024-02-29.jsonl"
        );
        assert_eq!(
            default_record_name(951_868_800_000),
            "readings-2000-03-01.jsonl"
        );
    }
}
