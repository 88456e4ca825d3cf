//! Settings fixed at start: the app's ([`Settings`]) and how firmware batches run
//! ([`FirmwareSettings`]). Below both the state and the firmware screens' logic, so neither
//! imports the other for them.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::firmware::job::JobTimings;
use crate::firmware::plan::Policy;
use crate::firmware::runner::{self, RunnerConfig};
use crate::net::ClientConfig;

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub read_only: bool,
    /// Shown in the title and status bar (`DEMO`), when set.
    pub label: Option<String>,
    pub interval: Duration,
    /// How long a status message stays.
    pub status_ttl: Duration,
    /// Draw with colours (off when `NO_COLOR` is set).
    pub color: bool,
    /// Where the firmware file picker starts (then the folder last chosen, for the session).
    pub firmware_dir: PathBuf,
    /// How firmware batches run (concurrency, ceilings, timings, journal).
    pub firmware: FirmwareSettings,
    /// Local names by MAC (config `[names]`): shown instead of the device's alias.
    pub names: crate::fleet::identity::Names,
    /// Rating overrides per model (config `[ratings]`), used by the plausibility checks.
    pub ratings: crate::fleet::ratings::Overrides,
    /// The quiet rules (config `[plausibility]`), given to the fleet model.
    pub plausibility: crate::fleet::quiet::QuietRules,
    /// `--record FILE`: recording starts with the app, to this file in this format.
    pub record: Option<(PathBuf, crate::app::recording::RecordFormat)>,
    /// Where the record key writes when no `--record` was given.
    pub record_default: PathBuf,
    /// `http://…/metrics` when `--metrics` serves the readings.
    pub metrics_url: Option<String>,
    /// Wall-clock time (ms since the Unix epoch) of the app's start: records are stamped
    /// with it plus the time passed in to `update`, so update never reads a clock.
    pub epoch_unix_ms: u64,
    /// Capture the mouse (click a row, click a header, the wheel); off with `--no-mouse`.
    pub mouse: bool,
    /// The TP-Link account for newer-protocol plugs (`Debug` hides the password).
    pub account: Option<crate::net::klap::Credentials>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            read_only: false,
            label: None,
            interval: Duration::from_secs(2),
            status_ttl: Duration::from_secs(6),
            color: true,
            firmware_dir: PathBuf::from("."),
            firmware: FirmwareSettings::default(),
            names: crate::fleet::identity::Names::default(),
            ratings: crate::fleet::ratings::Overrides::default(),
            plausibility: crate::fleet::quiet::QuietRules::default(),
            record: None,
            record_default: PathBuf::from("readings.jsonl"),
            metrics_url: None,
            epoch_unix_ms: 0,
            mouse: false,
            account: None,
        }
    }
}

/// How the TUI runs firmware batches (fixed at start).
#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareSettings {
    /// Plugs updated at once.
    pub concurrency: usize,
    /// What images are judged by (`[firmware]` of the config file): version ceilings (beyond
    /// them a plan entry is blocked), size bounds, the allowlist of known hashes.
    pub policy: Policy,
    pub timings: JobTimings,
    /// The JSON-lines journal (the runner's default in the data directory).
    pub journal: Option<PathBuf>,
}

impl Default for FirmwareSettings {
    fn default() -> Self {
        Self {
            concurrency: runner::DEFAULT_CONCURRENCY,
            policy: Policy::default(),
            timings: JobTimings::default(),
            journal: runner::default_journal_path(),
        }
    }
}

impl FirmwareSettings {
    /// From the config file's `[firmware]` section (`concurrency`, `max_version`,
    /// `size_limits`, `known`); the folders are read by [`start_dir`].
    pub fn from_config(cfg: &Config) -> Result<Self, String> {
        let policy = Policy::from_config(&cfg.firmware)?;
        Ok(Self {
            concurrency: cfg
                .firmware
                .concurrency
                .filter(|n| (1..=256).contains(n))
                .unwrap_or(runner::DEFAULT_CONCURRENCY),
            policy,
            ..Self::default()
        })
    }

    /// For the demo's simulated plugs (time scale [`DEMO_TIME_SCALE`]): they report their
    /// flash and reboot times already scaled, so only the runner's own waits are shortened.
    pub fn demo() -> Self {
        Self {
            timings: JobTimings {
                poll_interval: Duration::from_millis(250),
                download_stall: Duration::from_secs(15),
                download_deadline: Duration::from_secs(120),
                request_deadline: Duration::from_secs(10),
                device_time_scale: 1.0,
                default_flash_time: Duration::from_secs(4),
                default_reboot_time: Duration::from_secs(2),
                quiet_margin: Duration::from_millis(500),
                verify_poll: Duration::from_millis(250),
                back_deadline: Duration::from_secs(30),
            },
            ..Self::default()
        }
    }

    /// The runner's configuration for one batch. `force` is the explicit override (`--force`).
    pub fn runner_config(&self, client: ClientConfig, force: bool) -> RunnerConfig {
        RunnerConfig {
            client,
            timings: self.timings,
            concurrency: self.concurrency.max(1),
            canary: false,
            stop_on_failure: false,
            force,
            serve_addr: None,
            serve_port: 0,
            journal: self.journal.clone(),
        }
    }
}
