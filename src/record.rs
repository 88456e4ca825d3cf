//! Recording (`--record FILE`): every reading with its verdict appended to a file, as JSON lines
//! or CSV, so the data leaves plugfleet in a standard form.
//!
//! Three layers:
//! - [`ReadingRecord`] (in `record/row.rs`): one reading of one meter (a plug, or one outlet
//!   of a strip) with the device's identity, the four values in W/V/A/kWh, the unit scheme the
//!   device used, and the verdict with its reasons — a view of the fleet model
//!   ([`rows_of`], [`rows_for`]).
//! - [`Recorder`]: the file, opened in append mode. A CSV file gets its header only when it is
//!   new or empty; appending to a CSV file with other columns is refused. A file whose last
//!   line was cut short (a crash, a full disk) gets a newline first so the next record starts
//!   on its own line. Writes are buffered in memory; [`Recorder::flush`] and drop append the
//!   batch in one `write` under an exclusive lock on the file, so concurrent writers (several
//!   `--record` runs on one file) never interleave, and the CSV header is decided under that
//!   lock. Text cells a spreadsheet would run as a formula are neutralised
//!   ([`neutralise_csv_cell`]). Every I/O failure is a typed [`RecordError`]; nothing here
//!   panics.
//! - [`RecordHandle::spawn`]: a task fed through a bounded channel, for the TUI runtime.
//!   [`RecordHandle::record`] never blocks (a full queue drops the record and counts it); the
//!   file work runs on the blocking pool; the task flushes at most [`FLUSH_INTERVAL`] after a
//!   write, and on stop. A write error (full disk, …) stops recording and is reported once as
//!   [`RecordEvent::Failed`]; the app goes on.
//!
//! ```
//! use plugfleet::record::RecordFormat;
//! use std::path::Path;
//! assert_eq!(RecordFormat::from_path(Path::new("day.csv")), RecordFormat::Csv);
//! assert_eq!(RecordFormat::from_path(Path::new("day.jsonl")), RecordFormat::JsonLines);
//! assert_eq!("csv".parse::<RecordFormat>(), Ok(RecordFormat::Csv));
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::app::recording::{RecordEvent, RecordFormat};
pub use row::{ReadingRecord, rows_for, rows_of, scheme_name};

mod row;

/// Records waiting for the writer at most; beyond this [`RecordHandle::record`] drops.
pub const QUEUE: usize = 4096;
/// Records written per trip to the blocking pool at most.
const BATCH: usize = 256;
/// Buffered records reach the file at most this long after they were written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How long the task waits to hand its final report to a busy event queue.
const REPORT_TIMEOUT: Duration = Duration::from_secs(1);

/// The CSV columns, in order (also the header line).
pub const CSV_HEADER: [&str; 19] = [
    "unix_ms",
    "ip",
    "mac",
    "device_id",
    "alias",
    "name",
    "model",
    "outlet_id",
    "outlet_alias",
    "power_w",
    "voltage_v",
    "current_a",
    "total_kwh",
    "verdict",
    "reasons",
    "scheme",
    "type",
    "protocol",
    "dialect",
];

/// Separates reasons inside the one CSV `reasons` cell.
pub const CSV_REASON_SEPARATOR: &str = "; ";

/// Milliseconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl ReadingRecord {
    /// A record read back from the cells of one CSV line, in [`CSV_HEADER`] order — the
    /// inverse of [`ReadingRecord::csv_fields`] (the CSV form carries no `findings`). A line
    /// of a file written before the last columns existed (`type`, `protocol`, `dialect`) may
    /// end early; those fields are then empty. A cell that does not parse is an error naming
    /// its column.
    pub fn from_csv_fields<S: AsRef<str>>(cells: &[S]) -> Result<Self, String> {
        const FIRST: usize = 16;
        if cells.len() < FIRST || cells.len() > CSV_HEADER.len() {
            return Err(format!(
                "{} cells, expected {FIRST} to {}",
                cells.len(),
                CSV_HEADER.len()
            ));
        }
        let cell = |i: usize| cells.get(i).map_or("", AsRef::as_ref);
        let text = |i: usize| cell(i).to_owned();
        let opt = |i: usize| Some(text(i)).filter(|s| !s.is_empty());
        let num = |i: usize| -> Result<Option<f64>, String> {
            match cell(i) {
                "" => Ok(None),
                c => c
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{}: not a number: {c:?}", CSV_HEADER[i])),
            }
        };
        let verdict = serde_json::from_value(serde_json::Value::String(text(13)))
            .map_err(|_| format!("verdict: unknown: {:?}", cell(13)))?;
        Ok(Self {
            unix_ms: cell(0)
                .parse()
                .map_err(|_| format!("unix_ms: not a number: {:?}", cell(0)))?,
            ip: text(1),
            mac: text(2),
            device_id: text(3),
            alias: text(4),
            name: opt(5),
            model: text(6),
            outlet_id: opt(7),
            outlet_alias: opt(8),
            power_w: num(9)?,
            voltage_v: num(10)?,
            current_a: num(11)?,
            total_kwh: num(12)?,
            verdict,
            reasons: cell(14)
                .split(CSV_REASON_SEPARATOR)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            findings: Vec::new(),
            scheme: text(15),
            kind: text(16),
            protocol: text(17),
            dialect: text(18),
        })
    }

    /// The CSV cells, in [`CSV_HEADER`] order (absent values are empty cells).
    pub fn csv_fields(&self) -> [String; 19] {
        let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        [
            self.unix_ms.to_string(),
            self.ip.clone(),
            self.mac.clone(),
            self.device_id.clone(),
            self.alias.clone(),
            self.name.clone().unwrap_or_default(),
            self.model.clone(),
            self.outlet_id.clone().unwrap_or_default(),
            self.outlet_alias.clone().unwrap_or_default(),
            num(self.power_w),
            num(self.voltage_v),
            num(self.current_a),
            num(self.total_kwh),
            self.verdict.as_str().to_owned(),
            self.reasons.join(CSV_REASON_SEPARATOR),
            self.scheme.clone(),
            self.kind.clone(),
            self.protocol.clone(),
            self.dialect.clone(),
        ]
    }
}

/// Why recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot open record file {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot write record file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "record file {path} already holds CSV with other columns ({found:?}); record to a new file"
    )]
    HeaderMismatch { path: PathBuf, found: String },
}

impl RecordError {
    /// The I/O error kind behind it, if any (e.g. `StorageFull`).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            RecordError::Open { source, .. } | RecordError::Write { source, .. } => {
                Some(source.kind())
            }
            RecordError::HeaderMismatch { .. } => None,
        }
    }
}

/// Encoded records waiting in memory beyond this are appended at once.
const MAX_PENDING: usize = 256 * 1024;

/// An open record file. Records are encoded in memory; [`Recorder::flush`] (and drop) appends
/// them in one `write` on the `O_APPEND` file while holding an exclusive lock on it, so several
/// writers — other `Recorder`s, other plugfleet processes — never interleave inside a record,
/// and the CSV header is decided (written only to an empty file) under the same lock. Every
/// I/O failure is a typed [`RecordError`].
pub struct Recorder {
    path: PathBuf,
    format: RecordFormat,
    file: RecordFile,
    /// Opened with read access too (to check what is already there).
    readable: bool,
    /// A regular file (locked while written); devices and pipes are written as they are.
    regular: bool,
    /// Encoded, complete records not yet in the file.
    pending: Vec<u8>,
    written: u64,
    dirty: bool,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// The record file: a regular file is only touched under its exclusive lock (`fd-lock`:
/// `flock` on Unix, `LockFileEx` on Windows); devices and pipes have nothing to protect.
enum RecordFile {
    Locked(fd_lock::RwLock<File>),
    Plain(File),
}

impl RecordFile {
    /// Runs `f` on the file while holding its exclusive lock (waiting for other writers).
    fn locked<R>(&mut self, f: impl FnOnce(&mut File) -> io::Result<R>) -> io::Result<R> {
        match self {
            RecordFile::Plain(file) => f(file),
            RecordFile::Locked(lock) => {
                let mut guard = lock
                    .write()
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot lock the file: {e}")))?;
                f(&mut guard)
            }
        }
    }
}

/// The first line of a file (up to 4 KiB), without its line end.
fn first_line(file: &mut File) -> io::Result<String> {
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    Read::by_ref(file).take(4096).read_to_end(&mut buf)?;
    let end = buf.iter().position(|b| *b == b'\n').unwrap_or(buf.len());
    let line = String::from_utf8_lossy(&buf[..end]);
    Ok(line.trim_end_matches('\r').to_owned())
}

/// Whether a non-empty file ends in a newline.
fn ends_with_newline(file: &mut File) -> io::Result<bool> {
    file.seek(SeekFrom::End(-1))?;
    let mut b = [0u8; 1];
    file.read_exact(&mut b)?;
    Ok(b[0] == b'\n')
}

/// Whether a cell is a plain decimal number as plugfleet writes them (`-5`, `0.25`).
fn is_plain_number(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let s = s.strip_prefix('-').unwrap_or(s);
    match s.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(s),
    }
}

