//! Firmware image inspection: what kind of file it is (regular file, or a symlink to one inside
//! the chosen folder; never a FIFO or device), size (read with a cap), SHA-256, the container
//! structure at its start ([`super::container`]), the target parsed from the file name
//! (PROTOCOL.md §6.5) and, when present, the demo image header ([`ImageHeader`]).
//!
//! File names are hints, not guarantees (§6.5): the model token may be an internal platform code
//! (`KLM430v2`), the region a certification code (`FCC`, `CE`, `UN`), and the cloud itself offers
//! FCC-named images to EU devices. [`NameTarget`] records what the name says and how sure we are;
//! the matcher in [`super::plan`] decides what that means for a given plug.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::container::{self, Structure};
use super::header::{self, HeaderError, ImageHeader};

// Images larger than this are refused before reading; defined in `config` (which checks
// `[firmware.size_limits]` against it) and re-exported here.
pub use crate::config::MAX_IMAGE_BYTES;

/// A firmware version: numeric `x.y.z` then build date (`YYMMDD`) then release time (`HHMMSS`),
/// compared in that order (PROTOCOL.md §4). Missing build/rel sort before present ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Version {
    pub numbers: Vec<u32>,
    pub build: Option<u32>,
    pub rel: Option<u32>,
}

impl Version {
    /// Parses `1.2.3`, `1.2.3 Build 171016 Rel.100427` (a plug's `sw_ver`) or the underscore form
    /// of file names (`1.2.3_Build_171016_Rel.100427`).
    pub fn parse(s: &str) -> Option<Version> {
        let mut tokens = s
            .split(|c: char| c.is_whitespace() || c == '_')
            .filter(|t| !t.is_empty());
        let numbers = parse_numbers(tokens.next()?)?;
        let mut build = None;
        let mut rel = None;
        let mut expect_build = false;
        for t in tokens {
            if expect_build {
                build = t.parse().ok();
                expect_build = false;
            } else if t.eq_ignore_ascii_case("build") {
                expect_build = true;
            } else if let Some(r) = t.strip_prefix("Rel.").or_else(|| t.strip_prefix("rel.")) {
                rel = r.parse().ok();
            }
        }
        Some(Version {
            numbers,
            build,
            rel,
        })
    }

    /// Just `x.y.z`.
    pub fn short(&self) -> String {
        self.numbers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Compares only the numeric part.
    pub fn cmp_numbers(&self, other: &Version) -> Ordering {
        let n = self.numbers.len().max(other.numbers.len());
        for i in 0..n {
            let a = self.numbers.get(i).copied().unwrap_or(0);
            let b = other.numbers.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    }
}

fn parse_numbers(t: &str) -> Option<Vec<u32>> {
    let parts: Vec<&str> = t.split('.').collect();
    if parts.len() < 2 || parts.len() > 4 {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                p.parse().ok()
            }
        })
        .collect()
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_numbers(other)
            .then(self.build.cmp(&other.build))
            .then(self.rel.cmp(&other.rel))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())?;
        if let Some(b) = self.build {
            write!(f, " Build {b:06}")?;
        }
        if let Some(r) = self.rel {
            write!(f, " Rel.{r:06}")?;
        }
        Ok(())
    }
}

/// Kasa model families: a model token is one of these prefixes followed by digits and at most
/// one letter (`HS110`, `KP125M`, `KS200M`, `EP10`). Anything else (`KLM430`, `smartBulb`) is a
/// platform code or a family name, not a model.
const MODEL_PREFIXES: &[&str] = &[
    "HS", "KP", "KS", "EP", "ES", "KL", "KC", "KD", "KE", "KH", "LB", "EC",
];

/// Plain ISO-style regions seen in model names (`HS110(EU)`).
const REGIONS: &[&str] = &["US", "EU", "UK", "AU", "JP", "CA", "BR", "IN", "KR", "TW"];
/// Certification codes used instead of a region in cloud image names (§6.5).
const CERT_REGIONS: &[&str] = &["FCC", "CE", "UN", "IC", "TEC"];

/// What a file name says about its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameTarget {
    /// Upper-case model (`HS110`) when the first token is a recognisable model.
    pub model: Option<String>,
    /// The first token as written (`hs110v1`, `KLM430v2`, `smartBulb`).
    pub model_token: String,
    /// Hardware major from the `v<N>` suffix (`1` of `hs110v1`).
    pub hw_major: Option<String>,
    /// Upper-case region (`US`, `EU`) when it is a plain region.
    pub region: Option<String>,
    /// A certification code in the region position (`FCC`, `CE`, `UN`): a hint only.
    pub cert_region: Option<String>,
    pub version: Option<Version>,
}

