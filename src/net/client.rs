//! The device client: request/response over TCP with separate connect and reply timeouts, and
//! the unicast UDP probe. Every call is bounded in time; every failure is a typed [`NetError`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::codec::{Encoder, FramedRead};

use crate::protocol::codec::{CodecError, FrameError};
use crate::protocol::reply::{self, ReplyError};
use crate::protocol::{DEFAULT_MAX_FRAME, DownloadState, FrameCodec, Realtime, Request, SysInfo};

/// Timeouts, port and frame cap of a client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientConfig {
    pub port: u16,
    pub connect_timeout: Duration,
    /// Budget for writing the request and reading the whole reply.
    pub reply_timeout: Duration,
    pub max_frame: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            port: crate::protocol::DEFAULT_PORT,
            connect_timeout: Duration::from_secs(2),
            reply_timeout: Duration::from_secs(5),
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl ClientConfig {
    /// One overall `--timeout`: connect gets at most half of it (and at most 2 s).
    pub fn with_timeout(port: u16, total: Duration) -> Self {
        Self {
            port,
            connect_timeout: (total / 2).min(Duration::from_secs(2)),
            reply_timeout: total,
            ..Self::default()
        }
    }
}

/// Which part of an exchange ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Reply,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Reply => "reply",
        })
    }
}

/// Everything that can go wrong talking to a plug. "The device said no" (`Device`) is kept apart
/// from "the transport broke".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NetError {
    #[error("timed out waiting for {stage} after {after:?}")]
    Timeout { stage: Stage, after: Duration },
    #[error("connection refused")]
    Refused,
    #[error("connection reset or closed by the device")]
    Reset,
    #[error("I/O error: {0}")]
    Io(String),
    /// A frame that cannot be a reply: its Display says why (`bad reply: length 2147483648
    /// over the 64 KiB cap`), so no view has to fall back to "no answer".
    #[error("bad reply: {}", frame_reason(.0))]
    Frame(FrameError),
    #[error("bad reply: {0}")]
    Reply(String),
    #[error("device error {code}: {msg}")]
    Device { code: i64, msg: String },
    /// A newer-protocol device answered and refused (no credentials, wrong ones) or speaks
    /// what plugfleet cannot: the message is the one-line hint.
    #[error("{0}: {hint}", hint = .0.hint())]
    Access(crate::protocol::access::Refusal),
}

/// Why a frame is unusable, in words a user reads: `length 2147483648 over the 64 KiB cap`,
/// `connection closed after 10 of 200 bytes`.
pub fn frame_reason(f: &FrameError) -> String {
    match f {
        FrameError::TooLarge { len, max } => format!("length {len} over the {} cap", size(*max)),
        FrameError::UnterminatedTooLarge { max } => {
            format!("unterminated reply over the {} cap", size(*max))
        }
        FrameError::Truncated { got, expected } => {
            format!("connection closed after {got} of {expected} bytes")
        }
    }
}

/// `64 KiB`, `1 MiB`, `1000 bytes`.
fn size(n: usize) -> String {
    const KIB: usize = 1024;
    if n >= KIB * KIB && n % (KIB * KIB) == 0 {
        format!("{} MiB", n / (KIB * KIB))
    } else if n >= KIB && n % KIB == 0 {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

impl NetError {
    /// Short label for tables and JSON (`timeout`, `refused`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            NetError::Timeout { .. } => "timeout",
            NetError::Refused => "refused",
            NetError::Reset => "reset",
            NetError::Io(_) => "io",
            NetError::Frame(_) | NetError::Reply(_) => "protocol",
            NetError::Device { .. } => "device",
            NetError::Access(r) => r.label(),
        }
    }

    /// Is the device answering at all? (A device error is an answer.)
    pub fn is_transport(&self) -> bool {
        !matches!(self, NetError::Device { .. } | NetError::Access(_))
    }

    /// The refusal of a newer-protocol device, if this is one.
    pub fn refusal(&self) -> Option<&crate::protocol::access::Refusal> {
        match self {
            NetError::Access(r) => Some(r),
            _ => None,
        }
    }
}

