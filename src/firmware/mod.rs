//! Firmware: image inspection and matching, the update job (a pure state machine), its runner,
//! and the embedded file server.
//!
//! - [`image`]: reads an image or a folder of images: size, SHA-256, the target from the file
//!   name (PROTOCOL.md §6.5) and from the demo [`header`] when present.
//! - [`plan`]: matches images to plugs. Per plug: the image chosen, current → new version and a
//!   [`plan::Verdict`] (compatible / protocol change (warn) / downgrade (warn) / same version /
//!   unknown target (needs the override) / wrong target, corrupt, above the configured ceiling
//!   (blocked)). With a folder each plug gets its best match.
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

pub mod exits;
pub mod header;
pub mod image;
pub mod job;
pub mod plan;
pub mod runner;
pub mod server;