impl NameTarget {
    /// Parses a file name such as `hs110v1_us_1.2.3_Build_171016_Rel.100427.bin`. Returns
    /// `None` only for an empty name; every other name gives what could be read.
    pub fn parse(file_name: &str) -> Option<NameTarget> {
        let stem = file_name
            .strip_suffix(".bin")
            .or_else(|| file_name.strip_suffix(".BIN"))
            .unwrap_or(file_name);
        let tokens: Vec<&str> = stem.split('_').filter(|t| !t.is_empty()).collect();
        let first = *tokens.first()?;
        let (model, hw_major) = parse_model_token(first);
        let mut region = None;
        let mut cert_region = None;
        if let Some(second) = tokens.get(1) {
            let up = second.to_ascii_uppercase();
            if REGIONS.contains(&up.as_str()) {
                region = Some(up);
            } else if CERT_REGIONS.contains(&up.as_str()) {
                cert_region = Some(up);
            }
        }
        let version = tokens
            .iter()
            .position(|t| parse_numbers(t).is_some_and(|n| n.len() == 3))
            .and_then(|i| Version::parse(&tokens[i..].join("_")));
        Some(NameTarget {
            model,
            model_token: first.to_owned(),
            hw_major,
            region,
            cert_region,
            version,
        })
    }

    /// The model and hardware line are both known (the name can be matched against a plug).
    pub fn is_specific(&self) -> bool {
        self.model.is_some() && self.hw_major.is_some()
    }
}

/// `hs110v1` → (`HS110`, `1`); `KS200M` → (`KS200M`, none); `KLM430v2` → (none, `2`).
fn parse_model_token(token: &str) -> (Option<String>, Option<String>) {
    let up = token.to_ascii_uppercase();
    // Split a trailing `V<digits>` hardware suffix.
    let (body, hw) = match up.rfind('V') {
        Some(i)
            if i > 0
                && i + 1 < up.len()
                && up[i + 1..].bytes().all(|b| b.is_ascii_digit())
                && up[..i].bytes().any(|b| b.is_ascii_digit()) =>
        {
            (
                &up[..i],
                Some(up[i + 1..].trim_start_matches('0').to_owned()),
            )
        }
        _ => (up.as_str(), None),
    };
    let hw = hw.map(|h| if h.is_empty() { "0".to_owned() } else { h });
    let is_model = MODEL_PREFIXES.iter().any(|p| {
        body.strip_prefix(p).is_some_and(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let tail = &rest[digits..];
            (2..=4).contains(&digits)
                && tail.len() <= 1
                && tail.bytes().all(|b| b.is_ascii_alphabetic())
        })
    });
    (is_model.then(|| body.to_owned()), hw)
}

/// The target an image is meant for, from its header when there is one, else from its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ImageTarget {
    /// The demo header: authoritative model, hardware major, region and full version.
    Header {
        model: String,
        hw_major: String,
        region: String,
        version: Version,
    },
    /// Only the file name: hints.
    Name(NameTarget),
}

/// What kind of file an image came from (the plan shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FileSource {
    /// A regular file.
    Regular,
    /// A symbolic link to a regular file inside the chosen folder.
    Symlink { target: PathBuf },
    /// Bytes held in memory (the demo's embedded images, tests); no file involved.
    Memory,
}

impl FileSource {
    pub fn describe(&self) -> String {
        match self {
            FileSource::Regular => "regular file".into(),
            FileSource::Symlink { target } => {
                format!("symlink → {} (regular file)", target.display())
            }
            FileSource::Memory => "in memory".into(),
        }
    }
}

/// Everything known about one image file.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    pub path: PathBuf,
    pub file_name: String,
    pub size: u64,
    /// Lower-case hex (empty for a refused file, which is never read).
    pub sha256: String,
    pub name: Option<NameTarget>,
    /// The demo header, when the file has one and it checks out.
    pub header: Option<ImageHeader>,
    /// The file starts with the demo header magic but is truncated, corrupt or malformed: such
    /// an image is never flashed.
    pub header_error: Option<String>,
    /// The container structure found at the start of the file (PROTOCOL.md §6.6).
    pub structure: Structure,
    /// The kind of file it was read from.
    pub source: FileSource,
    /// Why the file was not read at all (not a regular file, a symlink leaving the folder, an
    /// empty or oversized file, a read error): such an image is never served or flashed.
    pub refused: Option<String>,
    /// The bytes (images are small; the server serves them from memory).
    #[serde(skip)]
    pub bytes: bytes::Bytes,
}

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: not a regular file")]
    NotAFile(PathBuf),
    #[error("{path}: not a regular file but a {kind}: refused without opening it")]
    Special { path: PathBuf, kind: &'static str },
    #[error("{path}: a symlink to {}, {why}: refused", target.display())]
    Symlink {
        path: PathBuf,
        target: PathBuf,
        why: String,
    },
    #[error("{0}: the file is empty")]
    Empty(PathBuf),
    #[error("{path}: {size} bytes is larger than the {MAX_IMAGE_BYTES}-byte limit")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{0}: no firmware images (*.bin) in this folder")]
    NoImages(PathBuf),
}