impl From<std::io::Error> for NetError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => NetError::Refused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                NetError::Reset
            }
            K::TimedOut => NetError::Timeout {
                stage: Stage::Reply,
                after: Duration::ZERO,
            },
            _ => NetError::Io(e.to_string()),
        }
    }
}

impl From<CodecError> for NetError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Frame(f) => NetError::Frame(f),
            CodecError::Io(io) => io.into(),
        }
    }
}

impl From<ReplyError> for NetError {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::Device { code, msg, .. } => NetError::Device { code, msg },
            other => NetError::Reply(other.to_string()),
        }
    }
}

/// One open connection; several requests may be sent over it, one at a time. Generic over the
/// stream so tests can use `tokio::io::duplex`.
pub struct Connection<T> {
    /// Read side only: requests are written straight to the stream (the poller's are encoded
    /// once per process), so no write buffer is kept per connection.
    framed: FramedRead<T, FrameCodec>,
    reply_timeout: Duration,
}

/// A connection's read buffer to begin with: a plug's combined sysinfo + meter reply fits
/// (~1 KB); a strip's longer sysinfo grows it once. A fleet of 2,500 kept connections holds
/// 2,500 of these, so not `FramedRead`'s default 8 KiB (20 MB of the 60 MB budget).
const READ_BUFFER: usize = 2048;

impl Connection<TcpStream> {
    /// Connects to `ip` on the configured port within the connect timeout.
    pub async fn connect(ip: IpAddr, cfg: &ClientConfig) -> Result<Self, NetError> {
        let addr = SocketAddr::new(ip, cfg.port);
        let stream = timeout(cfg.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| NetError::Timeout {
                stage: Stage::Connect,
                after: cfg.connect_timeout,
            })??;
        // Small request/reply exchanges: do not wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(Self::new(stream, cfg))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    /// Wraps an already-open stream.
    pub fn new(stream: T, cfg: &ClientConfig) -> Self {
        Self {
            framed: FramedRead::with_capacity(stream, FrameCodec::new(cfg.max_frame), READ_BUFFER),
            reply_timeout: cfg.reply_timeout,
        }
    }

    /// Sends one request and returns the whole reply as JSON (errors not yet checked).
    pub async fn call_raw(&mut self, req: &Request) -> Result<Value, NetError> {
        let deadline = Instant::now() + self.reply_timeout;
        let body = req.to_json_bytes();
        let exchange = async {
            let mut frame = bytes::BytesMut::new();
            self.framed.decoder_mut().encode(&body[..], &mut frame)?;
            self.framed.get_mut().write_all(&frame).await?;
            // A no-op on a TCP stream; a buffered one (a test's) sends here.
            self.framed.get_mut().flush().await?;
            match self.framed.next().await {
                Some(frame) => Ok::<_, NetError>(frame?),
                None => Err(NetError::Reset),
            }
        };
        let frame = timeout_at(deadline, exchange)
            .await
            .map_err(|_| NetError::Timeout {
                stage: Stage::Reply,
                after: self.reply_timeout,
            })??;
        Ok(reply::parse_json(&frame)?)
    }

    /// Sends an already encoded TCP frame (header + obfuscated payload, as
    /// [`Request::encode_tcp`] builds it, so a poller can encrypt its requests once) and returns
    /// the whole reply as JSON (errors not yet checked). Same reply timeout as [`Self::call_raw`].
    pub async fn call_frame(&mut self, frame: &[u8]) -> Result<Value, NetError> {
        let reply = self.exchange_frame(frame).await?;
        Ok(reply::parse_json(&reply)?)
    }

    /// Sends an already encoded TCP frame and returns the reply's plain payload, decrypted in
    /// place in the connection's read buffer (no copy; parse it with
    /// [`reply::parse_lite`] to borrow from it). Same reply timeout as [`Self::call_raw`].
    pub async fn exchange_frame(&mut self, frame: &[u8]) -> Result<Bytes, NetError> {
        let exchange = async {
            self.framed.get_mut().write_all(frame).await?;
            self.framed.get_mut().flush().await?;
            match self.framed.next().await {
                Some(frame) => Ok::<_, NetError>(frame?),
                None => Err(NetError::Reset),
            }
        };
        timeout(self.reply_timeout, exchange)
            .await
            .map_err(|_| NetError::Timeout {
                stage: Stage::Reply,
                after: self.reply_timeout,
            })?
    }

    /// Sends one request and returns the reply with `err_code` checked at both levels.
    pub async fn call(&mut self, req: &Request) -> Result<Value, NetError> {
        let root = self.call_raw(req).await?;
        if let Some((module, method)) = req.target() {
            reply::method_result(&root, module, method)?;
        }
        Ok(root)
    }
}

/// A handle on one plug: every call opens a fresh connection (what tplink-smarthome-api does and
/// what survives plugs that close after each reply), bounded by the config's timeouts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Client {
    pub ip: IpAddr,
    pub cfg: ClientConfig,
}

