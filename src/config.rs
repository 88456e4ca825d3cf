//! The configuration file (TOML): where to look for plugs, how hard to poll, safety defaults,
//! rating overrides, firmware folders and ceilings, and local names keyed by MAC.
//!
//! It lives in the platform's config directory (`plugfleet config path`); `--config PATH`
//! overrides. Command-line flags override it. A bad file is an error that names the file, the
//! line and the key, and nothing starts half-configured.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The whole file. Every section is optional; unknown keys are errors (a typo must not be
/// silently ignored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub discovery: DiscoverySection,
    pub poll: PollSection,
    pub safety: SafetySection,
    pub firmware: FirmwareSection,
    /// Rating overrides keyed by model as reported, e.g. `"HS110(US)"`.
    pub ratings: BTreeMap<String, RatingOverride>,
    /// Local names keyed by MAC (any separator, any case).
    pub names: BTreeMap<String, String>,
    /// The quiet cross-checks over history and the fleet (`fleet::quiet`): each rule's switch
    /// and thresholds.
    pub plausibility: QuietRules,
    /// The TP-Link account newer-protocol (KLAP/AES) plugs are bound to.
    pub credentials: CredentialsSection,
}

/// `[credentials]`: the TP-Link account for newer-protocol plugs. The password is never
/// printed (`Debug` shows `…`), logged or written into JSON or records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsSection {
    /// The account's e-mail address.
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// A password: `Debug` and `Display` never show it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The password itself, for the handshake only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("…")
    }
}

/// A warning when the file holding a password can be read by others (unix mode bits), else
/// `None`.
pub fn credentials_warning(path: &Path, cfg: &Config) -> Option<String> {
    cfg.credentials.password.as_ref()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            return Some(format!(
                "{} holds a password and is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

/// `[plausibility]`: the rules that catch meters lying quietly (issue 15), one sub-table each.
/// Every key is optional; the defaults are the ones in the commented default file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuietRules {
    pub counter: CounterRule,
    pub frozen: FrozenRule,
    pub fleet_voltage: FleetVoltageRule,
    pub phantom: PhantomRule,
    pub power_factor: PowerFactorRule,
}

/// `[plausibility.counter]`: the rise of `total` against the energy integrated from the polled
/// power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CounterRule {
    pub enabled: bool,
    /// The window judged must span at least this many seconds of usable polls …
    pub min_window_s: f64,
    /// … and is the last this many seconds of history at most.
    pub max_window_s: f64,
    /// Below this much integrated energy the counter's resolution is too coarse to judge.
    pub min_expected_kwh: f64,
    /// Counter rise / integrated energy outside [ratio_min, ratio_max] is suspect.
    pub ratio_min: f64,
    pub ratio_max: f64,
    /// A gap between two polls longer than this is not integrated (nor its counter rise).
    pub max_gap_s: f64,
}

impl Default for CounterRule {
    fn default() -> Self {
        Self {
            enabled: true,
            min_window_s: 600.0,
            max_window_s: 3600.0,
            min_expected_kwh: 0.05,
            ratio_min: 0.8,
            ratio_max: 1.25,
            max_gap_s: 300.0,
        }
    }
}

/// `[plausibility.frozen]`: the same P, V and I to the last digit poll after poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrozenRule {
    pub enabled: bool,
    /// Consecutive identical polls that make a meter frozen.
    pub polls: usize,
    /// Only a load of at least this many watts must jitter (an idle outlet reads 0 W steadily).
    pub min_w: f64,
}

impl Default for FrozenRule {
    fn default() -> Self {
        Self {
            enabled: true,
            polls: 10,
            min_w: 5.0,
        }
    }
}

/// `[plausibility.fleet_voltage]`: a plug's voltage against the median of the other plugs of
/// its region polled at about the same time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetVoltageRule {
    pub enabled: bool,
    /// Allowed difference from the median, percent of the median.
    pub margin_pct: f64,
    /// Other metered plugs of the region needed for a median.
    pub min_others: usize,
    /// Readings further apart than this (seconds) are not "the same time".
    pub window_s: f64,
}

impl Default for FleetVoltageRule {
    fn default() -> Self {
        Self {
            enabled: true,
            margin_pct: 4.0,
            min_others: 3,
            window_s: 120.0,
        }
    }
}