/// `a FIFO`, `a socket`, `a block device`, … for a file type that is not a regular file.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "FIFO";
        }
        if ft.is_socket() {
            return "socket";
        }
        if ft.is_block_device() {
            return "block device";
        }
        if ft.is_char_device() {
            return "character device";
        }
    }
    if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

/// Opens a regular file for reading without blocking on a FIFO swapped in after the check
/// (`O_NONBLOCK`, which has no effect on regular files).
fn open_for_read(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    // Every Unix (the flag's value differs between them: libc has each one's). Windows has no
    // FIFOs in the file system: a named pipe lives under \\.\pipe\, never in an image folder.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK);
    }
    o.open(path)
}

/// Reads a regular file, at most [`MAX_IMAGE_BYTES`]: checks the type again on the open file
/// and never reads more than the cap even if the file grows meanwhile.
fn read_capped(path: &Path, shown: &Path) -> Result<Vec<u8>, ImageError> {
    use std::io::Read;
    let io = |source| ImageError::Io {
        path: shown.to_owned(),
        source,
    };
    let file = open_for_read(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ImageError::Special {
            path: shown.to_owned(),
            kind: kind_of(meta.file_type()),
        });
    }
    if meta.len() == 0 {
        return Err(ImageError::Empty(shown.to_owned()));
    }
    if meta.len() > MAX_IMAGE_BYTES {
        return Err(ImageError::TooLarge {
            path: shown.to_owned(),
            size: meta.len(),
        });
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() as u64 > MAX_IMAGE_BYTES {
        return Err(ImageError::TooLarge {
            path: shown.to_owned(),
            size: data.len() as u64,
        });
    }
    if data.is_empty() {
        return Err(ImageError::Empty(shown.to_owned()));
    }
    Ok(data)
}

