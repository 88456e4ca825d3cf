//! What the app knows about recording, below the writer (`crate::record`, which re-exports
//! these): the file format chosen and what the writer task reports when it ends.

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// One JSON object per line.
    JsonLines,
    /// RFC 4180 CSV with a header line.
    Csv,
}

impl RecordFormat {
    /// `.csv` (any case) is CSV; anything else JSON lines.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => RecordFormat::Csv,
            _ => RecordFormat::JsonLines,
        }
    }
}

impl FromStr for RecordFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(RecordFormat::Csv),
            "json" | "jsonl" | "jsonlines" | "json-lines" | "ndjson" => Ok(RecordFormat::JsonLines),
            _ => Err(format!(
                "unknown record format {s:?} (expected `csv` or `jsonl`)"
            )),
        }
    }
}

/// What the recording task reports (once, when it ends).
#[derive(Debug, Clone, PartialEq)]
pub enum RecordEvent {
    /// Recording stopped because the file could not be written (e.g. the disk is full).
    Failed {
        path: PathBuf,
        error: String,
        written: u64,
        dropped: u64,
    },
    /// Recording stopped as asked (or its handle was dropped); everything queued was written.
    Stopped {
        path: PathBuf,
        written: u64,
        dropped: u64,
    },
}

impl std::fmt::Display for RecordEvent {
    /// A line for a status bar or a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lost = |f: &mut std::fmt::Formatter<'_>, dropped: u64| {
            if dropped > 0 {
                write!(f, ", {dropped} dropped")
            } else {
                Ok(())
            }
        };
        match self {
            RecordEvent::Failed {
                error,
                written,
                dropped,
                ..
            } => {
                write!(f, "recording stopped: {error} ({written} written")?;
                lost(f, *dropped)?;
                f.write_str(")")
            }
            RecordEvent::Stopped {
                path,
                written,
                dropped,
            } => {
                write!(
                    f,
                    "recording to {} stopped ({written} written",
                    path.display()
                )?;
                lost(f, *dropped)?;
                f.write_str(")")
            }
        }
    }
}
