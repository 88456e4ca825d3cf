#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The firmware flow against the simulator, end to end, with a tiny HTTP server on loopback:
//! download → state → flash → offline → back with the new `sw_ver`; premature flashes refused and
//! counted; the firmware faults seen through `net::Client`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use plugfleet::firmware::header::{self, ImageHeader};
use plugfleet::net::{Client, ClientConfig, NetError};
use plugfleet::protocol::DownloadState;
use plugfleet::sim::{self, FaultKind, Fleet, FleetSpec, KnownImage, PlugHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

const HS110_US_NEW: &[u8] =
    include_bytes!("../assets/firmware/hs110v1_us_1.2.7_Build_210310_Rel.113052.bin");
const HS200_WRONG: &[u8] =
    include_bytes!("../assets/firmware/hs200v2_us_1.5.9_Build_210115_Rel.133045.bin");

fn base() -> Ipv4Addr {
    static N: AtomicU8 = AtomicU8::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = (std::process::id() % 256) as u8;
    Ipv4Addr::new(127, 62, pid.wrapping_mul(17).wrapping_add(n), 2)
}

/// A minimal static HTTP/1.1 server on 127.0.0.1:0, counting body bytes sent.
struct Server {
    addr: SocketAddr,
    sent: Arc<AtomicU64>,
    /// Source address of every connection.
    peers: Arc<std::sync::Mutex<Vec<IpAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(files: HashMap<&'static str, Vec<u8>>) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let peers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let files = Arc::new(files);
        let counter = sent.clone();
        let seen = peers.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, from)) = l.accept().await else {
                    return;
                };
                seen.lock().unwrap().push(from.ip());
                let files = files.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&b[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    match files.get(path.as_str()) {
                        Some(body) => {
                            let h = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            );
                            if s.write_all(h.as_bytes()).await.is_err() {
                                return;
                            }
                            for chunk in body.chunks(4096) {
                                if s.write_all(chunk).await.is_err() {
                                    return;
                                }
                                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                            }
                        }
                        None => {
                            let _ = s
                                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                                .await;
                        }
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        Server {
            addr,
            sent,
            peers,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn one_plug(profile: &str, faults: &[FaultKind], scale: f64) -> Fleet {
    let b = base();
    sim::start(FleetSpec {
        profiles: vec![profile.into()],
        time_scale: scale,
        faults: faults.iter().map(|f| (b, *f)).collect(),
        ..FleetSpec::on_free_port(b, 1)
    })
    .await
    .expect("fleet")
}

fn client(p: &PlugHandle) -> Client {
    Client::new(
        p.addr(),
        ClientConfig {
            port: p.port,
            connect_timeout: Duration::from_millis(500),
            reply_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        },
    )
}

/// Polls the download state until `done` says so (or panics after `limit`).
async fn poll_state(
    c: &Client,
    limit: Duration,
    mut done: impl FnMut(&Result<DownloadState, NetError>) -> bool,
) -> Result<DownloadState, NetError> {
    let deadline = Instant::now() + limit;
    loop {
        let s = c.download_state().await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "download state stuck at {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn unknown_error() -> NetError {
    NetError::Device {
        code: -7,
        msg: "unknown error".into(),
    }
}

#[tokio::test]
async fn firmware_flow_end_to_end() {
    let srv = Server::start(HashMap::from([("/fw/hs110.bin", HS110_US_NEW.to_vec())])).await;
    let f = one_plug("hs110-us-hw1", &[], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    assert_eq!(p.sw_ver, "1.2.6 Build 200727 Rel.121701");
    c.set_relay(true, None).await.unwrap();

    c.download_firmware(&srv.url("/fw/hs110.bin"))
        .await
        .expect("download accepted");
    let st = poll_state(&c, Duration::from_secs(10), |s| {
        s.as_ref().is_ok_and(DownloadState::is_complete)
    })
    .await
    .unwrap();
    assert_eq!(st.ratio, 100);
    // flash 20 s and reboot 10 s at time scale 0.01, rounded up to whole seconds.
    assert_eq!((st.flash_time_s, st.reboot_time_s), (1, 1));
    assert_eq!(p.reported_flash_reboot_s(), (1, 1));
    assert_eq!(p.bytes_downloaded(), HS110_US_NEW.len() as u64);
    assert_eq!(
        srv.sent.load(Ordering::Relaxed),
        HS110_US_NEW.len() as u64,
        "fetched for real"
    );
    assert_eq!(
        *srv.peers.lock().unwrap(),
        vec![p.addr()],
        "the plug fetches from its own address"
    );
    let stats = p.stats();
    assert_eq!((stats.downloads_started, stats.downloads_completed), (1, 1));
    assert_eq!((stats.images_rejected, stats.downloads_failed), (0, 0));

    c.flash_firmware().await.expect("flash accepted");
    assert_eq!(p.flashes(), 1);
    wait_until(
        "offline for flashing, then back",
        Duration::from_secs(5),
        || p.outages() >= 1 && p.is_online(),
    )
    .await;
    let info = c.sysinfo().await.expect("back");
    assert_eq!(info.sw_ver, "1.2.7 Build 210310 Rel.113052");
    assert_eq!(p.current_sw_ver(), info.sw_ver);
    assert_eq!(
        (info.mac, info.device_id),
        (p.mac.clone(), p.device_id.clone())
    );
    assert_eq!(info.relay_on, Some(false), "a fresh boot opens the relay");
    assert_eq!(
        c.download_state().await.expect_err("image consumed"),
        unknown_error()
    );
    assert_eq!(p.premature_flash_attempts(), 0);
    f.shutdown().await;
}

#[tokio::test]
async fn ratio_progresses_while_downloading() {
    let srv = Server::start(HashMap::from([("/a.bin", HS110_US_NEW.to_vec())])).await;
    // ~104 KiB at 96 KiB/s ÷ 0.5 ≈ 0.5 s.
    let f = one_plug("hs110-us-hw1", &[], 0.5).await;
    let c = client(&f.plugs()[0]);
    c.download_firmware(&srv.url("/a.bin")).await.unwrap();
    let mut ratios = Vec::new();
    poll_state(&c, Duration::from_secs(10), |s| {
        let s = s.as_ref().expect("state while downloading");
        ratios.push((s.status, s.ratio));
        s.is_complete()
    })
    .await
    .unwrap();
    assert!(
        ratios
            .iter()
            .any(|&(st, r)| st == DownloadState::DOWNLOADING && r > 0 && r < 100),
        "an intermediate ratio was reported: {ratios:?}"
    );
    assert!(
        ratios.windows(2).all(|w| w[0].1 <= w[1].1),
        "never goes back: {ratios:?}"
    );
    f.shutdown().await;
}

#[tokio::test]
async fn premature_flash_during_a_stalled_download_is_refused_and_counted() {
    let srv = Server::start(HashMap::from([("/a.bin", HS110_US_NEW.to_vec())])).await;
    let f = one_plug("hs110-us-hw1", &[FaultKind::DownloadStall], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    assert!(matches!(
        c.flash_firmware().await,
        Err(NetError::Device { code: -5, .. })
    ));
    c.download_firmware(&srv.url("/a.bin")).await.unwrap();
    let st = poll_state(&c, Duration::from_secs(10), |s| {
        s.as_ref().is_ok_and(|s| s.ratio >= 40)
    })
    .await
    .unwrap();
    assert_eq!(st.status, DownloadState::DOWNLOADING);
    assert_eq!(st.ratio, 40, "stalled at 40 %");
    assert!(!st.is_complete());
    assert!(matches!(
        c.flash_firmware().await,
        Err(NetError::Device { code: -5, .. })
    ));
    assert_eq!(p.premature_flash_attempts(), 2);
    assert_eq!(p.flashes(), 0);
    assert_eq!(c.download_state().await.unwrap().ratio, 40, "still stalled");
    assert!(p.is_online());
    f.shutdown().await;
}

#[tokio::test]
async fn wrong_model_image_fails_the_download_and_cannot_be_flashed() {
    let srv = Server::start(HashMap::from([("/hs200.bin", HS200_WRONG.to_vec())])).await;
    let f = one_plug("hs110-us-hw1", &[], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    c.download_firmware(&srv.url("/hs200.bin")).await.unwrap();
    let s = poll_state(&c, Duration::from_secs(10), Result::is_err).await;
    assert_eq!(s.expect_err("failed"), unknown_error());
    assert_eq!(
        p.bytes_downloaded(),
        HS200_WRONG.len() as u64,
        "it was fetched, then refused"
    );
    assert!(matches!(
        c.flash_firmware().await,
        Err(NetError::Device { code: -5, .. })
    ));
    assert_eq!(p.premature_flash_attempts(), 1);
    assert_eq!(c.sysinfo().await.unwrap().sw_ver, p.sw_ver);
    f.shutdown().await;
}

#[tokio::test]
async fn corrupt_or_missing_images_fail() {
    let mut corrupt = HS110_US_NEW.to_vec();
    let n = corrupt.len();
    corrupt[n - 10] ^= 0x55;
    let srv = Server::start(HashMap::from([("/bad.bin", corrupt)])).await;
    let f = one_plug("hs110-us-hw1", &[], 0.01).await;
    let c = client(&f.plugs()[0]);
    c.download_firmware(&srv.url("/bad.bin")).await.unwrap();
    let s = poll_state(&c, Duration::from_secs(10), Result::is_err).await;
    assert_eq!(s.expect_err("checksum"), unknown_error());
    c.download_firmware(&srv.url("/missing.bin")).await.unwrap();
    let s = poll_state(&c, Duration::from_secs(10), Result::is_err).await;
    assert_eq!(s.expect_err("404"), unknown_error());
    assert!(matches!(
        c.flash_firmware().await,
        Err(NetError::Device { code: -5, .. })
    ));
    f.shutdown().await;
}

#[tokio::test]
async fn non_loopback_urls_are_refused_without_connecting() {
    let f = one_plug("kp115-us-hw1", &[], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    for url in [
        "http://192.168.1.10:8080/fw.bin",
        "http://download.tplinkcloud.com/firmware/x.bin",
        "https://127.0.0.1/fw.bin",
    ] {
        let e = c.download_firmware(url).await.expect_err(url);
        assert!(
            matches!(e, NetError::Device { code: -3, .. }),
            "{url}: {e:?}"
        );
    }
    assert_eq!(p.downloads_started(), 0);
    f.shutdown().await;
}

#[tokio::test]
async fn download_drop_fails_midway() {
    let srv = Server::start(HashMap::from([("/a.bin", HS110_US_NEW.to_vec())])).await;
    let f = one_plug("hs110-us-hw1", &[FaultKind::DownloadDrop], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    c.download_firmware(&srv.url("/a.bin")).await.unwrap();
    let s = poll_state(&c, Duration::from_secs(10), Result::is_err).await;
    assert_eq!(s.expect_err("dropped"), unknown_error());
    let got = p.bytes_downloaded();
    let len = HS110_US_NEW.len() as u64;
    assert!(
        got >= len / 2 && got < len,
        "stopped midway: {got} of {len}"
    );
    assert!(matches!(
        c.flash_firmware().await,
        Err(NetError::Device { code: -5, .. })
    ));
    assert_eq!(p.premature_flash_attempts(), 1);
    f.shutdown().await;
}

#[tokio::test]
async fn image_reject_fails_a_valid_image() {
    let srv = Server::start(HashMap::from([("/a.bin", HS110_US_NEW.to_vec())])).await;
    let f = one_plug("hs110-us-hw1", &[FaultKind::ImageReject], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    c.download_firmware(&srv.url("/a.bin")).await.unwrap();
    let s = poll_state(&c, Duration::from_secs(10), Result::is_err).await;
    assert_eq!(s.expect_err("rejected"), unknown_error());
    assert_eq!(p.bytes_downloaded(), HS110_US_NEW.len() as u64);
    assert!(matches!(
        c.flash_firmware().await,
        Err(NetError::Device { code: -5, .. })
    ));
    f.shutdown().await;
}

/// Downloads and flashes the good image; returns once the flash was accepted.
async fn download_and_flash(c: &Client, srv: &Server) {
    c.download_firmware(&srv.url("/a.bin")).await.unwrap();
    poll_state(c, Duration::from_secs(10), |s| {
        s.as_ref().is_ok_and(DownloadState::is_complete)
    })
    .await
    .unwrap();
    c.flash_firmware().await.expect("flash accepted");
}

#[tokio::test]
async fn never_back_stays_away_after_flash() {
    let srv = Server::start(HashMap::from([("/a.bin", HS110_US_NEW.to_vec())])).await;
    let f = one_plug("hs110-us-hw1", &[FaultKind::NeverBack], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    download_and_flash(&c, &srv).await;
    wait_until("offline", Duration::from_secs(3), || p.outages() >= 1).await;
    // flash + reboot take 0.3 s here; give it three times as long to (wrongly) come back.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(!p.is_online());
    assert_eq!(c.sysinfo().await.expect_err("gone"), NetError::Refused);
    f.shutdown().await;
}

#[tokio::test]
async fn old_version_comes_back_unchanged() {
    let srv = Server::start(HashMap::from([("/a.bin", HS110_US_NEW.to_vec())])).await;
    let f = one_plug("hs110-us-hw1", &[FaultKind::OldVersion], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    download_and_flash(&c, &srv).await;
    wait_until("offline, then back", Duration::from_secs(5), || {
        p.outages() >= 1 && p.is_online()
    })
    .await;
    assert_eq!(
        c.sysinfo().await.unwrap().sw_ver,
        p.sw_ver,
        "still the old version"
    );
    assert_eq!(p.flashes(), 1);
    f.shutdown().await;
}

#[tokio::test]
async fn hang_after_flash_accepts_but_never_replies() {
    let srv = Server::start(HashMap::from([("/a.bin", HS110_US_NEW.to_vec())])).await;
    let f = one_plug("hs110-us-hw1", &[FaultKind::HangAfterFlash], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    download_and_flash(&c, &srv).await;
    wait_until("offline, then back", Duration::from_secs(5), || {
        p.outages() >= 1 && p.is_online()
    })
    .await;
    let e = c.sysinfo().await.expect_err("hangs");
    assert!(matches!(e, NetError::Timeout { .. }), "{e:?}");
    f.shutdown().await;
}

#[tokio::test]
async fn reboot_during_a_download_loses_it() {
    let srv = Server::start(HashMap::from([("/a.bin", HS110_US_NEW.to_vec())])).await;
    let f = one_plug("hs110-us-hw1", &[FaultKind::DownloadStall], 0.05).await;
    let p = &f.plugs()[0];
    let c = client(p);
    c.download_firmware(&srv.url("/a.bin")).await.unwrap();
    poll_state(&c, Duration::from_secs(10), |s| {
        s.as_ref().is_ok_and(|s| s.ratio >= 40)
    })
    .await
    .unwrap();
    c.reboot(0).await.unwrap();
    wait_until("offline, then back", Duration::from_secs(5), || {
        p.outages() >= 1 && p.is_online()
    })
    .await;
    assert_eq!(c.download_state().await.expect_err("gone"), unknown_error());
    f.shutdown().await;
}

/// An image the product's own header parser accepts (right model, hardware and checksum) but
/// whose digest the simulated plug does not know is refused, as a real plug refuses an image its
/// vendor did not sign; the same bytes are accepted once the fleet is told they are signed.
#[tokio::test]
async fn the_sim_judges_images_by_digest_not_by_the_products_parser() {
    let forged =
        ImageHeader::new("HS110", "1", "US", "1.2.9", "220101", "101010").build(&[9u8; 4096]);
    let h = header::verify(&forged).expect("the product's parser accepts it");
    assert!(h.targets("HS110(US)", "1.0"));
    let mut tampered = HS110_US_NEW.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let srv = Server::start(HashMap::from([
        ("/forged.bin", forged.clone()),
        ("/tampered.bin", tampered),
    ]))
    .await;

    let f = one_plug("hs110-us-hw1", &[], 0.01).await;
    let p = &f.plugs()[0];
    let c = client(p);
    for path in ["/forged.bin", "/tampered.bin"] {
        c.download_firmware(&srv.url(path)).await.unwrap();
        let s = poll_state(&c, Duration::from_secs(10), Result::is_err).await;
        assert_eq!(s.expect_err("rejected"), unknown_error(), "{path}");
        assert!(matches!(
            c.flash_firmware().await,
            Err(NetError::Device { code: -5, .. })
        ));
    }
    let st = p.stats();
    assert_eq!(st.images_rejected, 2);
    assert_eq!(st.downloads_completed, 0);
    assert_eq!(st.premature_flash_attempts, 2);
    assert_eq!(st.flashes, 0);
    assert_eq!(p.current_sw_ver(), p.sw_ver);
    f.shutdown().await;

    // The same forged bytes, now in the fleet's list of signed images.
    let b = base();
    let f = sim::start(FleetSpec {
        profiles: vec!["hs110-us-hw1".into()],
        time_scale: 0.01,
        images: vec![KnownImage::for_bytes(
            &forged,
            "HS110(US)",
            "1",
            "1.2.9 Build 220101 Rel.101010",
        )],
        ..FleetSpec::on_free_port(b, 1)
    })
    .await
    .unwrap();
    let p = &f.plugs()[0];
    let c = client(p);
    c.download_firmware(&srv.url("/forged.bin")).await.unwrap();
    poll_state(&c, Duration::from_secs(10), |s| {
        s.as_ref().is_ok_and(DownloadState::is_complete)
    })
    .await
    .unwrap();
    c.flash_firmware().await.expect("accepted");
    wait_until("back after the flash", Duration::from_secs(5), || {
        p.outages() >= 1 && p.is_online()
    })
    .await;
    assert_eq!(p.current_sw_ver(), "1.2.9 Build 220101 Rel.101010");
    assert_eq!(p.stats().downloads_completed, 1);
    f.shutdown().await;
}
