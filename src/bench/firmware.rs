//! `plugfleet bench firmware`: a batch of firmware updates against a single one on simulated
//! plugs with the time scale shrunk, and the file server's throughput with 50 concurrent
//! downloads. Prints figures; asserts nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::firmware::header::ImageHeader;
use crate::firmware::image::ImageInfo;
use crate::firmware::job::JobTimings;
use crate::firmware::plan;
use crate::firmware::runner::{BatchHandle, JobEvent, RunnerConfig, run_batch};
use crate::firmware::server::{FileServer, ServeLimits};
use crate::net::{Client, ClientConfig};
use crate::sim::{Fleet, FleetSpec, KnownImage};

const TIME_SCALE: f64 = 0.01;
const PROFILE: &str = "hs110-us-hw1";
const ROUNDS: usize = 3;
const IMAGE_BUILD: &str = "220101";
const IMAGE_REL: &str = "101010";

/// Runs the suite and prints its figures.
pub fn run() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!("== firmware ==");
        batch_vs_single().await?;
        server_throughput().await
    })
}

fn image(payload_len: usize) -> Arc<ImageInfo> {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 31 % 251) as u8).collect();
    let bytes =
        ImageHeader::new("HS110", "1", "US", "1.2.9", IMAGE_BUILD, IMAGE_REL).build(&payload);
    Arc::new(ImageInfo::from_bytes(
        std::path::Path::new("hs110v1_us_1.2.9_Build_220101_Rel.101010.bin"),
        bytes,
    ))
}

fn runner_config(port: u16, concurrency: usize) -> RunnerConfig {
    RunnerConfig {
        client: ClientConfig {
            port,
            connect_timeout: Duration::from_millis(500),
            reply_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        },
        timings: JobTimings {
            poll_interval: Duration::from_millis(20),
            download_stall: Duration::from_secs(10),
            download_deadline: Duration::from_secs(60),
            request_deadline: Duration::from_secs(10),
            device_time_scale: 1.0,
            default_flash_time: Duration::from_millis(500),
            default_reboot_time: Duration::from_millis(500),
            quiet_margin: Duration::from_millis(50),
            verify_poll: Duration::from_millis(50),
            back_deadline: Duration::from_secs(10),
        },
        concurrency,
        canary: false,
        stop_on_failure: false,
        force: false,
        serve_addr: None,
        serve_port: 0,
        journal: None,
    }
}

/// One batch of `count` plugs at `concurrency`; returns (wall time, updated count).
async fn one_batch(
    base: Ipv4Addr,
    count: usize,
    concurrency: usize,
    img: &Arc<ImageInfo>,
) -> anyhow::Result<(Duration, usize, u64)> {
    let mut spec = FleetSpec::on_free_port(base, count);
    spec.profiles = vec![PROFILE.into()];
    spec.time_scale = TIME_SCALE;
    // The simulated plugs accept the bench image (as if signed by their vendor).
    spec.images = vec![KnownImage::for_bytes(
        &img.bytes,
        "HS110(US)",
        "1",
        &format!("1.2.9 Build {IMAGE_BUILD} Rel.{IMAGE_REL}"),
    )];
    let fleet = Fleet::start(spec)
        .await
        .context("starting the simulated fleet")?;
    let cfg = runner_config(fleet.port(), concurrency);
    let mut plugs = Vec::new();
    for p in fleet.plugs() {
        let s = Client::new(p.addr(), cfg.client).sysinfo().await?;
        plugs.push((p.addr(), s));
    }
    let entries = plan::plan(&plugs, std::slice::from_ref(img));
    let (tx, mut rx) = mpsc::channel::<JobEvent>(1024);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let handle = BatchHandle::new(CancellationToken::new(), entries.iter().map(|e| e.plug.ip));
    let t0 = Instant::now();
    let report = run_batch(entries, cfg, tx, handle).await?;
    let took = t0.elapsed();
    let _ = drain.await;
    let premature: u64 = fleet
        .plugs()
        .iter()
        .map(|p| p.premature_flash_attempts())
        .sum();
    let updated = report.count(crate::firmware::runner::PlugResult::Updated);
    fleet.shutdown().await;
    Ok((took, updated, premature))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn batch_vs_single() -> anyhow::Result<()> {
    let img = image(256 * 1024);
    println!(
        "update batch vs single (sim time scale {TIME_SCALE}, {PROFILE}, image {} bytes, median of \
         {ROUNDS})",
        img.size
    );
    let mut single = Vec::new();
    let mut batch = Vec::new();
    let mut all_ok = true;
    for round in 0..ROUNDS {
        let r = round as u8;
        let (t1, ok1, pre1) = one_batch(Ipv4Addr::new(127, 77, 10 + r, 2), 1, 1, &img).await?;
        let (t50, ok50, pre50) = one_batch(Ipv4Addr::new(127, 77, 20 + r, 2), 50, 50, &img).await?;
        all_ok &= ok1 == 1 && ok50 == 50 && pre1 == 0 && pre50 == 0;
        println!(
            "  round {}: single {:>7.3} s ({ok1}/1 updated) | 50 at concurrency 50 {:>7.3} s \
             ({ok50}/50 updated) | premature flash attempts {}",
            round + 1,
            t1.as_secs_f64(),
            t50.as_secs_f64(),
            pre1 + pre50
        );
        single.push(t1);
        batch.push(t50);
    }
    let s = median(single);
    let b = median(batch);
    println!(
        "  single plug:   {:.3} s\n  batch of 50:   {:.3} s\n  ratio:         {:.2}× (target ≤ 1.20×){}",
        s.as_secs_f64(),
        b.as_secs_f64(),
        b.as_secs_f64() / s.as_secs_f64(),
        if all_ok {
            ""
        } else {
            "  [some updates failed]"
        }
    );
    Ok(())
}

/// A minimal HTTP/1.1 GET; returns body bytes received.
async fn fetch(addr: SocketAddr, path: &str) -> anyhow::Result<u64> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let mut head_done = false;
    let mut head = Vec::new();
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if head_done {
            total += n as u64;
        } else {
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                head_done = true;
                total += (head.len() - i - 4) as u64;
            }
        }
    }
    Ok(total)
}