/// OWASP's rule against CSV formula injection: a text cell that starts with `=`, `+`, `-`,
/// `@`, a tab or a carriage return is prefixed with `'`, so a spreadsheet shows it instead of
/// running it. Numbers (`-5.25`) stay numbers.
pub fn neutralise_csv_cell(cell: String) -> String {
    let risky = matches!(
        cell.chars().next(),
        Some('=' | '+' | '-' | '@' | '\t' | '\r')
    );
    if risky && !is_plain_number(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

impl Recorder {
    /// Opens `path` for appending (creating it), in the format its extension implies.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, RecordError> {
        let path = path.into();
        let format = RecordFormat::from_path(&path);
        Self::open_as(path, format)
    }

    /// Opens `path` for appending (creating it) in `format`. Under the file's lock: an existing
    /// CSV file must have plugfleet's header, a cut last line is ended, and an empty CSV file
    /// gets the header.
    pub fn open_as(path: impl Into<PathBuf>, format: RecordFormat) -> Result<Self, RecordError> {
        let path = path.into();
        let open_err = |source| RecordError::Open {
            path: path.clone(),
            source,
        };
        let append = || OpenOptions::new().append(true).create(true).open(&path);
        // Read access is only for checking what is already there; a write-only file is fine.
        let (file, readable) = match OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
        {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                (append().map_err(open_err)?, false)
            }
            Err(e) => return Err(open_err(e)),
        };
        let meta = file.metadata().map_err(open_err)?;
        if meta.is_dir() {
            return Err(open_err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            )));
        }
        let regular = meta.is_file();
        let file = if regular {
            RecordFile::Locked(fd_lock::RwLock::new(file))
        } else {
            RecordFile::Plain(file)
        };
        let mut rec = Recorder {
            path,
            format,
            file,
            readable,
            regular,
            pending: Vec::new(),
            written: 0,
            dirty: false,
        };
        let header = format!("{}\n", CSV_HEADER.join(","));
        let csv = format == RecordFormat::Csv;
        // Decided under the lock: another writer may have written since the open.
        let checked = rec.file.locked(|file| {
            // Character devices and pipes (e.g. /dev/stdout, /dev/full) have no content to check.
            let empty = !regular || file.metadata()?.len() == 0;
            if !empty && readable {
                if csv {
                    let found = first_line(file)?;
                    if found != header.trim_end() {
                        return Ok(Err(found));
                    }
                }
                if !ends_with_newline(file)? {
                    file.write_all(b"\n")?;
                }
            }
            if empty && csv && regular {
                file.write_all(header.as_bytes())?;
            }
            Ok(Ok(()))
        });
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(found)) => {
                return Err(RecordError::HeaderMismatch {
                    path: rec.path.clone(),
                    found,
                });
            }
            Err(source) => {
                return Err(RecordError::Open {
                    path: rec.path.clone(),
                    source,
                });
            }
        }
        // A device has no "empty": its header goes with the first batch.
        if csv && !regular {
            rec.pending.extend_from_slice(header.as_bytes());
            rec.dirty = true;
        }
        Ok(rec)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> RecordFormat {
        self.format
    }

    /// Records written so far (through this recorder).
    pub fn written(&self) -> u64 {
        self.written
    }

    fn write_err(&self, source: io::Error) -> RecordError {
        RecordError::Write {
            path: self.path.clone(),
            source,
        }
    }

    fn csv_err(&self, e: csv::Error) -> RecordError {
        let source = match e.into_kind() {
            csv::ErrorKind::Io(e) => e,
            other => io::Error::other(format!("{other:?}")),
        };
        self.write_err(source)
    }

    /// Appends one record (buffered: complete records reach the file on [`Recorder::flush`],
    /// or once enough are waiting).
    pub fn write(&mut self, rec: &ReadingRecord) -> Result<(), RecordError> {
        let mark = self.pending.len();
        let r = match self.format {
            RecordFormat::JsonLines => serde_json::to_writer(&mut self.pending, rec)
                .map_err(|e| self.write_err(io::Error::from(e))),
            RecordFormat::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(&mut self.pending);
                let r = w
                    .write_record(rec.csv_fields().map(neutralise_csv_cell))
                    .and_then(|()| w.flush().map_err(csv::Error::from));
                drop(w);
                r.map_err(|e| self.csv_err(e))
            }
        };
        if let Err(e) = r {
            // Never leave half a record in the batch.
            self.pending.truncate(mark);
            return Err(e);
        }
        if self.format == RecordFormat::JsonLines {
            self.pending.push(b'\n');
        }
        self.dirty = true;
        self.written += 1;
        if self.pending.len() >= MAX_PENDING {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends several records (buffered).
    pub fn write_all<'a>(
        &mut self,
        recs: impl IntoIterator<Item = &'a ReadingRecord>,
    ) -> Result<(), RecordError> {
        for r in recs {
            self.write(r)?;
        }
        Ok(())
    }

    /// Whether something was written since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Appends the waiting records to the file: one `write` under the file's exclusive lock.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        // Once a flush failed, drop does not try (and log) again.
        self.dirty = false;
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let (regular, readable) = (self.regular, self.readable);
        let r = self
            .file
            .locked(|file| append_whole(file, &batch, regular && readable));
        r.map_err(|e| self.write_err(e))
    }
}

