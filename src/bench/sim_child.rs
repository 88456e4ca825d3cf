//! The simulated fleet the benchmarks poll: `plugfleet sim` in a child process, so the
//! simulator's own CPU time is not counted against plugfleet's.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `plugfleet sim` running; killed and reaped on drop.
pub struct SimChild {
    child: Child,
    /// One JSON line per plug, as the simulator printed them when ready.
    pub plugs: Vec<Value>,
}

/// A legacy (port 9999) plug of the simulated fleet, as its JSON line gave it.
#[derive(Debug, Clone)]
pub struct LegacyPlug {
    pub device_id: String,
    pub addr: std::net::SocketAddr,
    /// A strip's outlet ids (empty for a plug).
    pub outlets: Vec<String>,
}

impl SimChild {
    /// The plugs that speak the legacy protocol, with their address and outlets.
    pub fn legacy_plugs(&self) -> Vec<LegacyPlug> {
        self.plugs
            .iter()
            .filter(|p| p["protocol"] == "legacy")
            .filter_map(|p| {
                let ip: std::net::IpAddr = p["ip"].as_str()?.parse().ok()?;
                let port = u16::try_from(p["port"].as_u64()?).ok()?;
                let outlets = p["children"].as_array().map_or_else(Vec::new, |c| {
                    c.iter()
                        .filter_map(|id| id.as_str().map(str::to_owned))
                        .collect()
                });
                Some(LegacyPlug {
                    device_id: p["device_id"].as_str()?.to_owned(),
                    addr: std::net::SocketAddr::new(ip, port),
                    outlets,
                })
            })
            .collect()
    }
}

impl Drop for SimChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `count` simulated plugs (legacy profiles: with and without a meter, a 6-outlet strip
/// one in six) on 127.(`first`+b).0.2…, b < `spread` picked from the process id, trying
/// another block when one is taken; waits at most `ready` for every plug's line.
pub fn start(count: usize, first: u8, spread: u8, ready: Duration) -> anyhow::Result<SimChild> {
    start_with(count, first, spread, ready, LEGACY)
}

/// The legacy profiles [`start`] cycles through.
pub const LEGACY: &[&str] = &[
    "hs110-eu-hw4",
    "hs110-us-hw1",
    "kp115-us-hw1",
    "hs110-eu-hw1",
    "hs300-us-hw2",
    "hs100-us-hw2",
];

/// [`start`] with the simulator cycling through `profiles` instead.
pub fn start_with(
    count: usize,
    first: u8,
    spread: u8,
    ready: Duration,
    profiles: &[&str],
) -> anyhow::Result<SimChild> {
    let exe = std::env::current_exe()?;
    let mut last_err = String::new();
    for attempt in 0..8u32 {
        let b = (std::process::id().wrapping_add(attempt * 37) % u32::from(spread.max(1))) as u8;
        let base = std::net::Ipv4Addr::new(127, first.saturating_add(b), 0, 2);
        let mut cmd = Command::new(&exe);
        cmd.args(["sim", "--count", &count.to_string()])
            .args(["--base", &base.to_string()])
            .args(["--port", "0", "--tdp-port", "0"]);
        for p in profiles {
            cmd.args(["--profile", p]);
        }
        let mut child = cmd
            // The simulator reads `stats` lines on stdin: never the benchmark's terminal.
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout from the simulator"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + ready;
        let mut plugs = Vec::new();
        while plugs.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => plugs.push(serde_json::from_str::<Value>(&line)?),
                Err(_) => break,
            }
        }
        if plugs.len() == count {
            return Ok(SimChild { child, plugs });
        }
        let _ = child.kill();
        let out = child.wait_with_output()?;
        last_err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    }
    anyhow::bail!("the simulator did not start: {last_err}")
}

/// What discovery would have done for these plugs: one poll of each (the sweep's
/// `get_sysinfo`), turned into the sighting a sweep reports and applied with `update()`; the
/// `Track` commands that come back go to the poller, so it polls the plugs under the app's own
/// keys and every report is applied to a known device. Returns how many are tracked.
pub async fn track_as_discovered(
    app: &mut crate::app::App,
    addrs: impl Iterator<Item = std::net::SocketAddr>,
    client: &crate::net::ClientConfig,
    ctl: &tokio::sync::mpsc::Sender<crate::net::poller::Control>,
) -> anyhow::Result<usize> {
    use crate::app::{Command, Event, SeenInfo, Sighting, update};
    use crate::net::poller::{Control, Target, poll_device};

    let addrs: Vec<std::net::SocketAddr> = addrs.collect();
    let found =
        futures_util::future::join_all(addrs.iter().map(|addr| poll_device(*addr, client))).await;
    let mut tracked = 0;
    for (addr, polled) in addrs.iter().zip(found) {
        let Ok(p) = polled else { continue };
        let seen = Event::DeviceDiscovered(Sighting {
            ip: addr.ip(),
            port: addr.port(),
            found_by: "sweep".into(),
            info: SeenInfo::Legacy(Box::new(p.sysinfo)),
        });
        for cmd in update(app, seen, std::time::Instant::now()) {
            if let Command::Track { key, addr } = cmd {
                ctl.send(Control::Track(Target { key, addr })).await?;
                tracked += 1;
            }
        }
    }
    Ok(tracked)
}
