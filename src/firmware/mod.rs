//! Firmware: image inspection and matching, the update job (a pure state machine), its runner,
//! and the embedded file server.
//!
//! - [`image`]: reads an image or a folder of images: file type (regular files only; a symlink
//!   only to a regular file inside the folder; FIFOs and devices refused unopened), size (read
//!   with a cap), SHA-256, the [`container`] structure found (PROTOCOL.md §6.6), the target from
//!   the file name (§6.5) and from the demo [`header`] when present.
//! - [`limits`]: size bounds per model family (`assets/firmware_limits.json`, config
//!   overrides) and the user's allowlist of known SHA-256 per (model, hardware).
//! - [`plan`]: matches images to plugs. Per plug: the image chosen, current → new version and a
//!   [`plan::Verdict`] (compatible / protocol change (warn) / downgrade (needs its own consent,
//!   `--allow-downgrade`) / same version, unknown target, unrecognised content (need the
//!   override, `--force`) / refused file, size out of bounds, wrong target, corrupt, above the
//!   configured ceiling (blocked)), and per image what was checked ([`plan::Checks`]). With a
//!   folder each plug gets its best match.
//! - [`job`]: one plug's update as a pure state machine, time passed in. `flash_firmware` is
//!   asked for only after a complete, error-free download that the bytes served do not
//!   contradict.
//! - [`server`]: the axum file server: one secret path per plug, `GET`/`HEAD`/`Range`, bytes
//!   served counted per plug and per client address.
//! - [`runner`]: drives the jobs against real plugs with a concurrency limit, an optional canary
//!   and stop-on-failure; reports [`runner::JobEvent`]s and writes a JSON-lines journal.
//!
//! How a front end uses it (the TUI and `plugfleet update` do exactly this):
//!
//! ```no_run
//! # async fn demo(plugs: Vec<(std::net::IpAddr, plugfleet::protocol::SysInfo)>) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use plugfleet::firmware::{image, plan, runner};
//! let images: Vec<_> = image::load_path("firmware/".as_ref())?.into_iter().map(Arc::new).collect();
//! let entries = plan::plan(&plugs, &images);        // show it; ask for confirmation
//! let (tx, mut rx) = tokio::sync::mpsc::channel::<runner::JobEvent>(256);
//! let (handle, task) = runner::spawn_batch(
//!     entries,
//!     runner::RunnerConfig::default(),
//!     tx,
//!     tokio_util::sync::CancellationToken::new(),
//! );
//! while let Some(ev) = rx.recv().await {
//!     // JobEvent::Transition / Progress carry a JobSnapshot: stage, ratio, served bytes,
//!     // elapsed, expected remaining, outcome; `snapshot.fraction()` is safe for a Gauge.
//!     # let _ = (&ev, &handle);
//! }
//! let report = task.await??;                          // also sent as BatchFinished
//! # let _ = report; Ok(()) }
//! ```

pub mod container;
pub mod exits;
pub mod header;
pub mod image;
pub mod job;
pub mod limits;
pub mod plan;
pub mod runner;
pub mod server;
