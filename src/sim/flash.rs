//! The firmware flow of a simulated plug: `download_firmware` starts a fetch (`fetch.rs`),
//! `get_download_state` reports its progress, and `flash_firmware` is accepted only once a
//! complete image passed the plug's own check — its SHA-256 is one the plug accepts
//! (`images.rs`) for its model and hardware. The simulator never parses the image, so it
//! judges it independently of the product's header parser.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use super::fault::FaultKind;
use super::fetch::{FetchOptions, NOMINAL_RATE, Target, fetch, parse_url};
use super::images::KnownImage;
use super::plug::{Cause, Counters, Download, Outage, PlugShared};
use super::reply::{err, ok};

impl PlugShared {
    pub(crate) fn start_download(self: &Arc<Self>, args: &Value) -> Value {
        let Some(url) = args.get("url").and_then(Value::as_str) else {
            return err(-3, "invalid argument");
        };
        let Ok(target) = parse_url(url) else {
            // Not plain HTTP to a loopback address: the simulator never leaves loopback.
            return err(-3, "invalid argument");
        };
        let id = {
            let mut st = self.lock();
            st.download_id += 1;
            let id = st.download_id;
            st.download = Download::Running {
                id,
                received: 0,
                len: None,
            };
            id
        };
        Counters::bump(&self.counters.downloads_started);
        tokio::spawn(download(self.clone(), id, target));
        ok()
    }

    pub(crate) fn download_state(&self) -> Value {
        let p = self.id.profile;
        let flash = self.id.reported_secs(p.flash_time_s);
        let reboot = self.id.reported_secs(p.reboot_time_s);
        match &self.lock().download {
            Download::None | Download::Failed { .. } => err(-7, "unknown error"),
            Download::Running { received, len, .. } => {
                let ratio = match len {
                    Some(l) if *l > 0 => ((received.saturating_mul(100)) / l).min(99),
                    _ => 0,
                };
                json!({"status": 1, "ratio": ratio, "flash_time": flash,
                    "reboot_time": reboot, "err_code": 0})
            }
            Download::Complete { .. } => json!({"status": 0, "ratio": 100,
                "flash_time": flash, "reboot_time": reboot, "err_code": 0}),
        }
    }

    pub(crate) fn flash(&self) -> Value {
        let image = {
            let mut st = self.lock();
            match &st.download {
                Download::Complete { image } => {
                    let i = image.clone();
                    st.download = Download::None;
                    Some(i)
                }
                _ => None,
            }
        };
        let Some(image) = image else {
            Counters::bump(&self.counters.premature_flash_attempts);
            tracing::warn!(ip = %self.id.ip, "flash_firmware refused: no complete, accepted image");
            return err(-5, "not enough memory");
        };
        Counters::bump(&self.counters.flashes);
        let p = self.id.profile;
        self.schedule_outage(Outage {
            // Let the reply leave first.
            after: self.id.scaled(Duration::from_millis(200)),
            down: self
                .id
                .scaled(Duration::from_secs(p.flash_time_s + p.reboot_time_s)),
            cause: Cause::Flash {
                sw_ver: image.sw_ver,
            },
        });
        ok()
    }

    /// Records download progress; false when this download is no longer the current one.
    fn download_progress(&self, id: u64, received: u64, len: Option<u64>) -> bool {
        let mut st = self.lock();
        match &mut st.download {
            Download::Running { id: cur, .. } if *cur == id => {
                st.download = Download::Running { id, received, len };
                true
            }
            _ => false,
        }
    }

    /// Records the end of a download; false when it was no longer the current one.
    fn download_done(&self, id: u64, result: Result<KnownImage, String>) -> bool {
        let mut st = self.lock();
        if !matches!(&st.download, Download::Running { id: cur, .. } if *cur == id) {
            return false;
        }
        st.download = match result {
            Ok(image) => Download::Complete { image },
            Err(reason) => {
                tracing::info!(ip = %self.id.ip, %reason, "firmware download failed");
                Download::Failed { reason }
            }
        };
        true
    }

    /// Judges a complete download: the image must be one the plug accepts, for its model and
    /// hardware (and the `image-reject` fault refuses even those).
    fn check_image(&self, bytes: &[u8]) -> Result<KnownImage, String> {
        let p = self.id.profile;
        let image = self
            .accepted
            .judge(bytes, p.model(), p.hw_ver())
            .map_err(|e| e.to_string())?;
        if self.id.has(FaultKind::ImageReject) {
            return Err("image signature rejected".into());
        }
        Ok(image)
    }
}

/// Runs download `id` of `plug` to completion (or failure) and records the outcome.
async fn download(plug: Arc<PlugShared>, id: u64, target: Target) {
    let p = plug.id.profile;
    let opts = FetchOptions {
        bind: plug.id.ip,
        user_agent: format!("plugfleet-sim/{}", p.model()),
        rate: NOMINAL_RATE / plug.id.time_scale.max(1e-6),
        drop_at_half: plug.id.has(FaultKind::DownloadDrop),
        stall_at_40: plug.id.has(FaultKind::DownloadStall),
    };
    let mut counted = 0u64;
    let progress = |received: u64, len: Option<u64>| {
        plug.counters
            .bytes_downloaded
            .fetch_add(received.saturating_sub(counted), Ordering::Relaxed);
        counted = received;
        plug.download_progress(id, received, len)
    };
    let token = plug.token.clone();
    let result = tokio::select! {
        r = fetch(&target, &opts, progress) => r,
        () = token.cancelled() => return,
    };
    match result {
        Ok(Some(bytes)) => {
            let verdict = plug.check_image(&bytes);
            let counter = match verdict {
                Ok(_) => &plug.counters.downloads_completed,
                Err(_) => &plug.counters.images_rejected,
            };
            if plug.download_done(id, verdict) {
                Counters::bump(counter);
            }
        }
        Ok(None) => {} // superseded, or the plug went down
        Err(reason) => {
            if plug.download_done(id, Err(reason)) {
                Counters::bump(&plug.counters.downloads_failed);
            }
        }
    }
}
