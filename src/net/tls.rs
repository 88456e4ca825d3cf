//! The byte stream under the KLAP client: plain TCP, or TLS over it when the device's UDP 20002
//! reply says `is_support_https` ([`Scheme`], chosen in [`crate::protocol::access`]). The KLAP
//! exchange on top is the same code either way; only [`connect`] differs.
//!
//! TLS is rustls with the `ring` provider, TLS 1.3 and 1.2, no ALPN (the devices speak
//! HTTP/1.1), no early data, no client certificate.
//!
//! **Certificates are not verified.** The devices present self-signed certificates that no CA
//! vouches for and that name no host (`CN=TPRI-DEVICE`, python-kasa #1654); python-kasa connects
//! with `verify_mode = CERT_NONE` and `check_hostname = False`, and so does this client: any
//! certificate is accepted ([`AnyDeviceCertificate`]). TLS here protects the KLAP exchange from
//! passive listeners only, not from an active man in the middle; KLAP's own handshake (both
//! sides prove the account's hash) is what authenticates the device. The handshake always
//! completes before [`connect`] returns the stream, so nothing (no seed, no proof, no
//! credential-derived byte) is written before it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error as RustlsError, SignatureScheme, version,
};

/// HTTP or HTTPS under the KLAP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

/// A connection to a device: plain TCP or TLS over TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Stream::Plain",
            Stream::Tls(_) => "Stream::Tls",
        })
    }
}

/// Which step of [`connect`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connection (refused, unreachable, …).
    #[error("connect {addr}: {msg}")]
    Tcp { addr: SocketAddr, msg: String },
    /// The TCP connection did not complete in time.
    #[error("connect {addr}: timed out after {after:?}")]
    TcpTimeout { addr: SocketAddr, after: Duration },
    /// The device accepted TCP but the TLS handshake failed (no common cipher suite or
    /// version, a reset, not TLS at all, …).
    #[error("TLS handshake with {addr} failed: {msg}")]
    Tls { addr: SocketAddr, msg: String },
    /// The device accepted TCP but did not complete the TLS handshake in time.
    #[error("TLS handshake with {addr} timed out after {after:?}")]
    TlsTimeout { addr: SocketAddr, after: Duration },
}

/// Opens a connection to `addr`: TCP within `after`, then (HTTPS) the TLS handshake within
/// another `after`. Returns only once the handshake is complete.
pub async fn connect(
    scheme: Scheme,
    addr: SocketAddr,
    after: Duration,
) -> Result<Stream, ConnectError> {
    let tcp = timeout(after, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::TcpTimeout { addr, after })?
        .map_err(|e| ConnectError::Tcp {
            addr,
            msg: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    match scheme {
        Scheme::Http => Ok(Stream::Plain(tcp)),
        Scheme::Https => {
            let config = client_config().map_err(|msg| ConnectError::Tls { addr, msg })?;
            // An IP address as the server name: rustls sends no SNI for it, and the
            // certificate's names are not checked anyway.
            let name = ServerName::IpAddress(addr.ip().into());
            let tls = timeout(after, TlsConnector::from(config).connect(name, tcp))
                .await
                .map_err(|_| ConnectError::TlsTimeout { addr, after })?
                .map_err(|e| ConnectError::Tls {
                    addr,
                    msg: e.to_string(),
                })?;
            Ok(Stream::Tls(Box::new(tls)))
        }
    }
}

/// The one client configuration (built once per process).
fn client_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(ring::default_provider());
            let verifier = Arc::new(AnyDeviceCertificate {
                provider: provider.clone(),
            });
            let config = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&version::TLS13, &version::TLS12])
                .map_err(|e| format!("TLS configuration: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// Accepts whatever certificate the device presents (see the module notes: the devices' are
/// self-signed, and python-kasa does not verify them either).
///
/// The handshake signatures are not checked against the certificate's key either: with the
/// certificate itself unauthenticated they prove nothing (an active attacker signs with a key
/// of its own choosing), and checking them would refuse devices whose certificate holds an
/// RSA-1024 key (python-kasa #1654), which the provider's verifiers reject.
#[derive(Debug)]
struct AnyDeviceCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyDeviceCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, RustlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RustlsError> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, RustlsError> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::rustls::pki_types::PrivateKeyDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::{ServerConfig, SupportedProtocolVersion};

    /// The simulator's test-only pair (a self-signed certificate, as the devices have).
    const CERT: &str = include_str!("../../assets/tls/sim-cert.pem");
    const KEY: &str = include_str!("../../assets/tls/sim-key.pem");
    const T: Duration = Duration::from_secs(5);

    /// A TLS server speaking only `versions`: echoes one read back, then ends.
    async fn echo_server(versions: &[&'static SupportedProtocolVersion]) -> SocketAddr {
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(CERT.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(KEY.as_bytes()).expect("key"),
            )
            .expect("config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = [0u8; 64];
            if let Ok(n) = tls.read(&mut buf).await {
                let _ = tls.write_all(&buf[..n]).await;
                let _ = tls.shutdown().await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_self_signed_device_is_spoken_to_over_tls_1_2_and_1_3() {
        for versions in [&[&version::TLS12][..], &[&version::TLS13][..]] {
            let addr = echo_server(versions).await;
            let mut s = connect(Scheme::Https, addr, T).await.expect("handshake");
            let Stream::Tls(tls) = &s else {
                panic!("a TLS stream: {s:?}");
            };
            assert_eq!(
                tls.get_ref().1.protocol_version(),
                Some(versions[0].version)
            );
            s.write_all(b"ping").await.expect("write");
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.expect("read");
            assert_eq!(got, b"ping");
        }
    }

    #[tokio::test]
    async fn a_peer_that_is_not_tls_is_a_tls_error() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        match connect(Scheme::Https, addr, T).await {
            Err(ConnectError::Tls { addr: a, .. }) => assert_eq!(a, addr),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_stalled_handshake_times_out_after_nothing_but_the_client_hello() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            // Everything the client sends while its handshake is never answered.
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(800), s.read(&mut buf)).await
            {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(got);
        });
        // The KLAP client with an account: it must not send a seed, a proof or a request.
        let mut c = crate::net::klap::KlapClient::new(crate::net::klap::KlapConfig {
            scheme: Scheme::Https,
            timeout: Duration::from_millis(300),
            ..crate::net::klap::KlapConfig::new(
                addr,
                crate::protocol::klap::AuthVersion::V2,
                Some(crate::net::klap::Credentials::new(
                    "me@example.com",
                    "s3cret",
                )),
            )
        });
        assert_eq!(
            c.handshake().await,
            Err(crate::net::klap::KlapNetError::TlsTimeout {
                after: Duration::from_millis(300)
            })
        );
        let got = rx.await.expect("what the server read");
        // One TLS record, a handshake (22) carrying a ClientHello (1), and nothing after it.
        assert!(got.len() > 5, "{got:?}");
        assert_eq!((got[0], got[1], got[5]), (22, 3, 1), "{got:?}");
        let len = usize::from(u16::from_be_bytes([got[3], got[4]]));
        assert_eq!(got.len(), 5 + len, "only the ClientHello record");
        assert!(!got.windows(4).any(|w| w == b"POST"));
    }
}
