//! The floor `bench poll` compares the poller with: a minimal client, measured in the same run
//! against the same simulated fleet. One thread, blocking sockets, one kept TCP connection per
//! device, the same requests the poller sends (one combined sysinfo + meter request per plug;
//! for a strip sysinfo, then each outlet's meter), the length-prefixed reply read into one
//! reused buffer and decrypted in place — and nothing else: no JSON parsed, no report made, no
//! timeout, no schedule. What it costs is what the kernel's loopback TCP and the cipher cost;
//! what the poller costs above it is the poller's own work.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::bench::sim_child::LegacyPlug;
use crate::protocol::Request;
use crate::protocol::cipher::decrypt_in_place;
use crate::protocol::codec::encode_frame;

/// What the floor client measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloorFigures {
    pub polls: u64,
    pub requests: u64,
    pub failed: u64,
    pub cpu_ns: Option<u64>,
    pub wall: Duration,
}

impl FloorFigures {
    pub fn us_per_poll(&self) -> Option<f64> {
        self.cpu_ns
            .map(|c| c as f64 / 1000.0 / self.polls.max(1) as f64)
    }
    pub fn us_per_request(&self) -> Option<f64> {
        self.cpu_ns
            .map(|c| c as f64 / 1000.0 / self.requests.max(1) as f64)
    }
}

/// The largest reply the floor client reads (a sysinfo is ~1 KB).
const MAX_REPLY: usize = 64 * 1024;

struct Dev {
    stream: Option<TcpStream>,
    addr: SocketAddr,
    frames: Vec<Vec<u8>>,
}

/// One request and its reply over `dev`'s kept connection (connecting when it has none).
fn exchange(dev: &mut Dev, frame: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
    if dev.stream.is_none() {
        let s = TcpStream::connect_timeout(&dev.addr, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        dev.stream = Some(s);
    }
    let Some(s) = dev.stream.as_mut() else {
        return Err(std::io::ErrorKind::NotConnected.into());
    };
    let r = (|| {
        s.write_all(&dev.frames[frame])?;
        let mut head = [0u8; 4];
        s.read_exact(&mut head)?;
        let len = u32::from_be_bytes(head) as usize;
        if len == 0 || len > MAX_REPLY {
            return Err(std::io::Error::other("bad length"));
        }
        buf.resize(len, 0);
        s.read_exact(buf)?;
        decrypt_in_place(buf);
        Ok(())
    })();
    if r.is_err() {
        dev.stream = None;
    }
    r
}

/// Reads every device once per `interval` for `warm + cycles` cycles, measuring the last
/// `cycles`. Bounded: each request has a 2 s timeout, and the run ends after its cycles.
pub fn measure(plugs: &[LegacyPlug], interval: Duration, warm: u64, cycles: u64) -> FloorFigures {
    let combined = encode_frame(br#"{"system":{"get_sysinfo":{}},"emeter":{"get_realtime":{}}}"#);
    let mut devs: Vec<Dev> = plugs
        .iter()
        .map(|p| Dev {
            stream: None,
            addr: p.addr,
            frames: if p.outlets.is_empty() {
                vec![combined.clone()]
            } else {
                std::iter::once(Request::SysInfo.encode_tcp())
                    .chain(
                        p.outlets
                            .iter()
                            .map(|id| Request::realtime(Some(id)).encode_tcp()),
                    )
                    .collect()
            },
        })
        .collect();
    let mut buf = Vec::with_capacity(4096);
    let mut figures = FloorFigures::default();
    let start = Instant::now();
    let mut t0 = start;
    let mut cpu0 = None;
    for cycle in 0..warm + cycles {
        if cycle == warm {
            t0 = Instant::now();
            cpu0 = super::cpu::cpu_ns();
            figures = FloorFigures::default();
        }
        for dev in &mut devs {
            let mut ok = true;
            for f in 0..dev.frames.len() {
                figures.requests += 1;
                ok &= exchange(dev, f, &mut buf).is_ok();
            }
            figures.polls += 1;
            figures.failed += u64::from(!ok);
        }
        let next = start + interval * (cycle as u32 + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    figures.wall = t0.elapsed();
    figures.cpu_ns = cpu0
        .zip(super::cpu::cpu_ns())
        .map(|(a, b)| b.saturating_sub(a));
    figures
}