async fn server_throughput() -> anyhow::Result<()> {
    const CLIENTS: usize = 50;
    const SIZE: usize = 8 * 1024 * 1024;
    let data = bytes::Bytes::from((0..SIZE).map(|i| (i % 253) as u8).collect::<Vec<_>>());
    let server = FileServer::per_key(
        (0..CLIENTS).map(|i| (i.to_string(), "image.bin".to_owned(), data.clone())),
    )?;
    // Every download comes from 127.0.0.1 here: allow them all at once.
    let limits = ServeLimits {
        per_client: CLIENTS + 1,
        ..ServeLimits::default()
    };
    let running = server
        .spawn_with(
            &[SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)],
            limits,
        )
        .await?;
    let addr = running.addrs()[0];
    println!(
        "file server: {CLIENTS} concurrent downloads of {} MiB over loopback",
        SIZE >> 20
    );
    // One alone first, for reference.
    let path0 = server.path_for("0").unwrap_or_default().to_owned();
    let t0 = Instant::now();
    let one = fetch(addr, &path0).await?;
    let single = t0.elapsed();
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let path = server
            .path_for(&i.to_string())
            .unwrap_or_default()
            .to_owned();
        set.spawn(async move {
            let t = Instant::now();
            fetch(addr, &path).await.map(|n| (n, t.elapsed()))
        });
    }
    let mut total = 0u64;
    let mut slowest = Duration::ZERO;
    while let Some(r) = set.join_next().await {
        let (n, t) = r??;
        total += n;
        slowest = slowest.max(t);
    }
    let wall = t0.elapsed();
    let counted: u64 = (0..CLIENTS)
        .map(|i| server.key_stats(&i.to_string()).bytes)
        .sum();
    running.shutdown().await;
    let mib = |b: u64, d: Duration| b as f64 / 1048576.0 / d.as_secs_f64();
    println!(
        "  single download:     {:.1} MiB/s ({:.3} s)\n  50 concurrent:       {:.1} MiB/s aggregate, \
         {:.1} MiB/s per download, slowest {:.3} s\n  bytes received {} / expected {} / counted by \
         the server {}",
        mib(one, single),
        single.as_secs_f64(),
        mib(total, wall),
        mib(total, wall) / CLIENTS as f64,
        slowest.as_secs_f64(),
        total,
        (SIZE * CLIENTS) as u64,
        counted - one
    );
    Ok(())
}