impl Client {
    pub fn new(ip: IpAddr, cfg: ClientConfig) -> Self {
        Self { ip, cfg }
    }

    /// Sends `req` over a fresh TCP connection; `err_code` checked.
    pub async fn call(&self, req: &Request) -> Result<Value, NetError> {
        let mut conn = Connection::connect(self.ip, &self.cfg).await?;
        conn.call(req).await
    }

    pub async fn sysinfo(&self) -> Result<SysInfo, NetError> {
        Ok(SysInfo::from_reply(&self.call(&Request::SysInfo).await?)?)
    }

    /// One meter reading (of `child` on strips).
    pub async fn realtime(&self, child: Option<&str>) -> Result<Realtime, NetError> {
        Ok(Realtime::from_reply(
            &self.call(&Request::realtime(child)).await?,
        )?)
    }

    pub async fn set_relay(&self, on: bool, child: Option<&str>) -> Result<(), NetError> {
        self.call(&Request::set_relay(on, child)).await.map(drop)
    }

    pub async fn set_alias(&self, alias: &str, child: Option<&str>) -> Result<(), NetError> {
        self.call(&Request::SetAlias {
            alias: alias.to_owned(),
            child: child.map(str::to_owned),
        })
        .await
        .map(drop)
    }

    pub async fn reboot(&self, delay_s: u32) -> Result<(), NetError> {
        self.call(&Request::Reboot { delay_s }).await.map(drop)
    }

    pub async fn download_firmware(&self, url: &str) -> Result<(), NetError> {
        self.call(&Request::DownloadFirmware {
            url: url.to_owned(),
        })
        .await
        .map(drop)
    }

    pub async fn download_state(&self) -> Result<DownloadState, NetError> {
        Ok(DownloadState::from_reply(
            &self.call(&Request::GetDownloadState).await?,
        )?)
    }

    /// Sends `flash_firmware`. Callers must have seen a complete download first (the firmware
    /// job enforces it); this is the only function that sends the request.
    pub async fn flash_firmware(&self) -> Result<(), NetError> {
        self.call(&Request::FlashFirmware).await.map(drop)
    }