impl ImageInfo {
    /// Inspects bytes as if read from `path`.
    pub fn from_bytes(path: &Path, data: impl Into<bytes::Bytes>) -> ImageInfo {
        let bytes: bytes::Bytes = data.into();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (header, header_error) = match header::verify(&bytes) {
            Ok(h) => (Some(h), None),
            Err(HeaderError::NoMagic) => (None, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let structure = if header.is_some() {
            Structure::PlugfleetDemo
        } else {
            container::detect(&bytes)
        };
        ImageInfo {
            path: path.to_owned(),
            name: NameTarget::parse(&file_name),
            file_name,
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
            header,
            header_error,
            structure,
            source: FileSource::Memory,
            refused: None,
            bytes,
        }
    }

    /// A file that was not read: listed in the plan with why, never served.
    pub fn refused(path: &Path, error: &ImageError) -> ImageInfo {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = match error {
            ImageError::TooLarge { size, .. } => *size,
            _ => 0,
        };
        // The message without the leading path (the plan shows the file name already).
        let msg = error.to_string();
        let reason = msg
            .strip_prefix(&format!("{}: ", path.display()))
            .unwrap_or(&msg)
            .to_owned();
        ImageInfo {
            path: path.to_owned(),
            name: NameTarget::parse(&file_name),
            file_name,
            size,
            sha256: String::new(),
            header: None,
            header_error: None,
            structure: Structure::Unrecognised,
            source: FileSource::Memory,
            refused: Some(reason),
            bytes: bytes::Bytes::new(),
        }
    }

    /// Reads and inspects one file. A symlink is followed only to a regular file inside the
    /// folder that holds the link; FIFOs, sockets and devices are refused without being opened.
    pub fn load(path: &Path) -> Result<ImageInfo, ImageError> {
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        Self::load_in(path, &folder)
    }

    /// [`load`](Self::load) with the folder a symlink must stay inside.
    pub fn load_in(path: &Path, folder: &Path) -> Result<ImageInfo, ImageError> {
        let io = |source| ImageError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::symlink_metadata(path).map_err(io)?;
        let (read_from, source) = if meta.file_type().is_symlink() {
            let link = std::fs::read_link(path).map_err(io)?;
            let shown = if link.is_absolute() {
                link.clone()
            } else {
                path.parent().unwrap_or(Path::new(".")).join(&link)
            };
            let symlink = |target: PathBuf, why: &str| ImageError::Symlink {
                path: path.to_owned(),
                target,
                why: why.to_owned(),
            };
            let target = std::fs::canonicalize(path)
                .map_err(|e| symlink(shown.clone(), &format!("which cannot be resolved ({e})")))?;
            let root = std::fs::canonicalize(folder).map_err(|source| ImageError::Io {
                path: folder.to_owned(),
                source,
            })?;
            if !target.starts_with(&root) {
                return Err(symlink(
                    target,
                    &format!("outside the folder {}", root.display()),
                ));
            }
            let tmeta = std::fs::metadata(&target).map_err(io)?;
            if !tmeta.is_file() {
                let why = format!(
                    "which is a {}, not a regular file",
                    kind_of(tmeta.file_type())
                );
                return Err(symlink(target, &why));
            }
            (target.clone(), FileSource::Symlink { target })
        } else if meta.is_file() {
            (path.to_owned(), FileSource::Regular)
        } else if meta.is_dir() {
            return Err(ImageError::NotAFile(path.to_owned()));
        } else {
            return Err(ImageError::Special {
                path: path.to_owned(),
                kind: kind_of(meta.file_type()),
            });
        };
        let data = read_capped(&read_from, path)?;
        let mut info = ImageInfo::from_bytes(path, data);
        info.source = source;
        Ok(info)
    }

    /// What the image is for: the header if valid, else the name.
    pub fn target(&self) -> Option<ImageTarget> {
        if let Some(h) = &self.header {
            let version = Version::parse(&h.sw_ver())?;
            return Some(ImageTarget::Header {
                model: h.model.to_ascii_uppercase(),
                hw_major: h.hw.clone(),
                region: h.region.to_ascii_uppercase(),
                version,
            });
        }
        self.name.clone().map(ImageTarget::Name)
    }

    /// The version the plug should report after flashing, when known.
    pub fn version(&self) -> Option<Version> {
        match self.target()? {
            ImageTarget::Header { version, .. } => Some(version),
            ImageTarget::Name(n) => n.version,
        }
    }

    /// A one-line description for plans and logs.
    pub fn describe(&self) -> String {
        if let Some(why) = &self.refused {
            return format!("{}: REFUSED: {why}", self.file_name);
        }
        let target = match self.target() {
            Some(ImageTarget::Header {
                model,
                hw_major,
                region,
                version,
            }) => format!("{model}({region}) hw {hw_major}, {version} (header)"),
            Some(ImageTarget::Name(n)) => format!(
                "{} hw {}, {} (file name)",
                n.model.as_deref().unwrap_or(&n.model_token),
                n.hw_major.as_deref().unwrap_or("unknown"),
                n.version
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "version unknown".into())
            ),
            None => "unknown target".into(),
        };
        format!(
            "{}: {} bytes, sha256 {}…, {target}; {}, {}",
            self.file_name,
            self.size,
            &self.sha256[..12.min(self.sha256.len())],
            self.source.describe(),
            self.structure.describe()
        )
    }
}

/// Loads one image, or every `*.bin` in a folder (sorted by name). In a folder, an entry that
/// cannot be used (not a regular file, a symlink leaving the folder, empty, too large,
/// unreadable) is listed as refused, with why, rather than skipped silently; sub-folders are
/// skipped.
pub fn load_path(path: &Path) -> Result<Vec<ImageInfo>, ImageError> {
    let meta = std::fs::metadata(path).map_err(|source| ImageError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Ok(vec![ImageInfo::load(path)?]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|source| ImageError::Io {
            path: path.to_owned(),
            source,
        })?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("bin")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ImageError::NoImages(path.to_owned()));
    }
    Ok(files
        .iter()
        .map(|p| ImageInfo::load_in(p, path).unwrap_or_else(|e| ImageInfo::refused(p, &e)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect(s)
    }

    #[test]
    fn versions_compare_numbers_then_build_then_rel() {
        assert!(v("1.2.10") > v("1.2.9"));
        assert!(v("1.2.3 Build 171016 Rel.100427") > v("1.2.3 Build 170101 Rel.235959"));
        assert!(v("1.2.3 Build 171016 Rel.100428") > v("1.2.3 Build 171016 Rel.100427"));
        assert_eq!(
            v("1.2.3_Build_171016_Rel.100427"),
            v("1.2.3 Build 171016 Rel.100427")
        );
        assert_eq!(
            v("1.0.4 Build 191111 Rel.143500").to_string(),
            "1.0.4 Build 191111 Rel.143500"
        );
        assert!(Version::parse("Build 1").is_none());
        assert!(Version::parse("").is_none());
        assert!(Version::parse("1").is_none());
    }
}