/// Writes `batch` at the end of `file` (which the caller holds locked) in one `write`. With
/// `check`, a line another writer left cut (it crashed) is ended first, so this batch starts on
/// its own line.
fn append_whole(file: &mut File, batch: &[u8], check: bool) -> io::Result<()> {
    if check && file.metadata()?.len() > 0 && !ends_with_newline(file)? {
        let mut whole = Vec::with_capacity(batch.len() + 1);
        whole.push(b'\n');
        whole.extend_from_slice(batch);
        return file.write_all(&whole);
    }
    file.write_all(batch)
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.dirty {
            if let Err(e) = self.flush() {
                tracing::warn!("{e}");
            }
        }
    }
}

/// Why [`RecordHandle::record`] did not take a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotRecorded {
    /// The queue is full (the disk is slower than the readings); the record was dropped and
    /// counted.
    #[error("the record queue is full; reading dropped")]
    QueueFull,
    /// Recording has stopped (asked to, or after a write error).
    #[error("recording has stopped")]
    Stopped,
}

/// The app's end of a recording task.
#[derive(Debug)]
pub struct RecordHandle {
    tx: mpsc::Sender<ReadingRecord>,
    dropped: Arc<AtomicU64>,
    token: CancellationToken,
    path: PathBuf,
    task: JoinHandle<()>,
}

impl RecordHandle {
    /// Starts the writer task for `recorder` (needs a tokio runtime). It ends when `token` is
    /// cancelled, when [`RecordHandle::stop`] is called or the handle dropped (writing what is
    /// queued first), or on a write error; then it sends one [`RecordEvent`] to `events`.
    pub fn spawn<E>(
        recorder: Recorder,
        events: mpsc::Sender<E>,
        token: CancellationToken,
    ) -> RecordHandle
    where
        E: From<RecordEvent> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let path = recorder.path().to_owned();
        let token = token.child_token();
        let task = tokio::spawn(writer(recorder, rx, events, token.clone(), dropped.clone()));
        RecordHandle {
            tx,
            dropped,
            token,
            path,
            task,
        }
    }

    /// Queues a record without ever waiting.
    pub fn record(&self, rec: ReadingRecord) -> Result<(), NotRecorded> {
        match self.tx.try_send(rec) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Err(NotRecorded::QueueFull)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NotRecorded::Stopped),
        }
    }

    /// Whether the task still takes records.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops recording: what is queued is written and flushed, then the task reports
    /// [`RecordEvent::Stopped`]. Await the returned handle to wait for that.
    pub fn stop(self) -> JoinHandle<()> {
        self.token.cancel();
        self.task
    }
}

async fn report<E: From<RecordEvent>>(events: &mpsc::Sender<E>, ev: RecordEvent) {
    match &ev {
        RecordEvent::Failed { error, .. } => tracing::error!("recording stopped: {error}"),
        RecordEvent::Stopped { path, written, .. } => {
            tracing::info!(
                "recording to {} stopped after {written} records",
                path.display()
            )
        }
    }
    let _ = tokio::time::timeout(REPORT_TIMEOUT, events.send(ev.into())).await;
}