    /// The unicast UDP probe: `req` as one datagram; the first reply from this plug's address
    /// within the reply timeout (datagrams from elsewhere are ignored).
    pub async fn udp_call(&self, req: &Request) -> Result<Value, NetError> {
        let sock = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).await?;
        let target = SocketAddr::new(self.ip, self.cfg.port);
        sock.send_to(&req.encode_udp(), target).await?;
        let deadline = Instant::now() + self.cfg.reply_timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, from) = timeout_at(deadline, sock.recv_from(&mut buf))
                .await
                .map_err(|_| NetError::Timeout {
                    stage: Stage::Reply,
                    after: self.cfg.reply_timeout,
                })??;
            if from != target {
                continue;
            }
            let plain = crate::protocol::codec::decode_datagram(&buf[..n]);
            let root = reply::parse_json(&plain)?;
            if let Some((module, method)) = req.target() {
                reply::method_result(&root, module, method)?;
            }
            return Ok(root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::encode_frame;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    fn cfg() -> ClientConfig {
        ClientConfig {
            reply_timeout: Duration::from_millis(300),
            ..ClientConfig::default()
        }
    }

    async fn read_request(s: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut hdr = [0u8; 4];
        s.read_exact(&mut hdr).await.expect("header");
        let mut body = vec![0u8; u32::from_be_bytes(hdr) as usize];
        s.read_exact(&mut body).await.expect("body");
        crate::protocol::cipher::decrypt(&body)
    }

    #[tokio::test]
    async fn reply_split_over_many_writes_is_reassembled() {
        let (client, mut dev) = duplex(64);
        tokio::spawn(async move {
            let req = read_request(&mut dev).await;
            assert_eq!(req, br#"{"system":{"get_sysinfo":{}}}"#);
            let reply = encode_frame(
                br#"{"system":{"get_sysinfo":{"model":"HS100(US)","hw_ver":"2.0","sw_ver":"1.5.6 Build 191118 Rel.140307","mac":"50:C7:BF:00:00:01","deviceId":"D1","alias":"x","err_code":0}}}"#,
            );
            for chunk in reply.chunks(7) {
                dev.write_all(chunk).await.expect("write");
                tokio::task::yield_now().await;
            }
        });
        let mut conn = Connection::new(client, &cfg());
        let root = conn.call(&Request::SysInfo).await.expect("reply");
        let info = SysInfo::from_reply(&root).expect("sysinfo");
        assert_eq!(info.model, "HS100(US)");
    }

    #[tokio::test]
    async fn two_requests_on_one_connection() {
        let (client, mut dev) = duplex(4096);
        tokio::spawn(async move {
            for _ in 0..2 {
                let _ = read_request(&mut dev).await;
                dev.write_all(&encode_frame(
                    br#"{"system":{"set_relay_state":{"err_code":0}}}"#,
                ))
                .await
                .expect("write");
            }
        });
        let mut conn = Connection::new(client, &cfg());
        for _ in 0..2 {
            conn.call(&Request::set_relay(true, None))
                .await
                .expect("ok");
        }
    }

    #[tokio::test]
    async fn silence_is_a_reply_timeout() {
        let (client, mut dev) = duplex(4096);
        let _keep = tokio::spawn(async move {
            let _ = read_request(&mut dev).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(dev);
        });
        let mut conn = Connection::new(client, &cfg());
        let e = conn.call(&Request::SysInfo).await.expect_err("timeout");
        assert!(
            matches!(
                e,
                NetError::Timeout {
                    stage: Stage::Reply,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn typed_errors_for_each_bad_reply() {
        async fn answer(bytes: Vec<u8>, close: bool) -> NetError {
            let (client, mut dev) = duplex(4096);
            tokio::spawn(async move {
                let _ = read_request(&mut dev).await;
                dev.write_all(&bytes).await.expect("write");
                if !close {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
            let mut conn = Connection::new(client, &cfg());
            conn.call(&Request::SysInfo).await.expect_err("error")
        }
        assert!(matches!(answer(vec![], true).await, NetError::Reset));
        let big = answer(vec![0x80, 0, 0, 0], false).await;
        assert!(
            matches!(big, NetError::Frame(FrameError::TooLarge { .. })),
            "{big:?}"
        );
        // The reason, not "no answer", is what every view prints.
        assert_eq!(
            big.to_string(),
            "bad reply: length 2147483648 over the 64 KiB cap"
        );
        let mut truncated = encode_frame(br#"{"system":{"get_sysinfo":{}}}"#);
        truncated.truncate(10);
        let cut = answer(truncated, true).await;
        assert!(
            matches!(cut, NetError::Frame(FrameError::Truncated { .. })),
            "{cut:?}"
        );
        assert_eq!(
            cut.to_string(),
            "bad reply: connection closed after 6 of 29 bytes"
        );
        assert!(matches!(
            answer(encode_frame(b"\x01\x02garbage"), false).await,
            NetError::Reply(_)
        ));
        assert_eq!(
            answer(
                encode_frame(
                    br#"{"system":{"get_sysinfo":{"err_code":-2,"err_msg":"member not support"}}}"#
                ),
                false
            )
            .await,
            NetError::Device {
                code: -2,
                msg: "member not support".into()
            }
        );
    }

    #[tokio::test]
    async fn refused_is_typed() {
        // Bind then drop to get a loopback port with (almost certainly) no listener.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let c = Client::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            ClientConfig { port, ..cfg() },
        );
        assert_eq!(c.sysinfo().await.expect_err("refused"), NetError::Refused);
    }
}