/// `[plausibility.phantom]`: power or current while the relay reports off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhantomRule {
    pub enabled: bool,
    pub min_w: f64,
    pub min_a: f64,
    /// Consecutive polls with the relay off and a load (one alone may straddle a switch).
    pub polls: usize,
}

impl Default for PhantomRule {
    fn default() -> Self {
        Self {
            enabled: true,
            min_w: 2.0,
            min_a: 0.02,
            polls: 2,
        }
    }
}

/// `[plausibility.power_factor]`: a power factor too low for a load known to be resistive.
/// Off for every plug not listed in `resistive` (motors and chargers have low power factors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowerFactorRule {
    pub enabled: bool,
    /// P / (V × I) below this is suspect on a resistive load.
    pub min_pf: f64,
    /// Below this many watts the meter is too coarse for a power factor.
    pub min_w: f64,
    /// MACs of plugs that feed a resistive load (kettle, heater, lamp with a filament).
    pub resistive: Vec<String>,
}

impl Default for PowerFactorRule {
    fn default() -> Self {
        Self {
            enabled: true,
            min_pf: 0.85,
            min_w: 20.0,
            resistive: Vec::new(),
        }
    }
}

impl QuietRules {
    /// Whether the config names the plug with this MAC as feeding a resistive load.
    pub fn is_resistive(&self, mac: &str) -> bool {
        let mac = crate::protocol::normalise_mac(mac);
        self.power_factor
            .resistive
            .iter()
            .any(|m| crate::protocol::normalise_mac(m) == mac)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((format!("plausibility.{k}"), m.to_owned()));
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let c = &self.counter;
        for (k, v) in [
            ("counter.min_window_s", c.min_window_s),
            ("counter.max_window_s", c.max_window_s),
            ("counter.min_expected_kwh", c.min_expected_kwh),
            ("counter.max_gap_s", c.max_gap_s),
            ("frozen.min_w", self.frozen.min_w),
            ("fleet_voltage.window_s", self.fleet_voltage.window_s),
            ("phantom.min_w", self.phantom.min_w),
            ("phantom.min_a", self.phantom.min_a),
            ("power_factor.min_w", self.power_factor.min_w),
        ] {
            if !positive(v) {
                return bad(k, "must be a number above 0");
            }
        }
        if c.min_window_s > c.max_window_s {
            return bad(
                "counter.min_window_s",
                "must not exceed counter.max_window_s",
            );
        }
        if !(positive(c.ratio_min)
            && c.ratio_min < 1.0
            && c.ratio_max > 1.0
            && c.ratio_max.is_finite())
        {
            return bad(
                "counter.ratio_min",
                "and ratio_max must satisfy 0 < ratio_min < 1 < ratio_max",
            );
        }
        if !(2..=10_000).contains(&self.frozen.polls) {
            return bad("frozen.polls", "must be between 2 and 10000");
        }
        if !(1..=10_000).contains(&self.phantom.polls) {
            return bad("phantom.polls", "must be between 1 and 10000");
        }
        if !(1..=10_000).contains(&self.fleet_voltage.min_others) {
            return bad("fleet_voltage.min_others", "must be between 1 and 10000");
        }
        let m = self.fleet_voltage.margin_pct;
        if !(positive(m) && m < 100.0) {
            return bad(
                "fleet_voltage.margin_pct",
                "must be a percentage above 0 and below 100",
            );
        }
        let pf = self.power_factor.min_pf;
        if !(positive(pf) && pf <= 1.0) {
            return bad("power_factor.min_pf", "must be above 0 and at most 1");
        }
        for (i, mac) in self.power_factor.resistive.iter().enumerate() {
            if mac.chars().filter(char::is_ascii_hexdigit).count() != 12 {
                return bad(
                    &format!("power_factor.resistive[{i}]"),
                    "is not a MAC address (12 hex digits)",
                );
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverySection {
    /// Broadcast addresses to probe (replaces "every interface" when set).
    pub targets: Vec<IpAddr>,
    /// Known plug addresses.
    pub hosts: Vec<IpAddr>,
    /// IPv4 ranges to sweep over TCP.
    pub sweeps: Vec<Ipv4Net>,
    pub port: Option<u16>,
    /// Per-request timeout, seconds.
    pub timeout: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollSection {
    /// Seconds between reading refreshes.
    pub interval: Option<f64>,
    /// Devices polled at once.
    pub concurrency: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetySection {
    /// Start in read-only mode (no relay, reboot or firmware writes).
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirmwareSection {
    /// Folders of firmware images the picker starts in.
    pub folders: Vec<PathBuf>,
    /// Plugs updated at once.
    pub concurrency: Option<usize>,
    /// Per-model ceiling: never offer a version beyond this one (e.g. before a protocol change).
    pub max_version: BTreeMap<String, String>,
    /// Per-model image size bounds, replacing the built-in family bounds
    /// (`assets/firmware_limits.json`); keyed by model (`"HS110(US)"`) or base model (`"HS110"`).
    pub size_limits: BTreeMap<String, SizeLimit>,
    /// The allowlist: images whose SHA-256 the user vouches for, per model and hardware
    /// (`[[firmware.known]]`). Such an image is marked "known" in the plan.
    pub known: Vec<KnownImage>,
}

/// Firmware images larger than this are refused before reading (real plug images are a few
/// MiB); no `[firmware.size_limits]` entry may allow more. (`firmware::image` re-exports it.)
pub const MAX_IMAGE_BYTES: u64 = 64 * 1024 * 1024;

/// One allowlisted image: `[[firmware.known]]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownImage {
    /// `HS110(US)` (that region only) or `HS110` (any region).
    pub model: String,
    /// Hardware version; its major part is compared (`1` or `1.0`).
    pub hw: String,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// Free text ("1.2.6 from the cloud's fw_list, 2024-05-01").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Whether `s` is a SHA-256 in hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `[firmware.size_limits."HS110"]`: inclusive bounds in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeLimit {
    pub min_bytes: u64,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingOverride {
    pub amps: Option<f64>,
    pub watts: Option<f64>,
    pub volts: Option<f64>,
}

/// Why a config file could not be used. The message names the file (and the line and key).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause is part of the message and deliberately not a `source`: printed with `{:#}` it
    // would otherwise appear twice.
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A FIFO, a device (`/dev/zero`), a directory or a socket: never opened for reading (a
    /// FIFO would block, a device may never end).
    #[error("config file {path} is not a regular file (it is {kind})")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("config file {path} is {size} bytes, over the {MAX_FILE_BYTES}-byte (1 MiB) limit")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("config file {path} is not UTF-8 text (invalid byte at offset {offset})")]
    NotText { path: PathBuf, offset: usize },
    #[error("config file {path}, line {line}, column {column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("config file {path}: `{key}` {message}")]
    Value {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("cannot write config file {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("no config directory could be determined for this platform (set --config)")]
    NoConfigDir,
}

impl Config {
    /// Parses `text` (from `path`, named in errors) and checks every value.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Loads `path`; a missing file at the default location is an empty config, a missing file
    /// named explicitly is an error. Only a regular file (a symlink to one is fine) of at most
    /// [`MAX_FILE_BYTES`] is read: a FIFO, a device or a directory is refused before it is
    /// opened, so nothing blocks and nothing is read without end.
    pub fn load(path: &Path, explicit: bool) -> Result<Self, ConfigError> {
        match read_capped(path) {
            Ok(bytes) => {
                let text = std::str::from_utf8(&bytes).map_err(|e| ConfigError::NotText {
                    path: path.to_owned(),
                    offset: e.valid_up_to(),
                })?;
                Self::parse(text, path)
            }
            Err(ConfigError::Read { cause, .. })
                if cause.kind() == std::io::ErrorKind::NotFound && !explicit =>
            {
                Ok(Self::default())
            }
            Err(e) => Err(e),
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| ConfigError::Value {
            path: path.to_owned(),
            key: key.to_owned(),
            message: message.to_owned(),
        };
        if self.discovery.port == Some(0) {
            return Err(bad("discovery.port", "must be between 1 and 65535"));
        }
        let seconds = [
            ("discovery.timeout", self.discovery.timeout),
            ("poll.interval", self.poll.interval),
        ];
        for (key, v) in seconds {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0 && v <= 86_400.0)
            {
                return Err(bad(
                    key,
                    "must be a number of seconds above 0 (at most 86400)",
                ));
            }
        }
        let counts = [
            ("poll.concurrency", self.poll.concurrency),
            ("firmware.concurrency", self.firmware.concurrency),
        ];
        for (key, v) in counts {
            if v.is_some_and(|n| n == 0 || n > 1024) {
                return Err(bad(key, "must be between 1 and 1024"));
            }
        }
        for (model, r) in &self.ratings {
            for (field, v) in [("amps", r.amps), ("watts", r.watts), ("volts", r.volts)] {
                if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                    return Err(bad(
                        &format!("ratings.\"{model}\".{field}"),
                        "must be above 0",
                    ));
                }
            }
        }
        if let Err((key, message)) = self.plausibility.validate() {
            return Err(bad(&key, &message));
        }
        for mac in self.names.keys() {
            let hexes = mac.chars().filter(char::is_ascii_hexdigit).count();
            if hexes != 12 {
                return Err(bad(
                    &format!("names.\"{mac}\""),
                    "is not a MAC address (12 hex digits)",
                ));
            }
        }
        for (model, v) in &self.firmware.max_version {
            if !is_version(v) {
                return Err(bad(
                    &format!("firmware.max_version.\"{model}\""),
                    "must be a version like 1.2.3",
                ));
            }
        }
        for (model, b) in &self.firmware.size_limits {
            let max = MAX_IMAGE_BYTES;
            if b.min_bytes == 0 || b.min_bytes > b.max_bytes || b.max_bytes > max {
                return Err(bad(
                    &format!("firmware.size_limits.\"{model}\""),
                    &format!(
                        "must have 1 <= min_bytes <= max_bytes <= {max} (got {} and {})",
                        b.min_bytes, b.max_bytes
                    ),
                ));
            }
        }
        for (i, k) in self.firmware.known.iter().enumerate() {
            if !is_sha256_hex(k.sha256.trim()) {
                return Err(bad(
                    &format!("firmware.known[{i}].sha256"),
                    "must be a SHA-256: 64 hex digits",
                ));
            }
            if k.model.trim().is_empty() || k.hw.trim().is_empty() {
                return Err(bad(
                    &format!("firmware.known[{i}]"),
                    "needs a model (\"HS110(US)\" or \"HS110\") and a hw (\"1\" or \"1.0\")",
                ));
            }
        }
        Ok(())
    }

    /// The local name given to the device with this MAC, if any.
    pub fn name_for(&self, mac: &str) -> Option<&str> {
        let mac = crate::protocol::normalise_mac(mac);
        self.names
            .iter()
            .find(|(k, _)| crate::protocol::normalise_mac(k) == mac)
            .map(|(_, v)| v.as_str())
    }
}

/// The largest config file read (1 MiB); a real one is a few kilobytes.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// What kind of non-regular file `t` is, for the error message.
fn file_kind(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Reads `path` whole if it is a regular file of at most [`MAX_FILE_BYTES`]. The type is checked
/// before opening (opening a FIFO blocks until a writer appears) and again on the opened file,
/// and the read itself stops past the cap (a file that grows meanwhile is still refused).
fn read_capped(path: &Path) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read as _;
    let read_err = |cause| ConfigError::Read {
        path: path.to_owned(),
        cause,
    };
    let check = |meta: &std::fs::Metadata| -> Result<(), ConfigError> {
        if !meta.file_type().is_file() {
            return Err(ConfigError::NotRegular {
                path: path.to_owned(),
                kind: file_kind(meta.file_type()),
            });
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                size: meta.len(),
            });
        }
        Ok(())
    };
    check(&std::fs::metadata(path).map_err(read_err)?)?;
    // Without blocking on a FIFO swapped in after the check (no effect on a regular file).
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        open.custom_flags(libc::O_NONBLOCK);
    }
    let file = open.open(path).map_err(read_err)?;
    check(&file.metadata().map_err(read_err)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    (1..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    // A span is a byte offset; never slice inside a character.
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// The default location: `<platform config dir>/plugfleet/config.toml`.
pub fn default_path() -> Result<PathBuf, ConfigError> {
    directories::ProjectDirs::from("", "", "plugfleet")
        .map(|d| d.config_dir().join("config.toml"))
        .ok_or(ConfigError::NoConfigDir)
}

/// A commented default file, written by `plugfleet config init`. Parses to `Config::default()`.
pub const DEFAULT_FILE: &str = r#"# plugfleet configuration. Command-line flags override every value here.
# Everything is optional; remove the leading '#' to set a value.

[discovery]
# Broadcast addresses to probe (default: every interface's broadcast address).
# targets = ["192.168.1.255"]
# Plugs to ask directly, for networks where broadcasts do not reach.
# hosts = ["192.168.1.20", "192.168.1.21"]
# IPv4 ranges to sweep over TCP port 9999.
# sweeps = ["192.168.1.0/24"]
# port = 9999
# timeout = 3.0            # seconds per request

[poll]
# interval = 2.0           # seconds between reading refreshes
# concurrency = 16         # devices polled at once

[safety]
# read_only = false        # true: no relay, reboot or firmware writes

[credentials]
# The TP-Link account newer-protocol (KLAP/AES) plugs are bound to. Keep this file chmod 600;
# --username/--password and PLUGFLEET_USERNAME/PLUGFLEET_PASSWORD win over these.
# username = "me@example.com"
# password = "…"

[firmware]
# folders = ["/home/me/kasa-firmware"]
# concurrency = 4          # plugs updated at once
# Never offer a version beyond these (e.g. the last one that keeps port 9999).
# [firmware.max_version]
# "HS300(US)" = "1.0.21"
# Image size bounds in bytes per model (replacing the built-in family bounds).
# [firmware.size_limits."HS110"]
# min_bytes = 131072
# max_bytes = 16777216
# Images you vouch for: the plan marks them "known" (and prefers them; unrecognised
# content still needs --force).
# [[firmware.known]]
# model = "HS110(US)"
# hw = "1"
# sha256 = "<64 hex digits>"
# note = "1.2.6 from the cloud's fw_list"

# Rating overrides per model, used by the plausibility checks.
# [ratings."HS110(US)"]
# amps = 15.0
# watts = 1800.0

# Local names, keyed by MAC: they follow the plug when DHCP moves it.
# [names]
# "B0:95:75:00:00:01" = "Kitchen kettle"

# Quiet cross-checks over each meter's history and the whole fleet (meters that lie quietly).
# Every rule has `enabled = true|false`; the values shown are the defaults.
[plausibility.counter]
# The rise of `total` against the energy integrated from the polled power.
# enabled = true
# min_window_s = 600         # judge at least 10 minutes of polls …
# max_window_s = 3600        # … and at most the last hour
# min_expected_kwh = 0.05    # too little energy drawn: the counter is too coarse to judge
# ratio_min = 0.8            # rise / drawn outside [ratio_min, ratio_max] is suspect
# ratio_max = 1.25
# max_gap_s = 300            # a longer gap between polls is left out

[plausibility.frozen]
# The same power, voltage and current to the last digit poll after poll (real meters jitter).
# enabled = true
# polls = 10                 # consecutive identical polls
# min_w = 5.0                # only a load of at least this must jitter

[plausibility.fleet_voltage]
# A voltage away from the median of the region's other plugs polled at about the same time.
# enabled = true
# margin_pct = 4.0
# min_others = 3             # other metered plugs needed for a median
# window_s = 120             # readings further apart are not compared

[plausibility.phantom]
# Power or current while the relay reports off.
# enabled = true
# min_w = 2.0
# min_a = 0.02
# polls = 2                  # consecutive polls (one alone may straddle a switch)

[plausibility.power_factor]
# A power factor too low for a resistive load; only for the plugs listed here by MAC.
# enabled = true
# min_pf = 0.85
# min_w = 20.0
# resistive = ["B0:95:75:00:00:01"]
"#;

/// Writes the commented default file to `path`, refusing to overwrite an existing one.
pub fn write_default(path: &Path) -> Result<bool, ConfigError> {
    if path.exists() {
        return Ok(false);
    }
    let err = |cause| ConfigError::Write {
        path: path.to_owned(),
        cause,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, DEFAULT_FILE).map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/pf.toml"))
    }

    #[test]
    fn default_file_parses_to_defaults() {
        assert_eq!(parse(DEFAULT_FILE).expect("parses"), Config::default());
    }

    #[test]
    fn full_file_round_trips() {
        let text = r#"
[discovery]
targets = ["127.255.255.255"]
hosts = ["127.0.0.2"]
sweeps = ["127.0.9.0/24"]
port = 9998
timeout = 1.5
[poll]
interval = 1.0
concurrency = 8
[safety]
read_only = true
[firmware]
folders = ["/tmp/fw"]
concurrency = 2
[firmware.max_version]
"HS300(US)" = "1.0.21"
[firmware.size_limits."HS110"]
min_bytes = 1000
max_bytes = 2000
[[firmware.known]]
model = "HS110(US)"
hw = "1"
sha256 = "abababababababababababababababababababababababababababababababab"
note = "from the cloud"
[ratings."HS110(US)"]
amps = 15.0
[names]
"b0-95-75-00-00-01" = "Kettle"
"#;
        let cfg = parse(text).expect("parses");
        assert_eq!(cfg.discovery.port, Some(9998));
        assert_eq!(cfg.discovery.sweeps[0].to_string(), "127.0.9.0/24");
        assert_eq!(cfg.safety.read_only, Some(true));
        assert_eq!(cfg.name_for("B0:95:75:00:00:01"), Some("Kettle"));
        assert_eq!(cfg.firmware.size_limits["HS110"].max_bytes, 2000);
        assert_eq!(cfg.firmware.known[0].hw, "1");
        let again = toml::to_string(&cfg).expect("serialise");
        assert_eq!(parse(&again).expect("round trip"), cfg);
    }

    #[test]
    fn bad_toml_names_file_and_line() {
        let e = parse("[discovery]\nport = \n").expect_err("bad");
        let msg = e.to_string();
        assert!(msg.contains("/etc/pf.toml"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn unknown_key_names_the_key_and_line() {
        let e = parse("[poll]\ninterval = 2.0\nintervall = 3.0\n").expect_err("unknown");
        let msg = e.to_string();
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("intervall"), "{msg}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("[discovery]\nport = 0\n", "discovery.port"),
            ("[poll]\ninterval = -1\n", "poll.interval"),
            ("[poll]\nconcurrency = 0\n", "poll.concurrency"),
            ("[names]\n\"xyz\" = \"a\"\n", "names.\"xyz\""),
            (
                "[firmware.max_version]\n\"HS100\" = \"latest\"\n",
                "firmware.max_version",
            ),
            (
                "[ratings.\"HS110(US)\"]\namps = 0\n",
                "ratings.\"HS110(US)\".amps",
            ),
            (
                "[firmware.size_limits.HS110]\nmin_bytes = 10\nmax_bytes = 5\n",
                "firmware.size_limits.\"HS110\"",
            ),
            (
                "[firmware.size_limits.HS110]\nmin_bytes = 1\nmax_bytes = 99999999999\n",
                "firmware.size_limits.\"HS110\"",
            ),
            (
                "[[firmware.known]]\nmodel = \"HS110\"\nhw = \"1\"\nsha256 = \"abc\"\n",
                "firmware.known[0].sha256",
            ),
        ] {
            let msg = parse(text).expect_err(text).to_string();
            assert!(msg.contains(key), "{text}: {msg}");
            assert!(msg.contains("/etc/pf.toml"), "{msg}");
        }
        let msg = parse("[discovery]\nhosts = [\"not-an-ip\"]\n")
            .expect_err("ip")
            .to_string();
        assert!(msg.contains("line 2"), "{msg}");
        let msg = parse("[discovery]\nport = 70000\n")
            .expect_err("range")
            .to_string();
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn plausibility_section_tunes_and_switches_rules() {
        let cfg = parse(
            "[poll]\ninterval = 2.0\n[plausibility.counter]\nenabled = false\nratio_min = 0.7\n\
             [plausibility.fleet_voltage]\nmargin_pct = 6\n\
             [plausibility.power_factor]\nresistive = [\"b0-95-75-00-00-01\"]\n",
        )
        .expect("parses");
        let q = &cfg.plausibility;
        assert!(!q.counter.enabled && q.frozen.enabled);
        assert_eq!(q.counter.ratio_min, 0.7);
        assert_eq!(
            q.counter.ratio_max, 1.25,
            "untouched keys keep their default"
        );
        assert_eq!(q.fleet_voltage.margin_pct, 6.0);
        assert!(q.is_resistive("B0:95:75:00:00:01"));
        assert_eq!(cfg.poll.interval, Some(2.0));
        let again = toml::to_string(&cfg).expect("serialise");
        assert_eq!(parse(&again).expect("round trip"), cfg);
        let d = QuietRules::default();
        assert_eq!(
            (
                d.counter.min_window_s,
                d.counter.min_expected_kwh,
                d.frozen.polls
            ),
            (600.0, 0.05, 10)
        );
        assert_eq!(d.fleet_voltage.margin_pct, 4.0);
        for (text, key) in [
            (
                "[plausibility.counter]\nratio_min = 1.1\n",
                "plausibility.counter.ratio_min",
            ),
            (
                "[plausibility.counter]\nmin_window_s = 7200\n",
                "plausibility.counter.min_window_s",
            ),
            (
                "[plausibility.frozen]\npolls = 1\n",
                "plausibility.frozen.polls",
            ),
            (
                "[plausibility.fleet_voltage]\nmargin_pct = 0\n",
                "plausibility.fleet_voltage.margin_pct",
            ),
            (
                "[plausibility.phantom]\nmin_w = -1\n",
                "plausibility.phantom.min_w",
            ),
            (
                "[plausibility.power_factor]\nmin_pf = 1.5\n",
                "plausibility.power_factor.min_pf",
            ),
            (
                "[plausibility.power_factor]\nresistive = [\"kettle\"]\n",
                "plausibility.power_factor.resistive[0]",
            ),
        ] {
            let msg = parse(text).expect_err(text).to_string();
            assert!(msg.contains(key), "{text}: {msg}");
        }
        let msg = parse("[plausibility.frozen]\npols = 3\n")
            .expect_err("typo")
            .to_string();
        assert!(msg.contains("pols") && msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn missing_default_file_is_empty_but_missing_explicit_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("pf-cfg-{}", std::process::id()));
        let p = dir.join("nope.toml");
        assert_eq!(Config::load(&p, false).expect("empty"), Config::default());
        assert!(matches!(
            Config::load(&p, true),
            Err(ConfigError::Read { .. })
        ));
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pf-cfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn a_directory_or_a_device_is_refused_without_reading_it() {
        let dir = scratch("kinds");
        let e = Config::load(&dir, true).expect_err("a directory");
        assert!(matches!(e, ConfigError::NotRegular { .. }), "{e}");
        assert!(e.to_string().contains("a directory"), "{e}");
        #[cfg(unix)]
        {
            // `/dev/zero` never ends: reading it would take all memory.
            let e = Config::load(Path::new("/dev/zero"), true).expect_err("a device");
            assert_eq!(
                e.to_string(),
                "config file /dev/zero is not a regular file (it is a character device)"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_opening_it() {
        let dir = scratch("fifo");
        let p = dir.join("config.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        // Opening a FIFO for reading blocks until a writer comes; load returns at once.
        let e = Config::load(&p, false).expect_err("a FIFO");
        assert!(
            e.to_string()
                .ends_with("is not a regular file (it is a FIFO)"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_over_the_cap_or_not_text_is_refused() {
        let dir = scratch("big");
        let p = dir.join("config.toml");
        let mut text = "# comment\n".repeat((MAX_FILE_BYTES as usize / 10) + 1);
        std::fs::write(&p, &text).expect("write");
        let e = Config::load(&p, true).expect_err("too large");
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("1 MiB"), "{e}");
        // Just under the cap is read.
        text.truncate(MAX_FILE_BYTES as usize - 10);
        text.push('\n');
        std::fs::write(&p, &text).expect("write");
        assert_eq!(
            Config::load(&p, true).expect("at the cap"),
            Config::default()
        );
        std::fs::write(&p, b"[poll]\ninterval = 2.0 # \xff\n").expect("write");
        let e = Config::load(&p, true).expect_err("not UTF-8");
        assert!(e.to_string().contains("not UTF-8 text"), "{e}");
        assert!(e.to_string().contains("offset 24"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_read_error_names_its_cause_once() {
        use std::error::Error as _;
        let e = Config::load(Path::new("/nonexistent-pf/config.toml"), true).expect_err("missing");
        // With no `source`, `{:#}` (anyhow's chain) cannot repeat the cause.
        assert!(e.source().is_none());
        let msg = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(msg.matches("No such file").count(), 1, "{msg}");
    }

    #[test]
    fn init_writes_once() {
        let dir = std::env::temp_dir().join(format!("pf-cfg-init-{}", std::process::id()));
        let p = dir.join("sub/config.toml");
        assert!(write_default(&p).expect("write"));
        assert!(!write_default(&p).expect("exists"), "never overwrites");
        assert_eq!(Config::load(&p, true).expect("load"), Config::default());
        let _ = std::fs::remove_dir_all(dir);
    }
}