/// Runs `f` on the recorder in the blocking pool (file I/O never stalls a runtime worker).
async fn blocking<F>(recorder: Recorder, f: F) -> (Option<Recorder>, Result<(), String>)
where
    F: FnOnce(&mut Recorder) -> Result<(), RecordError> + Send + 'static,
{
    let r = tokio::task::spawn_blocking(move || {
        let mut recorder = recorder;
        let r = f(&mut recorder);
        (recorder, r)
    })
    .await;
    match r {
        Ok((rec, Ok(()))) => (Some(rec), Ok(())),
        Ok((rec, Err(e))) => (Some(rec), Err(e.to_string())),
        Err(e) => (None, Err(format!("record writer failed: {e}"))),
    }
}

async fn writer<E>(
    recorder: Recorder,
    mut rx: mpsc::Receiver<ReadingRecord>,
    events: mpsc::Sender<E>,
    token: CancellationToken,
    dropped: Arc<AtomicU64>,
) where
    E: From<RecordEvent> + Send + 'static,
{
    let path = recorder.path().to_owned();
    let mut recorder = Some(recorder);
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written = 0u64;
    let mut last_flush = tokio::time::Instant::now();
    let outcome: Result<(), String> = loop {
        let Some(rec) = recorder.take() else {
            break Err("record writer lost its file".into());
        };
        let mut batch = Vec::new();
        let mut last = false;
        tokio::select! {
            biased;
            _ = token.cancelled() => last = true,
            r = rx.recv() => match r {
                Some(first) => batch.push(first),
                None => last = true,
            },
            _ = tick.tick() => {}
        }
        // Everything already queued goes in this trip (all of it when stopping).
        while last || batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        // A steady stream of records must not starve the flush: flush by age as well.
        let flush_now = last || batch.is_empty() || last_flush.elapsed() >= FLUSH_INTERVAL;
        if batch.is_empty() && !last && !rec.is_dirty() {
            recorder = Some(rec);
            continue;
        }
        if flush_now {
            last_flush = tokio::time::Instant::now();
        }
        let (back, r) = blocking(rec, move |rec| {
            rec.write_all(&batch)?;
            if flush_now && rec.is_dirty() {
                rec.flush()?;
            }
            Ok(())
        })
        .await;
        recorder = back;
        if let Err(e) = r {
            break Err(e);
        }
        written += n;
        if last {
            break Ok(());
        }
    };
    rx.close();
    let dropped_n = dropped.load(Ordering::Relaxed) + rx.len() as u64;
    let ev = match outcome {
        Ok(()) => RecordEvent::Stopped {
            path,
            written,
            dropped: dropped_n,
        },
        Err(error) => {
            // The file is unusable; closing it may still block (a hung network disk), so it
            // is closed on the blocking pool too.
            if let Some(rec) = recorder.take() {
                let _ = tokio::task::spawn_blocking(move || drop(rec)).await;
            }
            RecordEvent::Failed {
                path,
                error,
                written,
                dropped: dropped_n,
            }
        }
    };
    report(&events, ev).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::plausibility::Verdict;
    use crate::protocol::{Realtime, SysInfo};
    use serde_json::json;

    fn info() -> SysInfo {
        SysInfo::from_result(&json!({
            "model": "HS110(US)", "hw_ver": "1.0", "sw_ver": "1.2.5 Build 171213 Rel.101523",
            "mac": "50-c7-bf-00-00-01", "deviceId": "8006AB", "alias": "kettle, \"big\"",
            "feature": "TIM:ENE", "relay_state": 1,
        }))
        .unwrap()
    }

    fn rt(p: f64) -> Realtime {
        Realtime::from_result(&json!({"power": p, "voltage": 120.5, "current": 0.25,
            "total": 3.5, "err_code": 0}))
        .unwrap()
    }

    fn rec(p: f64) -> ReadingRecord {
        ReadingRecord::with_verdict(
            1_700_000_000_123,
            "127.0.0.9".parse().unwrap(),
            &info(),
            None,
            &rt(p),
            Verdict::Bogus,
            vec!["too much, really".into(), "second".into()],
        )
        .named(Some("Kettle"))
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pf-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn csv_cells_read_back_to_the_same_record() {
        let r = rec(28_351.5);
        assert_eq!(r.protocol, "legacy");
        assert_eq!(r.kind, "plug");
        let cells = r.csv_fields();
        assert_eq!(ReadingRecord::from_csv_fields(&cells).unwrap(), r);
        // A line written before `type`, `protocol` and `dialect` existed.
        let old = ReadingRecord::from_csv_fields(&cells[..16]).unwrap();
        assert_eq!((old.kind.as_str(), old.protocol.as_str()), ("", ""));
        assert_eq!(old.power_w, r.power_w);
        let mut bad = cells.clone();
        bad[9] = "lots".into();
        let e = ReadingRecord::from_csv_fields(&bad).unwrap_err();
        assert!(e.starts_with("power_w"), "{e}");
        assert!(ReadingRecord::from_csv_fields(&cells[..3]).is_err());
        bad = cells.clone();
        bad[13] = "fine".into();
        assert!(
            ReadingRecord::from_csv_fields(&bad)
                .unwrap_err()
                .contains("verdict")
        );
    }

    #[test]
    fn format_from_extension_and_name() {
        assert_eq!(
            RecordFormat::from_path(Path::new("a/B.CSV")),
            RecordFormat::Csv
        );
        assert_eq!(
            RecordFormat::from_path(Path::new("a/b")),
            RecordFormat::JsonLines
        );
        assert_eq!("JSONL".parse(), Ok(RecordFormat::JsonLines));
        assert!("xml".parse::<RecordFormat>().unwrap_err().contains("xml"));
    }

    #[test]
    fn record_fields_from_sysinfo_and_reading() {
        let r = rec(28_000.0);
        assert_eq!(r.mac, "50:C7:BF:00:00:01");
        assert_eq!(r.scheme, "base");
        assert_eq!(r.power_w, Some(28_000.0));
        let f = r.csv_fields();
        assert_eq!(f[0], "1700000000123");
        assert_eq!(f[9], "28000");
        assert_eq!(f[13], "bogus");
        assert_eq!(f[14], "too much, really; second");
        assert_eq!(f[7], "", "no outlet");
    }

    #[test]
    fn csv_header_written_once_and_values_round_trip() {
        let p = tmp("a.csv");
        {
            let mut r = Recorder::open(&p).unwrap();
            r.write(&rec(1.5)).unwrap();
        } // drop flushes
        {
            let mut r = Recorder::open(&p).unwrap();
            r.write(&rec(2.5)).unwrap();
            r.flush().unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.matches("unix_ms,").count(), 1, "{text}");
        let mut rd = csv::Reader::from_path(&p).unwrap();
        let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][4], "kettle, \"big\"");
        assert_eq!(&rows[1][9], "2.5");
    }

    #[test]
    fn formula_cells_are_neutralised_and_numbers_kept() {
        for risky in [
            "=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "-", "-inf", "--5",
        ] {
            assert_eq!(
                neutralise_csv_cell(risky.into()),
                format!("'{risky}"),
                "{risky:?}"
            );
        }
        for kept in ["-5", "-0.25", "230.1", "0", "plain", "a=b", ""] {
            assert_eq!(neutralise_csv_cell(kept.into()), kept, "{kept:?}");
        }
    }

    #[test]
    fn appending_to_a_csv_with_other_columns_is_refused() {
        let p = tmp("other.csv");
        std::fs::write(&p, "a,b,c\n1,2,3\n").unwrap();
        let e = Recorder::open(&p).unwrap_err();
        assert!(matches!(e, RecordError::HeaderMismatch { .. }), "{e}");
        assert!(e.to_string().contains("other.csv"), "{e}");
    }

    #[test]
    fn a_cut_line_is_ended_before_appending() {
        let p = tmp("cut.jsonl");
        std::fs::write(&p, "{\"unix_ms\":1,\"ip\"").unwrap();
        {
            let mut r = Recorder::open(&p).unwrap();
            r.write(&rec(3.0)).unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let last = text.lines().last().unwrap();
        let back: ReadingRecord = serde_json::from_str(last).unwrap();
        assert_eq!(back, rec(3.0));
    }

    #[test]
    fn a_directory_is_an_open_error() {
        let e = Recorder::open(std::env::temp_dir()).unwrap_err();
        assert!(matches!(e, RecordError::Open { .. }), "{e}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_a_typed_error_not_a_panic() {
        let mut r = Recorder::open_as("/dev/full", RecordFormat::JsonLines).unwrap();
        r.write(&rec(1.0)).unwrap();
        let e = r.flush().unwrap_err();
        assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull), "{e}");
        assert!(e.to_string().contains("/dev/full"), "{e}");
    }
}
