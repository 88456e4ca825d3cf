//! The plug's own HTTP client: a minimal HTTP/1.1 GET over a tokio `TcpStream` from the plug's
//! own address, loopback only, bounded by timeouts and a size cap, throttled to a plug-like rate
//! (scaled by the time scale) so that `ratio` visibly progresses. It knows nothing of plugs or
//! images: progress goes to a callback, the bytes to the caller (`flash.rs`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep_until, timeout};

/// Largest image a simulated plug accepts.
pub const MAX_IMAGE: u64 = 16 * 1024 * 1024;
/// Nominal download rate (bytes per second at time scale 1): a plug on Wi-Fi writing to RAM.
pub const NOMINAL_RATE: f64 = 96.0 * 1024.0;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_HEAD: usize = 16 * 1024;

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The plug's address: the connection comes from it, as from a real plug.
    pub bind: Ipv4Addr,
    pub user_agent: String,
    /// Bytes per second.
    pub rate: f64,
    /// The `download-drop` fault: fail at half.
    pub drop_at_half: bool,
    /// The `download-stall` fault: stop reading at 40 %, connection held open.
    pub stall_at_40: bool,
}

/// Where to fetch from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
}

/// Why a URL is not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("only plain http:// URLs are supported")]
    Scheme,
    #[error("only loopback hosts (127.0.0.0/8, localhost) are allowed")]
    NotLoopback,
    #[error("malformed URL")]
    Malformed,
}

/// Parses `http://HOST[:PORT]/PATH` where HOST is a 127.x.y.z literal or `localhost`.
pub fn parse_url(url: &str) -> Result<Target, UrlError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("HTTP://"))
        .ok_or(UrlError::Scheme)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::Malformed);
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| UrlError::Malformed)?),
        None => (authority, 80),
    };
    let ip: Ipv4Addr = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse().map_err(|_| {
            if host.is_empty() {
                UrlError::Malformed
            } else {
                UrlError::NotLoopback
            }
        })?
    };
    if !ip.is_loopback() || port == 0 {
        return Err(UrlError::NotLoopback);
    }
    Ok(Target {
        addr: SocketAddr::from((ip, port)),
        host: authority.to_owned(),
        path: path.to_owned(),
    })
}

async fn connect(bind: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::from((bind, 0)))?;
    sock.connect(to).await
}

/// Fetches the body of `t`. `progress(received, content_length)` is called as bytes arrive and
/// returns false when the download is no longer wanted (superseded, or the plug went down):
/// then `Ok(None)`.
pub async fn fetch(
    t: &Target,
    o: &FetchOptions,
    mut progress: impl FnMut(u64, Option<u64>) -> bool,
) -> Result<Option<Vec<u8>>, String> {
    let mut s = timeout(CONNECT_TIMEOUT, connect(o.bind, t.addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        t.path, t.host, o.user_agent
    );
    timeout(READ_TIMEOUT, s.write_all(req.as_bytes()))
        .await
        .map_err(|_| "send timed out".to_string())?
        .map_err(|e| format!("send: {e}"))?;

    // Head.
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err("response head too large".into());
        }
        let mut chunk = [0u8; 2048];
        let n = timeout(READ_TIMEOUT, s.read(&mut chunk))
            .await
            .map_err(|_| "timed out reading response head".to_string())?
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before the response head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        return Err(format!(
            "HTTP status {}",
            status.chars().take(64).collect::<String>()
        ));
    }
    let mut len: Option<u64> = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            len = Some(v.parse().map_err(|_| "bad Content-Length".to_string())?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") && !v.eq_ignore_ascii_case("identity")
        {
            return Err("chunked transfer is not supported".into());
        }
    }
    let len = len.ok_or("no Content-Length")?;
    if len > MAX_IMAGE {
        return Err(format!("image of {len} bytes is too large"));
    }
    let mut body: Vec<u8> = buf[head_end + 4..].to_vec();
    body.truncate(len as usize);

    let rate = o.rate.max(1.0);
    let started = Instant::now();
    let drop_at = o.drop_at_half.then_some(len / 2);
    let stall_at = o.stall_at_40.then_some((len * 2).div_ceil(5));
    loop {
        let received = body.len() as u64;
        if !progress(received, Some(len)) {
            return Ok(None);
        }
        if received >= len {
            return Ok(Some(body));
        }
        if drop_at.is_some_and(|at| received >= at) {
            return Err("connection dropped midway".into());
        }
        if stall_at.is_some_and(|at| received >= at) {
            // Keep the connection, never read again, until superseded or the plug goes down
            // (going offline supersedes the download).
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if !progress(received, Some(len)) {
                    return Ok(None);
                }
            }
        }
        // Throttle to the plug's rate.
        let due = started + Duration::from_secs_f64((received as f64 / rate).min(3600.0));
        sleep_until(due).await;
        let want = (len - received).min(8 * 1024) as usize;
        let want = match (drop_at, stall_at) {
            (Some(at), _) | (_, Some(at)) if received < at => want.min((at - received) as usize),
            _ => want,
        };
        let mut chunk = vec![0u8; want.max(1)];
        let n = timeout(READ_TIMEOUT, s.read(&mut chunk))
            .await
            .map_err(|_| "download stalled".to_string())?
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed after {received} of {len} bytes"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("http://127.0.0.1:8080/fw/a.bin").expect("ok");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(t.path, "/fw/a.bin");
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(
            parse_url("http://localhost/x").expect("ok").addr,
            "127.0.0.1:80".parse().expect("addr")
        );
        assert_eq!(
            parse_url("http://192.168.1.2/x.bin"),
            Err(UrlError::NotLoopback)
        );
        assert_eq!(
            parse_url("http://download.tplinkcloud.com/x.bin"),
            Err(UrlError::NotLoopback)
        );
        assert_eq!(parse_url("https://127.0.0.1/x"), Err(UrlError::Scheme));
        assert_eq!(
            parse_url("http://127.0.0.1:99999/x"),
            Err(UrlError::Malformed)
        );
        assert_eq!(parse_url("http://u@127.0.0.1/x"), Err(UrlError::Malformed));
        assert_eq!(parse_url("http://127.0.0.1/a b"), Err(UrlError::Malformed));
    }
}
